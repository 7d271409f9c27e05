//! Runs shared by workers, on a store many processes share (`Scans`): a scan of
//! several groups is cut into ranges of customer ids, and any process works a range
//! it claims: every run of the scan over the range's customers, written with the
//! range's completion in one transaction.
//!
//! The verdicts come first, outside the transaction: they depend on the customers'
//! facts alone. The plans come inside it, from the range's memberships as the
//! transaction reads them, so that the groups of an exclusive set, planned one after
//! another, each see what the ones before wrote for the same customer.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use cohort_model::{Group, Held, Timestamp};
use cohort_planner::{Change, rule_actor};
use cohort_store::{
    Applied, Cause, Claim, NewScan, RangeCounts, RangeWork, RunRecord, RunStatus, ScanRecord,
    ScanStatus, Scans,
};

use crate::facts::Facts;
use crate::run::new_run;
use crate::{Engine, EngineError, FastMap, Result, Trigger};

mod range;

use range::{Decided, Prepared, members_in, plan_range, standing};

/// Customers per range: a range's verdicts and plans take a fraction of a second,
/// and a scan of a million customers makes twenty ranges, enough for several workers
/// to share evenly.
pub const RANGE_SIZE: usize = 50_000;

/// A claim still unfinished after this many workers took it is given up, and its scan
/// fails: something in the range stops every worker that tries it. Ten: a range is taken again only after its worker died or stalled, each time a
/// lease later, so a range that kills its workers fails its scan within ten leases,
/// while bad luck (workers stopped or moved by their operators) does not.
const MOST_ATTEMPTS: u32 = 10;

/// Times a range whose transaction the database ended (a deadlock, a serialization
/// failure) is done again before its worker gives it up to the lease.
const BUSY_TRIES: u64 = 5;

/// Seconds a claim lasts unless renewed (renewed at a third of it): how long a range
/// waits for another worker when its worker dies.
pub const LEASE_SECONDS: u32 = 30;

/// How a worker's claim on a range ended.
#[derive(Debug)]
pub enum Worked {
    /// Committed: the scan as it stands after.
    Done(ScanRecord),
    /// The lease lapsed and another worker took the range: nothing was written.
    Lost,
    /// The range was tried too often, or could not be worked; the scan failed.
    Failed(String),
}

/// A claimed range's work, as a worker reports it.
#[derive(Debug)]
pub struct RangeReport {
    pub scan: i64,
    pub range: i64,
    pub customers: usize,
    pub added: u64,
    pub removed: u64,
    pub worked: Worked,
    /// The changes written, when asked for.
    pub changes: Vec<Change>,
}

/// Each worker's name is unique per claim: two claims of one process must not pass
/// for each other.
static CLAIMS: AtomicU64 = AtomicU64::new(0);

fn claimant(worker: &str) -> String {
    format!("{worker}#{}", CLAIMS.fetch_add(1, Ordering::Relaxed))
}

/// The customer positions in id order, for the facts snapshot they were made from.
///
/// The snapshot is held weakly: held strongly, the next refresh of the customer cache
/// would find it shared and copy it whole. A weak reference keeps its allocation, so a
/// later snapshot cannot take its address and pass for it.
#[derive(Default)]
pub(crate) struct IdOrder(Mutex<Option<Ordered>>);

/// A facts snapshot, and its positions in id order.
type Ordered = (Weak<Facts>, Arc<Vec<u32>>);

impl IdOrder {
    fn of(&self, facts: &Arc<Facts>) -> Arc<Vec<u32>> {
        let mut kept = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((f, order)) = kept.as_ref()
            && std::ptr::eq(f.as_ptr(), Arc::as_ptr(facts))
        {
            return order.clone();
        }
        let mut order: Vec<u32> = (0..facts.ids.len() as u32).collect();
        order.sort_unstable_by(|&a, &b| facts.ids[a as usize].cmp(&facts.ids[b as usize]));
        let order = Arc::new(order);
        *kept = Some((Arc::downgrade(facts), order.clone()));
        order
    }
}

