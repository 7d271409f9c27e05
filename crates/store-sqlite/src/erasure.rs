//! Erasing a customer: their facts go, their memberships end, the history keeps who
//! did what and when, without what was said about them.

use cohort_model::Timestamp;
use cohort_store::plan::{Action, ERASED_REASON, erasure_ends};
use cohort_store::{Cause, Erasure};
use rusqlite::{OptionalExtension, params};

use crate::memberships::{CUSTOMER_MEMBERSHIPS, apply_all, customer_memberships_of};
use crate::{Result, SqliteStore};

/// The `stamps` row counting erasures (see `Customers::erasures_stamp`).
const ERASURES: &str = "erasures";

impl SqliteStore {
    pub(crate) fn erase(
        &self,
        id: &str,
        cause: &Cause<'_>,
        reason: &str,
        at: Timestamp,
    ) -> Result<Option<Erasure>> {
        let mut conn = self.conn();
        // The write lock is held from here (see `SqliteStore::setup`): nothing adds a
        // membership between the read below and the ends written.
        let tx = conn.transaction()?;
        // The next write of customers may now take a number a cache has seen (numbers
        // follow the largest kept): caches load afresh when the erasures stamp moves.
        let facts = tx.execute("DELETE FROM customers WHERE id = ?1", [id])? > 0;
        let pins = tx.execute("DELETE FROM exclusions WHERE customer = ?1", [id])? as u64;
        let memberships = customer_memberships_of(&tx, id)?;
        let ends = erasure_ends(&memberships, at, reason);
        if !facts && pins == 0 && ends.is_empty() {
            return Ok(None);
        }
        // What was said of the customer before goes; the ends below say why they end.
        // A rule's own words are stored as nothing (migration 13) and stay so.
        tx.execute(
            &format!(
                "{CUSTOMER_MEMBERSHIPS}
                 UPDATE memberships SET reason = ?2
                 WHERE id IN (SELECT id FROM mine) AND reason IS NOT NULL"
            ),
            params![id, ERASED_REASON],
        )?;
        tx.execute(
            &format!(
                "{CUSTOMER_MEMBERSHIPS}
                 UPDATE audit SET reason = ?2
                 WHERE count IS NULL AND reason IS NOT NULL AND action <> 'erased'
                   AND (membership IN (SELECT id FROM mine)
                        OR (membership IS NULL AND customer = ?1))"
            ),
            params![id, ERASED_REASON],
        )?;
        let ended = apply_all(&tx, &[(&ends, cause.clone())], at)?
            .first()
            .map_or(0, |a| a.removed);
        tx.execute(
            "INSERT INTO audit (at, customer, grp, action, source, actor, trigger, run, reason)
             VALUES (?1, ?2, NULL, ?3, NULL, ?4, ?5, ?6, ?7)",
            params![
                at,
                id,
                Action::Erased.as_str(),
                cause.actor,
                cause.trigger.as_str(),
                cause.run,
                reason
            ],
        )?;
        let entry = tx.last_insert_rowid();
        // The event names its kind: the feed names the others after their entry's
        // action as a membership's.
        tx.execute(
            "INSERT INTO outbox (id, audit, count, kind)
             VALUES ((SELECT coalesce(max(id), 0) FROM outbox) + 1, ?1, 1, ?2)",
            params![entry, Action::Erased.event()],
        )?;
        tx.execute(
            "INSERT INTO stamps (name, n) VALUES (?1, 1)
             ON CONFLICT (name) DO UPDATE SET n = n + 1",
            [ERASURES],
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
            .reader()
            .prepare_cached("SELECT n FROM stamps WHERE name = ?1")?
            .query_row([ERASURES], |r| r.get(0))
            .optional()?
            .unwrap_or(0))
    }
}
