//! `Idempotency-Key` on POST: a retried request gets the first one's response instead
//! of doing the work twice; the same key for a different request is refused.
//!
//! Nothing is buffered here before the handler has checked the caller's role and
//! applied its route's body limit: the body reaches the handler through a tap that
//! fingerprints it as the handler reads it. A request whose handler did not read its
//! whole body (refused before reading it, say) is not remembered; its retry is simply
//! handled again. A retry is compared with the first request by reading no more than
//! the first one's body. Keys belong to the token (by id, so that a new token of a
//! revoked one's name starts afresh) and are forgotten after
//! [`IDEMPOTENCY_KEY_LIFETIME`].

use std::sync::{Arc, Mutex, PoisonError};

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use cohort_store::{IDEMPOTENCY_KEY_LIFETIME, Remembered};
use futures_util::StreamExt;
use sha2::{Digest, Sha256};

use crate::auth::Caller;
use crate::problem::Problem;
use crate::{Shared, now};

const HEADER: &str = "idempotency-key";

/// What a handler's response should be replayed as, when it differs from what the
/// first caller got (a secret shown once is not shown again).
#[derive(Clone)]
pub struct ReplayAs(pub String);

/// Removes a key from the in-flight set when its request ends, however it ends.
struct InFlight<'a> {
    state: &'a Shared,
    key: (i64, String),
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

    let slot = (caller.token, key.clone());
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

    let access = state.access.clone();
    let k = key.clone();
    let since = now() - IDEMPOTENCY_KEY_LIFETIME;
    let recalled =
        tokio::task::spawn_blocking(move || access.recall(caller.token, &k, since)).await;
    let (parts, body) = req.into_parts();
    let json = is_json(&parts);
    match recalled {
        Ok(Ok(Some(r))) => return retry(&state, &parts, body, json, &key, r).await,
        Ok(Ok(None)) => {}
        Ok(Err(e)) => return Problem::from(e).into_response(),
        Err(e) => return Problem::internal(e.to_string()).into_response(),
    }

    let tap = Tap::new(json);
    // A request without a body (adding the standard plugins, say) is whole already:
    // its handler never reads one.
    if HttpBody::is_end_stream(&body) {
        tap.done();
    }
    let body = tap.wrap(body);
    let response = next.run(Request::from_parts(parts.clone(), body)).await;
    let Some(request) = tap.fingerprint(&parts) else {
        // The handler did not read the whole body: it refused the request first.
        return response;
    };
    let (mut head, body) = response.into_parts();
    let Ok(body) = axum::body::to_bytes(body, usize::MAX).await else {
        return Problem::internal("the response could not be read").into_response();
    };
    // A server error may not recur: the client's retry should do the work again.
    if !head.status.is_server_error() {
        let kept = head
            .extensions
            .remove::<ReplayAs>()
            .map_or_else(|| String::from_utf8_lossy(&body).into_owned(), |r| r.0);
        let remembered = Remembered {
            request,
            status: head.status.as_u16(),
            body: kept,
        };
        let access = state.access.clone();
        let at = now();
        let saved = tokio::task::spawn_blocking(move || {
            access.remember(caller.token, &key, &remembered, at)
        })
        .await;
        if let Ok(Err(e)) = saved {
            tracing::warn!(error = %e, "an idempotent response could not be kept");
        }
    }
    Response::from_parts(head, Body::from(body))
}

/// A retry of a key already answered: the first response if the request is the same,
/// reading no more of this one than could make it so.
async fn retry(
    state: &Shared,
    parts: &Parts,
    body: Body,
    json: bool,
    key: &str,
    first: Remembered,
) -> Response {
    let reused = || {
        Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency-key-reused",
            format!("idempotency key `{key}` was used for a different request"),
        )
        .at("Idempotency-Key")
        .into_response()
    };
    // JSON may differ in its spacing and still be the same request; anything else must
    // be the same bytes, and so no longer than the first body.
    let bound = match first.request.rsplit_once(':') {
        _ if json => state.config.max_body_bytes,
        Some((_, len)) => len.parse().unwrap_or(state.config.max_body_bytes),
        None => state.config.max_body_bytes,
    };
    let Ok(bytes) = axum::body::to_bytes(body, bound).await else {
        return reused();
    };
    let tap = Tap::new(json);
    tap.feed(&bytes);
    tap.done();
    // The length after the digest only bounds the read.
    let digest = |fingerprint: &str| fingerprint.split(':').next().map(str::to_string);
    if tap.fingerprint(parts).and_then(|f| digest(&f)) != digest(&first.request) {
        return reused();
    }
    replay(first)
}

