//! Which store started a running run, and whether it is still there.
//!
//! A run is `interrupted` only when the store that started it is gone. Each store takes
//! a random number that its runs carry, and holds a session-level advisory lock on it
//! over a connection of its own for its whole life; PostgreSQL lets go of the lock when
//! that session ends, however the process ended. A store opening tries the lock of each
//! running run's owner: if it can take it, the owner is gone. The number is random, not
//! from a sequence, because advisory locks are the whole database's: stores in other
//! schemas of it (another deployment, or the tests) would number theirs from 1 too.

use std::sync::Mutex;

use postgres::Client;

use crate::Result;
use crate::pool::Pool;

pub(crate) struct Owner {
    pub(crate) id: i64,
    /// The session holding the lock; kept, never used again.
    _session: Mutex<Client>,
}

impl Owner {
    pub(crate) fn claim(pool: &Pool) -> Result<Owner> {
        let mut session = pool.connect()?;
        // 62 random bits from the server: one store in 2^31 shares a number with another
        // only among 2^31 stores.
        let id: i64 = session
            .query_one(
                "SELECT (floor(random() * 4611686018427387904))::bigint",
                &[],
            )?
            .get(0);
        session.execute("SELECT pg_advisory_lock($1)", &[&id])?;
        Ok(Owner {
            id,
            _session: Mutex::new(session),
        })
    }

    /// Mark `interrupted` the running runs whose store is gone.
    pub(crate) fn interrupt_the_runs_of_stores_gone(&self, pool: &Pool) -> Result<()> {
        let mut conn = pool.get()?;
        let owners: Vec<Option<i64>> = conn
            .query(
                // A scan's runs belong to no process: any worker may finish them.
                "SELECT DISTINCT owner FROM runs WHERE status = 'running'
                 AND owner IS DISTINCT FROM $1 AND id NOT IN (SELECT run FROM scan_runs)",
                &[&self.id],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect();
        for owner in owners {
            let gone = match owner {
                None => true,
                Some(owner) => {
                    let taken: bool = conn
                        .query_one("SELECT pg_try_advisory_lock($1)", &[&owner])?
                        .get(0);
                    if taken {
                        conn.execute("SELECT pg_advisory_unlock($1)", &[&owner])?;
                    }
                    taken
                }
            };
            if gone {
                conn.execute(
                    "UPDATE runs SET status = 'interrupted'
                     WHERE status = 'running' AND owner IS NOT DISTINCT FROM $1
                       AND id NOT IN (SELECT run FROM scan_runs)",
                    &[&owner],
                )?;
            }
        }
        Ok(())
    }
}
