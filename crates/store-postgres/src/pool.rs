//! Connections to the database, reused: opening one costs a round trip for each step
//! of PostgreSQL's start-up and authentication, and a server's requests each need one.

use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::sync::{Condvar, Mutex, PoisonError};

use cohort_store::StoreError;
use postgres::{Client, Config, NoTls, Statement, Transaction};

use crate::{Result, tls};
use tokio_postgres_rustls::MakeRustlsConnect;

/// At most this many connections at once: each is a server process on the database's
/// machine, and PostgreSQL's default is 100 in all, for every server and worker.
const MOST: usize = 16;

pub(crate) struct Pool {
    config: Config,
    /// None: plain TCP (`sslmode=disable`).
    tls: Option<MakeRustlsConnect>,
    state: Mutex<State>,
    freed: Condvar,
}

/// A connection's prepared statements, by their text: a statement run by its text is
/// parsed by the server on every call, a round trip of its own before the one that
/// runs it.
type Cache = HashMap<&'static str, Statement>;

struct State {
    idle: Vec<(Client, Cache)>,
    /// Connections handed out or idle.
    open: usize,
}

impl Pool {
    pub(crate) fn new(url: &str) -> cohort_store::Result<Pool> {
        let refused = |problem: String| StoreError::Open {
            path: redact(url),
            problem,
        };
        let (driver_url, security) = tls::split(url).map_err(refused)?;
        let config: Config = driver_url
            .parse()
            .map_err(|e: postgres::Error| refused(format!("not a PostgreSQL URL: {e}")))?;
        let tls = tls::connector(&security).map_err(refused)?;
        Ok(Pool {
            config,
            tls,
            state: Mutex::new(State {
                idle: Vec::new(),
                open: 0,
            }),
            freed: Condvar::new(),
        })
    }

    /// A connection, idle or new; waits while `MOST` are in use.
    pub(crate) fn get(&self) -> Result<Conn<'_>> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some((client, cache)) = state.idle.pop() {
                if client.is_closed() {
                    state.open -= 1;
                    continue;
                }
                return Ok(Conn {
                    pool: self,
                    client: Some(client),
                    cache,
                });
            }
            if state.open < MOST {
                state.open += 1;
                drop(state);
                return match self.connect() {
                    Ok(client) => Ok(Conn {
                        pool: self,
                        client: Some(client),
                        cache: Cache::new(),
                    }),
                    Err(e) => {
                        self.release(None);
                        Err(e)
                    }
                };
            }
            state = self
                .freed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// A connection of its own, outside the pool: one held for the store's life.
    pub(crate) fn connect(&self) -> Result<Client> {
        Ok(match &self.tls {
            Some(tls) => self.config.connect(tls.clone())?,
            None => self.config.connect(NoTls)?,
        })
    }

    fn release(&self, kept: Option<(Client, Cache)>) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match kept.filter(|(c, _)| !c.is_closed()) {
            Some(kept) => state.idle.push(kept),
            None => state.open -= 1,
        }
        drop(state);
        self.freed.notify_one();
    }

    /// The database as a URL without its password.
    pub(crate) fn describe(&self) -> String {
        describe(&self.config)
    }
}

pub(crate) fn describe_url(url: &str) -> String {
    tls::split(url)
        .ok()
        .and_then(|(url, _)| url.parse::<Config>().ok())
        .map_or_else(|| redact(url), |config| describe(&config))
}

fn describe(config: &Config) -> String {
    let host = config
        .get_hosts()
        .first()
        .map(|h| match h {
            postgres::config::Host::Tcp(name) => name.clone(),
            postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".into());
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or_default();
    let db = config.get_dbname().unwrap_or(user);
    let user = if user.is_empty() {
        String::new()
    } else {
        format!("{user}@")
    };
    format!("postgres://{user}{host}:{port}/{db}")
}

/// A URL that does not parse, shown without what may be its password.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            let user = credentials.split(':').next().unwrap_or_default();
            format!("{}{user}@{}", &url[..scheme + 3], &url[at + 1..])
        }
        _ if url.contains("password") => "(a PostgreSQL connection string)".into(),
        _ => url.to_string(),
    }
}

/// A connection taken from the pool, given back when dropped (unless it broke).
pub(crate) struct Conn<'p> {
    pool: &'p Pool,
    client: Option<Client>,
    cache: Cache,
}

impl Conn<'_> {
    /// The statement `sql`, prepared on this connection the first time only.
    pub(crate) fn prepared(&mut self, sql: &'static str) -> Result<Statement> {
        let client = self.client.as_mut().expect("a connection until dropped");
        cached(&mut self.cache, sql, |sql| client.prepare(sql))
    }

    /// Begin a transaction that prepares each statement once per connection.
    pub(crate) fn begin(&mut self) -> Result<Tx<'_>> {
        let client = self.client.as_mut().expect("a connection until dropped");
        Ok(Tx {
            tx: client.transaction()?,
            cache: &mut self.cache,
        })
    }
}

/// `sql` from `cache`, or prepared by `prepare` and kept there.
fn cached(
    cache: &mut Cache,
    sql: &'static str,
    prepare: impl FnOnce(&str) -> std::result::Result<Statement, postgres::Error>,
) -> Result<Statement> {
    if let Some(statement) = cache.get(sql) {
        return Ok(statement.clone());
    }
    let statement = prepare(sql)?;
    cache.insert(sql, statement.clone());
    Ok(statement)
}

/// A transaction with its connection's prepared statements.
pub(crate) struct Tx<'c> {
    tx: Transaction<'c>,
    cache: &'c mut Cache,
}

impl<'c> Tx<'c> {
    /// The statement `sql`, prepared on this connection the first time only.
    pub(crate) fn prepared(&mut self, sql: &'static str) -> Result<Statement> {
        let tx = &mut self.tx;
        cached(self.cache, sql, |sql| tx.prepare(sql))
    }

    pub(crate) fn commit(self) -> Result<()> {
        Ok(self.tx.commit()?)
    }
}

impl<'c> Deref for Tx<'c> {
    type Target = Transaction<'c>;

    fn deref(&self) -> &Transaction<'c> {
        &self.tx
    }
}

impl DerefMut for Tx<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.tx
    }
}

impl Deref for Conn<'_> {
    type Target = Client;

    fn deref(&self) -> &Client {
        self.client.as_ref().expect("a connection until dropped")
    }
}

impl DerefMut for Conn<'_> {
    fn deref_mut(&mut self) -> &mut Client {
        self.client.as_mut().expect("a connection until dropped")
    }
}

impl Drop for Conn<'_> {
    fn drop(&mut self) {
        let cache = std::mem::take(&mut self.cache);
        self.pool.release(self.client.take().map(|c| (c, cache)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_is_described_without_its_password() {
        let pool = Pool::new("postgres://cohort:s3cret@db.example:6432/billing").expect("url");
        assert_eq!(pool.describe(), "postgres://cohort@db.example:6432/billing");
        let pool = Pool::new("host=db.example user=cohort password=s3cret").expect("url");
        assert_eq!(pool.describe(), "postgres://cohort@db.example:5432/cohort");
        assert_eq!(
            redact("postgres://cohort:s3cret@db.example:x/billing"),
            "postgres://cohort@db.example:x/billing"
        );
        let Err(StoreError::Open { path, .. }) = Pool::new("postgres://u:s3cret@h:notaport/d")
        else {
            panic!("a bad port is refused");
        };
        assert!(!path.contains("s3cret"), "{path}");
    }
}
