//! The console for billing staff, served by `cohort serve` beside the API: sign-in
//! with a session cookie, then the groups, a group's members, customers with why they
//! are or are not in a group, and the history. Pages are HTML built on the server;
//! forms post back; the one script shows times in the viewer's zone.
//!
//! Every page reads the engine through `Engine::within` and the member's scope, the
//! same check the API makes of a token limited to groups.
//!
//! Sessions: a random cookie (HttpOnly, SameSite=Strict, Secure behind HTTPS), kept
//! in the store only as its digest, ending after `SESSION_SECONDS` or at sign-out.
//! Every form that changes state carries the session's CSRF token; the sign-in form,
//! before any session, carries one that must match a cookie set with the form.

mod admin;
mod customers;
mod editor;
mod fields;
mod groups;
mod history;
mod imports;
mod members;
mod page;
mod runs;
mod view;

use axum::Form;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use cohort_store::{StaffLogin, StaffSession};
use serde::Deserialize;

use crate::auth::{digest, new_token};
use crate::staff::verify_password;
use crate::{Shared, now};

/// How long a session lasts: a working day.
pub const SESSION_SECONDS: i64 = 8 * 3600;
const SESSION_COOKIE: &str = "cohort_session";
const SIGN_IN_COOKIE: &str = "cohort_sign_in";

pub fn router() -> Router<Shared> {
    Router::new()
        .route("/", get(front))
        .route("/sign-in", post(sign_in))
        .route("/sign-out", post(sign_out))
        .route("/groups/new", get(editor::new_group).post(editor::submit))
        .route("/groups/{id}", get(members::members))
        .route("/groups/{id}/edit", get(editor::edit).post(editor::submit))
        .route("/groups/{id}/run", post(runs::run_now))
        .route("/groups/{id}/delete", post(editor::delete))
        .route("/runs", get(runs::runs))
        .route(
            "/imports",
            get(imports::imports)
                .post(imports::upload)
                // The upload reads at most the server's upload limit itself.
                .layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .route("/imports/template", get(imports::template))
        .route(
            "/plugins",
            get(admin::plugins)
                .post(admin::add_plugin)
                .layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .route("/tokens", get(admin::tokens).post(admin::make_token))
        .route("/tokens/{name}/revoke", post(admin::revoke_token))
        .route("/webhooks", get(admin::webhooks))
        .route("/imports/{id}", get(imports::import))
        .route("/runs/{id}", get(runs::run))
        .route("/groups/{id}/members", post(members::add))
        .route(
            "/groups/{id}/members/{customer}/remove",
            post(members::remove),
        )
        .route("/groups/{id}/exclusions/{customer}", post(members::pin))
        .route("/customers/{id}", get(customers::customer))
        .route("/customers/{id}/why", get(customers::why))
        .route("/history", get(history::history))
        .route("/console/style.css", get(style))
        .route("/console/local-time.js", get(script))
}

async fn style() -> Response {
    asset("text/css; charset=utf-8", page::STYLE)
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", page::SCRIPT)
}

fn asset(kind: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, kind)], body).into_response()
}

/// A cookie of the request, by name.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// `Secure` when the browser reached the server over HTTPS (through a proxy that says
/// so): the cookie is then never sent in clear.
fn secure(headers: &HeaderMap) -> &'static str {
    let https = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p.eq_ignore_ascii_case("https"));
    if https { "; Secure" } else { "" }
}

fn set_cookie(name: &str, value: &str, max_age: i64, headers: &HeaderMap) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{}",
        secure(headers)
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The signed-in member and their session, if the request carries a live one.
pub(super) async fn signed_in(
    state: &Shared,
    headers: &HeaderMap,
) -> Option<(StaffLogin, StaffSession)> {
    let token = cookie(headers, SESSION_COOKIE)?.to_string();
    let state = state.clone();
    tokio::task::spawn_blocking(move || {
        let session = state.access.session(&digest(&token), now()).ok()??;
        let login = state.access.staff_login(&session.staff).ok()??;
        Some((login, session))
    })
    .await
    .ok()?
}

pub(super) fn page(status: StatusCode, html: String) -> Response {
    (status, [(header::CACHE_CONTROL, "no-store")], Html(html)).into_response()
}

/// The sign-in form with a fresh sign-in token, set as a cookie too.
fn sign_in_page(
    headers: &HeaderMap,
    status: StatusCode,
    name: &str,
    problem: Option<&str>,
) -> Response {
    let Ok(csrf) = new_token() else {
        return page(
            StatusCode::INTERNAL_SERVER_ERROR,
            page::layout("Error", None, "<p>No randomness for a form token.</p>"),
        );
    };
    let mut response = page(status, page::sign_in(&csrf, name, problem));
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(SIGN_IN_COOKIE, &csrf, 3600, headers),
    );
    response
}

