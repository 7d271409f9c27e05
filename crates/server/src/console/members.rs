//! A group's members, page by page: the active ones, or every membership with its state
//! and, for one that ended, who ended it and why. A search shows one customer's
//! memberships in the group. Operators add a customer by hand (with a window if they
//! like), remove one, pin one out or lift the pin; the history names them.

use std::collections::HashMap;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::NaiveDateTime;
use cohort_engine::{EngineError, Within};
use cohort_model::{Membership, State as MemberState, Timestamp};
use cohort_store::Listing;
use serde::Deserialize;

use super::page::{escape, state_name, time};
use super::view::Viewer;
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
    /// Only this customer's memberships.
    customer: Option<String>,
    /// What the last form did, by name.
    notice: Option<String>,
}

/// What a form's redirect says it did; only these words reach the page.
fn notice(key: &str) -> Option<&'static str> {
    Some(match key {
        "added" => "Added.",
        "already" => "The customer already has a membership over that window.",
        "removed" => "Removed.",
        "not-active" => "The customer had no active or pending membership to end.",
        "pinned" => "Pinned out: the rule will not add the customer again.",
        "unpinned" => "The pin is lifted.",
        "saved" => "Saved.",
        _ => return None,
    })
}

pub(super) async fn members(
    State(state): State<Shared>,
    viewer: Viewer,
    Path(id): Path<String>,
    Query(paging): Query<Paging>,
) -> Response {
    let forms = viewer.operates().then(|| viewer.csrf_field());
    let title = id.clone();
    viewer
        .show(&state, &title, move |within| {
            page(within, &id, &paging, forms.as_deref())
        })
        .await
}

fn page(
    within: &Within<'_>,
    id: &str,
    paging: &Paging,
    forms: Option<&str>,
) -> Result<String, EngineError> {
    let group = within.group(id)?;
    let at = now();
    let counts = within.sizes(id, at)?.states;
    let gid = escape(&group.id);
    let actions = match forms {
        Some(csrf) => format!(
            " <a href=\"/groups/{gid}/edit\">Edit</a> \
             <form method=\"post\" action=\"/groups/{gid}/run\" class=\"inline\">{csrf}\
             <button type=\"submit\">Run now</button></form>"
        ),
        None => String::new(),
    };
    let mut body = format!(
        "<h1>{name}</h1>\n<p><small>{gid}</small> · {active} active, {pending} pending, \
         {expired} expired</p>\n<nav class=\"links\"><a href=\"/\">All groups</a> \
         <a href=\"/history?group={gid}\">History</a> <a href=\"/runs?group={gid}\">Runs</a> \
         {switch}{actions}</nav>\n",
        name = escape(&group.name),
        active = counts.active,
        pending = counts.pending,
        expired = counts.expired,
        switch = if paging.all {
            format!("<a href=\"/groups/{gid}\">Active only</a>")
        } else {
            format!("<a href=\"/groups/{gid}?all=true\">Show pending and expired too</a>")
        }
    );
    if let Some(text) = paging.notice.as_deref().and_then(notice) {
        body.push_str(&format!("<p class=\"notice\" role=\"status\">{text}</p>\n"));
    }
    let searched = paging
        .customer
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty());
    body.push_str(&format!(
        "<form method=\"get\" action=\"/groups/{gid}\" class=\"inline\">\
         <label for=\"search\">Customer</label>\
         <input id=\"search\" name=\"customer\" value=\"{}\">\
         <button type=\"submit\">Find</button></form>\n",
        escape(searched.unwrap_or(""))
    ));
    if let Some(csrf) = forms {
        body.push_str(&format!(
            "<details><summary>Add a customer by hand</summary>\
             <form method=\"post\" action=\"/groups/{gid}/members\" class=\"stacked\">{csrf}\
             <input type=\"hidden\" name=\"offset\" class=\"zone-offset\" value=\"0\">\
             <label for=\"add-customer\">Customer</label>\
             <input id=\"add-customer\" name=\"customer\" required>\
             <label for=\"add-start\">From (your time; now if empty)</label>\
             <input id=\"add-start\" name=\"start\" type=\"datetime-local\">\
             <label for=\"add-end\">Until (open-ended if empty)</label>\
             <input id=\"add-end\" name=\"end\" type=\"datetime-local\">\
             <label for=\"add-reason\">Reason</label>\
             <input id=\"add-reason\" name=\"reason\" value=\"added by hand\">\
             <button type=\"submit\">Add</button></form></details>\n"
        ));
    }
    let (rows, next) = match searched {
        Some(customer) => {
            let mut rows = if within.sees_customer(customer)? {
                within.customer_memberships(customer).unwrap_or_default()
            } else {
                Vec::new()
            };
            rows.retain(|m| m.group == group.id);
            if rows.is_empty() {
                body.push_str(&format!(
                    "<p>Customer <code>{}</code> has no membership in this group.</p>\n",
                    escape(customer)
                ));
            }
            (rows, None)
        }
        None => {
            let listing = if paging.all {
                Listing::All
            } else {
                Listing::Only(MemberState::Active)
            };
            let mut rows = within.members_page(id, listing, at, paging.after, PAGE + 1)?;
            let more = rows.len() > PAGE;
            rows.truncate(PAGE);
            if rows.is_empty() {
                body.push_str("<p>No members to show.</p>\n");
            }
            let next = rows.last().filter(|_| more).map(|m| m.id);
            (rows, next)
        }
    };
    if !rows.is_empty() {
        table(within, &group.id, &rows, at, forms, &mut body)?;
    }
    if let Some(last) = next {
        body.push_str(&format!(
            "<p><a href=\"/groups/{gid}?after={last}{}\" rel=\"next\">Next page</a></p>\n",
            if paging.all { "&amp;all=true" } else { "" }
        ));
    }
    pinned(within, &group.id, forms, &mut body)?;
    Ok(body)
}

