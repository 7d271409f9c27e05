//! Webhooks, managed by admins: where change events go, which kinds, paused or not,
//! their secrets, their delivery log, and delivering again.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::{Extension, Json};
use cohort_store::{Conditional, DeliveryAttempt, EVENT_KINDS, Webhook, WebhookChange};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{AfterId, Page, blocking_access, id_cursor, limit, page, page_after_id};
use crate::auth::GlobalAdmin;
use crate::etag::{self, IfMatch, Tagged};
use crate::idempotency::ReplayAs;
use crate::problem::{Body, Path, Problem, Query};
use crate::{Shared, now};

/// How long a rotated secret still signs unless the rotation says otherwise: a day.
const OVERLAP_SECONDS: u32 = 24 * 60 * 60;
/// The longest overlap a rotation may ask for: a week.
const MAX_OVERLAP_SECONDS: u32 = 7 * 24 * 60 * 60;

/// A webhook's entity tag: every change to it moves its generation on, and nothing
/// else does (deliveries move its position, not its tag).
fn tag(hook: &Webhook) -> Result<String, Problem> {
    etag::of(&(hook.id, hook.created_at, hook.generation))
}

/// Kinds of event named as the feed names them; none named is refused (leave the
/// field out for every kind).
fn check_events(events: &Option<Vec<String>>) -> Result<(), Problem> {
    let Some(kinds) = events else {
        return Ok(());
    };
    if kinds.is_empty() {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-events",
            "name at least one kind of event, or leave `events` out for every kind",
        )
        .at("events"));
    }
    for (i, kind) in kinds.iter().enumerate() {
        if !EVENT_KINDS.contains(&kind.as_str()) {
            return Err(Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-events",
                format!(
                    "`{kind}` is not a kind of event; the kinds are {}",
                    EVENT_KINDS.join(", ")
                ),
            )
            .at(format!("events/{i}")));
        }
    }
    Ok(())
}

/// The secret asked for, at least 16 characters, or a random one.
fn secret(asked: Option<String>) -> Result<String, Problem> {
    match asked {
        Some(s) if s.len() >= 16 => Ok(s),
        Some(_) => Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "weak-secret",
            "a webhook secret needs at least 16 characters",
        )
        .at("secret")),
        None => crate::auth::new_token()
            .map_err(|e| Problem::internal(format!("no randomness for a secret: {e}"))),
    }
}

fn written(id: i64, outcome: Conditional<Webhook>) -> Result<Webhook, Problem> {
    match outcome {
        Conditional::Written(hook) => Ok(hook),
        Conditional::Missing => Err(Problem::not_found("webhook", &id.to_string())),
        Conditional::Refused => Err(etag::failed("webhook", &id.to_string())),
    }
}

/// The webhooks, by id.
#[utoipa::path(get, path = "/v1/webhooks", tag = "webhooks", params(AfterId),
    responses((status = 200, body = Page<Webhook>), (status = 403, body = Problem)))]
pub async fn webhooks(
    State(state): State<Shared>,
    _: GlobalAdmin,
    Query(q): Query<AfterId>,
) -> Result<Json<Page<Webhook>>, Problem> {
    let limit = limit(q.limit)?;
    let after = id_cursor(q.after.as_deref(), "after")?.unwrap_or(0);
    blocking_access(&state, move |access| {
        Ok(Json(page_after_id(access.webhooks()?, after, limit, |h| {
            h.id
        })))
    })
    .await
}

/// A receiver of change events.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWebhook {
    /// Where events are POSTed (`http` or `https`), a public address unless the
    /// deployment allows private ones; no credentials in it.
    #[schema(example = "https://hooks.example.com/cohort")]
    pub url: String,
    /// The HMAC key; a random one is made if absent.
    pub secret: Option<String>,
    /// The kinds of event it receives; every kind if absent.
    #[schema(example = json!(["membership.added", "membership.removed"]))]
    pub events: Option<Vec<String>>,
}

