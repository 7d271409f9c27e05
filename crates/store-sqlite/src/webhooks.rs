//! Webhooks: where events go, how far delivery has come, what was tried.

use cohort_model::Timestamp;
use cohort_store::{
    Conditional, DELIVERIES_KEPT, DeliveryAttempt, Webhook, WebhookChange, Webhooks,
};
use rusqlite::{Connection, OptionalExtension, params};

use crate::{Result, SqliteStore, corrupt, sql};

const WEBHOOK_COLUMNS: &str = "id, url, secret, created_at, position, attempts, last_error,
    last_delivered_at, events, paused, previous_secret, previous_secret_until, generation";

fn webhook_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(Webhook, Option<String>)> {
    Ok((
        Webhook {
            id: r.get(0)?,
            url: r.get(1)?,
            secret: r.get(2)?,
            created_at: r.get(3)?,
            position: r.get(4)?,
            attempts: r.get(5)?,
            last_error: r.get(6)?,
            last_delivered_at: r.get(7)?,
            events: None,
            paused: r.get(9)?,
            previous_secret: r.get(10)?,
            previous_secret_until: r.get(11)?,
            generation: r.get(12)?,
        },
        r.get(8)?,
    ))
}

/// A webhook from a row of [`webhook_row`], its kinds of event parsed.
fn with_events((mut hook, events): (Webhook, Option<String>)) -> Result<Webhook> {
    hook.events = events
        .map(|json| serde_json::from_str(&json))
        .transpose()
        .map_err(|e| corrupt("webhook", &hook.id.to_string(), e))?;
    Ok(hook)
}

fn events_json(events: Option<&[String]>) -> Result<Option<String>> {
    events
        .map(serde_json::to_string)
        .transpose()
        .map_err(|e| corrupt("webhook", "new", e))
}

fn webhook_in(conn: &Connection, id: i64) -> Result<Option<Webhook>> {
    conn.prepare_cached(&format!(
        "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE id = ?1"
    ))?
    .query_row([id], webhook_row)
    .optional()?
    .map(with_events)
    .transpose()
}

impl Webhooks for SqliteStore {
    fn add_webhook(
        &self,
        url: &str,
        secret: &str,
        events: Option<&[String]>,
        at: Timestamp,
    ) -> cohort_store::Result<Webhook> {
        sql(|| {
            let conn = self.conn();
            conn.execute(
                "INSERT INTO webhooks (url, secret, created_at, position, events)
             VALUES (?1, ?2, ?3, (SELECT coalesce(max(id), 0) FROM outbox), ?4)",
                params![url, secret, at, events_json(events)?],
            )?;
            let id = conn.last_insert_rowid();
            webhook_in(&conn, id)?.ok_or_else(|| corrupt("webhook", &id.to_string(), "gone"))
        })
    }

