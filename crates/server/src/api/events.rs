//! What happened: the audit history, the change feed, and webhooks.

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use cohort_store::{AuditEntry, OutboxEvent, Webhook};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{AfterId, Page, blocking, blocking_access, id_cursor, limit, page, page_after_id};
use crate::auth::{Admin, Reader};
use crate::idempotency::ReplayAs;
use crate::problem::{Body, Path, Problem, Query};
use crate::{Shared, now};

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// Only this customer's entries.
    customer: Option<String>,
    /// Only this group's entries.
    group: Option<String>,
    /// The `next` of the previous page (entries come newest first).
    #[param(value_type = Option<i64>, minimum = 0)]
    before: Option<String>,
    limit: Option<usize>,
}

/// The audit history of membership changes, newest first: who or what changed which
/// membership, when, why, and by which trigger.
#[utoipa::path(get, path = "/v1/history", tag = "events", params(HistoryQuery),
    responses((status = 200, body = Page<AuditEntry>)))]
pub async fn history(
    State(state): State<Shared>,
    _: Reader,
    Query(q): Query<HistoryQuery>,
) -> Result<Json<Page<AuditEntry>>, Problem> {
    let limit = limit(q.limit)?;
    let before = id_cursor(q.before.as_deref(), "before")?;
    blocking(&state, move |e| {
        let entries =
            e.store()
                .history(q.customer.as_deref(), q.group.as_deref(), before, limit + 1)?;
        Ok(Json(page(entries, limit, |a| a.id.to_string())))
    })
    .await
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FeedQuery {
    /// The id of the last event seen (the `next` of the previous page); from the start
    /// if absent.
    #[param(value_type = Option<i64>, minimum = 0)]
    after: Option<String>,
    limit: Option<usize>,
}

/// Change events after a cursor, oldest first. `next` is always given: poll again with
/// it as `after`; an empty page means nothing new yet.
#[utoipa::path(get, path = "/v1/events", tag = "events", params(FeedQuery),
    responses((status = 200, body = Page<OutboxEvent>)))]
pub async fn feed(
    State(state): State<Shared>,
    _: Reader,
    Query(q): Query<FeedQuery>,
) -> Result<Json<Page<OutboxEvent>>, Problem> {
    let limit = limit(q.limit)?;
    let after = id_cursor(q.after.as_deref(), "after")?.unwrap_or(0);
    blocking(&state, move |e| {
        let items = e.store().events_after(after, limit)?;
        let next = items.last().map_or(after, |e| e.id).to_string();
        Ok(Json(Page {
            items,
            next: Some(next),
        }))
    })
    .await
}

/// The webhooks and how far delivery to each has come.
#[utoipa::path(get, path = "/v1/webhooks", tag = "events", params(AfterId),
    responses((status = 200, body = Page<Webhook>), (status = 403, body = Problem)))]
pub async fn webhooks(
    State(state): State<Shared>,
    _: Admin,
    Query(q): Query<AfterId>,
) -> Result<Json<Page<Webhook>>, Problem> {
    let limit = limit(q.limit)?;
    let after = id_cursor(q.after.as_deref(), "after")?.unwrap_or(0);
    blocking(&state, move |e| {
        Ok(Json(page_after_id(
            e.store().webhooks()?,
            after,
            limit,
            |h| h.id,
        )))
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
}

/// A new webhook, with its secret.
#[derive(Serialize, ToSchema)]
pub struct CreatedWebhook {
    #[serde(flatten)]
    pub webhook: Webhook,
    /// Shown only in the response to the request that created the webhook: a replay of
    /// that request (the same `Idempotency-Key`) leaves it out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// Add a webhook. It receives every change event written from now on, in batches,
/// signed with its secret; earlier events are in the change feed.
#[utoipa::path(post, path = "/v1/webhooks", tag = "events", request_body = NewWebhook,
    responses((status = 201, body = CreatedWebhook), (status = 422, body = Problem),
        (status = 403, body = Problem)))]
pub async fn add_webhook(
    State(state): State<Shared>,
    _: Admin,
    Body(new): Body<NewWebhook>,
) -> Result<(StatusCode, Extension<ReplayAs>, Json<CreatedWebhook>), Problem> {
    let url = crate::targets::check_url(&new.url, state.config.webhooks.allow_private_targets)?;
    let secret = match new.secret {
        Some(s) if s.len() >= 16 => s,
        Some(_) => {
            return Err(Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "weak-secret",
                "a webhook secret needs at least 16 characters",
            )
            .at("secret"));
        }
        None => crate::auth::new_token()
            .map_err(|e| Problem::internal(format!("no randomness for a secret: {e}")))?,
    };
    blocking_access(&state, move |access| {
        let webhook = access.add_webhook(url.as_str(), &secret, now())?;
        let mut created = CreatedWebhook {
            webhook,
            secret: None,
        };
        let replay = serde_json::to_string(&created)
            .map_err(|e| Problem::internal(format!("cannot show the webhook: {e}")))?;
        created.secret = Some(secret);
        Ok((
            StatusCode::CREATED,
            Extension(ReplayAs(replay)),
            Json(created),
        ))
    })
    .await
}

/// Remove a webhook; its undelivered events stay in the change feed.
#[utoipa::path(delete, path = "/v1/webhooks/{id}", tag = "events", params(("id" = i64, Path)),
    responses((status = 204), (status = 404, body = Problem), (status = 403, body = Problem)))]
pub async fn remove_webhook(
    State(state): State<Shared>,
    _: Admin,
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
