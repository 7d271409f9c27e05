//! The membership planner: from a customer's standing in a group, the rule's decision
//! and the time, the exact changes to make. Pure: the store reads the standing and
//! applies the changes; nothing here does I/O.
//!
//! What it honours:
//! - mode: `disabled` changes nothing, `add-only` never removes, `full-sync` removes
//!   members the rule no longer matches;
//! - `keep-manual`: in full-sync, memberships made by hand (or by import) stay;
//! - an undecided customer is left exactly as it is;
//! - a member removed by hand who still matches is added again (there is no active
//!   membership any more), unless an operator pinned an exclusion;
//! - exclusive sets: a customer is in at most one group of a set; the group with the
//!   lowest priority number wins, and joining it ends the membership in a lower one;
//! - validity windows: only memberships active at the as-of time count as membership;
//!   pending and expired ones are neither duplicated nor removed by a rule.

use std::borrow::Cow;
use std::sync::Arc;

use cohort_evaluator::Decision;
use cohort_model::{ExclusiveSet, Held, Mode, Source, Timestamp};
use serde::Serialize;

/// The rule's own words as literals, for text built at compile time, such as a store's
/// SQL, which restores what a stored membership leaves out: `rule_words!(matches)` is
/// [`RULE_MATCHES`], `rule_words!(actor_prefix)` begins every [`rule_actor`].
#[macro_export]
macro_rules! rule_words {
    (matches) => {
        "the rule matches"
    };
    (actor_prefix) => {
        "rule:"
    };
}

/// The reason a group's rule gives for a membership it adds.
pub const RULE_MATCHES: &str = rule_words!(matches);

/// Who acts for `group`'s rule: the actor of every change a run of it makes.
pub fn rule_actor(group: &str) -> String {
    format!("{}{group}", rule_words!(actor_prefix))
}

/// Whether `actor` is `group`'s rule.
pub fn is_rule_of(actor: &str, group: &str) -> bool {
    actor.strip_prefix(rule_words!(actor_prefix)) == Some(group)
}

/// The group's settings that planning needs.
#[derive(Clone, Copy, Debug)]
pub struct Policy<'a> {
    /// Shared by every change the run plans: a run of a million customers would
    /// otherwise allocate a copy of the id for each.
    pub group: &'a Arc<str>,
    pub mode: Mode,
    pub keep_manual: bool,
    pub exclusive: Option<&'a ExclusiveSet>,
}

/// An active membership of the same customer in another group of the exclusive set.
#[derive(Clone, Debug)]
pub struct Rival {
    pub membership: i64,
    pub group: Arc<str>,
    pub priority: u32,
}

/// What is known about one customer before planning.
#[derive(Clone, Copy, Debug)]
pub struct Standing<'a> {
    /// Shared by the customer's changes, as the group's id is.
    pub customer: &'a Arc<str>,
    /// The customer's memberships in this group (any state).
    pub memberships: &'a [Held],
    /// An operator pinned this customer out of the group: the rule never adds it.
    pub pinned_out: bool,
    /// Active memberships in other groups of this group's exclusive set.
    pub rivals: &'a [Rival],
}

/// One change to the memberships.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "change", rename_all = "kebab-case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Change {
    Add {
        #[cfg_attr(feature = "openapi", schema(value_type = String))]
        customer: Arc<str>,
        #[cfg_attr(feature = "openapi", schema(value_type = String))]
        group: Arc<str>,
        source: Source,
        /// Mostly the rule's own words, which need no copy per change.
        reason: Cow<'static, str>,
        #[serde(with = "cohort_model::rfc3339")]
        #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
        start: Timestamp,
        #[serde(with = "cohort_model::rfc3339::option")]
        #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
        end: Option<Timestamp>,
    },
    /// End an active membership at `at` (its window closes; the row stays as history).
    End {
        membership: i64,
        #[cfg_attr(feature = "openapi", schema(value_type = String))]
        customer: Arc<str>,
        #[cfg_attr(feature = "openapi", schema(value_type = String))]
        group: Arc<str>,
        #[serde(with = "cohort_model::rfc3339")]
        #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
        at: Timestamp,
        reason: Cow<'static, str>,
    },
}

