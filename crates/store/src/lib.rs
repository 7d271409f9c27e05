//! Where Cohort keeps customers, groups, plugins, memberships and their history: the
//! backend-neutral part.
//!
//! The interface is one trait per concern ([`Plugins`], [`Customers`], [`Groups`],
//! [`Memberships`], [`Runs`], [`Feed`], [`Imports`], and [`Tokens`], [`Webhooks`],
//! [`Idempotency`] together as [`Access`]); [`Store`] is all of them. Backends live in
//! crates of their own (`cohort-store-sqlite`, the embedded default) and share what
//! here is not about their database: the records, the errors, how a batch of changes
//! becomes rows ([`plan`]), the parallel parsing of a first load ([`load`]), and the
//! conformance suite every backend passes (`conformance`, behind the feature of that
//! name). Every change to memberships goes through [`Memberships::apply`], which writes
//! the change, its audit entry and its outbox event in one transaction: a crash leaves
//! either all of a batch or none of it.

pub mod copy;
pub mod load;
pub mod plan;
mod records;
mod scans;
mod traits;

#[cfg(feature = "conformance")]
pub mod conformance;

use cohort_model::Timestamp;

pub use records::*;
pub use scans::*;
pub use traits::*;

/// How long the response to a request with an idempotency key is replayed for a retry
/// of it, in seconds: a day, time enough for any client's retries; afterwards the key
/// is forgotten and may be used again.
pub const IDEMPOTENCY_KEY_LIFETIME: Timestamp = 24 * 60 * 60;

/// How many delivery attempts a webhook's log keeps: enough to see a failing
/// receiver's pattern, bounded however long it fails.
pub const DELIVERIES_KEPT: i64 = 100;

/// A backend's own error, whatever its driver.
pub type BackendError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another writer holds the store: worth trying again shortly.
    #[error("store: {0}")]
    Busy(#[source] BackendError),
    /// The backend failed otherwise.
    #[error("store: {0}")]
    Backend(#[source] BackendError),
    #[error("store: stored {what} `{id}` cannot be read: {problem}")]
    Corrupt {
        what: &'static str,
        id: String,
        problem: String,
    },
    #[error("no {what} `{id}`")]
    NotFound { what: &'static str, id: String },
    /// The write would contradict one under way (two scans of one group, say).
    #[error("{0}")]
    Conflict(String),
    #[error("cannot open the store at `{path}`: {problem}")]
    Open { path: String, problem: String },
}

impl StoreError {
    /// Another writer holds the store: worth trying again shortly.
    pub fn is_busy(&self) -> bool {
        matches!(self, StoreError::Busy(_))
    }

    /// A stored `what` named `id` that cannot be read, and why.
    pub fn corrupt(what: &'static str, id: &str, problem: impl ToString) -> StoreError {
        StoreError::Corrupt {
            what,
            id: id.to_string(),
            problem: problem.to_string(),
        }
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// Every trait of the store, for code that calls them on a concrete backend.
pub mod prelude {
    pub use crate::scans::Scans;
    pub use crate::traits::{
        Access, Customers, Feed, Groups, Idempotency, Imports, Memberships, Plugins, Runs, Staff,
        Store, Tokens, Webhooks,
    };
}
