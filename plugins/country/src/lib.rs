//! Condition "client country": the country the customer chose on the sign-up form is
//! one of the configured ISO 3166-1 alpha-2 codes (any case). A customer without a
//! declared country does not match.

use cohort_plugin_sdk::config::{self, Problems};
use cohort_plugin_sdk::{
    Customer, Fields, Plugin, PluginInfo, Symbol, Timestamp, Verdict, country, export_plugin,
    intern, one_of, symbol_text,
};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    countries: Vec<String>,
}

struct Country {
    /// Sorted; a rule names a handful of countries, so a binary search over a few
    /// cache lines beats hashing.
    countries: Vec<Symbol>,
}

const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "properties": {
    "countries": {
      "description": "ISO 3166-1 alpha-2 codes, any case",
      "type": "array",
      "items": { "type": "string", "pattern": "^[A-Za-z]{2}$" },
      "minItems": 1
    }
  },
  "required": ["countries"],
  "additionalProperties": false
}"#;

impl Country {
    /// Whether the customer's country is one of the set. Inlined into `evaluate`, the
    /// scan's loop: called from `explain` too, it would otherwise be a call per
    /// customer, and a call costs a plugin more than the search.
    #[inline(always)]
    fn holds(&self, customer: Customer<'_>) -> bool {
        customer
            .country()
            .is_some_and(|c| self.countries.binary_search(&c).is_ok())
    }
}

impl Plugin for Country {
    fn describe() -> PluginInfo {
        PluginInfo {
            id: "country".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "The country the customer declared at sign-up is one of a set.".into(),
            config_schema: SCHEMA.into(),
            reads: Fields::COUNTRY,
            capabilities: Vec::new(),
        }
    }

    fn prepare(json: &str) -> Result<Self, Vec<cohort_plugin_sdk::ConfigError>> {
        let cfg: Config = config::parse(json)?;
        let mut problems = Problems::new();
        let mut countries: Vec<Symbol> =
            country::codes(&mut problems, "/countries", &cfg.countries)
                .iter()
                .map(|code| intern(code))
                .collect();
        countries.sort_unstable();
        problems.finish(Country { countries })
    }

    fn evaluate(&self, _as_of: Timestamp, customer: Customer<'_>) -> Verdict {
        Verdict::from_bool(self.holds(customer))
    }

    const TIMELESS: bool = true;

    fn explain(&self, _as_of: Timestamp, customer: Customer<'_>) -> String {
        let mut set: Vec<String> = self
            .countries
            .iter()
            .filter_map(|&c| symbol_text(c).map(|t| format!("`{t}`")))
            .collect();
        set.sort_unstable();
        one_of(
            "country",
            customer.country(),
            self.holds(customer),
            &set.join(", "),
        )
    }
}

export_plugin!(Country);
