//! The admins' pages: plugins (what each says of itself, what it reads and asks for,
//! its schema, digest, budget, and what it has cost since the server started; upload),
//! API tokens (made, shown once, revoked) and webhooks (where delivery stands and the
//! last error). Only an admin who sees every group reaches them.

use axum::Form;
use axum::extract::{Multipart, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use cohort_engine::{Engine, EngineError, Provenance, Within};
use cohort_model::Capability;
use cohort_store::{Role, check_new_token};
use serde::Deserialize;

use super::page::{escape, time};
use super::view::Viewer;
use crate::{Shared, now};

/// The engine for an admin who sees every group; `Limited` for anyone else.
fn admin<'w>(within: &'w Within<'_>, viewer_is_admin: bool) -> Result<&'w Engine, EngineError> {
    let engine = within.unlimited("manage plugins, tokens or webhooks: they serve every group")?;
    if !viewer_is_admin {
        return Err(EngineError::Limited(
            "manage plugins, tokens or webhooks without the admin role",
        ));
    }
    Ok(engine)
}

fn is_admin(viewer: &Viewer) -> bool {
    viewer.login.member.role == Role::Admin
}

/// `GET /plugins`.
pub(super) async fn plugins(State(state): State<Shared>, viewer: Viewer) -> Response {
    let admin_ok = is_admin(&viewer);
    let csrf = viewer.csrf_field();
    viewer
        .show(&state, "Plugins", move |within| {
            let engine = admin(within, admin_ok)?;
            let costs = engine.plugin_stats();
            let mut stored = engine.store().plugins()?;
            stored.sort_by(|a, b| a.id.cmp(&b.id).then(b.added_at.cmp(&a.added_at)));
            let mut body = String::from(
                "<h1>Plugins</h1>\n<p>Costs are counted since this server started.</p>\n",
            );
            body.push_str(
                "<table class=\"plugins\">\n<thead><tr><th scope=\"col\">Plugin</th>\
                 <th scope=\"col\">Reads</th><th scope=\"col\">Asks for</th>\
                 <th scope=\"col\">Digest</th><th scope=\"col\">Cost so far</th>\
                 <th scope=\"col\">Configuration</th></tr></thead>\n<tbody>\n",
            );
            for p in &stored {
                let described = engine.describe_plugin(&p.id, Some(&p.version));
                let (description, reads, asks, schema) = match &described {
                    Ok((_, info, _)) => (
                        escape(&info.description),
                        escape(
                            &info
                                .reads
                                .iter()
                                .map(|f| f.name())
                                .collect::<Vec<_>>()
                                .join(", "),
                        ),
                        escape(
                            &info
                                .capabilities
                                .iter()
                                .map(|c| match c {
                                    Capability::DataDir => "a read-only data directory",
                                })
                                .collect::<Vec<_>>()
                                .join(", "),
                        ),
                        escape(&info.config_schema),
                    ),
                    Err(e) => (
                        format!("<span class=\"problem\">cannot be loaded: {}</span>", escape(&e.to_string())),
                        String::new(),
                        String::new(),
                        String::new(),
                    ),
                };
                let cost = costs.get(&p.id).map_or_else(
                    || "not run yet".to_string(),
                    |s| {
                        format!(
                            "{} calls, {} customers, {} fuel; {} traps, {} errors",
                            s.calls, s.evaluations, s.fuel, s.traps, s.errors
                        )
                    },
                );
                body.push_str(&format!(
                    "<tr><td><strong>{id}</strong> {version}<br><small>{description}</small>\
                     <br><small>signed by {signer}; added {added}{data}</small></td>\
                     <td>{reads}</td><td>{asks}</td><td><code title=\"{sha}\">{short}</code></td>\
                     <td class=\"cost\">{cost}</td>\
                     <td><details><summary>Schema</summary><pre>{schema}</pre></details></td></tr>\n",
                    id = escape(&p.id),
                    version = escape(&p.version),
                    signer = escape(p.signer.as_deref().unwrap_or("nobody")),
                    added = time(p.added_at),
                    data = p
                        .data_dir_as_given
                        .as_deref()
                        .map(|d| format!("; reads data from {}", escape(d)))
                        .unwrap_or_default(),
                    sha = escape(&p.sha256),
                    short = escape(p.sha256.get(..12).unwrap_or(&p.sha256)),
                ));
            }
            body.push_str("</tbody>\n</table>\n");
            body.push_str(&format!(
                "<h2>Add a plugin</h2>\n<form method=\"post\" action=\"/plugins\" \
                 enctype=\"multipart/form-data\" class=\"stacked\">{csrf}\
                 <label for=\"wasm\">Component (.wasm)</label>\
                 <input id=\"wasm\" name=\"wasm\" type=\"file\" accept=\".wasm,application/wasm\" required>\
                 <label for=\"signature\">Its signature (the JSON `cohort plugin sign` wrote), if signed</label>\
                 <input id=\"signature\" name=\"signature\" type=\"file\" accept=\".json,application/json\">\
                 <small>A plugin that reads a data directory is granted one with `cohort plugin add --data-dir`.</small>\
                 <button type=\"submit\">Add</button></form>\n"
            ));
            Ok(body)
        })
        .await
}

/// `POST /plugins`: add a component, signed or not, as the store's trust allows.
pub(super) async fn add_plugin(
    State(state): State<Shared>,
    viewer: Viewer,
    mut form: Multipart,
) -> Response {
    let limit = state.config.max_upload_bytes;
    let (mut csrf, mut wasm, mut signature) = (String::new(), Vec::new(), Vec::new());
    loop {
        let field = match form.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => return not_done(&viewer, &e.to_string()),
        };
        let name = field.name().unwrap_or_default().to_string();
        // Read a chunk at a time, so that a file past the limit is refused before it
        // is held whole.
        let mut field = field;
        let mut bytes = Vec::new();
        loop {
            match field.chunk().await {
                Ok(Some(chunk)) if bytes.len() + chunk.len() <= limit => {
                    bytes.extend_from_slice(&chunk);
                }
                Ok(Some(_)) => {
                    return not_done(&viewer, &format!("the file is larger than {limit} bytes"));
                }
                Ok(None) => break,
                Err(e) => return not_done(&viewer, &e.to_string()),
            }
        }
        match name.as_str() {
            "csrf" => csrf = String::from_utf8_lossy(&bytes).into_owned(),
            "wasm" => wasm = bytes,
            "signature" => signature = bytes,
            _ => {}
        }
    }
    if let Some(refused) = viewer.refuse_form(&csrf) {
        return refused;
    }
    let signature = if signature.is_empty() {
        None
    } else {
        match serde_json::from_slice(&signature) {
            Ok(s) => Some(s),
            Err(e) => {
                return not_done(
                    &viewer,
                    &format!("the signature is not the JSON `cohort plugin sign` writes: {e}"),
                );
            }
        }
    };
    let admin_ok = is_admin(&viewer);
    let added = viewer
        .work(&state, move |within| {
            let engine = admin(within, admin_ok)?;
            let provenance = match &signature {
                Some(s) => Provenance::Signed(s),
                None => Provenance::Unsigned,
            };
            engine.add_plugin_as(&wasm, None, provenance, now())
        })
        .await;
    match added {
        Ok(_) => Redirect::to("/plugins").into_response(),
        Err(e) => viewer.error(&e),
    }
}

