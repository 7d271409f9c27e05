//! One run of a group's rule: recorded, evaluated page by page, planned, and written
//! with its end in one transaction.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Instant;

use cohort_evaluator::{Compiled, Decision};
use cohort_model::{FOREVER, FieldSet, Group, Mode, Timestamp, Verdicts};
use cohort_planner::{Change, Policy, Standing, plan_into, rule_actor};
use cohort_store::{Applied, Cause, RunRecord, RunStatus};
use serde::Serialize;

use crate::decided::{self, Decided, Deciding, Page, Planned};
use crate::holdings::Holdings;
use crate::plugins::{Purpose, Slot};
use crate::referred::Referred;
use crate::{Engine, EngineError, PAGE, Result, Trigger};

/// What a run did (or, for a dry run, would do).
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunReport {
    pub run: RunRecord,
    /// The changes, in order. Kept for dry runs and for the caller's report.
    pub changes: Vec<Change>,
    pub seconds: f64,
    /// Customers the plugins evaluated: every one, unless the group's last decisions
    /// still stood for some (the rule, plugins and their facts unchanged, no verdict
    /// run out).
    pub evaluated: u64,
}

/// A run's evaluation: the changes it plans, each change's customer position, and the
/// memberships they were planned against (to carry forward once applied).
pub(crate) struct Evaluated {
    pub(crate) changes: Vec<Change>,
    change_at: Vec<u32>,
    holdings: Arc<Holdings>,
    /// Customers evaluated; the others kept their last decision.
    evaluated: u64,
    /// The decisions kept for the next run, to be told when the changes are written.
    kept: Weak<Decided>,
}

/// A run evaluated, on its way to be written: its position among the runs, its record,
/// what evaluating it gave and when it started.
pub(crate) type ToWrite = (usize, RunRecord, Result<Evaluated>, Instant);

/// A run written, to be settled (see `Engine::settle`).
pub(crate) struct Written {
    run: RunRecord,
    evaluated: Evaluated,
    applied: Applied,
    started: Instant,
}

/// The record of a run about to start.
pub(crate) fn new_run(
    group: &Group,
    trigger: Trigger,
    dry_run: bool,
    actor: &str,
    as_of: Timestamp,
    now: Timestamp,
) -> RunRecord {
    RunRecord {
        group: group.id.clone(),
        trigger,
        dry_run,
        actor: actor.into(),
        as_of,
        started_at: now,
        status: RunStatus::Running,
        ..RunRecord::default()
    }
}

/// Count every failure in a page's verdict columns, also where the rest of the rule
/// decided anyway.
pub(crate) fn count_errors(columns: &[Verdicts], failures: &mut HashMap<String, u64>) {
    for (_, e) in columns.iter().flat_map(Verdicts::errors) {
        match failures.get_mut(e.as_str()) {
            Some(n) => *n += 1,
            None => drop(failures.insert(e.clone(), 1)),
        }
    }
}

/// The decision for row `i` of a page's verdict columns: undecided, with its problem
/// counted, for a record that no longer passes the model's checks (`invalid`).
pub(crate) fn decide_row(
    compiled: &Compiled,
    columns: &[Verdicts],
    i: usize,
    invalid: Option<&String>,
    failures: &mut HashMap<String, u64>,
) -> Decision {
    match invalid {
        Some(problem) => {
            *failures.entry(problem.clone()).or_default() += 1;
            Decision::Undecided
        }
        None => compiled.decide(columns, i),
    }
}

/// `id` is the group's id, shared by the changes planned with the policy.
pub(crate) fn policy<'a>(group: &'a Group, id: &'a Arc<str>) -> Policy<'a> {
    Policy {
        group: id,
        mode: group.auto.mode,
        keep_manual: group.auto.keep_manual,
        exclusive: group.exclusive.as_ref(),
    }
}

impl Engine {
    /// Each condition's verdicts for a page of customers, failures counted once per
    /// page; a group condition's from `referred`, with `position` the position of each
    /// row of the page, or an empty column for a group `referred` leaves out (a scan's
    /// range fills those in its transaction).
    pub(crate) fn verdicts(
        &self,
        conditions: &mut [Slot],
        as_of: Timestamp,
        customers: &cohort_host::Columns,
        referred: &Referred,
        position: impl Fn(usize) -> usize,
    ) -> Vec<Verdicts> {
        conditions
            .iter_mut()
            .map(|slot| match slot {
                Slot::Plugin(c) => {
                    let evaluation = c.evaluate_columns(as_of, customers);
                    self.tally(c.plugin().info(), evaluation)
                }
                Slot::Group(g) => referred.get(g).map_or_else(Verdicts::default, |members| {
                    members.column((0..customers.len()).map(&position))
                }),
            })
            .collect()
    }

