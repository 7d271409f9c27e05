//! The routes, their OpenAPI description, and what handlers share.

mod customers;
mod document;
mod events;
mod groups;
mod imports;
mod members;
mod meta;
mod plugins;
pub(crate) mod runs;
mod tokens;
mod webhooks;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::middleware;
use chrono::{DateTime, Utc};
use cohort_engine::Engine;
use cohort_model::Timestamp;
use cohort_store::Access;
use serde::Serialize;
use utoipa::openapi::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi as _, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::problem::Problem;
use crate::{Shared, auth, idempotency, limits};

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Cohort",
        description = "Customer groups for billing platforms, with membership rules made of sandboxed WebAssembly condition plugins.\n\n\
Every `/v1` endpoint needs `Authorization: Bearer <token>`; tokens are made with `cohort token create --role read-only|operator|admin`. \
A read-only token reads everything; an operator also manages groups, rules, customers, runs, imports and manual membership; an admin also plugins, webhooks and tokens (`/v1/tokens`); a token may expire. \
A token may be limited to some groups (`groups` when it is made): it then sees only those groups, the customers who are or were in them and their history, anything else answers 404 as if it did not exist, and what spans every group (imports, customers' facts, registrations, the change feed, plugins, webhooks, tokens, metrics) answers 403.\n\n\
Errors are `application/problem+json` with a stable `type`, a `detail` naming the field, and `field` where one is at fault. \
Every response carries `X-Request-Id`, the client's own if it sent a usable one, also in a problem's `request_id` and in the server's log line. \
Lists are paged by cursor: pass the `next` of one page as `after` (or `before`) to get the next; a missing `next` means the last page. \
POST requests may carry an `Idempotency-Key` header: a retry with the same key and body gets the first response (marked `Idempotent-Replayed: true`) without doing the work again.\n\n\
Times in requests and responses are RFC 3339 (`2026-11-25T00:00:00Z`). \
Change events reach platforms through webhooks (signed: `Cohort-Signature: t=<unix>,v1=<hex HMAC-SHA256 of \"<t>.<body>\">`) or the change feed `GET /v1/events`."
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags(
        (name = "plugins", description = "Condition plugins (WebAssembly components)"),
        (name = "groups", description = "Groups, their rules and the platform entities that use them"),
        (name = "customers", description = "Customers and registration"),
        (name = "memberships", description = "Members, manual membership and pinned exclusions"),
        (name = "runs", description = "Runs of a group's rule, dry runs and explanations"),
        (name = "imports", description = "Bulk assignment from CSV files"),
        (name = "events", description = "The audit history and the change feed"),
        (name = "webhooks", description = "Webhooks: where change events are delivered, their kinds, secrets and delivery log"),
        (name = "tokens", description = "API tokens, managed by admins"),
        (name = "service", description = "Health, readiness, metrics and this document"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API token made with `cohort token create`"))
                    .build(),
            ),
        );
    }
}

/// The `/v1` routes that need a token, described.
fn protected() -> OpenApiRouter<Shared> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(plugins::list, plugins::add))
        .routes(routes!(plugins::add_standard))
        .routes(routes!(plugins::inspect))
        .routes(routes!(plugins::budget, plugins::set_budget))
        .routes(routes!(groups::list, groups::create))
        .routes(routes!(groups::show, groups::save, groups::delete))
        .routes(routes!(groups::use_group, groups::unuse_group))
        .routes(routes!(groups::preview))
        .routes(routes!(members::list, members::add))
        .routes(routes!(members::remove))
        .routes(routes!(members::exclusions))
        .routes(routes!(members::pin, members::unpin))
        .routes(routes!(customers::list, customers::upsert_many))
        .routes(routes!(
            customers::show,
            customers::upsert,
            customers::erase
        ))
        .routes(routes!(customers::register))
        .routes(routes!(runs::start))
        .routes(routes!(runs::list))
        .routes(routes!(runs::show))
        .routes(routes!(runs::cancel))
        .routes(routes!(runs::changes))
        .routes(routes!(runs::explain))
        .routes(routes!(imports::list, imports::upload))
        .routes(routes!(imports::template))
        .routes(routes!(imports::show))
        .routes(routes!(imports::errors))
        .routes(routes!(events::history))
        .routes(routes!(events::feed))
        .routes(routes!(webhooks::webhooks, webhooks::add_webhook))
        .routes(routes!(
            webhooks::webhook,
            webhooks::update_webhook,
            webhooks::remove_webhook
        ))
        .routes(routes!(webhooks::deliveries))
        .routes(routes!(webhooks::ping))
        .routes(routes!(webhooks::redeliver))
        .routes(routes!(webhooks::rotate))
        .routes(routes!(tokens::list, tokens::create))
        .routes(routes!(tokens::revoke))
        .routes(routes!(meta::metrics))
}

fn public() -> OpenApiRouter<Shared> {
    OpenApiRouter::new()
        .routes(routes!(meta::healthz))
        .routes(routes!(meta::readyz))
        .routes(routes!(meta::openapi))
}

