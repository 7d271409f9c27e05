//! Health, readiness, metrics and the OpenAPI document.

use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::ToSchema;

use super::blocking;
use crate::Shared;
use crate::auth::GlobalReader;
use crate::problem::Problem;

#[derive(Serialize, ToSchema)]
pub struct Health {
    pub status: String,
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "service", security(()),
    responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
    })
}

/// The server can serve: the store answers and shutdown has not begun.
#[utoipa::path(get, path = "/readyz", tag = "service", security(()),
    responses((status = 200, body = Health), (status = 503, body = Problem)))]
pub async fn readyz(State(state): State<Shared>) -> Result<Json<Health>, Problem> {
    if !state.ready.load(Ordering::SeqCst) {
        return Err(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting-down",
            "the server is shutting down",
        ));
    }
    blocking(&state, |e| {
        e.store().count_customers().map_err(|err| {
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store-unavailable",
                err.to_string(),
            )
        })
    })
    .await?;
    Ok(Json(Health {
        status: "ready".into(),
    }))
}

/// Metrics in the Prometheus text format: requests and latencies by route, runs,
/// plugin calls, fuel and traps, webhook deliveries and the outbox lag.
#[utoipa::path(get, path = "/metrics", tag = "service",
    responses((status = 200, body = String, content_type = "text/plain")))]
pub async fn metrics(
    State(state): State<Shared>,
    _: GlobalReader,
) -> Result<impl IntoResponse, Problem> {
    let lag = blocking(&state, |e| Ok(e.store().outbox_len()?)).await?;
    let text = state.metrics.render(state.engine.stats(), lag);
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text))
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "service", security(()),
    responses((status = 200, description = "The OpenAPI 3.1 document")))]
pub async fn openapi() -> impl IntoResponse {
    Json(super::document())
}
