//! A group's members, manual membership and pinned exclusions.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use cohort_model::{Membership, State as MembershipState};
use cohort_store::Listing;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{After, Page, blocking, id_cursor, limit, page, time};
use crate::auth::{Operator, Reader};
use crate::problem::{Body, Path, Problem, Query};
use crate::{Shared, now};

/// A membership and where it stands at the time asked about.
#[derive(Serialize, ToSchema)]
pub struct MembershipView {
    #[serde(flatten)]
    pub membership: Membership,
    pub state: MembershipState,
}

impl MembershipView {
    pub fn at(membership: Membership, at: i64) -> MembershipView {
        let state = membership.state(at);
        MembershipView { membership, state }
    }
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// `active` (the default), `pending`, `expired`, or `all`.
    #[param(value_type = Option<String>, pattern = "^(active|pending|expired|all)$")]
    state: Option<String>,
    /// The time states are judged at (RFC 3339); now if absent.
    #[param(value_type = Option<String>, format = DateTime)]
    at: Option<String>,
    /// The `next` of the previous page.
    #[param(value_type = Option<i64>, minimum = 0)]
    after: Option<String>,
    limit: Option<usize>,
}

/// A group's memberships: the active ones, or others on request.
#[utoipa::path(get, path = "/v1/groups/{id}/members", tag = "memberships",
    params(("id" = String, Path), ListQuery),
    responses((status = 200, body = Page<MembershipView>), (status = 404, body = Problem)))]
pub async fn list(
    State(state): State<Shared>,
    Reader(caller): Reader,
    Path(id): Path<String>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Page<MembershipView>>, Problem> {
    let limit = limit(q.limit)?;
    let at = time(q.at.as_deref(), "at", now())?;
    let after = id_cursor(q.after.as_deref(), "after")?.unwrap_or(0);
    let listing = match q.state.as_deref().unwrap_or("active") {
        "active" => Listing::Only(MembershipState::Active),
        "pending" => Listing::Only(MembershipState::Pending),
        "expired" => Listing::Only(MembershipState::Expired),
        "all" => Listing::All,
        other => {
            return Err(Problem::bad_request(
                "state",
                format!("`{other}` is not a state: use active, pending, expired or all"),
            ));
        }
    };
    blocking(&state, move |e| {
        let ms = e
            .within(&caller.scope)
            .members_page(&id, listing, at, after, limit + 1)?;
        let views = ms.into_iter().map(|m| MembershipView::at(m, at)).collect();
        Ok(Json(page(views, limit, |v: &MembershipView| {
            v.membership.id.to_string()
        })))
    })
    .await
}

/// A customer to add to a group by hand.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMember {
    pub customer: String,
    /// When the membership starts (RFC 3339); now if absent.
    pub start: Option<String>,
    /// When it ends (RFC 3339); open-ended if absent.
    pub end: Option<String>,
    #[serde(default = "added_by_hand")]
    pub reason: String,
}

fn added_by_hand() -> String {
    "added by hand".into()
}

/// Whether a manual addition made a new membership.
#[derive(Serialize, ToSchema)]
pub struct Added {
    /// False when the customer already has a membership over that window.
    pub added: bool,
}

