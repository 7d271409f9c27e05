//! Groups and their rules (checked through the plugins when saved), and the platform
//! entities that use them.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use cohort_engine::{Engine, Preview, Scope};
use cohort_model::Group;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{After, Page, blocking, limit, page, same_id};
use crate::auth::{GlobalOperator, Operator, Reader};
use crate::etag::{self, IfMatch, Tagged};
use crate::problem::{Body, Path, Problem, Query};
use crate::{Shared, now};

/// A platform entity that refers to a group, or (`kind` `group`) a group whose rule
/// does.
#[derive(Serialize, ToSchema)]
pub struct Use {
    /// `tariff`, `promotion`, `contract-template`, `segment`, `vat-setting`, ...
    pub kind: String,
    pub entity: String,
}

/// A group with its current size and what uses it.
#[derive(Serialize, ToSchema)]
pub struct GroupDetail {
    #[serde(flatten)]
    pub group: Group,
    /// Members whose membership is active now.
    pub active_members: u64,
    pub used_by: Vec<Use>,
}

/// `group` as `scope` sees it: what uses it includes the groups whose rules refer to
/// it, a hidden one unnamed.
fn detail(e: &Engine, scope: &Scope, group: Group) -> Result<GroupDetail, Problem> {
    let active_members = e.store().count_active(&group.id, now())?;
    let used_by = e
        .within(scope)
        .uses(&group.id)?
        .into_iter()
        .map(|(kind, entity)| Use { kind, entity })
        .collect();
    Ok(GroupDetail {
        group,
        active_members,
        used_by,
    })
}

/// The groups, by id.
#[utoipa::path(get, path = "/v1/groups", tag = "groups", params(After),
    responses((status = 200, body = Page<GroupDetail>), (status = 401, body = Problem)))]
pub async fn list(
    State(state): State<Shared>,
    Reader(caller): Reader,
    Query(q): Query<After>,
) -> Result<Json<Page<GroupDetail>>, Problem> {
    let limit = limit(q.limit)?;
    blocking(&state, move |e| {
        let mut groups = e.within(&caller.scope).groups()?;
        groups.sort_by(|a, b| a.id.cmp(&b.id));
        let groups = groups
            .into_iter()
            .filter(|g| q.after.as_ref().is_none_or(|a| g.id > *a))
            .take(limit + 1)
            .map(|g| detail(e, &caller.scope, g))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Json(page(groups, limit, |g| g.group.id.clone())))
    })
    .await
}

/// Create a group. Its rule is checked through each condition's plugin first. Not for
/// a token limited to groups.
#[utoipa::path(post, path = "/v1/groups", tag = "groups", request_body = Group,
    responses((status = 201, body = GroupDetail,
            headers(("ETag" = String, description = "The definition's entity tag"))),
        (status = 409, description = "A group with this id exists", body = Problem),
        (status = 422, description = "The group or a condition's configuration is invalid", body = Problem)))]
pub async fn create(
    State(state): State<Shared>,
    _: GlobalOperator,
    Body(group): Body<Group>,
) -> Result<(StatusCode, Tagged, Json<GroupDetail>), Problem> {
    blocking(&state, move |e| {
        // Looked at and written in one transaction: of two creations at once, one wins.
        if !e.save_group_if(&group, now(), &|stored| stored.is_none())? {
            return Err(Problem::new(
                StatusCode::CONFLICT,
                "group-exists",
                format!(
                    "group `{}` exists; PUT /v1/groups/{} replaces it",
                    group.id, group.id
                ),
            )
            .at("id"));
        }
        let tag = etag::of(&group)?;
        Ok((
            StatusCode::CREATED,
            [etag::header(&tag)?],
            Json(detail(e, &Scope::All, group)?),
        ))
    })
    .await
}

/// A group's definition, size and uses, with the definition's `ETag`.
#[utoipa::path(get, path = "/v1/groups/{id}", tag = "groups", params(("id" = String, Path)),
    responses((status = 200, body = GroupDetail,
            headers(("ETag" = String, description = "The definition's entity tag, for `If-Match` on `PUT`"))),
        (status = 404, body = Problem)))]
pub async fn show(
    State(state): State<Shared>,
    Reader(caller): Reader,
    Path(id): Path<String>,
) -> Result<(Tagged, Json<GroupDetail>), Problem> {
    blocking(&state, move |e| {
        let group = e.within(&caller.scope).group(&id)?;
        let tag = etag::of(&group)?;
        Ok((
            [etag::header(&tag)?],
            Json(detail(e, &caller.scope, group)?),
        ))
    })
    .await
}

