//! Custom attributes with types: text, whole numbers, exact decimals and timestamps.
//!
//! A platform sends an attribute as JSON: a string is text, a whole number an integer,
//! a number with a fraction an exact decimal, `{"decimal": "12.50"}` a decimal given as
//! text (for more digits than a JSON number carries exactly), `{"timestamp":
//! "2026-01-31T00:00:00Z"}` a time. A record read back gives each value in the same
//! form, so what is stored reads back equal.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{Symbol, Timestamp};

/// The most digits of a decimal: an `i64` holds any 18.
const MAX_DIGITS: u32 = 18;

/// How many significant digits a JSON number (an IEEE double) carries exactly: a
/// decimal of 15 or fewer is read back as written.
const EXACT_IN_JSON: u32 = 15;

/// An exact decimal number: `units` times ten to the power of minus `scale`, kept with
/// no trailing zeros after the point, so that equal numbers are equal values.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct Decimal {
    units: i64,
    scale: u8,
}

impl Decimal {
    /// `units` times ten to the minus `scale` (at most 18), with trailing zeros taken
    /// off.
    pub fn new(units: i64, scale: u8) -> Option<Decimal> {
        if u32::from(scale) > MAX_DIGITS {
            return None;
        }
        let (mut units, mut scale) = (units, scale);
        while scale > 0 && units % 10 == 0 {
            units /= 10;
            scale -= 1;
        }
        Some(Decimal { units, scale })
    }

    pub fn units(self) -> i64 {
        self.units
    }

    pub fn scale(self) -> u8 {
        self.scale
    }

    /// How many digits the number has, leading zeros not counted.
    fn digits(self) -> u32 {
        self.units
            .unsigned_abs()
            .checked_ilog10()
            .map_or(1, |d| d + 1)
    }
}

impl std::str::FromStr for Decimal {
    type Err = String;

    /// `-12.50`, `0.001`, `42`: an optional sign, digits, and an optional point with
    /// digits after it; at most 18 digits in all.
    fn from_str(text: &str) -> Result<Decimal, String> {
        let bad = || {
            format!(
                "`{}` is not a decimal number such as `-12.50`",
                crate::shown(text)
            )
        };
        let (negative, rest) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text.strip_prefix('+').unwrap_or(text)),
        };
        let (whole, fraction) = rest.split_once('.').unwrap_or((rest, ""));
        if whole.is_empty() && fraction.is_empty()
            || !whole
                .bytes()
                .chain(fraction.bytes())
                .all(|b| b.is_ascii_digit())
            || rest.ends_with('.')
        {
            return Err(bad());
        }
        let digits = format!("{whole}{fraction}");
        let significant = digits.trim_start_matches('0');
        if significant.len() > MAX_DIGITS as usize {
            return Err(format!(
                "`{}` has more than {MAX_DIGITS} digits",
                crate::shown(text)
            ));
        }
        let units: i64 = if significant.is_empty() {
            0
        } else {
            significant.parse().map_err(|_| bad())?
        };
        let scale = u8::try_from(fraction.len())
            .ok()
            .filter(|s| u32::from(*s) <= MAX_DIGITS)
            .ok_or_else(|| format!("`{}` has more than {MAX_DIGITS} digits", crate::shown(text)))?;
        Decimal::new(if negative { -units } else { units }, scale).ok_or_else(bad)
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.units < 0 { "-" } else { "" };
        let digits = self.units.unsigned_abs().to_string();
        let scale = usize::from(self.scale);
        if scale == 0 {
            return write!(f, "{sign}{digits}");
        }
        let padded = format!("{digits:0>width$}", width = scale + 1);
        let (whole, fraction) = padded.split_at(padded.len() - scale);
        write!(f, "{sign}{whole}.{fraction}")
    }
}

/// An attribute's value as a platform sends it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttributeValue {
    Text(String),
    Integer(i64),
    Decimal(Decimal),
    Timestamp(DateTime<Utc>),
}

impl AttributeValue {
    /// The text a plugin built against an older contract sees, which knew attributes
    /// as text only; `None` for a typed value, which such a plugin never saw.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            AttributeValue::Text(t) => Some(t),
            _ => None,
        }
    }
}

