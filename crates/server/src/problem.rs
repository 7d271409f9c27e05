//! Errors as `application/problem+json` (RFC 9457): a stable type per kind of mistake,
//! a message that names the field, and the status that tells a client whether to fix
//! the request (4xx) or try again later (503). A client's mistake is never a 5xx.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cohort_engine::EngineError;
use cohort_store::StoreError;
use serde::Serialize;
use serde::de::DeserializeOwned;
use utoipa::ToSchema;

/// A problem with a request, or with the server.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// Stable identifier of the kind of problem, e.g. `urn:cohort:problem:invalid-body`.
    #[serde(rename = "type", serialize_with = "urn")]
    #[schema(value_type = String)]
    pub kind: &'static str,
    /// A short summary of the kind of problem.
    pub title: &'static str,
    pub status: u16,
    /// What exactly is wrong, naming the field.
    pub detail: String,
    /// The offending field, as a path into the body or the name of a parameter.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// More about the problem (an import's report, say).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object)]
    pub extra: Option<Box<serde_json::Value>>,
    /// The request's id, as the `X-Request-Id` response header and the server's log
    /// have it: quote it when reporting the problem.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub request_id: Option<std::sync::Arc<str>>,
}

/// Problem types are URNs; the code keeps only their last part.
fn urn<S: serde::Serializer>(slug: &&'static str, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&format_args!("urn:cohort:problem:{slug}"))
}

impl Problem {
    pub fn new(status: StatusCode, slug: &'static str, detail: impl Into<String>) -> Problem {
        Problem {
            kind: slug,
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail: detail.into(),
            field: None,
            extra: None,
            request_id: None,
        }
    }

    pub fn at(mut self, field: impl Into<String>) -> Problem {
        self.field = Some(field.into());
        self
    }

    pub fn with(mut self, extra: serde_json::Value) -> Problem {
        self.extra = Some(Box::new(extra));
        self
    }

    pub fn bad_request(field: &str, detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::BAD_REQUEST, "invalid-parameter", detail).at(field)
    }

    pub fn not_found(what: &str, id: &str) -> Problem {
        Problem::new(
            StatusCode::NOT_FOUND,
            "not-found",
            format!("no {what} `{id}`"),
        )
    }

    pub fn internal(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", detail)
    }
}

impl IntoResponse for Problem {
    fn into_response(mut self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        self.request_id = crate::request_id::current();
        if status.is_server_error() {
            let request_id = self.request_id.as_deref().unwrap_or("-");
            tracing::error!(kind = %self.kind, detail = %self.detail, request_id, "request failed");
        }
        let mut response = (status, axum::Json(&self)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"cohort\""),
            );
        }
        response
    }
}

impl From<StoreError> for Problem {
    fn from(e: StoreError) -> Problem {
        match &e {
            StoreError::NotFound { what, id } => Problem::not_found(what, id),
            StoreError::Conflict(detail) => {
                Problem::new(StatusCode::CONFLICT, "conflict", detail.clone())
            }
            _ if e.is_busy() => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                format!("the store is busy; try again: {e}"),
            ),
            _ => Problem::internal(e.to_string()),
        }
    }
}

impl From<EngineError> for Problem {
    fn from(e: EngineError) -> Problem {
        let e = match e {
            EngineError::Store(s) => return s.into(),
            e => e,
        };
        let unprocessable = |slug: &'static str| {
            Problem::new(StatusCode::UNPROCESSABLE_ENTITY, slug, e.to_string())
        };
        let conflict = |slug: &'static str| Problem::new(StatusCode::CONFLICT, slug, e.to_string());
        match &e {
            EngineError::Store(_) | EngineError::NotStarted { .. } => {
                Problem::internal(e.to_string())
            }
            EngineError::Load(_) => unprocessable("invalid-plugin"),
            EngineError::InvalidGroup(g) => {
                let field = g.field.clone();
                unprocessable("invalid-group").at(field)
            }
            EngineError::InvalidCustomer(c) => {
                let field = c.field.clone();
                unprocessable("invalid-customer").at(field)
            }
            EngineError::UnknownPlugin { .. }
            | EngineError::NoMatchingVersion { .. }
            | EngineError::Version { .. } => unprocessable("unknown-plugin"),
            EngineError::Condition { at, .. } => {
                let field = at.clone();
                unprocessable("unknown-plugin").at(field)
            }
            EngineError::Unprepared { .. } => conflict("condition-unavailable"),
            EngineError::Config { at, .. } | EngineError::Prepare { at, .. } => {
                let field = at.clone();
                unprocessable("invalid-condition").at(field)
            }
            EngineError::Schedule { .. } => {
                unprocessable("invalid-schedule").at("auto.triggers.schedule")
            }
            EngineError::Unsigned { .. } => unprocessable("untrusted-plugin"),
            EngineError::Budget { .. } => unprocessable("invalid-budget"),
            EngineError::Grant { .. } | EngineError::DataDir { .. } => {
                unprocessable("invalid-grant").at("data_dir")
            }
            EngineError::Disabled(_) => conflict("group-disabled"),
            EngineError::ManualOff(_) => conflict("manual-runs-off"),
            EngineError::NotFound { what, id } => Problem::not_found(what, id),
            EngineError::Limited(_) => {
                Problem::new(StatusCode::FORBIDDEN, "forbidden", e.to_string())
            }
            EngineError::EmptyScope => unprocessable("invalid-scope").at("groups"),
            EngineError::InUse { .. } => conflict("group-in-use"),
            EngineError::UseKind(_) => unprocessable("invalid-use").at("kind"),
            EngineError::Window { .. } => unprocessable("invalid-window").at("end"),
            EngineError::Failed { .. } => conflict("run-failed"),
            EngineError::Cancelled { .. } => conflict("run-cancelled"),
            EngineError::NoScans => conflict("no-scans"),
        }
    }
}