/// Create or replace a group. Its rule is checked through each condition's plugin first.
/// With `If-Match`, only if the stored definition still has that entity tag (`*`: if
/// the group exists); otherwise 412 and nothing is written. A token limited to groups
/// may replace those groups only.
#[utoipa::path(put, path = "/v1/groups/{id}", tag = "groups",
    params(("id" = String, Path),
        ("If-Match" = Option<String>, Header, description = "The `ETag` the definition was read with, or `*`")),
    request_body = Group,
    responses((status = 200, body = GroupDetail,
            headers(("ETag" = String, description = "The saved definition's entity tag"))),
        (status = 400, description = "A malformed `If-Match`", body = Problem),
        (status = 412, description = "The group changed since it was read (`If-Match`)", body = Problem),
        (status = 422, description = "The group or a condition's configuration is invalid", body = Problem)))]
pub async fn save(
    State(state): State<Shared>,
    Operator(caller): Operator,
    Path(id): Path<String>,
    headers: HeaderMap,
    Body(group): Body<Group>,
) -> Result<(Tagged, Json<GroupDetail>), Problem> {
    same_id(&group.id, &id)?;
    let if_match = IfMatch::from_headers(&headers)?;
    blocking(&state, move |e| {
        let written = e
            .within(&caller.scope)
            .save_group_if(&group, now(), &|stored| {
                if_match.holds(stored.and_then(|g| etag::of(g).ok()).as_deref())
            })?;
        if !written {
            return Err(etag::failed("group", &group.id));
        }
        let tag = etag::of(&group)?;
        Ok((
            [etag::header(&tag)?],
            Json(detail(e, &caller.scope, group)?),
        ))
    })
    .await
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeleteQuery {
    /// Delete even if platform entities still use the group.
    #[serde(default)]
    force: bool,
}

/// Delete a group; its memberships stay in the history. Refused while platform
/// entities use it, unless forced.
#[utoipa::path(delete, path = "/v1/groups/{id}", tag = "groups",
    params(("id" = String, Path), DeleteQuery),
    responses((status = 204), (status = 404, body = Problem),
        (status = 409, description = "The group is in use", body = Problem)))]
pub async fn delete(
    State(state): State<Shared>,
    Operator(caller): Operator,
    Path(id): Path<String>,
    Query(q): Query<DeleteQuery>,
) -> Result<StatusCode, Problem> {
    blocking(&state, move |e| {
        e.within(&caller.scope).delete_group(&id, q.force)?;
        Ok(StatusCode::NO_CONTENT)
    })
    .await
}

/// Record that a platform entity (a tariff, promotion, contract template, segment, VAT
/// setting, ...) refers to the group.
#[utoipa::path(put, path = "/v1/groups/{id}/uses/{kind}/{entity}", tag = "groups",
    params(("id" = String, Path), ("kind" = String, Path), ("entity" = String, Path)),
    responses((status = 204), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn use_group(
    State(state): State<Shared>,
    Operator(caller): Operator,
    Path((id, kind, entity)): Path<(String, String, String)>,
) -> Result<StatusCode, Problem> {
    blocking(&state, move |e| {
        e.within(&caller.scope)
            .use_group(&id, &kind, &entity, true)?;
        Ok(StatusCode::NO_CONTENT)
    })
    .await
}

/// Forget that a platform entity refers to the group.
#[utoipa::path(delete, path = "/v1/groups/{id}/uses/{kind}/{entity}", tag = "groups",
    params(("id" = String, Path), ("kind" = String, Path), ("entity" = String, Path)),
    responses((status = 204), (status = 404, body = Problem)))]
pub async fn unuse_group(
    State(state): State<Shared>,
    Operator(caller): Operator,
    Path((id, kind, entity)): Path<(String, String, String)>,
) -> Result<StatusCode, Problem> {
    blocking(&state, move |e| {
        e.within(&caller.scope)
            .use_group(&id, &kind, &entity, false)?;
        Ok(StatusCode::NO_CONTENT)
    })
    .await
}

/// What saving this definition and running it now would do, without saving it: how
/// many customers would be added, removed and left undecided, with a few of each.
/// Checked as a save is (the same 422s); nothing is recorded. A token limited to
/// groups previews only its own groups.
#[utoipa::path(post, path = "/v1/groups/{id}/preview", tag = "groups",
    params(("id" = String, Path)), request_body = Group,
    responses((status = 200, body = Preview), (status = 404, body = Problem),
        (status = 422, description = "The group or a condition's configuration is invalid", body = Problem)))]
pub async fn preview(
    State(state): State<Shared>,
    Operator(caller): Operator,
    Path(id): Path<String>,
    Body(group): Body<Group>,
) -> Result<Json<Preview>, Problem> {
    same_id(&group.id, &id)?;
    blocking(&state, move |e| {
        Ok(Json(e.within(&caller.scope).preview(&group, now())?))
    })
    .await
}
