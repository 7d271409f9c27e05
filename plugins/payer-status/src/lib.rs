//! Condition "payer status": the customer has a payer of one of the configured kinds
//! (legal entity, individual, sole proprietor). Only active payers count unless
//! `include_inactive` is set.

use cohort_plugin_sdk::config::{self, Problems};
use cohort_plugin_sdk::{
    ConfigError, Customer, Fields, PayerKind, Plugin, PluginInfo, Timestamp, Verdict, export_plugin,
};
use serde::Deserialize;

/// Spelled in kebab-case as every enumerated value is; snake_case is read as an alias.
#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
enum Kind {
    #[serde(alias = "legal_entity")]
    LegalEntity,
    Individual,
    #[serde(alias = "sole_proprietor")]
    SoleProprietor,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    kinds: Vec<Kind>,
    #[serde(default)]
    include_inactive: bool,
}

struct PayerStatus {
    kinds: Vec<Kind>,
    include_inactive: bool,
}

impl Plugin for PayerStatus {
    fn describe() -> PluginInfo {
        PluginInfo {
            id: "payer-status".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "The customer has a payer of one of the given kinds; active payers only unless include_inactive.".into(),
            config_schema: r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "properties": {
    "kinds": {
      "type": "array",
      "items": { "enum": ["legal-entity", "individual", "sole-proprietor", "legal_entity", "sole_proprietor"] },
      "minItems": 1
    },
    "include_inactive": {
      "description": "count inactive payers too",
      "type": "boolean", "default": false
    }
  },
  "required": ["kinds"],
  "additionalProperties": false
}"#
            .into(),
            reads: Fields::PAYERS,
            capabilities: Vec::new(),
        }
    }

    fn prepare(json: &str) -> Result<Self, Vec<ConfigError>> {
        let cfg: Config = config::parse(json)?;
        let mut problems = Problems::new();
        if cfg.kinds.is_empty() {
            problems.push("/kinds", "name at least one payer kind");
        }
        problems.finish(PayerStatus {
            kinds: cfg.kinds,
            include_inactive: cfg.include_inactive,
        })
    }

    // Inlined into the scan's loop: `explain` calls it too, which would otherwise
    // make it a call per customer, and a call costs more than this condition.
    #[inline(always)]
    fn evaluate(&self, _as_of: Timestamp, customer: Customer<'_>) -> Verdict {
        Verdict::from_bool(customer.payers().iter().any(|p| {
            let kind = match p.kind {
                PayerKind::LegalEntity => Kind::LegalEntity,
                PayerKind::Individual => Kind::Individual,
                PayerKind::SoleProprietor => Kind::SoleProprietor,
            };
            (p.active || self.include_inactive) && self.kinds.contains(&kind)
        }))
    }

    const TIMELESS: bool = true;

    fn explain(&self, as_of: Timestamp, customer: Customer<'_>) -> String {
        let facts = cohort_plugin_sdk::facts(customer, &Fields::PAYERS);
        let wanted: Vec<&str> = self
            .kinds
            .iter()
            .map(|k| match k {
                Kind::LegalEntity => "`legal-entity`",
                Kind::Individual => "`individual`",
                Kind::SoleProprietor => "`sole-proprietor`",
            })
            .collect();
        let which = if self.include_inactive {
            "a payer"
        } else {
            "an active payer"
        };
        let some = if self.evaluate(as_of, customer) == Verdict::Match {
            "one"
        } else {
            "none"
        };
        format!("{facts}: {some} is {which} of kind {}", wanted.join(", "))
    }
}

export_plugin!(PayerStatus);