/// A webhook with its secret, shown once.
#[derive(Serialize, ToSchema)]
pub struct WebhookWithSecret {
    #[serde(flatten)]
    pub webhook: Webhook,
    /// Shown only in the response to the request that made it: a replay of that
    /// request (the same `Idempotency-Key`) leaves it out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// The response with the secret, and its replay without it.
fn with_secret(
    webhook: Webhook,
    secret: String,
) -> Result<(Extension<ReplayAs>, Json<WebhookWithSecret>), Problem> {
    let mut shown = WebhookWithSecret {
        webhook,
        secret: None,
    };
    let replay = serde_json::to_string(&shown)
        .map_err(|e| Problem::internal(format!("cannot show the webhook: {e}")))?;
    shown.secret = Some(secret);
    Ok((Extension(ReplayAs(replay)), Json(shown)))
}

/// Add a webhook. It receives the change events written from now on (of the kinds it
/// names), in batches, signed with its secret; earlier events are in the change feed.
#[utoipa::path(post, path = "/v1/webhooks", tag = "webhooks", request_body = NewWebhook,
    responses((status = 201, body = WebhookWithSecret), (status = 422, body = Problem),
        (status = 403, body = Problem)))]
pub async fn add_webhook(
    State(state): State<Shared>,
    _: GlobalAdmin,
    Body(new): Body<NewWebhook>,
) -> Result<(StatusCode, Extension<ReplayAs>, Json<WebhookWithSecret>), Problem> {
    let url = crate::targets::check_url(&new.url, state.config.webhooks.allow_private_targets)?;
    check_events(&new.events)?;
    let secret = secret(new.secret)?;
    blocking_access(&state, move |access| {
        let webhook = access.add_webhook(url.as_str(), &secret, new.events.as_deref(), now())?;
        let (replay, json) = with_secret(webhook, secret)?;
        Ok((StatusCode::CREATED, replay, json))
    })
    .await
}

/// One webhook, with its `ETag`.
#[utoipa::path(get, path = "/v1/webhooks/{id}", tag = "webhooks", params(("id" = i64, Path)),
    responses((status = 200, body = Webhook,
            headers(("ETag" = String, description = "For `If-Match` on its changes"))),
        (status = 404, body = Problem), (status = 403, body = Problem)))]
pub async fn webhook(
    State(state): State<Shared>,
    _: GlobalAdmin,
    Path(id): Path<i64>,
) -> Result<(Tagged, Json<Webhook>), Problem> {
    blocking_access(&state, move |access| {
        let hook = access
            .webhook(id)?
            .ok_or_else(|| Problem::not_found("webhook", &id.to_string()))?;
        tagged(hook)
    })
    .await
}

/// A webhook as an answer, with its `ETag`.
fn tagged(hook: Webhook) -> Result<(Tagged, Json<Webhook>), Problem> {
    Ok(([etag::header(&tag(&hook)?)?], Json(hook)))
}

/// A webhook's settings.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    pub url: String,
    /// The kinds of event it receives; every kind if absent.
    pub events: Option<Vec<String>>,
    /// Paused, it receives nothing and keeps its position; resumed, it receives what
    /// was written meanwhile.
    #[serde(default)]
    pub paused: bool,
}

/// Change a webhook's address, kinds of event, or pause it and resume it. With
/// `If-Match`, only if it is still as read (else 412 and nothing is written).
#[utoipa::path(put, path = "/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = i64, Path),
        ("If-Match" = Option<String>, Header, description = "The `ETag` it was read with, or `*`")),
    request_body = WebhookSettings,
    responses((status = 200, body = Webhook,
            headers(("ETag" = String, description = "For `If-Match` on its next change"))),
        (status = 400, description = "A malformed `If-Match`", body = Problem),
        (status = 404, body = Problem), (status = 412, body = Problem),
        (status = 422, body = Problem), (status = 403, body = Problem)))]