/// The memberships as rows: an ended one says why it ended, not why it began.
fn table(
    within: &Within<'_>,
    group: &str,
    rows: &[Membership],
    at: Timestamp,
    forms: Option<&str>,
    body: &mut String,
) -> Result<(), EngineError> {
    // The endings of these memberships only: a large group has many.
    let endings: HashMap<i64, (String, String)> = match (rows.first(), rows.last()) {
        (Some(first), Some(last)) if rows.iter().any(|m| m.state(at) == MemberState::Expired) => {
            within
                .endings_in(group, first.id.min(last.id), first.id.max(last.id))?
                .into_iter()
                .map(|e| (e.membership, (e.actor, e.reason)))
                .collect()
        }
        _ => HashMap::new(),
    };
    body.push_str(
        "<table>\n<thead><tr><th scope=\"col\">Customer</th><th scope=\"col\">State</th>\
         <th scope=\"col\">From</th><th scope=\"col\">Until</th>\
         <th scope=\"col\">Why</th>",
    );
    if forms.is_some() {
        body.push_str("<th scope=\"col\">Change</th>");
    }
    body.push_str("</tr></thead>\n<tbody>\n");
    let gid = escape(group);
    for m in rows {
        let member_state = m.state(at);
        let why = match (member_state, endings.get(&m.id)) {
            (MemberState::Expired, Some((actor, reason))) => {
                format!("ended by {}: {}", escape(actor), escape(reason))
            }
            _ => format!("{}: {}", escape(&m.actor), escape(&m.reason)),
        };
        let customer = escape(&m.customer);
        body.push_str(&format!(
            "<tr><td><a href=\"/customers/{customer}\">{customer}</a></td><td>{state}</td>\
             <td>{from}</td><td>{until}</td><td>{why}</td>",
            state = state_name(member_state),
            from = time(m.start),
            until = m.end.map_or_else(|| "—".to_string(), time),
        ));
        if let Some(csrf) = forms {
            body.push_str("<td>");
            if member_state != MemberState::Expired {
                body.push_str(&format!(
                    "<form method=\"post\" action=\"/groups/{gid}/members/{customer}/remove\" \
                     class=\"inline\">{csrf}<input type=\"hidden\" name=\"reason\" \
                     value=\"removed by hand\"><button type=\"submit\" \
                     aria-label=\"Remove {customer}\">Remove</button></form> "
                ));
            }
            body.push_str(&format!(
                "<form method=\"post\" action=\"/groups/{gid}/exclusions/{customer}\" \
                 class=\"inline\">{csrf}<input type=\"hidden\" name=\"pinned\" value=\"true\">\
                 <button type=\"submit\" aria-label=\"Pin {customer} out\">Pin out</button></form></td>"
            ));
        }
        body.push_str("</tr>\n");
    }
    body.push_str("</tbody>\n</table>\n");
    Ok(())
}

/// The customers pinned out of the group, each with a button to lift the pin.
fn pinned(
    within: &Within<'_>,
    group: &str,
    forms: Option<&str>,
    body: &mut String,
) -> Result<(), EngineError> {
    let mut pinned = within.exclusions(group)?;
    if pinned.is_empty() {
        return Ok(());
    }
    pinned.sort();
    let gid = escape(group);
    body.push_str(&format!(
        "<h2>Pinned out ({})</h2>\n<ul class=\"pinned\">\n",
        pinned.len()
    ));
    for c in pinned.iter().take(PAGE) {
        let c = escape(c);
        body.push_str(&format!("<li><a href=\"/customers/{c}\">{c}</a>"));
        if let Some(csrf) = forms {
            body.push_str(&format!(
                " <form method=\"post\" action=\"/groups/{gid}/exclusions/{c}\" class=\"inline\">\
                 {csrf}<input type=\"hidden\" name=\"pinned\" value=\"false\">\
                 <button type=\"submit\" aria-label=\"Unpin {c}\">Unpin</button></form>"
            ));
        }
        body.push_str("</li>\n");
    }
    body.push_str("</ul>\n");
    Ok(())
}

