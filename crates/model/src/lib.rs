//! Cohort's data model, shared by the host, the engine and the tools around them.
//!
//! Everything here is pure: no I/O, no wasm, no clock. Customers arrive as
//! [`CustomerRecord`]s (strings, as a platform sends them), are validated and interned
//! into [`Customer`]s (small numbers, as plugins read them), and plugins answer with a
//! [`Verdict`] per customer. [`Group`]s carry their auto-assign settings and [`Rule`];
//! [`Membership`]s are windows whose [`State`] follows from the time.

mod attribute;
mod customer;
mod group;
mod membership;
mod plugin;
pub mod rfc3339;
mod symbol;

pub use attribute::{AttributeValue, Decimal, Value};
pub use customer::{
    Customer, CustomerRecord, InvalidCustomer, MAX_ENTRIES, MAX_ID_LEN, MAX_TEXT_LEN, Payer,
    PayerKind, PayerRecord, Subscription, SubscriptionRecord, SubscriptionStatus,
    VerificationStatus, check_customer_id, check_label, shown,
};
pub use group::{
    AutoAssign, Clause, Condition, ExclusiveSet, Group, GroupCondition, InvalidGroup, Mode,
    PluginCondition, Rule, Schedule, Triggers, is_slug,
};
pub use membership::{Held, Membership, Source, State, state};
pub use plugin::{
    Capability, ConfigError, FOREVER, Field, FieldSet, PluginBudget, PluginInfo, Verdict,
    VerdictRef, Verdicts,
};
pub use symbol::{Interner, Memo, Symbol};

/// Seconds since the Unix epoch, UTC: the plugin contract's `timestamp`.
pub type Timestamp = i64;
