//! Decides, per customer, whether a group's rule holds, from the verdicts its
//! conditions' plugins gave. Pure: no I/O, no wasm; the verdicts come in as data.
//!
//! A rule is clauses joined by AND; a clause is conditions joined by OR; a condition
//! may be negated. A condition that could not decide is *unknown*, and the rule is
//! decided in three-valued (Kleene) logic: a clause holds if any of its conditions
//! holds, whatever the others did; the rule fails if any clause fails. Only when the
//! outcome depends on an unknown condition is the customer [`Decision::Undecided`],
//! and whoever acts on that must leave the membership as it is. So nothing is decided
//! that depends on a failure: a failure is never turned into "not a member", nor into
//! "member".

use std::fmt;

use cohort_model::{Condition, FOREVER, Group, VerdictRef, Verdicts};
use serde::Serialize;

/// What the rule says about one customer.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Decision {
    Member,
    NotMember,
    /// The outcome depends on a condition that could not decide: change nothing.
    Undecided,
}

/// A rule reduced to what deciding needs: for each clause, the positions of its
/// conditions in the flat list of verdict columns and whether each is negated.
#[derive(Clone, Debug)]
pub struct Compiled {
    clauses: Vec<Vec<(usize, bool)>>,
    conditions: usize,
}

impl Compiled {
    /// Conditions are numbered in rule order, clause by clause, as
    /// [`Group::conditions`] yields them; verdict columns must come in that order.
    pub fn new(group: &Group) -> Self {
        let mut next = 0;
        let clauses = group
            .rule
            .all
            .iter()
            .map(|clause| {
                clause
                    .any
                    .iter()
                    .map(|c| {
                        next += 1;
                        (next - 1, c.negate())
                    })
                    .collect()
            })
            .collect();
        Compiled {
            clauses,
            conditions: next,
        }
    }

    /// The decision for customer `i`, given one verdict column per condition.
    ///
    /// # Panics
    /// When `verdicts` does not have one column per condition, or a column is shorter
    /// than `i + 1`: the caller built the columns from this rule.
    pub fn decide(&self, verdicts: &[Verdicts], i: usize) -> Decision {
        assert_eq!(verdicts.len(), self.conditions, "one column per condition");
        let mut rule = Some(true);
        for clause in &self.clauses {
            // The host hands back a verdict for every customer of a batch or fails the
            // whole batch (`cohort-host`'s contract glue checks the count).
            let holds = kleene_any(clause.iter().map(|&(slot, negate)| {
                holds(
                    verdicts[slot].get(i).expect("a verdict per customer"),
                    negate,
                )
            }));
            match holds {
                // One failing clause decides the rule, whatever the others say.
                Some(false) => return Decision::NotMember,
                None => rule = None,
                Some(true) => {}
            }
        }
        match rule {
            Some(true) => Decision::Member,
            _ => Decision::Undecided,
        }
    }
}

/// Whether a condition holds after negation; `None` when its plugin could not decide.
fn holds(verdict: VerdictRef<'_>, negate: bool) -> Option<bool> {
    match verdict {
        VerdictRef::Match => Some(!negate),
        VerdictRef::NoMatch => Some(negate),
        VerdictRef::Error(_) => None,
    }
}

/// Kleene's OR: true if any is true, else unknown if any is unknown, else false.
fn kleene_any(values: impl Iterator<Item = Option<bool>>) -> Option<bool> {
    let mut any = Some(false);
    for v in values {
        match v {
            Some(true) => return Some(true),
            None => any = None,
            Some(false) => {}
        }
    }
    any
}

/// Why a customer is or is not a member: every condition's verdict and every clause's
/// outcome.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Explanation {
    pub decision: Decision,
    pub clauses: Vec<ClauseExplanation>,
}

#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClauseExplanation {
    /// `None` when none of its conditions holds and one of them could not decide.
    pub holds: Option<bool>,
    pub conditions: Vec<ConditionExplanation>,
}

#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConditionExplanation {
    /// The condition as the rule has it: a plugin and its configuration, or a group.
    /// Nested rather than flattened: a plugin condition's schema admits no other
    /// fields, and the verdict's would break it.
    pub condition: Condition,
    /// The verdict before negation: `match`, `no-match` or the plugin's error.
    pub verdict: String,
    /// After negation; `None` for an error.
    pub holds: Option<bool>,
    /// The facts behind the verdict: the plugin's own sentence, or the customer's
    /// membership of the group. `None` from a plugin that cannot explain (built
    /// against a contract before 0.3.0) or was not asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub because: Option<String>,
    /// Until when the verdict holds if the customer's facts do not change; `None` for
    /// always.
    #[serde(
        skip_serializing_if = "Option::is_none",
        with = "cohort_model::rfc3339::option"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub until: Option<cohort_model::Timestamp>,
}

