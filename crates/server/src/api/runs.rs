//! Runs of a group's rule, dry runs, and explanations.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use cohort_engine::{Begun, Cancel, Progress, Trigger, Why};
use cohort_planner::Change;
use cohort_store::{RunRecord, RunStatus};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{Page, blocking, id_cursor, limit, page, time};
use crate::auth::{Operator, Reader};
use crate::problem::{Body, Path, Problem, Query};
use crate::{Shared, now};

/// Changes shown in a run's answer at most; the run record has the counts.
const SHOWN_CHANGES: usize = 1000;

/// How to run a group's rule.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    /// Compute the changes and apply none.
    #[serde(default)]
    pub dry_run: bool,
    /// Evaluate as of this time (RFC 3339); now if absent.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub as_of: Option<String>,
    /// Answer when the run ends, with its changes (for a small group); otherwise the
    /// answer comes at once and the run goes on without the client.
    #[serde(default)]
    pub wait: bool,
}

/// What a run did, or for a dry run would do.
#[derive(Serialize, ToSchema)]
pub struct RunResult {
    pub run: RunRecord,
    /// The first changes, in order (at most 1000). On PostgreSQL, where workers share
    /// the run's ranges, those this server wrote; the others are in the history.
    pub changes: Vec<Change>,
    pub changes_total: u64,
    pub seconds: f64,
}

/// Carry out a run begun now on the blocking pool, not tied to the request that began
/// it: the run goes on if the client goes away. A dry run's changes are kept for
/// paging.
pub(crate) fn finish_in_background(state: &Shared, begun: Begun, at: i64) {
    let background = state.clone();
    tokio::task::spawn_blocking(move || {
        let run = begun.record().id;
        match background.engine.complete_run(begun, at, &mut |_, _| {}) {
            Ok(report) => {
                background.metrics.run(Trigger::Manual, report.run.status);
                if report.run.dry_run {
                    background.dry_runs.keep(run, report.changes);
                }
            }
            Err(e) => {
                tracing::warn!(run, error = %e, "a run started by hand did not finish");
                let status = match e {
                    cohort_engine::EngineError::Cancelled { .. } => RunStatus::Cancelled,
                    _ => RunStatus::Failed,
                };
                background.metrics.run(Trigger::Manual, status);
            }
        }
    });
}

/// Run a group's rule over every customer now, or a dry run. Answers at once with the
/// run as recorded (`202`, `Location: /v1/runs/{id}`): the run goes on whether or not
/// the client stays, and `GET /v1/runs/{id}` shows how far it has come; a dry run's
/// changes are then paged from `GET /v1/runs/{id}/changes`. With `"wait": true` the
/// answer comes when the run ends, with its first changes.
#[utoipa::path(post, path = "/v1/groups/{id}/runs", tag = "runs",
    params(("id" = String, Path)), request_body = RunRequest,
    responses((status = 202, description = "The run, started", body = RunRecord,
            headers(("Location" = String, description = "Where the run's state is read"))),
        (status = 201, description = "With `wait`: the run, which wrote its changes", body = RunResult),
        (status = 200, description = "With `wait`: the dry run, which wrote nothing", body = RunResult),
        (status = 404, body = Problem),
        (status = 409, description = "The group is disabled or takes no manual runs", body = Problem)))]
pub async fn start(
    State(state): State<Shared>,
    Operator(caller): Operator,
    Path(id): Path<String>,
    Body(req): Body<RunRequest>,
) -> Result<Response, Problem> {
    let at = now();
    let as_of = time(req.as_of.as_deref(), "as_of", at)?;
    let dry_run = req.dry_run;
    let begun = blocking(&state, move |e| {
        Ok(e.within(&caller.scope).begin_run(
            &id,
            Trigger::Manual,
            dry_run,
            &caller.name,
            as_of,
            at,
        )?)
    })
    .await?;
    if !req.wait {
        let record = begun.record().clone();
        let location = format!("/v1/runs/{}", record.id);
        finish_in_background(&state, begun, at);
        return Ok((
            StatusCode::ACCEPTED,
            [(header::LOCATION, location)],
            Json(record),
        )
            .into_response());
    }
    let result = blocking(&state, move |e| {
        let report = e.complete_run(begun, at, &mut |_, _| {})?;
        let changes_total = report.changes.len() as u64;
        let mut changes = report.changes;
        changes.truncate(SHOWN_CHANGES);
        Ok(RunResult {
            run: report.run,
            changes,
            changes_total,
            seconds: report.seconds,
        })
    })
    .await?;
    state.metrics.run(Trigger::Manual, result.run.status);
    // A dry run creates nothing (its record is only history).
    let status = if result.run.dry_run {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(result)).into_response())
}

/// A run and how far it has come.
#[derive(Serialize, ToSchema)]
pub struct RunState {
    pub run: RunRecord,
    /// While it runs, when it is known: counted by the server carrying it out, or, for
    /// a scan shared by workers, from the store.
    pub progress: Option<Progress>,
}

/// One run: its state, counts, and, while it runs, its progress.
#[utoipa::path(get, path = "/v1/runs/{id}", tag = "runs", params(("id" = i64, Path)),
    responses((status = 200, body = RunState), (status = 404, body = Problem)))]
pub async fn show(
    State(state): State<Shared>,
    Reader(caller): Reader,
    Path(id): Path<i64>,
) -> Result<Json<RunState>, Problem> {
    blocking(&state, move |e| {
        let within = e.within(&caller.scope);
        let run = within.run(id)?;
        let progress = match run.status {
            RunStatus::Running => within.run_progress(id)?,
            _ => None,
        };
        Ok(Json(RunState { run, progress }))
    })
    .await
}

