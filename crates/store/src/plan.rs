//! How a backend plans the rows of a batch of membership changes, whatever it writes
//! them with: what each change is called in the audit history and the change feed,
//! what a membership stores of its actor and reason, which memberships are alike
//! enough to be written with their shared values once, which additions fold into one
//! audit row, and what state a new window is announced in.

use std::borrow::Cow;

use cohort_model::{Membership, Source, State, Timestamp};
use cohort_planner::{Change, RULE_MATCHES, is_rule_of};

/// What happened to a membership, as the audit history and the change feed name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Action {
    Added,
    Removed,
    Updated,
    /// Announced by the clock: a pending window opened.
    Activated,
    /// Announced by the clock: a window closed.
    Expired,
    /// A customer's facts were deleted (the entry of no membership).
    Erased,
}

impl Action {
    /// The audit history's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Added => "added",
            Action::Removed => "removed",
            Action::Updated => "updated",
            Action::Activated => "activated",
            Action::Expired => "expired",
            Action::Erased => "erased",
        }
    }

    /// The change feed's name: `membership.` and the audit history's name, which is how
    /// the feed names an event that points at its audit entry; an erasure is the
    /// customer's.
    pub fn event(self) -> &'static str {
        match self {
            Action::Added => "membership.added",
            Action::Removed => "membership.removed",
            Action::Updated => "membership.updated",
            Action::Activated => "membership.activated",
            Action::Expired => "membership.expired",
            Action::Erased => "customer.erased",
        }
    }
}

/// A membership change as the audit history and the change feed see it.
pub struct Event<'a> {
    /// `Added`, `Removed` or `Updated`.
    pub kind: Action,
    pub customer: Cow<'a, str>,
    pub group: Cow<'a, str>,
    pub membership: i64,
    pub source: Option<Source>,
    pub reason: Cow<'a, str>,
}

/// A membership to insert.
pub struct NewMembership<'a> {
    pub customer: Cow<'a, str>,
    pub group: Cow<'a, str>,
    pub source: Source,
    pub reason: Cow<'a, str>,
    pub start: Timestamp,
    pub end: Option<Timestamp>,
    /// The state announced with it (see [`announced`]).
    pub announced: &'static str,
}

impl NewMembership<'_> {
    /// The actor to store, given its cause's: nothing for its group's own rule, which a
    /// reader restores (a run adds millions of memberships whose actor is the rule).
    pub fn stored_actor<'s>(&'s self, actor: &'s str) -> Option<&'s str> {
        (!is_rule_of(actor, &self.group)).then_some(actor)
    }

    /// The reason to store: nothing for the rule's own words ([`RULE_MATCHES`]).
    pub fn stored_reason(&self) -> Option<&str> {
        (self.reason != RULE_MATCHES).then_some(&self.reason)
    }

    /// Whether the two differ in their customer at most.
    pub fn same_but_customer(&self, other: &Self) -> bool {
        self.group == other.group
            && self.source == other.source
            && self.reason == other.reason
            && self.start == other.start
            && self.end == other.end
            && self.announced == other.announced
    }
}

/// How many memberships from the first on differ in their id and customer only.
pub fn alike(rows: &[(i64, NewMembership<'_>)]) -> usize {
    let Some((_, first)) = rows.first() else {
        return 0;
    };
    rows.iter()
        .take_while(|(_, m)| m.same_but_customer(first))
        .count()
}

/// One audit row standing for the entries of memberships added together: the last
/// entry's id, the last membership's id, and how many; entry `last_entry - k` is that
/// of membership `last_membership - k`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stretch {
    pub last_entry: i64,
    pub last_membership: i64,
    pub count: i64,
}

/// The additions `(entry id, membership id)`, in order, as stretches whose entry ids and
/// membership ids both run on by one.
pub fn stretches(added: &[(i64, i64)]) -> impl Iterator<Item = Stretch> + '_ {
    let mut rest = added;
    std::iter::from_fn(move || {
        let &(entry, membership) = rest.first()?;
        let n = rest
            .iter()
            .zip(0..)
            .take_while(|&(&(e, m), i)| e == entry + i && m == membership + i)
            .count();
        rest = &rest[n..];
        let last = n as i64 - 1;
        Some(Stretch {
            last_entry: entry + last,
            last_membership: membership + last,
            count: n as i64,
        })
    })
}

/// The state to announce for a membership written at `at`: a window starting later is
/// announced again when it becomes active.
pub fn announced(start: Timestamp, end: Option<Timestamp>, at: Timestamp) -> &'static str {
    if end.is_some_and(|e| e <= at) {
        "expired"
    } else if start > at {
        "pending"
    } else {
        "active"
    }
}

/// What an erased customer's earlier reasons are replaced with: a reason typed about a
/// customer may say more about them than their id does.
pub const ERASED_REASON: &str = "(erased with the customer)";

/// The changes that end, at `at`, each of an erased customer's memberships that has
/// not ended by then; a pending one ends before it starts (its window becomes empty).
pub fn erasure_ends(memberships: &[Membership], at: Timestamp, reason: &str) -> Vec<Change> {
    memberships
        .iter()
        .filter(|m| m.state(at) != State::Expired)
        .map(|m| Change::End {
            membership: m.id,
            customer: m.customer.as_str().into(),
            group: m.group.as_str().into(),
            at: at.max(m.start),
            reason: reason.to_string().into(),
        })
        .collect()
}

/// Who announces a window that opens or closes by the clock (with `Trigger::Clock`).
pub const CLOCK_ACTOR: &str = "cohort";

/// Why the clock announced an event of kind `kind`.
pub fn clock_reason(kind: &str) -> &'static str {
    if kind == Action::Activated.event() {
        "the membership's window opened"
    } else {
        "the membership's window closed"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_feed_names_an_action_after_its_audit_name() {
        for action in [
            Action::Added,
            Action::Removed,
            Action::Updated,
            Action::Activated,
            Action::Expired,
        ] {
            assert_eq!(action.event(), format!("membership.{}", action.as_str()));
        }
    }

    #[test]
    fn additions_fold_while_both_numberings_run_on() {
        let added = [(2, 10), (3, 11), (4, 13), (6, 14), (7, 15)];
        let folded: Vec<Stretch> = stretches(&added).collect();
        assert_eq!(
            folded,
            [
                Stretch {
                    last_entry: 3,
                    last_membership: 11,
                    count: 2
                },
                Stretch {
                    last_entry: 4,
                    last_membership: 13,
                    count: 1
                },
                Stretch {
                    last_entry: 7,
                    last_membership: 15,
                    count: 2
                },
            ]
        );
    }

    #[test]
    fn a_window_is_announced_in_its_state_when_written() {
        assert_eq!(announced(10, None, 5), "pending");
        assert_eq!(announced(10, Some(20), 10), "active");
        assert_eq!(announced(10, Some(20), 20), "expired");
    }
}
