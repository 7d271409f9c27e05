//! Webhooks: where events go, how far delivery has come, what was tried.

use cohort_model::Timestamp;
use cohort_store::{
    Conditional, DELIVERIES_KEPT, DeliveryAttempt, Webhook, WebhookChange, Webhooks,
};
use postgres::{GenericClient, Row};

use crate::{PgStore, Result, sql};

const WEBHOOK_COLUMNS: &str = "id, url, secret, created_at, position, attempts, last_error,
    last_delivered_at, events, paused, previous_secret, previous_secret_until, generation";

fn webhook(r: &Row) -> Webhook {
    Webhook {
        id: r.get(0),
        url: r.get(1),
        secret: r.get(2),
        created_at: r.get(3),
        position: r.get(4),
        attempts: u32::try_from(r.get::<_, i32>(5)).unwrap_or_default(),
        last_error: r.get(6),
        last_delivered_at: r.get(7),
        events: r.get(8),
        paused: r.get(9),
        previous_secret: r.get(10),
        previous_secret_until: r.get(11),
        generation: r.get(12),
    }
}

fn webhook_in(client: &mut impl GenericClient, id: i64, lock: bool) -> Result<Option<Webhook>> {
    let lock = if lock { " FOR UPDATE" } else { "" };
    Ok(client
        .query_opt(
            &format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE id = $1{lock}"),
            &[&id],
        )?
        .as_ref()
        .map(webhook))
}

impl Webhooks for PgStore {
    fn add_webhook(
        &self,
        url: &str,
        secret: &str,
        events: Option<&[String]>,
        at: Timestamp,
    ) -> cohort_store::Result<Webhook> {
        sql(|| {
            // It starts at the feed's head as committed: events written from now on.
            let row = self.pool.get()?.query_one(
                &format!(
                    "INSERT INTO webhooks (url, secret, created_at, position, events)
                     VALUES ($1, $2, $3, (SELECT coalesce(max(id), 0) FROM outbox), $4)
                     RETURNING {WEBHOOK_COLUMNS}"
                ),
                &[&url, &secret, &at, &events],
            )?;
            Ok(webhook(&row))
        })
    }

    fn webhooks(&self) -> cohort_store::Result<Vec<Webhook>> {
        sql(|| {
            let rows = self.pool.get()?.query(
                &format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks ORDER BY id"),
                &[],
            )?;
            Ok(rows.iter().map(webhook).collect())
        })
    }

    fn webhook(&self, id: i64) -> cohort_store::Result<Option<Webhook>> {
        sql(|| webhook_in(&mut *self.pool.get()?, id, false))
    }

    fn change_webhook(
        &self,
        id: i64,
        change: &WebhookChange<'_>,
        precondition: &dyn Fn(&Webhook) -> bool,
    ) -> cohort_store::Result<Conditional<Webhook>> {
        sql(|| {
            let mut conn = self.pool.get()?;
            let mut tx = conn.begin()?;
            // Locked to commit: another change waits, then sees this one.
            let Some(stored) = webhook_in(&mut *tx, id, true)? else {
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
                    "UPDATE webhooks SET url = $2, events = $3, paused = $4 WHERE id = $1",
                    &[&id, &url, &events, &paused],
                )?,
                WebhookChange::Rotate {
                    secret,
                    previous_until,
                } => tx.execute(
                    "UPDATE webhooks SET previous_secret = secret, secret = $2,
                        previous_secret_until = $3 WHERE id = $1",
                    &[&id, &secret, &previous_until],
                )?,
                WebhookChange::Rewind { after } => tx.execute(
                    "UPDATE webhooks SET position = $2, attempts = 0, last_error = NULL
                     WHERE id = $1",
                    &[&id, &after],
                )?,
            };
            let row = tx.query_one(
                &format!(
                    "UPDATE webhooks SET generation = generation + 1 WHERE id = $1
                     RETURNING {WEBHOOK_COLUMNS}"
                ),
                &[&id],
            )?;
            tx.commit()?;
            Ok(Conditional::Written(webhook(&row)))
        })
    }

    fn remove_webhook(&self, id: i64) -> cohort_store::Result<bool> {
        sql(|| {
            let mut conn = self.pool.get()?;
            let mut tx = conn.begin()?;
            tx.execute("DELETE FROM webhook_deliveries WHERE webhook = $1", &[&id])?;
            let removed = tx.execute("DELETE FROM webhooks WHERE id = $1", &[&id])? > 0;
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
            self.pool.get()?.execute(
                "UPDATE webhooks SET position = greatest(position, $3), attempts = 0,
                    last_error = NULL, last_delivered_at = $4
                 WHERE id = $1 AND generation = $2",
                &[&id, &generation, &position, &at],
            )?;
            Ok(())
        })
    }

    fn webhook_failed(&self, id: i64, generation: i64, error: &str) -> cohort_store::Result<()> {
        sql(|| {
            self.pool.get()?.execute(
                "UPDATE webhooks SET attempts = attempts + 1, last_error = $3
                 WHERE id = $1 AND generation = $2",
                &[&id, &generation, &error],
            )?;
            Ok(())
        })
    }

    fn log_delivery(&self, a: &DeliveryAttempt) -> cohort_store::Result<()> {
        sql(|| {
            let mut conn = self.pool.get()?;
            let mut tx = conn.begin()?;
            tx.execute(
                "INSERT INTO webhook_deliveries
                    (webhook, at, after, last, events, ping, status, latency_ms, error)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                &[
                    &a.webhook,
                    &a.at,
                    &a.after,
                    &a.last,
                    &(a.events as i32),
                    &a.ping,
                    &a.status.map(i32::from),
                    &(a.latency_ms as i64),
                    &a.error,
                ],
            )?;
            // The log keeps the latest attempts only.
            tx.execute(
                "DELETE FROM webhook_deliveries WHERE webhook = $1 AND id <= (
                    SELECT id FROM webhook_deliveries WHERE webhook = $1
                    ORDER BY id DESC LIMIT 1 OFFSET $2)",
                &[&a.webhook, &DELIVERIES_KEPT],
            )?;
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
            let rows = self.pool.get()?.query(
                "SELECT id, webhook, at, after, last, events, ping, status, latency_ms, error
                 FROM webhook_deliveries WHERE webhook = $1 AND id < $2
                 ORDER BY id DESC LIMIT $3",
                &[&webhook, &before.unwrap_or(i64::MAX), &(limit as i64)],
            )?;
            Ok(rows
                .iter()
                .map(|r| DeliveryAttempt {
                    id: r.get(0),
                    webhook: r.get(1),
                    at: r.get(2),
                    after: r.get(3),
                    last: r.get(4),
                    events: u32::try_from(r.get::<_, i32>(5)).unwrap_or_default(),
                    ping: r.get(6),
                    status: r
                        .get::<_, Option<i32>>(7)
                        .and_then(|s| u16::try_from(s).ok()),
                    latency_ms: u64::try_from(r.get::<_, i64>(8)).unwrap_or_default(),
                    error: r.get(9),
                })
                .collect())
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
                .pool
                .get()?
                .query_opt(
                    "UPDATE webhooks SET lease_holder = $2, lease_until = $4
                     WHERE id = $1
                       AND (lease_holder IS NULL OR lease_holder = $2 OR lease_until <= $3)
                     RETURNING position",
                    &[&id, &holder, &now, &until],
                )?
                .map(|r| r.get(0)))
        })
    }
}
