use std::fmt;
use std::time::Duration;

use cohort_model::ConfigError;

use crate::contract::BUDGET_SECTION;

/// Why a plugin could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read plugin file `{path}`: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("not a WebAssembly file (it does not start with the `\\0asm` magic)")]
    NotWasm,
    #[error(
        "a core WebAssembly module, not a component: build the plugin for wasm32-wasip2 (or wrap it with `wasm-tools component new`)"
    )]
    CoreModule,
    #[error("invalid component: {0}")]
    Invalid(String),
    #[error(
        "not a Cohort condition plugin: it exports no `cohort:plugin/condition` interface (its exports: {exports})"
    )]
    WrongWorld { exports: String },
    #[error(
        "the plugin is built for contract `cohort:plugin@{found}`, which this host does not support (supported: {supported})"
    )]
    UnsupportedContract { found: String, supported: String },
    #[error("the plugin does not fulfil contract `cohort:plugin@{version}`: {message}")]
    Contract {
        version: &'static str,
        message: String,
    },
    #[error("the plugin needs an import the host does not provide: {0}")]
    Imports(String),
    #[error("the plugin's self-description is invalid: {0}")]
    Description(String),
    #[error("the plugin's `{BUDGET_SECTION}` section is not a budget: {0}")]
    Budget(String),
    #[error("describing the plugin failed: {0}")]
    Describe(Failure),
    #[error("cannot set up the engine: {0}")]
    Engine(String),
}

/// Why a configuration could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error("plugin `{plugin}` rejects the configuration: {}", join(.errors))]
    Config {
        plugin: String,
        errors: Vec<ConfigError>,
    },
    #[error("plugin `{plugin}`: {message}")]
    Grant { plugin: String, message: String },
    #[error("plugin `{plugin}` failed while preparing: {failure}")]
    Failed { plugin: String, failure: Failure },
}

fn join(errors: &[ConfigError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// How a call into a plugin failed. Every customer of that call gets no decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    OutOfFuel {
        budget: u64,
    },
    Deadline {
        limit: Duration,
    },
    Memory {
        cap: usize,
    },
    Stack,
    /// The plugin interned more than the limits allow (`Limits::interned_*`).
    Symbols(String),
    /// Any other trap; `detail` carries what the plugin wrote to stderr (a Rust panic
    /// message, say) when there is something.
    Trap {
        trap: String,
        detail: String,
    },
    /// The plugin returned an error for the whole batch.
    Plugin(String),
    /// The plugin broke the contract (e.g. returned the wrong number of verdicts).
    Contract(String),
    /// The instance could not be (re)created or the configuration failed to prepare.
    Instantiate(String),
    /// The condition was not called: its failed calls had used up its failure budget
    /// (`Limits::failure_time`, `Limits::failed_calls`). Carries the last failure.
    GaveUp {
        calls: u32,
        time: Duration,
        last: Box<Failure>,
    },
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::OutOfFuel { budget } => {
                write!(f, "ran out of fuel (budget {budget} instructions)")
            }
            Failure::Deadline { limit } => write!(f, "exceeded the deadline of {limit:?}"),
            Failure::Memory { cap } => {
                write!(f, "exceeded the memory cap of {} MiB", cap >> 20)
            }
            Failure::Stack => f.write_str("exhausted its call stack"),
            Failure::Symbols(why) => f.write_str(why),
            Failure::Trap { trap, detail } if detail.is_empty() => write!(f, "trapped: {trap}"),
            Failure::Trap { trap, detail } => write!(f, "trapped: {trap}: {detail}"),
            Failure::Plugin(message) => write!(f, "reported an error: {message}"),
            Failure::Contract(message) => write!(f, "broke the contract: {message}"),
            Failure::Instantiate(message) => write!(f, "could not be instantiated: {message}"),
            Failure::GaveUp { calls, time, last } => write!(
                f,
                "was given up on for the rest of the run: {calls} failed calls took \
                 {:.1} s, past its failure budget (the last {last})",
                time.as_secs_f64()
            ),
        }
    }
}
