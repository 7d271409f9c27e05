//! The order in which several runs start: those of one exclusive set, and groups that
//! refer to each other, together on one thread, each referred group before the groups
//! that refer to it and otherwise in id order; the others by their expected cost, so
//! that no core waits long for the last run.

use std::collections::{BTreeSet, HashMap};

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
        // Jobs: positions in `runnable`, those of one exclusive set together, and a
        // group together with the groups it refers to, each with its cost, which only
        // matters when there are more runs than cores.
        let mut joined = Joined::new(runnable.len());
        let mut sets: HashMap<&str, usize> = HashMap::new();
        let position: HashMap<&str, usize> = runnable
            .iter()
            .enumerate()
            .map(|(r, (_, g))| (g.id.as_str(), r))
            .collect();
        for (r, (_, group)) in runnable.iter().enumerate() {
            if let Some(exclusive) = &group.exclusive {
                joined.join(r, *sets.entry(exclusive.set.as_str()).or_insert(r));
            }
            for referred in group.referred() {
                if let Some(&x) = position.get(referred) {
                    joined.join(r, x);
                }
            }
        }
        let mut jobs: Vec<(Vec<usize>, usize)> = Vec::new();
        let mut job_of: HashMap<usize, usize> = HashMap::new();
        for (r, (_, group)) in runnable.iter().enumerate() {
            let cost = if runnable.len() > cores {
                self.expected_cost(group, trigger, as_of)
            } else {
                0
            };
            let job = *job_of.entry(joined.root(r)).or_insert_with(|| {
                jobs.push((Vec::new(), 0));
                jobs.len() - 1
            });
            jobs[job].0.push(r);
            jobs[job].1 += cost;
        }
        for (job, _) in &mut jobs {
            let groups: Vec<&Group> = job.iter().map(|&r| &runnable[r].1).collect();
            *job = referred_first(&groups)
                .into_iter()
                .map(|i| job[i])
                .collect();
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
    /// would be more than a few percent of the run. A rescan that keeps the group's
    /// decisions costs its planning.
    fn expected_cost(&self, group: &Group, trigger: Trigger, as_of: Timestamp) -> usize {
        /// A membership written costs about as much as twelve evaluations through
        /// plugins (1.2 against 0.1 µs, in a full scan of the reference workload).
        const WRITE: usize = 12;
        const SAMPLED: usize = 16;
        let conditions = group.conditions().count();
        let Ok(facts) = self.facts() else {
            return conditions;
        };
        let (customers, pages) = (facts.ids.len(), facts.pages.len());
        // A run that builds on the group's last decisions evaluates what changed, and
        // plans everyone: about as much for every group, and no page is worth
        // evaluating twice to guess it (a tenth of a rescan's time at a million).
        if self.decided.kept_for(group, &facts, as_of) {
            return customers / 64;
        }
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

/// Runs joined into one job: a union-find over positions.
struct Joined(Vec<usize>);

impl Joined {
    fn new(n: usize) -> Self {
        Joined((0..n).collect())
    }

    fn root(&mut self, mut r: usize) -> usize {
        while self.0[r] != r {
            self.0[r] = self.0[self.0[r]];
            r = self.0[r];
        }
        r
    }

    fn join(&mut self, a: usize, b: usize) {
        let (a, b) = (self.root(a), self.root(b));
        self.0[a.max(b)] = a.min(b);
    }
}

/// The order in which `groups` must run, as indices: a group after every one of
/// `groups` it refers to, and otherwise in id order. Saving refuses cycles; should one
/// be stored anyway (by an older version, say), its groups come last, in id order.
pub(crate) fn referred_first(groups: &[&Group]) -> Vec<usize> {
    // Which of `groups` each one waits for, worked out once: registration orders its
    // groups for every customer.
    let waits_for: Vec<Vec<usize>> = groups
        .iter()
        .map(|g| {
            let referred = g.referred();
            if referred.is_empty() {
                return Vec::new();
            }
            (0..groups.len())
                .filter(|&x| referred.contains(&groups[x].id.as_str()) && groups[x].id != g.id)
                .collect()
        })
        .collect();
    let mut waiting: Vec<usize> = waits_for.iter().map(Vec::len).collect();
    let mut ready: BTreeSet<(&str, usize)> = (0..groups.len())
        .filter(|&r| waiting[r] == 0)
        .map(|r| (groups[r].id.as_str(), r))
        .collect();
    let mut order = Vec::with_capacity(groups.len());
    while let Some((_, r)) = ready.pop_first() {
        order.push(r);
        for (next, waits) in waits_for.iter().enumerate() {
            if waits.contains(&r) {
                waiting[next] -= 1;
                if waiting[next] == 0 {
                    ready.insert((groups[next].id.as_str(), next));
                }
            }
        }
    }
    if order.len() < groups.len() {
        let mut rest: Vec<usize> = (0..groups.len()).filter(|r| !order.contains(r)).collect();
        rest.sort_by_key(|&r| &groups[r].id);
        order.extend(rest);
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(id: &str, refers: &[&str]) -> Group {
        let any: Vec<serde_json::Value> = refers
            .iter()
            .map(|g| serde_json::json!({ "group": g }))
            .collect();
        let all = if any.is_empty() {
            vec![]
        } else {
            vec![serde_json::json!({ "any": any })]
        };
        serde_json::from_value(serde_json::json!({"id": id, "name": id, "rule": {"all": all}}))
            .expect("test group")
    }

    #[test]
    fn referred_groups_come_first_and_ties_in_id_order() {
        let groups = [
            group("a", &["c"]),
            group("b", &[]),
            group("c", &["d"]),
            group("d", &[]),
            group("e", &["a", "b"]),
        ];
        let refs: Vec<&Group> = groups.iter().collect();
        let order: Vec<&str> = referred_first(&refs)
            .into_iter()
            .map(|i| groups[i].id.as_str())
            .collect();
        assert_eq!(order, ["b", "d", "c", "a", "e"]);

        // A stored cycle still runs every group, its own last.
        let cycle = [group("x", &["y"]), group("y", &["x"]), group("z", &[])];
        let refs: Vec<&Group> = cycle.iter().collect();
        assert_eq!(referred_first(&refs), [2, 0, 1]);
    }
}