fn not_done(viewer: &Viewer, problem: &str) -> Response {
    viewer.page(
        StatusCode::BAD_REQUEST,
        "Not done",
        &format!(
            "<h1>Not done</h1><p class=\"problem\" role=\"alert\">{}</p>",
            escape(problem)
        ),
    )
}

/// `GET /tokens`.
pub(super) async fn tokens(State(state): State<Shared>, viewer: Viewer) -> Response {
    tokens_page(&state, &viewer, None, None).await
}

async fn tokens_page(
    state: &Shared,
    viewer: &Viewer,
    made: Option<(String, String)>,
    problem: Option<String>,
) -> Response {
    let admin_ok = is_admin(viewer);
    let csrf = viewer.csrf_field();
    let status = if problem.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let shown = viewer
        .work(state, move |within| {
            let engine = admin(within, admin_ok)?;
            let tokens = engine.store().tokens()?;
            let mut body = String::from("<h1>API tokens</h1>\n");
            if let Some((name, token)) = made {
                body.push_str(&format!(
                    "<p class=\"notice\" role=\"status\">Token <code>{}</code>, shown only now: \
                     <code class=\"token\">{}</code></p>\n",
                    escape(&name),
                    escape(&token)
                ));
            }
            if let Some(p) = problem {
                body.push_str(&format!("<p class=\"problem\" role=\"alert\">{}</p>\n", escape(&p)));
            }
            body.push_str(
                "<table>\n<thead><tr><th scope=\"col\">Name</th><th scope=\"col\">Role</th>\
                 <th scope=\"col\">Groups</th><th scope=\"col\">Made</th><th scope=\"col\">Ends</th>\
                 <th scope=\"col\"></th></tr></thead>\n<tbody>\n",
            );
            let at = now();
            for t in tokens.iter().rev() {
                let ends = match (t.revoked_at, t.expires_at) {
                    (Some(r), _) => format!("revoked {}", time(r)),
                    (None, Some(e)) if t.expired(at) => format!("expired {}", time(e)),
                    (None, Some(e)) => format!("expires {}", time(e)),
                    (None, None) => "never".to_string(),
                };
                let revoke = if t.revoked_at.is_none() {
                    format!(
                        "<form method=\"post\" action=\"/tokens/{0}/revoke\" class=\"inline\">{csrf}\
                         <button type=\"submit\" aria-label=\"Revoke {0}\">Revoke</button></form>",
                        escape(&t.name)
                    )
                } else {
                    String::new()
                };
                body.push_str(&format!(
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{ends}</td><td>{revoke}</td></tr>\n",
                    escape(&t.name),
                    t.role.as_str(),
                    escape(&t.groups.as_ref().map_or_else(|| "every group".to_string(), |g| g.join(", "))),
                    time(t.created_at),
                ));
            }
            body.push_str("</tbody>\n</table>\n");
            body.push_str(&format!(
                "<h2>Make a token</h2>\n<form method=\"post\" action=\"/tokens\" class=\"stacked\">{csrf}\
                 <label for=\"token-name\">Name (the actor the history records)</label>\
                 <input id=\"token-name\" name=\"name\" required>\
                 <label for=\"token-role\">Role</label><select id=\"token-role\" name=\"role\">\
                 <option value=\"read-only\">read-only</option><option value=\"operator\">operator</option>\
                 <option value=\"admin\">admin</option></select>\
                 <label for=\"token-groups\">Only these groups (ids, comma-separated; empty for every group)</label>\
                 <input id=\"token-groups\" name=\"groups\">\
                 <button type=\"submit\">Make</button></form>\n"
            ));
            Ok(body)
        })
        .await;
    match shown {
        Ok(body) => viewer.page(status, "API tokens", &body),
        Err(e) => viewer.error(&e),
    }
}

