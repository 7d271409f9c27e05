//! Customer facts: as a platform sends them, and as plugins read them.

use std::collections::BTreeMap;
use std::net::IpAddr;

use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::attribute::{AttributeValue, Value};
use crate::{Interner, Symbol, Timestamp};

/// Enumerated values are spelled in kebab-case everywhere (`legal-entity`, as a group's
/// `full-sync`); the snake_case spelling of earlier releases is read as an alias.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum PayerKind {
    #[serde(alias = "legal_entity")]
    LegalEntity,
    Individual,
    #[serde(alias = "sole_proprietor")]
    SoleProprietor,
}

#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum VerificationStatus {
    #[default]
    Unverified,
    Passed,
    Failed,
}

#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum SubscriptionStatus {
    #[default]
    Active,
    Suspended,
    Cancelled,
    Pending,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PayerRecord {
    pub kind: PayerKind,
    #[serde(default = "yes")]
    pub active: bool,
}

fn yes() -> bool {
    true
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SubscriptionRecord {
    pub product: String,
    #[serde(default)]
    pub status: SubscriptionStatus,
    #[serde(deserialize_with = "rfc3339::required")]
    pub start: DateTime<Utc>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "rfc3339::optional"
    )]
    pub end: Option<DateTime<Utc>>,
}

/// Subscription times as platforms send them: RFC 3339. Loading the customer cache reads
/// every subscription of every customer, and chrono's parser, which takes every form
/// RFC 3339 allows, was a twelfth of that. Nearly all times come in one form,
/// `2026-03-19T20:26:40Z`, which is read here directly; any other form, or a date that
/// does not exist, goes to chrono, so what is accepted and the errors are chrono's.
mod rfc3339 {
    use super::*;

    pub fn required<'de, D: serde::Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        d.deserialize_str(Visitor)
    }

    pub fn optional<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Option<DateTime<Utc>>, D::Error> {
        Option::<At>::deserialize(d).map(|at| at.map(|At(t)| t))
    }

    struct At(DateTime<Utc>);

    impl<'de> Deserialize<'de> for At {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            required(d).map(At)
        }
    }

    struct Visitor;

    impl serde::de::Visitor<'_> for Visitor {
        type Value = DateTime<Utc>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an RFC 3339 date and time")
        }

        fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Self::Value, E> {
            parse(text).map_err(E::custom)
        }
    }

    pub(crate) fn parse(text: &str) -> Result<DateTime<Utc>, chrono::ParseError> {
        match utc_seconds(text.as_bytes()) {
            Some(at) => Ok(at),
            None => text
                .parse::<DateTime<FixedOffset>>()
                .map(|t| t.with_timezone(&Utc)),
        }
    }

    /// `YYYY-MM-DDTHH:MM:SSZ`, when `text` is exactly that and the date exists.
    fn utc_seconds(text: &[u8]) -> Option<DateTime<Utc>> {
        let [
            y0,
            y1,
            y2,
            y3,
            b'-',
            m0,
            m1,
            b'-',
            d0,
            d1,
            b'T',
            h0,
            h1,
            b':',
            i0,
            i1,
            b':',
            s0,
            s1,
            b'Z',
        ] = *text
        else {
            return None;
        };
        let digits = |ds: &[u8]| {
            ds.iter().try_fold(0u32, |n, &d| {
                d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0'))
            })
        };
        let year = i32::try_from(digits(&[y0, y1, y2, y3])?).ok()?;
        let date = NaiveDate::from_ymd_opt(year, digits(&[m0, m1])?, digits(&[d0, d1])?)?;
        let time = date.and_hms_opt(digits(&[h0, h1])?, digits(&[i0, i1])?, digits(&[s0, s1])?)?;
        Some(time.and_utc())
    }
}

/// An RFC 3339 time, as subscription times are read.
pub(crate) fn parse_rfc3339(text: &str) -> Result<DateTime<Utc>, chrono::ParseError> {
    rfc3339::parse(text)
}

