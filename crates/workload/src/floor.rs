//! The store's floor: the rows a scan wrote, written again by SQLite alone.
//!
//! A full scan's time is bounded below by what it writes: a membership for every
//! change, an audit row for every stretch of additions and for every other change, an
//! event row for every run's changes, with their indexes. Replaying exactly those rows
//! into a fresh store of the same schema, with `INSERT … SELECT` from memory and one
//! transaction per group as the scan commits them, measures that bound on the machine
//! at hand: no evaluation, no planning, no binding of values, nothing of Cohort's own.

use std::path::Path;

use anyhow::ensure;
use cohort_store_sqlite::SqliteStore;

/// Columns copied, in the order of both stores' tables.
const MEMBERSHIP_COLUMNS: &str = "id, customer, grp, source, actor, reason, start, end, announced";
const AUDIT_COLUMNS: &str =
    "id, at, customer, grp, action, source, actor, trigger, run, reason, membership, count";

/// The scan's rows in memory, ready to be written into a new store.
pub struct Replay {
    /// Kept open so that its checkpointer runs while the rows are written, as it does
    /// during a scan.
    _store: SqliteStore,
    conn: rusqlite::Connection,
    /// Per group, in the order the scan committed them: its memberships' first and
    /// last id, and its audit entries' (which number its events).
    groups: Vec<([i64; 2], [i64; 2])>,
}

impl Replay {
    /// Open a new store at `floor` as Cohort opens one (schema, pragmas, checkpointer)
    /// and copy the memberships and audit entries of the store at `scan` into memory.
    pub fn prepare(scan: &Path, floor: &Path) -> anyhow::Result<Self> {
        let store = SqliteStore::open(floor)?;
        let conn = rusqlite::Connection::open(floor)?;
        // Written as the store writes: without these, this connection would, for one,
        // copy the log back into the file itself at every thousand pages.
        SqliteStore::configure(&conn)?;
        conn.execute("ATTACH ?1 AS scan", [scan.to_string_lossy()])?;
        conn.execute_batch(&format!(
            "CREATE TEMP TABLE m (id INTEGER PRIMARY KEY, customer, grp, source, actor,
                                  reason, start, end, announced);
             INSERT INTO temp.m SELECT {MEMBERSHIP_COLUMNS} FROM scan.memberships;
             CREATE TEMP TABLE a (id INTEGER PRIMARY KEY, at, customer, grp, action, source,
                                  actor, trigger, run, reason, membership, count);
             INSERT INTO temp.a SELECT {AUDIT_COLUMNS} FROM scan.audit;
             CREATE TEMP TABLE o (id INTEGER PRIMARY KEY, audit, count);
             INSERT INTO temp.o SELECT id, audit, count FROM scan.outbox;
             CREATE INDEX temp.o_by_audit ON o (audit);
             DETACH scan;"
        ))?;
        // Each group's rows went in with one transaction, so their ids are contiguous.
        // Additions' entries name their group through their membership, and one row
        // numbers `count` of them, up to its id.
        let ranges = |table: &str, rows: &str| -> anyhow::Result<Vec<(String, [i64; 2])>> {
            let mut stmt = conn.prepare(&format!(
                "SELECT grp, min(lo), max(hi), sum(n) FROM ({rows}) GROUP BY grp ORDER BY 2"
            ))?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    [r.get(1)?, r.get(2)?],
                    r.get::<_, i64>(3)?,
                ))
            })?;
            let mut ranges = Vec::new();
            for row in rows {
                let (grp, [lo, hi], n) = row?;
                ensure!(
                    hi - lo + 1 == n,
                    "{table} of group {grp}: ids not contiguous"
                );
                ranges.push((grp, [lo, hi]));
            }
            Ok(ranges)
        };
        let (memberships, audit) = (
            ranges(
                "memberships",
                "SELECT grp, id AS lo, id AS hi, 1 AS n FROM temp.m",
            )?,
            ranges(
                "audit",
                "SELECT coalesce(a.grp, m.grp) AS grp, a.id - coalesce(a.count, 1) + 1 AS lo,
                        a.id AS hi, coalesce(a.count, 1) AS n
                 FROM temp.a a LEFT JOIN temp.m m ON m.id = a.membership",
            )?,
        );
        ensure!(
            memberships
                .iter()
                .map(|r| &r.0)
                .eq(audit.iter().map(|r| &r.0)),
            "the groups of the memberships and of the audit entries differ"
        );
        Ok(Replay {
            _store: store,
            groups: memberships
                .into_iter()
                .zip(audit)
                .map(|((_, m), (_, a))| (m, a))
                .collect(),
            conn,
        })
    }

    /// Write the rows and their events, one transaction per group; returns the
    /// memberships written.
    pub fn write(&mut self) -> anyhow::Result<u64> {
        let mut written = 0;
        // `OR FAIL` as the store's journal says it: no statement journal (see there).
        for ([m_lo, m_hi], [a_lo, a_hi]) in &self.groups {
            let tx = self
                .conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            written += tx.execute(
                &format!(
                    "INSERT OR FAIL INTO main.memberships ({MEMBERSHIP_COLUMNS})
                     SELECT {MEMBERSHIP_COLUMNS} FROM temp.m WHERE id BETWEEN ?1 AND ?2"
                ),
                [m_lo, m_hi],
            )? as u64;
            tx.execute(
                &format!(
                    "INSERT OR FAIL INTO main.audit ({AUDIT_COLUMNS})
                     SELECT {AUDIT_COLUMNS} FROM temp.a WHERE id BETWEEN ?1 AND ?2"
                ),
                [a_lo, a_hi],
            )?;
            tx.execute(
                "INSERT OR FAIL INTO main.outbox (id, audit, count)
                 SELECT id, audit, count FROM temp.o WHERE audit BETWEEN ?1 AND ?2",
                [a_lo, a_hi],
            )?;
            tx.commit()?;
        }
        Ok(written)
    }
}