#[derive(Deserialize)]
pub(super) struct NewToken {
    #[serde(default)]
    csrf: String,
    name: String,
    role: String,
    #[serde(default)]
    groups: String,
}

/// `POST /tokens`: make a token and show it once.
pub(super) async fn make_token(
    State(state): State<Shared>,
    viewer: Viewer,
    Form(form): Form<NewToken>,
) -> Response {
    if let Some(refused) = viewer.refuse_form(&form.csrf) {
        return refused;
    }
    let at = now();
    let Some(role) = Role::parse(&form.role) else {
        return tokens_page(
            &state,
            &viewer,
            None,
            Some(format!("`{}` is not a role", form.role)),
        )
        .await;
    };
    let name = match check_new_token(&form.name, None, at) {
        Ok(n) => n,
        Err((_, why)) => return tokens_page(&state, &viewer, None, Some(why)).await,
    };
    let groups: Vec<String> = form
        .groups
        .split(',')
        .map(|g| g.trim().to_string())
        .filter(|g| !g.is_empty())
        .collect();
    let groups = (!groups.is_empty()).then_some(groups);
    let token = match crate::auth::new_token() {
        Ok(t) => t,
        Err(e) => return not_done(&viewer, &format!("no randomness for a token: {e}")),
    };
    let admin_ok = is_admin(&viewer);
    let access = state.access.clone();
    let (made_name, made_token) = (name.clone(), token.clone());
    let made = viewer
        .work(&state, move |within| {
            let engine = admin(within, admin_ok)?;
            if let Some(g) = &groups {
                engine.check_scope(g)?;
            }
            let taken = access
                .tokens()?
                .iter()
                .any(|t| t.name == name && t.revoked_at.is_none());
            if taken {
                return Ok(Err(format!(
                    "a token named `{name}` is not revoked; revoke it first, or choose another name"
                )));
            }
            access.create_token(
                &name,
                role,
                groups.as_deref(),
                &crate::auth::digest(&token),
                at,
                None,
            )?;
            Ok(Ok(()))
        })
        .await;
    match made {
        Ok(Ok(())) => tokens_page(&state, &viewer, Some((made_name, made_token)), None).await,
        Ok(Err(problem)) => tokens_page(&state, &viewer, None, Some(problem)).await,
        Err(e) => viewer.error(&e),
    }
}