impl fmt::Display for AttributeValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttributeValue::Text(t) => write!(f, "`{}`", crate::shown(t)),
            AttributeValue::Integer(n) => write!(f, "{n}"),
            AttributeValue::Decimal(d) => write!(f, "{d}"),
            AttributeValue::Timestamp(t) => {
                write!(
                    f,
                    "{}",
                    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
                )
            }
        }
    }
}

impl Serialize for AttributeValue {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            AttributeValue::Text(t) => s.serialize_str(t),
            AttributeValue::Integer(n) => s.serialize_i64(*n),
            AttributeValue::Decimal(d) if d.digits() <= EXACT_IN_JSON => {
                // At most 15 digits: the double nearest the decimal prints back as it.
                let value: f64 = d.to_string().parse().map_err(serde::ser::Error::custom)?;
                s.serialize_f64(value)
            }
            AttributeValue::Decimal(d) => {
                let mut map = s.serialize_map(Some(1))?;
                map.serialize_entry("decimal", &d.to_string())?;
                map.end()
            }
            AttributeValue::Timestamp(t) => {
                let mut map = s.serialize_map(Some(1))?;
                map.serialize_entry(
                    "timestamp",
                    &t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
                )?;
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for AttributeValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> serde::de::Visitor<'de> for ValueVisitor {
    type Value = AttributeValue;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "text, a number, {\"decimal\": \"12.50\"} or {\"timestamp\": \"2026-01-31T00:00:00Z\"}",
        )
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<AttributeValue, E> {
        Ok(AttributeValue::Text(text.to_string()))
    }

    fn visit_string<E: serde::de::Error>(self, text: String) -> Result<AttributeValue, E> {
        Ok(AttributeValue::Text(text))
    }

    fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<AttributeValue, E> {
        Ok(AttributeValue::Integer(n))
    }

    fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<AttributeValue, E> {
        i64::try_from(n)
            .map(AttributeValue::Integer)
            .map_err(|_| E::custom(format!("{n} is larger than 9223372036854775807")))
    }

    fn visit_f64<E: serde::de::Error>(self, n: f64) -> Result<AttributeValue, E> {
        if !n.is_finite() {
            return Err(E::custom(format!(
                "{n} is not a number an attribute can hold"
            )));
        }
        // The shortest text that reads back as this double: the number as written
        // when it had at most 15 digits.
        let decimal: Decimal = format!("{n}").parse().map_err(E::custom)?;
        if decimal.digits() > EXACT_IN_JSON {
            return Err(E::custom(format!(
                "{n} has more digits than a JSON number carries exactly; send it as \
                 {{\"decimal\": \"...\"}}"
            )));
        }
        Ok(AttributeValue::Decimal(decimal))
    }

