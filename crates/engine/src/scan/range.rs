//! A range's work for one run: its verdicts, made outside the transaction (or, for a
//! rule that refers to groups, inside it, once the groups it refers to are written),
//! and its plan against what the transaction reads.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use cohort_evaluator::{Compiled, Decision};
use cohort_model::{Group, Held, Timestamp, Verdicts};
use cohort_planner::{Change, Rival, Standing, plan_into};
use cohort_store::{RangeCounts, RangeWork, RunRecord};

use crate::facts::Facts;
use crate::holdings::Holdings;
use crate::plugins::{Purpose, Slot};
use crate::referred::{Members, Referred};
use crate::rivals::{rival_groups, rival_held};
use crate::run::{count_errors, decide_row, policy};
use crate::{Engine, FastMap, PAGE};

/// Conditions a core keeps prepared from range to range, by group, while the group's
/// definition is the same: preparing costs a plugin instance and a call for every
/// condition, which at every range was most of a small range's time.
#[derive(Default)]
pub(super) struct Prepared(HashMap<String, (Group, Vec<Slot>)>);

/// One run's verdicts over a range, before it is planned.
pub(super) struct Decided {
    pub(super) run: RunRecord,
    /// None if the group is gone (deleted while the scan ran).
    pub(super) group: Option<Group>,
    decisions: Vec<Decision>,
    pub(super) counts: RangeCounts,
    /// For a rule that refers to groups, its verdict columns page by page, those of
    /// its group conditions still empty: the groups' memberships of the range are
    /// read in the transaction, after earlier runs of the scan wrote them, and then
    /// the run decides.
    pub(super) waiting: Option<Vec<Vec<Verdicts>>>,
}

impl Decided {
    /// Whether the run's group is in no exclusive set, refers to no group and is
    /// referred to by none of the scan's (`referred`): no other run's writes change
    /// its plan, nor its writes another's.
    pub(super) fn alone(&self, referred: &HashSet<String>) -> bool {
        self.group.as_ref().is_none_or(|g| {
            g.exclusive.is_none() && g.referred().is_empty() && !referred.contains(&g.id)
        })
    }

    /// Decide a waiting run over `range` with `referred`, the members of the groups
    /// its rule refers to (by range position).
    pub(super) fn decide_waiting(&mut self, range: &Facts, referred: &Referred) {
        let (Some(pages), Some(group)) = (self.waiting.take(), self.group.as_ref()) else {
            return;
        };
        let compiled = Compiled::new(group);
        let mut failures: HashMap<String, u64> = self.counts.failures.drain(..).collect();
        let groups: Vec<Option<&str>> = group.conditions().map(|(_, _, c)| c.group()).collect();
        for (page, mut columns) in pages.into_iter().enumerate() {
            let rows = range.pages[page].len();
            for (column, g) in columns.iter_mut().zip(&groups) {
                if let Some(g) = g {
                    let members = referred.get(*g).expect("every referred group is read");
                    *column = members.column((0..rows).map(|i| page * PAGE + i));
                }
            }
            for i in 0..rows {
                let invalid = range.invalid.get(&(page * PAGE + i));
                let decision = decide_row(&compiled, &columns, i, invalid, &mut failures);
                match decision {
                    Decision::Member => self.counts.matched += 1,
                    Decision::Undecided => self.counts.undecided += 1,
                    Decision::NotMember => {}
                }
                self.decisions.push(decision);
            }
        }
        self.counts.failures = failures.into_iter().collect();
    }
}

