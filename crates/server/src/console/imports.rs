//! Imports: the template to download, a file to upload with its time zone, header
//! mapping, dry run and partial options, the recent imports with status and counts,
//! and one import's problems by line and column. An import spans every group, so an
//! account limited to groups is refused.

use axum::extract::{Multipart, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use cohort_engine::{EngineError, ImportOptions};
use cohort_store::ImportRecord;
use serde::Deserialize;

use super::page::{escape, time};
use super::view::Viewer;
use crate::{Shared, now};

/// Imports listed, and problems shown, per page.
const PAGE: usize = 50;

/// `GET /imports`.
pub(super) async fn imports(State(state): State<Shared>, viewer: Viewer) -> Response {
    let form = viewer.operates().then(|| viewer.csrf_field());
    viewer
        .show(&state, "Imports", move |within| {
            let engine = within.unlimited("import: an import spans every group")?;
            let recent = engine.store().imports(None, PAGE)?;
            let mut body = String::from(
                "<h1>Imports</h1>\n<p>A file of customers and the groups they belong to, with \
                 windows: <a href=\"/imports/template\" download>download the template</a>.</p>\n",
            );
            if let Some(csrf) = form {
                body.push_str(&format!(
                    "<form method=\"post\" action=\"/imports\" enctype=\"multipart/form-data\" \
                     class=\"stacked\">{csrf}\
                     <label for=\"file\">CSV file</label>\
                     <input id=\"file\" name=\"file\" type=\"file\" accept=\".csv,text/csv\" required>\
                     <label for=\"time_zone\">Time zone of dates without an offset</label>\
                     <input id=\"time_zone\" name=\"time_zone\" value=\"UTC\">\
                     <label for=\"map\">Headers, if the file names columns its own way \
                     (column=header, one per line: customer, groups, valid_from, valid_to, reason)</label>\
                     <textarea id=\"map\" name=\"map\" rows=\"3\" placeholder=\"customer=Kunde\"></textarea>\
                     <div class=\"field check\"><input type=\"checkbox\" id=\"dry_run\" name=\"dry_run\" \
                     value=\"true\" checked><label for=\"dry_run\">Dry run: check and count, change nothing</label></div>\
                     <div class=\"field check\"><input type=\"checkbox\" id=\"partial\" name=\"partial\" \
                     value=\"true\"><label for=\"partial\">Apply the good rows even if others are wrong</label></div>\
                     <button type=\"submit\">Import</button></form>\n"
                ));
            }
            body.push_str("<h2>Recent imports</h2>\n");
            body.push_str(&table(&recent));
            Ok(body)
        })
        .await
}

fn table(imports: &[ImportRecord]) -> String {
    if imports.is_empty() {
        return "<p>No imports yet.</p>\n".to_string();
    }
    let mut out = String::from(
        "<table>\n<thead><tr><th scope=\"col\">Import</th><th scope=\"col\">File</th>\
         <th scope=\"col\">By</th><th scope=\"col\">When</th><th scope=\"col\">Status</th>\
         <th scope=\"col\">Rows</th><th scope=\"col\">Added</th><th scope=\"col\">Updated</th>\
         <th scope=\"col\">Rejected</th></tr></thead>\n<tbody>\n",
    );
    for i in imports {
        out.push_str(&format!(
            "<tr><td><a href=\"/imports/{id}\">{id}</a></td><td>{file}</td><td>{actor}</td>\
             <td>{at}</td><td>{status}{dry}</td><td class=\"number\">{rows}</td>\
             <td class=\"number\">{added}</td><td class=\"number\">{updated}</td>\
             <td class=\"number\">{rejected}</td></tr>\n",
            id = i.id,
            file = escape(&i.file_name),
            actor = escape(&i.actor),
            at = time(i.started_at),
            status = escape(&i.status),
            dry = if i.dry_run { " (dry run)" } else { "" },
            rows = i.rows,
            added = i.added,
            updated = i.updated,
            rejected = i.rejected,
        ));
    }
    out.push_str("</tbody>\n</table>\n");
    out
}

/// `GET /imports/template`: the CSV template, as the API serves it.
pub(super) async fn template(_: Viewer) -> Response {
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
        .into_response()
}

/// What the upload form sends.
#[derive(Default)]
struct Upload {
    csrf: String,
    file_name: String,
    csv: Vec<u8>,
    time_zone: String,
    map: String,
    dry_run: bool,
    partial: bool,
}

/// Read the form, the file no larger than `limit` bytes.
async fn read_upload(mut form: Multipart, limit: usize) -> Result<Upload, String> {
    let mut upload = Upload::default();
    while let Some(mut field) = form.next_field().await.map_err(|e| e.to_string())? {
        let name = field.name().unwrap_or_default().to_string();
        if name == "file" {
            upload.file_name = field.file_name().unwrap_or("upload.csv").to_string();
            while let Some(chunk) = field.chunk().await.map_err(|e| e.to_string())? {
                if upload.csv.len() + chunk.len() > limit {
                    return Err(format!("the file is larger than {limit} bytes"));
                }
                upload.csv.extend_from_slice(&chunk);
            }
            continue;
        }
        let text = field.text().await.map_err(|e| e.to_string())?;
        match name.as_str() {
            "csrf" => upload.csrf = text,
            "time_zone" => upload.time_zone = text,
            "map" => upload.map = text,
            "dry_run" => upload.dry_run = true,
            "partial" => upload.partial = true,
            _ => {}
        }
    }
    Ok(upload)
}

/// `POST /imports`: import the file, then show what it did.
pub(super) async fn upload(
    State(state): State<Shared>,
    viewer: Viewer,
    form: Multipart,
) -> Response {
    let upload = match read_upload(form, state.config.max_upload_bytes).await {
        Ok(u) => u,
        Err(problem) => return not_done(&viewer, StatusCode::BAD_REQUEST, &problem),
    };
    if let Some(refused) = viewer.refuse_form(&upload.csrf) {
        return refused;
    }
    let zone = match cohort_import::time_zone(match upload.time_zone.trim() {
        "" => "UTC",
        z => z,
    }) {
        Ok(z) => z,
        Err(e) => return not_done(&viewer, StatusCode::BAD_REQUEST, &format!("Time zone: {e}")),
    };
    let mapping =
        match cohort_import::mapping(upload.map.lines().map(str::trim).filter(|l| !l.is_empty())) {
            Ok(m) => m,
            Err(e) => return not_done(&viewer, StatusCode::BAD_REQUEST, &format!("Headers: {e}")),
        };
    let actor = viewer.name().to_string();
    let imported = viewer
        .work(&state, move |within| {
            let engine = within.unlimited("import: an import spans every group")?;
            let at = now();
            let options = ImportOptions {
                read: cohort_import::Options {
                    time_zone: zone,
                    now: at,
                    mapping,
                },
                partial: upload.partial,
                dry_run: upload.dry_run,
            };
            engine.import(
                &upload.csv[..],
                &upload.file_name,
                options,
                &actor,
                at,
                &mut |_| {},
            )
        })
        .await;
    match imported {
        Ok(report) => Redirect::to(&format!("/imports/{}", report.record.id)).into_response(),
        Err(e) => viewer.error(&e),
    }
}

fn not_done(viewer: &Viewer, status: StatusCode, problem: &str) -> Response {
    viewer.page(
        status,
        "Not done",
        &format!(
            "<h1>Not done</h1><p class=\"problem\" role=\"alert\">{}</p>\
             <p><a href=\"/imports\">Back to imports</a></p>",
            escape(problem)
        ),
    )
}

#[derive(Deserialize)]
pub(super) struct ProblemsPage {
    /// The last problem of the page before, as `line:seq`.
    after: Option<String>,
}

/// `GET /imports/{id}`: the import's record and its problems, by line and column.
pub(super) async fn import(
    State(state): State<Shared>,
    viewer: Viewer,
    Path(id): Path<i64>,
    Query(q): Query<ProblemsPage>,
) -> Response {
    let after = q
        .after
        .as_deref()
        .and_then(|c| c.split_once(':'))
        .and_then(|(l, s)| Some((l.parse().ok()?, s.parse().ok()?)));
    viewer
        .show(&state, &format!("Import {id}"), move |within| {
            let engine = within.unlimited("read imports: an import spans every group")?;
            let store = engine.store();
            let record = store
                .imports(Some(id.saturating_add(1)), 1)?
                .into_iter()
                .find(|i| i.id == id)
                .ok_or(EngineError::NotFound {
                    what: "import",
                    id: id.to_string(),
                })?;
            let mut body = format!(
                "<h1>Import {id}</h1>\n<p><a href=\"/imports\">All imports</a></p>\n{}",
                table(std::slice::from_ref(&record))
            );
            let summary = match record.status.as_str() {
                "failed" => format!(
                    "{} of {} rows were rejected; nothing was applied. Mend the lines below \
                     and import the file again.",
                    record.rejected, record.rows
                ),
                "validated" => format!(
                    "A dry run: {} rows checked, {} would be rejected; nothing was changed.",
                    record.rows, record.rejected
                ),
                _ => format!(
                    "{} added, {} updated, {} unchanged, {} rejected.",
                    record.added, record.updated, record.unchanged, record.rejected
                ),
            };
            body.push_str(&format!("<p class=\"summary\">{}</p>\n", escape(&summary)));
            let rows = store.import_problems_page(id, after, PAGE + 1)?;
            if rows.is_empty() {
                return Ok(body);
            }
            body.push_str(
                "<h2>Problems</h2>\n<table class=\"problems\">\n<thead><tr><th scope=\"col\">Line</th>\
                 <th scope=\"col\">Column</th><th scope=\"col\">Problem</th></tr></thead>\n<tbody>\n",
            );
            for (_, p) in rows.iter().take(PAGE) {
                body.push_str(&format!(
                    "<tr><td class=\"number\">{}</td><td>{}</td><td>{}</td></tr>\n",
                    if p.line == 0 {
                        "the file".to_string()
                    } else {
                        p.line.to_string()
                    },
                    escape(p.column.as_deref().unwrap_or("—")),
                    escape(&p.message)
                ));
            }
            body.push_str("</tbody>\n</table>\n");
            if rows.len() > PAGE
                && let Some(((line, seq), _)) = rows.get(PAGE - 1)
            {
                body.push_str(&format!(
                    "<p><a href=\"/imports/{id}?after={line}:{seq}\" rel=\"next\">More problems</a></p>\n"
                ));
            }
            Ok(body)
        })
        .await
}
