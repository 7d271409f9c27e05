//! The embedded default backend: one SQLite file, WAL, schema migrations on open.
//!
//! One module per concern implements that concern's trait of `cohort-store`; they share
//! the connections ([`SqliteStore`]), the journal that writes a batch of changes
//! (`journal`), and the schema (`migrations`).

use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};

use cohort_store::StoreError;
use rusqlite::{Connection, TransactionBehavior};

/// SQL for the actor a stored membership leaves out, in the column `$grp` names: its
/// group's rule (see migration 13). Built from the planner's words, so that the store
/// and the planner cannot drift apart.
macro_rules! rule_actor {
    ($grp:literal) => {
        concat!(
            "('",
            cohort_planner::rule_words!(actor_prefix),
            "' || ",
            $grp,
            ")"
        )
    };
}

/// SQL for the reason a stored membership leaves out: the rule's words.
macro_rules! rule_matches {
    () => {
        concat!("'", cohort_planner::rule_words!(matches), "'")
    };
}

mod access;
mod bulk;
mod checkpoint;
mod customers;
mod dump;
mod erasure;
mod feed;
mod groups;
mod imports;
mod journal;
mod memberships;
mod migrations;
mod owner;
mod plugins;
mod resident;
mod runs;
mod staff;
mod webhooks;

use owner::Owner;

/// What the backend's own code meets: SQLite's errors, and the store's.
#[derive(Debug)]
pub(crate) enum Error {
    Sql(rusqlite::Error),
    Store(StoreError),
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
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
        match e {
            Error::Store(e) => e,
            Error::Sql(e) => match e.sqlite_error_code() {
                Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                    StoreError::Busy(Box::new(e))
                }
                _ => StoreError::Backend(Box::new(e)),
            },
        }
    }
}

pub(crate) type Result<T> = std::result::Result<T, Error>;

/// Run the body of a trait method, which meets SQLite's errors, for the store's.
fn sql<T>(body: impl FnOnce() -> Result<T>) -> cohort_store::Result<T> {
    body().map_err(StoreError::from)
}

/// Column `i` of `row`: a name that `parse` knows, of one of the store's enums.
fn named<T>(
    row: &rusqlite::Row<'_>,
    i: usize,
    parse: fn(&str) -> Option<T>,
) -> rusqlite::Result<T> {
    let text: String = row.get(i)?;
    parse(&text).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            i,
            rusqlite::types::Type::Text,
            format!("`{text}` is not a name the store knows here").into(),
        )
    })
}

fn corrupt(what: &'static str, id: &str, problem: impl ToString) -> Error {
    Error::Store(StoreError::corrupt(what, id, problem))
}

/// The embedded store. Safe to share between threads; SQLite serialises the writers.
pub struct SqliteStore {
    conn: Mutex<Connection>,
    /// A second connection, for the reads a run makes before it writes: with one
    /// connection, a run of one group could not even read its definition while another
    /// group's run held the connection to write, so no run evaluated while another
    /// wrote. `None` for a store in memory, which only one connection can see.
    reader: Option<Mutex<Connection>>,
    /// Tells the checkpointer thread, if there is one, to stop.
    stop: Option<std::sync::mpsc::Sender<()>>,
    /// How many times the writer's connection was taken, to read or to write: the
    /// checkpointer copies the log while this stands still (see `checkpointer`).
    writer_uses: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// The token this store's runs carry while they run; `None` in memory, where no
    /// other process can look.
    owner: Option<Owner>,
    /// The file, for a connection of its own beside the writer's (an import reads its
    /// staged rows on one while it writes on the other); `None` in memory.
    path: Option<std::path::PathBuf>,
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        if let Some(stop) = &self.stop {
            let _ = stop.send(());
        }
    }
}

/// SQLite counts every allocation under a process-wide mutex unless told not to, and a
/// run's writer allocates for every value it binds; the store never reads the counts.
/// The setting only takes before SQLite initialises, i.e. before the process's first
/// connection: if something else opened one first, SQLite refuses it, which costs speed
/// and nothing else.
fn configure_sqlite() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: SQLITE_CONFIG_MEMSTATUS takes one int; SQLite checks that it is not
        // yet initialised and returns an error instead of changing anything if it is.
        #[allow(unsafe_code, reason = "SQLite's configuration is a C call; see SAFETY")]
        unsafe {
            rusqlite::ffi::sqlite3_config(rusqlite::ffi::SQLITE_CONFIG_MEMSTATUS, 0);
        }
    });
}

