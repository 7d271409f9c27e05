//! Entity tags for concurrency control: a resource's `ETag` is a digest of what it is,
//! and a write with `If-Match` happens only if the resource is still what the client
//! last read (RFC 9110, 13.1.1), so that two people editing one group cannot overwrite
//! each other unknowingly.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::problem::Problem;

/// The strong entity tag of `value`: a digest of its JSON, quoted. Equal values give
/// equal tags whichever backend or server computes them: their JSON is the same.
pub fn of(value: &impl Serialize) -> Result<String, Problem> {
    let json = serde_json::to_vec(value)
        .map_err(|e| Problem::internal(format!("cannot tag the resource: {e}")))?;
    Ok(format!("\"{}\"", hex::encode(&Sha256::digest(&json)[..16])))
}

/// An `ETag` header beside a response's body.
pub type Tagged = [(header::HeaderName, HeaderValue); 1];

/// An `ETag` header.
pub fn header(tag: &str) -> Result<(header::HeaderName, HeaderValue), Problem> {
    let value = HeaderValue::from_str(tag)
        .map_err(|e| Problem::internal(format!("cannot send the entity tag: {e}")))?;
    Ok((header::ETAG, value))
}

/// What an `If-Match` header asks.
#[derive(Clone, Debug)]
pub enum IfMatch {
    /// No header: write whatever is stored.
    Absent,
    /// `*`: write if the resource exists.
    Any,
    /// Write if the stored resource has one of these tags.
    Tags(Vec<String>),
}

impl IfMatch {
    /// The request's `If-Match`, if any; a malformed one is refused naming the header.
    pub fn from_headers(headers: &HeaderMap) -> Result<IfMatch, Problem> {
        let values: Vec<&HeaderValue> = headers.get_all(header::IF_MATCH).iter().collect();
        if values.is_empty() {
            return Ok(IfMatch::Absent);
        }
        let mut tags = Vec::new();
        for value in values {
            let text = value.to_str().map_err(|_| malformed())?;
            for tag in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                if tag == "*" {
                    return Ok(IfMatch::Any);
                }
                // A weak tag never matches strongly (RFC 9110, 13.1.1).
                let quoted = tag.len() >= 2 && tag.starts_with('"') && tag.ends_with('"');
                if !quoted && !tag.starts_with("W/\"") {
                    return Err(malformed());
                }
                tags.push(tag.to_string());
            }
        }
        if tags.is_empty() {
            return Err(malformed());
        }
        Ok(IfMatch::Tags(tags))
    }

    /// Whether the stored resource (`None` if there is none), tagged `stored`, passes.
    pub fn holds(&self, stored: Option<&str>) -> bool {
        match (self, stored) {
            (IfMatch::Absent, _) => true,
            (IfMatch::Any, stored) => stored.is_some(),
            (IfMatch::Tags(tags), Some(stored)) => tags.iter().any(|t| t == stored),
            (IfMatch::Tags(_), None) => false,
        }
    }
}

fn malformed() -> Problem {
    Problem::new(
        StatusCode::BAD_REQUEST,
        "invalid-header",
        "If-Match takes `*` or entity tags in double quotes, as an `ETag` header gave them",
    )
    .at("If-Match")
}

/// The answer to a write whose `If-Match` did not hold.
pub fn failed(what: &str, id: &str) -> Problem {
    Problem::new(
        StatusCode::PRECONDITION_FAILED,
        "precondition-failed",
        format!(
            "{what} `{id}` is not what If-Match names: it was changed (or removed) since it was read; read it again and reapply the change"
        ),
    )
    .at("If-Match")
}
