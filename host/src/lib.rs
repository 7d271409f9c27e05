//! The wasmtime embedding that runs Cohort's condition plugins.
//!
//! This is the only crate that knows wasmtime. It loads a component, checks it against
//! a supported version of the `cohort:plugin` contract (see `wit/`), compiles it once
//! (cached in memory and, optionally, on disk by the wasm's sha256), pre-instantiates
//! it, and runs batches of customers through it under limits: fuel, an epoch deadline,
//! a memory cap and a stack cap. A plugin gets no filesystem, network, environment,
//! clock or randomness; the one grant is a read-only data directory, given by the
//! operator and only to a plugin that asks for it.
//!
//! Every failure of a plugin is contained: the call's customers get
//! [`Verdict::Error`](cohort_model::Verdict::Error) — no decision, never "no match" —
//! the poisoned instance is dropped, and the next call runs on a fresh one.

mod cache;
mod columns;
mod contract;
mod error;
mod host;
mod limits;
mod plugin;
mod runtime;
mod sandbox;
mod symbols;

pub use cache::Pruned;
pub use columns::Columns;
pub use contract::{BUDGET_SECTION, SUPPORTED_CONTRACTS};
pub use error::{Failure, LoadError, PrepareError};
pub use host::{Host, HostConfig};
pub use limits::{Budget, Limits};
pub use plugin::{Compiled, Condition, Evaluation, Plugin};
