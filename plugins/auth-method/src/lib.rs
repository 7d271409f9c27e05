//! Condition "authorization method": the customer can sign in with one of the
//! configured methods (`login-password`, `phone`, `google`, `facebook`, or any other
//! name the platform uses). Names are compared without regard to case.

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

struct AuthMethod {
    methods: CaselessSet,
}

impl Plugin for AuthMethod {
    fn describe() -> PluginInfo {
        PluginInfo {
            id: "auth-method".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "The customer can sign in with one of a set of authorization methods."
                .into(),
            config_schema: r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "properties": {
    "methods": {
      "description": "method names, any case: login-password, phone, google, facebook, ...",
      "type": "array", "items": { "type": "string", "minLength": 1 }, "minItems": 1
    }
  },
  "required": ["methods"],
  "additionalProperties": false
}"#
            .into(),
            reads: Fields::AUTH_METHODS,
            capabilities: Vec::new(),
        }
    }

    fn prepare(json: &str) -> Result<Self, Vec<ConfigError>> {
        let cfg: Config = config::parse(json)?;
        let mut problems = Problems::new();
        problems.names("/methods", &cfg.methods);
        problems.finish(AuthMethod {
            methods: CaselessSet::new(cfg.methods.iter().map(String::as_str)),
        })
    }

    fn evaluate(&self, _as_of: Timestamp, customer: Customer<'_>) -> Verdict {
        Verdict::from_bool(self.methods.any(customer.auth_methods()))
    }

    const TIMELESS: bool = true;

    fn explain(&self, _as_of: Timestamp, customer: Customer<'_>) -> String {
        cohort_plugin_sdk::any_of(
            "sign-in methods",
            customer.auth_methods(),
            |m| self.methods.contains(m),
            &self.methods.names(),
        )
    }
}

export_plugin!(AuthMethod);
