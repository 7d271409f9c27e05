//! The history of membership changes, newest first, filtered by group, customer, who
//! acted (a staff member, a token, a group's rule, the scheduler) and time.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::NaiveDate;
use cohort_model::Timestamp;
use cohort_store::{AuditEntry, HistoryQuery};
use serde::Deserialize;

use super::page::{escape, time};
use super::view::Viewer;
use crate::Shared;

/// Entries per page.
const PAGE: usize = 50;

#[derive(Deserialize)]
pub(super) struct Filters {
    #[serde(default)]
    group: String,
    #[serde(default)]
    customer: String,
    #[serde(default)]
    actor: String,
    /// A day (`YYYY-MM-DD`, UTC): entries from its start.
    #[serde(default)]
    since: String,
    /// A day: entries up to its end.
    #[serde(default)]
    until: String,
    /// The last entry of the page before.
    before: Option<i64>,
}

/// The start of day `text`, or a message naming the field.
fn day(field: &str, text: &str) -> Result<Option<Timestamp>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map(|d| d.and_hms_opt(0, 0, 0).map(|t| t.and_utc().timestamp()))
        .map_err(|e| format!("{field}: `{text}` is not a day such as 2026-12-31: {e}"))
}

fn given(text: &str) -> Option<String> {
    Some(text.trim().to_string()).filter(|t| !t.is_empty())
}

pub(super) async fn history(
    State(state): State<Shared>,
    viewer: Viewer,
    Query(f): Query<Filters>,
) -> Response {
    let window = day("From", &f.since).and_then(|since| {
        // Up to the end of the last day asked for.
        let until = day("Until", &f.until)?.map(|t| t + 86_400);
        Ok((since, until))
    });
    let (since, until) = match window {
        Ok(w) => w,
        Err(problem) => {
            return viewer.page(
                StatusCode::BAD_REQUEST,
                "History",
                &format!(
                    "<h1>History</h1><p class=\"problem\" role=\"alert\">{}</p>",
                    escape(&problem)
                ),
            );
        }
    };
    let query = HistoryQuery {
        customer: given(&f.customer),
        groups: given(&f.group).map(|g| vec![g]),
        actor: given(&f.actor),
        since,
        until,
    };
    viewer
        .show(&state, "History", move |within| {
            let groups = within.groups()?;
            let entries = within.history(query, f.before, PAGE + 1)?;
            let options: String = groups
                .iter()
                .map(|g| {
                    format!(
                        "<option value=\"{0}\"{1}>{2} ({0})</option>",
                        escape(&g.id),
                        if g.id == f.group.trim() { " selected" } else { "" },
                        escape(&g.name)
                    )
                })
                .collect();
            let mut body = format!(
                "<h1>History</h1>\n<form method=\"get\" action=\"/history\" class=\"filters\">\
                 <label for=\"h-group\">Group</label><select id=\"h-group\" name=\"group\">\
                 <option value=\"\">Every group</option>{options}</select>\
                 <label for=\"h-customer\">Customer</label>\
                 <input id=\"h-customer\" name=\"customer\" value=\"{customer}\">\
                 <label for=\"h-actor\">By</label>\
                 <input id=\"h-actor\" name=\"actor\" value=\"{actor}\" placeholder=\"a name, rule:group, scheduler\">\
                 <label for=\"h-since\">From (UTC day)</label>\
                 <input id=\"h-since\" name=\"since\" type=\"date\" value=\"{since}\">\
                 <label for=\"h-until\">Until (UTC day)</label>\
                 <input id=\"h-until\" name=\"until\" type=\"date\" value=\"{until}\">\
                 <button type=\"submit\">Show</button></form>\n",
                customer = escape(&f.customer),
                actor = escape(&f.actor),
                since = escape(&f.since),
                until = escape(&f.until),
            );
            let shown = &entries[..entries.len().min(PAGE)];
            body.push_str(&table(shown));
            if entries.len() > PAGE
                && let Some(last) = shown.last()
            {
                let query = url::form_urlencoded::Serializer::new(String::new())
                    .append_pair("group", &f.group)
                    .append_pair("customer", &f.customer)
                    .append_pair("actor", &f.actor)
                    .append_pair("since", &f.since)
                    .append_pair("until", &f.until)
                    .append_pair("before", &last.id.to_string())
                    .finish();
                body.push_str(&format!(
                    "<p><a href=\"/history?{}\" rel=\"next\">Older entries</a></p>\n",
                    escape(&query)
                ));
            }
            Ok(body)
        })
        .await
}

/// Entries as a table: when, what, whom, which group, who acted, why.
pub(super) fn table(entries: &[AuditEntry]) -> String {
    if entries.is_empty() {
        return "<p>No entries.</p>\n".to_string();
    }
    let mut out = String::from(
        "<table class=\"history\">\n<thead><tr><th scope=\"col\">When</th>\
         <th scope=\"col\">What</th><th scope=\"col\">Customer</th><th scope=\"col\">Group</th>\
         <th scope=\"col\">By</th><th scope=\"col\">Why</th></tr></thead>\n<tbody>\n",
    );
    for e in entries {
        let customer = escape(&e.customer);
        let group = e.group.as_deref().map_or_else(
            || "—".to_string(),
            |g| format!("<a href=\"/groups/{0}\">{0}</a>", escape(g)),
        );
        out.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td><a href=\"/customers/{customer}\">{customer}</a></td>\
             <td>{group}</td><td>{}</td><td>{}</td></tr>\n",
            time(e.at),
            escape(&e.action),
            escape(&e.actor),
            escape(&e.reason)
        ));
    }
    out.push_str("</tbody>\n</table>\n");
    out
}
