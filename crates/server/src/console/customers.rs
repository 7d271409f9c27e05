//! A customer: their facts, every membership in the groups the member sees with its
//! state and window, the groups they are pinned out of, their history, and why they
//! are or are not in a group: each condition's verdict, negation as the rule reads it,
//! and the facts the condition read.

use axum::extract::{Path, Query, State};
use axum::response::Response;
use cohort_engine::{EngineError, HIDDEN_GROUP, Within};
use cohort_evaluator::Decision;
use cohort_model::{Condition, CustomerRecord};
use cohort_store::HistoryQuery;
use serde::Deserialize;

use super::page::{escape, state_name, time};
use super::view::Viewer;
use crate::{Shared, now};

/// History entries shown on a customer's page.
const HISTORY: usize = 50;

pub(super) async fn customer(
    State(state): State<Shared>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Response {
    let title = id.clone();
    viewer
        .show(&state, &title, move |within| page(within, &id))
        .await
}

/// The customer's facts as a table of the fields they have.
fn facts(record: &CustomerRecord) -> String {
    let mut out = String::from("<table class=\"facts\">\n<tbody>\n");
    if let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(record) {
        for (name, value) in fields.iter().filter(|(name, _)| *name != "id") {
            out.push_str(&format!(
                "<tr><th scope=\"row\">{}</th><td><code>{}</code></td></tr>\n",
                escape(&name.replace('_', " ")),
                escape(&shown(value))
            ));
        }
    }
    out.push_str("</tbody>\n</table>\n");
    out
}

/// A fact's value as an operator reads it: text without quotes, the rest as JSON.
fn shown(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        v => v.to_string(),
    }
}

