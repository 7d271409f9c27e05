//! Memberships and pins, and the writing of a batch of changes with its audit entries
//! and events (through the journal).

use cohort_model::{Held, Membership, Source, State, Timestamp};
use cohort_planner::Change;
use cohort_store::plan::{Action, Event, NewMembership, announced};
use cohort_store::{Applied, Cause, Ending, Listing, Memberships, PlanRead, Trigger};
use rusqlite::{Connection, OptionalExtension, params};

use crate::journal::Journal;
use crate::{Result, SqliteStore, corrupt, named, sql};

fn membership_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<(Membership, String)> {
    let source: String = row.get(3)?;
    Ok((
        Membership {
            id: row.get(0)?,
            customer: row.get(1)?,
            group: row.get(2)?,
            source: Source::Manual,
            actor: row.get(4)?,
            reason: row.get(5)?,
            start: row.get(6)?,
            end: row.get(7)?,
        },
        source,
    ))
}

/// An ending from a row of (membership, at, actor, trigger, reason).
fn ending(r: &rusqlite::Row<'_>) -> rusqlite::Result<Ending> {
    Ok(Ending {
        membership: r.get(0)?,
        at: r.get(1)?,
        actor: r.get(2)?,
        trigger: named(r, 3, Trigger::parse)?,
        reason: r.get(4)?,
    })
}

fn memberships(conn: &Connection, sql: &str, key: &str) -> Result<Vec<Membership>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map([key], membership_row)?;
    with_sources(rows)
}

/// Memberships from rows of [`membership_row`], their stored sources checked.
fn with_sources(
    rows: impl Iterator<Item = rusqlite::Result<(Membership, String)>>,
) -> Result<Vec<Membership>> {
    let mut out = Vec::new();
    for row in rows {
        let (mut m, source) = row?;
        m.source = Source::parse(&source).ok_or_else(|| {
            corrupt(
                "membership",
                &m.id.to_string(),
                format!("source `{source}`"),
            )
        })?;
        out.push(m);
    }
    Ok(out)
}

