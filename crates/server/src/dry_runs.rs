//! The changes of dry runs started over the API without waiting, kept for a while so
//! that a client pages through them (`GET /v1/runs/{id}/changes`).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use cohort_planner::Change;

/// How long a dry run's changes are kept after it ends.
pub const KEPT_FOR: Duration = Duration::from_secs(60 * 60);
/// How many dry runs' changes are kept at most: each may hold a change per customer.
pub const KEPT_RUNS: usize = 16;

/// A dry run's id, when it ended, and its changes.
type Kept = (i64, Instant, Arc<Vec<Change>>);

/// The latest dry runs' changes, oldest first.
#[derive(Default)]
pub struct DryRuns(Mutex<VecDeque<Kept>>);

impl DryRuns {
    pub fn keep(&self, run: i64, changes: Vec<Change>) {
        let mut kept = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        kept.retain(|(_, at, _)| at.elapsed() < KEPT_FOR);
        while kept.len() >= KEPT_RUNS {
            kept.pop_front();
        }
        kept.push_back((run, Instant::now(), Arc::new(changes)));
    }

    /// The changes of dry run `run`, if they are kept.
    pub fn changes(&self, run: i64) -> Option<Arc<Vec<Change>>> {
        let kept = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        kept.iter()
            .find(|(id, at, _)| *id == run && at.elapsed() < KEPT_FOR)
            .map(|(_, _, changes)| changes.clone())
    }
}
