//! Customers, and registration: a new customer checked at once against every group
//! with the on-registration trigger.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use cohort_engine::Registration;
use cohort_model::{CustomerRecord, Interner};
use cohort_store::Erasure;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::members::{MembershipView, ReasonQuery};
use super::{After, Page, blocking, limit, page, same_id};
use crate::auth::{GlobalAdmin, GlobalOperator, Reader};
use crate::etag::{self, IfMatch, Tagged};
use crate::problem::{Body, Path, Problem, Query};
use crate::{Shared, now};

/// The customers, by id.
#[utoipa::path(get, path = "/v1/customers", tag = "customers", params(After),
    responses((status = 200, body = Page<CustomerRecord>)))]
pub async fn list(
    State(state): State<Shared>,
    Reader(caller): Reader,
    Query(q): Query<After>,
) -> Result<Json<Page<CustomerRecord>>, Problem> {
    let limit = limit(q.limit)?;
    blocking(&state, move |e| {
        let customers = e
            .within(&caller.scope)
            .customers_after(q.after.as_deref(), limit + 1)?;
        Ok(Json(page(customers, limit, |c| c.id.clone())))
    })
    .await
}

/// Customers to insert or update.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Batch {
    pub customers: Vec<CustomerRecord>,
}

/// What a batch did.
#[derive(Serialize, ToSchema)]
pub struct BatchResult {
    pub received: u64,
    pub new: u64,
    /// New customers that joined groups through on-registration rules.
    pub registrations: Vec<Registration>,
}

/// Insert or update many customers. Every record is checked before any is stored, so a
/// bad record stores none; new customers are checked against on-registration groups.
#[utoipa::path(post, path = "/v1/customers", tag = "customers", request_body = Batch,
    responses((status = 200, body = BatchResult),
        (status = 422, description = "A record is invalid; none was stored", body = Problem)))]
pub async fn upsert_many(
    State(state): State<Shared>,
    _: GlobalOperator,
    Body(batch): Body<Batch>,
) -> Result<Json<BatchResult>, Problem> {
    let interner = Interner::new();
    for (i, record) in batch.customers.iter().enumerate() {
        record.intern(&interner).map_err(|e| {
            Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-customer",
                e.to_string(),
            )
            .at(format!("customers[{i}].{}", e.field))
        })?;
    }
    blocking(&state, move |e| {
        let at = now();
        let mut result = BatchResult {
            received: batch.customers.len() as u64,
            new: 0,
            registrations: Vec::new(),
        };
        for record in &batch.customers {
            let r = e.upsert_customer(record, at)?;
            if r.new {
                result.new += 1;
                if !r.joined.is_empty() || !r.undecided.is_empty() {
                    result.registrations.push(r);
                }
            }
        }
        Ok(Json(result))
    })
    .await
}

/// A customer and its memberships.
#[derive(Serialize, ToSchema)]
pub struct CustomerDetail {
    pub customer: CustomerRecord,
    pub memberships: Vec<MembershipView>,
}

/// A customer's record and every membership it has had, with the record's `ETag`.
#[utoipa::path(get, path = "/v1/customers/{id}", tag = "customers",
    params(("id" = String, Path)),
    responses((status = 200, body = CustomerDetail,
            headers(("ETag" = String, description = "The record's entity tag, for `If-Match` on `PUT`"))),
        (status = 404, body = Problem)))]
pub async fn show(
    State(state): State<Shared>,
    Reader(caller): Reader,
    Path(id): Path<String>,
) -> Result<(Tagged, Json<CustomerDetail>), Problem> {
    blocking(&state, move |e| {
        let within = e.within(&caller.scope);
        let customer = within.customer(&id)?;
        let at = now();
        let memberships = within
            .customer_memberships(&id)?
            .into_iter()
            .map(|m| MembershipView::at(m, at))
            .collect();
        let tag = etag::of(&customer)?;
        Ok((
            [etag::header(&tag)?],
            Json(CustomerDetail {
                customer,
                memberships,
            }),
        ))
    })
    .await
}