    /// Run a group's rule over every customer as of `as_of` (usually `now`; earlier or
    /// later to see what the rule said or will say then). A dry run computes the same
    /// changes and applies none. The run and its history are stamped with `now`.
    /// `progress` is told (done, total) after each page. A run that fails once its
    /// record exists is recorded `failed`, with why, and applies nothing.
    #[allow(
        clippy::too_many_arguments,
        reason = "each argument is a distinct fact every caller states; a struct of them would only move the list"
    )]
    pub fn run_group(
        &self,
        id: &str,
        trigger: Trigger,
        dry_run: bool,
        actor: &str,
        as_of: Timestamp,
        now: Timestamp,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<RunReport> {
        let begun = self.begin_run(id, trigger, dry_run, actor, as_of, now)?;
        self.complete_run(begun, now, progress)
    }

    /// The group, if its rule may run for `trigger`.
    pub(crate) fn runnable(&self, id: &str, trigger: Trigger) -> Result<Group> {
        let group = self.group(id)?;
        if group.auto.mode == Mode::Disabled {
            return Err(EngineError::Disabled(group.id));
        }
        if trigger == Trigger::Manual && !group.auto.triggers.manual {
            return Err(EngineError::ManualOff(group.id));
        }
        Ok(group)
    }

    /// Evaluate a recorded run and record how it ended (see `write_run`).
    pub(crate) fn carry_out(
        &self,
        group: &Group,
        run: RunRecord,
        now: Timestamp,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<RunReport> {
        let (run, evaluated, started) = self.evaluate(group, run, Vec::new(), progress);
        let written = self.write_run(group, run, evaluated, started, now)?;
        Ok(self.settle(group, written))
    }

    /// Evaluate a recorded run over every customer, planning into `changes` (empty, but
    /// perhaps with room already): its record with the counts filled in, what
    /// evaluating gave, and when it started.
    pub(crate) fn evaluate(
        &self,
        group: &Group,
        mut run: RunRecord,
        changes: Vec<Change>,
        progress: &mut dyn FnMut(u64, u64),
    ) -> (RunRecord, Result<Evaluated>, Instant) {
        let started = Instant::now();
        let evaluated = self.evaluate_run(group, &mut run, usize::MAX, changes, progress);
        (run, evaluated, started)
    }

    /// Record how an evaluated run ended, started at `started`: finished, with its
    /// changes applied in the same transaction, or failed, with nothing applied.
    pub(crate) fn write_run(
        &self,
        group: &Group,
        mut run: RunRecord,
        evaluated: Result<Evaluated>,
        started: Instant,
        now: Timestamp,
    ) -> Result<Written> {
        let (trigger, actor) = (run.trigger, rule_actor(&group.id));
        let cause = Cause {
            trigger,
            actor: &actor,
            run: Some(run.id),
        };
        let outcome = evaluated.and_then(|evaluated| {
            let mut finished = run.clone();
            finished.status = RunStatus::Finished;
            finished.finished_at = Some(now + started.elapsed().as_secs() as Timestamp);
            let apply: &[Change] = if run.dry_run { &[] } else { &evaluated.changes };
            let applied = self.store.finish_run(&finished, apply, &cause, now)?;
            Ok(Written {
                run: finished,
                evaluated,
                applied,
                started,
            })
        });
        outcome.inspect_err(|e| {
            run.status = match e {
                EngineError::Cancelled { .. } => RunStatus::Cancelled,
                _ => RunStatus::Failed,
            };
            run.error = Some(e.to_string());
            run.finished_at = Some(now + started.elapsed().as_secs() as Timestamp);
            // If even this cannot be written, the run stays `running` until the store
            // is next opened, which marks it `interrupted`: still not a success, and
            // the error goes back to the caller either way.
            let _ = self.store.finish_run(&run, &[], &cause, now);
        })
    }

    /// Carry the group's kept memberships forward by a run written, and report it.
    pub(crate) fn settle(&self, group: &Group, written: Written) -> RunReport {
        let Written {
            mut run,
            evaluated,
            applied,
            started,
        } = written;
        // The memberships as the written changes left them, if the kept copy has them.
        let stamp = if run.dry_run {
            None
        } else if evaluated.changes.is_empty() {
            Some(evaluated.holdings.stamp)
        } else {
            (run.added, run.removed) = applied.counts();
            self.holdings.advance(
                &group.id,
                evaluated.holdings,
                &evaluated.changes,
                &evaluated.change_at,
                &applied,
            )
        };
        if let Some(stamp) = stamp {
            decided::settled(&evaluated.kept, stamp);
        }
        RunReport {
            run,
            evaluated: evaluated.evaluated,
            changes: evaluated.changes,
            seconds: started.elapsed().as_secs_f64(),
        }
    }

    /// Evaluate the customers of the first `pages` pages (every customer, for a run)
    /// against the group and plan the changes into `changes`; fills in the run's counts
    /// (and, for a dry run, what it would add and remove).
    pub(crate) fn evaluate_run(
        &self,
        group: &Group,
        run: &mut RunRecord,
        pages: usize,
        changes: Vec<Change>,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<Evaluated> {
        self.evaluate_group(
            group,
            run,
            pages,
            changes,
            Purpose::Run,
            progress,
            |_, _| {},
        )
    }

    /// `evaluate_run`, for conditions prepared for `purpose`, telling `decided` each
    /// customer's decision as it is made (a preview samples the undecided).
    #[allow(
        clippy::too_many_arguments,
        reason = "`evaluate_run` and `preview` differ in these; a struct would only move the list"
    )]
    pub(crate) fn evaluate_group(
        &self,
        group: &Group,
        run: &mut RunRecord,
        pages: usize,
        mut changes: Vec<Change>,
        purpose: Purpose,
        progress: &mut dyn FnMut(u64, u64),
        mut decided: impl FnMut(&str, Decision),
    ) -> Result<Evaluated> {
        let as_of = run.as_of;
        let (mut conditions, identity) = match purpose {
            Purpose::Run => self.conditions_for_run(group)?,
            // A preview keeps no decisions: nothing to compare an identity with (it
            // reads each data directory).
            Purpose::Save => (self.prepare(group, purpose)?, Vec::new()),
        };
        let compiled = Compiled::new(group);

        // The customers' standing, by their position in the facts: the loop below visits
        // customers in that order, and hashing a position is far cheaper than hashing
        // an id string.
        let facts = self.facts()?;
        let holdings = self
            .holdings
            .current(self.store.as_ref(), &group.id, &facts)?;
        let mut held = holdings.cursor();
        let mut pinned: Vec<usize> = self
            .store
            .exclusions(&group.id)?
            .iter()
            .filter_map(|c| facts.index.get(c.as_str()).copied())
            .collect();
        pinned.sort_unstable();
        let rivals = self.rivals_by_position(group, as_of, &facts)?;
        let referred = self.referred_members(group, &facts, as_of)?;
        let group_id: Arc<str> = group.id.as_str().into();
        let policy = policy(group, &group_id);

        // Decide every customer: by evaluating, or by the group's last decisions where
        // they still stand (see `decided.rs`).
        let limit = pages.saturating_mul(PAGE).min(facts.ids.len());
        let keeps = purpose == Purpose::Run && !run.dry_run && limit == facts.ids.len();
        let previous = (purpose == Purpose::Run)
            .then(|| self.decided.usable(group, &identity, &facts, as_of, keeps))
            .flatten();
        // The last plan stands if the memberships it planned from have not moved (see
        // `Planned`): then only the customers decided again or pinned or unpinned since
        // can plan differently.
        let last_plan = previous
            .as_ref()
            .filter(|p| {
                keeps && policy.exclusive.is_none() && p.planned.stands(holdings.stamp, as_of)
            })
            .map(|p| {
                (
                    p.planned.next_window,
                    changed_pins(&p.planned.pinned, &pinned),
                )
            });
        let mut failures: HashMap<String, u64> = HashMap::new();
        // Everyone is evaluated, or only the stale, as facts of their own.
        let (mut deciding, stale) = match previous {
            None => (Deciding::new(limit), None),
            Some(previous) => {
                // What the rule's plugins read: a change to another field changes
                // none of its verdicts.
                let reads = conditions
                    .iter()
                    .fold(FieldSet::empty(), |reads, slot| match slot {
                        Slot::Plugin(c) => reads.union(c.plugin().info().reads),
                        Slot::Group(_) => reads,
                    });
                let (deciding, stale) =
                    Deciding::from_previous(previous, &facts, limit, as_of, &referred, reads);
                (deciding, Some(stale))
            }
        };
        let subset;
        let (source, positions) = match &stale {
            None => (&*facts, None),
            Some(stale) => {
                subset = self.subsets.of(&facts, stale);
                (&*subset, Some(stale.as_slice()))
            }
        };
        let evaluated = positions.map_or(limit, <[usize]>::len);
        for (page, customers) in source.pages.iter().enumerate().take(pages) {
            self.check_cancelled(run.id)?;
            let position = |i: usize| positions.map_or(page * PAGE + i, |p| p[page * PAGE + i]);
            let columns = self.verdicts(&mut conditions, as_of, customers, &referred, position);
            count_errors(&columns, &mut failures);
            let verdicts = Page::of(&columns);
            for i in 0..customers.len() {
                let local = page * PAGE + i;
                let invalid = source.invalid.get(&local);
                let decision = decide_row(&compiled, &columns, i, invalid, &mut failures);
                let at = positions.map_or(local, |p| p[local]);
                deciding.set(at, decision, &verdicts, i);
            }
            progress((page * PAGE + customers.len()) as u64, evaluated as u64);
        }
        (run.matched, run.undecided) = deciding.counts();
        run.customers = limit as u64;
        if purpose == Purpose::Run {
            self.keep_conditions(group, conditions, identity.clone());
        }

        // Plan every customer against its standing: pins, memberships by hand,
        // windows and exclusive sets count whether or not its decision was kept.
        // Unless the memberships the last plan started from have not moved: then only
        // a customer decided again or pinned since can plan differently (`Planned`).
        // A spare list comes emptied by `run_groups`' settling thread, which lets its
        // changes go off the cores that evaluate.
        debug_assert!(changes.is_empty(), "a run plans into an empty list");
        // Each change's customer position, to carry the holdings forward.
        let mut change_at: Vec<u32> = Vec::new();
        // Everyone, or the customers whose standing can have changed since the last plan.
        // With it, the earliest time a window of the memberships planned from opens or
        // closes: those of the customers not planned again are as the last plan saw
        // them.
        let (only, mut next_window) = match (last_plan, &stale) {
            (Some((next_window, pins)), Some(stale)) => (Some(merged(stale, &pins)), next_window),
            _ => (None, FOREVER),
        };
        let everyone = 0..limit;
        let positions: &mut dyn Iterator<Item = usize> = match &only {
            Some(only) => &mut only.iter().copied(),
            None => &mut everyone.into_iter(),
        };
        for at in positions {
            let id = &facts.ids[at];
            let decision = deciding.decision(at);
            decided(id, decision);
            let memberships = held.of(at);
            for m in memberships {
                if m.start > as_of {
                    next_window = next_window.min(m.start);
                }
                if let Some(end) = m.end.filter(|&end| end > as_of) {
                    next_window = next_window.min(end);
                }
            }
            // Neither a member by the rule nor holding anything here: nothing to plan.
            if decision != Decision::Member && memberships.is_empty() {
                continue;
            }
            plan_into(
                policy,
                Standing {
                    customer: id,
                    memberships,
                    pinned_out: pinned.binary_search(&at).is_ok(),
                    rivals: rivals.get(&at).map(Vec::as_slice).unwrap_or(&[]),
                },
                decision,
                as_of,
                &mut changes,
            );
            change_at.resize(changes.len(), at as u32);
        }
        let kept = if keeps {
            let planned = Planned::new(pinned, next_window);
            self.decided
                .keep(group, identity, &facts, as_of, deciding, referred, planned)
        } else {
            Weak::new()
        };
        drop(facts);

        if run.dry_run {
            for c in &changes {
                match c {
                    Change::Add { group: g, .. } if **g == *group.id => run.added += 1,
                    Change::Add { .. } => {}
                    Change::End { .. } => run.removed += 1,
                }
            }
        }
        let mut failures: Vec<(String, u64)> = failures.into_iter().collect();
        failures.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        run.failures = failures;
        Ok(Evaluated {
            changes,
            change_at,
            holdings,
            evaluated: evaluated as u64,
            kept,
        })
    }
}

/// The positions in one sorted list and not the other: pins set or lifted.
fn changed_pins(before: &[usize], now: &[usize]) -> Vec<usize> {
    let mut changed: Vec<usize> = before
        .iter()
        .filter(|at| now.binary_search(at).is_err())
        .chain(now.iter().filter(|at| before.binary_search(at).is_err()))
        .copied()
        .collect();
    changed.sort_unstable();
    changed
}

/// Two sorted lists of positions as one, each position once.
fn merged(a: &[usize], b: &[usize]) -> Vec<usize> {
    let mut all: Vec<usize> = a.iter().chain(b).copied().collect();
    all.sort_unstable();
    all.dedup();
    all
}