pub async fn update_webhook(
    State(state): State<Shared>,
    _: GlobalAdmin,
    Path(id): Path<i64>,
    headers: HeaderMap,
    Body(settings): Body<WebhookSettings>,
) -> Result<(Tagged, Json<Webhook>), Problem> {
    let if_match = IfMatch::from_headers(&headers)?;
    let url =
        crate::targets::check_url(&settings.url, state.config.webhooks.allow_private_targets)?;
    check_events(&settings.events)?;
    blocking_access(&state, move |access| {
        let change = WebhookChange::Settings {
            url: url.as_str(),
            events: settings.events.as_deref(),
            paused: settings.paused,
        };
        let outcome = access.change_webhook(id, &change, &|stored| {
            if_match.holds(tag(stored).ok().as_deref())
        })?;
        tagged(written(id, outcome)?)
    })
    .await
}

/// Remove a webhook; its undelivered events stay in the change feed.
#[utoipa::path(delete, path = "/v1/webhooks/{id}", tag = "webhooks", params(("id" = i64, Path)),
    responses((status = 204), (status = 404, body = Problem), (status = 403, body = Problem)))]
pub async fn remove_webhook(
    State(state): State<Shared>,
    _: GlobalAdmin,
    Path(id): Path<i64>,
) -> Result<StatusCode, Problem> {
    blocking_access(&state, move |access| {
        if access.remove_webhook(id)? {
            Ok(StatusCode::NO_CONTENT)
        } else {
            Err(Problem::not_found("webhook", &id.to_string()))
        }
    })
    .await
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeliveriesQuery {
    /// The `next` of the previous page (attempts come newest first).
    #[param(value_type = Option<i64>, minimum = 0)]
    before: Option<String>,
    limit: Option<usize>,
}

/// A webhook's latest delivery attempts (the last 100 are kept), newest first: when,
/// which events, the receiver's status, how long it took, and why it failed.
#[utoipa::path(get, path = "/v1/webhooks/{id}/deliveries", tag = "webhooks",
    params(("id" = i64, Path), DeliveriesQuery),
    responses((status = 200, body = Page<DeliveryAttempt>), (status = 404, body = Problem),
        (status = 403, body = Problem)))]
pub async fn deliveries(
    State(state): State<Shared>,
    _: GlobalAdmin,
    Path(id): Path<i64>,
    Query(q): Query<DeliveriesQuery>,
) -> Result<Json<Page<DeliveryAttempt>>, Problem> {
    let limit = limit(q.limit)?;
    let before = id_cursor(q.before.as_deref(), "before")?;
    blocking_access(&state, move |access| {
        access
            .webhook(id)?
            .ok_or_else(|| Problem::not_found("webhook", &id.to_string()))?;
        let attempts = access.deliveries(id, before, limit + 1)?;
        Ok(Json(page(attempts, limit, |a| a.id.to_string())))
    })
    .await
}

/// Send a test delivery now: a signed request with `"ping": true` and no events. The
/// attempt is answered (and kept in the delivery log) whether or not the receiver
/// accepted it; the webhook's position does not move.
#[utoipa::path(post, path = "/v1/webhooks/{id}/ping", tag = "webhooks",
    params(("id" = i64, Path)),
    responses((status = 200, body = DeliveryAttempt), (status = 404, body = Problem),
        (status = 403, body = Problem)))]
pub async fn ping(
    State(state): State<Shared>,
    _: GlobalAdmin,
    Path(id): Path<i64>,
) -> Result<Json<DeliveryAttempt>, Problem> {
    let hook = blocking_access(&state, move |access| {
        access
            .webhook(id)?
            .ok_or_else(|| Problem::not_found("webhook", &id.to_string()))
    })
    .await?;
    let settings = &state.config.webhooks;
    let client = crate::webhooks::client(settings)
        .map_err(|e| Problem::internal(format!("cannot start an HTTP client: {e}")))?;
    let attempt = crate::webhooks::ping(&client, &hook, settings.allow_private_targets).await;
    blocking_access(&state, move |access| {
        access.log_delivery(&attempt)?;
        Ok(Json(attempt))
    })
    .await
}

