//! Condition "registered": the customer registered with the platform before a time,
//! after a time, or within the last N days of the evaluation time; what is given must
//! all hold. A customer whose platform did not say when it registered does not match.

use cohort_plugin_sdk::config::{self, Problems};
use cohort_plugin_sdk::time::{self, DAY};
use cohort_plugin_sdk::{
    ConfigError, Customer, FOREVER, Fields, Plugin, PluginInfo, Timestamp, Verdict, export_plugin,
};
use serde::Deserialize;

/// The longest look back, in days (ten years).
const MAX_DAYS: u32 = 3650;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    before: Option<String>,
    after: Option<String>,
    within_days: Option<u32>,
}

struct Registered {
    before: Option<Timestamp>,
    after: Option<Timestamp>,
    within: Option<Timestamp>,
}

impl Registered {
    fn holds(&self, at: Timestamp, as_of: Timestamp) -> bool {
        self.before.is_none_or(|b| at < b)
            && self.after.is_none_or(|a| at > a)
            && self.within.is_none_or(|w| at <= as_of && at > as_of - w)
    }
}

const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "properties": {
    "before": {
      "description": "registered before this date (2026-01-31) or RFC 3339 time",
      "type": "string"
    },
    "after": {
      "description": "registered after this date (2026-01-31) or RFC 3339 time",
      "type": "string"
    },
    "within_days": {
      "description": "registered within this many days before the evaluation time",
      "type": "integer", "minimum": 1, "maximum": 3650
    }
  },
  "minProperties": 1,
  "additionalProperties": false
}"#;

impl Plugin for Registered {
    fn describe() -> PluginInfo {
        PluginInfo {
            id: "registered".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description:
                "The customer registered before or after a time, or within the last N days.".into(),
            config_schema: SCHEMA.into(),
            reads: Fields::REGISTERED,
            capabilities: Vec::new(),
        }
    }

    fn prepare(json: &str) -> Result<Self, Vec<ConfigError>> {
        let cfg: Config = config::parse(json)?;
        let mut problems = Problems::new();
        let mut at = |field: &str, text: &Option<String>| {
            text.as_deref().and_then(|t| match time::parse(t.trim()) {
                Ok(t) => Some(t),
                Err(e) => {
                    problems.push(format!("/{field}"), e);
                    None
                }
            })
        };
        let before = at("before", &cfg.before);
        let after = at("after", &cfg.after);
        if let (Some(b), Some(a)) = (before, after)
            && a >= b
        {
            problems.push("/after", "is not before `before`: no customer could match");
        }
        if let Some(days) = cfg.within_days
            && (days == 0 || days > MAX_DAYS)
        {
            problems.push(
                "/within_days",
                format!("`{days}` is not between 1 and {MAX_DAYS}"),
            );
        }
        if cfg.before.is_none() && cfg.after.is_none() && cfg.within_days.is_none() {
            problems.push("", "give `before`, `after` or `within_days`");
        }
        problems.finish(Registered {
            before,
            after,
            within: cfg.within_days.map(|d| i64::from(d) * DAY),
        })
    }

    fn evaluate(&self, as_of: Timestamp, customer: Customer<'_>) -> Verdict {
        Verdict::from_bool(
            customer
                .registered()
                .is_some_and(|at| self.holds(at, as_of)),
        )
    }

    /// Before and after compare fixed times; only "within the last N days" moves
    /// with the as-of time: a customer in the window holds until it falls out, one
    /// registered after the as-of time until that time comes.
    fn valid_until(&self, as_of: Timestamp, customer: Customer<'_>) -> Timestamp {
        match (self.within, customer.registered()) {
            (Some(_), Some(at)) if at > as_of => at,
            (Some(w), Some(at)) if at > as_of - w => at.saturating_add(w),
            _ => FOREVER,
        }
    }

    fn explain(&self, as_of: Timestamp, customer: Customer<'_>) -> String {
        let Some(at) = customer.registered() else {
            return "the platform did not say when the customer registered".into();
        };
        let mut parts = Vec::new();
        let word = |holds: bool| if holds { "" } else { "not " };
        if let Some(b) = self.before {
            parts.push(format!("{}before {}", word(at < b), time::shown(b)));
        }
        if let Some(a) = self.after {
            parts.push(format!("{}after {}", word(at > a), time::shown(a)));
        }
        if let Some(w) = self.within {
            let inside = at <= as_of && at > as_of - w;
            parts.push(format!(
                "{}within the {} days before {}",
                word(inside),
                w / DAY,
                time::shown(as_of)
            ));
        }
        format!("registered {}: {}", time::shown(at), parts.join(", "))
    }
}

export_plugin!(Registered);
