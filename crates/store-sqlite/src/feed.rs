//! The audit history and the change feed, read back from the rows the journal folds
//! (see migrations 12 and 13), and the clock's announcements.

use cohort_model::{Source, Timestamp};
use cohort_store::plan::{Action, CLOCK_ACTOR, clock_reason};
use cohort_store::{
    AuditEntry, EVENT_SCHEMA, Feed, HistoryQuery, MembershipSnapshot, OutboxEvent, Trigger,
};
use rusqlite::{Connection, params};

use crate::memberships::CUSTOMER_MEMBERSHIPS;
use crate::{Result, SqliteStore, corrupt, named, sql};

const AUDIT_COLUMNS: &str = "id, at, customer, grp, action, source, actor, trigger, run, reason";

/// After [`CUSTOMER_MEMBERSHIPS`], `entries`: the audit entries of customer `?1`, whole
/// ([`AUDIT_COLUMNS`]): each membership's addition, read from the row of additions
/// that holds it (see migration 12: the first such row up to a membership at or past
/// it) and the membership; those told in full about a membership; those about a pin,
/// which belong to no membership.
pub(crate) const CUSTOMER_ENTRIES: &str = concat!(
    "entries AS (
        SELECT a.id - (a.membership - mine.id) AS id, a.at, mine.customer, mine.grp,
               a.action, mine.source, coalesce(mine.actor, ",
    rule_actor!("mine.grp"),
    ") AS actor,
               a.trigger, a.run, coalesce(mine.reason, ",
    rule_matches!(),
    ") AS reason
        FROM mine JOIN audit a ON a.id = (
            SELECT id FROM audit WHERE count IS NOT NULL AND membership >= mine.id
            ORDER BY membership LIMIT 1)
        WHERE a.membership - a.count < mine.id
        UNION ALL
        SELECT a.id, a.at, a.customer, a.grp, a.action, a.source, a.actor, a.trigger, a.run,
               a.reason
        FROM mine JOIN audit a ON a.membership = mine.id AND a.count IS NULL
        UNION ALL
        SELECT id, at, customer, grp, action, source, actor, trigger, run, reason
        FROM audit WHERE membership IS NULL AND customer = ?1
    )"
);

/// The log's entries numbered below `before`, newest first, that `query` admits, at
/// most `limit`: rows told in full as they are, a row of additions (see migration 12)
/// unfolded from its memberships. No index serves a group's entries (see migration 9):
/// this walks the log until it has enough.
fn log_newest_first(
    conn: &Connection,
    query: &HistoryQuery,
    before: i64,
    limit: usize,
) -> Result<Vec<AuditEntry>> {
    // One group is asked of the memberships' index; the other filters are applied here.
    let group = match query.groups.as_deref() {
        Some([one]) => Some(one.as_str()),
        _ => None,
    };
    let mut out = Vec::new();
    if limit == 0 {
        return Ok(out);
    }
    // From the row holding entry `before - 1`, which may number entries past it.
    let mut rows = conn.prepare_cached(
        "SELECT id, at, customer, grp, action, source, actor, trigger, run, reason,
                membership, count
         FROM audit
         WHERE id <= coalesce((SELECT min(id) FROM audit WHERE id >= ?1 - 1), ?1 - 1)
         ORDER BY id DESC",
    )?;
    let mut added = conn.prepare_cached(concat!(
        "SELECT id, customer, grp, source, coalesce(actor, ",
        rule_actor!("grp"),
        "),
                coalesce(reason, ",
        rule_matches!(),
        ")
         FROM memberships WHERE id BETWEEN ?1 AND ?2 AND (?3 IS NULL OR grp = ?3)
         ORDER BY id DESC"
    ))?;
    let source = |s: Option<String>| s.and_then(|s| Source::parse(&s));
    let mut rows = rows.query([before])?;
    while let Some(r) = rows.next()? {
        let (id, at, action, trigger, run): (i64, Timestamp, String, Trigger, Option<i64>) = (
            r.get(0)?,
            r.get(1)?,
            r.get(4)?,
            named(r, 7, Trigger::parse)?,
            r.get(8)?,
        );
        let Some(count) = r.get::<_, Option<i64>>(11)? else {
            let grp: Option<String> = r.get(3)?;
            let actor: String = r.get(6)?;
            if id < before && query.admits(grp.as_deref(), &actor, at) {
                out.push(AuditEntry {
                    id,
                    at,
                    customer: r.get(2)?,
                    group: grp,
                    action,
                    source: source(r.get(5)?),
                    actor,
                    trigger,
                    run,
                    reason: r.get(9)?,
                });
            }
            if out.len() == limit {
                return Ok(out);
            }
            continue;
        };
        // Entry `id - k` is that of membership `last - k`; those from `before` on are
        // not asked for.
        let last: i64 = r.get(10)?;
        let skip = (id - before + 1).max(0);
        let memberships = added.query_map(params![last - count + 1, last - skip, group], |m| {
            let membership: i64 = m.get(0)?;
            Ok(AuditEntry {
                id: id - (last - membership),
                at,
                customer: m.get(1)?,
                group: m.get(2)?,
                action: action.clone(),
                source: source(m.get(3)?),
                actor: m.get(4)?,
                trigger,
                run,
                reason: m.get(5)?,
            })
        })?;
        for entry in memberships {
            let entry = entry?;
            if !query.admits(entry.group.as_deref(), &entry.actor, entry.at) {
                continue;
            }
            out.push(entry);
            if out.len() == limit {
                return Ok(out);
            }
        }
    }
    Ok(out)
}

/// Up to `?2` rows of the outbox holding events after event `?1`, each with the number
/// of events it holds and the audit entry of its last (see migration 13); the clock's
/// have none.
pub(crate) const EVENT_ROWS: &str = "SELECT id, coalesce(count, 1), audit FROM outbox
    WHERE id > ?1 ORDER BY id LIMIT ?2";

/// The event of outbox row `?1` whose audit entry is `?2` (none for the clock's), with
/// the audit row that holds the entry and, for a row of additions (see migration 12),
/// the entry's membership. What the outbox row says itself comes first: rows written
/// before version 8 repeat their entry.
pub(crate) const EVENT: &str = concat!(
    "
    SELECT coalesce(o.at, a.at), coalesce(o.kind, 'membership.' || a.action),
           coalesce(o.customer, a.customer, m.customer), coalesce(o.grp, a.grp, m.grp),
           coalesce(o.membership, m.id, a.membership), o.payload,
           a.trigger, coalesce(a.actor, m.actor, ",
    rule_actor!("m.grp"),
    "),
           coalesce(a.reason, m.reason, CASE WHEN m.id IS NOT NULL THEN ",
    rule_matches!(),
    " END),
           s.source, s.start, s.end
    FROM outbox o
    LEFT JOIN audit a ON a.id = (SELECT min(id) FROM audit WHERE id >= ?2)
    LEFT JOIN memberships m ON a.count IS NOT NULL AND m.id = a.membership - (a.id - ?2)
    LEFT JOIN memberships s ON s.id = coalesce(o.membership, m.id, a.membership)
    WHERE o.id = ?1"
);

/// Event `id`, from a row of [`EVENT`].
fn event_row(id: i64, r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<OutboxEvent>> {
    // Written before events referred to their audit entry.
    if let Some(payload) = r.get::<_, Option<String>>(5)? {
        return Ok(serde_json::from_str(&payload)
            .map(|event| OutboxEvent { id, ..event })
            .map_err(|e| corrupt("event", &id.to_string(), e)));
    }
    let kind: String = r.get(1)?;
    // The clock's events have no audit entry, so no trigger of their own.
    let (trigger, actor, reason) = if r.get_ref(6)? == rusqlite::types::ValueRef::Null {
        (
            Trigger::Clock,
            CLOCK_ACTOR.to_string(),
            clock_reason(&kind).to_string(),
        )
    } else {
        (named(r, 6, Trigger::parse)?, r.get(7)?, r.get(8)?)
    };
    let at = r.get(0)?;
    // An erasure is of no membership.
    let snapshot = if r.get_ref(9)? == rusqlite::types::ValueRef::Null {
        None
    } else {
        Some(MembershipSnapshot::new(
            named(r, 9, Source::parse)?,
            r.get(10)?,
            r.get(11)?,
            at,
        ))
    };
    Ok(Ok(OutboxEvent {
        id,
        event: kind,
        at,
        customer: r.get(2)?,
        group: r.get(3)?,
        membership: r.get(4)?,
        snapshot,
        schema: EVENT_SCHEMA,
        trigger,
        actor,
        reason,
    }))
}

impl Feed for SqliteStore {
    fn history_where(
        &self,
        query: &HistoryQuery,
        before: Option<i64>,
        limit: usize,
    ) -> cohort_store::Result<Vec<AuditEntry>> {
        sql(|| {
            let before = before.unwrap_or(i64::MAX);
            let conn = self.reader();
            let Some(customer) = &query.customer else {
                return log_newest_first(&conn, query, before, limit);
            };
            // A customer's entries are those of their memberships and their pins (see
            // migration 7): few enough to filter here.
            let mut stmt = conn.prepare_cached(&format!(
                "{CUSTOMER_MEMBERSHIPS}, {CUSTOMER_ENTRIES} SELECT {AUDIT_COLUMNS} FROM entries
             WHERE id < ?2 ORDER BY id DESC"
            ))?;
            let rows = stmt.query_map(params![customer, before], |r| {
                Ok(AuditEntry {
                    id: r.get(0)?,
                    at: r.get(1)?,
                    customer: r.get(2)?,
                    group: r.get(3)?,
                    action: r.get(4)?,
                    source: r
                        .get::<_, Option<String>>(5)?
                        .and_then(|s| Source::parse(&s)),
                    actor: r.get(6)?,
                    trigger: named(r, 7, Trigger::parse)?,
                    run: r.get(8)?,
                    reason: r.get(9)?,
                })
            })?;
            let mut out = Vec::new();
            for entry in rows {
                let entry = entry?;
                if query.admits(entry.group.as_deref(), &entry.actor, entry.at) {
                    out.push(entry);
                    if out.len() == limit {
                        break;
                    }
                }
            }
            Ok(out)
        })
    }

    fn outbox_len(&self) -> cohort_store::Result<u64> {
        sql(|| {
            // Events are kept after delivery (they are the change feed); what waits is what
            // lies beyond the slowest webhook's position.
            let n: i64 = self.reader().query_row(
                "SELECT coalesce(sum(min(coalesce(count, 1), id - w.position)), 0)
             FROM outbox, (SELECT min(position) AS position FROM webhooks) w
             WHERE id > w.position",
                [],
                |r| r.get(0),
            )?;
            Ok(n as u64)
        })
    }

    fn events_after(&self, after: i64, limit: usize) -> cohort_store::Result<Vec<OutboxEvent>> {
        sql(|| {
            let conn = self.reader();
            let mut rows = conn.prepare_cached(EVENT_ROWS)?;
            let mut event = conn.prepare_cached(EVENT)?;
            let mut out = Vec::new();
            // The rows and the events read from them are of one read transaction: the first
            // statement stays open until the last event is read.
            let mut held = rows.query(params![after, limit as i64])?;
            while let Some(r) = held.next()? {
                let (row, count, last_entry): (i64, i64, Option<i64>) =
                    (r.get(0)?, r.get(1)?, r.get(2)?);
                for id in (row - count + 1).max(after + 1)..=row {
                    let entry = last_entry.map(|last| last - (row - id));
                    out.push(event.query_row(params![row, entry], |r| event_row(id, r))??);
                    if out.len() == limit {
                        return Ok(out);
                    }
                }
            }
            Ok(out)
        })
    }

    fn announce(&self, now: Timestamp) -> cohort_store::Result<u64> {
        sql(|| {
            let mut conn = self.conn();
            let tx = conn.transaction()?;
            let mut events = Vec::new();
            {
                let mut opened = tx.prepare_cached(
                    "SELECT id, customer, grp, start, end FROM memberships
                 WHERE announced = 'pending' AND start <= ?1",
                )?;
                let rows = opened.query_map([now], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, Option<i64>>(4)?,
                    ))
                })?;
                for row in rows {
                    let (id, customer, group, start, end) = row?;
                    events.push((
                        id,
                        customer.clone(),
                        group.clone(),
                        Action::Activated,
                        start,
                    ));
                    if let Some(end) = end.filter(|&e| e <= now) {
                        events.push((id, customer, group, Action::Expired, end));
                    }
                }
                let mut closed = tx.prepare_cached(
                    "SELECT id, customer, grp, end FROM memberships
                 WHERE announced = 'active' AND end IS NOT NULL AND end <= ?1",
                )?;
                let rows = closed.query_map([now], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, Action::Expired, r.get(3)?))
                })?;
                for row in rows {
                    events.push(row?);
                }
            }
            // In time order, so that a customer's events follow one another as they happened.
            events.sort_by_key(|e| (e.4, e.0, e.3));
            {
                let mut mark =
                    tx.prepare_cached("UPDATE memberships SET announced = ?2 WHERE id = ?1")?;
                let mut publish = tx.prepare_cached(
                    "INSERT INTO outbox (at, kind, customer, grp, membership)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                )?;
                for (id, customer, group, kind, at) in &events {
                    publish.execute(params![at, kind.event(), customer, group, id])?;
                    let state = if *kind == Action::Activated {
                        "active"
                    } else {
                        "expired"
                    };
                    mark.execute(params![id, state])?;
                }
            }
            tx.commit()?;
            Ok(events.len() as u64)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cohort_planner::Change;
    use cohort_store::conformance::{CAUSE, add, window};
    use cohort_store::prelude::*;

    /// Additions written together are one audit row (migration 12); every reader
    /// unfolds it into the entries it stands for, one per membership.
    #[test]
    fn a_stretch_of_additions_reads_entry_by_entry() {
        let store = SqliteStore::in_memory().expect("store");
        store.apply(&[add("c0", "a")], &CAUSE, 5).expect("apply");
        let batch: Vec<Change> = [("c1", "a"), ("c2", "b"), ("c3", "a"), ("c4", "a")]
            .iter()
            .map(|(c, g)| add(c, g))
            .collect();
        store.apply(&batch, &CAUSE, 10).expect("apply");
        let rows: i64 = store
            .conn()
            .query_row("SELECT count(*) FROM audit", [], |r| r.get(0))
            .expect("count");
        assert_eq!(rows, 2, "one row per apply");
        let page = |group: Option<&str>, before: Option<i64>, limit| -> Vec<(i64, String)> {
            store
                .history(None, group, before, limit)
                .expect("history")
                .into_iter()
                .map(|e| {
                    (
                        e.id,
                        format!("{}:{}@{}", e.customer, e.group.unwrap_or_default(), e.at),
                    )
                })
                .collect()
        };
        let entry = |id, what: &str| (id, what.to_string());
        assert_eq!(
            page(None, None, 10),
            [
                entry(5, "c4:a@10"),
                entry(4, "c3:a@10"),
                entry(3, "c2:b@10"),
                entry(2, "c1:a@10"),
                entry(1, "c0:a@5"),
            ]
        );
        // Pages start inside the row and end inside it.
        assert_eq!(
            page(Some("a"), Some(5), 2),
            [entry(4, "c3:a@10"), entry(2, "c1:a@10")]
        );
        assert_eq!(page(Some("a"), Some(2), 2), [entry(1, "c0:a@5")]);
        assert_eq!(page(Some("b"), None, 10), [entry(3, "c2:b@10")]);
        let c3 = store.history(Some("c3"), None, None, 10).expect("history");
        assert_eq!(
            c3.iter()
                .map(|e| (e.id, e.action.as_str(), e.actor.as_str(), e.run))
                .collect::<Vec<_>>(),
            [(4, "added", "rule:g", Some(1))]
        );
        let events: Vec<(i64, String)> = store
            .events_after(1, 10)
            .expect("events")
            .into_iter()
            .map(|e| {
                (
                    e.id,
                    format!(
                        "{}:{}@{} {}",
                        e.customer,
                        e.group.unwrap_or_default(),
                        e.at,
                        e.membership.unwrap_or_default()
                    ),
                )
            })
            .collect();
        assert_eq!(
            events,
            [
                (2, "c1:a@10 2".to_string()),
                (3, "c2:b@10 3".to_string()),
                (4, "c3:a@10 4".to_string()),
                (5, "c4:a@10 5".to_string()),
            ]
        );
        let outbox: i64 = store
            .conn()
            .query_row("SELECT count(*) FROM outbox", [], |r| r.get(0))
            .expect("count");
        assert_eq!(outbox, 2, "one row of events per apply");
        // A page of the feed that starts and ends inside a row of events, then one that
        // goes on past it to events of the clock.
        let page = |after, limit| -> Vec<(i64, String)> {
            store
                .events_after(after, limit)
                .expect("events")
                .into_iter()
                .map(|e| (e.id, format!("{} {}", e.event, e.customer)))
                .collect()
        };
        let event = |id, what: &str| (id, what.to_string());
        assert_eq!(
            page(2, 2),
            [
                event(3, "membership.added c2"),
                event(4, "membership.added c3")
            ]
        );
        store
            .apply(&[window("c9", 20, None)], &CAUSE, 10)
            .expect("apply");
        store.announce(20).expect("announce");
        assert_eq!(
            page(4, 10),
            [
                event(5, "membership.added c4"),
                event(6, "membership.added c9"),
                // c0 was added at 5 to start at 10.
                event(7, "membership.activated c0"),
                event(8, "membership.activated c9"),
            ]
        );
    }

    #[test]
    fn events_written_with_a_json_payload_before_version_6_read_as_they_were() {
        let store = SqliteStore::in_memory().expect("store");
        store.apply(&[add("c1", "g")], &CAUSE, 10).expect("apply");
        let old = OutboxEvent {
            id: 0,
            event: "membership.removed".into(),
            at: 5,
            customer: "c0".into(),
            group: Some("g".into()),
            membership: Some(9),
            snapshot: None,
            schema: EVENT_SCHEMA,
            trigger: Trigger::Manual,
            actor: "ops".into(),
            reason: "by hand".into(),
        };
        store
            .conn()
            .execute(
                "INSERT INTO outbox (at, kind, customer, grp, membership, payload)
                 VALUES (5, 'membership.removed', 'c0', 'g', 9, ?1)",
                [serde_json::to_string(&old).expect("json")],
            )
            .expect("an old row");
        let events = store.events_after(0, 10).expect("events");
        assert_eq!(events.len(), 2);
        assert_eq!((events[0].actor.as_str(), events[0].id), ("rule:g", 1));
        assert_eq!(events[1], OutboxEvent { id: 2, ..old });
    }
}
