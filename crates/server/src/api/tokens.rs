//! API tokens, managed by admins: listed, created (the token shown once) with an
//! optional expiry and groups it is limited to, and revoked.

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use cohort_model::Timestamp;
use cohort_store::{Role, TokenRecord, check_new_token};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{AfterId, Page, blocking, blocking_access, id_cursor, limit, page_after_id};
use crate::auth::GlobalAdmin;
use crate::idempotency::ReplayAs;
use crate::problem::{Body, Path, Problem, Query};
use crate::{Shared, now};

/// The tokens, revoked ones too, oldest first; never the tokens themselves.
#[utoipa::path(get, path = "/v1/tokens", tag = "tokens", params(AfterId),
    responses((status = 200, body = Page<TokenRecord>), (status = 403, body = Problem)))]
pub async fn list(
    State(state): State<Shared>,
    _: GlobalAdmin,
    Query(q): Query<AfterId>,
) -> Result<Json<Page<TokenRecord>>, Problem> {
    let limit = limit(q.limit)?;
    let after = id_cursor(q.after.as_deref(), "after")?.unwrap_or(0);
    blocking_access(&state, move |access| {
        Ok(Json(page_after_id(access.tokens()?, after, limit, |t| {
            t.id
        })))
    })
    .await
}

/// A token to make.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// How the token is known: the actor in the audit history. Unique among the tokens
    /// not revoked.
    #[schema(example = "billing-sync", min_length = 1, max_length = 64)]
    pub name: String,
    pub role: Role,
    /// When the token stops being accepted; never, if absent. Must be in the future.
    #[serde(default, with = "cohort_model::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<Timestamp>,
    /// The only groups the token sees (and only their customers and history), by id;
    /// every group if absent.
    #[serde(default)]
    pub groups: Option<Vec<String>>,
}

/// A new token, with the token itself.
#[derive(Serialize, ToSchema)]
pub struct CreatedToken {
    #[serde(flatten)]
    pub record: TokenRecord,
    /// The bearer token. Shown only in the response to the request that created it: a
    /// replay of that request (the same `Idempotency-Key`) leaves it out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// Make a token. Only its digest is kept: the token is in this response and nowhere else.
#[utoipa::path(post, path = "/v1/tokens", tag = "tokens", request_body = NewToken,
    responses((status = 201, body = CreatedToken), (status = 403, body = Problem),
        (status = 409, description = "A token not revoked has the name", body = Problem),
        (status = 422, body = Problem)))]
pub async fn create(
    State(state): State<Shared>,
    _: GlobalAdmin,
    Body(new): Body<NewToken>,
) -> Result<(StatusCode, Extension<ReplayAs>, Json<CreatedToken>), Problem> {
    let at = now();
    let name = check_new_token(&new.name, new.expires_at, at).map_err(|(field, why)| {
        Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-token", why).at(field)
    })?;
    let token = crate::auth::new_token()
        .map_err(|e| Problem::internal(format!("no randomness for a token: {e}")))?;
    if let Some(groups) = new.groups.clone() {
        blocking(&state, move |e| {
            e.check_scope(&groups).map_err(|err| {
                Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid-token",
                    err.to_string(),
                )
                .at("groups")
            })
        })
        .await?;
    }
    blocking_access(&state, move |access| {
        if access
            .tokens()?
            .iter()
            .any(|t| t.name == name && t.revoked_at.is_none())
        {
            return Err(Problem::new(
                StatusCode::CONFLICT,
                "token-exists",
                format!(
                    "a token named `{name}` is not revoked; revoke it first, or choose another name"
                ),
            )
            .at("name"));
        }
        let digest = crate::auth::digest(&token);
        access.create_token(
            &name,
            new.role,
            new.groups.as_deref(),
            &digest,
            at,
            new.expires_at,
        )?;
        let record = access
            .token_by_hash(&digest)?
            .ok_or_else(|| Problem::internal("the token just made is not found"))?;
        let mut created = CreatedToken {
            record,
            token: None,
        };
        let replay = serde_json::to_string(&created)
            .map_err(|e| Problem::internal(format!("cannot show the token: {e}")))?;
        created.token = Some(token);
        Ok((
            StatusCode::CREATED,
            Extension(ReplayAs(replay)),
            Json(created),
        ))
    })
    .await
}

/// Revoke the token of this name, if it is not already; requests with it are refused
/// from now on.
#[utoipa::path(delete, path = "/v1/tokens/{name}", tag = "tokens",
    params(("name" = String, Path)),
    responses((status = 204), (status = 404, body = Problem), (status = 403, body = Problem)))]
pub async fn revoke(
    State(state): State<Shared>,
    _: GlobalAdmin,
    Path(name): Path<String>,
) -> Result<StatusCode, Problem> {
    blocking_access(&state, move |access| {
        if access.revoke_token(&name, now())? {
            Ok(StatusCode::NO_CONTENT)
        } else {
            Err(Problem::not_found("token", &name))
        }
    })
    .await
}
