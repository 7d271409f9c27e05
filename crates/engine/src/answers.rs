//! What the engine answers about one customer: a registration's outcome and why a
//! customer is or is not in a group. Pairs are shown as objects in JSON (`group` and
//! `why`, `membership` and `state`), which clients generated from the API's document
//! can read, rather than as arrays of two.

use cohort_evaluator::Explanation;
use cohort_model::{Membership, State, Timestamp};
use serde::Serialize;

/// What registering a customer did.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Registration {
    pub customer: String,
    pub new: bool,
    /// Groups the customer joined through on-registration rules.
    pub joined: Vec<String>,
    /// Groups whose rule could not decide for the customer, with the reason.
    #[serde(serialize_with = "undecided_as_objects")]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<UndecidedGroup>))]
    pub undecided: Vec<(String, String)>,
}

/// A group whose rule could not decide for a new customer, as JSON shows it.
#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UndecidedGroup<'a> {
    pub group: &'a str,
    /// The explanation, naming the conditions that could not decide.
    pub why: &'a str,
}

fn undecided_as_objects<S: serde::Serializer>(
    undecided: &[(String, String)],
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    s.collect_seq(
        undecided
            .iter()
            .map(|(group, why)| UndecidedGroup { group, why }),
    )
}

/// A membership with its state at some time, as JSON shows it.
#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MembershipAt<'a> {
    pub membership: &'a Membership,
    pub state: State,
}

fn memberships_as_objects<S: serde::Serializer>(
    memberships: &[(Membership, State)],
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    s.collect_seq(memberships.iter().map(|(membership, state)| MembershipAt {
        membership,
        state: *state,
    }))
}

/// Why a customer is or is not in a group.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Why {
    pub customer: String,
    pub group: String,
    #[serde(with = "cohort_model::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub as_of: Timestamp,
    pub explanation: Explanation,
    /// The customer's memberships in the group, with their state at `as_of`.
    #[serde(serialize_with = "memberships_as_objects")]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<MembershipAt>))]
    pub memberships: Vec<(Membership, State)>,
    pub pinned_out: bool,
    /// The group of the same exclusive set, ahead by priority, that holds the
    /// customer: the rule does not add the customer here while it does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ahead: Option<String>,
    /// The group's rule is disabled: it never runs, whatever it decides.
    pub disabled: bool,
}
