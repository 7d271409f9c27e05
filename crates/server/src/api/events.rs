//! What happened: the audit history and the change feed.

use axum::Json;
use axum::extract::State;
use cohort_store::{AuditEntry, OutboxEvent};
use serde::Deserialize;
use utoipa::IntoParams;

use super::{Page, blocking, id_cursor, limit, page, time};
use crate::Shared;
use crate::auth::{GlobalReader, Reader};
use crate::problem::{Problem, Query};

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// Only this customer's entries.
    customer: Option<String>,
    /// Only this group's entries.
    group: Option<String>,
    /// Only entries by this actor: a token's or staff member's name, `rule:<group>`,
    /// `scheduler`.
    actor: Option<String>,
    /// Only entries at or after this time (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    since: Option<String>,
    /// Only entries before this time (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    until: Option<String>,
    /// The `next` of the previous page (entries come newest first).
    #[param(value_type = Option<i64>, minimum = 0)]
    before: Option<String>,
    limit: Option<usize>,
}

/// The audit history of membership changes, newest first: who or what changed which
/// membership, when, why, and by which trigger. A token limited to groups reads only
/// those groups' entries.
#[utoipa::path(get, path = "/v1/history", tag = "events", params(HistoryQuery),
    responses((status = 200, body = Page<AuditEntry>)))]
pub async fn history(
    State(state): State<Shared>,
    Reader(caller): Reader,
    Query(q): Query<HistoryQuery>,
) -> Result<Json<Page<AuditEntry>>, Problem> {
    let limit = limit(q.limit)?;
    let before = id_cursor(q.before.as_deref(), "before")?;
    let query = cohort_store::HistoryQuery {
        customer: q.customer,
        groups: q.group.map(|g| vec![g]),
        actor: q.actor,
        since: q
            .since
            .as_deref()
            .map(|t| time(Some(t), "since", 0))
            .transpose()?,
        until: q
            .until
            .as_deref()
            .map(|t| time(Some(t), "until", 0))
            .transpose()?,
    };
    blocking(&state, move |e| {
        let entries = e.within(&caller.scope).history(query, before, limit + 1)?;
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
/// it as `after`; an empty page means nothing new yet. Not for a token limited to
/// groups: the feed is every group's.
#[utoipa::path(get, path = "/v1/events", tag = "events", params(FeedQuery),
    responses((status = 200, body = Page<OutboxEvent>)))]
pub async fn feed(
    State(state): State<Shared>,
    _: GlobalReader,
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