/// A customer as a platform sends it: one JSON object per customer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CustomerRecord {
    /// The platform's customer number: 1-128 ASCII letters, digits and `-` `_` `.`
    /// `@` `:` `+`, starting with a letter or digit.
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = "^[A-Za-z0-9][A-Za-z0-9._@:+-]{0,127}$")
    )]
    pub id: String,
    /// ISO 3166-1 alpha-2, any case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(pattern = "^[A-Za-z]{2}$"))]
    pub country: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, example = "192.0.2.10"))]
    pub registration_ip: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub registration_params: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub payers: Vec<PayerRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub auth_methods: Vec<String>,
    #[serde(default)]
    pub verification_status: VerificationStatus,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verification_methods: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subscriptions: Vec<SubscriptionRecord>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Custom facts: text, whole numbers, decimals and times (see `AttributeValue`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, AttributeValue>,
    /// When the customer registered with the platform (RFC 3339).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "rfc3339::optional"
    )]
    pub registered_at: Option<DateTime<Utc>>,
}

/// The longest customer id, in bytes.
pub const MAX_ID_LEN: usize = 128;
/// The longest text of any other field (a tag, a parameter or attribute's name or
/// value, a product), in bytes.
pub const MAX_TEXT_LEN: usize = 1024;
/// The most entries of one list or map of a customer (tags, attributes, subscriptions).
pub const MAX_ENTRIES: usize = 1000;

/// Whether `id` may be a customer id, and if not why. The rule is the same for every
/// way a customer arrives (the API, the CLI, a CSV import): 1 to 128 characters, ASCII
/// letters and digits and `-` `_` `.` `@` `:` `+`, starting with a letter or digit. So
/// an id is a path segment of the API as it stands, appears in a terminal as it is,
/// and a platform's customer numbers, account codes and e-mail addresses all fit.
pub fn check_customer_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("must not be empty".into());
    }
    if id.len() > MAX_ID_LEN {
        return Err(format!(
            "is {} characters long; an id has at most {MAX_ID_LEN}",
            id.chars().count()
        ));
    }
    if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "-_.@:+".contains(*c)))
    {
        return Err(format!(
            "`{}` may not be in an id: use letters, digits and `-` `_` `.` `@` `:` `+`",
            c.escape_default()
        ));
    }
    if !id.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err("must start with a letter or a digit".into());
    }
    Ok(())
}

/// `text` as it may be shown in an error: at most 64 characters, with anything that is
/// not plain printable ASCII escaped.
pub fn shown(text: &str) -> String {
    let mut out: String = text
        .chars()
        .take(64)
        .flat_map(char::escape_default)
        .collect();
    if text.chars().count() > 64 {
        out.push_str("...");
    }
    out
}

/// Whether `text` may name something people pick out in a list (a token, say): not
/// blank, at most `max` characters, and free of control characters and of the marks
/// that reorder text on screen.
pub fn check_label(text: &str, max: usize) -> Result<(), String> {
    if text.trim().is_empty() {
        return Err("is blank".into());
    }
    if text.chars().count() > max {
        return Err(format!("is longer than {max} characters"));
    }
    check_text(text)
}

/// Whether `text` may be the value of a customer's field: bounded, and free of control
/// characters and of the marks that reorder text on screen.
fn check_text(text: &str) -> Result<(), String> {
    if text.len() > MAX_TEXT_LEN {
        return Err(format!(
            "is {} bytes long; at most {MAX_TEXT_LEN}",
            text.len()
        ));
    }
    if let Some(c) = text.chars().find(|&c| c.is_control() || is_bidi_control(c)) {
        return Err(format!(
            "holds the control character `{}`",
            c.escape_unicode()
        ));
    }
    Ok(())
}

