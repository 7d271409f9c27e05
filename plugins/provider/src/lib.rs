//! Condition "client provider": the provider (the platform's billing entity or brand)
//! the customer belongs to is one of the configured ids. Ids are compared exactly.

use cohort_plugin_sdk::config::{self, Problems};
use cohort_plugin_sdk::sets::SymbolSet;
use cohort_plugin_sdk::{
    ConfigError, Customer, Fields, Plugin, PluginInfo, Timestamp, Verdict, export_plugin,
};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    providers: Vec<String>,
}

struct Provider {
    providers: SymbolSet,
}

impl Plugin for Provider {
    fn describe() -> PluginInfo {
        PluginInfo {
            id: "provider".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "The customer's provider is one of a set.".into(),
            config_schema: r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "properties": {
    "providers": {
      "description": "provider ids, exactly as the platform sends them",
      "type": "array", "items": { "type": "string", "minLength": 1 }, "minItems": 1
    }
  },
  "required": ["providers"],
  "additionalProperties": false
}"#
            .into(),
            reads: Fields::PROVIDER,
            capabilities: Vec::new(),
        }
    }

    fn prepare(json: &str) -> Result<Self, Vec<ConfigError>> {
        let cfg: Config = config::parse(json)?;
        let mut problems = Problems::new();
        problems.names("/providers", &cfg.providers);
        problems.finish(Provider {
            providers: SymbolSet::new(cfg.providers.iter().map(String::as_str)),
        })
    }

    // Inlined into the scan's loop: `explain` calls it too, which would otherwise
    // make it a call per customer, and a call costs more than this condition.
    #[inline(always)]
    fn evaluate(&self, _as_of: Timestamp, customer: Customer<'_>) -> Verdict {
        Verdict::from_bool(
            customer
                .provider()
                .is_some_and(|p| self.providers.contains(p)),
        )
    }

    const TIMELESS: bool = true;

    fn explain(&self, as_of: Timestamp, customer: Customer<'_>) -> String {
        let holds = self.evaluate(as_of, customer) == Verdict::Match;
        cohort_plugin_sdk::one_of(
            "provider",
            customer.provider(),
            holds,
            &self.providers.names(),
        )
    }
}

export_plugin!(Provider);