/// Add a customer to a group by hand, optionally for a window. The audit history
/// records the token's name as the actor.
#[utoipa::path(post, path = "/v1/groups/{id}/members", tag = "memberships",
    params(("id" = String, Path)), request_body = NewMember,
    responses((status = 201, body = Added), (status = 200, body = Added),
        (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn add(
    State(state): State<Shared>,
    Operator(caller): Operator,
    Path(id): Path<String>,
    Body(m): Body<NewMember>,
) -> Result<(StatusCode, Json<Added>), Problem> {
    let at = now();
    let start = time(m.start.as_deref(), "start", at)?;
    let end = m
        .end
        .as_deref()
        .map(|e| time(Some(e), "end", at))
        .transpose()?;
    blocking(&state, move |e| {
        let added = e.within(&caller.scope).add_member(
            &m.customer,
            &id,
            &caller.name,
            &m.reason,
            (start, end),
            at,
        )?;
        let status = if added {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        Ok((status, Json(Added { added })))
    })
    .await
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReasonQuery {
    /// Why, for the audit history.
    pub(super) reason: Option<String>,
}

/// How many memberships a removal ended.
#[derive(Serialize, ToSchema)]
pub struct Ended {
    pub ended: u64,
}

/// Remove a customer from a group by hand: its active memberships end now. The rule
/// may add it again at its next run; pin an exclusion to prevent that.
#[utoipa::path(delete, path = "/v1/groups/{id}/members/{customer}", tag = "memberships",
    params(("id" = String, Path), ("customer" = String, Path), ReasonQuery),
    responses((status = 200, body = Ended), (status = 404, body = Problem)))]
pub async fn remove(
    State(state): State<Shared>,
    Operator(caller): Operator,
    Path((id, customer)): Path<(String, String)>,
    Query(q): Query<ReasonQuery>,
) -> Result<Json<Ended>, Problem> {
    let reason = q.reason.unwrap_or_else(|| "removed by hand".into());
    blocking(&state, move |e| {
        let ended =
            e.within(&caller.scope)
                .remove_member(&customer, &id, &caller.name, &reason, now())?;
        Ok(Json(Ended { ended }))
    })
    .await
}

/// Customers pinned out of a group, by id.
#[utoipa::path(get, path = "/v1/groups/{id}/exclusions", tag = "memberships",
    params(("id" = String, Path), After),
    responses((status = 200, body = Page<String>), (status = 404, body = Problem)))]
pub async fn exclusions(
    State(state): State<Shared>,
    Reader(caller): Reader,
    Path(id): Path<String>,
    Query(q): Query<After>,
) -> Result<Json<Page<String>>, Problem> {
    let limit = limit(q.limit)?;
    blocking(&state, move |e| {
        let mut pinned = e.within(&caller.scope).exclusions(&id)?;
        pinned.sort();
        let pinned: Vec<String> = pinned
            .into_iter()
            .filter(|c| q.after.as_ref().is_none_or(|a| c > a))
            .take(limit + 1)
            .collect();
        Ok(Json(page(pinned, limit, String::clone)))
    })
    .await
}

/// Pin a customer out of a group: its memberships end now and the rule never adds it.
#[utoipa::path(put, path = "/v1/groups/{id}/exclusions/{customer}", tag = "memberships",
    params(("id" = String, Path), ("customer" = String, Path), ReasonQuery),
    responses((status = 204), (status = 404, body = Problem)))]
pub async fn pin(
    State(state): State<Shared>,
    Operator(caller): Operator,
    Path((id, customer)): Path<(String, String)>,
    Query(q): Query<ReasonQuery>,
) -> Result<StatusCode, Problem> {
    let reason = q.reason.unwrap_or_else(|| "pinned out by hand".into());
    blocking(&state, move |e| {
        e.within(&caller.scope).pin_exclusion(
            &customer,
            &id,
            true,
            &caller.name,
            &reason,
            now(),
        )?;
        Ok(StatusCode::NO_CONTENT)
    })
    .await
}

/// Lift a pinned exclusion.
#[utoipa::path(delete, path = "/v1/groups/{id}/exclusions/{customer}", tag = "memberships",
    params(("id" = String, Path), ("customer" = String, Path)),
    responses((status = 204), (status = 404, body = Problem)))]
pub async fn unpin(
    State(state): State<Shared>,
    Operator(caller): Operator,
    Path((id, customer)): Path<(String, String)>,
) -> Result<StatusCode, Problem> {
    blocking(&state, move |e| {
        e.within(&caller.scope).pin_exclusion(
            &customer,
            &id,
            false,
            &caller.name,
            "unpinned by hand",
            now(),
        )?;
        Ok(StatusCode::NO_CONTENT)
    })
    .await
}
