//! Several groups' runs at once: evaluated on every core, written by one thread,
//! settled by another.

use std::sync::atomic::Ordering;
use std::sync::{Mutex, PoisonError};

use cohort_model::{Group, Timestamp};
use cohort_planner::Change;
use cohort_store::{RunRecord, RunStatus, ScanRecord, StoreError};

use crate::run::{RunReport, ToWrite, Written, new_run};
use crate::{Engine, EngineError, Result, Trigger};

/// Changes a spare list of `run_groups` may hold room for: about 185 MB each, held
/// until the last run is written. Room for the largest run of a million customers, so
/// that once the first few lists have grown, no run grows one into fresh memory.
const SPARE_MOST: usize = 1 << 21;

impl Engine {
    /// Run several groups' rules as `run_group` would, on as many threads as there are
    /// cores. Groups of one exclusive set run one after another, in id order, on one
    /// thread: each plans against the memberships the ones before it made. Each run's
    /// record comes in the order of `ids`; its changes are let go once applied (every
    /// group of a million customers would hold several million until the last one
    /// finished).
    pub fn run_groups(
        &self,
        ids: &[String],
        trigger: Trigger,
        actor: &str,
        as_of: Timestamp,
        now: Timestamp,
    ) -> Vec<Result<RunRecord>> {
        self.run_groups_reporting(ids, trigger, actor, as_of, now, &|_, _| {})
    }

