//! The order in which several runs start: those of one exclusive set together, in id
//! order, on one thread; the others by their expected cost, so that no core waits long
//! for the last run.

use std::collections::HashMap;

use cohort_model::{Group, Timestamp};

use crate::run::new_run;
use crate::{Engine, Trigger};

impl Engine {
    /// The jobs for `runnable` (each run's position among the caller's ids, and its
    /// group) on `cores` cores: each job a list of positions in `runnable`, to run one
    /// after another, and the jobs in the order they should start.
    pub(crate) fn jobs(
        &self,
        runnable: &[(usize, Group)],
        trigger: Trigger,
        as_of: Timestamp,
        cores: usize,
    ) -> Vec<Vec<usize>> {
        // Jobs: positions in `runnable`, those of one exclusive set together, each with
        // its cost, which only matters when there are more runs than cores.
        let mut jobs: Vec<(Vec<usize>, usize)> = Vec::new();
        let mut sets: HashMap<&str, usize> = HashMap::new();
        for (r, (_, group)) in runnable.iter().enumerate() {
            let cost = if runnable.len() > cores {
                self.expected_cost(group, trigger, as_of)
            } else {
                0
            };
            match &group.exclusive {
                Some(exclusive) => {
                    let job = *sets.entry(exclusive.set.as_str()).or_insert_with(|| {
                        jobs.push((Vec::new(), 0));
                        jobs.len() - 1
                    });
                    jobs[job].0.push(r);
                    jobs[job].1 += cost;
                }
                None => jobs.push((vec![r], cost)),
            }
        }
        for (job, _) in &mut jobs {
            job.sort_by(|&a, &b| runnable[a].1.id.cmp(&runnable[b].1.id));
        }
        // The costliest first, so that the last job to finish is a cheap one and no core
        // waits long for it at the end.
        jobs.sort_by_key(|(_, cost)| std::cmp::Reverse(*cost));
        // But the cheapest first of all: the writer has nothing to do until a run has
        // been evaluated.
        if let Some(cheapest) = jobs.pop() {
            jobs.insert(0, cheapest);
        }
        jobs.into_iter().map(|(job, _)| job).collect()
    }

    /// What a run of `group` is expected to cost, in condition evaluations: its
    /// conditions over every customer, and each change it will write as `WRITE` of them.
    /// The changes are those a dry run plans for the first page of customers, times the
    /// pages: a rule that takes in most customers costs little to evaluate and the most
    /// to write, and started last it would leave the other cores idle while it writes.
    /// A guess that fails (the run itself will say why) costs the evaluations alone, and
    /// so does a rule over fewer than `SAMPLED` pages, where the page evaluated twice
    /// would be more than a few percent of the run.
    fn expected_cost(&self, group: &Group, trigger: Trigger, as_of: Timestamp) -> usize {
        /// A membership written costs about as much as twelve evaluations through
        /// plugins (1.2 against 0.1 µs, in a full scan of the reference workload).
        const WRITE: usize = 12;
        const SAMPLED: usize = 16;
        let conditions = group.rule.all.iter().map(|c| c.any.len()).sum::<usize>();
        let Ok(facts) = self.facts() else {
            return conditions;
        };
        let (customers, pages) = (facts.ids.len(), facts.pages.len());
        drop(facts);
        let mut sample = new_run(group, trigger, true, "", as_of, as_of);
        let changes = if pages < SAMPLED {
            0
        } else {
            match self.evaluate_run(group, &mut sample, 1, Vec::new(), &mut |_, _| {}) {
                Ok(_) => (sample.added + sample.removed) as usize * pages,
                Err(_) => 0,
            }
        };
        conditions * customers + WRITE * changes
    }
}
