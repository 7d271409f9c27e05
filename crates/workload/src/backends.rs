//! The reference workload's day on one store, whatever its backend: the first load, the
//! full scan, the rescan after 1% of customers changed, and registrations one by one.
//! Run on SQLite and on PostgreSQL in one process, it shows what the shared store
//! costs against the embedded one (`benches/backends.rs`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use cohort_engine::{Engine, Trigger};
use cohort_host::{Host, HostConfig};
use cohort_model::{CustomerRecord, Interner};
use cohort_store::{ScanStatus, Store};

use crate::generate::{self, AS_OF, Rng};
use crate::{Settings, platform, registrations, scan};

/// Wall seconds of each phase, and what it did.
#[derive(Debug, Default)]
pub struct Day {
    pub load: f64,
    pub scan: f64,
    /// Memberships the full scan added.
    pub added: u64,
    pub rescan: f64,
    /// Changes the rescan made.
    pub rescan_changes: u64,
    pub registration_p50_ms: f64,
    pub registration_p99_ms: f64,
    pub registrations_per_second: f64,
}

/// The day on `store`, which must be empty.
pub fn day(settings: &Settings, store: Arc<dyn Store>) -> anyhow::Result<Day> {
    let host = Host::new(HostConfig::default(), Arc::new(Interner::new()))?;
    let (engine, groups) = platform(settings, store.clone(), host)?;
    engine.set_range_size(ranges_of(settings));
    let ids: Vec<String> = groups.iter().map(|g| g.id.clone()).collect();
    let mut day = Day::default();

    let t = Instant::now();
    let mut customers = load(settings, store.as_ref())?;
    day.load = t.elapsed().as_secs_f64();

    let t = Instant::now();
    day.added = scan(&engine, &ids, AS_OF)?.added;
    day.scan = t.elapsed().as_secs_f64();

    change_one_percent(settings, store.as_ref(), &mut customers)?;
    let t = Instant::now();
    let rescanned = scan(&engine, &ids, AS_OF + 60)?;
    day.rescan_changes = rescanned.added + rescanned.removed;
    day.rescan = t.elapsed().as_secs_f64();

    let t = Instant::now();
    (day.registration_p50_ms, day.registration_p99_ms) = registrations(&engine, settings, 0)?;
    day.registrations_per_second = settings.registrations as f64 / t.elapsed().as_secs_f64();
    Ok(day)
}

/// The day's customers, stored as a platform's first load sends them.
fn load(settings: &Settings, store: &dyn Store) -> anyhow::Result<Vec<CustomerRecord>> {
    let customers = generate::customers(settings.customers, settings.seed);
    for chunk in customers.chunks(50_000) {
        store.upsert_customers(chunk, AS_OF)?;
    }
    Ok(customers)
}

/// One customer in a hundred changed, the same ones on every store, and stored.
fn change_one_percent(
    settings: &Settings,
    store: &dyn Store,
    customers: &mut [CustomerRecord],
) -> anyhow::Result<()> {
    let mut rng = Rng::new(settings.seed ^ 0x00C4_A66E);
    let mut batch = Vec::new();
    for _ in 0..(settings.customers / 100).max(1) {
        let i = rng.below(customers.len());
        generate::change(&mut rng, &mut customers[i]);
        batch.push(customers[i].clone());
    }
    store.upsert_customers(&batch, AS_OF + 60)?;
    Ok(())
}

/// Customers per range of a shared store's scans: twenty ranges, as the default makes
/// of a million customers, whatever the size measured.
fn ranges_of(settings: &Settings) -> usize {
    usize::try_from(settings.customers / 20).map_or(usize::MAX, |n| n.max(1))
}

/// The day's scans on a shared store carried out by several workers at once, and
/// registrations through as many servers at once.
#[derive(Debug, Default)]
pub struct Shared {
    pub workers: usize,
    pub scan: f64,
    pub added: u64,
    pub rescan: f64,
    pub rescan_changes: u64,
    pub registrations_per_second: f64,
}

