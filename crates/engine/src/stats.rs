//! What plugins have cost since the engine started, for monitoring.

use std::sync::atomic::{AtomicU64, Ordering};

use cohort_host::{Evaluation, Failure};
use cohort_model::Verdicts;
use serde::Serialize;

use crate::Engine;

/// What plugins have cost since the engine started, for monitoring.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Calls into plugins.
    pub calls: u64,
    /// Customers evaluated, once per condition.
    pub evaluations: u64,
    pub fuel: u64,
    /// Calls that trapped (including running out of fuel, time, memory or stack).
    pub traps: u64,
    /// Calls the plugin answered with an error or a broken reply.
    pub errors: u64,
}

#[derive(Default)]
pub(crate) struct Counters {
    calls: AtomicU64,
    evaluations: AtomicU64,
    fuel: AtomicU64,
    traps: AtomicU64,
    errors: AtomicU64,
}

impl Engine {
    /// What plugins have cost since the engine started.
    pub fn stats(&self) -> Stats {
        let c = &self.counters;
        Stats {
            calls: c.calls.load(Ordering::Relaxed),
            evaluations: c.evaluations.load(Ordering::Relaxed),
            fuel: c.fuel.load(Ordering::Relaxed),
            traps: c.traps.load(Ordering::Relaxed),
            errors: c.errors.load(Ordering::Relaxed),
        }
    }

    /// Count an evaluation's cost and keep its verdicts.
    pub(crate) fn tally(&self, evaluation: Evaluation) -> Verdicts {
        let c = &self.counters;
        c.calls
            .fetch_add(u64::from(evaluation.calls), Ordering::Relaxed);
        c.evaluations
            .fetch_add(evaluation.verdicts.len() as u64, Ordering::Relaxed);
        c.fuel.fetch_add(evaluation.fuel_used, Ordering::Relaxed);
        let traps = evaluation
            .failures
            .iter()
            .filter(|f| {
                !matches!(
                    f,
                    Failure::Plugin(_) | Failure::Contract(_) | Failure::GaveUp { .. }
                )
            })
            .count() as u64;
        c.traps.fetch_add(traps, Ordering::Relaxed);
        c.errors
            .fetch_add(evaluation.failures.len() as u64 - traps, Ordering::Relaxed);
        evaluation.verdicts
    }
}
