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

/// One condition of a clause: a plugin's verdict, or membership of another group.
/// In JSON an object with `"group"` is the second, any other the first.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Condition {
    Plugin(PluginCondition),
    Group(GroupCondition),
}

/// A plugin, the versions of it that may run it, its configuration, and whether the
/// rule wants the opposite ("is not").
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PluginCondition {
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

/// "Is (not) a member of group `group`" at the evaluation time, by any membership:
/// the rule's, by hand or imported.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GroupCondition {
    #[cfg_attr(feature = "openapi", schema(pattern = "^[a-z0-9][a-z0-9-]{0,63}$"))]
    pub group: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub negate: bool,
}

impl<'de> Deserialize<'de> for Condition {
    // By hand rather than `untagged`: an untagged enum answers any mistake with "did
    // not match any variant", where the operator needs "unknown field `confg`".
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let value = serde_json::Value::deserialize(deserializer)?;
        if !value.is_object() {
            return Err(D::Error::custom(
                "a condition is an object with `plugin` or `group`",
            ));
        }
        let parsed = if value.get("group").is_some() {
            GroupCondition::deserialize(value).map(Condition::Group)
        } else {
            PluginCondition::deserialize(value).map(Condition::Plugin)
        };
        parsed.map_err(D::Error::custom)
    }
}

impl Condition {
    /// Whether the rule wants the opposite of the condition.
    pub fn negate(&self) -> bool {
        match self {
            Condition::Plugin(c) => c.negate,
            Condition::Group(c) => c.negate,
        }
    }

    /// The plugin condition, if it is one.
    pub fn plugin(&self) -> Option<&PluginCondition> {
        match self {
            Condition::Plugin(c) => Some(c),
            Condition::Group(_) => None,
        }
    }

    /// The group this condition refers to, if it is a group condition.
    pub fn group(&self) -> Option<&str> {
        match self {
            Condition::Plugin(_) => None,
            Condition::Group(c) => Some(&c.group),
        }
    }
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
                let at = format!("rule.all[{i}].any[{j}]");
                match condition {
                    Condition::Plugin(c) if !is_slug(&c.plugin) => {
                        return Err(invalid(
                            &format!("{at}.plugin"),
                            format!("`{}` is not a plugin id", c.plugin),
                        ));
                    }
                    Condition::Plugin(c) if !c.config.is_object() => {
                        return Err(invalid(
                            &format!("{at}.config"),
                            "must be a JSON object".into(),
                        ));
                    }
                    Condition::Group(c) if !is_slug(&c.group) => {
                        return Err(invalid(
                            &format!("{at}.group"),
                            format!("`{}` is not a group id", c.group),
                        ));
                    }
                    Condition::Group(c) if c.group == self.id => {
                        return Err(invalid(
                            &format!("{at}.group"),
                            format!(
                                "a rule cannot refer to its own group (`{}` -> `{}`)",
                                self.id, self.id
                            ),
                        ));
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// The groups this group's rule refers to, each once, in rule order.
    pub fn referred(&self) -> Vec<&str> {
        let mut referred: Vec<&str> = Vec::new();
        for (_, _, c) in self.conditions() {
            if let Some(g) = c.group()
                && !referred.contains(&g)
            {
                referred.push(g);
            }
        }
        referred
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
    fn a_condition_is_a_plugin_or_a_group() {
        let g = group(
            r#"{"id":"a-not-b","name":"A not B","auto":{"mode":"full-sync"},
                "rule":{"all":[{"any":[{"group":"a"}]},{"any":[{"group":"b","negate":true},
                {"plugin":"country","config":{"countries":["DE"]}}]}]}}"#,
        );
        assert!(g.check().is_ok());
        assert_eq!(g.referred(), ["a", "b"]);
        assert!(g.rule.all[1].any[0].negate());
        assert_eq!(
            g.rule.all[1].any[1].plugin().map(|p| p.plugin.as_str()),
            Some("country")
        );
        // It reads back as written: no plugin fields on a group condition.
        let json = serde_json::to_value(&g.rule.all[1].any[0]).expect("serialises");
        assert_eq!(json, serde_json::json!({"group":"b","negate":true}));
        let back: Group = serde_json::from_value(serde_json::to_value(&g).expect("serialises"))
            .expect("parses back");
        assert_eq!(back, g);

        let err = serde_json::from_str::<Condition>(r#"{"group":"a","config":{}}"#)
            .expect_err("a group condition has no configuration");
        assert!(err.to_string().contains("unknown field `config`"), "{err}");
        let err =
            serde_json::from_str::<Condition>(r#"{"plugin":"a","confg":{}}"#).expect_err("a typo");
        assert!(err.to_string().contains("unknown field `confg`"), "{err}");
        let err = serde_json::from_str::<Condition>(r#"{}"#).expect_err("neither");
        assert!(err.to_string().contains("missing field `plugin`"), "{err}");

        let own = group(r#"{"id":"a","name":"A","rule":{"all":[{"any":[{"group":"a"}]}]}}"#);
        let err = own.check().expect_err("refers to itself");
        assert_eq!(err.field, "rule.all[0].any[0].group");
        assert!(err.problem.contains("`a` -> `a`"), "{err}");
        let bad = group(r#"{"id":"b","name":"B","rule":{"all":[{"any":[{"group":"A B"}]}]}}"#);
        assert_eq!(
            bad.check().expect_err("bad id").field,
            "rule.all[0].any[0].group"
        );
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err = serde_json::from_str::<Group>(r#"{"id":"a","name":"A","mdoe":"x"}"#)
            .expect_err("unknown field");
        assert!(err.to_string().contains("mdoe"));
    }
}