/// Where to deliver from again.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Redelivery {
    /// Every event after this id (a position, as the change feed numbers events) is
    /// delivered again; at most the webhook's position.
    #[schema(minimum = 0)]
    pub after: i64,
}

/// Deliver again from a position: the webhook's position moves back to `after`, and
/// the events after it (of the kinds it receives) are delivered again, in order.
/// Receivers see them twice: an event's `id` tells a repeat.
#[utoipa::path(post, path = "/v1/webhooks/{id}/redeliver", tag = "webhooks",
    params(("id" = i64, Path),
        ("If-Match" = Option<String>, Header, description = "The `ETag` it was read with, or `*`")),
    request_body = Redelivery,
    responses((status = 200, body = Webhook,
            headers(("ETag" = String, description = "For `If-Match` on its next change"))),
        (status = 400, description = "A malformed `If-Match`", body = Problem),
        (status = 404, body = Problem), (status = 412, body = Problem),
        (status = 422, body = Problem), (status = 403, body = Problem)))]
pub async fn redeliver(
    State(state): State<Shared>,
    _: GlobalAdmin,
    Path(id): Path<i64>,
    headers: HeaderMap,
    Body(r): Body<Redelivery>,
) -> Result<(Tagged, Json<Webhook>), Problem> {
    let if_match = IfMatch::from_headers(&headers)?;
    let after = r.after;
    let beyond = move || {
        Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-position",
            format!(
                "`after` must be from 0 to the webhook's position: {after} is not an event it was sent"
            ),
        )
        .at("after")
    };
    if after < 0 {
        return Err(beyond());
    }
    blocking_access(&state, move |access| {
        // Checked with the precondition, in the store's transaction.
        let past = std::cell::Cell::new(false);
        let outcome = access.change_webhook(id, &WebhookChange::Rewind { after }, &|stored| {
            past.set(after > stored.position);
            if_match.holds(tag(stored).ok().as_deref()) && !past.get()
        })?;
        if past.get() {
            return Err(beyond());
        }
        tagged(written(id, outcome)?)
    })
    .await
}

/// A new secret.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rotation {
    /// The new HMAC key, at least 16 characters; a random one is made if absent.
    pub secret: Option<String>,
    /// How long the secret it replaces still signs beside it, so that receivers can
    /// switch without losing a delivery: a day if absent, a week at most, 0 for not at
    /// all.
    #[schema(maximum = 604800)]
    pub overlap_seconds: Option<u32>,
}

/// Rotate a webhook's secret. Until the overlap ends, each delivery carries two
/// signatures (`t=...,v1=<new>,v1=<old>`); a receiver accepts either while it moves to
/// the new secret. The new secret is shown in this response only.
#[utoipa::path(post, path = "/v1/webhooks/{id}/rotate", tag = "webhooks",
    params(("id" = i64, Path)),
    request_body = Rotation,
    responses((status = 200, body = WebhookWithSecret), (status = 404, body = Problem),
        (status = 422, body = Problem), (status = 403, body = Problem)))]
pub async fn rotate(
    State(state): State<Shared>,
    _: GlobalAdmin,
    Path(id): Path<i64>,
    Body(r): Body<Rotation>,
) -> Result<(Extension<ReplayAs>, Json<WebhookWithSecret>), Problem> {
    let overlap = r.overlap_seconds.unwrap_or(OVERLAP_SECONDS);
    if overlap > MAX_OVERLAP_SECONDS {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-overlap",
            format!("an overlap is at most {MAX_OVERLAP_SECONDS} seconds (a week)"),
        )
        .at("overlap_seconds"));
    }
    let secret = secret(r.secret)?;
    blocking_access(&state, move |access| {
        let change = WebhookChange::Rotate {
            secret: &secret,
            previous_until: now() + i64::from(overlap),
        };
        let hook = written(id, access.change_webhook(id, &change, &|_| true)?)?;
        with_secret(hook, secret)
    })
    .await
}