/// The changes the rule's `decision` calls for in `standing` at `as_of`.
pub fn plan(
    policy: Policy<'_>,
    standing: Standing<'_>,
    decision: Decision,
    as_of: Timestamp,
) -> Vec<Change> {
    let mut changes = Vec::new();
    plan_into(policy, standing, decision, as_of, &mut changes);
    changes
}

/// [`plan`], appending to `changes`: a run plans for a million customers into one list.
pub fn plan_into(
    policy: Policy<'_>,
    standing: Standing<'_>,
    decision: Decision,
    as_of: Timestamp,
    changes: &mut Vec<Change>,
) {
    if policy.mode == Mode::Disabled || decision == Decision::Undecided {
        return;
    }
    let mut active = standing.memberships.iter().filter(|m| m.is_active(as_of));
    match decision {
        Decision::Member => {
            if standing.pinned_out || active.next().is_some() {
                return;
            }
            if let Some(set) = policy.exclusive {
                // A rival of higher or equal priority keeps the customer: the set's
                // order decides, and a tie does not move anyone back and forth.
                if standing.rivals.iter().any(|r| r.priority <= set.priority) {
                    return;
                }
                for rival in standing.rivals {
                    changes.push(Change::End {
                        membership: rival.membership,
                        customer: standing.customer.clone(),
                        group: rival.group.clone(),
                        at: as_of,
                        reason: format!(
                            "moved to group `{}`, which comes first in exclusive set `{}`",
                            policy.group, set.set
                        )
                        .into(),
                    });
                }
            }
            changes.push(Change::Add {
                customer: standing.customer.clone(),
                group: policy.group.clone(),
                source: Source::Rule,
                reason: RULE_MATCHES.into(),
                start: as_of,
                end: None,
            });
        }
        Decision::NotMember if policy.mode == Mode::FullSync => {
            changes.extend(
                active
                    .filter(|m| !(policy.keep_manual && m.source.is_by_hand()))
                    .map(|m| Change::End {
                        membership: m.id,
                        customer: standing.customer.clone(),
                        group: policy.group.clone(),
                        at: as_of,
                        reason: "the rule no longer matches".into(),
                    }),
            );
        }
        Decision::NotMember | Decision::Undecided => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NOW: Timestamp = 1_000;
    static G: std::sync::LazyLock<Arc<str>> = std::sync::LazyLock::new(|| "g".into());
    static C: std::sync::LazyLock<Arc<str>> = std::sync::LazyLock::new(|| "c".into());

    fn membership(id: i64, source: Source, start: i64, end: Option<i64>) -> Held {
        Held {
            id,
            source,
            start,
            end,
        }
    }

    fn policy(mode: Mode, keep_manual: bool) -> Policy<'static> {
        Policy {
            group: &G,
            mode,
            keep_manual,
            exclusive: None,
        }
    }

    fn standing(memberships: &[Held]) -> Standing<'_> {
        Standing {
            customer: &C,
            memberships,
            pinned_out: false,
            rivals: &[],
        }
    }

    fn kinds(changes: &[Change]) -> Vec<&'static str> {
        changes
            .iter()
            .map(|c| match c {
                Change::Add { .. } => "add",
                Change::End { .. } => "end",
            })
            .collect()
    }

    #[test]
    fn disabled_changes_nothing() {
        let m = [membership(1, Source::Rule, 0, None)];
        for d in [Decision::Member, Decision::NotMember] {
            assert!(plan(policy(Mode::Disabled, false), standing(&[]), d, NOW).is_empty());
            assert!(plan(policy(Mode::Disabled, false), standing(&m), d, NOW).is_empty());
        }
    }

    #[test]
    fn add_only_adds_and_never_removes() {
        let p = policy(Mode::AddOnly, false);
        assert_eq!(
            kinds(&plan(p, standing(&[]), Decision::Member, NOW)),
            ["add"]
        );
        let m = [membership(1, Source::Rule, 0, None)];
        assert!(plan(p, standing(&m), Decision::NotMember, NOW).is_empty());
        assert!(
            plan(p, standing(&m), Decision::Member, NOW).is_empty(),
            "already in"
        );
    }

    #[test]
    fn full_sync_removes_non_matching_members_but_keep_manual_keeps_hand_made_ones() {
        let m = [
            membership(1, Source::Manual, 0, None),
            membership(2, Source::Rule, 0, None),
        ];
        let ended = |p| -> Vec<i64> {
            plan(p, standing(&m), Decision::NotMember, NOW)
                .iter()
                .filter_map(|c| match c {
                    Change::End { membership, .. } => Some(*membership),
                    Change::Add { .. } => None,
                })
                .collect()
        };
        assert_eq!(ended(policy(Mode::FullSync, false)), [1, 2]);
        assert_eq!(ended(policy(Mode::FullSync, true)), [2]);
    }

    #[test]
    fn undecided_changes_nothing_in_any_mode() {
        let m = [membership(1, Source::Rule, 0, None)];
        for mode in [Mode::AddOnly, Mode::FullSync] {
            assert!(plan(policy(mode, false), standing(&m), Decision::Undecided, NOW).is_empty());
            assert!(plan(policy(mode, false), standing(&[]), Decision::Undecided, NOW).is_empty());
        }
    }

    #[test]
    fn a_member_removed_by_hand_is_added_again_unless_pinned_out() {
        // Removal by hand ended the membership before now.
        let m = [membership(1, Source::Rule, 0, Some(NOW - 1))];
        let p = policy(Mode::AddOnly, false);
        assert_eq!(
            kinds(&plan(p, standing(&m), Decision::Member, NOW)),
            ["add"]
        );
        let pinned = Standing {
            pinned_out: true,
            ..standing(&m)
        };
        assert!(plan(p, pinned, Decision::Member, NOW).is_empty());
    }

    #[test]
    fn pending_and_expired_memberships_are_not_membership_now() {
        let pending = [membership(1, Source::Import, NOW + 10, None)];
        let p = policy(Mode::FullSync, false);
        assert_eq!(
            kinds(&plan(p, standing(&pending), Decision::Member, NOW)),
            ["add"]
        );
        assert!(
            plan(p, standing(&pending), Decision::NotMember, NOW).is_empty(),
            "a pending membership is not removed by the rule"
        );
        let expired = [membership(1, Source::Rule, 0, Some(NOW))];
        assert_eq!(
            kinds(&plan(p, standing(&expired), Decision::Member, NOW)),
            ["add"]
        );
    }

    #[test]
    fn exclusive_sets_follow_priority() {
        let set = ExclusiveSet {
            set: "tier".into(),
            priority: 2,
        };
        let p = Policy {
            exclusive: Some(&set),
            ..policy(Mode::AddOnly, false)
        };
        let lower = [Rival {
            membership: 7,
            group: "bronze".into(),
            priority: 3,
        }];
        let changes = plan(
            p,
            Standing {
                rivals: &lower,
                ..standing(&[])
            },
            Decision::Member,
            NOW,
        );
        assert_eq!(kinds(&changes), ["end", "add"]);
        assert!(
            matches!(&changes[0], Change::End { membership: 7, group, .. } if &**group == "bronze")
        );
        let higher = [Rival {
            membership: 8,
            group: "gold".into(),
            priority: 1,
        }];
        let kept = plan(
            p,
            Standing {
                rivals: &higher,
                ..standing(&[])
            },
            Decision::Member,
            NOW,
        );
        assert!(
            kept.is_empty(),
            "the customer stays in the higher-priority group"
        );
    }

    /// Apply changes to a customer's memberships in group `g`, as a store would.
    fn apply(memberships: &mut Vec<Held>, changes: &[Change]) {
        for change in changes {
            match change {
                Change::Add {
                    start, end, source, ..
                } => {
                    let id = memberships.len() as i64 + 100;
                    memberships.push(membership(id, *source, *start, *end));
                }
                Change::End { membership, at, .. } => {
                    if let Some(m) = memberships.iter_mut().find(|m| m.id == *membership) {
                        m.end = Some(*at);
                    }
                }
            }
        }
    }

    /// Up to four memberships with distinct ids, in any state around `NOW`.
    fn arb_memberships() -> impl Strategy<Value = Vec<Held>> {
        let one = (
            prop_oneof![
                Just(Source::Manual),
                Just(Source::Rule),
                Just(Source::Import)
            ],
            0i64..2000,
            prop::option::of(0i64..2000),
        );
        prop::collection::vec(one, 0..5).prop_map(|ms| {
            ms.into_iter()
                .enumerate()
                .map(|(id, (source, start, len))| {
                    membership(id as i64, source, start, len.map(|l| start + 1 + l))
                })
                .collect()
        })
    }

    fn arb_mode() -> impl Strategy<Value = Mode> {
        prop_oneof![
            Just(Mode::Disabled),
            Just(Mode::AddOnly),
            Just(Mode::FullSync)
        ]
    }

    fn arb_decision() -> impl Strategy<Value = Decision> {
        prop_oneof![
            Just(Decision::Member),
            Just(Decision::NotMember),
            Just(Decision::Undecided)
        ]
    }

    proptest! {
        #[test]
        fn a_second_run_changes_nothing(
            mut ms in arb_memberships(),
            mode in arb_mode(), keep_manual: bool, pinned_out: bool, decision in arb_decision(),
        ) {
            let p = policy(mode, keep_manual);
            let first = plan(p, Standing { pinned_out, ..standing(&ms) }, decision, NOW);
            apply(&mut ms, &first);
            let second = plan(p, Standing { pinned_out, ..standing(&ms) }, decision, NOW);
            prop_assert!(second.is_empty(), "{:?}", second);
        }

        #[test]
        fn add_only_never_removes(
            ms in arb_memberships(), decision in arb_decision(),
        ) {
            let changes = plan(policy(Mode::AddOnly, false), standing(&ms), decision, NOW);
            let only_adds = changes.iter().all(|c| matches!(c, Change::Add { .. }));
            prop_assert!(only_adds, "{:?}", changes);
        }

        #[test]
        fn keep_manual_never_removes_a_hand_made_membership(
            ms in arb_memberships(), decision in arb_decision(),
        ) {
            let changes = plan(policy(Mode::FullSync, true), standing(&ms), decision, NOW);
            for c in changes {
                if let Change::End { membership, .. } = c {
                    let ended = ms.iter().find(|m| m.id == membership).expect("ends a known one");
                    prop_assert!(!ended.source.is_by_hand());
                }
            }
        }

        #[test]
        fn an_undecided_customer_is_never_touched(
            ms in arb_memberships(), mode in arb_mode(), keep_manual: bool,
        ) {
            prop_assert!(plan(policy(mode, keep_manual), standing(&ms), Decision::Undecided, NOW).is_empty());
        }

        #[test]
        fn after_a_run_membership_agrees_with_the_decision(
            mut ms in arb_memberships(), decision in arb_decision(),
        ) {
            let p = policy(Mode::FullSync, false);
            let changes = plan(p, standing(&ms), decision, NOW);
            apply(&mut ms, &changes);
            let member = ms.iter().any(|m| m.is_active(NOW));
            match decision {
                Decision::Member => prop_assert!(member),
                Decision::NotMember => prop_assert!(!member),
                Decision::Undecided => {}
            }
        }
    }
}
