//! Times in JSON as people and generated clients read them: a [`Timestamp`] (Unix
//! seconds, UTC) is written as RFC 3339 text (`2026-11-25T00:00:00Z`). Use with
//! `#[serde(with = "cohort_model::rfc3339")]`, or `rfc3339::option` for an
//! `Option<Timestamp>`. Reading takes RFC 3339 text, or the seconds as a number.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serializer};

use crate::Timestamp;

/// `t` as RFC 3339 text, in UTC, to the second.
pub fn format(t: Timestamp) -> String {
    DateTime::<Utc>::from_timestamp(t, 0).map_or_else(
        || t.to_string(),
        |d| d.to_rfc3339_opts(SecondsFormat::Secs, true),
    )
}

pub fn serialize<S: Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format(*t))
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Either {
    Seconds(Timestamp),
    Text(String),
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
    match Either::deserialize(d)? {
        Either::Seconds(t) => Ok(t),
        Either::Text(text) => DateTime::parse_from_rfc3339(&text)
            .map(|t| t.timestamp())
            .map_err(|e| {
                serde::de::Error::custom(format!(
                    "`{text}` is not an RFC 3339 time such as 2026-01-31T00:00:00Z: {e}"
                ))
            }),
    }
}

/// The same for an optional time; `None` is `null`.
pub mod option {
    use super::*;

    pub fn serialize<S: Serializer>(t: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => super::serialize(t, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
        #[derive(Deserialize)]
        struct Wrapped(#[serde(deserialize_with = "super::deserialize")] Timestamp);
        Ok(Option::<Wrapped>::deserialize(d)?.map(|Wrapped(t)| t))
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    use crate::Timestamp;

    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct At {
        #[serde(with = "super")]
        at: Timestamp,
        #[serde(with = "super::option")]
        until: Option<Timestamp>,
    }

    #[test]
    fn times_are_rfc3339_both_ways() {
        let at = At {
            at: 1_796_169_600,
            until: None,
        };
        let json = serde_json::to_string(&at).expect("serializes");
        assert_eq!(json, r#"{"at":"2026-12-02T00:00:00Z","until":null}"#);
        assert_eq!(serde_json::from_str::<At>(&json).expect("reads"), at);
        let seconds: At =
            serde_json::from_str(r#"{"at":1796169600,"until":"2026-12-02T01:00:00+01:00"}"#)
                .expect("seconds and offsets read too");
        assert_eq!(seconds.until, Some(1_796_169_600));
    }
}
