//! Condition "registration request parameter": a named parameter of the customer's
//! registration request (e.g. `fromsite`, `utm_source`) is present, equals a value, is
//! one of several values, or matches a regular expression. Names and values are
//! compared exactly; a pattern may ask for `(?i)`.

use cohort_plugin_sdk::config::{self, Problems};
use cohort_plugin_sdk::sets::{SymbolMemo, SymbolSet};
use cohort_plugin_sdk::{
    ConfigError, Customer, Fields, Plugin, PluginInfo, Symbol, Timestamp, Verdict, export_plugin,
    intern, symbol_text,
};
use regex_lite::Regex;
use serde::Deserialize;

/// Patterns longer than this are refused: a rule is written by a person, and a huge
/// pattern is a mistake or an attack on compile time.
const MAX_PATTERN: usize = 1000;

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
enum Operator {
    Present,
    Equals,
    OneOf,
    Matches,
}

impl Operator {
    fn name(self) -> &'static str {
        match self {
            Operator::Present => "present",
            Operator::Equals => "equals",
            Operator::OneOf => "one-of",
            Operator::Matches => "matches",
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    name: String,
    operator: Operator,
    value: Option<String>,
    values: Option<Vec<String>>,
    pattern: Option<String>,
}

enum Compiled {
    Present,
    OneOf(SymbolSet),
    /// The verdict per distinct value, so each value's text is fetched and matched once.
    Matches(Regex, SymbolMemo),
}

struct RegistrationParam {
    name: Symbol,
    test: Compiled,
}

impl RegistrationParam {
    fn value_matches(&self, value: Symbol) -> bool {
        match &self.test {
            Compiled::Present => true,
            Compiled::OneOf(values) => values.contains(value),
            Compiled::Matches(regex, seen) => seen.get_or(value, |v| {
                symbol_text(v).is_some_and(|text| regex.is_match(&text))
            }),
        }
    }
}

impl Plugin for RegistrationParam {
    fn describe() -> PluginInfo {
        PluginInfo {
            id: "registration-param".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "A parameter of the registration request is present, equals a value, is one of several, or matches a pattern.".into(),
            config_schema: r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "properties": {
    "name": { "description": "the parameter's name, exactly", "type": "string", "minLength": 1 },
    "operator": { "enum": ["present", "equals", "one-of", "matches"] },
    "value": { "description": "for equals", "type": "string" },
    "values": { "description": "for one-of", "type": "array", "items": { "type": "string" }, "minItems": 1 },
    "pattern": { "description": "for matches: a regular expression, unanchored", "type": "string", "maxLength": 1000 }
  },
  "required": ["name", "operator"],
  "additionalProperties": false
}"#
            .into(),
            reads: Fields::REGISTRATION_PARAMS,
            capabilities: Vec::new(),
        }
    }

    fn prepare(json: &str) -> Result<Self, Vec<ConfigError>> {
        let cfg: Config = config::parse(json)?;
        let mut problems = Problems::new();
        if cfg.name.trim().is_empty() {
            problems.push("/name", "must not be blank");
        }
        // Each operator takes exactly its own operand; a stray one is a misunderstanding
        // worth pointing out.
        let operand = |field: &str| match cfg.operator {
            Operator::Present => None,
            Operator::Equals => Some("value").filter(|f| *f == field),
            Operator::OneOf => Some("values").filter(|f| *f == field),
            Operator::Matches => Some("pattern").filter(|f| *f == field),
        };
        let operator = cfg.operator.name();
        for (field, given) in [
            ("value", cfg.value.is_some()),
            ("values", cfg.values.is_some()),
            ("pattern", cfg.pattern.is_some()),
        ] {
            if given && operand(field).is_none() {
                problems.push(
                    format!("/{field}"),
                    format!("not used by operator `{operator}`"),
                );
            }
        }
        let test = match cfg.operator {
            Operator::Present => Compiled::Present,
            Operator::Equals => match &cfg.value {
                Some(value) => Compiled::OneOf(SymbolSet::new([value.as_str()])),
                None => {
                    problems.push("/value", format!("required by operator `{operator}`"));
                    Compiled::Present
                }
            },
            Operator::OneOf => match &cfg.values {
                Some(values) if !values.is_empty() => {
                    Compiled::OneOf(SymbolSet::new(values.iter().map(String::as_str)))
                }
                Some(_) => {
                    problems.push("/values", "name at least one value");
                    Compiled::Present
                }
                None => {
                    problems.push("/values", format!("required by operator `{operator}`"));
                    Compiled::Present
                }
            },
            Operator::Matches => match &cfg.pattern {
                Some(pattern) if pattern.len() > MAX_PATTERN => {
                    problems.push("/pattern", format!("longer than {MAX_PATTERN} characters"));
                    Compiled::Present
                }
                Some(pattern) => match Regex::new(pattern) {
                    Ok(regex) => Compiled::Matches(regex, SymbolMemo::default()),
                    Err(e) => {
                        problems.push(
                            "/pattern",
                            format!("`{pattern}` is not a valid pattern: {e}"),
                        );
                        Compiled::Present
                    }
                },
                None => {
                    problems.push("/pattern", format!("required by operator `{operator}`"));
                    Compiled::Present
                }
            },
        };
        problems.finish(RegistrationParam {
            name: intern(&cfg.name),
            test,
        })
    }

    fn evaluate(&self, _as_of: Timestamp, customer: Customer<'_>) -> Verdict {
        Verdict::from_bool(
            customer
                .registration_params()
                .iter()
                .any(|p| p.key == self.name && self.value_matches(p.value)),
        )
    }

    const TIMELESS: bool = true;

    fn explain(&self, _as_of: Timestamp, customer: Customer<'_>) -> String {
        let quoted = |s: Symbol| symbol_text(s).map_or(format!("symbol {s}"), |t| format!("`{t}`"));
        let name = quoted(self.name);
        let Some(value) = customer
            .registration_params()
            .iter()
            .find(|p| p.key == self.name)
            .map(|p| p.value)
        else {
            return format!("the registration request has no parameter {name}");
        };
        let value_text = quoted(value);
        let holds = self.value_matches(value);
        match &self.test {
            Compiled::Present => format!("{name} is {value_text}, and any value counts"),
            Compiled::OneOf(set) if holds => {
                format!("{name} is {value_text}, one of {}", set.names())
            }
            Compiled::OneOf(set) => format!("{name} is {value_text}, not one of {}", set.names()),
            Compiled::Matches(regex, _) if holds => {
                format!("{name} is {value_text}, which matches `{}`", regex.as_str())
            }
            Compiled::Matches(regex, _) => {
                format!(
                    "{name} is {value_text}, which does not match `{}`",
                    regex.as_str()
                )
            }
        }
    }
}

export_plugin!(RegistrationParam);
