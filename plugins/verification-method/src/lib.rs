//! Condition "verification method": the customer was verified by one of the configured
//! methods (`email`, `phone`, `manual`, `payment-method`, or any other name the platform
//! uses; any case). A customer verified several ways matches each of them.

use cohort_plugin_sdk::config::{self, Problems};
use cohort_plugin_sdk::sets::CaselessSet;
use cohort_plugin_sdk::{
    ConfigError, Customer, Fields, Plugin, PluginInfo, Timestamp, Verdict, export_plugin,
};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    methods: Vec<String>,
}

struct VerificationMethod {
    methods: CaselessSet,
}

impl Plugin for VerificationMethod {
    fn describe() -> PluginInfo {
        PluginInfo {
            id: "verification-method".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "The customer was verified by one of a set of methods.".into(),
            config_schema: r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "properties": {
    "methods": {
      "description": "method names, any case: email, phone, manual, payment-method, ...",
      "type": "array", "items": { "type": "string", "minLength": 1 }, "minItems": 1
    }
  },
  "required": ["methods"],
  "additionalProperties": false
}"#
            .into(),
            reads: Fields::VERIFICATION_METHODS,
            capabilities: Vec::new(),
        }
    }

    fn prepare(json: &str) -> Result<Self, Vec<ConfigError>> {
        let cfg: Config = config::parse(json)?;
        let mut problems = Problems::new();
        problems.names("/methods", &cfg.methods);
        problems.finish(VerificationMethod {
            methods: CaselessSet::new(cfg.methods.iter().map(String::as_str)),
        })
    }

    fn evaluate(&self, _as_of: Timestamp, customer: Customer<'_>) -> Verdict {
        Verdict::from_bool(self.methods.any(customer.verification_methods()))
    }

    const TIMELESS: bool = true;

    fn explain(&self, _as_of: Timestamp, customer: Customer<'_>) -> String {
        cohort_plugin_sdk::any_of(
            "verification methods",
            customer.verification_methods(),
            |m| self.methods.contains(m),
            &self.methods.names(),
        )
    }
}

export_plugin!(VerificationMethod);
