//! Writing membership changes with their audit entries and change-feed events.
//!
//! A full scan writes millions of changes. One `INSERT` per row cost as much as the
//! row itself (binding, running the statement's program, resetting it), so the journal
//! gathers rows and writes each table `CHUNK` rows per statement, with the values every
//! row of a batch shares (time, actor, trigger, run) bound once per statement. That
//! needs the row ids before the rows are written (an audit entry names its membership),
//! so the journal numbers them itself, after the largest
//! ids at the time it opened: the caller's transaction must hold the write lock from
//! its start (`BEGIN IMMEDIATE`), and nothing else may insert into those tables within
//! it. An event only points at its audit entry, so the events of a journal are one
//! row over the entries it numbered. One journal serves every group a
//! registration changes (`switch`), so that each group costs its rows and not also a
//! numbering and an events statement of its own.
//!
//! A run's changes are mostly alike: the same group, source, reason and window for
//! thousands of customers. Memberships alike are written with all of that bound once
//! per statement and only the id and customer per row. The entry of a membership
//! added (`Journal::added`) says nothing its membership does not but the time, trigger
//! and run, so the entries of a stretch of additions are one row (migration 12), and
//! the events of a journal are one row too (migration 13): a run that adds a million
//! memberships writes a million memberships and a few other rows, where it wrote three
//! million rows and an index entry per addition.

use cohort_model::Timestamp;
use cohort_store::Cause;
use cohort_store::plan::{Event, NewMembership, alike, stretches};
use rusqlite::types::ToSqlOutput;
use rusqlite::{Transaction, params};

use crate::Result;
use crate::bulk::{CHUNK, NULL, insert, int, text};

/// Queued events past which `spill` writes.
const SPILL: usize = 64 * CHUNK;

