//! The guest side of Cohort's plugin contract (`cohort:plugin@0.2.0`, see `wit/`).
//!
//! A condition plugin is a type that implements [`Plugin`]; [`export_plugin!`] turns it
//! into the component exports the host calls. The generated bindings stay inside this
//! crate so that a plugin author never writes against them directly, and a new contract
//! version can change them without breaking plugins that only use this API.
//!
//! ```ignore
//! use cohort_plugin_sdk::*;
//!
//! struct Vip { tag: Symbol }
//!
//! impl Plugin for Vip {
//!     fn describe() -> PluginInfo { /* id, version, schema, reads: Fields::TAGS */ }
//!     fn prepare(config: &str) -> Result<Self, Vec<ConfigError>> {
//!         Ok(Vip { tag: intern("vip") })
//!     }
//!     fn evaluate(&self, _as_of: Timestamp, c: Customer<'_>) -> Verdict {
//!         Verdict::from_bool(c.tags().contains(&self.tag))
//!     }
//! }
//! export_plugin!(Vip);
//! ```

pub mod config;
pub mod country;
pub mod sets;

#[doc(hidden)]
#[allow(unsafe_code, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit/0.2.0",
        world: "plugin",
        pub_export_macro: true,
        export_macro_name: "__export_world",
        default_bindings_module: "cohort_plugin_sdk::bindings",
    });
}

use bindings::cohort::plugin::types::Undecided;
use bindings::exports::cohort::plugin::condition;

pub use bindings::cohort::plugin::types::{
    Capability, ConfigError, Fields, IpAddress, Pair, Payer, PayerKind, PluginInfo, Subscription,
    SubscriptionStatus, Symbol, Timestamp, Verdicts, VerificationStatus,
};
pub use customer::{Customer, Customers, Ragged};

mod customer;

/// The symbol of `text`. Call it in [`Plugin::prepare`], not per customer.
pub fn intern(text: &str) -> Symbol {
    bindings::cohort::plugin::host::intern(text)
}

/// The string behind `symbol`, or `None` for a number the host never handed out.
///
/// Crossing the boundary costs a string copy: cache what you derive per symbol.
pub fn symbol_text(symbol: Symbol) -> Option<String> {
    bindings::cohort::plugin::host::symbol_text(symbol)
}

/// The answer for one customer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Match,
    NoMatch,
    /// No decision: the host leaves the customer's membership as it is and records
    /// the message. Never a "no".
    Error(String),
}

impl Verdict {
    pub fn from_bool(matched: bool) -> Self {
        if matched {
            Verdict::Match
        } else {
            Verdict::NoMatch
        }
    }
}

impl ConfigError {
    /// A problem at `path`, a JSON Pointer such as `/countries/2`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// One condition type.
pub trait Plugin: Sized + 'static {
    /// The self-description: id, version, configuration schema, fields read,
    /// capabilities asked for.
    fn describe() -> PluginInfo;

    /// Check a configuration and compile it. Report every problem, each with the
    /// JSON Pointer of its field; [`config::parse`] does this for serde types.
    fn prepare(config: &str) -> Result<Self, Vec<ConfigError>>;

    /// The verdict for one customer as of `as_of` (seconds since the Unix epoch).
    /// Must depend only on its arguments: the same customer and time always give the
    /// same verdict. Only the fields named in `describe().reads` are filled.
    fn evaluate(&self, as_of: Timestamp, customer: Customer<'_>) -> Verdict;

    /// The verdicts for a batch. Override it to fail a whole batch at once (a data
    /// file that cannot be read) or to share work between customers.
    fn evaluate_batch(
        &self,
        as_of: Timestamp,
        customers: &Customers,
    ) -> Result<Vec<Verdict>, String> {
        Ok(Customer::all(customers)
            .map(|c| self.evaluate(as_of, c))
            .collect())
    }
}

/// The exported resource wrapping a prepared plugin.
#[doc(hidden)]
pub struct Prepared<P>(P);

impl<P: Plugin> condition::GuestEvaluator for Prepared<P> {
    fn evaluate(
        &self,
        as_of: Timestamp,
        batch: bindings::cohort::plugin::types::Customers,
    ) -> Result<Verdicts, String> {
        let verdicts = self.0.evaluate_batch(as_of, &Customers::from(batch))?;
        let mut out = Verdicts {
            matches: Vec::with_capacity(verdicts.len()),
            undecided: Vec::new(),
        };
        for (index, verdict) in verdicts.into_iter().enumerate() {
            out.matches.push(u8::from(verdict == Verdict::Match));
            if let Verdict::Error(message) = verdict {
                out.undecided.push(Undecided {
                    index: u32::try_from(index).unwrap_or(u32::MAX),
                    message,
                });
            }
        }
        Ok(out)
    }
}

#[doc(hidden)]
pub fn __prepare<P: Plugin>(config: &str) -> Result<condition::Evaluator, Vec<ConfigError>> {
    P::prepare(config).map(|p| condition::Evaluator::new(Prepared(p)))
}

/// Export a [`Plugin`] implementation as the component's `condition` interface.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        #[allow(unsafe_code)]
        mod __cohort_plugin_export {
            use super::*;

            struct Export;

            impl $crate::bindings::exports::cohort::plugin::condition::Guest for Export {
                type Evaluator = $crate::Prepared<$plugin>;

                fn describe() -> $crate::PluginInfo {
                    <$plugin as $crate::Plugin>::describe()
                }

                fn prepare(
                    config: ::std::string::String,
                ) -> ::std::result::Result<
                    $crate::bindings::exports::cohort::plugin::condition::Evaluator,
                    ::std::vec::Vec<$crate::ConfigError>,
                > {
                    $crate::__prepare::<$plugin>(&config)
                }
            }

            $crate::bindings::__export_world!(Export with_types_in $crate::bindings);
        }
    };
}
