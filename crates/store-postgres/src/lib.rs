//! The shared store: PostgreSQL, for several servers (and workers) on one database.
//!
//! One module per concern implements that concern's trait of `cohort-store`, as the
//! embedded backend does; they share the connections ([`PgStore`], through `pool`), the
//! writing of a batch of changes (`journal`) and the schema (`migrations`). Where
//! SQLite has one writer at a time, here many write at once, so the schema carries
//! what makes that safe: see `migrations/01-schema.sql` and the feed (`feed`).

use cohort_store::StoreError;

mod access;
mod customers;
mod erasure;
mod feed;
mod groups;
mod imports;
mod journal;
mod memberships;
mod migrations;
mod owner;
mod plugins;
mod pool;
mod reads;
mod restore;
mod runs;
mod scans;
#[cfg(feature = "scratch")]
pub mod scratch;
mod staff;
mod tls;
mod webhooks;

use owner::Owner;
use pool::Pool;

/// What the backend's own code meets: PostgreSQL's errors, and the store's.
#[derive(Debug)]
pub(crate) enum Error {
    Sql(postgres::Error),
    Store(StoreError),
}

impl From<postgres::Error> for Error {
    fn from(e: postgres::Error) -> Self {
        Error::Sql(e)
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        Error::Store(e)
    }
}

impl From<Error> for StoreError {
    fn from(e: Error) -> Self {
        use postgres::error::SqlState;
        match e {
            Error::Store(e) => e,
            Error::Sql(e) => match e.code() {
                // Another writer's locks: worth trying again shortly.
                Some(
                    &SqlState::T_R_SERIALIZATION_FAILURE
                    | &SqlState::T_R_DEADLOCK_DETECTED
                    | &SqlState::LOCK_NOT_AVAILABLE,
                ) => StoreError::Busy(Box::new(Told(e))),
                _ => StoreError::Backend(Box::new(Told(e))),
            },
        }
    }
}

/// A driver's error told whole: the driver names only the kind ("db error", "error
/// connecting to server") and keeps what happened (the server's message, the refused
/// connection) as its source, which most callers never print.
#[derive(Debug)]
struct Told(postgres::Error);

impl std::fmt::Display for Told {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use std::error::Error as _;
        match self.0.source() {
            Some(source) => write!(f, "{}: {source}", self.0),
            None => write!(f, "{}", self.0),
        }
    }
}

impl std::error::Error for Told {}

pub(crate) type Result<T> = std::result::Result<T, Error>;

/// Run the body of a trait method, which meets PostgreSQL's errors, for the store's.
fn sql<T>(body: impl FnOnce() -> Result<T>) -> cohort_store::Result<T> {
    body().map_err(StoreError::from)
}

/// A name of one of the store's enums, from column `what` of a stored `id`.
fn named<T>(text: &str, parse: fn(&str) -> Option<T>, what: &'static str, id: &str) -> Result<T> {
    parse(text).ok_or_else(|| corrupt(what, id, format!("`{text}` is not a name it knows")))
}

fn corrupt(what: &'static str, id: &str, problem: impl ToString) -> Error {
    Error::Store(StoreError::corrupt(what, id, problem))
}

/// A count as PostgreSQL keeps it.
fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or_default()
}

/// A count as PostgreSQL takes it.
fn big(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The store on a PostgreSQL database. Safe to share between threads: each call takes
/// a connection of its own from the pool.
pub struct PgStore {
    pool: Pool,
    /// The number this store's runs carry while they run.
    owner: Owner,
    /// What its latest reads of changed customers could not see.
    reads: reads::Reads,
}

impl PgStore {
    /// Connect to the database at `url` (`postgres://user:password@host:port/db`, or
    /// PostgreSQL's `key=value` form) and bring its schema up to date. Runs whose
    /// store is gone (a crash, anywhere) are marked `interrupted`. An error names the
    /// host and database, never the password.
    pub fn connect(url: &str) -> cohort_store::Result<Self> {
        let pool = Pool::new(url)?;
        let open_error = |e: Error| StoreError::Open {
            path: pool.describe(),
            problem: match e {
                Error::Sql(e) => Told(e).to_string(),
                Error::Store(e) => e.to_string(),
            },
        };
        let mut conn = pool.get().map_err(open_error)?;
        migrations::migrate(&mut conn).map_err(open_error)?;
        drop(conn);
        let owner = Owner::claim(&pool).map_err(open_error)?;
        owner
            .interrupt_the_runs_of_stores_gone(&pool)
            .map_err(open_error)?;
        // Tokens from where the owner's random number points: apart from another store's.
        let reads = reads::Reads::new((owner.id & 0x3fff_ffff) << 32);
        Ok(PgStore { pool, owner, reads })
    }

    /// Where the store is, as an operator may be shown it: no password.
    pub fn describe(&self) -> String {
        self.pool.describe()
    }
}

/// The database `url` names, as an operator may be shown it: no password.
pub fn describe_url(url: &str) -> String {
    pool::describe_url(url)
}

/// Whether `db` names a PostgreSQL database rather than a file.
pub fn is_postgres_url(db: &str) -> bool {
    db.starts_with("postgres://") || db.starts_with("postgresql://")
}
