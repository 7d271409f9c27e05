//! Runs recorded now and carried out after (what an API hands back at once): their
//! progress while they go, and cancelling them.
//!
//! A run on a store one process owns is carried out by the process that began it;
//! that process knows its progress and stops it at the next page of customers when
//! asked, recording it `cancelled` with nothing applied. A run on a shared store is a
//! scan: its progress (ranges done) is in the store, and any process cancels it there;
//! the ranges committed before stay.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use cohort_model::{Group, Timestamp};
use cohort_store::{RunRecord, RunStatus, ScanRecord, ScanStatus};
use serde::Serialize;

use crate::pipeline::scan_result;
use crate::run::new_run;
use crate::{Engine, EngineError, Result, RunReport, Trigger};

/// How far a run has come.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Progress {
    pub done: u64,
    pub total: u64,
    /// What `done` and `total` count: `customers` (a run of one process) or `ranges`
    /// (a scan shared by workers).
    pub unit: &'static str,
}

/// What asking to cancel a run did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cancel {
    /// The process carrying it out stops at its next page of customers.
    Requested,
    /// Stopped in the store (a scan): no range is claimed after this.
    Cancelled,
    /// It is not running: it ended so.
    Ended(RunStatus),
    /// It runs in another process, which alone can stop it.
    Elsewhere,
}

/// A run of this process: how far it is, and whether it was asked to stop.
#[derive(Default)]
pub(crate) struct Control {
    done: AtomicU64,
    total: AtomicU64,
    cancelled: AtomicBool,
    by: Mutex<String>,
}

/// The runs this process carries out, by id.
#[derive(Default)]
pub(crate) struct Running(Mutex<HashMap<i64, Arc<Control>>>);

impl Running {
    fn get(&self, run: i64) -> Option<Arc<Control>> {
        let held = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        held.get(&run).cloned()
    }

    fn add(&self, run: i64) -> Arc<Control> {
        let control = Arc::new(Control::default());
        let mut held = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        held.insert(run, control.clone());
        control
    }

    fn remove(&self, run: i64) {
        let mut held = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        held.remove(&run);
    }
}

/// A run recorded as running, to carry out with [`Engine::complete_run`].
pub struct Begun {
    group: Group,
    how: How,
}

enum How {
    /// Evaluated and written by this process, in one transaction.
    Local(RunRecord),
    /// A scan shared with any workers.
    Scan(ScanRecord),
}

impl Begun {
    /// The run as recorded: `running`, with its id.
    pub fn record(&self) -> &RunRecord {
        match &self.how {
            How::Local(run) => run,
            How::Scan(scan) => &scan.runs[0],
        }
    }
}

impl Engine {
    /// Record a run of group `id` as running, to carry out with
    /// [`Engine::complete_run`] (on another thread, say, once its id is answered).
    pub fn begin_run(
        &self,
        id: &str,
        trigger: Trigger,
        dry_run: bool,
        actor: &str,
        as_of: Timestamp,
        now: Timestamp,
    ) -> Result<Begun> {
        let group = self.runnable(id, trigger)?;
        if let Some(scans) = self.store.scans().filter(|_| !dry_run) {
            let scan =
                self.record_scan(scans, &[(0, group.clone())], trigger, actor, as_of, now)?;
            if scan.runs.is_empty() {
                return Err(EngineError::NotStarted {
                    group: group.id,
                    problem: "the store recorded no run".into(),
                });
            }
            return Ok(Begun {
                group,
                how: How::Scan(scan),
            });
        }
        let mut run = new_run(&group, trigger, dry_run, actor, as_of, now);
        run.id = self
            .store
            .start_runs(std::slice::from_ref(&run))?
            .first()
            .copied()
            .ok_or_else(|| EngineError::NotStarted {
                group: group.id.clone(),
                problem: "the store gave it no id".into(),
            })?;
        // Known from now on, so that it can be cancelled before it is carried out.
        self.running.add(run.id);
        Ok(Begun {
            group,
            how: How::Local(run),
        })
    }