/// A JSON body, read with every mistake reported as a problem naming the field.
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Problem> {
        let json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                let v = v.split(';').next().unwrap_or("").trim();
                v == "application/json" || v.ends_with("+json")
            });
        if !json {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "the body must be JSON (Content-Type: application/json)",
            ));
        }
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| too_large_or_bad(e.status(), e.body_text()))?;
        if bytes.is_empty() {
            return Err(Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid-body",
                "the body is empty; it must be a JSON document",
            ));
        }
        // Every body of this API is an object. serde also reads a struct from an array
        // of its fields in order, so without this `[null]` would pass for a body whose
        // fields are all optional.
        // A body that is not JSON at all is left to the parser below, which says where.
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{')
            && serde_json::from_slice::<serde::de::IgnoredAny>(&bytes).is_ok()
        {
            return Err(Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-body",
                "the body must be a JSON object",
            ));
        }
        let mut de = serde_json::Deserializer::from_slice(&bytes);
        let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let field = e.path().to_string();
            let inner = e.into_inner();
            let status = if inner.is_syntax() || inner.is_eof() {
                StatusCode::BAD_REQUEST
            } else {
                StatusCode::UNPROCESSABLE_ENTITY
            };
            let p = Problem::new(status, "invalid-body", format!("{field}: {inner}"));
            if field == "." { p } else { p.at(field) }
        })?;
        de.end()
            .map_err(|e| Problem::new(StatusCode::BAD_REQUEST, "invalid-body", e.to_string()))?;
        Ok(Body(value))
    }
}

/// A rejected body: too large, or unreadable.
pub fn too_large_or_bad(status: StatusCode, text: String) -> Problem {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        Problem::new(status, "body-too-large", text)
    } else {
        Problem::new(StatusCode::BAD_REQUEST, "invalid-body", text)
    }
}

impl From<JsonRejection> for Problem {
    fn from(e: JsonRejection) -> Problem {
        too_large_or_bad(e.status(), e.body_text())
    }
}

/// Query parameters, unknown ones refused, mistakes reported as problems.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Query(q.0))
            .map_err(|e: QueryRejection| {
                Problem::new(StatusCode::BAD_REQUEST, "invalid-parameter", e.body_text())
            })
    }
}

/// Path parameters, mistakes reported as problems.
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Path(p.0))
            .map_err(|e: PathRejection| {
                Problem::new(StatusCode::BAD_REQUEST, "invalid-parameter", e.body_text())
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A configuration refused on saving is the client's to mend (422, at the
    /// condition); one that no longer prepares when the group runs is the state of the
    /// server's data (409), not a mistake in the request.
    #[test]
    fn a_condition_gone_at_run_time_is_a_conflict_not_a_bad_request() {
        let problems = vec!["config/database: cannot read `/srv/geoip/x.mmdb`".to_string()];
        let saved = Problem::from(EngineError::Config {
            group: "g".into(),
            at: "rule.all[0].any[0]".into(),
            plugin: "geoip-country".into(),
            problems: problems.clone(),
        });
        assert_eq!((saved.status, saved.kind), (422, "invalid-condition"));
        assert_eq!(saved.field.as_deref(), Some("rule.all[0].any[0]"));
        let ran = Problem::from(EngineError::Unprepared {
            group: "g".into(),
            at: "rule.all[0].any[0]".into(),
            plugin: "geoip-country".into(),
            problems,
        });
        assert_eq!((ran.status, ran.kind), (409, "condition-unavailable"));
        assert!(
            ran.detail
                .contains("cannot prepare the condition the group was saved with"),
            "{}",
            ran.detail
        );
    }
}
