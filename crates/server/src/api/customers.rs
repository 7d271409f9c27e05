//! Customers, and registration: a new customer checked at once against every group
//! with the on-registration trigger.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use cohort_engine::Registration;
use cohort_model::{CustomerRecord, Interner};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::members::MembershipView;
use super::{After, Page, blocking, limit, page, same_id};
use crate::auth::{Operator, Reader};
use crate::problem::{Body, Path, Problem, Query};
use crate::{Shared, now};

/// The customers, by id.
#[utoipa::path(get, path = "/v1/customers", tag = "customers", params(After),
    responses((status = 200, body = Page<CustomerRecord>)))]
pub async fn list(
    State(state): State<Shared>,
    _: Reader,
    Query(q): Query<After>,
) -> Result<Json<Page<CustomerRecord>>, Problem> {
    let limit = limit(q.limit)?;
    blocking(&state, move |e| {
        let customers = e.store().customers_after(q.after.as_deref(), limit + 1)?;
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
    _: Operator,
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

/// A customer's record and every membership it has had.
#[utoipa::path(get, path = "/v1/customers/{id}", tag = "customers",
    params(("id" = String, Path)),
    responses((status = 200, body = CustomerDetail), (status = 404, body = Problem)))]
pub async fn show(
    State(state): State<Shared>,
    _: Reader,
    Path(id): Path<String>,
) -> Result<Json<CustomerDetail>, Problem> {
    blocking(&state, move |e| {
        let customer = e
            .store()
            .customer(&id)?
            .ok_or_else(|| Problem::not_found("customer", &id))?;
        let at = now();
        let memberships = e
            .store()
            .customer_memberships(&id)?
            .into_iter()
            .map(|m| MembershipView::at(m, at))
            .collect();
        Ok(Json(CustomerDetail {
            customer,
            memberships,
        }))
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
#[utoipa::path(put, path = "/v1/customers/{id}", tag = "customers",
    params(("id" = String, Path)), request_body = CustomerRecord,
    responses((status = 201, description = "A new customer", body = Registration),
        (status = 200, description = "An existing customer, updated", body = Registration),
        (status = 422, body = Problem)))]
pub async fn upsert(
    State(state): State<Shared>,
    _: Operator,
    Path(id): Path<String>,
    Body(record): Body<CustomerRecord>,
) -> Result<(StatusCode, Json<Registration>), Problem> {
    same_id(&record.id, &id)?;
    register_one(&state, record).await
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
    _: Operator,
    Body(record): Body<CustomerRecord>,
) -> Result<(StatusCode, Json<Registration>), Problem> {
    register_one(&state, record).await
}
