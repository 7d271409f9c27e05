//! What plugins have cost since the engine started, for monitoring.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::PoisonError;
use std::sync::atomic::{AtomicU64, Ordering};

use cohort_host::{Evaluation, Failure};
use cohort_model::{PluginInfo, Verdicts};
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
    /// The same, by plugin id: a lock per page of customers and condition, not per
    /// customer.
    by_plugin: Mutex<HashMap<String, Stats>>,
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

    /// What each plugin has cost since the engine started, by plugin id.
    pub fn plugin_stats(&self) -> BTreeMap<String, Stats> {
        self.counters
            .by_plugin
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(id, s)| (id.clone(), *s))
            .collect()
    }

    /// Count an evaluation's cost, overall and for its plugin, and keep its verdicts.
    pub(crate) fn tally(&self, plugin: &PluginInfo, evaluation: Evaluation) -> Verdicts {
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
        let errors = evaluation.failures.len() as u64 - traps;
        c.errors.fetch_add(errors, Ordering::Relaxed);
        {
            let mut by_plugin = c.by_plugin.lock().unwrap_or_else(PoisonError::into_inner);
            let mine = match by_plugin.get_mut(&plugin.id) {
                Some(s) => s,
                None => by_plugin.entry(plugin.id.clone()).or_default(),
            };
            mine.calls += u64::from(evaluation.calls);
            mine.evaluations += evaluation.verdicts.len() as u64;
            mine.fuel += evaluation.fuel_used;
            mine.traps += traps;
            mine.errors += errors;
        }
        evaluation.verdicts
    }
}
