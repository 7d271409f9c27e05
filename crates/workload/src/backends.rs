//! The reference workload's day on one store, whatever its backend: the first load, the
//! full scan, the rescan after 1% of customers changed, and registrations one by one.
//! Run on SQLite and on PostgreSQL in one process, it shows what the shared store
//! costs against the embedded one (`benches/backends.rs`).

use std::sync::Arc;
use std::time::Instant;

use cohort_host::{Host, HostConfig};
use cohort_model::Interner;
use cohort_store::Store;

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
    let ids: Vec<String> = groups.iter().map(|g| g.id.clone()).collect();
    let mut day = Day::default();

    let mut customers = generate::customers(settings.customers, settings.seed);
    let t = Instant::now();
    for chunk in customers.chunks(50_000) {
        store.upsert_customers(chunk, AS_OF)?;
    }
    day.load = t.elapsed().as_secs_f64();

    let t = Instant::now();
    day.added = scan(&engine, &ids, AS_OF)?.added;
    day.scan = t.elapsed().as_secs_f64();

    let mut rng = Rng::new(settings.seed ^ 0x00C4_A66E);
    let mut batch = Vec::new();
    for _ in 0..(settings.customers / 100).max(1) {
        let i = rng.below(customers.len());
        generate::change(&mut rng, &mut customers[i]);
        batch.push(customers[i].clone());
    }
    store.upsert_customers(&batch, AS_OF + 60)?;
    let t = Instant::now();
    let rescanned = scan(&engine, &ids, AS_OF + 60)?;
    day.rescan_changes = rescanned.added + rescanned.removed;
    day.rescan = t.elapsed().as_secs_f64();

    let t = Instant::now();
    (day.registration_p50_ms, day.registration_p99_ms) = registrations(&engine, settings, 0)?;
    day.registrations_per_second = settings.registrations as f64 / t.elapsed().as_secs_f64();
    Ok(day)
}
