//! The audit history and the change feed, and the clock's announcements.
//!
//! The feed never skips an event. With many writers, ids taken from a sequence commit
//! out of order: a reader polling `after=<id>` could pass an id whose transaction
//! commits a moment later and never see it. Here an event's position is taken from the
//! counter row `feed_head` at the end of its transaction, which holds the row's lock
//! until it commits (`journal::publish`): positions are handed out in commit order, and
//! when a reader sees a position, every position before it has committed. A
//! transaction that rolls back also rolls the counter back, so positions have no gaps.

use cohort_model::{Source, Timestamp};
use cohort_store::plan::{Action, CLOCK_ACTOR, clock_reason};
use cohort_store::{
    AuditEntry, EVENT_SCHEMA, Feed, HistoryQuery, MembershipSnapshot, OutboxEvent, Trigger,
};
use postgres::types::ToSql;

use crate::journal::{Event, publish};
use crate::{PgStore, count, named, sql};

impl Feed for PgStore {
    fn history_where(
        &self,
        query: &HistoryQuery,
        before: Option<i64>,
        limit: usize,
    ) -> cohort_store::Result<Vec<AuditEntry>> {
        sql(|| {
            let before = before.unwrap_or(i64::MAX);
            let limit = limit as i64;
            let mut params: Vec<&(dyn ToSql + Sync)> = vec![&before, &limit];
            let mut filter = String::new();
            // Only the filters given, so that the planner picks the index that serves them.
            let filters: [(Option<&(dyn ToSql + Sync)>, &str); 5] = [
                (query.customer.as_ref().map(|v| v as _), "customer = $"),
                (query.groups.as_ref().map(|v| v as _), "grp = ANY($)"),
                (query.actor.as_ref().map(|v| v as _), "actor = $"),
                (query.since.as_ref().map(|v| v as _), "at >= $"),
                (query.until.as_ref().map(|v| v as _), "at < $"),
            ];
            for (value, test) in filters {
                if let Some(value) = value {
                    params.push(value);
                    let n = params.len().to_string();
                    filter.push_str(&format!(" AND {}", test.replace('$', &format!("${n}"))));
                }
            }
            let rows = self.pool.get()?.query(
                &format!(
                    "SELECT id, at, customer, grp, action, source, actor, trigger, run, reason
                     FROM audit WHERE id < $1{filter} ORDER BY id DESC LIMIT $2"
                ),
                &params,
            )?;
            rows.iter()
                .map(|r| {
                    let id: i64 = r.get(0);
                    let source: Option<&str> = r.get(5);
                    Ok(AuditEntry {
                        id,
                        at: r.get(1),
                        customer: r.get(2),
                        group: r.get(3),
                        action: r.get(4),
                        source: source.and_then(Source::parse),
                        actor: r.get(6),
                        trigger: named(r.get(7), Trigger::parse, "audit entry", &id.to_string())?,
                        run: r.get(8),
                        reason: r.get(9),
                    })
                })
                .collect()
        })
    }

    fn outbox_len(&self) -> cohort_store::Result<u64> {
        sql(|| {
            // Events are kept after delivery (they are the change feed); what waits is
            // what lies beyond the slowest webhook's position.
            let n: i64 = self
                .pool
                .get()?
                .query_one(
                    "SELECT count(*) FROM outbox
                     WHERE id > (SELECT min(position) FROM webhooks)",
                    &[],
                )?
                .get(0);
            Ok(count(n))
        })
    }

    fn events_after(&self, after: i64, limit: usize) -> cohort_store::Result<Vec<OutboxEvent>> {
        sql(|| {
            let mut conn = self.pool.get()?;
            let statement = conn.prepared(
                "SELECT o.id, o.at, o.kind, o.customer, o.grp, o.membership, o.trigger, o.actor,
                        o.reason, m.source, m.starts, m.ends
                 FROM outbox o LEFT JOIN memberships m ON m.id = o.membership
                 WHERE o.id > $1 ORDER BY o.id LIMIT $2",
            )?;
            let rows = conn.query(&statement, &[&after, &(limit as i64)])?;
            rows.iter()
                .map(|r| {
                    let id: i64 = r.get(0);
                    let at = r.get(1);
                    // An erasure is of no membership.
                    let snapshot = match r.get::<_, Option<&str>>(9) {
                        Some(source) => Some(MembershipSnapshot::new(
                            named(source, Source::parse, "membership", &id.to_string())?,
                            r.get(10),
                            r.get(11),
                            at,
                        )),
                        None => None,
                    };
                    Ok(OutboxEvent {
                        id,
                        at,
                        event: r.get(2),
                        customer: r.get(3),
                        group: r.get(4),
                        membership: r.get(5),
                        snapshot,
                        schema: EVENT_SCHEMA,
                        trigger: named(r.get(6), Trigger::parse, "event", &id.to_string())?,
                        actor: r.get(7),
                        reason: r.get(8),
                    })
                })
                .collect()
        })
    }

    fn announce(&self, now: Timestamp) -> cohort_store::Result<u64> {
        sql(|| {
            let mut conn = self.pool.get()?;
            let mut tx = conn.begin()?;
            // The rows' locks make announcing once a fact, not a race: a second server
            // announcing at the same time waits for these rows, then finds them
            // announced and leaves them.
            let rows = tx.query(
                "SELECT id, customer, grp, starts, ends, announced FROM memberships
                 WHERE (announced = 'pending' AND starts <= $1)
                    OR (announced = 'active' AND ends IS NOT NULL AND ends <= $1)
                 FOR UPDATE",
                &[&now],
            )?;
            let mut events: Vec<(Timestamp, i64, Action, &str, &str)> = Vec::new();
            let mut marks: (Vec<i64>, Vec<&str>) = (Vec::new(), Vec::new());
            for r in &rows {
                let (id, customer, group): (i64, &str, &str) = (r.get(0), r.get(1), r.get(2));
                let (starts, ends): (i64, Option<i64>) = (r.get(3), r.get(4));
                let closed = ends.filter(|&e| e <= now);
                if r.get::<_, &str>(5) == "pending" {
                    events.push((starts, id, Action::Activated, customer, group));
                }
                if let Some(end) = closed {
                    events.push((end, id, Action::Expired, customer, group));
                }
                marks.0.push(id);
                marks.1.push(if closed.is_some() {
                    "expired"
                } else {
                    "active"
                });
            }
            // In time order, so that a customer's events follow one another as they
            // happened.
            events.sort_by_key(|&(at, id, kind, ..)| (at, id, kind));
            tx.execute(
                "UPDATE memberships m SET announced = u.state
                 FROM unnest($1::bigint[], $2::text[]) AS u(id, state) WHERE m.id = u.id",
                &[&marks.0, &marks.1],
            )?;
            let events: Vec<Event<'_>> = events
                .iter()
                .map(|&(at, membership, kind, customer, group)| Event {
                    at,
                    kind: kind.event(),
                    customer,
                    group,
                    membership,
                    trigger: Trigger::Clock,
                    actor: CLOCK_ACTOR,
                    reason: clock_reason(kind.event()),
                })
                .collect();
            publish(&mut tx, &events)?;
            tx.commit()?;
            Ok(events.len() as u64)
        })
    }
}
