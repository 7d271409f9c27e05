//! The front page: the groups the member may see, each with its mode, schedule and next
//! time, members by state, last run and uses. Counts come from the store, one pass
//! over each group's memberships, never from loading members.

use axum::response::Response;

use super::page::{escape, time};
use super::view::Viewer;
use crate::{Shared, now};

/// A small line of the group's size a day at a time, with its first and last values
/// in words for those who do not see it.
fn sparkline(daily: &[(i64, u64)]) -> String {
    let (Some((since, first)), Some((_, last))) = (daily.first(), daily.last()) else {
        return String::new();
    };
    let top = daily.iter().map(|p| p.1).max().unwrap_or(0).max(1) as f64;
    let step = 120.0 / (daily.len().max(2) - 1) as f64;
    let points: Vec<String> = daily
        .iter()
        .enumerate()
        .map(|(i, (_, n))| {
            format!(
                "{:.1},{:.1}",
                i as f64 * step,
                22.0 - 20.0 * *n as f64 / top
            )
        })
        .collect();
    let since = cohort_model::rfc3339::format(*since).replace('T', " ");
    let words = format!("{first} members at {since} UTC, {last} now");
    format!(
        "<svg class=\"spark\" width=\"120\" height=\"24\" viewBox=\"0 0 120 24\" role=\"img\" \
         aria-label=\"{words}\"><title>{words}</title>\
         <polyline fill=\"none\" stroke=\"#486581\" stroke-width=\"1.5\" points=\"{}\"/></svg>",
        points.join(" ")
    )
}

pub(super) async fn groups(state: &Shared, viewer: &Viewer) -> Response {
    // Only an operator who sees every group makes new ones.
    let new = if viewer.operates() && !viewer.scope.is_limited() {
        "<p><a href=\"/groups/new\">New group</a></p>\n"
    } else {
        ""
    };
    viewer
        .show(state, "Groups", move |within| {
            let at = now();
            let mut rows = String::new();
            for g in within.groups()? {
                let sizes = within.sizes(&g.id, at)?;
                let counts = sizes.states;
                let chart = sparkline(&sizes.daily);
                let last = within
                    .runs(Some(&g.id), None, 1)?
                    .into_iter()
                    .next()
                    .map_or_else(
                        || "never".to_string(),
                        |r| {
                            format!(
                                "{}: {}, +{} −{}",
                                time(r.started_at),
                                escape(r.status.as_str()),
                                r.added,
                                r.removed
                            )
                        },
                    );
                let mode = serde_json::to_value(g.auto.mode)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default();
                // The schedule and when it next fires, counted from its last periodic run.
                let schedule = match &g.auto.triggers.schedule {
                    None => "none".to_string(),
                    Some(s) => {
                        let next = within
                            .next_run(&g.id, at)
                            .ok()
                            .flatten()
                            .map_or_else(|| "never".to_string(), time);
                        format!(
                            "<code>{}</code> {}<br><small>next {next}</small>",
                            escape(&s.cron),
                            escape(&s.time_zone)
                        )
                    }
                };
                let used = within.uses(&g.id)?;
                let used = if used.is_empty() {
                    "—".to_string()
                } else {
                    escape(
                        &used
                            .iter()
                            .map(|(kind, entity)| format!("{kind} {entity}"))
                            .collect::<Vec<_>>()
                            .join(", "),
                    )
                };
                rows.push_str(&format!(
                    "<tr><td><a href=\"/groups/{id}\">{name}</a><br><small>{id}</small></td>\
                     <td>{mode}</td><td>{schedule}</td>\
                     <td class=\"number\">{active}</td><td class=\"number\">{pending}</td>\
                     <td class=\"number\">{expired}</td><td>{chart}</td><td>{last}</td><td>{used}</td></tr>\n",
                    name = escape(&g.name),
                    id = escape(&g.id),
                    mode = escape(&mode),
                    active = counts.active,
                    pending = counts.pending,
                    expired = counts.expired,
                ));
            }
            Ok(if rows.is_empty() {
                format!("<h1>Groups</h1>{new}<p>No groups to show.</p>")
            } else {
                format!(
                    "<h1>Groups</h1>\n{new}<table>\n<thead><tr><th scope=\"col\">Group</th>\
                     <th scope=\"col\">Mode</th><th scope=\"col\">Schedule</th>\
                     <th scope=\"col\">Active</th><th scope=\"col\">Pending</th>\
                     <th scope=\"col\">Expired</th><th scope=\"col\">Size, {days} days</th>\
                     <th scope=\"col\">Last run</th>\
                     <th scope=\"col\">Used by</th></tr></thead>\n<tbody>\n{rows}</tbody>\n</table>",
                    days = cohort_engine::DAYS
                )
            })
        })
        .await
}
