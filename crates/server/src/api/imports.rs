//! Bulk assignment from CSV: upload, template, status, errors.

use axum::Json;
use axum::body::Body as RawBody;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use cohort_engine::{Engine, ImportOptions, ImportReport};
use cohort_store::{ImportProblem, ImportRecord};
use serde::Deserialize;
use utoipa::IntoParams;

use super::{Page, blocking, id_cursor, limit, page};
use crate::auth::{GlobalOperator, GlobalReader, Reader};
use crate::problem::{Path, Problem, Query, too_large_or_bad};
use crate::{Shared, now};

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UploadQuery {
    /// The file's name, for the import record.
    #[serde(default = "uploaded")]
    file_name: String,
    /// Dates without an offset are read in this IANA zone; UTC if absent.
    time_zone: Option<String>,
    /// Explicit headers as `column=header` pairs separated by `,`, e.g.
    /// `customer=Kunde,groups=Gruppen`.
    map: Option<String>,
    /// Apply the valid rows even if others are rejected.
    #[serde(default)]
    partial: bool,
    /// Validate and count; change nothing.
    #[serde(default)]
    dry_run: bool,
}

fn uploaded() -> String {
    "upload.csv".into()
}

/// Import a CSV file of customer-to-group assignments with validity windows. Without
/// `partial`, one bad row rejects the whole file and nothing changes.
#[utoipa::path(post, path = "/v1/imports", tag = "imports", params(UploadQuery),
    request_body(content = String, content_type = "text/csv"),
    responses((status = 201, body = ImportReport),
        (status = 422, description = "Rows were rejected and nothing was applied; `extra` holds the import's report", body = Problem)))]
pub async fn upload(
    State(state): State<Shared>,
    GlobalOperator(caller): GlobalOperator,
    Query(q): Query<UploadQuery>,
    body: RawBody,
) -> Result<(StatusCode, Json<ImportReport>), Problem> {
    let zone = cohort_import::time_zone(q.time_zone.as_deref().unwrap_or("UTC"))
        .map_err(|e| Problem::bad_request("time_zone", e))?;
    let mapping = cohort_import::mapping(q.map.iter().flat_map(|m| m.split(',')))
        .map_err(|e| Problem::bad_request("map", e))?;
    let csv = axum::body::to_bytes(body, state.config.max_upload_bytes)
        .await
        .map_err(|_| {
            too_large_or_bad(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the file is larger than {} bytes",
                    state.config.max_upload_bytes
                ),
            )
        })?;
    let report = blocking(&state, move |e| {
        let at = now();
        let options = ImportOptions {
            read: cohort_import::Options {
                time_zone: zone,
                now: at,
                mapping,
            },
            partial: q.partial,
            dry_run: q.dry_run,
        };
        Ok(e.import(
            &csv[..],
            &q.file_name,
            options,
            &caller.name,
            at,
            &mut |_| {},
        )?)
    })
    .await?;
    if report.record.status == "failed" {
        let r = &report.record;
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "import-rejected",
            format!(
                "import {}: {} of {} rows rejected; nothing was applied (see GET /v1/imports/{}/errors)",
                r.id, r.rejected, r.rows, r.id
            ),
        )
        .with(serde_json::to_value(&report).unwrap_or_default()));
    }
    Ok((StatusCode::CREATED, Json(report)))
}

/// The CSV template: the standard headers and an example row.
#[utoipa::path(get, path = "/v1/imports/template", tag = "imports",
    responses((status = 200, body = String, content_type = "text/csv")))]
pub async fn template(_: Reader) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"cohort-import-template.csv\"",
            ),
        ],
        cohort_import::TEMPLATE,
    )
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// The `next` of the previous page (imports come newest first).
    #[param(value_type = Option<i64>, minimum = 0)]
    before: Option<String>,
    limit: Option<usize>,
}

/// Imports, newest first.
#[utoipa::path(get, path = "/v1/imports", tag = "imports", params(ListQuery),
    responses((status = 200, body = Page<ImportRecord>)))]
pub async fn list(
    State(state): State<Shared>,
    _: GlobalReader,
    Query(q): Query<ListQuery>,
) -> Result<Json<Page<ImportRecord>>, Problem> {
    let limit = limit(q.limit)?;
    let before = id_cursor(q.before.as_deref(), "before")?;
    blocking(&state, move |e| {
        let imports = e.store().imports(before, limit + 1)?;
        Ok(Json(page(imports, limit, |i| i.id.to_string())))
    })
    .await
}

/// The import `id`: the newest below `id + 1`, if that is it.
fn find(e: &Engine, id: i64) -> Result<ImportRecord, Problem> {
    e.store()
        .imports(Some(id.saturating_add(1)), 1)?
        .into_iter()
        .find(|i| i.id == id)
        .ok_or_else(|| Problem::not_found("import", &id.to_string()))
}

/// One import's record.
#[utoipa::path(get, path = "/v1/imports/{id}", tag = "imports", params(("id" = i64, Path)),
    responses((status = 200, body = ImportRecord), (status = 404, body = Problem)))]
pub async fn show(
    State(state): State<Shared>,
    _: GlobalReader,
    Path(id): Path<i64>,
) -> Result<Json<ImportRecord>, Problem> {
    blocking(&state, move |e| find(e, id).map(Json)).await
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ErrorsQuery {
    /// The `next` of the previous page.
    #[param(value_type = Option<i64>, minimum = 0)]
    after: Option<String>,
    limit: Option<usize>,
}

/// The problems an import found, by line (line 1 is the header).
#[utoipa::path(get, path = "/v1/imports/{id}/errors", tag = "imports",
    params(("id" = i64, Path), ErrorsQuery),
    responses((status = 200, body = Page<ImportProblem>), (status = 404, body = Problem)))]
pub async fn errors(
    State(state): State<Shared>,
    _: GlobalReader,
    Path(id): Path<i64>,
    Query(q): Query<ErrorsQuery>,
) -> Result<Json<Page<ImportProblem>>, Problem> {
    let limit = limit(q.limit)?;
    let after = match q.after.as_deref() {
        None => None,
        Some(c) => Some(
            c.split_once(':')
                .and_then(|(l, s)| Some((l.parse().ok()?, s.parse().ok()?)))
                .ok_or_else(|| {
                    Problem::bad_request("after", format!("`{c}` is not a cursor this list gave"))
                })?,
        ),
    };
    blocking(&state, move |e| {
        find(e, id)?;
        let rows = e.store().import_problems_page(id, after, limit + 1)?;
        let more = rows.len() > limit;
        let next = if more {
            rows.get(limit - 1).map(|((l, s), _)| format!("{l}:{s}"))
        } else {
            None
        };
        let items = rows.into_iter().take(limit).map(|(_, p)| p).collect();
        Ok(Json(Page { items, next }))
    })
    .await
}
