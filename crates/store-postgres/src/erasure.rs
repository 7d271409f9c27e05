//! Erasing a customer: their facts go, their memberships end, the history keeps who
//! did what and when, without what was said about them.

use cohort_model::Timestamp;
use cohort_planner::RULE_MATCHES;
use cohort_store::plan::{Action, ERASED_REASON, erasure_ends};
use cohort_store::{Cause, Erasure};

use crate::journal::apply_all;
use crate::memberships::{MEMBERSHIP_COLUMNS, membership};
use crate::{PgStore, Result};

/// The `stamps` row counting erasures (see `Customers::erasures_stamp`).
const ERASURES: &str = "erasures";

impl PgStore {
    pub(crate) fn erase(
        &self,
        id: &str,
        cause: &Cause<'_>,
        reason: &str,
        at: Timestamp,
    ) -> Result<Option<Erasure>> {
        let mut conn = self.pool.get()?;
        let mut tx = conn.begin()?;
        // Deleting the row takes its lock, which writers by hand for the customer take
        // too (`apply_guarded`): they wait, then find no customer.
        let facts = tx.execute("DELETE FROM customers WHERE id = $1", &[&id])? > 0;
        let pins = tx.execute("DELETE FROM exclusions WHERE customer = $1", &[&id])?;
        let memberships = tx
            .query(
                &format!(
                    "SELECT {MEMBERSHIP_COLUMNS} FROM memberships WHERE customer = $1
                     ORDER BY grp, id FOR UPDATE"
                ),
                &[&id],
            )?
            .iter()
            .map(membership)
            .collect::<Result<Vec<_>>>()?;
        let ends = erasure_ends(&memberships, at, reason);
        if !facts && pins == 0 && ends.is_empty() {
            return Ok(None);
        }
        // What was said of the customer before goes; the ends below say why they end.
        // The feed keeps its events whole here, so they lose it too: a scan of the
        // outbox, which has no index by customer (erasures are rare, writes are not).
        let scrub = [
            "UPDATE memberships SET reason = $2 WHERE customer = $1 AND reason NOT IN ($2, $3)",
            "UPDATE audit SET reason = $2
             WHERE customer = $1 AND reason NOT IN ($2, $3) AND action <> 'erased'",
            "UPDATE outbox SET reason = $2
             WHERE customer = $1 AND reason NOT IN ($2, $3) AND kind <> 'customer.erased'",
        ];
        for statement in scrub {
            // A rule's own words say nothing of the customer.
            tx.execute(statement, &[&id, &ERASED_REASON, &RULE_MATCHES])?;
        }
        let ended = apply_all(&mut tx, &[(&ends, cause.clone())], at)?
            .first()
            .map_or(0, |a| a.removed);
        let entry: i64 = tx
            .query_one(
                "INSERT INTO audit (id, at, customer, grp, action, source, actor, trigger, run,
                                    reason, membership)
                 VALUES (nextval('audit_ids'), $1, $2, NULL, $3, NULL, $4, $5, $6, $7, NULL)
                 RETURNING id",
                &[
                    &at,
                    &id,
                    &Action::Erased.as_str(),
                    &cause.actor,
                    &cause.trigger.as_str(),
                    &cause.run,
                    &reason,
                ],
            )?
            .get(0);
        tx.execute(
            "INSERT INTO stamps (name, n) VALUES ($1, 1)
             ON CONFLICT (name) DO UPDATE SET n = stamps.n + 1",
            &[&ERASURES],
        )?;
        // Numbered last, from the feed's head, whose lock is then held to commit (see
        // `journal`).
        tx.execute(
            "WITH head AS (UPDATE feed_head SET position = position + 1 RETURNING position)
             INSERT INTO outbox (id, at, kind, customer, grp, membership, trigger, actor,
                                 reason)
             SELECT position, $1, $2, $3, NULL, NULL, $4, $5, $6 FROM head",
            &[
                &at,
                &Action::Erased.event(),
                &id,
                &cause.trigger.as_str(),
                &cause.actor,
                &reason,
            ],
        )?;
        tx.commit()?;
        Ok(Some(Erasure {
            customer: id.to_string(),
            facts,
            ended,
            pins,
            entry,
        }))
    }

    pub(crate) fn erasures(&self) -> Result<i64> {
        Ok(self
            .pool
            .get()?
            .query_opt("SELECT n FROM stamps WHERE name = $1", &[&ERASURES])?
            .map_or(0, |r| r.get(0)))
    }
}