/// The day on a shared store from `connect` (a new connection to one empty store each
/// call), its scans carried out by `workers` workers, each an engine of its own as a
/// process of its own would be, and its registrations made through as many at once.
pub fn shared(
    settings: &Settings,
    connect: &dyn Fn() -> anyhow::Result<Arc<dyn Store>>,
    workers: usize,
) -> anyhow::Result<Shared> {
    let new_host = || Host::new(HostConfig::default(), Arc::new(Interner::new()));
    let store = connect()?;
    let (engine, groups) = platform(settings, store.clone(), new_host()?)?;
    let ids: Vec<String> = groups.iter().map(|g| g.id.clone()).collect();
    let crew: Vec<Engine> = (0..workers)
        .map(|_| Ok(Engine::new(connect()?, new_host()?)))
        .collect::<anyhow::Result<_>>()?;
    // Each worker's plugins compiled before the clock starts, as a worker that has been running has them (a dry run over no
    // customers prepares every condition).
    engine.set_range_size(ranges_of(settings));
    for worker in &crew {
        for id in &ids {
            worker.run_group(
                id,
                Trigger::Manual,
                true,
                "bench",
                AS_OF,
                AS_OF,
                &mut |_, _| {},
            )?;
        }
    }
    let mut shared = Shared {
        workers,
        ..Shared::default()
    };
    let mut customers = load(settings, store.as_ref())?;

    let t = Instant::now();
    let (added, _) = scan_with(&engine, &crew, &ids, AS_OF)?;
    shared.scan = t.elapsed().as_secs_f64();
    shared.added = added;

    change_one_percent(settings, store.as_ref(), &mut customers)?;
    let t = Instant::now();
    let (added, removed) = scan_with(&engine, &crew, &ids, AS_OF + 60)?;
    shared.rescan = t.elapsed().as_secs_f64();
    shared.rescan_changes = added + removed;

    let t = Instant::now();
    std::thread::scope(|scope| {
        let running: Vec<_> = crew
            .iter()
            .enumerate()
            .map(|(i, e)| scope.spawn(move || registrations(e, settings, i as u64 * 10_000_000)))
            .collect();
        running
            .into_iter()
            .try_for_each(|r| r.join().expect("registrations").map(|_| ()))
    })?;
    shared.registrations_per_second =
        (workers * settings.registrations) as f64 / t.elapsed().as_secs_f64();
    Ok(shared)
}

/// A scan of `ids` recorded by `starter` and carried out by `crew` at once; what it
/// added and removed.
fn scan_with(
    starter: &Engine,
    crew: &[Engine],
    ids: &[String],
    at: i64,
) -> anyhow::Result<(u64, u64)> {
    let (scan, left_out) = starter.start_scan(ids, "bench", at, at)?;
    anyhow::ensure!(left_out.is_empty(), "groups left out: {left_out:?}");
    let scans = starter.scans()?;
    std::thread::scope(|scope| {
        let running: Vec<_> = crew
            .iter()
            .enumerate()
            .map(|(i, worker)| {
                scope.spawn(move || -> anyhow::Result<()> {
                    let scans = worker.scans()?;
                    let name = format!("bench-{i}");
                    while worker
                        .work_range(scans, &name, Some(scan.id), 30, at, false)?
                        .is_some()
                    {}
                    Ok(())
                })
            })
            .collect();
        running
            .into_iter()
            .try_for_each(|r| r.join().expect("a worker"))
    })?;
    loop {
        let record = scans
            .scan(scan.id)?
            .ok_or_else(|| anyhow::anyhow!("scan {} is gone", scan.id))?;
        if record.status != ScanStatus::Running {
            anyhow::ensure!(
                record.status == ScanStatus::Finished,
                "scan {}: {:?}",
                scan.id,
                record.error
            );
            let mut counts = (0, 0);
            for r in &record.runs {
                anyhow::ensure!(
                    r.undecided == 0,
                    "group {}: {} undecided",
                    r.group,
                    r.undecided
                );
                counts.0 += r.added;
                counts.1 += r.removed;
            }
            return Ok(counts);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