fn is_json(parts: &Parts) -> bool {
    parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| {
            let t = t.trim();
            t.eq_ignore_ascii_case("application/json") || t.ends_with("+json")
        })
}

/// The body as the handler reads it: its digest, its length, and for JSON a copy (as
/// bounded as the handler's own read), so that the fingerprint ignores spacing and
/// the order of keys.
#[derive(Clone)]
struct Tap(Arc<Mutex<Tapped>>);

struct Tapped {
    raw: Sha256,
    len: u64,
    json: Option<Vec<u8>>,
    complete: bool,
}

impl Tap {
    fn new(json: bool) -> Self {
        Tap(Arc::new(Mutex::new(Tapped {
            raw: Sha256::new(),
            len: 0,
            json: json.then(Vec::new),
            complete: false,
        })))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tapped> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn feed(&self, chunk: &Bytes) {
        let mut t = self.lock();
        t.raw.update(chunk);
        t.len += chunk.len() as u64;
        if let Some(copy) = &mut t.json {
            copy.extend_from_slice(chunk);
        }
    }

    fn done(&self) {
        self.lock().complete = true;
    }

    /// `body`, fed through this tap as it is read.
    fn wrap(&self, body: Body) -> Body {
        let (feed, end) = (self.clone(), self.clone());
        let stream = body
            .into_data_stream()
            .map(move |chunk| {
                if let Ok(c) = &chunk {
                    feed.feed(c);
                }
                chunk
            })
            .chain(futures_util::stream::poll_fn(move |_| {
                end.done();
                std::task::Poll::Ready(None)
            }));
        Body::from_stream(stream)
    }

    /// What tells this request from another with the key: method, path and body, with
    /// the body's length after a colon. `None` until the whole body went through.
    fn fingerprint(&self, parts: &Parts) -> Option<String> {
        let t = self.lock();
        if !t.complete {
            return None;
        }
        let mut hasher = Sha256::new();
        hasher.update(parts.method.as_str());
        hasher.update(b" ");
        hasher.update(parts.uri.to_string());
        hasher.update(b"\n");
        let canonical = t
            .json
            .as_deref()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(b).ok())
            .map(|v| canonical(&v));
        match canonical {
            Some(text) => hasher.update(text),
            None => hasher.update(t.raw.clone().finalize()),
        }
        Some(format!("{}:{}", hex::encode(hasher.finalize()), t.len))
    }
}

/// JSON with its object keys sorted and no spacing.
fn canonical(v: &serde_json::Value) -> String {
    use serde_json::Value;
    match v {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            let inner: Vec<String> = entries
                .into_iter()
                .map(|(k, v)| format!("{}:{}", Value::String(k.clone()), canonical(v)))
                .collect();
            format!("{{{}}}", inner.join(","))
        }
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(canonical).collect();
            format!("[{}]", inner.join(","))
        }
        other => other.to_string(),
    }
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

#[cfg(test)]
mod tests {
    use super::canonical;

    #[test]
    fn canonical_json_ignores_spacing_and_key_order() {
        let a: serde_json::Value =
            serde_json::from_str(r#"{"b": [1, {"y":2,"x":1}], "a":"s"}"#).expect("json");
        let b: serde_json::Value =
            serde_json::from_str("{\"a\":\"s\",\n \"b\":[1,{\"x\":1,\"y\":2}]}").expect("json");
        assert_eq!(canonical(&a), canonical(&b));
        assert_eq!(canonical(&a), r#"{"a":"s","b":[1,{"x":1,"y":2}]}"#);
    }
}
