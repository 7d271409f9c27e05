//! Memberships: who is in which group, since when, until when, and why.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::Timestamp;

/// What made a membership.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Source {
    /// An operator, by hand.
    Manual,
    /// A group's rule.
    Rule,
    /// A bulk import.
    Import,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Manual => "manual",
            Source::Rule => "rule",
            Source::Import => "import",
        }
    }

    pub fn parse(s: &str) -> Option<Source> {
        match s {
            "manual" => Some(Source::Manual),
            "rule" => Some(Source::Rule),
            "import" => Some(Source::Import),
            _ => None,
        }
    }

    /// Made by a person's decision rather than by a rule: what `keep-manual` protects.
    pub fn is_by_hand(self) -> bool {
        matches!(self, Source::Manual | Source::Import)
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a membership stands at a given time.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum State {
    /// Before its start.
    Pending,
    /// Inside `[start, end)`.
    Active,
    /// At or after its end.
    Expired,
}

/// What planning needs of a membership: which one it is, what made it and its window.
/// A run keeps every membership of a group in this form, so it stays small.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Held {
    pub id: i64,
    pub source: Source,
    pub start: Timestamp,
    pub end: Option<Timestamp>,
}

impl Held {
    pub fn is_active(&self, at: Timestamp) -> bool {
        state(self.start, self.end, at) == State::Active
    }
}

/// One membership of a customer in a group, valid over `[start, end)`.
///
/// Removing a member ends its window rather than deleting the row, so the history of
/// who was in a group when stays answerable.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Membership {
    pub id: i64,
    pub customer: String,
    pub group: String,
    pub source: Source,
    /// Who or what made it: an operator's name, `rule`, an import's id.
    pub actor: String,
    pub reason: String,
    #[serde(with = "crate::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub start: Timestamp,
    #[serde(with = "crate::rfc3339::option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub end: Option<Timestamp>,
}

impl Membership {
    pub fn state(&self, at: Timestamp) -> State {
        state(self.start, self.end, at)
    }

    /// What planning needs of it.
    pub fn held(&self) -> Held {
        Held {
            id: self.id,
            source: self.source,
            start: self.start,
            end: self.end,
        }
    }

    pub fn is_active(&self, at: Timestamp) -> bool {
        self.state(at) == State::Active
    }
}

/// The state of a window `[start, end)` at `at`. An empty window (a pending membership
/// removed before it started) is expired from the outset: it never becomes active.
pub fn state(start: Timestamp, end: Option<Timestamp>, at: Timestamp) -> State {
    if end.is_some_and(|end| end <= start || at >= end) {
        State::Expired
    } else if at < start {
        State::Pending
    } else {
        State::Active
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_change_at_the_boundaries() {
        assert_eq!(state(100, Some(200), 99), State::Pending);
        assert_eq!(state(100, Some(200), 100), State::Active);
        assert_eq!(state(100, Some(200), 199), State::Active);
        assert_eq!(state(100, Some(200), 200), State::Expired);
        assert_eq!(state(100, None, i64::MAX), State::Active);
        assert_eq!(
            state(100, Some(100), 50),
            State::Expired,
            "removed before it began"
        );
    }

    #[test]
    fn keep_manual_protects_hand_made_memberships() {
        assert!(Source::Manual.is_by_hand());
        assert!(Source::Import.is_by_hand());
        assert!(!Source::Rule.is_by_hand());
        assert_eq!(Source::parse("import"), Some(Source::Import));
    }
}