/// The OpenAPI document.
pub fn document() -> OpenApi {
    let mut doc = protected().into_openapi();
    doc.merge(public().into_openapi());
    document::conventions(doc)
}

pub fn router(state: Shared) -> (Router, OpenApi) {
    let (guarded, mut doc) = protected()
        .layer(middleware::from_fn_with_state(
            state.clone(),
            idempotency::idempotent,
        ))
        .layer(middleware::from_fn_with_state(state.clone(), limits::limit))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ))
        .split_for_parts();
    let (open, open_doc) = public().split_for_parts();
    doc.merge(open_doc);
    let router = guarded
        .merge(open)
        .merge(crate::console::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes));
    (crate::layered(router, state), document::conventions(doc))
}

async fn not_found() -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        "no-such-endpoint",
        "no such endpoint; see /openapi.json",
    )
}

async fn method_not_allowed() -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "this endpoint does not take that method; see /openapi.json",
    )
}

/// Call the (synchronous) engine on the blocking pool.
pub async fn blocking<T: Send + 'static>(
    state: &Shared,
    f: impl FnOnce(&Engine) -> Result<T, Problem> + Send + 'static,
) -> Result<T, Problem> {
    let engine = Arc::clone(&state.engine);
    tokio::task::spawn_blocking(move || f(&engine))
        .await
        .map_err(|e| Problem::internal(format!("the request's work failed: {e}")))?
}

/// Run `f` on the store's access part (tokens, webhooks, idempotency) off the async
/// threads.
pub async fn blocking_access<T: Send + 'static>(
    state: &Shared,
    f: impl FnOnce(&dyn Access) -> Result<T, Problem> + Send + 'static,
) -> Result<T, Problem> {
    let access = Arc::clone(&state.access);
    tokio::task::spawn_blocking(move || f(access.as_ref()))
        .await
        .map_err(|e| Problem::internal(format!("the request's work failed: {e}")))?
}

/// One page of a list, and the cursor of the next if there is one.
#[derive(Serialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as the cursor parameter to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// The cursor parameters of a list whose items follow one key upwards.
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct After {
    /// The `next` of the previous page.
    pub after: Option<String>,
    pub limit: Option<usize>,
}

/// The cursor parameters of a list whose items follow a numeric id upwards.
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AfterId {
    /// The `next` of the previous page.
    #[param(value_type = Option<i64>, minimum = 0)]
    pub after: Option<String>,
    pub limit: Option<usize>,
}

/// Items per page unless asked otherwise, and at most.
const DEFAULT_LIMIT: usize = 100;
pub(crate) const MAX_LIMIT: usize = 1000;

pub fn limit(limit: Option<usize>) -> Result<usize, Problem> {
    match limit {
        None => Ok(DEFAULT_LIMIT),
        Some(n @ 1..=MAX_LIMIT) => Ok(n),
        Some(n) => Err(Problem::bad_request(
            "limit",
            format!("limit {n} is out of range: 1 to {MAX_LIMIT}"),
        )),
    }
}

/// Build a page from up to `limit + 1` items: the extra one only says there is more.
pub fn page<T>(mut items: Vec<T>, limit: usize, cursor: impl Fn(&T) -> String) -> Page<T> {
    let more = items.len() > limit;
    items.truncate(limit);
    let next = if more { items.last().map(cursor) } else { None };
    Page { items, next }
}

/// The page of `items`, in the order of their ids, that follows the id `after`.
pub fn page_after_id<T>(
    items: Vec<T>,
    after: i64,
    limit: usize,
    id: impl Fn(&T) -> i64,
) -> Page<T> {
    let items: Vec<T> = items
        .into_iter()
        .filter(|item| id(item) > after)
        .take(limit + 1)
        .collect();
    page(items, limit, |item| id(item).to_string())
}

/// A numeric cursor parameter.
pub fn id_cursor(value: Option<&str>, field: &str) -> Result<Option<i64>, Problem> {
    value
        .map(|v| {
            v.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                Problem::bad_request(field, format!("`{v}` is not a cursor this list gave"))
            })
        })
        .transpose()
}

/// A body's id must be the one its path names.
pub fn same_id(body: &str, path: &str) -> Result<(), Problem> {
    if body == path {
        return Ok(());
    }
    Err(Problem::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "id-mismatch",
        format!("the body's id `{body}` is not the path's `{path}`"),
    )
    .at("id"))
}

/// An RFC 3339 time parameter, or `default`.
pub fn time(value: Option<&str>, field: &str, default: Timestamp) -> Result<Timestamp, Problem> {
    match value {
        None => Ok(default),
        Some(v) => DateTime::parse_from_rfc3339(v)
            .map(|t| t.with_timezone(&Utc).timestamp())
            .map_err(|e| {
                Problem::bad_request(
                    field,
                    format!("`{v}` is not an RFC 3339 time such as 2026-01-31T00:00:00Z: {e}"),
                )
            }),
    }
}
