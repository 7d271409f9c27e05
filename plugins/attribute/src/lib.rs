//! Condition "custom attribute": a fact the platform keeps about a customer beyond the
//! fixed ones (a balance, a plan's monthly amount, a signup date, a segment) is
//! present, equals a value, is one of several, compares as a number or a time, or fell
//! within the last N days.
//!
//! Values are typed (contract 0.3.0): numbers compare exactly, whether the platform
//! sent a whole number or a decimal; times compare as times. A platform that sends
//! numbers or times as text is understood too: text that reads as a number compares
//! as one, text that reads as an RFC 3339 time or a date as a time.

use std::cell::RefCell;
use std::collections::HashMap;

use cohort_plugin_sdk::config::{self, Problems};
use cohort_plugin_sdk::sets::SymbolSet;
use cohort_plugin_sdk::time::{self, DAY};
use cohort_plugin_sdk::{
    ConfigError, Customer, FOREVER, Fields, Plugin, PluginInfo, Symbol, Timestamp, Value, Verdict,
    export_plugin, intern, symbol_text, value_text,
};
use serde::Deserialize;

/// The longest look back, in days (ten years).
const MAX_DAYS: u32 = 3650;

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
enum Operator {
    Present,
    Equals,
    OneOf,
    AtLeast,
    AtMost,
    GreaterThan,
    LessThan,
    Before,
    After,
    WithinDays,
}

impl Operator {
    fn name(self) -> &'static str {
        match self {
            Operator::Present => "present",
            Operator::Equals => "equals",
            Operator::OneOf => "one-of",
            Operator::AtLeast => "at-least",
            Operator::AtMost => "at-most",
            Operator::GreaterThan => "greater-than",
            Operator::LessThan => "less-than",
            Operator::Before => "before",
            Operator::After => "after",
            Operator::WithinDays => "within-days",
        }
    }

    /// The configuration field this operator takes, if any.
    fn operand(self) -> Option<&'static str> {
        match self {
            Operator::Present => None,
            Operator::OneOf => Some("values"),
            Operator::WithinDays => Some("days"),
            _ => Some("value"),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    name: String,
    operator: Operator,
    value: Option<serde_json::Value>,
    values: Option<Vec<String>>,
    days: Option<u32>,
}

/// A number scaled to 18 decimal places: every integer and decimal an attribute can
/// hold fits, and compares exactly.
type Scaled = i128;

const SCALE: u32 = 18;

fn scaled(units: i64, scale: u8) -> Option<Scaled> {
    let shift = SCALE.checked_sub(u32::from(scale))?;
    Some(Scaled::from(units) * 10i128.pow(shift))
}

/// A decimal number written out (`-12.50`, `3`), scaled; `None` for anything else.
fn parse_number(text: &str) -> Option<Scaled> {
    let (negative, rest) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (whole, fraction) = rest.split_once('.').unwrap_or((rest, ""));
    if whole.is_empty() && fraction.is_empty()
        || rest.ends_with('.')
        || fraction.len() > SCALE as usize
        || whole.trim_start_matches('0').len() > 19
        || !whole
            .bytes()
            .chain(fraction.bytes())
            .all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let whole: Scaled = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let padded = format!("{fraction:0<width$}", width = SCALE as usize);
    let n = whole.checked_mul(10i128.pow(SCALE))? + padded.parse::<Scaled>().ok()?;
    Some(if negative { -n } else { n })
}

/// A scaled number as an explanation writes it.
fn shown_number(n: Scaled) -> String {
    let sign = if n < 0 { "-" } else { "" };
    let n = n.unsigned_abs();
    let unit = 10u128.pow(SCALE);
    let fraction = format!("{:018}", n % unit);
    let fraction = fraction.trim_end_matches('0');
    if fraction.is_empty() {
        format!("{sign}{}", n / unit)
    } else {
        format!("{sign}{}.{fraction}", n / unit)
    }
}

enum Test {
    Present,
    Text(SymbolSet),
    /// Equal to, at least, at most, greater or less than a number.
    Number(Operator, Scaled),
    /// Before or after a time.
    Time(Operator, Timestamp),
    /// Within the last N days of the as-of time: (as-of - N days, as-of].
    WithinDays(u32),
}

struct Attribute {
    name: Symbol,
    test: Test,
    /// What text values read as, worked out once per symbol.
    numbers: RefCell<HashMap<Symbol, Option<Scaled>>>,
    times: RefCell<HashMap<Symbol, Option<Timestamp>>>,
}

impl Attribute {
    fn number(&self, value: Value) -> Option<Scaled> {
        match value {
            Value::Integer(n) => scaled(n, 0),
            Value::Decimal(d) => scaled(d.units, d.scale),
            Value::Text(s) => *self
                .numbers
                .borrow_mut()
                .entry(s)
                .or_insert_with(|| symbol_text(s).and_then(|t| parse_number(t.trim()))),
            Value::Timestamp(_) => None,
        }
    }

