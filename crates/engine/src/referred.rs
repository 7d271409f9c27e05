//! Groups as conditions: "is (not) a member of group X", answered from X's
//! memberships at the evaluation time.
//!
//! A run reads each referred group's memberships once, as a set of customer
//! positions. Those sets are what a group condition's verdicts depend on, beside
//! nothing of the customer's facts: a rescan compares them with the sets its group's
//! last decisions were made with, and evaluates again the customers whose membership
//! differs (see `decided.rs`). Runs of several groups order a referred group before
//! the groups that refer to it (`order.rs`); saving a rule that would make a cycle is
//! refused (`Engine::check_references`).

use std::collections::HashMap;

use cohort_model::{Condition, Group, InvalidGroup, Timestamp, VerdictRef, Verdicts};

use crate::facts::Facts;
use crate::holdings::Holdings;
use crate::{Engine, Result};

/// The members of a group at one time, as a bit per customer position.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Members {
    bits: Vec<u64>,
}

impl Members {
    /// The positions of `holdings` with a membership active at `as_of`.
    pub(crate) fn active(holdings: &Holdings, as_of: Timestamp) -> Self {
        Members::of(
            holdings
                .iter()
                .filter(|(_, held)| held.is_active(as_of))
                .map(|(at, _)| at),
        )
    }

    /// The given positions.
    pub(crate) fn of(positions: impl IntoIterator<Item = usize>) -> Self {
        let mut members = Members::default();
        for at in positions {
            let word = at / 64;
            if members.bits.len() <= word {
                members.bits.resize(word + 1, 0);
            }
            members.bits[word] |= 1 << (at % 64);
        }
        members
    }

    /// Every position held, in order.
    pub(crate) fn positions(&self) -> impl Iterator<Item = usize> + '_ {
        self.bits.iter().enumerate().flat_map(|(w, &word)| {
            let mut rest = word;
            std::iter::from_fn(move || {
                (rest != 0).then(|| {
                    let bit = rest.trailing_zeros() as usize;
                    rest &= rest - 1;
                    w * 64 + bit
                })
            })
        })
    }

    pub(crate) fn contains(&self, at: usize) -> bool {
        self.bits
            .get(at / 64)
            .is_some_and(|w| w & (1 << (at % 64)) != 0)
    }

    /// Mark in `changed` every position whose membership differs between `self` and
    /// `other`.
    pub(crate) fn mark_differences(&self, other: &Members, changed: &mut Members) {
        let n = self.bits.len().max(other.bits.len());
        if changed.bits.len() < n {
            changed.bits.resize(n, 0);
        }
        for (w, out) in changed.bits.iter_mut().enumerate().take(n) {
            let a = self.bits.get(w).copied().unwrap_or(0);
            let b = other.bits.get(w).copied().unwrap_or(0);
            *out |= a ^ b;
        }
    }

    /// The verdicts of "is a member" for the customers at `positions`.
    pub(crate) fn column(&self, positions: impl ExactSizeIterator<Item = usize>) -> Verdicts {
        let mut verdicts = Verdicts::with_capacity(positions.len());
        for at in positions {
            verdicts.push(verdict(self.contains(at)));
        }
        verdicts
    }
}

fn verdict(member: bool) -> VerdictRef<'static> {
    if member {
        VerdictRef::Match
    } else {
        VerdictRef::NoMatch
    }
}

/// The verdict column of one customer.
pub(crate) fn one(member: bool) -> Verdicts {
    let mut verdicts = Verdicts::with_capacity(1);
    verdicts.push(verdict(member));
    verdicts
}

/// The members of each group a rule refers to, by group id.
pub(crate) type Referred = HashMap<String, Members>;

impl Engine {
    /// The members at `as_of` of every group `group`'s rule refers to, by their
    /// positions in `facts`.
    pub(crate) fn referred_members(
        &self,
        group: &Group,
        facts: &Facts,
        as_of: Timestamp,
    ) -> Result<Referred> {
        group
            .referred()
            .into_iter()
            .map(|id| {
                let holdings = self.holdings.current(self.store.as_ref(), id, facts)?;
                Ok((id.to_string(), Members::active(&holdings, as_of)))
            })
            .collect()
    }

    /// Refuse a definition whose rule would close a cycle of groups referring to each
    /// other, naming the cycle; a group must not wait for itself to be decided.
    pub(crate) fn check_references(&self, group: &Group) -> Result<()> {
        if group.referred().is_empty() {
            return Ok(());
        }
        let groups = self.groups()?;
        let refers = |id: &str| -> Vec<String> {
            let g = if id == group.id {
                Some(group)
            } else {
                groups.iter().find(|g| g.id == id)
            };
            g.map(|g| g.referred().into_iter().map(str::to_string).collect())
                .unwrap_or_default()
        };
        // Depth first from the group: a path back to it is the cycle.
        let mut path = vec![group.id.clone()];
        let mut next: Vec<Vec<String>> = vec![refers(&group.id)];
        let mut seen = std::collections::HashSet::new();
        while let Some(top) = next.last_mut() {
            let Some(id) = top.pop() else {
                next.pop();
                path.pop();
                continue;
            };
            if id == group.id {
                path.push(id);
                let first = path[1].clone();
                let (i, j, _) = group
                    .conditions()
                    .find(|(_, _, c)| matches!(c, Condition::Group(r) if r.group == first))
                    .expect("the cycle leaves the group through one of its conditions");
                let cycle: Vec<String> = path.iter().map(|g| format!("`{g}`")).collect();
                return Err(InvalidGroup {
                    group: group.id.clone(),
                    field: format!("rule.all[{i}].any[{j}].group"),
                    problem: format!(
                        "groups would refer to each other in a cycle: {}",
                        cycle.join(" -> ")
                    ),
                }
                .into());
            }
            if seen.insert(id.clone()) {
                next.push(refers(&id));
                path.push(id);
            }
        }
        Ok(())
    }

    /// The groups whose rules refer to `id`.
    pub(crate) fn referring(&self, id: &str) -> Result<Vec<String>> {
        Ok(self
            .groups()?
            .iter()
            .filter(|g| g.referred().contains(&id))
            .map(|g| g.id.clone())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_are_bits_and_differences_mark_both_ways() {
        let before = Members::of([1, 64, 130]);
        assert!(before.contains(64) && before.contains(130) && !before.contains(2));
        assert!(
            !before.contains(100_000),
            "beyond the last word: not a member"
        );
        let after = Members::of([1, 65]);
        let mut changed = Members::default();
        before.mark_differences(&after, &mut changed);
        let marked: Vec<usize> = (0..200).filter(|&at| changed.contains(at)).collect();
        assert_eq!(marked, [64, 65, 130]);
        let column = after.column([0usize, 1, 65].into_iter());
        let got: Vec<bool> = column.iter().map(|v| v == VerdictRef::Match).collect();
        assert_eq!(got, [false, true, true]);
    }
}