    /// [`Engine::run_groups`], telling `progress` (runs written, runs started) as each
    /// run is written, from whichever thread wrote it.
    pub fn run_groups_reporting(
        &self,
        ids: &[String],
        trigger: Trigger,
        actor: &str,
        as_of: Timestamp,
        now: Timestamp,
        progress: &(dyn Fn(usize, usize) + Sync),
    ) -> Vec<Result<RunRecord>> {
        let mut results: Vec<Option<Result<RunRecord>>> = (0..ids.len()).map(|_| None).collect();
        let mut runnable: Vec<(usize, Group)> = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            match self.runnable(id, trigger) {
                Ok(group) => runnable.push((i, group)),
                Err(e) => results[i] = Some(Err(e)),
            }
        }
        // On a store many processes share, the runs are one scan, cut into ranges that
        // workers elsewhere may take too.
        if let Some(scans) = self.store.scans() {
            let outcome = self.scan_groups(
                scans,
                &runnable,
                trigger,
                actor,
                as_of,
                now,
                false,
                &mut |done, total| progress(done, total),
            );
            for (r, (i, group)) in runnable.iter().enumerate() {
                results[*i] = Some(match &outcome {
                    Ok((scan, _)) => scan_result(scan, r, &group.id),
                    // Kept as a conflict: another scan of the group is under way, which
                    // a caller may wait for, and a scheduler takes as its run.
                    Err(EngineError::Store(StoreError::Conflict(why))) => {
                        Err(EngineError::Store(StoreError::Conflict(why.clone())))
                    }
                    Err(e) => Err(EngineError::Failed {
                        group: group.id.clone(),
                        problem: e.to_string(),
                    }),
                });
            }
            return results
                .into_iter()
                .map(|r| r.expect("every group has an outcome"))
                .collect();
        }
        // Every run is recorded before the first one evaluates, and each records its
        // end in the transaction of its changes: a run that had to write its start or
        // its end on its own would wait for the other core's run to finish writing, so
        // the two cores would evaluate at the same time and then write in turn, and the
        // writer would stand idle while they evaluate (a tenth of a full scan at a
        // million customers).
        let records: Vec<RunRecord> = runnable
            .iter()
            .map(|(_, g)| new_run(g, trigger, false, actor, as_of, now))
            .collect();
        let records = match self.store.start_runs(&records) {
            Ok(run_ids) => records
                .into_iter()
                .zip(run_ids)
                .map(|(run, id)| RunRecord { id, ..run })
                .collect::<Vec<_>>(),
            Err(e) => {
                let problem = e.to_string();
                for (i, group) in &runnable {
                    results[*i] = Some(Err(EngineError::NotStarted {
                        group: group.id.clone(),
                        problem: problem.clone(),
                    }));
                }
                runnable.clear();
                Vec::new()
            }
        };
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let jobs = self.jobs(&runnable, trigger, as_of, cores);
        let results = Mutex::new(results);
        let runnable = &runnable;
        let recorded = std::sync::atomic::AtomicUsize::new(0);
        let record = |r: usize, run: Result<RunReport>| {
            results.lock().unwrap_or_else(PoisonError::into_inner)[runnable[r].0] =
                Some(run.map(|report| report.run));
            progress(recorded.fetch_add(1, Ordering::Relaxed) + 1, runnable.len());
        };
        // Lists of changes written and let go, for the next runs to plan into: a run of
        // a million customers plans hundreds of thousands of changes, and a new list
        // grows by copying into memory the system must zero first (a thirtieth of the
        // scan's CPU time at a million customers). The few lists in flight circulate,
        // the roomiest taken first; one grown past `SPARE_MOST` is let go.
        let spare: Mutex<Vec<Vec<Change>>> = Mutex::default();
        let spare = &spare;
        let next = std::sync::atomic::AtomicUsize::new(0);
        let workers = cores.min(jobs.len());
        std::thread::scope(|scope| {
            // A run evaluated alone is written by a thread of its own, so that the core
            // that evaluated it goes on to the next run instead of waiting for the store
            // while another run writes (a tenth of a full scan's time at a million
            // customers). One run waits to be written at most: each holds its changes.
            // What follows a write (the kept memberships carried forward, the changes let
            // go: a tenth of the writer's time) is left to another thread, so that the
            // writer goes on to the next run's write.
            let (written, to_write) = std::sync::mpsc::sync_channel::<ToWrite>(1);
            let (settled, to_settle) = std::sync::mpsc::channel::<(usize, Written)>();
            scope.spawn(move || {
                for (r, run, evaluated, started) in to_write {
                    match self.write_run(&runnable[r].1, run, evaluated, started, now) {
                        Ok(w) => settled
                            .send((r, w))
                            .expect("the settler lives as long as the writer"),
                        Err(e) => record(r, Err(e)),
                    }
                }
            });
            scope.spawn(move || {
                for (r, w) in to_settle {
                    let mut report = self.settle(&runnable[r].1, w);
                    let mut changes = std::mem::take(&mut report.changes);
                    record(r, Ok(report));
                    changes.clear();
                    if changes.capacity() <= SPARE_MOST {
                        spare
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .push(changes);
                    }
                }
            });
            for _ in 0..workers {
                let written = written.clone();
                scope.spawn(|| {
                    let written = written;
                    while let Some(job) = jobs.get(next.fetch_add(1, Ordering::Relaxed)) {
                        // Each run of an exclusive set plans against what the ones
                        // before it wrote: those are written before the next starts.
                        if let [r] = job[..] {
                            let run = records[r].clone();
                            let changes = {
                                let mut spare =
                                    spare.lock().unwrap_or_else(PoisonError::into_inner);
                                let roomiest =
                                    (0..spare.len()).max_by_key(|&i| spare[i].capacity());
                                roomiest.map(|i| spare.swap_remove(i)).unwrap_or_default()
                            };
                            let (run, evaluated, started) =
                                self.evaluate(&runnable[r].1, run, changes, &mut |_, _| {});
                            written
                                .send((r, run, evaluated, started))
                                .expect("the writer lives as long as the workers");
                            continue;
                        }
                        for &r in job {
                            let run = records[r].clone();
                            record(r, self.carry_out(&runnable[r].1, run, now, &mut |_, _| {}));
                        }
                    }
                });
            }
            drop(written);
        });
        results
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner)
            .into_iter()
            .map(|r| r.expect("every job ran"))
            .collect()
    }
}

/// The outcome of the `r`-th run of a scan that ended: its record if it finished, why
/// not otherwise.
pub(crate) fn scan_result(scan: &ScanRecord, r: usize, group: &str) -> Result<RunRecord> {
    let run = scan.runs.get(r).ok_or_else(|| EngineError::Failed {
        group: group.to_string(),
        problem: format!("scan {} has no record of the run", scan.id),
    })?;
    if run.status == RunStatus::Finished {
        return Ok(run.clone());
    }
    Err(EngineError::Failed {
        group: group.to_string(),
        problem: run
            .error
            .clone()
            .or_else(|| scan.error.clone())
            .unwrap_or_else(|| format!("it ended {}", run.status.as_str())),
    })
}