/// `/`: the groups to a signed-in member, the sign-in form to anyone else.
async fn front(State(state): State<Shared>, headers: HeaderMap) -> Response {
    match signed_in(&state, &headers).await {
        Some((login, session)) => {
            let viewer = view::Viewer::of(login, session);
            groups::groups(&state, &viewer).await
        }
        None => sign_in_page(&headers, StatusCode::OK, "", None),
    }
}

#[derive(Deserialize)]
struct SignIn {
    name: String,
    password: String,
    csrf: String,
}

/// Time lost by a wrong password, on top of argon2's: guessing online is slow even
/// before the lock.
const FAILURE_DELAY: std::time::Duration = std::time::Duration::from_millis(400);

async fn sign_in(
    State(state): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<SignIn>,
) -> Response {
    if cookie(&headers, SIGN_IN_COOKIE) != Some(form.csrf.as_str()) {
        return sign_in_page(
            &headers,
            StatusCode::FORBIDDEN,
            &form.name,
            Some("The form had expired; sign in again."),
        );
    }
    let at = now();
    let name = form.name.trim().to_string();
    let worker = state.clone();
    let checked =
        tokio::task::spawn_blocking(move || -> Result<Result<StaffLogin, String>, String> {
            let login = worker
                .access
                .staff_login(&name)
                .map_err(|e| e.to_string())?;
            let Some(login) = login else {
                // The same work as for a member, so that timing does not tell names apart.
                verify_password(&form.password, decoy());
                return Ok(Err(WRONG.into()));
            };
            if let Some(until) = login.locked_until.filter(|u| *u > at) {
                return Ok(Err(locked(until)));
            }
            if verify_password(&form.password, &login.password_hash) {
                return Ok(Ok(login));
            }
            let lock = worker
                .access
                .record_failed_sign_in(&login.member.name, at)
                .map_err(|e| e.to_string())?;
            Ok(Err(lock.map_or_else(|| WRONG.to_string(), locked)))
        })
        .await;
    let login = match checked {
        Ok(Ok(Ok(login))) => login,
        Ok(Ok(Err(problem))) => {
            tokio::time::sleep(FAILURE_DELAY).await;
            return sign_in_page(
                &headers,
                StatusCode::UNAUTHORIZED,
                &form.name,
                Some(&problem),
            );
        }
        Ok(Err(e)) => {
            return sign_in_page(
                &headers,
                StatusCode::SERVICE_UNAVAILABLE,
                &form.name,
                Some(&format!("The store cannot be read: {e}")),
            );
        }
        Err(e) => {
            return sign_in_page(
                &headers,
                StatusCode::INTERNAL_SERVER_ERROR,
                &form.name,
                Some(&e.to_string()),
            );
        }
    };
    let (Ok(token), Ok(csrf)) = (new_token(), new_token()) else {
        return sign_in_page(
            &headers,
            StatusCode::INTERNAL_SERVER_ERROR,
            &form.name,
            Some("No randomness for a session."),
        );
    };
    let session = StaffSession {
        staff: login.member.name.clone(),
        csrf,
        created_at: at,
        expires_at: at + SESSION_SECONDS,
    };
    let worker = state.clone();
    let key = digest(&token);
    let opened =
        tokio::task::spawn_blocking(move || worker.access.open_session(&key, &session)).await;
    if !matches!(opened, Ok(Ok(()))) {
        return sign_in_page(
            &headers,
            StatusCode::SERVICE_UNAVAILABLE,
            &form.name,
            Some("The session could not be kept; try again."),
        );
    }
    let mut response = Redirect::to("/").into_response();
    let cookies = response.headers_mut();
    cookies.append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, &token, SESSION_SECONDS, &headers),
    );
    cookies.append(
        header::SET_COOKIE,
        set_cookie(SIGN_IN_COOKIE, "", 0, &headers),
    );
    response
}

const WRONG: &str = "Wrong name or password.";

/// A digest of a password nobody has, made with the members' parameters, for names
/// that are not members.
fn decoy() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| {
        crate::staff::hash_password("no member has this password").unwrap_or_default()
    })
}

fn locked(until: i64) -> String {
    format!(
        "Too many failed sign-ins: this account is locked until {} UTC.",
        cohort_model::rfc3339::format(until).replace('T', " ")
    )
}

#[derive(Deserialize)]
struct Csrf {
    csrf: String,
}

async fn sign_out(
    State(state): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<Csrf>,
) -> Response {
    let Some((_, session)) = signed_in(&state, &headers).await else {
        return Redirect::to("/").into_response();
    };
    if session.csrf != form.csrf {
        return page(
            StatusCode::FORBIDDEN,
            page::layout(
                "Refused",
                None,
                "<h1>Refused</h1><p>The form did not come from this session.</p>",
            ),
        );
    }
    if let Some(token) = cookie(&headers, SESSION_COOKIE) {
        let key = digest(token);
        let worker = state.clone();
        let _ = tokio::task::spawn_blocking(move || worker.access.close_session(&key)).await;
    }
    let mut response = Redirect::to("/").into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, "", 0, &headers),
    );
    response
}