impl SqliteStore {
    /// Open (creating if needed) the store at `path` and bring its schema up to date.
    /// Runs whose process is gone (a crash) are marked `interrupted`; those of a store
    /// still open, in this process or another, keep running.
    pub fn open(path: impl AsRef<Path>) -> cohort_store::Result<Self> {
        let path = path.as_ref();
        let open_error = |problem: String| StoreError::Open {
            path: path.display().to_string(),
            problem,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| open_error(e.to_string()))?;
        }
        configure_sqlite();
        let conn = Connection::open(path).map_err(|e| open_error(e.to_string()))?;
        let owner = Owner::claim(path)
            .map_err(|e| open_error(format!("cannot keep the token of the runs it starts: {e}")))?;
        let mut store = Self::setup(conn, Some(path))?;
        store.owner = Some(owner);
        store.reader = Some(Mutex::new(Self::reader_at(path)?));
        store.path = Some(path.to_path_buf());
        store.stop = Some(checkpoint::checkpointer(path, store.writer_uses.clone())?);
        Ok(store)
    }

    /// A store that lives in memory only, for tests and dry experiments.
    pub fn in_memory() -> cohort_store::Result<Self> {
        configure_sqlite();
        sql(|| Self::setup(Connection::open_in_memory()?, None))
    }

    /// The settings the store gives its connection, for another connection that must
    /// write as the store does (the benchmark's floor, say).
    pub fn configure(conn: &Connection) -> rusqlite::Result<()> {
        // WAL lets readers go on while a run writes; NORMAL sync is durable at every
        // checkpoint and safe against corruption on power loss.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // A multi-row insert keeps a statement journal (to undo itself alone on error);
        // in a file it costs a write per page it touches.
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        // 64 MiB of page cache where SQLite's default is 2: a run that adds a group's
        // memberships dirties more pages than 2 MiB hold, and each page pushed out
        // mid-transaction is written to the log, then again when it is dirtied again.
        conn.pragma_update(None, "cache_size", -65_536)?;
        // The checkpointer thread copies the log (see `checkpointer`); no commit does.
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        // The log is reused from its start once copied (see `checkpoint`); SQLite cuts
        // its file back to this when it starts over (see `WAL_BYTES_LIMIT`).
        conn.pragma_update(None, "journal_size_limit", checkpoint::WAL_BYTES_LIMIT)
    }

    /// Configure and migrate the store, and mark interrupted the runs whose store is
    /// gone (every run, for a store in memory: nothing else can have one open).
    fn setup(mut conn: Connection, path: Option<&Path>) -> Result<Self> {
        Self::configure(&conn)?;
        // rusqlite keeps 16 prepared statements by default; a registration uses about as
        // many, runs and the API more, and every statement evicted is parsed and planned
        // again on its next use.
        conn.set_prepared_statement_cache_capacity(128);
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        // Every transaction of this connection writes, and most read first: the next
        // write number, whether a customer exists, the last row ids the journal numbers
        // its rows from. Each takes the write lock at its start, so that what it read
        // holds until it writes. One that took the lock only at its first write would,
        // if another connection held it just then (the checkpointer starting the log
        // over, a second process), fail at once with "database is locked": SQLite does
        // not wait for the lock on behalf of a transaction that has read, since what it
        // read may be stale.
        conn.set_transaction_behavior(TransactionBehavior::Immediate);
        let tx = conn.transaction()?;
        migrations::migrate(&tx)?;
        let owners: Vec<Option<String>> = tx
            .prepare("SELECT DISTINCT owner FROM runs WHERE status = 'running'")?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        for owner in owners {
            if path.is_some_and(|p| Owner::alive(p, owner.as_deref())) {
                continue;
            }
            tx.execute(
                "UPDATE runs SET status = 'interrupted' WHERE status = 'running' AND owner IS ?1",
                [owner],
            )?;
        }
        tx.commit()?;
        Ok(SqliteStore {
            conn: Mutex::new(conn),
            reader: None,
            stop: None,
            writer_uses: Default::default(),
            owner: None,
            path: None,
        })
    }

    /// A read-only connection of its own to the store's file, if it has one.
    pub(crate) fn own_reader(&self) -> Result<Option<Connection>> {
        self.path.as_deref().map(Self::reader_at).transpose()
    }

    /// The read-only connection beside the writer's (see `SqliteStore::reader`).
    fn reader_at(path: &Path) -> Result<Connection> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "query_only", true)?;
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        conn.set_prepared_statement_cache_capacity(64);
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        Ok(conn)
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // SQLite keeps its own consistency; a panic while holding the lock cannot leave
        // the connection half-used outside a transaction that SQLite rolls back.
        let conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        self.writer_uses
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        conn
    }

    /// The connection for a read that must not wait for a writer: it sees what was
    /// committed when it starts. The reads of a registration stay on the writer's
    /// connection, whose page cache holds what they and the write that follows touch:
    /// every commit empties the reader's cache, and reading there made a registration
    /// a fifth slower.
    fn reader(&self) -> MutexGuard<'_, Connection> {
        match &self.reader {
            Some(reader) => reader.lock().unwrap_or_else(PoisonError::into_inner),
            None => self.conn(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cohort_store::Role;
    use cohort_store::conformance::{CAUSE, add};
    use cohort_store::prelude::*;

    /// A run holds the writer's connection for its whole transaction (seconds, at a
    /// million customers): meanwhile, every read must still be answered, from what was
    /// committed before it.
    #[test]
    fn reads_are_answered_while_a_writer_holds_its_connection() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(dir.path().join("cohort.db")).expect("open");
        store.apply(&[add("c1", "g")], &CAUSE, 10).expect("apply");
        store
            .create_token("ops", Role::Admin, None, "digest", 10, None)
            .expect("token");

        let writer = store.conn();
        writer
            .execute_batch("BEGIN IMMEDIATE; DELETE FROM memberships;")
            .expect("an open write, not yet committed");
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::scope(|scope| {
            scope.spawn(|| {
                let memberships = store.group_memberships("g").map(|m| m.len());
                let token = store.token_by_hash("digest").map(|t| t.map(|t| t.name));
                let history = store.history(None, None, None, 10).map(|h| h.len());
                let _ = done.send((memberships, token, history));
            });
            let answered = finished.recv_timeout(std::time::Duration::from_secs(10));
            writer.execute_batch("ROLLBACK").expect("rollback");
            // Let a read stuck behind the writer finish, so that the test fails, not hangs.
            drop(writer);
            let (memberships, token, history) = answered.expect("the reads did not wait");
            assert_eq!(memberships.expect("memberships"), 1, "the committed state");
            assert_eq!(token.expect("token").as_deref(), Some("ops"));
            assert_eq!(history.expect("history"), 1);
        });
    }
}