/// Marks that change the direction of the text around them, which can make what an
/// operator reads differ from what is stored.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// A customer record whose data cannot be true.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("customer `{customer}`: {field}: {problem}")]
pub struct InvalidCustomer {
    pub customer: String,
    /// The offending field, e.g. `subscriptions[2].end`.
    pub field: String,
    pub problem: String,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct Payer {
    pub kind: PayerKind,
    pub active: bool,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct Subscription {
    pub product: Symbol,
    pub status: SubscriptionStatus,
    pub start: Timestamp,
    pub end: Option<Timestamp>,
}

/// A customer as plugins read it: every string interned.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Customer {
    pub country: Option<Symbol>,
    pub registration_ip: Option<IpAddr>,
    pub registration_params: Vec<(Symbol, Symbol)>,
    pub payers: Vec<Payer>,
    pub provider: Option<Symbol>,
    pub auth_methods: Vec<Symbol>,
    pub verification_status: VerificationStatus,
    pub verification_methods: Vec<Symbol>,
    pub subscriptions: Vec<Subscription>,
    pub tags: Vec<Symbol>,
    pub attributes: Vec<(Symbol, Value)>,
    pub registered: Option<Timestamp>,
}

impl CustomerRecord {
    /// Every text field within its bounds, or the first that is not and why.
    fn check_texts(&self) -> Result<(), (String, String)> {
        // The field's name is made only for a text that fails: made for every text, it
        // was an eighth of parsing a stored record into the customer cache.
        let text = |field: &dyn Fn() -> String, value: &str| {
            check_text(value).map_err(|problem| (field(), problem))
        };
        let entries = |field: &str, n: usize| {
            if n > MAX_ENTRIES {
                return Err((
                    field.to_string(),
                    format!("has {n} entries; at most {MAX_ENTRIES}"),
                ));
            }
            Ok(())
        };
        entries("registration_params", self.registration_params.len())?;
        for (k, v) in &self.registration_params {
            text(&|| "registration_params".into(), k)?;
            text(&|| format!("registration_params.{k}"), v)?;
        }
        entries("attributes", self.attributes.len())?;
        for (k, v) in &self.attributes {
            text(&|| "attributes".into(), k)?;
            if let AttributeValue::Text(v) = v {
                text(&|| format!("attributes.{k}"), v)?;
            }
        }
        for (field, list) in [
            ("auth_methods", &self.auth_methods),
            ("verification_methods", &self.verification_methods),
            ("tags", &self.tags),
        ] {
            entries(field, list.len())?;
            for (i, v) in list.iter().enumerate() {
                text(&|| format!("{field}[{i}]"), v)?;
            }
        }
        entries("payers", self.payers.len())?;
        entries("subscriptions", self.subscriptions.len())?;
        for (i, s) in self.subscriptions.iter().enumerate() {
            text(&|| format!("subscriptions[{i}].product"), &s.product)?;
        }
        if let Some(provider) = &self.provider {
            text(&|| "provider".into(), provider)?;
        }
        Ok(())
    }

    /// Check that the record can be true and intern its strings.
    ///
    /// Country codes are upper-cased here, once, so that every plugin can compare
    /// symbols; whether a code names a real country is the country plugin's business.
    pub fn intern(&self, interner: &Interner) -> Result<Customer, InvalidCustomer> {
        self.intern_with(|text| interner.intern(text))
    }