/// Rows waiting to be written, with the ids they will have.
pub(super) struct Journal<'a> {
    at: Timestamp,
    cause: &'a Cause<'a>,
    next_membership: i64,
    next_audit: i64,
    memberships: Vec<(i64, NewMembership<'a>)>,
    /// The first audit id of this journal: its events are those from it on, written
    /// once, by `finish`.
    first_audit: i64,
    /// Entries told in full, with their audit ids.
    told: Vec<(i64, Event<'a>)>,
    /// Entries of memberships added, as their audit id and the membership's id; the
    /// rest is the membership's.
    added: Vec<(i64, i64)>,
}

// The multi-row inserts say `OR FAIL`: on a broken constraint SQLite would otherwise
// undo the statement's own rows and go on, which needs a statement journal holding a
// copy of every page the statement changes. Nothing here goes on after an error: the
// journal's transaction is rolled back whole.

/// Memberships each told in full.
const MEMBERSHIP_INSERT: &str = "INSERT OR FAIL INTO memberships
    (id, customer, grp, source, actor, reason, start, end, announced) VALUES";
/// For a stretch of memberships alike but for their customer: the columns bound once
/// per statement come first (see `insert`).
const ALIKE_INSERT: &str = "INSERT OR FAIL INTO memberships
    (actor, grp, source, reason, start, end, announced, id, customer) VALUES";
/// Memberships alike past this many are written with `ALIKE_INSERT`.
const ALIKE: usize = CHUNK;
/// The entries of `count` memberships added, up to entry `id` and membership
/// `membership`, as one row (see migration 12).
const ADDED_INSERT: &str = "INSERT INTO audit (id, at, trigger, run, action, membership, count)
    VALUES (?1, ?2, ?3, ?4, 'added', ?5, ?6)";
const AUDIT_INSERT: &str = "INSERT OR FAIL INTO audit
    (at, actor, trigger, run, id, customer, grp, action, source, reason, membership) VALUES";
/// The events of the `?2` entries up to `?1`, in their order, which is the order of the
/// changes, as one row numbered after the last event (see migration 13).
const OUTBOX_INSERT: &str = "INSERT INTO outbox (id, audit, count)
    VALUES ((SELECT coalesce(max(id), 0) FROM outbox) + ?2, ?1, ?2)";

impl<'a> Journal<'a> {
    /// A journal for changes at `at` for `cause`, numbering rows after those `tx` holds.
    pub fn open(tx: &Transaction<'_>, at: Timestamp, cause: &'a Cause<'a>) -> Result<Self> {
        let max = |table: &str| -> Result<i64> {
            Ok(tx
                .prepare_cached(&format!("SELECT coalesce(max(id), 0) FROM {table}"))?
                .query_row([], |r| r.get(0))?)
        };
        let next_audit = max("audit")? + 1;
        Ok(Journal {
            at,
            cause,
            next_membership: max("memberships")? + 1,
            next_audit,
            first_audit: next_audit,
            memberships: Vec::new(),
            told: Vec::new(),
            added: Vec::new(),
        })
    }

    /// Queue a membership; returns the id it will have.
    pub fn add(&mut self, m: NewMembership<'a>) -> i64 {
        let id = self.next_membership;
        self.next_membership += 1;
        self.memberships.push((id, m));
        id
    }

    /// Queue a change's audit entry and event, so that neither exists without the change.
    pub fn record(&mut self, e: Event<'a>) {
        let audit = self.next_audit();
        self.told.push((audit, e));
    }

    /// Queue a membership with the entry and event of its addition, whose customer,
    /// group, source and reason are the membership's; returns the membership's id.
    pub fn added(&mut self, m: NewMembership<'a>) -> i64 {
        let id = self.add(m);
        let audit = self.next_audit();
        self.added.push((audit, id));
        id
    }

    /// Note that the caller's last statement inserted `count` memberships, numbered on
    /// from `next_membership` (SQLite numbers a new row one past the largest id), each
    /// added with an entry: the entries are one row (see migration 12). What is queued
    /// is written first, so that entries keep the order of the changes.
    pub fn inserted(&mut self, tx: &Transaction<'_>, count: i64) -> Result<()> {
        if count == 0 {
            return Ok(());
        }
        self.flush(tx)?;
        let last_membership = self.next_membership + count - 1;
        // Another numbering would point the entries at the wrong memberships.
        let last = tx.last_insert_rowid();
        if last != last_membership {
            return Err(crate::Error::Store(cohort_store::StoreError::Backend(
                format!("memberships were numbered up to {last}, not {last_membership}").into(),
            )));
        }
        let last_entry = self.next_audit + count - 1;
        tx.prepare_cached(ADDED_INSERT)?.execute(params![
            last_entry,
            self.at,
            self.cause.trigger.as_str(),
            self.cause.run,
            last_membership,
            count
        ])?;
        self.next_membership += count;
        self.next_audit += count;
        Ok(())
    }

    fn next_audit(&mut self) -> i64 {
        self.next_audit += 1;
        self.next_audit - 1
    }

    /// Write what is queued once it is enough to keep the memory small (an import
    /// queues copies of its rows).
    pub fn spill(&mut self, tx: &Transaction<'_>) -> Result<()> {
        if self.told.len() + self.added.len() >= SPILL {
            self.flush(tx)?;
        }
        Ok(())
    }

    /// Write what is queued if `membership` is among it, so that a statement about
    /// that membership finds it; otherwise keep gathering.
    pub fn write_through(&mut self, tx: &Transaction<'_>, membership: i64) -> Result<()> {
        if self
            .memberships
            .first()
            .is_some_and(|(first, _)| membership >= *first)
        {
            self.flush(tx)?;
        }
        Ok(())
    }

    /// Go on with changes for another cause (a registration's next group): what is
    /// queued is written under the cause it was queued for, the numbering goes on.
    pub fn switch(&mut self, tx: &Transaction<'_>, cause: &'a Cause<'a>) -> Result<()> {
        self.flush(tx)?;
        self.cause = cause;
        Ok(())
    }

    /// Write what is queued and the events of every change journaled.
    pub fn finish(mut self, tx: &Transaction<'_>) -> Result<()> {
        self.flush(tx)?;
        if self.next_audit > self.first_audit {
            tx.prepare_cached(OUTBOX_INSERT)?
                .execute([self.next_audit - 1, self.next_audit - self.first_audit])?;
        }
        Ok(())
    }

    /// Write what is queued. Must come before a statement that reads or updates a
    /// queued membership.
    fn flush(&mut self, tx: &Transaction<'_>) -> Result<()> {
        let cause = self.cause;
        let mut rest = &self.memberships[..];
        while !rest.is_empty() {
            let same = alike(rest);
            if same >= ALIKE {
                let (stretch, after) = rest.split_at(same);
                let first = &stretch[0].1;
                let [group, source, start, end, announced] = shared(first);
                let [actor, reason] = told(first, cause.actor);
                insert(
                    tx,
                    ALIKE_INSERT,
                    [actor, group, source, reason, start, end, announced],
                    stretch,
                    |(id, m)| [int(*id), text(&m.customer)],
                )?;
                rest = after;
                continue;
            }
            // Everything up to the next long stretch alike, CHUNK rows per statement.
            let mut mixed = same;
            while mixed < rest.len() {
                let next = alike(&rest[mixed..]);
                if next >= ALIKE {
                    break;
                }
                mixed += next;
            }
            let (mixed, after) = rest.split_at(mixed);
            insert(tx, MEMBERSHIP_INSERT, [], mixed, |(id, m)| {
                let [group, source, start, end, announced] = shared(m);
                let [actor, reason] = told(m, cause.actor);
                [
                    int(*id),
                    text(&m.customer),
                    group,
                    source,
                    actor,
                    reason,
                    start,
                    end,
                    announced,
                ]
            })?;
            rest = after;
        }
        self.memberships.clear();
        insert(
            tx,
            AUDIT_INSERT,
            [
                int(self.at),
                text(cause.actor),
                text(cause.trigger.as_str()),
                cause.run.map_or(NULL, int),
            ],
            &self.told,
            |(audit, e)| {
                [
                    int(*audit),
                    text(&e.customer),
                    text(&e.group),
                    text(e.kind.as_str()),
                    e.source.map_or(NULL, |s| text(s.as_str())),
                    text(&e.reason),
                    int(e.membership),
                ]
            },
        )?;
        // One row for each stretch whose audit ids and membership ids both run on by one.
        let mut insert = tx.prepare_cached(ADDED_INSERT)?;
        for stretch in stretches(&self.added) {
            insert.execute(params![
                stretch.last_entry,
                self.at,
                cause.trigger.as_str(),
                cause.run,
                stretch.last_membership,
                stretch.count
            ])?;
        }
        self.told.clear();
        self.added.clear();
        Ok(())
    }
}

/// Values a run's memberships usually share, in `ALIKE_INSERT`'s order: group, source,
/// start, end, announced.
fn shared<'s>(m: &'s NewMembership<'_>) -> [ToSqlOutput<'s>; 5] {
    [
        text(&m.group),
        text(m.source.as_str()),
        int(m.start),
        m.end.map_or(NULL, int),
        text(m.announced),
    ]
}