fn page(within: &Within<'_>, id: &str) -> Result<String, EngineError> {
    let record = within.customer(id)?;
    let at = now();
    let cid = escape(&record.id);
    let mut body = format!(
        "<h1>Customer {cid}</h1>\n<h2>Facts</h2>\n{}",
        facts(&record)
    );

    let memberships = within.customer_memberships(id)?;
    let endings: std::collections::HashMap<i64, (String, String)> = within
        .customer_endings(id)?
        .into_iter()
        .map(|e| (e.membership, (e.actor, e.reason)))
        .collect();
    body.push_str("<h2>Groups</h2>\n");
    if memberships.is_empty() {
        body.push_str("<p>No memberships in the groups you see.</p>\n");
    } else {
        body.push_str(
            "<table>\n<thead><tr><th scope=\"col\">Group</th><th scope=\"col\">State</th>\
             <th scope=\"col\">From</th><th scope=\"col\">Until</th>\
             <th scope=\"col\">Why</th></tr></thead>\n<tbody>\n",
        );
        for m in &memberships {
            let g = escape(&m.group);
            let member_state = m.state(at);
            // An ended membership says why it ended, not why it began.
            let why = match (member_state, endings.get(&m.id)) {
                (cohort_model::State::Expired, Some((actor, reason))) => {
                    format!("ended by {}: {}", escape(actor), escape(reason))
                }
                _ => format!("{}: {}", escape(&m.actor), escape(&m.reason)),
            };
            body.push_str(&format!(
                "<tr><td><a href=\"/groups/{g}?customer={cid}\">{g}</a></td><td>{}</td>\
                 <td>{}</td><td>{}</td><td>{why}</td></tr>\n",
                state_name(member_state),
                time(m.start),
                m.end.map_or_else(|| "—".to_string(), time),
            ));
        }
        body.push_str("</tbody>\n</table>\n");
    }
    let pinned = within.excluded_from(id)?;
    if !pinned.is_empty() {
        body.push_str(&format!(
            "<p>Pinned out of: {}</p>\n",
            pinned
                .iter()
                .map(|g| format!("<a href=\"/groups/{0}\">{0}</a>", escape(g)))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }

    let groups = within.groups()?;
    if !groups.is_empty() {
        body.push_str(&format!(
            "<h2>Why</h2>\n<form method=\"get\" action=\"/customers/{cid}/why\" class=\"inline\">\
             <label for=\"why-group\">Group</label><select id=\"why-group\" name=\"group\">{}</select>\
             <button type=\"submit\">Explain</button></form>\n",
            groups
                .iter()
                .map(|g| format!(
                    "<option value=\"{0}\">{1} ({0})</option>",
                    escape(&g.id),
                    escape(&g.name)
                ))
                .collect::<String>()
        ));
    }

    let query = HistoryQuery {
        customer: Some(id.to_string()),
        ..HistoryQuery::default()
    };
    let entries = within.history(query, None, HISTORY)?;
    body.push_str("<h2>History</h2>\n");
    body.push_str(&super::history::table(&entries));
    if entries.len() == HISTORY {
        body.push_str(&format!(
            "<p><a href=\"/history?customer={cid}\">All of this customer's history</a></p>\n"
        ));
    }
    Ok(body)
}

#[derive(Deserialize)]
pub(super) struct WhyQuery {
    group: String,
}

pub(super) async fn why(
    State(state): State<Shared>,
    viewer: Viewer,
    Path(id): Path<String>,
    Query(q): Query<WhyQuery>,
) -> Response {
    let title = format!("Why: {id} in {}", q.group);
    viewer
        .show(&state, &title, move |within| explain(within, &id, &q.group))
        .await
}

fn yes_no(holds: Option<bool>) -> &'static str {
    match holds {
        Some(true) => "holds",
        Some(false) => "does not hold",
        None => "undecided",
    }
}

fn explain(within: &Within<'_>, customer: &str, group: &str) -> Result<String, EngineError> {
    let at = now();
    let why = within.explain(customer, group, at)?;
    let record = within.customer(customer)?;
    let fields = serde_json::to_value(&record).unwrap_or_default();
    let g = within.group(group)?;
    let (cid, gid) = (escape(customer), escape(group));
    let decision = match why.explanation.decision {
        Decision::Member => "a member",
        Decision::NotMember => "not a member",
        Decision::Undecided => {
            "undecided (a condition could not decide; the membership stays as it is)"
        }
    };
    let mut body = format!(
        "<h1>Why <a href=\"/customers/{cid}\">{cid}</a> in <a href=\"/groups/{gid}\">{name}</a></h1>\n\
         <p>As of {}, the rule says: <strong class=\"decision\">{}</strong>.</p>\n",
        time(at),
        decision,
        name = escape(&g.name),
    );
    if why.explanation.clauses.is_empty() {
        body.push_str("<p>The group has no rule: membership is by hand only.</p>\n");
    }
    body.push_str("<ol class=\"clauses\">\n");
    for (i, clause) in why.explanation.clauses.iter().enumerate() {
        body.push_str(&format!(
            "<li>Clause {} (any of these): <strong>{}</strong>\n<ul>\n",
            i + 1,
            yes_no(clause.holds)
        ));
        for c in &clause.conditions {
            // The plugin's own sentence; from a plugin too old to explain itself, the
            // facts it read of this customer.
            let because = match &c.because {
                Some(because) => format!(" Because {}.", escape(because)),
                None => {
                    let plugin = c.condition.plugin().map_or("", |p| p.plugin.as_str());
                    let read = within
                        .plugin_reads(plugin)
                        .map(|fields_read| {
                            fields_read
                                .iter()
                                .map(|f| {
                                    let value =
                                        fields.get(f).map_or_else(|| "none".to_string(), shown);
                                    format!("{} = <code>{}</code>", escape(f), escape(&value))
                                })
                                .collect::<Vec<_>>()
                                .join("; ")
                        })
                        .unwrap_or_default();
                    if read.is_empty() {
                        String::new()
                    } else {
                        format!(" <small>Read: {read}</small>")
                    }
                }
            };
            let until = c.until.map_or_else(String::new, |t| {
                format!(
                    " <small>Holds until {} unless the customer's facts change.</small>",
                    time(t)
                )
            });
            let is = if c.condition.negate() { "is not" } else { "is" };
            let condition = match &c.condition {
                Condition::Plugin(p) => format!(
                    "{is} <code>{}</code> <code>{}</code></span>: the plugin answers <em>{}</em>",
                    escape(&p.plugin),
                    escape(&p.config.to_string()),
                    escape(&c.verdict),
                ),
                Condition::Group(g) => format!(
                    "{is} a member of <a href=\"/groups/{0}\">{0}</a></span>",
                    escape(&g.group)
                ),
            };
            body.push_str(&format!(
                "<li><span class=\"condition\">{condition}, so this {holds}.{because}{until}</li>\n",
                holds = yes_no(c.holds),
            ));
        }
        body.push_str("</ul></li>\n");
    }
    body.push_str("</ol>\n");
    if why.pinned_out {
        body.push_str(
            "<p class=\"notice\">The customer is pinned out of this group: the rule never adds them.</p>\n",
        );
    }
    if why.disabled {
        body.push_str(
            "<p class=\"notice\">The group's rule is disabled: it does not run, whatever it says.</p>\n",
        );
    }
    if let Some(x) = &g.exclusive {
        body.push_str(&format!(
            "<p>The group is in exclusive set <code>{}</code> at priority {} (a lower number \
             wins: a customer in a group of the set with a lower number is not added here).",
            escape(&x.set),
            x.priority
        ));
        match &why.ahead {
            Some(rival) if rival == HIDDEN_GROUP => body.push_str(&format!(
                " The customer is in {rival}, which comes first.</p>\n"
            )),
            Some(rival) => body.push_str(&format!(
                " The customer is in `{}`, which comes first.</p>\n",
                escape(rival)
            )),
            None => body.push_str(" No group ahead of it holds the customer.</p>\n"),
        }
    }
    let held: Vec<String> = why
        .memberships
        .iter()
        .map(|(m, state)| {
            format!(
                "{} from {} until {} ({}: {})",
                state_name(*state),
                time(m.start),
                m.end.map_or_else(|| "—".to_string(), time),
                escape(&m.actor),
                escape(&m.reason)
            )
        })
        .collect();
    body.push_str(&if held.is_empty() {
        "<p>The customer has no membership in this group.</p>\n".to_string()
    } else {
        format!(
            "<h2>Memberships</h2>\n<ul>\n<li>{}</li>\n</ul>\n",
            held.join("</li>\n<li>")
        )
    });
    Ok(body)
}
