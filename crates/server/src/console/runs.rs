//! Runs: "Run now" on a group, a run's page (progress while it runs, reloading itself;
//! counts, failures and why it failed after), and the list of runs.

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use cohort_engine::Trigger;
use cohort_store::{RunRecord, RunStatus};
use serde::Deserialize;

use super::page::{escape, time};
use super::view::Viewer;
use crate::{Shared, now};

#[derive(Deserialize)]
pub(super) struct RunForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /groups/{id}/run`: start a run now, carried out in the background; its page
/// shows how far it has come.
pub(super) async fn run_now(
    State(state): State<Shared>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(form): Form<RunForm>,
) -> Response {
    if let Some(refused) = viewer.refuse_form(&form.csrf) {
        return refused;
    }
    let actor = viewer.name().to_string();
    let at = now();
    let begun = viewer
        .work(&state, move |within| {
            within.begin_run(&id, Trigger::Manual, false, &actor, at, at)
        })
        .await;
    match begun {
        Ok(begun) => {
            let run = begun.record().id;
            crate::api::runs::finish_in_background(&state, begun, at);
            Redirect::to(&format!("/runs/{run}")).into_response()
        }
        Err(e) => viewer.error(&e),
    }
}

/// `GET /runs/{id}`.
pub(super) async fn run(
    State(state): State<Shared>,
    viewer: Viewer,
    Path(id): Path<i64>,
) -> Response {
    let title = format!("Run {id}");
    let page_title = title.clone();
    viewer
        .show(&state, &page_title, move |within| {
            let run = within.run(id)?;
            let mut body = format!("<h1>{}</h1>\n", escape(&title));
            if run.status == RunStatus::Running {
                // The page reloads itself until the run ends: progress without a script.
                body.push_str("<meta http-equiv=\"refresh\" content=\"1\">\n");
                let progress = within.run_progress(id)?;
                body.push_str(&match progress {
                    Some(p) if p.total > 0 => format!(
                        "<p>Running: <progress value=\"{done}\" max=\"{total}\">{pct}%</progress> \
                         {done} of {total} {unit}</p>\n",
                        done = p.done,
                        total = p.total,
                        pct = p.done * 100 / p.total,
                        unit = p.unit
                    ),
                    _ => "<p>Running.</p>\n".to_string(),
                });
            }
            body.push_str(&details(&run));
            body.push_str(&format!(
                "<p><a href=\"/groups/{0}\">The group's members</a> · \
                 <a href=\"/runs?group={0}\">The group's runs</a></p>\n",
                escape(&run.group)
            ));
            Ok(body)
        })
        .await
}

fn details(run: &RunRecord) -> String {
    let mut out = format!(
        "<table class=\"facts\"><tbody>\
         <tr><th scope=\"row\">Group</th><td><a href=\"/groups/{g}\">{g}</a></td></tr>\
         <tr><th scope=\"row\">Status</th><td class=\"status\">{status}</td></tr>\
         <tr><th scope=\"row\">Started</th><td>{started} by {actor} ({trigger})</td></tr>\
         <tr><th scope=\"row\">Ended</th><td>{ended}</td></tr>\
         <tr><th scope=\"row\">Customers</th><td>{customers} checked, {matched} match, \
         {undecided} undecided</td></tr>\
         <tr><th scope=\"row\">Changes</th><td class=\"changes\">{added} added, {removed} removed</td></tr>",
        g = escape(&run.group),
        status = escape(run.status.as_str()),
        started = time(run.started_at),
        actor = escape(&run.actor),
        trigger = escape(run.trigger.as_str()),
        ended = run.finished_at.map_or_else(|| "—".to_string(), time),
        customers = run.customers,
        matched = run.matched,
        undecided = run.undecided,
        added = run.added,
        removed = run.removed,
    );
    if let Some(e) = &run.error {
        out.push_str(&format!(
            "<tr><th scope=\"row\">Why it failed</th><td class=\"problem\">{}</td></tr>",
            escape(e)
        ));
    }
    if !run.failures.is_empty() {
        out.push_str(&format!(
            "<tr><th scope=\"row\">Plugin failures</th><td>{}</td></tr>",
            run.failures
                .iter()
                .map(|(f, n)| format!("{} ({n} customers)", escape(f)))
                .collect::<Vec<_>>()
                .join("<br>")
        ));
    }
    out.push_str("</tbody></table>\n");
    out
}

#[derive(Deserialize)]
pub(super) struct RunsQuery {
    group: Option<String>,
    before: Option<i64>,
}

/// Runs per page.
const PAGE: usize = 50;

/// `GET /runs`: the runs of the groups the member sees, newest first.
pub(super) async fn runs(
    State(state): State<Shared>,
    viewer: Viewer,
    Query(q): Query<RunsQuery>,
) -> Response {
    viewer
        .show(&state, "Runs", move |within| {
            let group = q.group.as_deref().filter(|g| !g.is_empty());
            let runs = within.runs(group, q.before, PAGE + 1)?;
            let mut body = match group {
                Some(g) => format!(
                    "<h1>Runs</h1>\n<p>Of <a href=\"/groups/{0}\">{0}</a> · <a href=\"/runs\">every group</a></p>\n",
                    escape(g)
                ),
                None => "<h1>Runs</h1>\n".to_string(),
            };
            if runs.is_empty() {
                body.push_str("<p>No runs.</p>\n");
                return Ok(body);
            }
            body.push_str(
                "<table>\n<thead><tr><th scope=\"col\">Run</th><th scope=\"col\">Group</th>\
                 <th scope=\"col\">Started</th><th scope=\"col\">By</th><th scope=\"col\">Status</th>\
                 <th scope=\"col\">Added</th><th scope=\"col\">Removed</th>\
                 <th scope=\"col\">Problem</th></tr></thead>\n<tbody>\n",
            );
            for r in runs.iter().take(PAGE) {
                body.push_str(&format!(
                    "<tr><td><a href=\"/runs/{id}\">{id}</a>{dry}</td><td>{g}</td><td>{started}</td>\
                     <td>{actor}</td><td>{status}</td><td class=\"number\">{added}</td>\
                     <td class=\"number\">{removed}</td><td>{problem}</td></tr>\n",
                    id = r.id,
                    dry = if r.dry_run { " (dry)" } else { "" },
                    g = escape(&r.group),
                    started = time(r.started_at),
                    actor = escape(&r.actor),
                    status = escape(r.status.as_str()),
                    added = r.added,
                    removed = r.removed,
                    problem = escape(r.error.as_deref().unwrap_or("")),
                ));
            }
            body.push_str("</tbody>\n</table>\n");
            if runs.len() > PAGE
                && let Some(last) = runs.get(PAGE - 1)
            {
                body.push_str(&format!(
                    "<p><a href=\"/runs?before={}{}\" rel=\"next\">Older runs</a></p>\n",
                    last.id,
                    group
                        .map(|g| format!("&amp;group={}", escape(g)))
                        .unwrap_or_default()
                ));
            }
            Ok(body)
        })
        .await
}
