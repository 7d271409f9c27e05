//! Decides, per customer, whether a group's rule holds, from the verdicts its
//! conditions' plugins gave. Pure: no I/O, no wasm; the verdicts come in as data.
//!
//! A rule is clauses joined by AND; a clause is conditions joined by OR; a condition
//! may be negated. The error policy is explicit and strict: if any condition of the
//! rule could not decide for a customer, the rule gives [`Decision::Undecided`] for
//! that customer, and whoever acts on it must leave the membership as it is. A failure
//! is never turned into "not a member", nor into "member".

use std::fmt;

use cohort_model::{Group, VerdictRef, Verdicts};
use serde::Serialize;

/// What the rule says about one customer.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Decision {
    Member,
    NotMember,
    /// Some condition could not decide: change nothing.
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
                        (next - 1, c.negate)
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
        let mut all_hold = true;
        for clause in &self.clauses {
            let mut any_holds = false;
            for &(slot, negate) in clause {
                match verdicts[slot].get(i).expect("a verdict per customer") {
                    VerdictRef::Error(_) => return Decision::Undecided,
                    VerdictRef::Match => any_holds |= !negate,
                    VerdictRef::NoMatch => any_holds |= negate,
                }
            }
            all_hold &= any_holds;
        }
        // Every condition was looked at before deciding, so an error anywhere wins
        // over a clause that fails: the policy is "any error, no decision".
        if all_hold {
            Decision::Member
        } else {
            Decision::NotMember
        }
    }
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
    /// `None` when a condition of the clause could not decide.
    pub holds: Option<bool>,
    pub conditions: Vec<ConditionExplanation>,
}

#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConditionExplanation {
    pub plugin: String,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub config: serde_json::Value,
    pub negate: bool,
    /// The plugin's verdict before negation: `match`, `no-match` or the error.
    pub verdict: String,
    /// After negation; `None` for an error.
    pub holds: Option<bool>,
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
                    let v = verdicts[slot].get(i).expect("a verdict per customer");
                    slot += 1;
                    let (verdict, holds) = match v {
                        VerdictRef::Match => ("match".to_string(), Some(!c.negate)),
                        VerdictRef::NoMatch => ("no-match".to_string(), Some(c.negate)),
                        VerdictRef::Error(e) => (format!("error: {e}"), None),
                    };
                    ConditionExplanation {
                        plugin: c.plugin.clone(),
                        config: c.config.clone(),
                        negate: c.negate,
                        verdict,
                        holds,
                    }
                })
                .collect();
            let holds = if conditions.iter().any(|c| c.holds.is_none()) {
                None
            } else {
                Some(conditions.iter().any(|c| c.holds == Some(true)))
            };
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
                None => "undecided: a condition could not decide",
            };
            writeln!(f, "clause {} (any of): {outcome}", i + 1)?;
            for c in &clause.conditions {
                let mark = match c.holds {
                    Some(true) => "yes",
                    Some(false) => "no ",
                    None => "?  ",
                };
                writeln!(
                    f,
                    "  {mark} {}{} {} -> {}",
                    if c.negate { "not " } else { "" },
                    c.plugin,
                    c.config,
                    c.verdict
                )?;
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
            Decision::Undecided => {
                "undecided: a condition could not decide, so the membership is left as it is"
                    .to_string()
            }
        };
        write!(f, "=> {verdict}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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
    fn any_error_means_no_decision_even_beside_a_failing_clause() {
        let g = group(&[&[false], &[false]]);
        let c = Compiled::new(&g);
        assert_eq!(
            c.decide(&[column(N), column(E("db"))], 0),
            Decision::Undecided
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

    proptest! {
        /// The decision is the boolean formula when nothing errs, and Undecided as soon
        /// as anything errs: a failure never becomes a "no" (or a "yes").
        #[test]
        fn decisions_follow_the_formula_and_the_error_policy(
            shape in prop::collection::vec(prop::collection::vec(any::<bool>(), 1..4), 1..4),
            seed in prop::collection::vec(verdict(), 16),
        ) {
            let shape_refs: Vec<&[bool]> = shape.iter().map(Vec::as_slice).collect();
            let g = group(&shape_refs);
            let c = Compiled::new(&g);
            let flat: Vec<(bool, u8)> = shape.iter().flatten().zip(seed.iter().cycle())
                .map(|(n, v)| (*n, *v)).collect();
            let columns: Vec<Verdicts> = flat.iter().map(|(_, v)| column(match v {
                0 => N, 1 => M, _ => E("boom"),
            })).collect();
            let decision = c.decide(&columns, 0);
            if flat.iter().any(|(_, v)| *v == 2) {
                prop_assert_eq!(decision, Decision::Undecided);
            } else {
                let mut k = 0;
                let holds = shape.iter().all(|clause| {
                    let r = clause.iter().enumerate().any(|(j, negate)| (flat[k + j].1 == 1) != *negate);
                    k += clause.len();
                    r
                });
                prop_assert_eq!(decision, if holds { Decision::Member } else { Decision::NotMember });
            }
        }
    }
}
