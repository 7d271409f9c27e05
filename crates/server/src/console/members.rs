//! A group's members, page by page: the active ones, or every membership with its state
//! and, for one that ended, who ended it and why.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use cohort_model::State as MemberState;
use cohort_store::Listing;
use serde::Deserialize;

use super::page::{escape, layout, time};
use super::{page as html_page, signed_in};
use crate::{Shared, now};

/// Rows per page: a screen's worth, whatever the group's size.
const PAGE: usize = 50;

#[derive(Deserialize)]
pub(super) struct Paging {
    /// The last membership id of the page before.
    #[serde(default)]
    after: i64,
    /// Pending and expired memberships too.
    #[serde(default)]
    all: bool,
}

pub(super) async fn members(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(paging): Query<Paging>,
) -> Response {
    let Some((login, session)) = signed_in(&state, &headers).await else {
        return Redirect::to("/").into_response();
    };
    // A group outside the member's groups answers as one that does not exist.
    let hidden = login
        .member
        .groups
        .as_ref()
        .is_some_and(|g| !g.contains(&id));
    let engine = state.engine.clone();
    let group_id = id.clone();
    let found = tokio::task::spawn_blocking(move || -> Result<Option<String>, String> {
        let store = engine.store();
        let Some(group) = store.group(&group_id).map_err(|e| e.to_string())? else {
            return Ok(None);
        };
        if hidden {
            return Ok(None);
        }
        let at = now();
        let listing = if paging.all {
            Listing::All
        } else {
            Listing::Only(MemberState::Active)
        };
        let rows = store
            .group_memberships_page(&group.id, listing, at, paging.after, PAGE + 1)
            .map_err(|e| e.to_string())?;
        // The endings of this page's memberships only: a large group has many.
        let shown = &rows[..rows.len().min(PAGE)];
        let endings: HashMap<i64, (String, String, i64)> = match (shown.first(), shown.last()) {
            (Some(first), Some(last)) if paging.all => store
                .endings_in(&group.id, first.id, last.id)
                .map_err(|e| e.to_string())?
                .into_iter()
                .map(|e| (e.membership, (e.actor, e.reason, e.at)))
                .collect(),
            _ => HashMap::new(),
        };
        let more = rows.len() > PAGE;
        let mut body = format!(
            "<h1>{name}</h1>\n<p><a href=\"/\">All groups</a> · {switch}</p>\n",
            name = escape(&group.name),
            switch = if paging.all {
                format!("<a href=\"/groups/{}\">Active only</a>", escape(&group.id))
            } else {
                format!(
                    "<a href=\"/groups/{}?all=true\">Show pending and expired too</a>",
                    escape(&group.id)
                )
            }
        );
        body.push_str(
            "<table>\n<thead><tr><th scope=\"col\">Customer</th><th scope=\"col\">State</th>\
             <th scope=\"col\">From</th><th scope=\"col\">Until</th>\
             <th scope=\"col\">Why</th></tr></thead>\n<tbody>\n",
        );
        for m in rows.iter().take(PAGE) {
            let member_state = m.state(at);
            // An ended membership says why it ended, not why it began.
            let why = match (member_state, endings.get(&m.id)) {
                (MemberState::Expired, Some((actor, reason, _))) => {
                    format!("ended by {}: {}", escape(actor), escape(reason))
                }
                _ => format!("{}: {}", escape(&m.actor), escape(&m.reason)),
            };
            body.push_str(&format!(
                "<tr><td>{customer}</td><td>{state}</td><td>{from}</td><td>{until}</td>\
                 <td>{why}</td></tr>\n",
                customer = escape(&m.customer),
                state = state_name(member_state),
                from = time(m.start),
                until = m.end.map_or_else(|| "—".to_string(), time),
            ));
        }
        body.push_str("</tbody>\n</table>\n");
        if rows.is_empty() {
            body.push_str("<p>No members to show.</p>\n");
        }
        if let Some(last) = rows.get(PAGE - 1).filter(|_| more) {
            body.push_str(&format!(
                "<p><a href=\"/groups/{}?after={}{}\" rel=\"next\">Next page</a></p>\n",
                escape(&group.id),
                last.id,
                if paging.all { "&amp;all=true" } else { "" }
            ));
        }
        Ok(Some(body))
    })
    .await;
    match found {
        Ok(Ok(Some(body))) => html_page(
            StatusCode::OK,
            layout(&id, Some((&login.member.name, &session.csrf)), &body),
        ),
        Ok(Ok(None)) => html_page(
            StatusCode::NOT_FOUND,
            layout(
                "Not found",
                Some((&login.member.name, &session.csrf)),
                &format!("<h1>Not found</h1><p>No group `{}`.</p>", escape(&id)),
            ),
        ),
        Ok(Err(e)) => html_page(
            StatusCode::SERVICE_UNAVAILABLE,
            layout(
                "Error",
                None,
                &format!("<p class=\"problem\">{}</p>", escape(&e)),
            ),
        ),
        Err(e) => html_page(
            StatusCode::INTERNAL_SERVER_ERROR,
            layout(
                "Error",
                None,
                &format!("<p class=\"problem\">{}</p>", escape(&e.to_string())),
            ),
        ),
    }
}

fn state_name(state: MemberState) -> String {
    serde_json::to_value(state)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}
