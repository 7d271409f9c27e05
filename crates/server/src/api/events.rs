//! What happened: the audit history and the change feed.

use axum::Json;
use axum::extract::State;
use cohort_store::{AuditEntry, OutboxEvent};
use serde::Deserialize;
use utoipa::IntoParams;

use super::{Page, blocking, id_cursor, limit, page};
use crate::Shared;
use crate::auth::Reader;
use crate::problem::{Problem, Query};

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
