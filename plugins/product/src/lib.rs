//! Condition "product ownership": the customer has a subscription to any of the
//! configured products.
//!
//! - by default the subscription must be active at the evaluation time: status
//!   `active`, started, and not yet ended;
//! - with `within_days: N` it must have been running at some moment of the N days up to
//!   the evaluation time, whatever its status now (a grace period after cancellation);
//!   a subscription that is still `pending` never counts;
//! - with `status: "any"` any subscription to the product counts, whatever its status
//!   and dates.

use cohort_plugin_sdk::config::{self, Problems};
use cohort_plugin_sdk::sets::SymbolSet;
use cohort_plugin_sdk::{
    ConfigError, Customer, FOREVER, Fields, Plugin, PluginInfo, Subscription, SubscriptionStatus,
    Timestamp, Verdict, export_plugin, shown_time, symbol_text,
};
use serde::Deserialize;

const DAY: i64 = 86_400;
/// Ten years: beyond that "within" means "ever", which is `status: any`.
const MAX_DAYS: u32 = 3650;

#[derive(Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
enum StatusFilter {
    #[default]
    Active,
    Any,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    products: Vec<String>,
    #[serde(default)]
    status: StatusFilter,
    within_days: Option<u32>,
}

enum Rule {
    ActiveNow,
    RunningWithin(i64),
    Any,
}

struct Product {
    products: SymbolSet,
    rule: Rule,
}

impl Product {
    /// Inlined into the scan's loop: `explain` calls it too, which would otherwise
    /// make it a call per subscription.
    #[inline(always)]
    fn counts(&self, s: &Subscription, as_of: Timestamp) -> bool {
        if !self.products.contains(s.product) {
            return false;
        }
        let ends_after = |t: Timestamp| s.end.is_none_or(|end| end > t);
        match self.rule {
            Rule::Any => true,
            Rule::ActiveNow => {
                s.status == SubscriptionStatus::Active && s.start <= as_of && ends_after(as_of)
            }
            Rule::RunningWithin(seconds) => {
                s.status != SubscriptionStatus::Pending
                    && s.start <= as_of
                    && ends_after(as_of.saturating_sub(seconds))
            }
        }
    }
}

impl Plugin for Product {
    fn describe() -> PluginInfo {
        PluginInfo {
            id: "product".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "The customer has a subscription to one of a set of products, active at the evaluation time (or within N days, or in any status).".into(),
            config_schema: r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "properties": {
    "products": {
      "description": "product ids, exactly as the platform sends them",
      "type": "array", "items": { "type": "string", "minLength": 1 }, "minItems": 1
    },
    "status": {
      "description": "active: active at the evaluation time; any: whatever the status and dates",
      "enum": ["active", "any"], "default": "active"
    },
    "within_days": {
      "description": "running at some moment of the last N days, whatever the status now",
      "type": "integer", "minimum": 1, "maximum": 3650
    }
  },
  "required": ["products"],
  "additionalProperties": false
}"#
            .into(),
            reads: Fields::SUBSCRIPTIONS,
            capabilities: Vec::new(),
        }
    }

    fn prepare(json: &str) -> Result<Self, Vec<ConfigError>> {
        let cfg: Config = config::parse(json)?;
        let mut problems = Problems::new();
        problems.names("/products", &cfg.products);
        let rule = match (cfg.status, cfg.within_days) {
            (StatusFilter::Any, Some(_)) => {
                problems.push("/within_days", "cannot be combined with status `any`");
                Rule::Any
            }
            (StatusFilter::Any, None) => Rule::Any,
            (StatusFilter::Active, None) => Rule::ActiveNow,
            (StatusFilter::Active, Some(days)) => {
                if days == 0 || days > MAX_DAYS {
                    problems.push(
                        "/within_days",
                        format!("`{days}` is not between 1 and {MAX_DAYS}"),
                    );
                }
                Rule::RunningWithin(i64::from(days) * DAY)
            }
        };
        problems.finish(Product {
            products: SymbolSet::new(cfg.products.iter().map(String::as_str)),
            rule,
        })
    }

    fn evaluate(&self, as_of: Timestamp, customer: Customer<'_>) -> Verdict {
        Verdict::from_bool(
            customer
                .subscriptions()
                .iter()
                .any(|s| self.counts(s, as_of)),
        )
    }

    /// The verdict turns only when a subscription to one of the products starts or
    /// stops counting: the earliest such time after `as_of`.
    fn valid_until(&self, as_of: Timestamp, customer: Customer<'_>) -> Timestamp {
        let mut until = FOREVER;
        for s in customer.subscriptions() {
            if !self.products.contains(s.product) {
                continue;
            }
            let turns: [Option<Timestamp>; 2] = match self.rule {
                Rule::Any => [None, None],
                Rule::ActiveNow if s.status != SubscriptionStatus::Active => [None, None],
                Rule::ActiveNow => [Some(s.start), s.end],
                Rule::RunningWithin(_) if s.status == SubscriptionStatus::Pending => [None, None],
                Rule::RunningWithin(seconds) => {
                    [Some(s.start), s.end.map(|e| e.saturating_add(seconds))]
                }
            };
            for t in turns.into_iter().flatten().filter(|&t| t > as_of) {
                until = until.min(t);
            }
        }
        until
    }

    fn explain(&self, as_of: Timestamp, customer: Customer<'_>) -> String {
        let mut parts = Vec::new();
        for s in customer.subscriptions() {
            if !self.products.contains(s.product) {
                continue;
            }
            let name = match symbol_text(s.product) {
                Some(t) => format!("`{t}`"),
                None => format!("product {}", s.product),
            };
            let status = match s.status {
                SubscriptionStatus::Active => "active",
                SubscriptionStatus::Suspended => "suspended",
                SubscriptionStatus::Cancelled => "cancelled",
                SubscriptionStatus::Pending => "pending",
            };
            let (start, end) = (shown_time(s.start), s.end.map(shown_time));
            parts.push(match self.rule {
                Rule::Any => format!("{name} is {status}, and any status counts"),
                _ if s.start > as_of => format!("{name} starts {start}, after the as-of time"),
                Rule::ActiveNow if s.status != SubscriptionStatus::Active => {
                    format!("{name} is {status}, not active")
                }
                Rule::RunningWithin(_) if s.status == SubscriptionStatus::Pending => {
                    format!("{name} is pending")
                }
                _ if self.counts(s, as_of) => match end {
                    Some(end) if s.end.is_some_and(|e| e <= as_of) => {
                        format!("{name} ended {end}, within the days the rule looks back")
                    }
                    Some(end) => format!("{name} is {status} from {start} to {end}"),
                    None => format!("{name} is {status} from {start}"),
                },
                Rule::RunningWithin(_) => format!(
                    "{name} ended {}, before the days the rule looks back",
                    end.unwrap_or_default()
                ),
                Rule::ActiveNow => format!(
                    "{name} ended {}, before the as-of time",
                    end.unwrap_or_default()
                ),
            });
        }
        if parts.is_empty() {
            return format!("no subscription to {}", self.products.names());
        }
        parts.join("; ")
    }
}

export_plugin!(Product);
