//! `Idempotency-Key` on POST: a retried request gets the first one's response instead
//! of doing the work twice; the same key for a different request is refused.

use std::sync::PoisonError;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use cohort_store::Remembered;
use sha2::{Digest, Sha256};

use crate::auth::Caller;
use crate::problem::Problem;
use crate::{Shared, now};

const HEADER: &str = "idempotency-key";

/// Removes a key from the in-flight set when its request ends, however it ends.
struct InFlight<'a> {
    state: &'a Shared,
    key: (String, String),
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.state
            .inflight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.key);
    }
}

pub async fn idempotent(State(state): State<Shared>, req: Request, next: Next) -> Response {
    if req.method() != Method::POST {
        return next.run(req).await;
    }
    let Some(key) = req.headers().get(HEADER) else {
        return next.run(req).await;
    };
    let key = match key.to_str() {
        Ok(k) if (1..=255).contains(&k.len()) => k.to_string(),
        _ => {
            return Problem::bad_request(
                "Idempotency-Key",
                "the idempotency key must be 1 to 255 visible ASCII characters",
            )
            .into_response();
        }
    };
    let Some(caller) = req.extensions().get::<Caller>().cloned() else {
        return next.run(req).await;
    };
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, state.config.max_upload_bytes).await {
        Ok(b) => b,
        Err(e) => {
            return Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body-too-large",
                e.to_string(),
            )
            .into_response();
        }
    };
    let mut hasher = Sha256::new();
    hasher.update(parts.method.as_str());
    hasher.update(b" ");
    hasher.update(parts.uri.to_string());
    hasher.update(b"\n");
    hasher.update(&bytes);
    let request = hex::encode(hasher.finalize());

    let slot = (caller.name.clone(), key.clone());
    let fresh = state
        .inflight
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(slot.clone());
    if !fresh {
        return Problem::new(
            StatusCode::CONFLICT,
            "idempotency-key-in-use",
            format!("a request with idempotency key `{key}` is still being processed"),
        )
        .into_response();
    }
    let _guard = InFlight {
        state: &state,
        key: slot,
    };

    let engine = state.engine.clone();
    let (name, k) = (caller.name.clone(), key.clone());
    let recalled = tokio::task::spawn_blocking(move || engine.store().recall(&name, &k)).await;
    match recalled {
        Ok(Ok(Some(r))) if r.request == request => return replay(r),
        Ok(Ok(Some(_))) => {
            return Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency-key-reused",
                format!("idempotency key `{key}` was used for a different request"),
            )
            .at("Idempotency-Key")
            .into_response();
        }
        Ok(Ok(None)) => {}
        Ok(Err(e)) => return Problem::from(e).into_response(),
        Err(e) => return Problem::internal(e.to_string()).into_response(),
    }

    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    let (parts, body) = response.into_parts();
    let Ok(body) = axum::body::to_bytes(body, usize::MAX).await else {
        return Problem::internal("the response could not be read").into_response();
    };
    // A server error may not recur: the client's retry should do the work again.
    if !parts.status.is_server_error() {
        let remembered = Remembered {
            request,
            status: parts.status.as_u16(),
            body: String::from_utf8_lossy(&body).into_owned(),
        };
        let engine = state.engine.clone();
        let at = now();
        let saved = tokio::task::spawn_blocking(move || {
            engine.store().remember(&caller.name, &key, &remembered, at)
        })
        .await;
        if let Ok(Err(e)) = saved {
            tracing::warn!(error = %e, "an idempotent response could not be kept");
        }
    }
    Response::from_parts(parts, Body::from(body))
}

fn replay(r: Remembered) -> Response {
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::OK);
    let content_type = if status.is_success() {
        "application/json"
    } else {
        "application/problem+json"
    };
    let mut response = (status, r.body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    response
}
