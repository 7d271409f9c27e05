//! Delivery of change events from the outbox to webhooks.
//!
//! Each webhook has a position in the outbox, kept in the store. Its worker posts the
//! events after that position in batches, oldest first, and moves the position only
//! when the receiver answers 2xx; a failure is retried from the same position after a
//! growing wait. So delivery is at least once, in the outbox's order (and therefore in
//! order per customer), and a restart resumes where the store says it stopped.
//!
//! Servers sharing a store take turns: a worker delivers only while it holds the
//! webhook's lease in the store, taken when it has events to deliver and renewed once
//! half of it has gone, and a worker whose lease another server holds waits. When a server dies its leases run out and
//! another resumes from the stored position.
//!
//! Each request is signed: `Cohort-Signature: t=<unix seconds>,v1=<hex>` where the hex
//! is HMAC-SHA256 with the webhook's secret over `<t>.<body>`; while a rotated secret's
//! overlap lasts, a second `v1=` is signed with the secret it replaced. A receiver
//! recomputes it and refuses old timestamps, so a captured request cannot be replayed
//! later.
//!
//! A webhook receives only the kinds of event it chose (the others are passed over,
//! its position moving past them), and a paused one nothing. Each attempt goes to the
//! webhook's delivery log. A change to a webhook moves its generation on: its worker is
//! replaced by one that starts from what the store now says, and a delivery the old
//! one finishes meanwhile is not recorded.

use std::collections::HashMap;
use std::time::Duration;

use cohort_store::{DeliveryAttempt, OutboxEvent, Webhook};
use hmac::{Hmac, KeyInit, Mac};
use serde::Serialize;
use sha2::Sha256;
use tokio::task::JoinHandle;

use crate::metrics::Metrics;
use crate::{Shared, now};

/// The body of a delivery.
#[derive(Serialize)]
struct Delivery<'a> {
    webhook: i64,
    /// A test delivery, with no events.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    ping: bool,
    events: &'a [OutboxEvent],
}

