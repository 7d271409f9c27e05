//! Writing membership changes with their audit entries and change-feed events.
//!
//! A full scan writes millions of changes, three rows each. One `INSERT` per row cost
//! as much as the row itself (binding, running the statement's program, resetting it),
//! so the journal gathers rows and writes each table `CHUNK` rows per statement, with
//! the values every row of a batch shares (time, actor, trigger, run) bound once per
//! statement. That needs the row ids before the rows are written (an audit entry names
//! its membership), so the journal numbers them itself, after the largest ids at the
//! time it opened: the caller's transaction must hold the write lock from its start
//! (`BEGIN IMMEDIATE`), and nothing else may insert into those tables within it. An
//! event only points at its audit entry, so the events of a flush are one
//! `INSERT … SELECT` over the entries it wrote.

use std::borrow::Cow;

use cohort_model::{Source, Timestamp};
use rusqlite::Transaction;
use rusqlite::types::{ToSqlOutput, Value, ValueRef};

use crate::{Cause, Result};

/// Rows per multi-row `INSERT`: past a few dozen, longer statements gain nothing.
const CHUNK: usize = 32;

/// Queued events past which `spill` writes.
const SPILL: usize = 64 * CHUNK;

/// What happened to a membership, as the audit history and the change feed name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Action {
    Added,
    Removed,
    Updated,
    /// Announced by the clock: a pending window opened.
    Activated,
    /// Announced by the clock: a window closed.
    Expired,
}

impl Action {
    /// The audit history's name.
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Action::Added => "added",
            Action::Removed => "removed",
            Action::Updated => "updated",
            Action::Activated => "activated",
            Action::Expired => "expired",
        }
    }

    /// The change feed's name: `membership.` and the audit history's name, which is how
    /// the feed names an event that points at its audit entry.
    pub(super) fn event(self) -> &'static str {
        match self {
            Action::Added => "membership.added",
            Action::Removed => "membership.removed",
            Action::Updated => "membership.updated",
            Action::Activated => "membership.activated",
            Action::Expired => "membership.expired",
        }
    }
}

/// A membership change as the audit history and the change feed see it.
pub(super) struct Event<'a> {
    /// `Added`, `Removed` or `Updated`.
    pub kind: Action,
    pub customer: Cow<'a, str>,
    pub group: Cow<'a, str>,
    pub membership: i64,
    pub source: Option<Source>,
    pub reason: Cow<'a, str>,
}

/// A membership to insert.
pub(super) struct NewMembership<'a> {
    pub customer: Cow<'a, str>,
    pub group: Cow<'a, str>,
    pub source: Source,
    pub reason: Cow<'a, str>,
    pub start: Timestamp,
    pub end: Option<Timestamp>,
    /// The state announced with it (see `announced`).
    pub announced: &'static str,
}