    /// Carry out a run begun with [`Engine::begin_run`]; `progress` is told how far it
    /// has come. A run cancelled meanwhile ends `cancelled` (an error here).
    pub fn complete_run(
        &self,
        begun: Begun,
        now: Timestamp,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<RunReport> {
        let id = begun.record().id;
        let control = self.running.get(id).unwrap_or_else(|| self.running.add(id));
        let mut told = |done: u64, total: u64| {
            control.done.store(done, Ordering::Relaxed);
            control.total.store(total, Ordering::Relaxed);
            progress(done, total);
        };
        let outcome = match begun.how {
            How::Local(run) => self.carry_out(&begun.group, run, now, &mut told),
            How::Scan(scan) => {
                let started = Instant::now();
                self.store
                    .scans()
                    .ok_or(EngineError::NoScans)
                    .and_then(|scans| {
                        self.work_scan(scans, scan, now, true, &mut |done, total| {
                            told(done as u64, total as u64)
                        })
                    })
                    .and_then(|(scan, changes)| {
                        let run = scan_result(&scan, 0, &begun.group.id)?;
                        Ok(RunReport {
                            // A scan's ranges evaluate every customer.
                            evaluated: run.customers,
                            run,
                            changes,
                            seconds: started.elapsed().as_secs_f64(),
                        })
                    })
            }
        };
        self.running.remove(id);
        outcome
    }

    /// Fails with `Cancelled` if run `run` of this process was asked to stop.
    pub(crate) fn check_cancelled(&self, run: i64) -> Result<()> {
        match self.running.get(run) {
            Some(c) if c.cancelled.load(Ordering::Relaxed) => Err(EngineError::Cancelled {
                by: c.by.lock().unwrap_or_else(PoisonError::into_inner).clone(),
            }),
            _ => Ok(()),
        }
    }

    /// How far run `run` has come, if it is running: from this process, or from the
    /// store for a scan.
    pub fn run_progress(&self, run: i64) -> Result<Option<Progress>> {
        if let Some(scan) = self.scan_of(run)? {
            return Ok((scan.status == ScanStatus::Running).then_some(Progress {
                done: scan.done,
                total: scan.ranges,
                unit: "ranges",
            }));
        }
        Ok(self.running.get(run).map(|c| Progress {
            done: c.done.load(Ordering::Relaxed),
            total: c.total.load(Ordering::Relaxed),
            unit: "customers",
        }))
    }

    /// Ask run `run` to stop, for `by`.
    pub fn cancel_run(&self, run: i64, by: &str, now: Timestamp) -> Result<Cancel> {
        let record = self.store.run(run)?.ok_or_else(|| EngineError::NotFound {
            what: "run",
            id: run.to_string(),
        })?;
        if record.status != RunStatus::Running {
            return Ok(Cancel::Ended(record.status));
        }
        let reason = format!("cancelled by {by}");
        if let (Some(scan), Some(scans)) = (self.scan_of(run)?, self.store.scans()) {
            return Ok(if scans.cancel_scan(scan.id, &reason, now)? {
                Cancel::Cancelled
            } else {
                Cancel::Ended(self.store.run(run)?.map_or(record.status, |r| r.status))
            });
        }
        match self.running.get(run) {
            Some(control) => {
                *control.by.lock().unwrap_or_else(PoisonError::into_inner) = by.to_string();
                control.cancelled.store(true, Ordering::Relaxed);
                Ok(Cancel::Requested)
            }
            None => Ok(Cancel::Elsewhere),
        }
    }

    fn scan_of(&self, run: i64) -> Result<Option<ScanRecord>> {
        match self.store.scans() {
            Some(scans) => Ok(scans.scan_of_run(run)?),
            None => Ok(None),
        }
    }
}