    fn webhooks(&self) -> cohort_store::Result<Vec<Webhook>> {
        sql(|| {
            let conn = self.reader();
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {WEBHOOK_COLUMNS} FROM webhooks ORDER BY id"
            ))?;
            let rows = stmt.query_map([], webhook_row)?;
            rows.map(|r| with_events(r?)).collect()
        })
    }

    fn webhook(&self, id: i64) -> cohort_store::Result<Option<Webhook>> {
        sql(|| webhook_in(&self.reader(), id))
    }

    fn change_webhook(
        &self,
        id: i64,
        change: &WebhookChange<'_>,
        precondition: &dyn Fn(&Webhook) -> bool,
    ) -> cohort_store::Result<Conditional<Webhook>> {
        sql(|| {
            let mut conn = self.conn();
            // The write lock is held from here (see `SqliteStore::setup`).
            let tx = conn.transaction()?;
            let Some(stored) = webhook_in(&tx, id)? else {
                return Ok(Conditional::Missing);
            };
            if !precondition(&stored) {
                return Ok(Conditional::Refused);
            }
            match *change {
                WebhookChange::Settings {
                    url,
                    events,
                    paused,
                } => tx.execute(
                    "UPDATE webhooks SET url = ?2, events = ?3, paused = ?4 WHERE id = ?1",
                    params![id, url, events_json(events)?, paused],
                )?,
                WebhookChange::Rotate {
                    secret,
                    previous_until,
                } => tx.execute(
                    "UPDATE webhooks SET previous_secret = secret, secret = ?2,
                        previous_secret_until = ?3 WHERE id = ?1",
                    params![id, secret, previous_until],
                )?,
                WebhookChange::Rewind { after } => tx.execute(
                    "UPDATE webhooks SET position = ?2, attempts = 0, last_error = NULL
                     WHERE id = ?1",
                    params![id, after],
                )?,
            };
            tx.execute(
                "UPDATE webhooks SET generation = generation + 1 WHERE id = ?1",
                [id],
            )?;
            let written = webhook_in(&tx, id)?;
            tx.commit()?;
            Ok(written.map_or(Conditional::Missing, Conditional::Written))
        })
    }

    fn remove_webhook(&self, id: i64) -> cohort_store::Result<bool> {
        sql(|| {
            let mut conn = self.conn();
            let tx = conn.transaction()?;
            tx.execute("DELETE FROM webhook_deliveries WHERE webhook = ?1", [id])?;
            let removed = tx.execute("DELETE FROM webhooks WHERE id = ?1", [id])? > 0;
            tx.commit()?;
            Ok(removed)
        })
    }

    fn webhook_delivered(
        &self,
        id: i64,
        generation: i64,
        position: i64,
        at: Timestamp,
    ) -> cohort_store::Result<()> {
        sql(|| {
            self.conn().execute(
                "UPDATE webhooks SET position = max(position, ?3), attempts = 0, last_error = NULL,
                last_delivered_at = ?4 WHERE id = ?1 AND generation = ?2",
                params![id, generation, position, at],
            )?;
            Ok(())
        })
    }

    fn webhook_failed(&self, id: i64, generation: i64, error: &str) -> cohort_store::Result<()> {
        sql(|| {
            self.conn().execute(
                "UPDATE webhooks SET attempts = attempts + 1, last_error = ?3
                 WHERE id = ?1 AND generation = ?2",
                params![id, generation, error],
            )?;
            Ok(())
        })
    }

    fn log_delivery(&self, a: &DeliveryAttempt) -> cohort_store::Result<()> {
        sql(|| {
            let mut conn = self.conn();
            let tx = conn.transaction()?;
            tx.prepare_cached(
                "INSERT INTO webhook_deliveries
                    (webhook, at, after, last, events, ping, status, latency_ms, error)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?
            .execute(params![
                a.webhook,
                a.at,
                a.after,
                a.last,
                a.events,
                a.ping,
                a.status,
                a.latency_ms as i64,
                a.error
            ])?;
            // The log keeps the latest attempts only.
            tx.prepare_cached(
                "DELETE FROM webhook_deliveries WHERE webhook = ?1 AND id <= (
                    SELECT id FROM webhook_deliveries WHERE webhook = ?1
                    ORDER BY id DESC LIMIT 1 OFFSET ?2)",
            )?
            .execute(params![a.webhook, DELIVERIES_KEPT])?;
            tx.commit()?;
            Ok(())
        })
    }

    fn deliveries(
        &self,
        webhook: i64,
        before: Option<i64>,
        limit: usize,
    ) -> cohort_store::Result<Vec<DeliveryAttempt>> {
        sql(|| {
            let conn = self.reader();
            let mut stmt = conn.prepare_cached(
                "SELECT id, webhook, at, after, last, events, ping, status, latency_ms, error
                 FROM webhook_deliveries WHERE webhook = ?1 AND id < ?2
                 ORDER BY id DESC LIMIT ?3",
            )?;
            let rows = stmt.query_map(
                params![webhook, before.unwrap_or(i64::MAX), limit as i64],
                |r| {
                    Ok(DeliveryAttempt {
                        id: r.get(0)?,
                        webhook: r.get(1)?,
                        at: r.get(2)?,
                        after: r.get(3)?,
                        last: r.get(4)?,
                        events: r.get(5)?,
                        ping: r.get(6)?,
                        status: r.get(7)?,
                        latency_ms: r.get::<_, i64>(8)?.max(0) as u64,
                        error: r.get(9)?,
                    })
                },
            )?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    fn lease_webhook(
        &self,
        id: i64,
        holder: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> cohort_store::Result<Option<i64>> {
        sql(|| {
            Ok(self
                .conn()
                .prepare_cached(
                    "UPDATE webhooks SET lease_holder = ?2, lease_until = ?4
                     WHERE id = ?1
                       AND (lease_holder IS NULL OR lease_holder = ?2 OR lease_until <= ?3)
                     RETURNING position",
                )?
                .query_row(params![id, holder, now, until], |r| r.get(0))
                .optional()?)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_webhook_id_is_never_handed_out_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("cohort.db");
        let store = SqliteStore::open(&path).expect("open");
        let first = store.add_webhook("http://a", "s1", None, 1).expect("hook");
        assert!(store.remove_webhook(first.id).expect("removed"));
        let second = store.add_webhook("http://b", "s2", None, 2).expect("hook");
        assert_ne!(second.id, first.id);
        drop(store);
        let store = SqliteStore::open(&path).expect("reopen");
        assert!(store.remove_webhook(second.id).expect("removed"));
        let third = store.add_webhook("http://c", "s3", None, 3).expect("hook");
        assert!(third.id > second.id, "not even after a restart");
    }
}