/// Erase a customer (a request under data-protection law): their facts and the
/// groups they are pinned out of are deleted, each membership active or pending ends
/// now (with `membership.removed` events), and a `customer.erased` event follows. The
/// audit history keeps each entry (who, what, when, which group) but replaces the
/// reasons written about the customer with `(erased with the customer)`. Admins only.
/// Erasing again answers 404, unless a run that read the customer before the erasure
/// added a membership after it: that membership is ended.
#[utoipa::path(delete, path = "/v1/customers/{id}", tag = "customers",
    params(("id" = String, Path), ReasonQuery),
    responses((status = 200, body = Erasure), (status = 404, body = Problem)))]
pub async fn erase(
    State(state): State<Shared>,
    GlobalAdmin(caller): GlobalAdmin,
    Path(id): Path<String>,
    Query(q): Query<ReasonQuery>,
) -> Result<Json<Erasure>, Problem> {
    let reason = q.reason.unwrap_or_else(|| "erased on request".into());
    blocking(&state, move |e| {
        Ok(Json(e.erase_customer(&id, &caller.name, &reason, now())?))
    })
    .await
}

async fn register_one(
    state: &Shared,
    record: CustomerRecord,
) -> Result<(StatusCode, Json<Registration>), Problem> {
    blocking(state, move |e| {
        let r = e.upsert_customer(&record, now())?;
        let status = if r.new {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        Ok((status, Json(r)))
    })
    .await
}

/// Insert or update one customer; a new one is checked against on-registration groups.
/// With `If-Match`, only an existing customer whose stored record still has that
/// entity tag (`*`: any) is updated; otherwise 412 and nothing is written.
#[utoipa::path(put, path = "/v1/customers/{id}", tag = "customers",
    params(("id" = String, Path),
        ("If-Match" = Option<String>, Header, description = "The `ETag` the record was read with, or `*`")),
    request_body = CustomerRecord,
    responses((status = 201, description = "A new customer", body = Registration,
            headers(("ETag" = String, description = "The stored record's entity tag"))),
        (status = 200, description = "An existing customer, updated", body = Registration,
            headers(("ETag" = String, description = "The stored record's entity tag"))),
        (status = 400, description = "A malformed `If-Match`", body = Problem),
        (status = 412, description = "The customer changed since it was read (`If-Match`)", body = Problem),
        (status = 422, body = Problem)))]
pub async fn upsert(
    State(state): State<Shared>,
    _: GlobalOperator,
    Path(id): Path<String>,
    headers: HeaderMap,
    Body(record): Body<CustomerRecord>,
) -> Result<(StatusCode, Tagged, Json<Registration>), Problem> {
    same_id(&record.id, &id)?;
    let if_match = IfMatch::from_headers(&headers)?;
    // The record is stored as sent: its tag is the one a read will give.
    let tag = etag::of(&record)?;
    let (status, Json(registration)) = if let IfMatch::Absent = if_match {
        register_one(&state, record).await?
    } else {
        let id = record.id.clone();
        blocking(&state, move |e| {
            let written = e.update_customer_if(&record, now(), &|stored| {
                if_match.holds(etag::of(stored).ok().as_deref())
            })?;
            if !written {
                return Err(etag::failed("customer", &record.id));
            }
            Ok((
                StatusCode::OK,
                Json(Registration {
                    customer: id,
                    new: false,
                    joined: Vec::new(),
                    undecided: Vec::new(),
                }),
            ))
        })
        .await?
    };
    Ok((status, [etag::header(&tag)?], Json(registration)))
}

/// Register a customer: store it and check it at once against every group with the
/// on-registration trigger. Answers with the groups it joined.
#[utoipa::path(post, path = "/v1/registrations", tag = "customers",
    request_body = CustomerRecord,
    responses((status = 201, description = "A new customer", body = Registration),
        (status = 200, description = "The customer existed; it was updated and no trigger ran", body = Registration),
        (status = 422, body = Problem)))]
pub async fn register(
    State(state): State<Shared>,
    _: GlobalOperator,
    Body(record): Body<CustomerRecord>,
) -> Result<(StatusCode, Json<Registration>), Problem> {
    register_one(&state, record).await
}