/// HMAC-SHA256 with `secret` over `<t>.<body>`, in hex.
fn mac(secret: &str, t: i64, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// The `Cohort-Signature` header's value for `body` sent at `t`.
pub fn signature(secret: &str, t: i64, body: &[u8]) -> String {
    format!("t={t},v1={}", mac(secret, t, body))
}

/// The header's value for `body` sent to `hook` at `t`: also signed with the secret a
/// rotation replaced, until its overlap ends.
fn signatures(hook: &Webhook, t: i64, body: &[u8]) -> String {
    let mut value = signature(&hook.secret, t, body);
    if let (Some(previous), Some(until)) = (&hook.previous_secret, hook.previous_secret_until)
        && t < until
    {
        value.push_str(",v1=");
        value.push_str(&mac(previous, t, body));
    }
    value
}

/// Keep one worker per configured webhook: start workers for new ones, stop those of
/// removed ones. Runs until the server stops.
pub async fn supervise(state: Shared) {
    // A worker serves the webhook it was started for: the same id, and the same URL,
    // secret and creation. Ids are not reused, but a worker must never deliver one
    // webhook's events to another's address even if a store handed an id out again.
    let mut workers: HashMap<Identity, JoinHandle<()>> = HashMap::new();
    loop {
        let access = state.access.clone();
        match tokio::task::spawn_blocking(move || access.webhooks()).await {
            Ok(Ok(hooks)) => {
                // A paused webhook has no worker: its events wait at its position.
                let hooks: Vec<Webhook> = hooks.into_iter().filter(|h| !h.paused).collect();
                workers.retain(|identity, handle| {
                    let keep =
                        hooks.iter().any(|h| Identity::of(h) == *identity) && !handle.is_finished();
                    if !keep {
                        handle.abort();
                    }
                    keep
                });
                for hook in hooks {
                    workers
                        .entry(Identity::of(&hook))
                        .or_insert_with(|| tokio::spawn(deliver(state.clone(), hook)));
                }
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot read the webhooks"),
            Err(e) => tracing::warn!(error = %e, "cannot read the webhooks"),
        }
        // Webhooks added or removed (through another server on the same store, say)
        // are noticed within this.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Give up the leases this server holds, as it stops: a lease that ends now is one any
/// server may take.
pub(crate) fn release(state: &Shared) -> cohort_store::Result<()> {
    let at = now();
    for hook in state.access.webhooks()? {
        state.access.lease_webhook(hook.id, &state.holder, at, at)?;
    }
    Ok(())
}

/// What tells one webhook from another, beyond its id, and one generation of its
/// settings from the next.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Identity {
    id: i64,
    created_at: i64,
    url: String,
    secret: String,
    generation: i64,
}

impl Identity {
    fn of(hook: &Webhook) -> Self {
        Identity {
            id: hook.id,
            created_at: hook.created_at,
            url: hook.url.clone(),
            secret: hook.secret.clone(),
            generation: hook.generation,
        }
    }
}

/// The HTTP client deliveries go through.
pub(crate) fn client(settings: &crate::config::WebhookConfig) -> reqwest::Result<reqwest::Client> {
    // A redirect would lead a delivery wherever the receiver says, inside the network
    // too: a 3xx is a failed delivery.
    let mut builder = reqwest::Client::builder()
        .timeout(Duration::from_millis(settings.timeout_ms))
        .user_agent(concat!("cohort/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none());
    if !settings.allow_private_targets {
        builder = builder.dns_resolver(std::sync::Arc::new(crate::targets::PublicOnly));
    }
    builder.build()
}

/// Deliver one webhook's events for as long as it exists.
async fn deliver(state: Shared, hook: Webhook) {
    let settings = &state.config.webhooks;
    let client = match client(settings) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(webhook = hook.id, error = %e, "cannot start an HTTP client");
            return;
        }
    };
    let mut position = hook.position;
    let mut attempts = hook.attempts;
    // Until when this server holds the webhook's lease (0: it does not).
    let mut held_until: i64 = 0;
    loop {
        let engine = state.engine.clone();
        let batch = settings.batch.max(1);
        let events =
            match tokio::task::spawn_blocking(move || engine.store().events_after(position, batch))
                .await
            {
                Ok(Ok(events)) => events,
                Ok(Err(e)) => {
                    tracing::warn!(webhook = hook.id, error = %e, "cannot read the outbox");
                    tokio::time::sleep(Duration::from_millis(settings.poll_ms)).await;
                    continue;
                }
                Err(_) => return,
            };
        let Some(last) = events.last().map(|e| e.id) else {
            tokio::time::sleep(Duration::from_millis(settings.poll_ms)).await;
            continue;
        };
        let events: Vec<OutboxEvent> = events
            .into_iter()
            .filter(|e| hook.wants(&e.event))
            .collect();
        // One server at a time delivers a webhook: it takes the lease when it has
        // something to deliver, and renews it once half of it has gone, so that an idle
        // webhook costs no write.
        let lease = settings.lease_seconds as i64;
        if now() + lease / 2 >= held_until {
            let access = state.access.clone();
            let (id, holder, at) = (hook.id, state.holder.clone(), now());
            let until = at.saturating_add(lease);
            match tokio::task::spawn_blocking(move || access.lease_webhook(id, &holder, at, until))
                .await
            {
                Ok(Ok(Some(stored))) => {
                    held_until = until;
                    // Another server delivered since: go on from where it stopped.
                    if stored > position {
                        position = stored;
                        continue;
                    }
                }
                Ok(Ok(None)) => {
                    held_until = 0;
                    tokio::time::sleep(Duration::from_millis(settings.poll_ms.max(1_000))).await;
                    continue;
                }
                Ok(Err(e)) => {
                    tracing::warn!(webhook = hook.id, error = %e, "cannot take the webhook's lease");
                    tokio::time::sleep(Duration::from_millis(settings.poll_ms)).await;
                    continue;
                }
                Err(_) => return,
            }
        }
        let (id, generation) = (hook.id, hook.generation);
        // A webhook changed since this worker started (paused, rewound, given new
        // kinds or a new secret) is another's to deliver: the supervisor starts it.
        let access = state.access.clone();
        match tokio::task::spawn_blocking(move || access.webhook(id)).await {
            Ok(Ok(Some(now))) if now.generation == generation => {}
            Ok(Ok(_)) | Err(_) => return,
            Ok(Err(e)) => {
                tracing::warn!(webhook = id, error = %e, "cannot read the webhook");
                tokio::time::sleep(Duration::from_millis(settings.poll_ms)).await;
                continue;
            }
        }
        let outcome = if events.is_empty() {
            // Nothing of the kinds it receives: passed over, no request.
            Ok(())
        } else {
            let attempt = post(
                &client,
                &hook,
                position,
                last,
                &events,
                settings.allow_private_targets,
            )
            .await;
            let outcome = match &attempt.error {
                None => Ok(()),
                Some(error) => Err(error.clone()),
            };
            let access = state.access.clone();
            let logged = tokio::task::spawn_blocking(move || access.log_delivery(&attempt)).await;
            if let Ok(Err(e)) = logged {
                tracing::warn!(webhook = id, error = %e, "cannot log a delivery");
            }
            outcome
        };
        let access = state.access.clone();
        match outcome {
            Ok(()) => {
                position = last;
                attempts = 0;
                Metrics::count(&state.metrics.deliveries, 1);
                Metrics::count(&state.metrics.events_delivered, events.len() as u64);
                let at = now();
                let saved = tokio::task::spawn_blocking(move || {
                    access.webhook_delivered(id, generation, last, at)
                })
                .await;
                if let Ok(Err(e)) = saved {
                    // The events will be sent again after a restart: at least once.
                    tracing::warn!(webhook = id, error = %e, "cannot record a delivery");
                }
            }
            Err(error) => {
                attempts += 1;
                Metrics::count(&state.metrics.delivery_failures, 1);
                let wait = settings.backoff(attempts);
                tracing::warn!(
                    webhook = id,
                    url = %hook.url,
                    attempts,
                    retry_in_ms = wait.as_millis() as u64,
                    %error,
                    "webhook delivery failed"
                );
                let _ = tokio::task::spawn_blocking(move || {
                    access.webhook_failed(id, generation, &error)
                })
                .await;
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// Post `events` (those after `after`, up to `last`) to `hook`: the attempt, as the
/// delivery log keeps it.
async fn post(
    client: &reqwest::Client,
    hook: &Webhook,
    after: i64,
    last: i64,
    events: &[OutboxEvent],
    allow_private: bool,
) -> DeliveryAttempt {
    send(client, hook, after, last, events, false, allow_private).await
}

/// Post a test delivery, with no events, to `hook`.
pub(crate) async fn ping(
    client: &reqwest::Client,
    hook: &Webhook,
    allow_private: bool,
) -> DeliveryAttempt {
    send(
        client,
        hook,
        hook.position,
        hook.position,
        &[],
        true,
        allow_private,
    )
    .await
}

async fn send(
    client: &reqwest::Client,
    hook: &Webhook,
    after: i64,
    last: i64,
    events: &[OutboxEvent],
    ping: bool,
    allow_private: bool,
) -> DeliveryAttempt {
    let t = now();
    let started = std::time::Instant::now();
    let (status, error) = match request(client, hook, events, ping, allow_private, t).await {
        Ok(status) if status.is_success() => (Some(status.as_u16()), None),
        Ok(status) => (
            Some(status.as_u16()),
            Some(format!("{} answered {status}", hook.url)),
        ),
        Err(error) => (None, Some(error)),
    };
    DeliveryAttempt {
        id: 0,
        webhook: hook.id,
        at: t,
        after,
        last,
        events: events.len() as u32,
        ping,
        status,
        latency_ms: started.elapsed().as_millis() as u64,
        error,
    }
}

async fn request(
    client: &reqwest::Client,
    hook: &Webhook,
    events: &[OutboxEvent],
    ping: bool,
    allow_private: bool,
    t: i64,
) -> Result<reqwest::StatusCode, String> {
    // Checked again at each delivery: a webhook stored before the rules were, or under
    // a deployment that allowed what this one does not.
    let url = crate::targets::check_url(&hook.url, allow_private).map_err(|p| p.detail)?;
    let body = serde_json::to_vec(&Delivery {
        webhook: hook.id,
        ping,
        events,
    })
    .map_err(|e| e.to_string())?;
    let response = client
        .post(url.clone())
        .header("content-type", "application/json")
        .header("cohort-signature", signatures(hook, t, &body))
        .header("cohort-webhook", hook.id.to_string())
        .body(body)
        .send()
        .await
        .map_err(|e| format!("cannot reach {url}: {e}"))?;
    Ok(response.status())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_covers_timestamp_and_body() {
        let a = signature("secret", 1_700_000_000, b"{\"events\":[]}");
        assert!(a.starts_with("t=1700000000,v1="));
        assert_eq!(a.len(), "t=1700000000,v1=".len() + 64);
        assert_ne!(a, signature("secret", 1_700_000_001, b"{\"events\":[]}"));
        assert_ne!(a, signature("secret", 1_700_000_000, b"{\"events\":[1]}"));
        assert_ne!(a, signature("other", 1_700_000_000, b"{\"events\":[]}"));
    }

    #[test]
    fn a_rotated_secret_signs_beside_the_new_one_until_its_overlap_ends() {
        let hook = Webhook {
            secret: "new".into(),
            previous_secret: Some("old".into()),
            previous_secret_until: Some(100),
            ..Webhook::default()
        };
        let during = signatures(&hook, 99, b"{}");
        let new = signature("new", 99, b"{}");
        let old = signature("old", 99, b"{}");
        assert_eq!(
            during,
            format!("{new},v1={}", old.split("v1=").nth(1).expect("mac"))
        );
        assert_eq!(signatures(&hook, 100, b"{}"), signature("new", 100, b"{}"));
    }
}