impl Engine {
    /// A run's verdicts over the customers of a range, counted as a run counts them.
    pub(super) fn decide(
        &self,
        run: &RunRecord,
        groups: &[Group],
        range: &Facts,
        prepared: &mut Prepared,
    ) -> Decided {
        let mut counts = RangeCounts {
            run: run.id,
            customers: range.ids.len() as u64,
            ..RangeCounts::default()
        };
        let mut decided = Decided {
            run: run.clone(),
            group: None,
            decisions: Vec::new(),
            counts: RangeCounts::default(),
            waiting: None,
        };
        let Some(group) = groups.iter().find(|g| g.id == run.group) else {
            counts.error = Some("the group was deleted while the scan ran".into());
            decided.counts = counts;
            return decided;
        };
        let kept = prepared.0.get(&group.id).is_some_and(|(g, _)| g == group);
        if !kept {
            match self.prepare(group, Purpose::Run) {
                Ok(c) => drop(prepared.0.insert(group.id.clone(), (group.clone(), c))),
                Err(e) => {
                    counts.error = Some(e.to_string());
                    decided.counts = counts;
                    return decided;
                }
            }
        }
        let (_, conditions) = prepared
            .0
            .get_mut(&group.id)
            .expect("prepared just above when missing");
        let compiled = Compiled::new(group);
        let waits = !group.referred().is_empty();
        let mut decisions = Vec::with_capacity(range.ids.len());
        let mut waiting = Vec::new();
        let mut failures: HashMap<String, u64> = HashMap::new();
        for (page, customers) in range.pages.iter().enumerate() {
            // No members yet: group conditions are filled in the transaction
            // (`decide_waiting`).
            let columns = self.verdicts(conditions, run.as_of, customers, &Referred::new(), |i| i);
            count_errors(&columns, &mut failures);
            if waits {
                waiting.push(columns);
                continue;
            }
            for i in 0..customers.len() {
                let invalid = range.invalid.get(&(page * PAGE + i));
                let decision = decide_row(&compiled, &columns, i, invalid, &mut failures);
                match decision {
                    Decision::Member => counts.matched += 1,
                    Decision::Undecided => counts.undecided += 1,
                    Decision::NotMember => {}
                }
                decisions.push(decision);
            }
        }
        counts.failures = failures.into_iter().collect();
        Decided {
            run: run.clone(),
            group: Some(group.clone()),
            decisions,
            counts,
            waiting: waits.then_some(waiting),
        }
    }
}

/// The members at the run's as-of time, by range position, of the groups a waiting
/// run's rule refers to, as the transaction reads them: after the runs of the scan
/// before it wrote.
pub(super) fn members_in(
    d: &Decided,
    range: &Facts,
    tx: &mut dyn RangeWork,
) -> cohort_store::Result<Referred> {
    let read: Vec<&str> = d.group.as_ref().map(Group::referred).unwrap_or_default();
    let mut at: HashMap<&str, Vec<usize>> = read.iter().map(|g| (*g, Vec::new())).collect();
    tx.holdings(&read, &mut |customer, g, held| {
        if let (Some(&p), Some(list)) = (range.index.get(customer), at.get_mut(g))
            && held.is_active(d.run.as_of)
        {
            list.push(p);
        }
    })?;
    Ok(at
        .into_iter()
        .map(|(g, positions)| (g.to_string(), Members::of(positions)))
        .collect())
}

/// The range's memberships in an exclusive set's `group` (by customer position) and
/// their rivals at `as_of`, as the transaction reads them.
#[allow(
    clippy::type_complexity,
    reason = "the two halves of a customer's standing, as `Standing` takes them"
)]
pub(super) fn standing(
    group: &Group,
    groups: &[Group],
    as_of: Timestamp,
    range: &Facts,
    tx: &mut dyn RangeWork,
) -> cohort_store::Result<(Vec<(u32, Held)>, FastMap<usize, Vec<Rival>>)> {
    let rivals = rival_groups(group, groups);
    let mut read = vec![group.id.as_str()];
    read.extend(rivals.iter().map(|(g, _, _)| g.id.as_str()));
    let mut own = Vec::new();
    let mut rivals_at: FastMap<usize, Vec<Rival>> = FastMap::default();
    tx.holdings(&read, &mut |customer, g, held| {
        let Some(&at) = range.index.get(customer) else {
            return;
        };
        if g == group.id {
            own.push((at as u32, held));
        } else if let Some(r) = rival_held(g, &held, &rivals, as_of) {
            rivals_at.entry(at).or_default().push(r);
        }
    })?;
    Ok((own, rivals_at))
}

/// The changes of one run's decisions over a range, planned against `own`, the range's
/// memberships in the run's group by customer position, `rivals`, theirs in the other
/// groups of its exclusive set, and `pinned`, the positions of customers pinned out.
pub(super) fn plan_range(
    d: &Decided,
    range: &Facts,
    own: Vec<(u32, Held)>,
    rivals: &FastMap<usize, Vec<Rival>>,
    pinned: &HashSet<usize>,
) -> Vec<Change> {
    let mut changes = Vec::new();
    let Some(group) = d.group.as_ref().filter(|_| d.counts.error.is_none()) else {
        return changes;
    };
    let holdings = Holdings::new(0, own);
    let mut held = holdings.cursor();
    let id: Arc<str> = group.id.as_str().into();
    let policy = policy(group, &id);
    for (at, (customer, &decision)) in range.ids.iter().zip(&d.decisions).enumerate() {
        plan_into(
            policy,
            Standing {
                customer,
                memberships: held.of(at),
                pinned_out: pinned.contains(&at),
                rivals: rivals.get(&at).map(Vec::as_slice).unwrap_or(&[]),
            },
            decision,
            d.run.as_of,
            &mut changes,
        );
    }
    changes
}
