//! Groups, their auto-assign settings and rules, as an operator writes them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A customer group: a name, the platform's attributes for it, and how customers get
/// into it automatically.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Group {
    /// Stable identifier: lower-case letters, digits and `-`.
    #[cfg_attr(feature = "openapi", schema(pattern = "^[a-z0-9][a-z0-9-]{0,63}$"))]
    pub id: String,
    #[cfg_attr(feature = "openapi", schema(min_length = 1))]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// The platform's benefits and permissions for members (discount id, currency
    /// rate, may suspend services, ...). Cohort stores them and does not interpret them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
    /// Membership in at most one group of the set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclusive: Option<ExclusiveSet>,
    #[serde(default)]
    pub auto: AutoAssign,
    #[serde(default)]
    pub rule: Rule,
}

/// A set of groups of which a customer belongs to at most one (a "single customer
/// group"); when several would take the customer, the lowest `priority` wins.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExclusiveSet {
    pub set: String,
    pub priority: u32,
}

#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Mode {
    /// The rule never runs; memberships are left alone.
    #[default]
    Disabled,
    /// Matching customers are added; the rule removes nobody.
    AddOnly,
    /// Matching customers are added and non-matching members removed.
    FullSync,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AutoAssign {
    #[serde(default)]
    pub mode: Mode,
    /// In full-sync, members added by hand (or by import) are never removed by the rule.
    #[serde(default)]
    pub keep_manual: bool,
    #[serde(default)]
    pub triggers: Triggers,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Triggers {
    /// A newly registered customer is checked against the group at once.
    #[serde(default)]
    pub on_registration: bool,
    /// Every customer is checked on this schedule (the overnight scan).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Schedule>,
    /// An operator may start a run (or a dry run) by hand.
    #[serde(default = "yes")]
    pub manual: bool,
}

impl Default for Triggers {
    fn default() -> Self {
        Triggers {
            on_registration: false,
            schedule: None,
            manual: true,
        }
    }
}

fn yes() -> bool {
    true
}

/// When a periodic run is due: a cron expression with seconds
/// (`sec min hour day-of-month month day-of-week`), read in a time zone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Schedule {
    pub cron: String,
    /// An IANA time zone name such as `Europe/Berlin`.
    #[serde(default = "utc")]
    pub time_zone: String,
}

fn utc() -> String {
    "UTC".into()
}

/// Clauses joined by AND; each clause is conditions joined by OR.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Rule {
    #[serde(default)]
    pub all: Vec<Clause>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Clause {
    pub any: Vec<Condition>,
}

/// One condition: a plugin, the versions of it that may run it, its configuration, and
/// whether the rule wants the opposite ("is not").
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Condition {
    #[cfg_attr(feature = "openapi", schema(pattern = "^[a-z0-9][a-z0-9-]{0,63}$"))]
    pub plugin: String,
    /// A version requirement such as `^0.1` or `*`.
    #[serde(default = "any_version")]
    pub version: String,
    #[serde(default = "empty_object")]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub config: serde_json::Value,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub negate: bool,
}

fn any_version() -> String {
    "*".into()
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(serde_json::Map::new())
}

/// A group that cannot be saved as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("group `{group}`: {field}: {problem}")]
pub struct InvalidGroup {
    pub group: String,
    /// The offending field, e.g. `rule.all[1].any[0].plugin`.
    pub field: String,
    pub problem: String,
}

/// Lower-case letters, digits and `-`, not starting with `-`: ids of groups and plugins.
pub fn is_slug(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && !s.starts_with('-')
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

impl Group {
    /// Structural checks that need no plugin: ids, names, the rule's shape. Whether
    /// each condition's plugin exists and accepts its configuration is checked by
    /// whoever can run plugins.
    pub fn check(&self) -> Result<(), InvalidGroup> {
        let invalid = |field: &str, problem: String| InvalidGroup {
            group: self.id.clone(),
            field: field.to_string(),
            problem,
        };
        if !is_slug(&self.id) {
            return Err(invalid(
                "id",
                format!(
                    "`{}` must be 1-64 lower-case letters, digits and `-`, not starting with `-`",
                    self.id
                ),
            ));
        }
        if self.name.trim().is_empty() {
            return Err(invalid("name", "must not be blank".into()));
        }
        if let Some(set) = &self.exclusive
            && set.set.trim().is_empty()
        {
            return Err(invalid("exclusive.set", "must not be blank".into()));
        }
        if self.auto.mode != Mode::Disabled && self.rule.all.is_empty() {
            return Err(invalid(
                "rule.all",
                "an auto-assigned group needs at least one clause".into(),
            ));
        }
        for (i, clause) in self.rule.all.iter().enumerate() {
            if clause.any.is_empty() {
                return Err(invalid(
                    &format!("rule.all[{i}].any"),
                    "a clause needs at least one condition".into(),
                ));
            }
            for (j, condition) in clause.any.iter().enumerate() {
                if !is_slug(&condition.plugin) {
                    return Err(invalid(
                        &format!("rule.all[{i}].any[{j}].plugin"),
                        format!("`{}` is not a plugin id", condition.plugin),
                    ));
                }
                if !condition.config.is_object() {
                    return Err(invalid(
                        &format!("rule.all[{i}].any[{j}].config"),
                        "must be a JSON object".into(),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Every condition with its place in the rule, in order: `(clause, index, condition)`.
    pub fn conditions(&self) -> impl Iterator<Item = (usize, usize, &Condition)> {
        self.rule
            .all
            .iter()
            .enumerate()
            .flat_map(|(i, c)| c.any.iter().enumerate().map(move |(j, d)| (i, j, d)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(json: &str) -> Group {
        serde_json::from_str(json).expect("test group parses")
    }

    #[test]
    fn defaults_are_disabled_and_manual() {
        let g = group(r#"{"id":"vip","name":"VIP"}"#);
        assert_eq!(g.auto.mode, Mode::Disabled);
        assert!(g.auto.triggers.manual);
        assert!(!g.auto.triggers.on_registration);
        assert!(g.check().is_ok());
    }

    #[test]
    fn an_auto_group_needs_a_rule() {
        let g = group(r#"{"id":"eu","name":"EU","auto":{"mode":"full-sync"}}"#);
        assert_eq!(g.check().expect_err("no rule").field, "rule.all");
    }

    #[test]
    fn bad_parts_are_named_by_path() {
        let g = group(
            r#"{"id":"eu","name":"EU","auto":{"mode":"add-only"},
                "rule":{"all":[{"any":[{"plugin":"country","config":{"countries":["DE"]}}]},
                               {"any":[{"plugin":"Bad Id"}]}]}}"#,
        );
        let err = g.check().expect_err("bad plugin id");
        assert_eq!(err.field, "rule.all[1].any[0].plugin");
        assert_eq!(
            err.to_string(),
            "group `eu`: rule.all[1].any[0].plugin: `Bad Id` is not a plugin id"
        );
        let g = group(r#"{"id":"EU","name":"EU"}"#);
        assert_eq!(g.check().expect_err("bad id").field, "id");
        let g = group(r#"{"id":"eu","name":"EU","rule":{"all":[{"any":[]}]}}"#);
        assert_eq!(
            g.check().expect_err("empty clause").field,
            "rule.all[0].any"
        );
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err = serde_json::from_str::<Group>(r#"{"id":"a","name":"A","mdoe":"x"}"#)
            .expect_err("unknown field");
        assert!(err.to_string().contains("mdoe"));
    }
}