/// What a cancellation did.
#[derive(Serialize, ToSchema)]
pub struct Cancellation {
    /// `requested`: the server carrying the run out stops it at its next page of
    /// customers, applying nothing, and records it `cancelled`; `cancelled`: a scan
    /// shared by workers was stopped in the store (ranges already committed stay).
    pub outcome: &'static str,
    pub run: RunRecord,
}

/// Cancel a running run.
#[utoipa::path(post, path = "/v1/runs/{id}/cancel", tag = "runs", params(("id" = i64, Path)),
    responses((status = 202, description = "The run stops at its next page", body = Cancellation),
        (status = 200, description = "The scan was stopped", body = Cancellation),
        (status = 404, body = Problem),
        (status = 409, description = "The run is not running, or runs in a process this server cannot reach", body = Problem)))]
pub async fn cancel(
    State(state): State<Shared>,
    Operator(caller): Operator,
    Path(id): Path<i64>,
) -> Result<(StatusCode, Json<Cancellation>), Problem> {
    blocking(&state, move |e| {
        let (status, outcome) = match e.within(&caller.scope).cancel_run(id, &caller.name, now())? {
            Cancel::Requested => (StatusCode::ACCEPTED, "requested"),
            Cancel::Cancelled => (StatusCode::OK, "cancelled"),
            Cancel::Ended(status) => {
                return Err(Problem::new(
                    StatusCode::CONFLICT,
                    "run-not-running",
                    format!("run {id} is not running: it ended {}", status.as_str()),
                ));
            }
            Cancel::Elsewhere => {
                return Err(Problem::new(
                    StatusCode::CONFLICT,
                    "run-elsewhere",
                    format!(
                        "run {id} is carried out by another process on this store file, which alone can stop it"
                    ),
                ));
            }
        };
        let run = e
            .store()
            .run(id)?
            .ok_or_else(|| Problem::not_found("run", &id.to_string()))?;
        Ok((status, Json(Cancellation { outcome, run })))
    })
    .await
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ChangesQuery {
    /// The `next` of the previous page: how many changes came before.
    #[param(value_type = Option<i64>, minimum = 0)]
    after: Option<String>,
    limit: Option<usize>,
}

/// The changes a dry run would make, in order, paged: kept for an hour after a dry run
/// started without `wait` ends (the latest 16).
#[utoipa::path(get, path = "/v1/runs/{id}/changes", tag = "runs",
    params(("id" = i64, Path), ChangesQuery),
    responses((status = 200, body = Page<Change>), (status = 404, body = Problem),
        (status = 409, description = "The dry run has not ended yet", body = Problem)))]
pub async fn changes(
    State(state): State<Shared>,
    Reader(caller): Reader,
    Path(id): Path<i64>,
    Query(q): Query<ChangesQuery>,
) -> Result<Json<Page<Change>>, Problem> {
    let limit = limit(q.limit)?;
    let after = id_cursor(q.after.as_deref(), "after")?.unwrap_or(0) as usize;
    let kept = state.dry_runs.changes(id);
    blocking(&state, move |e| {
        let run = e.within(&caller.scope).run(id)?;
        let Some(changes) = kept else {
            if run.dry_run && run.status == RunStatus::Running {
                return Err(Problem::new(
                    StatusCode::CONFLICT,
                    "run-not-ended",
                    format!("dry run {id} has not ended yet: see GET /v1/runs/{id}"),
                ));
            }
            return Err(Problem::new(
                StatusCode::NOT_FOUND,
                "not-found",
                format!(
                    "no changes are kept for run {id}: they are for dry runs started without `wait`, for an hour (a run's changes are in the history)"
                ),
            ));
        };
        let items: Vec<Change> = changes.iter().skip(after).take(limit).cloned().collect();
        let next = (after + items.len() < changes.len()).then(|| (after + items.len()).to_string());
        Ok(Json(Page { items, next }))
    })
    .await
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only this group's runs.
    group: Option<String>,
    /// The `next` of the previous page (runs come newest first).
    #[param(value_type = Option<i64>, minimum = 0)]
    before: Option<String>,
    limit: Option<usize>,
}

/// Runs, newest first.
#[utoipa::path(get, path = "/v1/runs", tag = "runs", params(ListQuery),
    responses((status = 200, body = Page<RunRecord>)))]
pub async fn list(
    State(state): State<Shared>,
    Reader(caller): Reader,
    Query(q): Query<ListQuery>,
) -> Result<Json<Page<RunRecord>>, Problem> {
    let limit = limit(q.limit)?;
    let before = id_cursor(q.before.as_deref(), "before")?;
    blocking(&state, move |e| {
        let runs = e
            .within(&caller.scope)
            .runs(q.group.as_deref(), before, limit + 1)?;
        Ok(Json(page(runs, limit, |r| r.id.to_string())))
    })
    .await
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ExplainQuery {
    /// Explain as of this time (RFC 3339); now if absent.
    #[param(value_type = Option<String>, format = DateTime)]
    as_of: Option<String>,
}

/// Why a customer is or is not a member: every condition's verdict, every clause's
/// outcome, and the customer's memberships in the group.
#[utoipa::path(get, path = "/v1/groups/{id}/explain/{customer}", tag = "runs",
    params(("id" = String, Path), ("customer" = String, Path), ExplainQuery),
    responses((status = 200, body = Why), (status = 404, body = Problem)))]
pub async fn explain(
    State(state): State<Shared>,
    Reader(caller): Reader,
    Path((id, customer)): Path<(String, String)>,
    Query(q): Query<ExplainQuery>,
) -> Result<Json<Why>, Problem> {
    let as_of = time(q.as_of.as_deref(), "as_of", now())?;
    blocking(&state, move |e| {
        Ok(Json(
            e.within(&caller.scope).explain(&customer, &id, as_of)?,
        ))
    })
    .await
}