#[derive(Deserialize)]
pub(super) struct AddForm {
    #[serde(default)]
    csrf: String,
    customer: String,
    #[serde(default)]
    start: String,
    #[serde(default)]
    end: String,
    #[serde(default)]
    reason: String,
    /// Minutes the viewer's zone lies behind UTC (the browser's `getTimezoneOffset`),
    /// for reading the times they typed; 0 without the script.
    #[serde(default)]
    offset: i64,
}

/// A `datetime-local` value in the viewer's zone, as a time.
fn local_time(field: &str, text: &str, offset: i64) -> Result<Option<Timestamp>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let parsed = NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M")
        .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S"))
        .map_err(|e| {
            format!("{field}: `{text}` is not a date and time such as 2026-12-31T23:59: {e}")
        })?;
    Ok(Some(parsed.and_utc().timestamp() + offset * 60))
}

/// Back to the group's page, showing the customer and what was done.
fn back(group: &str, customer: &str, notice: &str) -> Response {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("customer", customer)
        .append_pair("notice", notice)
        .finish();
    Redirect::to(&format!("/groups/{group}?{query}")).into_response()
}

pub(super) async fn add(
    State(state): State<Shared>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(form): Form<AddForm>,
) -> Response {
    if let Some(refused) = viewer.refuse_form(&form.csrf) {
        return refused;
    }
    let at = now();
    let window = local_time("From", &form.start, form.offset).and_then(|start| {
        Ok((
            start.unwrap_or(at),
            local_time("Until", &form.end, form.offset)?,
        ))
    });
    let (start, end) = match window {
        Ok(window) => window,
        Err(problem) => {
            return viewer.page(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Not done",
                &format!(
                    "<h1>Not done</h1><p class=\"problem\" role=\"alert\">{}</p>",
                    escape(&problem)
                ),
            );
        }
    };
    let actor = viewer.name().to_string();
    let group = id.clone();
    let customer = form.customer.trim().to_string();
    let who = customer.clone();
    let added = viewer
        .work(&state, move |within| {
            let reason = match form.reason.trim() {
                "" => "added by hand",
                r => r,
            };
            within.add_member(&who, &group, &actor, reason, (start, end), at)
        })
        .await;
    match added {
        Ok(true) => back(&id, &customer, "added"),
        Ok(false) => back(&id, &customer, "already"),
        Err(e) => viewer.error(&e),
    }
}

#[derive(Deserialize)]
pub(super) struct ReasonForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: String,
}

pub(super) async fn remove(
    State(state): State<Shared>,
    viewer: Viewer,
    Path((id, customer)): Path<(String, String)>,
    Form(form): Form<ReasonForm>,
) -> Response {
    if let Some(refused) = viewer.refuse_form(&form.csrf) {
        return refused;
    }
    let actor = viewer.name().to_string();
    let (group, who) = (id.clone(), customer.clone());
    let ended = viewer
        .work(&state, move |within| {
            let reason = match form.reason.trim() {
                "" => "removed by hand",
                r => r,
            };
            within.remove_member(&who, &group, &actor, reason, now())
        })
        .await;
    match ended {
        Ok(0) => back(&id, &customer, "not-active"),
        Ok(_) => back(&id, &customer, "removed"),
        Err(e) => viewer.error(&e),
    }
}

#[derive(Deserialize)]
pub(super) struct PinForm {
    #[serde(default)]
    csrf: String,
    pinned: bool,
}

pub(super) async fn pin(
    State(state): State<Shared>,
    viewer: Viewer,
    Path((id, customer)): Path<(String, String)>,
    Form(form): Form<PinForm>,
) -> Response {
    if let Some(refused) = viewer.refuse_form(&form.csrf) {
        return refused;
    }
    let actor = viewer.name().to_string();
    let (group, who) = (id.clone(), customer.clone());
    let pinned = form.pinned;
    let done = viewer
        .work(&state, move |within| {
            let reason = if pinned {
                "pinned out by hand"
            } else {
                "unpinned by hand"
            };
            within.pin_exclusion(&who, &group, pinned, &actor, reason, now())
        })
        .await;
    match done {
        Ok(()) => back(&id, &customer, if pinned { "pinned" } else { "unpinned" }),
        Err(e) => viewer.error(&e),
    }
}
