//! Condition "verification status": the customer's verification passed, failed, or
//! never happened (`unverified`). Several statuses may be named; any of them matches.
//! BILLmanager's "verification failed" group — everyone who has not passed — is
//! `["failed", "unverified"]`.

use cohort_plugin_sdk::config::{self, Problems};
use cohort_plugin_sdk::{
    ConfigError, Customer, Fields, Plugin, PluginInfo, Timestamp, Verdict, VerificationStatus,
    export_plugin,
};
use serde::Deserialize;

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
enum Status {
    Passed,
    Failed,
    Unverified,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    statuses: Vec<Status>,
}

struct VerificationStatusIs {
    passed: bool,
    failed: bool,
    unverified: bool,
}

impl Plugin for VerificationStatusIs {
    fn describe() -> PluginInfo {
        PluginInfo {
            id: "verification-status".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description:
                "The customer's verification status is one of: passed, failed, unverified.".into(),
            config_schema: r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "properties": {
    "statuses": {
      "type": "array",
      "items": { "enum": ["passed", "failed", "unverified"] },
      "minItems": 1
    }
  },
  "required": ["statuses"],
  "additionalProperties": false
}"#
            .into(),
            reads: Fields::VERIFICATION_STATUS,
            capabilities: Vec::new(),
        }
    }

    fn prepare(json: &str) -> Result<Self, Vec<ConfigError>> {
        let cfg: Config = config::parse(json)?;
        let mut problems = Problems::new();
        if cfg.statuses.is_empty() {
            problems.push("/statuses", "name at least one status");
        }
        let has = |s| cfg.statuses.contains(&s);
        problems.finish(VerificationStatusIs {
            passed: has(Status::Passed),
            failed: has(Status::Failed),
            unverified: has(Status::Unverified),
        })
    }

    // Inlined into the scan's loop: `explain` calls it too, which would otherwise
    // make it a call per customer, and a call costs more than this condition.
    #[inline(always)]
    fn evaluate(&self, _as_of: Timestamp, customer: Customer<'_>) -> Verdict {
        Verdict::from_bool(match customer.verification_status() {
            VerificationStatus::Passed => self.passed,
            VerificationStatus::Failed => self.failed,
            VerificationStatus::Unverified => self.unverified,
        })
    }

    const TIMELESS: bool = true;

    fn explain(&self, as_of: Timestamp, customer: Customer<'_>) -> String {
        let status = match customer.verification_status() {
            VerificationStatus::Passed => "passed",
            VerificationStatus::Failed => "failed",
            VerificationStatus::Unverified => "unverified",
        };
        let wanted: Vec<&str> = [
            (self.passed, "`passed`"),
            (self.failed, "`failed`"),
            (self.unverified, "`unverified`"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect();
        let is = if self.evaluate(as_of, customer) == Verdict::Match {
            "is"
        } else {
            "is not"
        };
        format!(
            "verification status `{status}` {is} one of {}",
            wanted.join(", ")
        )
    }
}

export_plugin!(VerificationStatusIs);