/// A membership as told: its actor and reason, when left out, are its group's rule and
/// the rule's words (see migration 13; every reader of the two columns says so).
const MEMBERSHIP_COLUMNS: &str = concat!(
    "id, customer, grp, source,
    coalesce(actor, ",
    rule_actor!("grp"),
    ") AS actor, coalesce(reason, ",
    rule_matches!(),
    ") AS reason,
    start, end"
);

/// A `WITH` clause defining `mine`, the memberships of customer `?1`, found by seeking
/// each group in `memberships_by_group` (the store keeps no index led by the customer:
/// see migration 7). `groups` cannot list the groups, as memberships outlive a deleted
/// group; the index itself can, one seek per group.
pub(crate) const CUSTOMER_MEMBERSHIPS: &str = "WITH RECURSIVE
    grps(grp) AS (
        SELECT min(grp) FROM memberships
        UNION ALL
        SELECT (SELECT min(grp) FROM memberships WHERE grp > grps.grp) FROM grps
        WHERE grps.grp IS NOT NULL
    ),
    mine AS (
        SELECT m.* FROM grps JOIN memberships m ON m.grp = grps.grp AND m.customer = ?1
    )";

/// A customer's (`?1`) memberships in the groups of the JSON array `?2`, after
/// `SELECT {MEMBERSHIP_COLUMNS}`: a seek per group, where [`CUSTOMER_MEMBERSHIPS`]
/// first seeks out every group that has members (72 against 45 µs per read, measured
/// on a reference store of 300,000 customers).
const GROUPS_MEMBERSHIPS: &str = "FROM memberships
    WHERE grp IN (SELECT value FROM json_each(?2)) AND customer = ?1
    ORDER BY grp, id";

/// Write one batch of changes with their audit entries and events in the caller's
/// transaction.
/// Apply each batch of changes for its cause, in one journal (see `Journal::switch`).
pub(crate) fn apply_all(
    tx: &rusqlite::Transaction<'_>,
    batches: &[(&[Change], Cause<'_>)],
    at: Timestamp,
) -> Result<Vec<Applied>> {
    let Some((_, first)) = batches.first() else {
        return Ok(Vec::new());
    };
    let mut journal = Journal::open(tx, at, first)?;
    let mut applied = Vec::with_capacity(batches.len());
    for (changes, cause) in batches {
        journal.switch(tx, cause)?;
        applied.push(apply_in(tx, &mut journal, changes, at)?);
    }
    journal.finish(tx)?;
    Ok(applied)
}

fn apply_in<'a>(
    tx: &rusqlite::Transaction<'_>,
    journal: &mut Journal<'a>,
    changes: &'a [Change],
    at: Timestamp,
) -> Result<Applied> {
    let mut applied = Applied::default();
    // The `removed` event announces the end; the clock must not announce it again.
    let mut end = tx.prepare_cached(
        "UPDATE memberships SET end = ?2,
                announced = CASE WHEN ?2 <= ?3 THEN 'expired' ELSE announced END
             WHERE id = ?1 AND (end IS NULL OR end > ?2)",
    )?;
    for change in changes {
        let event = match change {
            Change::Add {
                customer,
                group,
                source,
                reason,
                start,
                end,
            } => {
                applied.added += 1;
                let membership = journal.added(NewMembership {
                    customer: (**customer).into(),
                    group: (**group).into(),
                    source: *source,
                    reason: reason.as_ref().into(),
                    start: *start,
                    end: *end,
                    announced: announced(*start, *end, at),
                });
                applied.ids.push(membership);
                journal.spill(tx)?;
                continue;
            }
            Change::End {
                membership,
                customer,
                group,
                at: end_at,
                reason,
            } => {
                journal.write_through(tx, *membership)?;
                if end.execute(params![membership, end_at, at])? == 0 {
                    // Already ended (a concurrent manual removal): nothing to record.
                    continue;
                }
                applied.removed += 1;
                Event {
                    kind: Action::Removed,
                    customer: (**customer).into(),
                    group: (**group).into(),
                    membership: *membership,
                    source: None,
                    reason: reason.as_ref().into(),
                }
            }
        };
        journal.record(event);
        journal.spill(tx)?;
    }
    let mut groups: Vec<&str> = changes
        .iter()
        .map(|c| match c {
            Change::Add { group, .. } | Change::End { group, .. } => &**group,
        })
        .collect();
    groups.sort_unstable();
    groups.dedup();
    applied.stamps = bump_membership_stamps(tx, &groups)?;
    Ok(applied)
}

/// The `stamps` row counting a group's membership writes.
const MEMBERSHIP_STAMP: &str = "'memberships:' || ?1";

/// Count a write to the memberships of each of `groups`; returns their stamps after.
/// Every statement that changes a membership's group, source or window comes with this
/// in its transaction, so that a reader's copy of a group is stale exactly when the
/// stamp has moved.
pub(crate) fn bump_membership_stamps(
    tx: &rusqlite::Transaction<'_>,
    groups: &[&str],
) -> Result<Vec<(String, i64)>> {
    let mut bump = tx.prepare_cached(&format!(
        "INSERT INTO stamps (name, n) VALUES ({MEMBERSHIP_STAMP}, 1)
         ON CONFLICT (name) DO UPDATE SET n = n + 1 RETURNING n"
    ))?;
    groups
        .iter()
        .map(|g| Ok((g.to_string(), bump.query_row([g], |r| r.get(0))?)))
        .collect()
}

/// Every membership of the customer (a transaction's connection reads in it).
pub(crate) fn customer_memberships_of(
    conn: &Connection,
    customer: &str,
) -> Result<Vec<Membership>> {
    memberships(
        conn,
        &format!("{CUSTOMER_MEMBERSHIPS} SELECT {MEMBERSHIP_COLUMNS} FROM mine ORDER BY grp, id"),
        customer,
    )
}

impl Memberships for SqliteStore {
    fn group_memberships(&self, group: &str) -> cohort_store::Result<Vec<Membership>> {
        sql(|| {
            memberships(
                &self.reader(),
                &format!(
                    "SELECT {MEMBERSHIP_COLUMNS} FROM memberships WHERE grp = ?1 ORDER BY customer, id"
                ),
                group,
            )
        })
    }

    fn group_holdings(
        &self,
        group: &str,
        each: &mut dyn FnMut(&str, Held),
    ) -> cohort_store::Result<()> {
        sql(|| {
            let conn = self.reader();
            // In the order of `memberships_by_group`, so that nothing is sorted.
            let mut stmt = conn.prepare_cached(
                "SELECT customer, id, source, start, end FROM memberships
             WHERE grp = ?1 ORDER BY grp, customer, start",
            )?;
            let mut rows = stmt.query([group])?;
            while let Some(r) = rows.next()? {
                let id: i64 = r.get(1)?;
                let text = |i: usize| {
                    r.get_ref(i)?
                        .as_str()
                        .map_err(|e| corrupt("membership", &id.to_string(), e))
                };
                let source = text(2)?;
                let source = Source::parse(source).ok_or_else(|| {
                    corrupt("membership", &id.to_string(), format!("source `{source}`"))
                })?;
                each(
                    text(0)?,
                    Held {
                        id,
                        source,
                        start: r.get(3)?,
                        end: r.get(4)?,
                    },
                );
            }
            Ok(())
        })
    }

    fn membership_stamp(&self, group: &str) -> cohort_store::Result<i64> {
        sql(|| {
            Ok(self
                .reader()
                .prepare_cached(&format!(
                    "SELECT n FROM stamps WHERE name = {MEMBERSHIP_STAMP}"
                ))?
                .query_row([group], |r| r.get(0))
                .optional()?
                .unwrap_or(0))
        })
    }

    fn customer_memberships(&self, customer: &str) -> cohort_store::Result<Vec<Membership>> {
        sql(|| customer_memberships_of(&self.reader(), customer))
    }

    fn customer_memberships_in(
        &self,
        customer: &str,
        groups: &[&str],
    ) -> cohort_store::Result<Vec<Membership>> {
        sql(|| {
            let groups = serde_json::Value::from(groups).to_string();
            let conn = self.conn();
            let mut stmt =
                conn.prepare_cached(&format!("SELECT {MEMBERSHIP_COLUMNS} {GROUPS_MEMBERSHIPS}"))?;
            with_sources(stmt.query_map(params![customer, groups], membership_row)?)
        })
    }

    fn endings_in(&self, group: &str, first: i64, last: i64) -> cohort_store::Result<Vec<Ending>> {
        sql(|| {
            let conn = self.reader();
            // A removal is told in full (`count IS NULL`), so `audit_by_membership`
            // finds it from each of the group's memberships.
            let mut stmt = conn.prepare_cached(
                "SELECT m.id, a.at, a.actor, a.trigger, a.reason FROM memberships m
                 JOIN audit a ON a.membership = m.id AND a.count IS NULL
                 WHERE m.grp = ?1 AND m.id BETWEEN ?2 AND ?3 AND a.action = 'removed'
                 ORDER BY m.id, a.id",
            )?;
            let rows = stmt.query_map(rusqlite::params![group, first, last], ending)?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    fn customer_endings(&self, customer: &str) -> cohort_store::Result<Vec<Ending>> {
        sql(|| {
            let conn = self.reader();
            let mut stmt = conn.prepare_cached(&format!(
                "{CUSTOMER_MEMBERSHIPS}
                 SELECT m.id, a.at, a.actor, a.trigger, a.reason FROM mine m
                 JOIN audit a ON a.membership = m.id AND a.count IS NULL
                 WHERE a.action = 'removed' ORDER BY m.id, a.id"
            ))?;
            let rows = stmt.query_map([customer], ending)?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    fn exclusions(&self, group: &str) -> cohort_store::Result<Vec<String>> {
        sql(|| {
            let conn = self.reader();
            let mut stmt = conn.prepare_cached("SELECT customer FROM exclusions WHERE grp = ?1")?;
            let rows = stmt.query_map([group], |r| r.get(0))?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    fn excluded_from(&self, customer: &str) -> cohort_store::Result<Vec<String>> {
        sql(|| {
            let conn = self.conn();
            let mut stmt = conn.prepare_cached("SELECT grp FROM exclusions WHERE customer = ?1")?;
            let rows = stmt.query_map([customer], |r| r.get(0))?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    fn count_active(&self, group: &str, at: Timestamp) -> cohort_store::Result<u64> {
        sql(|| {
            // The same rule as `cohort_model::state`: an empty window is never active.
            let n: i64 = self.reader().query_row(
                "SELECT count(*) FROM memberships WHERE grp = ?1 AND start <= ?2
               AND (end IS NULL OR (end > ?2 AND end > start))",
                params![group, at],
                |r| r.get(0),
            )?;
            Ok(n as u64)
        })
    }

    fn set_exclusion(
        &self,
        customer: &str,
        group: &str,
        pinned: bool,
        actor: &str,
        reason: &str,
        at: Timestamp,
    ) -> cohort_store::Result<()> {
        sql(|| {
            let mut conn = self.conn();
            let tx = conn.transaction()?;
            let changed = if pinned {
                tx.execute(
                    "INSERT OR IGNORE INTO exclusions (customer, grp, actor, reason, at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![customer, group, actor, reason, at],
                )?
            } else {
                tx.execute(
                    "DELETE FROM exclusions WHERE customer = ?1 AND grp = ?2",
                    params![customer, group],
                )?
            };
            if changed > 0 {
                tx.execute(
                "INSERT INTO audit (at, customer, grp, action, source, actor, trigger, run, reason)
                 VALUES (?1, ?2, ?3, ?4, 'manual', ?5, 'manual', NULL, ?6)",
                params![
                    at,
                    customer,
                    group,
                    if pinned { "excluded" } else { "unexcluded" },
                    actor,
                    reason
                ],
            )?;
            }
            tx.commit()?;
            Ok(())
        })
    }

    fn apply_guarded(
        &self,
        changes: &[Change],
        cause: &Cause<'_>,
        at: Timestamp,
        read: &PlanRead<'_>,
    ) -> cohort_store::Result<Option<Applied>> {
        sql(|| {
            let mut conn = self.conn();
            // The transaction holds the write lock from its start: what is read again
            // here stays as read until it commits.
            let tx = conn.transaction()?;
            let groups = serde_json::Value::from(read.groups).to_string();
            let now = {
                let mut stmt = tx
                    .prepare_cached(&format!("SELECT {MEMBERSHIP_COLUMNS} {GROUPS_MEMBERSHIPS}"))?;
                with_sources(stmt.query_map(params![read.customer, groups], membership_row)?)?
            };
            if !read.still(&now) {
                return Ok(None);
            }
            let mut applied = apply_all(&tx, &[(changes, cause.clone())], at)?;
            tx.commit()?;
            Ok(Some(applied.remove(0)))
        })
    }

    fn apply_batches(
        &self,
        batches: &[(&[Change], Cause<'_>)],
        at: Timestamp,
    ) -> cohort_store::Result<Vec<Applied>> {
        sql(|| {
            let mut conn = self.conn();
            let tx = conn.transaction()?;
            let counts = apply_all(&tx, batches, at)?;
            tx.commit()?;
            Ok(counts)
        })
    }

    fn group_customers_after(
        &self,
        group: &str,
        after: &str,
        limit: usize,
    ) -> cohort_store::Result<Vec<String>> {
        sql(|| {
            let conn = self.reader();
            // Both halves walk an index led by the group in customer order.
            let mut stmt = conn.prepare_cached(
                "SELECT customer FROM (
                     SELECT DISTINCT customer FROM memberships WHERE grp = ?1 AND customer > ?2
                     UNION SELECT customer FROM exclusions WHERE grp = ?1 AND customer > ?2)
                 ORDER BY customer LIMIT ?3",
            )?;
            let rows = stmt.query_map(params![group, after, limit as i64], |r| r.get(0))?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    fn group_memberships_page(
        &self,
        group: &str,
        listing: Listing,
        at: Timestamp,
        after: i64,
        limit: usize,
    ) -> cohort_store::Result<Vec<Membership>> {
        sql(|| {
            let filter = match listing {
                Listing::All => "1",
                Listing::Only(State::Pending) => "start > ?3",
                Listing::Only(State::Active) => "start <= ?3 AND (end IS NULL OR end > ?3)",
                Listing::Only(State::Expired) => "end IS NOT NULL AND end <= ?3",
            };
            let sql = format!(
                "SELECT {MEMBERSHIP_COLUMNS} FROM memberships
             WHERE grp = ?1 AND id > ?2 AND ({filter}) ORDER BY id LIMIT ?4"
            );
            let conn = self.reader();
            let mut stmt = conn.prepare_cached(&sql)?;
            let rows = stmt.query_map(params![group, after, at, limit as i64], membership_row)?;
            with_sources(rows)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feed::{CUSTOMER_ENTRIES, EVENT, EVENT_ROWS};
    use cohort_store::conformance::{CAUSE, add};
    use cohort_store::prelude::*;

    /// The journal's inserts keep no statement journal (`OR FAIL`): a row refused in the
    /// middle of a statement leaves the rows before it, and only the transaction's
    /// rollback takes them away. A trigger refuses one customer of a run's additions.
    #[test]
    fn a_write_refused_midway_leaves_nothing_of_itself() {
        let store = SqliteStore::in_memory().expect("store");
        store
            .apply(&[add("c-first", "g")], &CAUSE, 5)
            .expect("first apply");
        let counts = || -> [i64; 3] {
            ["memberships", "audit", "outbox"].map(|table| {
                store
                    .conn()
                    .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
                    .expect("count")
            })
        };
        let before = counts();
        store
            .conn()
            .execute_batch(
                "CREATE TRIGGER refuse BEFORE INSERT ON memberships WHEN NEW.customer = 'c40'
                 BEGIN SELECT RAISE(FAIL, 'refused'); END;",
            )
            .expect("trigger");
        let adds: Vec<Change> = (0..64).map(|i| add(&format!("c{i}"), "g")).collect();
        let refused = store.apply(&adds, &CAUSE, 10);
        assert!(refused.is_err(), "{refused:?}");
        assert_eq!(counts(), before);
        assert_eq!(store.membership_stamp("g").expect("stamp"), 1);
    }

    #[test]
    fn a_customer_is_found_without_an_index_led_by_customers() {
        let store = SqliteStore::in_memory().expect("store");
        for g in ["a", "b", "c"] {
            store
                .apply(&[add("c1", g), add("c2", g)], &CAUSE, 10)
                .expect("apply");
        }
        store
            .set_exclusion("c1", "d", true, "ops", "asked", 11)
            .expect("pin");
        let mine: Vec<String> = store
            .customer_memberships("c1")
            .expect("memberships")
            .into_iter()
            .map(|m| format!("{}:{}", m.customer, m.group))
            .collect();
        assert_eq!(mine, ["c1:a", "c1:b", "c1:c"]);
        let some: Vec<String> = store
            .customer_memberships_in("c1", &["c", "a", "gone"])
            .expect("memberships")
            .into_iter()
            .map(|m| format!("{}:{}", m.customer, m.group))
            .collect();
        assert_eq!(some, ["c1:a", "c1:c"]);
        let history: Vec<(String, String)> = store
            .history(Some("c1"), None, None, 10)
            .expect("history")
            .into_iter()
            .map(|e| (e.group.unwrap_or_default(), e.action))
            .collect();
        let expected = [
            ("d", "excluded"),
            ("c", "added"),
            ("b", "added"),
            ("a", "added"),
        ];
        assert_eq!(
            history,
            expected.map(|(g, a)| (g.to_string(), a.to_string()))
        );
        let b = store.history(Some("c1"), Some("b"), None, 10).expect("h");
        assert_eq!(b.len(), 1);

        // Each lookup seeks; none reads a whole table.
        let conn = store.conn();
        for sql in [
            format!("{CUSTOMER_MEMBERSHIPS} SELECT {MEMBERSHIP_COLUMNS} FROM mine"),
            format!("{CUSTOMER_MEMBERSHIPS}, {CUSTOMER_ENTRIES} SELECT * FROM entries"),
            // The rows of the events after one, and an event's entry and membership,
            // by their ids.
            EVENT_ROWS.replace("?2", "5"),
            EVENT.replace("?2", "5"),
        ] {
            let mut stmt = conn
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .expect("plan");
            let plan: Vec<String> = stmt
                .query_map(["c1"], |r| r.get(3))
                .expect("plan")
                .collect::<rusqlite::Result<_>>()
                .expect("plan");
            for step in &plan {
                assert!(
                    ![
                        "SCAN memberships",
                        "SCAN audit",
                        "SCAN a",
                        "SCAN m",
                        "SCAN outbox",
                        "SCAN o",
                    ]
                    .iter()
                    .any(|scan| step == scan || step.starts_with(&format!("{scan} "))),
                    "{step} in {plan:?}"
                );
            }
        }
        // Given the groups, one seek per group and nothing else in memberships.
        let plan: Vec<String> = conn
            .prepare(&format!(
                "EXPLAIN QUERY PLAN SELECT {MEMBERSHIP_COLUMNS} {GROUPS_MEMBERSHIPS}"
            ))
            .expect("plan")
            .query_map(["c1", r#"["a","c"]"#], |r| r.get(3))
            .expect("plan")
            .collect::<rusqlite::Result<_>>()
            .expect("plan");
        let on_memberships: Vec<&String> =
            plan.iter().filter(|s| s.contains("memberships")).collect();
        assert_eq!(
            on_memberships,
            ["SEARCH memberships USING INDEX memberships_by_group (grp=? AND customer=?)"],
            "{plan:?}"
        );
    }
}
