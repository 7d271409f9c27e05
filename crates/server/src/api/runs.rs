//! Runs of a group's rule, dry runs, and explanations.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use cohort_engine::{Trigger, Why};
use cohort_planner::Change;
use cohort_store::RunRecord;
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

/// Run a group's rule over every customer now, or a dry run. Answers when the run ends.
#[utoipa::path(post, path = "/v1/groups/{id}/runs", tag = "runs",
    params(("id" = String, Path)), request_body = RunRequest,
    responses((status = 201, description = "The run, which wrote its changes", body = RunResult),
        (status = 200, description = "The dry run, which wrote nothing", body = RunResult),
        (status = 404, body = Problem),
        (status = 409, description = "The group is disabled or takes no manual runs", body = Problem)))]
pub async fn start(
    State(state): State<Shared>,
    Operator(caller): Operator,
    Path(id): Path<String>,
    Body(req): Body<RunRequest>,
) -> Result<(StatusCode, Json<RunResult>), Problem> {
    let at = now();
    let as_of = time(req.as_of.as_deref(), "as_of", at)?;
    let metrics_state = state.clone();
    let result = blocking(&state, move |e| {
        let report = e.run_group(
            &id,
            Trigger::Manual,
            req.dry_run,
            &caller.name,
            as_of,
            at,
            &mut |_, _| {},
        )?;
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
    metrics_state
        .metrics
        .run(Trigger::Manual, result.run.status);
    // A dry run creates nothing (its record is only history).
    let status = if result.run.dry_run {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(result)))
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
    _: Reader,
    Query(q): Query<ListQuery>,
) -> Result<Json<Page<RunRecord>>, Problem> {
    let limit = limit(q.limit)?;
    let before = id_cursor(q.before.as_deref(), "before")?;
    blocking(&state, move |e| {
        let runs = e.store().runs(q.group.as_deref(), before, limit + 1)?;
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
    _: Reader,
    Path((id, customer)): Path<(String, String)>,
    Query(q): Query<ExplainQuery>,
) -> Result<Json<Why>, Problem> {
    let as_of = time(q.as_of.as_deref(), "as_of", now())?;
    blocking(&state, move |e| Ok(Json(e.explain(&customer, &id, as_of)?))).await
}
