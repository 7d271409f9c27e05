//! Bearer tokens: made at random, shown once, kept only as a SHA-256 digest (a token
//! has 256 bits of entropy, so a fast digest is as safe as a slow password hash), and
//! checked on every request.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use cohort_engine::Scope;
use cohort_store::Role;
use sha2::{Digest, Sha256};

use crate::Shared;
use crate::problem::Problem;

/// Tokens start with this, so that a leaked one is easy to recognise in a scan.
const PREFIX: &str = "cohort_";

/// A new random token.
pub fn new_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(format!("{PREFIX}{}", hex::encode(bytes)))
}

/// What the store keeps of a token.
pub fn digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Who is calling: the token's id, its name (the actor in the audit history), role
/// and the groups it is limited to.
#[derive(Clone, Debug)]
pub struct Caller {
    /// Tells this token from a later one of the same name.
    pub token: i64,
    pub name: String,
    pub role: Role,
    pub scope: Scope,
}

/// The token of an `Authorization` value: the scheme is case-insensitive (RFC 9110).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token)
}

/// Resolve the bearer token of every request it guards; refuse a request without a
/// live one.
pub async fn authenticate(State(state): State<Shared>, mut req: Request, next: Next) -> Response {
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer)
        .map(str::trim);
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return Problem::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "this endpoint needs a bearer token (Authorization: Bearer <token>); create one with `cohort token create`",
        )
        .into_response();
    };
    let hash = digest(token);
    let access = state.access.clone();
    let found = tokio::task::spawn_blocking(move || access.token_by_hash(&hash)).await;
    let caller = match found {
        Ok(Ok(Some(t))) if t.expired(crate::now()) => {
            return Problem::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                format!(
                    "token `{}` expired at {}",
                    t.name,
                    cohort_model::rfc3339::format(t.expires_at.unwrap_or_default())
                ),
            )
            .into_response();
        }
        Ok(Ok(Some(t))) => Caller {
            token: t.id,
            scope: Scope::of(t.groups.as_deref()),
            name: t.name,
            role: t.role,
        },
        Ok(Ok(None)) => {
            return Problem::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "the bearer token is not known or has been revoked",
            )
            .into_response();
        }
        Ok(Err(e)) => return Problem::from(e).into_response(),
        Err(e) => return Problem::internal(e.to_string()).into_response(),
    };
    req.extensions_mut().insert(caller.clone());
    let mut response = next.run(req).await;
    // For the request log, which sees only the response.
    response.extensions_mut().insert(caller);
    response
}

fn require(parts: &Parts, role: Role, global: bool) -> Result<Caller, Problem> {
    let caller =
        parts.extensions.get::<Caller>().cloned().ok_or_else(|| {
            Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", "no bearer token")
        })?;
    if caller.role < role {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "this needs the `{}` role; token `{}` has `{}`",
                role.as_str(),
                caller.name,
                caller.role.as_str()
            ),
        ));
    }
    if global && caller.scope.is_limited() {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "token `{}` is limited to groups, and this concerns every group",
                caller.name
            ),
        ));
    }
    Ok(caller)
}

macro_rules! role_extractor {
    ($(#[$doc:meta])* $name:ident, $role:expr, $global:expr) => {
        $(#[$doc])*
        pub struct $name(pub Caller);

        impl<S: Send + Sync> FromRequestParts<S> for $name {
            type Rejection = Problem;

            async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Problem> {
                require(parts, $role, $global).map($name)
            }
        }
    };
}

// A handler taking one of the first three works within the caller's scope
// (`Engine::within`); the `Global` ones refuse a token limited to groups, for what
// spans every group.
role_extractor!(
    /// Any live token.
    Reader,
    Role::ReadOnly,
    false
);
role_extractor!(
    /// A token with the operator or admin role.
    Operator,
    Role::Operator,
    false
);
role_extractor!(
    /// Any live token not limited to groups.
    GlobalReader,
    Role::ReadOnly,
    true
);
role_extractor!(
    /// A token with the operator or admin role, not limited to groups.
    GlobalOperator,
    Role::Operator,
    true
);
role_extractor!(
    /// A token with the admin role, not limited to groups.
    GlobalAdmin,
    Role::Admin,
    true
);