/// The membership's actor (`actor` is its cause's) and reason as stored (see
/// migration 13).
fn told<'s>(m: &'s NewMembership<'_>, actor: &'s str) -> [ToSqlOutput<'s>; 2] {
    [
        m.stored_actor(actor).map_or(NULL, text),
        m.stored_reason().map_or(NULL, text),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SqliteStore;
    use cohort_model::Source;
    use cohort_store::Trigger;

    /// The entries of a stretch of additions are one row; a membership queued without
    /// an entry between two additions ends a stretch. The journal's three events are one row.
    #[test]
    fn a_stretch_of_additions_is_one_row_and_a_membership_without_an_entry_ends_it() {
        let store = SqliteStore::in_memory().expect("store");
        let mut conn = store.conn();
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .expect("tx");
        let cause = Cause {
            trigger: Trigger::Manual,
            actor: "rule:g",
            run: None,
        };
        let membership = |customer: &'static str| NewMembership {
            customer: customer.into(),
            group: "g".into(),
            source: Source::Rule,
            reason: "r".into(),
            start: 10,
            end: None,
            announced: "active",
        };
        let mut journal = Journal::open(&tx, 10, &cause).expect("journal");
        let a = journal.added(membership("a"));
        let b = journal.added(membership("b"));
        journal.add(membership("plain"));
        let c = journal.added(membership("c"));
        journal.finish(&tx).expect("finish");
        let rows = |sql: &str| -> Vec<(i64, Option<i64>, Option<i64>)> {
            tx.prepare(sql)
                .expect("query")
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .expect("rows")
                .collect::<rusqlite::Result<_>>()
                .expect("rows")
        };
        assert_eq!(
            (b, c),
            (a + 1, a + 3),
            "the plain membership is numbered between"
        );
        assert_eq!(
            rows("SELECT id, membership, count FROM audit ORDER BY id"),
            [(2, Some(b), Some(2)), (3, Some(c), Some(1))]
        );
        assert_eq!(
            rows("SELECT id, audit, count FROM outbox ORDER BY id"),
            [(3, Some(3), Some(3))],
            "the three events are one row"
        );
    }
}