/// Rows waiting to be written, with the ids they will have.
pub(super) struct Journal<'a> {
    at: Timestamp,
    cause: &'a Cause<'a>,
    next_membership: i64,
    next_audit: i64,
    memberships: Vec<(i64, NewMembership<'a>)>,
    /// With its audit id; the event's id follows the audit id's order.
    events: Vec<(i64, Event<'a>)>,
}

/// The columns bound once per statement come first (see `insert`).
const MEMBERSHIP_INSERT: &str = "INSERT INTO memberships
    (actor, id, customer, grp, source, reason, start, end, announced) VALUES";
const AUDIT_INSERT: &str = "INSERT INTO audit
    (at, actor, trigger, run, id, customer, grp, action, source, reason, membership) VALUES";
/// Events in the order of their entries, which is the order of the changes.
const OUTBOX_INSERT: &str =
    "INSERT INTO outbox (audit) SELECT id FROM audit WHERE id BETWEEN ?1 AND ?2 ORDER BY id";

impl<'a> Journal<'a> {
    /// A journal for changes at `at` for `cause`, numbering rows after those `tx` holds.
    pub fn open(tx: &Transaction<'_>, at: Timestamp, cause: &'a Cause<'a>) -> Result<Self> {
        let max = |table: &str| -> Result<i64> {
            Ok(tx
                .prepare_cached(&format!("SELECT coalesce(max(id), 0) FROM {table}"))?
                .query_row([], |r| r.get(0))?)
        };
        Ok(Journal {
            at,
            cause,
            next_membership: max("memberships")? + 1,
            next_audit: max("audit")? + 1,
            memberships: Vec::new(),
            events: Vec::new(),
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
        let audit = self.next_audit;
        self.next_audit += 1;
        self.events.push((audit, e));
    }

    /// Write what is queued once it is enough to keep the memory small (an import
    /// queues copies of its rows).
    pub fn spill(&mut self, tx: &Transaction<'_>) -> Result<()> {
        if self.events.len() >= SPILL {
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

    /// Write what is queued. Must come before a statement that reads or updates a
    /// queued membership.
    pub fn flush(&mut self, tx: &Transaction<'_>) -> Result<()> {
        let cause = self.cause;
        insert(
            tx,
            MEMBERSHIP_INSERT,
            [text(cause.actor)],
            &self.memberships,
            |(id, m)| {
                [
                    int(*id),
                    text(&m.customer),
                    text(&m.group),
                    text(m.source.as_str()),
                    text(&m.reason),
                    int(m.start),
                    m.end.map_or(NULL, int),
                    text(m.announced),
                ]
            },
        )?;
        self.memberships.clear();
        let (Some((first, _)), Some((last, _))) = (self.events.first(), self.events.last()) else {
            return Ok(());
        };
        let audited = [*first, *last];
        insert(
            tx,
            AUDIT_INSERT,
            [
                int(self.at),
                text(cause.actor),
                text(cause.trigger),
                cause.run.map_or(NULL, int),
            ],
            &self.events,
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
        tx.prepare_cached(OUTBOX_INSERT)?.execute(audited)?;
        self.events.clear();
        Ok(())
    }
}

const NULL: ToSqlOutput<'static> = ToSqlOutput::Owned(Value::Null);

fn int(i: i64) -> ToSqlOutput<'static> {
    ToSqlOutput::Owned(Value::Integer(i))
}

fn text(s: &str) -> ToSqlOutput<'_> {
    ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes()))
}

/// Insert `rows` with `CHUNK` rows per statement, the rest one by one. `head` names the
/// `C` columns every row shares first (bound once, as `?1`…), then the row's `N`.
fn insert<'r, T, const C: usize, const N: usize>(
    tx: &Transaction<'_>,
    head: &str,
    shared: [ToSqlOutput<'r>; C],
    rows: &'r [T],
    values: impl Fn(&'r T) -> [ToSqlOutput<'r>; N],
) -> Result<()> {
    let statement = |n: usize| {
        let rows: Vec<String> = (0..n)
            .map(|r| {
                let own = (0..N).map(|i| format!("?{}", C + r * N + i + 1));
                let all: Vec<String> = (1..=C).map(|i| format!("?{i}")).chain(own).collect();
                format!("({})", all.join(", "))
            })
            .collect();
        format!("{head} {}", rows.join(", "))
    };
    let run = |n: usize, rows: &mut dyn Iterator<Item = &'r [T]>| -> Result<()> {
        let mut stmt = tx.prepare_cached(&statement(n))?;
        for (at, value) in shared.iter().enumerate() {
            stmt.raw_bind_parameter(at + 1, value)?;
        }
        for rows in rows {
            for (at, value) in rows.iter().flat_map(&values).enumerate() {
                stmt.raw_bind_parameter(C + at + 1, value)?;
            }
            stmt.raw_execute()?;
        }
        Ok(())
    };
    let mut chunks = rows.chunks_exact(CHUNK);
    if chunks.len() > 0 {
        run(CHUNK, &mut chunks)?;
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        run(1, &mut rest.chunks(1))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Action;

    #[test]
    fn the_feed_names_an_action_after_its_audit_name() {
        for action in [
            Action::Added,
            Action::Removed,
            Action::Updated,
            Action::Activated,
            Action::Expired,
        ] {
            assert_eq!(action.event(), format!("membership.{}", action.as_str()));
        }
    }
}
