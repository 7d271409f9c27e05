//! Condition "tagged": the customer carries one of the configured tags.
//!
//! Start here: rename the crate and the id, say which customer facts you read, parse
//! and check your configuration in `prepare`, decide in `evaluate`.

use cohort_plugin_sdk::config::{self, Problems};
use cohort_plugin_sdk::sets::CaselessSet;
use cohort_plugin_sdk::{
    ConfigError, Customer, Fields, Plugin, PluginInfo, Timestamp, Verdict, any_of,
    export_plugin,
};
use serde::Deserialize;

/// The configuration an operator writes, as JSON. Unknown keys are refused, so a typo
/// is reported instead of silently ignored.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    tags: Vec<String>,
}

/// A prepared configuration: built once per rule, used for every customer.
struct Tagged {
    tags: CaselessSet,
}

impl Plugin for Tagged {
    fn describe() -> PluginInfo {
        PluginInfo {
            // Lower-case letters, digits and `-`; unique among the plugins a host loads.
            id: "tagged".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "The customer carries one of a set of tags.".into(),
            config_schema: r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "properties": {
    "tags": { "type": "array", "items": { "type": "string", "minLength": 1 }, "minItems": 1 }
  },
  "required": ["tags"],
  "additionalProperties": false
}"#
            .into(),
            // Only these facts are sent to the plugin; everything else reads as empty.
            reads: Fields::TAGS,
            // Nothing beyond computation. `Capability::DataDir` would ask for a
            // read-only data directory, seen as /data.
            capabilities: Vec::new(),
        }
    }

    fn prepare(json: &str) -> Result<Self, Vec<ConfigError>> {
        let cfg: Config = config::parse(json)?;
        let mut problems = Problems::new();
        problems.names("/tags", &cfg.tags);
        problems.finish(Tagged {
            tags: CaselessSet::new(cfg.tags.iter().map(String::as_str)),
        })
    }

    fn evaluate(&self, _as_of: Timestamp, customer: Customer<'_>) -> Verdict {
        Verdict::from_bool(self.tags.any(customer.tags()))
    }

    /// Tags do not change with the time: the verdict holds until the customer's facts
    /// do. (Left `false`, every rescan would ask again.)
    const TIMELESS: bool = true;

    /// What an operator reads beside the verdict in `cohort explain`.
    fn explain(&self, _as_of: Timestamp, customer: Customer<'_>) -> String {
        any_of(
            "tags",
            customer.tags(),
            |t| self.tags.contains(t),
            &self.tags.names(),
        )
    }
}

export_plugin!(Tagged);