    fn time(&self, value: Value) -> Option<Timestamp> {
        match value {
            Value::Timestamp(t) => Some(t),
            Value::Text(s) => *self
                .times
                .borrow_mut()
                .entry(s)
                .or_insert_with(|| symbol_text(s).and_then(|t| time::parse(t.trim()).ok())),
            _ => None,
        }
    }

    /// Whether `value` passes, as of `as_of`. Inlined into the scan's loop: `explain`
    /// and `valid_until` call it too.
    #[inline(always)]
    fn holds(&self, value: Value, as_of: Timestamp) -> bool {
        match &self.test {
            Test::Present => true,
            Test::Text(set) => matches!(value, Value::Text(s) if set.contains(s)),
            Test::Number(op, wanted) => self.number(value).is_some_and(|n| match op {
                Operator::Equals => n == *wanted,
                Operator::AtLeast => n >= *wanted,
                Operator::AtMost => n <= *wanted,
                Operator::GreaterThan => n > *wanted,
                _ => n < *wanted,
            }),
            Test::Time(op, wanted) => self.time(value).is_some_and(|t| match op {
                Operator::Before => t < *wanted,
                _ => t > *wanted,
            }),
            Test::WithinDays(days) => self
                .time(value)
                .is_some_and(|t| t <= as_of && t > as_of - i64::from(*days) * DAY),
        }
    }
}

const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "properties": {
    "name": {
      "description": "the attribute's name, exactly as the platform sends it",
      "type": "string", "minLength": 1
    },
    "operator": {
      "description": "present; equals (text, or a number); one-of (texts); at-least, at-most, greater-than, less-than (numbers); before, after (times); within-days (a time in the last N days)",
      "enum": ["present", "equals", "one-of", "at-least", "at-most", "greater-than", "less-than", "before", "after", "within-days"]
    },
    "value": {
      "description": "for equals: text or a number; for the comparisons: a number; for before and after: a date (2026-01-31) or an RFC 3339 time",
      "type": ["string", "number"]
    },
    "values": {
      "description": "for one-of: the texts, exactly as the platform sends them",
      "type": "array", "items": { "type": "string" }, "minItems": 1
    },
    "days": {
      "description": "for within-days: how many days back from the evaluation time",
      "type": "integer", "minimum": 1, "maximum": 3650
    }
  },
  "required": ["name", "operator"],
  "additionalProperties": false
}"#;

impl Plugin for Attribute {
    fn describe() -> PluginInfo {
        PluginInfo {
            id: "attribute".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "A custom attribute is present, equals a value, is one of several, compares as a number or a time, or fell within the last N days.".into(),
            config_schema: SCHEMA.into(),
            reads: Fields::ATTRIBUTES,
            capabilities: Vec::new(),
        }
    }

    fn prepare(json: &str) -> Result<Self, Vec<ConfigError>> {
        let cfg: Config = config::parse(json)?;
        let mut problems = Problems::new();
        if cfg.name.trim().is_empty() {
            problems.push("/name", "must not be blank");
        }
        let op = cfg.operator;
        let operator = op.name();
        for (field, given) in [
            ("value", cfg.value.is_some()),
            ("values", cfg.values.is_some()),
            ("days", cfg.days.is_some()),
        ] {
            if given && op.operand() != Some(field) {
                problems.push(
                    format!("/{field}"),
                    format!("not used by operator `{operator}`"),
                );
            }
        }
        if let Some(field) = op.operand()
            && match field {
                "values" => cfg.values.is_none(),
                "days" => cfg.days.is_none(),
                _ => cfg.value.is_none(),
            }
        {
            problems.push(
                format!("/{field}"),
                format!("required by operator `{operator}`"),
            );
        }
        let value = cfg.value.as_ref();
        let number = |problems: &mut Problems| -> Scaled {
            let text = match value {
                Some(serde_json::Value::Number(n)) => n.to_string(),
                Some(serde_json::Value::String(s)) => s.trim().to_string(),
                _ => return 0,
            };
            parse_number(&text).unwrap_or_else(|| {
                problems.push(
                    "/value",
                    format!(
                        "`{text}` is not a number such as `12.50` (at most 18 digits after the point)"
                    ),
                );
                0
            })
        };
        let test = match op {
            Operator::Present => Test::Present,
            Operator::Equals => match value {
                Some(serde_json::Value::String(s)) => Test::Text(SymbolSet::new([s.as_str()])),
                _ => Test::Number(op, number(&mut problems)),
            },
            Operator::OneOf => {
                let values = cfg.values.clone().unwrap_or_default();
                if cfg.values.as_ref().is_some_and(Vec::is_empty) {
                    problems.push("/values", "name at least one value");
                }
                Test::Text(SymbolSet::new(values.iter().map(String::as_str)))
            }
            Operator::AtLeast | Operator::AtMost | Operator::GreaterThan | Operator::LessThan => {
                Test::Number(op, number(&mut problems))
            }
            Operator::Before | Operator::After => match value {
                Some(serde_json::Value::String(s)) => match time::parse(s.trim()) {
                    Ok(t) => Test::Time(op, t),
                    Err(e) => {
                        problems.push("/value", e);
                        Test::Present
                    }
                },
                Some(other) => {
                    problems.push(
                        "/value",
                        format!("`{other}` is not a date or time: write it as text, such as `2026-01-31`"),
                    );
                    Test::Present
                }
                None => Test::Present,
            },
            Operator::WithinDays => {
                let days = cfg.days.unwrap_or(1);
                if days == 0 || days > MAX_DAYS {
                    problems.push("/days", format!("`{days}` is not between 1 and {MAX_DAYS}"));
                }
                Test::WithinDays(days)
            }
        };
        problems.finish(Attribute {
            name: intern(&cfg.name),
            test,
            numbers: RefCell::new(HashMap::new()),
            times: RefCell::new(HashMap::new()),
        })
    }