    fn visit_bool<E: serde::de::Error>(self, b: bool) -> Result<AttributeValue, E> {
        Err(E::custom(format!(
            "`{b}` is not an attribute value: send it as text (\"{b}\")"
        )))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        mut map: A,
    ) -> Result<AttributeValue, A::Error> {
        use serde::de::Error;
        let Some(kind) = map.next_key::<String>()? else {
            return Err(A::Error::custom(
                "an empty object is not an attribute value: use {\"decimal\": \"...\"} or \
                 {\"timestamp\": \"...\"}",
            ));
        };
        let text: String = map.next_value()?;
        let value = match kind.as_str() {
            "decimal" => AttributeValue::Decimal(text.parse().map_err(A::Error::custom)?),
            "timestamp" => {
                AttributeValue::Timestamp(crate::customer::parse_rfc3339(&text).map_err(|e| {
                    A::Error::custom(format!(
                        "`{}` is not an RFC 3339 time: {e}",
                        crate::shown(&text)
                    ))
                })?)
            }
            other => {
                return Err(A::Error::custom(format!(
                    "`{}` is not a kind of value: use `decimal` or `timestamp`",
                    crate::shown(other)
                )));
            }
        };
        if map.next_key::<String>()?.is_some() {
            return Err(A::Error::custom(format!(
                "a `{kind}` value is an object of that one key"
            )));
        }
        Ok(value)
    }
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for AttributeValue {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{AnyOf, ObjectBuilder, Schema, Type};
        let one = |key: &str, example: &str| {
            ObjectBuilder::new()
                .property(key, ObjectBuilder::new().schema_type(Type::String))
                .required(key)
                .examples([serde_json::json!({ key: example })])
                .build()
        };
        let any = AnyOf::builder()
            .description(Some(
                "Text, an integer, a decimal (a number with a fraction, or \
                 {\"decimal\": \"12.50\"} for more than 15 digits), or a time \
                 ({\"timestamp\": \"2026-01-31T00:00:00Z\"}).",
            ))
            .item(ObjectBuilder::new().schema_type(Type::String))
            .item(ObjectBuilder::new().schema_type(Type::Integer))
            .item(ObjectBuilder::new().schema_type(Type::Number))
            .item(one("decimal", "12.50"))
            .item(one("timestamp", "2026-01-31T00:00:00Z"))
            .build();
        utoipa::openapi::RefOr::T(Schema::AnyOf(any))
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for AttributeValue {}

/// An attribute's value as plugins read it: text interned, the rest as numbers.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Value {
    Text(Symbol),
    Integer(i64),
    Decimal(Decimal),
    Timestamp(Timestamp),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(json: &str) -> Result<AttributeValue, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    #[test]
    fn each_json_form_is_its_type_and_reads_back_equal() {
        let cases = [
            (r#""gold""#, AttributeValue::Text("gold".into())),
            ("-42", AttributeValue::Integer(-42)),
            (
                "12.5",
                AttributeValue::Decimal(Decimal::new(125, 1).expect("ok")),
            ),
            (
                "12.50",
                AttributeValue::Decimal(Decimal::new(125, 1).expect("ok")),
            ),
            (
                r#"{"decimal":"123456789.123456789"}"#,
                AttributeValue::Decimal(Decimal::new(123_456_789_123_456_789, 9).expect("ok")),
            ),
            (
                r#"{"timestamp":"2026-01-31T01:00:00+01:00"}"#,
                AttributeValue::Timestamp("2026-01-31T00:00:00Z".parse().expect("time")),
            ),
        ];
        for (json, expected) in cases {
            let value = read(json).expect(json);
            assert_eq!(value, expected, "{json}");
            let written = serde_json::to_string(&value).expect("writes");
            assert_eq!(read(&written).expect(&written), expected, "{written}");
        }
        assert_eq!(
            serde_json::to_string(
                &read(r#"{"timestamp":"2026-01-31T01:00:00+01:00"}"#).expect("t")
            )
            .expect("writes"),
            r#"{"timestamp":"2026-01-31T00:00:00Z"}"#
        );
        assert_eq!(
            serde_json::to_string(&read(r#"{"decimal":"0.10"}"#).expect("d")).expect("writes"),
            "0.1",
            "a decimal JSON carries exactly is written as a number"
        );
    }

    #[test]
    fn what_is_not_a_value_is_refused_saying_why() {
        for (json, why) in [
            ("true", "send it as text"),
            ("0.12345678901234567", "send it as {\"decimal\""),
            (r#"{"money":"1"}"#, "`money` is not a kind of value"),
            (r#"{"decimal":"1.2.3"}"#, "`1.2.3` is not a decimal number"),
            (
                r#"{"decimal":"1234567890123456789"}"#,
                "more than 18 digits",
            ),
            (
                r#"{"timestamp":"yesterday"}"#,
                "`yesterday` is not an RFC 3339 time",
            ),
            (
                r#"{"decimal":"1","timestamp":"x"}"#,
                "object of that one key",
            ),
            ("18446744073709551615", "larger than"),
            ("{}", "empty object"),
        ] {
            let err = read(json).expect_err(json);
            assert!(err.contains(why), "{json}: {err}");
        }
    }

    #[test]
    fn decimals_parse_and_print_exactly() {
        for (text, units, scale, shown) in [
            ("0", 0, 0, "0"),
            ("-0.05", -5, 2, "-0.05"),
            ("+3.1400", 314, 2, "3.14"),
            ("100", 100, 0, "100"),
            (".5", 5, 1, "0.5"),
            (
                "-999999999999999999",
                -999_999_999_999_999_999,
                0,
                "-999999999999999999",
            ),
        ] {
            let d: Decimal = text.parse().expect(text);
            assert_eq!((d.units(), d.scale()), (units, scale), "{text}");
            assert_eq!(d.to_string(), shown, "{text}");
        }
        for bad in ["", "-", "1.", "1e5", "1,5", "--1", "0x10"] {
            assert!(bad.parse::<Decimal>().is_err(), "{bad:?}");
        }
    }
}
