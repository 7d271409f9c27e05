//! Scans shared by workers: a scan of one or more groups is cut into ranges of
//! customer ids, recorded in the store; any process claims a range for a while (a
//! lease it renews), works it, and commits the range's changes with its completion in
//! one transaction. A worker that dies loses its lease, and another takes the range
//! from the start: nothing is lost and nothing is written twice.
//!
//! Only a store that many processes share implements [`Scans`] (see
//! [`crate::Runs::scans`]); on the embedded store a run is one process's transaction.

use cohort_model::{Held, Timestamp};
use cohort_planner::Change;
use serde::Serialize;

use crate::{Applied, Cause, Result, RunRecord};

/// A scan to start: its runs (their records as `running`, without ids) and how they
/// go together.
#[derive(Clone, Debug)]
pub struct NewScan {
    pub runs: Vec<RunRecord>,
    /// Positions in `runs`, a job to a list: the runs of one job are decided one after
    /// another for each customer of a range, each planning against what the ones
    /// before it wrote (the groups of one exclusive set).
    pub jobs: Vec<Vec<usize>>,
    /// Customers per range, about.
    pub range_size: usize,
    pub at: Timestamp,
}

/// Where a scan stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ScanStatus {
    Running,
    Finished,
    Failed,
}

impl ScanStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ScanStatus::Running => "running",
            ScanStatus::Finished => "finished",
            ScanStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "running" => ScanStatus::Running,
            "finished" => ScanStatus::Finished,
            "failed" => ScanStatus::Failed,
            _ => return None,
        })
    }
}

/// A scan and its runs as they stand: each run's counts are the sums of its ranges
/// done so far.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ScanRecord {
    pub id: i64,
    pub status: ScanStatus,
    pub ranges: u64,
    /// Ranges committed.
    pub done: u64,
    /// Why a failed scan stopped.
    pub error: Option<String>,
    /// In the order the scan was started with.
    pub runs: Vec<RunRecord>,
}

/// A range claimed by a worker, until its lease lapses.
#[derive(Clone, Debug)]
pub struct Claim {
    pub scan: i64,
    pub range: i64,
    /// The range's first customer id; none: from the first customer.
    pub from: Option<String>,
    /// The first customer id past the range; none: to the last customer, also those
    /// registered after the scan started.
    pub to: Option<String>,
    /// The scan's runs, a job to a list, in order (see [`NewScan::jobs`]).
    pub jobs: Vec<Vec<RunRecord>>,
    pub worker: String,
    /// How many times the range has been claimed, this time included.
    pub attempt: u32,
}

impl Claim {
    /// Whether customer `id` is in the range (ids compare byte by byte).
    pub fn holds(&self, id: &str) -> bool {
        self.from.as_deref().is_none_or(|f| id >= f) && self.to.as_deref().is_none_or(|t| id < t)
    }
}

/// What one run decided in one range, besides the changes it applied.
#[derive(Clone, Debug, Default)]
pub struct RangeCounts {
    pub run: i64,
    pub customers: u64,
    pub matched: u64,
    pub undecided: u64,
    pub added: u64,
    pub removed: u64,
    pub failures: Vec<(String, u64)>,
    /// Why the run could not go on: it fails here, and later ranges skip it.
    pub error: Option<String>,
}

/// A range's transaction, as a worker plans in it: reads see what it wrote.
pub trait RangeWork {
    /// The memberships in `groups` of the range's customers, told to `each` as
    /// (customer, group, membership), a customer's in the store's order.
    fn holdings(&mut self, groups: &[&str], each: &mut dyn FnMut(&str, &str, Held)) -> Result<()>;
    /// The range's customers pinned out of `groups`: (customer, group).
    fn exclusions(&mut self, groups: &[&str]) -> Result<Vec<(String, String)>>;
    /// Apply batches of changes, as [`crate::Memberships::apply_batches`] does.
    fn apply(&mut self, batches: &[(&[Change], Cause<'_>)], at: Timestamp) -> Result<Vec<Applied>>;
}

/// The work of a range, done inside its transaction: the counts of each run.
pub type Work<'w> = dyn FnMut(&mut dyn RangeWork) -> Result<Vec<RangeCounts>> + 'w;

/// Scans recorded in the store and the ranges workers claim.
pub trait Scans: Send + Sync {
    /// Record the scan's runs as `running` and cut the customers into ranges. Refused
    /// (`Conflict`) while another scan of one of its groups runs: two scans planning
    /// one group's ranges apart would each add the same customers.
    fn start_scan(&self, scan: &NewScan) -> Result<ScanRecord>;
    /// Claim the first open range whose lease has lapsed or was never taken (of
    /// `scan` only, if given), for `lease` seconds by the store's clock.
    fn claim_range(&self, worker: &str, scan: Option<i64>, lease: u32) -> Result<Option<Claim>>;
    /// Keep the claim `lease` seconds more; false if it is no longer the worker's.
    fn renew_range(&self, claim: &Claim, lease: u32) -> Result<bool>;
    /// In one transaction: `work`, then the range's counts added to its runs and the
    /// range done; the last range done finishes the scan and its runs. `None`, and
    /// nothing written, if the range is no longer the worker's (its lease lapsed and
    /// another took it, or it was finished or the scan failed meanwhile).
    fn finish_range(
        &self,
        claim: &Claim,
        at: Timestamp,
        work: &mut Work<'_>,
    ) -> Result<Option<ScanRecord>>;
    /// The range could not be worked (`error` says why): the scan and its runs fail,
    /// and its ranges not yet done are given up. Ranges done stay done.
    fn fail_range(&self, claim: &Claim, error: &str, at: Timestamp) -> Result<()>;
    fn scan(&self, id: i64) -> Result<Option<ScanRecord>>;
    /// The scan that holds run `run`, if any.
    fn scan_of_run(&self, run: i64) -> Result<Option<ScanRecord>>;
    /// Stop a running scan: its open ranges are given up (a range being worked is
    /// refused at its finish), its runs end `cancelled` with `reason`, and it fails with
    /// it. Ranges done stay done. Whether it was running.
    fn cancel_scan(&self, scan: i64, reason: &str, at: Timestamp) -> Result<bool>;
}