#[derive(Deserialize)]
pub(super) struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

/// `POST /tokens/{name}/revoke`.
pub(super) async fn revoke_token(
    State(state): State<Shared>,
    viewer: Viewer,
    Path(name): Path<String>,
    Form(form): Form<CsrfOnly>,
) -> Response {
    if let Some(refused) = viewer.refuse_form(&form.csrf) {
        return refused;
    }
    let admin_ok = is_admin(&viewer);
    let access = state.access.clone();
    let revoked = viewer
        .work(&state, move |within| {
            admin(within, admin_ok)?;
            Ok(access.revoke_token(&name, now())?)
        })
        .await;
    match revoked {
        Ok(_) => Redirect::to("/tokens").into_response(),
        Err(e) => viewer.error(&e),
    }
}

/// `GET /webhooks`: each webhook, where its delivery stands, and its last error.
pub(super) async fn webhooks(State(state): State<Shared>, viewer: Viewer) -> Response {
    let admin_ok = is_admin(&viewer);
    let access = state.access.clone();
    viewer
        .show(&state, "Webhooks", move |within| {
            admin(within, admin_ok)?;
            let hooks = access.webhooks()?;
            let mut body = String::from(
                "<h1>Webhooks</h1>\n<p>Each receives the change events after its position, in order, \
                 at least once. Manage them with <code>cohort webhook</code> or the API.</p>\n",
            );
            if hooks.is_empty() {
                body.push_str("<p>No webhooks.</p>\n");
                return Ok(body);
            }
            body.push_str(
                "<table>\n<thead><tr><th scope=\"col\">Webhook</th><th scope=\"col\">Events</th>\
                 <th scope=\"col\">State</th><th scope=\"col\">Position</th>\
                 <th scope=\"col\">Last delivered</th><th scope=\"col\">Last error</th></tr></thead>\n<tbody>\n",
            );
            for h in &hooks {
                body.push_str(&format!(
                    "<tr><td>{id}: {url}</td><td>{events}</td><td>{state}</td>\
                     <td class=\"number\">{position}</td><td>{delivered}</td><td>{error}</td></tr>\n",
                    id = h.id,
                    url = escape(&h.url),
                    events = escape(&h.events.as_ref().map_or_else(|| "every kind".to_string(), |e| e.join(", "))),
                    state = if h.paused {
                        "paused".to_string()
                    } else if h.attempts > 0 {
                        format!("retrying ({} attempts)", h.attempts)
                    } else {
                        "delivering".to_string()
                    },
                    position = h.position,
                    delivered = h.last_delivered_at.map_or_else(|| "never".to_string(), time),
                    error = escape(h.last_error.as_deref().unwrap_or("—")),
                ));
            }
            body.push_str("</tbody>\n</table>\n");
            Ok(body)
        })
        .await
}