    fn evaluate(&self, as_of: Timestamp, customer: Customer<'_>) -> Verdict {
        Verdict::from_bool(
            customer
                .attribute(self.name)
                .is_some_and(|v| self.holds(v, as_of)),
        )
    }

    /// Only "within the last N days" depends on the time: a value in the window holds
    /// until it falls out of it, one in the future until it comes.
    fn valid_until(&self, as_of: Timestamp, customer: Customer<'_>) -> Timestamp {
        let Test::WithinDays(days) = self.test else {
            return FOREVER;
        };
        match customer.attribute(self.name).and_then(|v| self.time(v)) {
            Some(t) if t > as_of => t,
            Some(t) if self.holds(Value::Timestamp(t), as_of) => {
                t.saturating_add(i64::from(days) * DAY)
            }
            _ => FOREVER,
        }
    }

    fn explain(&self, as_of: Timestamp, customer: Customer<'_>) -> String {
        let name = symbol_text(self.name).unwrap_or_default();
        let Some(value) = customer.attribute(self.name) else {
            return format!("the customer has no attribute `{name}`");
        };
        let shown = value_text(value);
        let holds = self.holds(value, as_of);
        let not = if holds { "" } else { "not " };
        match &self.test {
            Test::Present => format!("`{name}` is {shown}, and any value counts"),
            Test::Text(set) => format!("`{name}` is {shown}, {not}one of {}", set.names()),
            Test::Number(op, wanted) => match self.number(value) {
                None => format!("`{name}` is {shown}, which is not a number"),
                Some(_) => {
                    let relation = match op {
                        Operator::Equals => "equal to",
                        Operator::AtLeast => "at least",
                        Operator::AtMost => "at most",
                        Operator::GreaterThan => "greater than",
                        _ => "less than",
                    };
                    format!(
                        "`{name}` is {shown}, {not}{relation} {}",
                        shown_number(*wanted)
                    )
                }
            },
            Test::Time(op, wanted) => match self.time(value) {
                None => format!("`{name}` is {shown}, which is not a time"),
                Some(_) => {
                    let relation = if *op == Operator::Before {
                        "before"
                    } else {
                        "after"
                    };
                    format!(
                        "`{name}` is {shown}, {not}{relation} {}",
                        time::shown(*wanted)
                    )
                }
            },
            Test::WithinDays(days) => match self.time(value) {
                None => format!("`{name}` is {shown}, which is not a time"),
                Some(t) if t > as_of => {
                    format!(
                        "`{name}` is {shown}, after the as-of time {}",
                        time::shown(as_of)
                    )
                }
                Some(_) => format!(
                    "`{name}` is {shown}, {not}within the {days} days before {}",
                    time::shown(as_of)
                ),
            },
        }
    }
}

export_plugin!(Attribute);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_compare_exactly_whatever_their_form() {
        assert_eq!(parse_number("12.50"), scaled(1250, 2));
        assert_eq!(parse_number("12.5"), scaled(125, 1));
        assert_eq!(parse_number("-0.000000000000000001"), Some(-1));
        assert_eq!(parse_number("1e3"), None);
        assert_eq!(parse_number("."), None);
        assert_eq!(parse_number("9223372036854775807"), scaled(i64::MAX, 0));
        assert_eq!(shown_number(scaled(-1250, 2).expect("fits")), "-12.5");
        assert_eq!(shown_number(scaled(42, 0).expect("fits")), "42");
    }
}