    /// [`CustomerRecord::intern`] through any interning, such as a thread's own
    /// [`crate::Memo`] in front of the shared interner.
    pub fn intern_with(
        &self,
        mut symbol: impl FnMut(&str) -> Symbol,
    ) -> Result<Customer, InvalidCustomer> {
        let invalid = |field: String, problem: String| InvalidCustomer {
            customer: self.id.clone(),
            field,
            problem,
        };
        if let Err(problem) = check_customer_id(&self.id) {
            // The id is not repeated as it came: it may be huge, or reorder the text.
            return Err(InvalidCustomer {
                customer: shown(&self.id),
                field: "id".into(),
                problem,
            });
        }
        self.check_texts()
            .map_err(|(field, problem)| invalid(field, problem))?;
        let country = match self.country.as_deref() {
            None => None,
            Some(code) => match code.as_bytes() {
                &[a, b] if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => {
                    let upper = [a.to_ascii_uppercase(), b.to_ascii_uppercase()];
                    Some(symbol(std::str::from_utf8(&upper).unwrap_or(code)))
                }
                _ => {
                    return Err(invalid(
                        "country".into(),
                        format!("`{code}` is not an ISO 3166-1 alpha-2 code"),
                    ));
                }
            },
        };
        let mut subscriptions = Vec::with_capacity(self.subscriptions.len());
        for (i, s) in self.subscriptions.iter().enumerate() {
            if s.product.is_empty() {
                return Err(invalid(
                    format!("subscriptions[{i}].product"),
                    "must not be empty".into(),
                ));
            }
            if let Some(end) = s.end
                && end <= s.start
            {
                return Err(invalid(
                    format!("subscriptions[{i}].end"),
                    format!("`{end}` is not after the start `{}`", s.start),
                ));
            }
            subscriptions.push(Subscription {
                product: symbol(&s.product),
                status: s.status,
                start: s.start.timestamp(),
                end: s.end.map(|e| e.timestamp()),
            });
        }
        let registration_params = self
            .registration_params
            .iter()
            .map(|(k, v)| (symbol(k), symbol(v)))
            .collect();
        let attributes = self
            .attributes
            .iter()
            .map(|(k, v)| {
                let value = match v {
                    AttributeValue::Text(t) => Value::Text(symbol(t)),
                    AttributeValue::Integer(n) => Value::Integer(*n),
                    AttributeValue::Decimal(d) => Value::Decimal(*d),
                    AttributeValue::Timestamp(t) => Value::Timestamp(t.timestamp()),
                };
                (symbol(k), value)
            })
            .collect();
        let mut symbols =
            |names: &[String]| -> Vec<Symbol> { names.iter().map(|n| symbol(n)).collect() };
        let auth_methods = symbols(&self.auth_methods);
        let verification_methods = symbols(&self.verification_methods);
        let tags = symbols(&self.tags);
        Ok(Customer {
            country,
            registration_ip: self.registration_ip,
            registration_params,
            payers: self
                .payers
                .iter()
                .map(|p| Payer {
                    kind: p.kind,
                    active: p.active,
                })
                .collect(),
            provider: self.provider.as_deref().map(symbol),
            auth_methods,
            verification_status: self.verification_status,
            verification_methods,
            subscriptions,
            tags,
            attributes,
            registered: self.registered_at.map(|t| t.timestamp()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(json: &str) -> CustomerRecord {
        serde_json::from_str(json).expect("test record parses")
    }

    #[test]
    fn ids_follow_one_rule_and_a_bad_one_is_not_repeated_as_it_came() {
        for good in [
            "C-1001",
            "12345",
            "jane.doe+vip@example.com",
            "acct:42",
            "a_b",
        ] {
            assert_eq!(check_customer_id(good), Ok(()), "{good}");
        }
        let interner = Interner::new();
        for bad in [
            "",
            "../../etc/passwd",
            "a/b",
            "nul\0inside",
            "evil\u{202e}txt.exe",
            "with space",
            "-leading",
            ".hidden",
            "Kunde-Müller",
        ] {
            let e = CustomerRecord {
                id: bad.into(),
                ..CustomerRecord::default()
            }
            .intern(&interner)
            .expect_err(bad);
            assert_eq!(e.field, "id", "{bad}");
            assert!(!e.to_string().contains('\u{202e}') && !e.to_string().contains('\0'));
        }
        let long = "x".repeat(100_000);
        let e = CustomerRecord {
            id: long,
            ..CustomerRecord::default()
        }
        .intern(&interner)
        .expect_err("too long");
        assert!(e.to_string().len() < 200, "{e}");
        assert!(e.problem.contains("at most 128"), "{e}");
    }

    #[test]
    fn texts_are_bounded_and_free_of_control_characters() {
        let interner = Interner::new();
        let e = record(r#"{"id":"c","tags":["ok","a\u0000b"]}"#)
            .intern(&interner)
            .expect_err("NUL");
        assert_eq!(e.field, "tags[1]");
        let e = record(&format!(
            r#"{{"id":"c","attributes":{{"k":"{}"}}}}"#,
            "v".repeat(2000)
        ))
        .intern(&interner)
        .expect_err("long");
        assert_eq!(e.field, "attributes.k");
        let many: Vec<String> = (0..1001).map(|i| format!("t{i}")).collect();
        let e = CustomerRecord {
            id: "c".into(),
            tags: many,
            ..CustomerRecord::default()
        }
        .intern(&interner)
        .expect_err("many");
        assert_eq!(e.field, "tags");
    }

    #[test]
    fn country_is_upper_cased_once() {
        let interner = Interner::new();
        let c = record(r#"{"id":"1","country":"de"}"#)
            .intern(&interner)
            .expect("valid");
        assert_eq!(c.country, interner.lookup("DE"));
    }

    #[test]
    fn impossible_country_names_customer_and_field() {
        let err = record(r#"{"id":"c-7","country":"Germany"}"#)
            .intern(&Interner::new())
            .expect_err("invalid");
        assert_eq!(err.field, "country");
        assert_eq!(
            err.to_string(),
            "customer `c-7`: country: `Germany` is not an ISO 3166-1 alpha-2 code"
        );
    }

    #[test]
    fn subscription_ending_before_it_starts_is_rejected() {
        let err = record(
            r#"{"id":"9","subscriptions":[
                {"product":"p","start":"2026-01-01T00:00:00Z"},
                {"product":"q","start":"2026-02-01T00:00:00Z","end":"2026-01-01T00:00:00Z"}]}"#,
        )
        .intern(&Interner::new())
        .expect_err("invalid");
        assert_eq!(err.field, "subscriptions[1].end");
    }

    /// The direct reading of the common form gives what chrono gives, and every other
    /// form (or an impossible date) still goes through chrono with chrono's error.
    #[test]
    fn subscription_times_read_as_chrono_reads_them() {
        let chrono = |text: &str| {
            text.parse::<DateTime<FixedOffset>>()
                .map(|t| t.with_timezone(&Utc))
        };
        // A day and 13 seconds apart from 1969 to 2101: every day of every month, leap
        // years, times of day all round the clock.
        let mut at = -31_536_000_i64;
        while at < 4_133_980_800 {
            let text = DateTime::from_timestamp(at, 0)
                .expect("in range")
                .format("%Y-%m-%dT%H:%M:%SZ")
                .to_string();
            assert_eq!(rfc3339::parse(&text), chrono(&text), "{text}");
            at += 86_413;
        }
        for text in [
            "2026-02-29T00:00:00Z",
            "2024-02-29T23:59:59Z",
            "2026-13-01T00:00:00Z",
            "2026-04-31T00:00:00Z",
            "2026-01-01T24:00:00Z",
            "2026-01-01T23:60:00Z",
            "2026-01-01T23:59:60Z",
            "2026-01-01t10:00:00z",
            "2026-01-01 10:00:00Z",
            "2026-01-01T10:00:00.250Z",
            "2026-01-01T10:00:00+03:00",
            "2026-01-01T10:00:00-00:30",
            "2026-01-01T10:00:00",
            "2026-1-01T10:00:00Z",
            "+026-01-01T10:00:00Z",
            "2026-01-01T10:00:0xZ",
            "",
        ] {
            assert_eq!(rfc3339::parse(text), chrono(text), "{text}");
        }
        let err = serde_json::from_str::<CustomerRecord>(
            r#"{"id":"9","subscriptions":[{"product":"p","start":"2026-02-30T00:00:00Z"}]}"#,
        )
        .expect_err("an impossible date");
        assert!(err.to_string().contains("out of range"), "{err}");
        let ends = |end: &str| {
            let json = format!(
                r#"{{"id":"9","subscriptions":[{{"product":"p","start":"2026-01-01T00:00:00Z"{end}}}]}}"#
            );
            serde_json::from_str::<CustomerRecord>(&json).map(|r| r.subscriptions[0].end)
        };
        assert_eq!(ends("").expect("no end"), None);
        assert_eq!(ends(r#","end":null"#).expect("null end"), None);
        assert_eq!(
            ends(r#","end":"2026-06-01T12:00:00+02:00""#).expect("an end"),
            chrono("2026-06-01T10:00:00Z").ok()
        );
        assert!(ends(r#","end":"June""#).is_err());
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err = serde_json::from_str::<CustomerRecord>(r#"{"id":"1","contry":"DE"}"#)
            .expect_err("unknown field");
        assert!(err.to_string().contains("contry"), "{err}");
    }

    #[test]
    fn all_facts_are_interned() {
        let interner = Interner::new();
        let c = record(
            r#"{"id":"1","registration_ip":"81.2.69.142","registration_params":{"fromsite":"true"},
                "payers":[{"kind":"legal_entity","active":false}],"provider":"main",
                "auth_methods":["google"],"verification_status":"passed",
                "verification_methods":["email","phone"],"tags":["vip"],"attributes":{"segment":"b2b"}}"#,
        )
        .intern(&interner)
        .expect("valid");
        assert_eq!(
            c.registration_params,
            vec![(interner.intern("fromsite"), interner.intern("true"))]
        );
        assert_eq!(
            c.payers,
            vec![Payer {
                kind: PayerKind::LegalEntity,
                active: false
            }]
        );
        assert_eq!(c.verification_methods.len(), 2);
        assert_eq!(c.verification_status, VerificationStatus::Passed);
        assert_eq!(c.provider, interner.lookup("main"));
    }

    #[test]
    fn enumerated_values_are_kebab_case_and_read_snake_case_too() {
        let kebab: PayerRecord =
            serde_json::from_str(r#"{"kind":"legal-entity"}"#).expect("kebab-case");
        let snake: PayerRecord =
            serde_json::from_str(r#"{"kind":"legal_entity"}"#).expect("the alias");
        assert_eq!(kebab, snake);
        let written = serde_json::to_string(&kebab).expect("JSON");
        assert!(written.contains(r#""legal-entity""#), "{written}");
    }
}