impl Engine {
    /// The scan of `runnable`'s groups on a shared store, started and then worked by
    /// this process beside any workers until its last range is done. `progress` is
    /// told (ranges done, ranges) as ranges finish. Returns the scan as it ended and
    /// the changes this process wrote, if `keep_changes`.
    #[allow(
        clippy::too_many_arguments,
        reason = "a run's facts as `run_group` takes them, and what this caller wants back"
    )]
    pub(crate) fn scan_groups(
        &self,
        scans: &dyn Scans,
        runnable: &[(usize, Group)],
        trigger: Trigger,
        actor: &str,
        as_of: Timestamp,
        now: Timestamp,
        keep_changes: bool,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<(ScanRecord, Vec<Change>)> {
        let scan = self.record_scan(scans, runnable, trigger, actor, as_of, now)?;
        self.work_scan(scans, scan, now, keep_changes, progress)
    }

    /// Work the ranges of a recorded scan beside any workers until it ends (it may be
    /// cancelled meanwhile): the scan as it ended, and the changes this process wrote
    /// (if `keep_changes`).
    pub(crate) fn work_scan(
        &self,
        scans: &dyn Scans,
        scan: ScanRecord,
        now: Timestamp,
        keep_changes: bool,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<(ScanRecord, Vec<Change>)> {
        let worker = worker_name();
        let mut changes = Vec::new();
        loop {
            let mut first_error = None;
            self.work_ranges(
                scans,
                &worker,
                Some(scan.id),
                LEASE_SECONDS,
                now,
                keep_changes,
                &AtomicBool::new(false),
                &mut |report| match report {
                    Ok(report) => {
                        if let Worked::Done(s) = &report.worked {
                            progress(s.done as usize, s.ranges as usize);
                        }
                        changes.extend(report.changes);
                    }
                    Err(e) => drop(first_error.get_or_insert(e)),
                },
            );
            if let Some(e) = first_error {
                return Err(e);
            }
            // Every open range is someone's: wait for them, or for their lease to
            // lapse, when the next claim takes it over.
            let s = scans.scan(scan.id)?.ok_or_else(|| EngineError::NotFound {
                what: "scan",
                id: scan.id.to_string(),
            })?;
            if s.status != ScanStatus::Running {
                progress(s.done as usize, s.ranges as usize);
                return Ok((s, changes));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Work ranges (of `scan` only, if given) on every core, one range to a core at a
    /// time, until none is free to claim or `stop` is set; `each` is told of every
    /// range, or of the error that stopped a core, on the calling thread.
    #[allow(
        clippy::too_many_arguments,
        reason = "what `work_range` takes, and where its reports go"
    )]
    pub fn work_ranges(
        &self,
        scans: &dyn Scans,
        worker: &str,
        scan: Option<i64>,
        lease: u32,
        now: Timestamp,
        keep_changes: bool,
        stop: &AtomicBool,
        each: &mut dyn FnMut(Result<RangeReport>),
    ) {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let (told, reports) = std::sync::mpsc::channel::<Result<RangeReport>>();
        std::thread::scope(|scope| {
            for _ in 0..cores {
                let told = told.clone();
                scope.spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let report = self.work_range(scans, worker, scan, lease, now, keep_changes);
                        let done = !matches!(report, Ok(Some(_)));
                        if let Some(report) = report.transpose() {
                            // The caller outlives the cores.
                            let _ = told.send(report);
                        }
                        if done {
                            break;
                        }
                    }
                });
            }
            drop(told);
            for report in reports {
                each(report);
            }
        });
    }

    /// Record a scan of `runnable`'s groups and its ranges.
    pub(crate) fn record_scan(
        &self,
        scans: &dyn Scans,
        runnable: &[(usize, Group)],
        trigger: Trigger,
        actor: &str,
        as_of: Timestamp,
        now: Timestamp,
    ) -> Result<ScanRecord> {
        let runs: Vec<RunRecord> = runnable
            .iter()
            .map(|(_, g)| new_run(g, trigger, false, actor, as_of, now))
            .collect();
        let jobs = self.jobs(runnable, trigger, as_of, usize::MAX);
        Ok(scans.start_scan(&NewScan {
            runs,
            jobs,
            range_size: self.range_size.load(Ordering::Relaxed),
            at: now,
        })?)
    }

    /// Record a scan of the groups `ids` (those that may run) for workers to carry
    /// out, and return at once: the scan as recorded, and why any group was left out.
    /// Only a store many processes share keeps scans.
    pub fn start_scan(
        &self,
        ids: &[String],
        actor: &str,
        as_of: Timestamp,
        now: Timestamp,
    ) -> Result<(ScanRecord, Vec<EngineError>)> {
        let scans = self.scans()?;
        let mut runnable = Vec::new();
        let mut left_out = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            match self.runnable(id, Trigger::Manual) {
                Ok(group) => runnable.push((i, group)),
                Err(e) => left_out.push(e),
            }
        }
        let scan = self.record_scan(scans, &runnable, Trigger::Manual, actor, as_of, now)?;
        Ok((scan, left_out))
    }

    /// The store's scans, where it keeps them.
    pub fn scans(&self) -> Result<&dyn Scans> {
        self.store.scans().ok_or(EngineError::NoScans)
    }

    /// Cut the scans this engine starts into ranges of about `n` customers
    /// (`RANGE_SIZE` unless told).
    pub fn set_range_size(&self, n: usize) {
        self.range_size.store(n.max(1), Ordering::Relaxed);
    }

    /// Claim one open range (of `scan` only, if given) for `lease` seconds, renewed
    /// while it is worked, and work it. `None` when no range is free. `now` stamps a
    /// scan that this range finishes.
    pub fn work_range(
        &self,
        scans: &dyn Scans,
        worker: &str,
        scan: Option<i64>,
        lease: u32,
        now: Timestamp,
        keep_changes: bool,
    ) -> Result<Option<RangeReport>> {
        let mut prepared = Prepared::default();
        self.work_range_with(scans, worker, scan, lease, now, keep_changes, &mut prepared)
    }

    /// [`Engine::work_range`], with conditions kept prepared from range to range.
    #[allow(
        clippy::too_many_arguments,
        reason = "what `work_range` takes, and the core's prepared conditions"
    )]
    fn work_range_with(
        &self,
        scans: &dyn Scans,
        worker: &str,
        scan: Option<i64>,
        lease: u32,
        now: Timestamp,
        keep_changes: bool,
        prepared: &mut Prepared,
    ) -> Result<Option<RangeReport>> {
        let name = claimant(worker);
        let lease = lease.max(1);
        // The customers first, before a range is claimed: a worker's first load takes
        // seconds at a million customers, and a range claimed meanwhile would be held
        // (and, should the worker die then, taken again) for nothing. The range is
        // worked on this snapshot: a customer written since is planned by the next
        // scan, as one written during a run is.
        let facts = self.facts()?;
        let Some(claim) = scans.claim_range(&name, scan, lease)? else {
            return Ok(None);
        };
        let mut report = RangeReport {
            scan: claim.scan,
            range: claim.range,
            customers: 0,
            added: 0,
            removed: 0,
            worked: Worked::Lost,
            changes: Vec::new(),
        };
        if claim.attempt > MOST_ATTEMPTS {
            let problem = format!(
                "taken {} times, and no worker finished it (each stopped or lost its lease)",
                claim.attempt - 1
            );
            scans.fail_range(&claim, &problem, now)?;
            report.worked = Worked::Failed(problem);
            return Ok(Some(report));
        }
        // The lease is renewed from a thread of its own while the range is worked.
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let claimed = &claim;
        let outcome = std::thread::scope(|scope| {
            scope.spawn(move || {
                let every = Duration::from_millis(u64::from(lease) * 1000 / 3);
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(every)
                {
                    if !matches!(scans.renew_range(claimed, lease), Ok(true)) {
                        break;
                    }
                }
            });
            // Two ranges written at once may each wait for a lock the other holds (the
            // groups of an exclusive set are written one after another); the database
            // ends one, which is done again at once, the claim still its worker's.
            let mut tries = 0;
            // The snapshot read before the claim serves the first try; a retry reads
            // the customers again.
            let mut first = Some(facts);
            let outcome = loop {
                tries += 1;
                let facts = first.take().map_or_else(|| self.facts(), Ok);
                match facts.and_then(|facts| {
                    self.work_claim(
                        scans,
                        &claim,
                        facts,
                        now,
                        keep_changes,
                        prepared,
                        &mut report,
                    )
                }) {
                    Err(EngineError::Store(e)) if e.is_busy() && tries < BUSY_TRIES => {
                        std::thread::sleep(Duration::from_millis(20 * tries));
                    }
                    outcome => break outcome,
                }
            };
            drop(stop);
            outcome
        });
        report.worked = match outcome {
            Ok(Some(s)) => Worked::Done(s),
            Ok(None) => Worked::Lost,
            Err(e) => return Err(e),
        };
        if !matches!(report.worked, Worked::Done(_)) {
            report.changes.clear();
        }
        Ok(Some(report))
    }

    #[allow(
        clippy::too_many_arguments,
        reason = "the claim, what it is worked on, and where its report goes"
    )]
    fn work_claim(
        &self,
        scans: &dyn Scans,
        claim: &Claim,
        facts: Arc<Facts>,
        now: Timestamp,
        keep_changes: bool,
        prepared: &mut Prepared,
        report: &mut RangeReport,
    ) -> Result<Option<ScanRecord>> {
        let order = self.id_order.of(&facts);
        let from = claim.from.as_deref().map_or(0, |f| {
            order.partition_point(|&p| &*facts.ids[p as usize] < f)
        });
        let to = claim.to.as_deref().map_or(order.len(), |t| {
            order.partition_point(|&p| &*facts.ids[p as usize] < t)
        });
        let mut positions: Vec<usize> = order[from..to].iter().map(|&p| p as usize).collect();
        positions.sort_unstable();
        let range = facts.subset(&positions);
        drop(facts);
        report.customers = range.ids.len();
        let groups = self.groups()?;

        // Verdicts first, outside the transaction.
        let mut decided: Vec<Vec<Decided>> = Vec::new();
        for job in &claim.jobs {
            let mut this = Vec::new();
            for run in job.iter().filter(|r| r.status == RunStatus::Running) {
                this.push(self.decide(run, &groups, &range, prepared));
            }
            decided.push(this);
        }

        let mut kept: Vec<Change> = Vec::new();
        let mut written = (0, 0);
        let mut work = |tx: &mut dyn RangeWork| -> cohort_store::Result<Vec<RangeCounts>> {
            // What the range holds, read once: the pins of every run's group, and the
            // memberships of the groups outside exclusive sets, which no other run of
            // the scan writes. A set's groups are read one by one below, each after the
            // one before it wrote.
            let names: Vec<&str> = decided
                .iter()
                .flatten()
                .map(|d| d.run.group.as_str())
                .collect();
            let mut pinned: HashMap<String, HashSet<usize>> = HashMap::new();
            for (customer, group) in tx.exclusions(&names)? {
                if let Some(&at) = range.index.get(customer.as_str()) {
                    pinned.entry(group).or_default().insert(at);
                }
            }
            let referred_here: HashSet<String> = decided
                .iter()
                .flatten()
                .filter_map(|d| d.group.as_ref())
                .flat_map(Group::referred)
                .map(str::to_string)
                .collect();
            let alone: Vec<String> = decided
                .iter()
                .flatten()
                .filter(|d| d.alone(&referred_here))
                .map(|d| d.run.group.clone())
                .collect();
            let slot: HashMap<&str, usize> = alone
                .iter()
                .enumerate()
                .map(|(i, g)| (g.as_str(), i))
                .collect();
            let alone_names: Vec<&str> = alone.iter().map(String::as_str).collect();
            let mut held: Vec<Vec<(u32, Held)>> = vec![Vec::new(); alone.len()];
            tx.holdings(&alone_names, &mut |customer, group, h| {
                // A customer registered since this worker read the customers is
                // planned by the next scan, as one registered during a run is.
                if let (Some(&at), Some(&g)) = (range.index.get(customer), slot.get(group)) {
                    held[g].push((at as u32, h));
                }
            })?;
            let none = HashSet::new();
            let mut counts = Vec::new();
            // Runs outside an exclusive set, written together at the end: their
            // changes, their actor, and where their counts are.
            let mut pending: Vec<(Vec<Change>, String, usize, RunRecord)> = Vec::new();
            for job in &mut decided {
                for d in job.iter_mut() {
                    let pins = pinned.get(&d.run.group).unwrap_or(&none);
                    let actor = rule_actor(&d.run.group);
                    if d.alone(&referred_here) {
                        let own = slot
                            .get(d.run.group.as_str())
                            .map(|&g| std::mem::take(&mut held[g]))
                            .unwrap_or_default();
                        let changes = plan_range(d, &range, own, &FastMap::default(), pins);
                        pending.push((changes, actor, counts.len(), d.run.clone()));
                    } else {
                        if d.waiting.is_some() {
                            let referred = members_in(d, &range, tx)?;
                            d.decide_waiting(&range, &referred);
                        }
                        let (own, rivals) = match &d.group {
                            Some(group) => standing(group, &groups, d.run.as_of, &range, tx)?,
                            None => Default::default(),
                        };
                        let changes = plan_range(d, &range, own, &rivals, pins);
                        let cause = cause(&d.run, &actor);
                        let applied = tx.apply(&[(&changes, cause)], d.run.started_at)?;
                        if let Some(applied) = applied.first() {
                            count(&mut d.counts, applied);
                        }
                        if keep_changes {
                            kept.extend(changes);
                        }
                    }
                    counts.push(std::mem::take(&mut d.counts));
                }
            }
            if let Some((_, _, _, first)) = pending.first() {
                // One write for them all, at the time the scan started, the time of
                // every run of the scan.
                let at = first.started_at;
                let batches: Vec<(&[Change], Cause<'_>)> = pending
                    .iter()
                    .map(|(changes, actor, _, run)| (changes.as_slice(), cause(run, actor)))
                    .collect();
                let applied = tx.apply(&batches, at)?;
                drop(batches);
                for ((_, _, i, _), applied) in pending.iter().zip(&applied) {
                    count(&mut counts[*i], applied);
                }
                if keep_changes {
                    kept.extend(pending.into_iter().flat_map(|(c, _, _, _)| c));
                }
            }
            written = counts
                .iter()
                .fold((0, 0), |(a, r), c| (a + c.added, r + c.removed));
            Ok(counts)
        };
        let finished = scans.finish_range(claim, now, &mut work)?;
        if finished.is_some() {
            report.changes = kept;
            (report.added, report.removed) = written;
        }
        Ok(finished)
    }
}

/// The cause of a run's changes.
fn cause<'a>(run: &RunRecord, actor: &'a str) -> Cause<'a> {
    Cause {
        trigger: run.trigger,
        actor,
        run: Some(run.id),
    }
}

/// A run's applied changes, counted.
fn count(counts: &mut RangeCounts, applied: &Applied) {
    let (added, removed) = applied.counts();
    counts.added += added;
    counts.removed += removed;
}

/// This process's name among workers, as the store records who holds a range: the
/// machine's name and the process id.
pub fn worker_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    format!("{host}:{}", std::process::id())
}