/// Explain the decision for customer `i`.
pub fn explain(group: &Group, verdicts: &[Verdicts], i: usize) -> Explanation {
    let compiled = Compiled::new(group);
    let decision = compiled.decide(verdicts, i);
    let mut slot = 0;
    let clauses = group
        .rule
        .all
        .iter()
        .map(|clause| {
            let conditions: Vec<ConditionExplanation> = clause
                .any
                .iter()
                .map(|c| {
                    // As in `decide`: the host's glue gives every customer a verdict.
                    let v = verdicts[slot].get(i).expect("a verdict per customer");
                    let until = Some(verdicts[slot].until(i)).filter(|&t| t != FOREVER);
                    slot += 1;
                    let verdict = match v {
                        VerdictRef::Match => "match".to_string(),
                        VerdictRef::NoMatch => "no-match".to_string(),
                        VerdictRef::Error(e) => format!("error: {e}"),
                    };
                    ConditionExplanation {
                        condition: c.clone(),
                        verdict,
                        holds: holds(v, c.negate()),
                        because: None,
                        until,
                    }
                })
                .collect();
            let holds = kleene_any(conditions.iter().map(|c| c.holds));
            ClauseExplanation { holds, conditions }
        })
        .collect();
    Explanation { decision, clauses }
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, clause) in self.clauses.iter().enumerate() {
            let outcome = match clause.holds {
                Some(true) => "holds",
                Some(false) => "fails: none of its conditions holds",
                None => "undecided: no condition holds and one could not decide",
            };
            writeln!(f, "clause {} (any of): {outcome}", i + 1)?;
            for c in &clause.conditions {
                let mark = match c.holds {
                    Some(true) => "yes",
                    Some(false) => "no ",
                    None => "?  ",
                };
                // The rule's own words: "is not auth-method {...}: holds".
                let holds = match c.holds {
                    Some(true) => "holds",
                    Some(false) => "does not hold",
                    None => "undecided",
                };
                let not = if c.condition.negate() { "not " } else { "" };
                match &c.condition {
                    Condition::Plugin(p) => writeln!(
                        f,
                        "  {mark} is {not}{} {}: {holds} (the plugin answers {})",
                        p.plugin, p.config, c.verdict
                    )?,
                    Condition::Group(g) => writeln!(
                        f,
                        "  {mark} is {not}a member of group `{}`: {holds}",
                        g.group
                    )?,
                }
                if let Some(because) = &c.because {
                    writeln!(f, "        because {because}")?;
                }
                if let Some(until) = c.until {
                    writeln!(
                        f,
                        "        until {} if the customer's facts do not change",
                        cohort_model::rfc3339::format(until)
                    )?;
                }
            }
        }
        let verdict = match self.decision {
            Decision::Member => "member: every clause holds".to_string(),
            Decision::NotMember => {
                let failed: Vec<String> = self
                    .clauses
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| c.holds == Some(false))
                    .map(|(i, _)| (i + 1).to_string())
                    .collect();
                format!("not a member: clause {} fails", failed.join(", "))
            }
            Decision::Undecided => "undecided: the outcome depends on a condition that could \
                 not decide, so the membership is left as it is"
                .to_string(),
        };
        write!(f, "=> {verdict}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;

    fn group(clauses: &[&[bool]]) -> Group {
        let all: Vec<serde_json::Value> = clauses
            .iter()
            .map(|negates| {
                let any: Vec<serde_json::Value> = negates
                    .iter()
                    .map(|n| serde_json::json!({"plugin":"p","negate":n}))
                    .collect();
                serde_json::json!({ "any": any })
            })
            .collect();
        serde_json::from_value(serde_json::json!({"id":"g","name":"G","rule":{"all":all}}))
            .expect("test group")
    }

    fn column(v: VerdictRef<'_>) -> Verdicts {
        let mut c = Verdicts::default();
        c.push(v);
        c
    }

    use VerdictRef::{Error as E, Match as M, NoMatch as N};

    #[test]
    fn or_inside_a_clause_and_across_clauses() {
        let g = group(&[&[false, false], &[false]]);
        let c = Compiled::new(&g);
        let decide = |a, b, d| c.decide(&[column(a), column(b), column(d)], 0);
        assert_eq!(decide(M, N, M), Decision::Member);
        assert_eq!(decide(N, M, M), Decision::Member);
        assert_eq!(decide(N, N, M), Decision::NotMember);
        assert_eq!(decide(M, M, N), Decision::NotMember);
    }

    #[test]
    fn negation_flips_a_verdict_but_not_an_error() {
        let g = group(&[&[true]]);
        let c = Compiled::new(&g);
        assert_eq!(c.decide(&[column(N)], 0), Decision::Member);
        assert_eq!(c.decide(&[column(M)], 0), Decision::NotMember);
        assert_eq!(c.decide(&[column(E("x"))], 0), Decision::Undecided);
    }

    #[test]
    fn an_error_decides_nothing_the_other_conditions_already_decide() {
        // `country is DE` OR a failing plugin: a match elsewhere in the clause holds it.
        let c = Compiled::new(&group(&[&[false, false]]));
        assert_eq!(c.decide(&[column(M), column(E("db"))], 0), Decision::Member);
        assert_eq!(c.decide(&[column(E("db")), column(M)], 0), Decision::Member);
        // Nothing else holds: the outcome hangs on the failure.
        assert_eq!(
            c.decide(&[column(N), column(E("db"))], 0),
            Decision::Undecided
        );

        // A clause that fails fails the rule, whatever a failure elsewhere would say.
        let c = Compiled::new(&group(&[&[false], &[false]]));
        assert_eq!(
            c.decide(&[column(N), column(E("db"))], 0),
            Decision::NotMember
        );
        assert_eq!(
            c.decide(&[column(E("db")), column(N)], 0),
            Decision::NotMember
        );
        assert_eq!(
            c.decide(&[column(M), column(E("db"))], 0),
            Decision::Undecided
        );
    }

    #[test]
    fn explanation_names_the_failing_clause() {
        let g = group(&[&[false, true], &[false]]);
        let e = explain(&g, &[column(M), column(M), column(N)], 0);
        assert_eq!(e.decision, Decision::NotMember);
        assert_eq!(e.clauses[0].holds, Some(true));
        assert_eq!(e.clauses[1].holds, Some(false));
        let text = e.to_string();
        assert!(text.contains("clause 2 (any of): fails"), "{text}");
        assert!(text.ends_with("=> not a member: clause 2 fails"), "{text}");
        let e = explain(&g, &[column(E("trap")), column(M), column(M)], 0);
        assert!(e.to_string().contains("error: trap"));
        assert_eq!(e.clauses[0].holds, None);
    }

    fn verdict() -> impl Strategy<Value = u8> {
        0u8..3
    }

    /// The rule's formula under one assignment of truth to its conditions (before
    /// negation), in rule order.
    fn formula(shape: &[Vec<bool>], matches: &[bool]) -> bool {
        let mut k = 0;
        shape.iter().all(|clause| {
            let holds = clause
                .iter()
                .enumerate()
                .any(|(j, negate)| matches[k + j] != *negate);
            k += clause.len();
            holds
        })
    }

    proptest! {
        /// The rule decides exactly what every possible outcome of the failed conditions
        /// agrees on, and is undecided when they disagree: nothing is decided that
        /// depends on a failure, and a failure that changes nothing costs no decision.
        #[test]
        fn decisions_are_what_every_outcome_of_the_failures_agrees_on(
            shape in prop::collection::vec(prop::collection::vec(any::<bool>(), 1..4), 1..4),
            seed in prop::collection::vec(verdict(), 16),
        ) {
            let shape_refs: Vec<&[bool]> = shape.iter().map(Vec::as_slice).collect();
            let g = group(&shape_refs);
            let c = Compiled::new(&g);
            let codes: Vec<u8> = seed.iter().cycle().take(shape.iter().flatten().count()).copied().collect();
            let columns: Vec<Verdicts> = codes.iter().map(|v| column(match v {
                0 => N, 1 => M, _ => E("boom"),
            })).collect();
            let failed: Vec<usize> = (0..codes.len()).filter(|&k| codes[k] == 2).collect();
            let outcomes: HashSet<bool> = (0..1u32 << failed.len())
                .map(|bits| {
                    let mut matches: Vec<bool> = codes.iter().map(|&v| v == 1).collect();
                    for (b, &k) in failed.iter().enumerate() {
                        matches[k] = bits & (1 << b) != 0;
                    }
                    formula(&shape, &matches)
                })
                .collect();
            let expected = match (outcomes.contains(&true), outcomes.contains(&false)) {
                (true, false) => Decision::Member,
                (false, true) => Decision::NotMember,
                _ => Decision::Undecided,
            };
            prop_assert_eq!(c.decide(&columns, 0), expected);
            prop_assert_eq!(explain(&g, &columns, 0).decision, expected);
        }
    }
}
