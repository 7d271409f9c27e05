//! The reference workload's day on one store, whatever its backend: the first load, the
//! full scan, the rescan after 1% of customers changed, and registrations one by one.
//! Run on SQLite and on PostgreSQL in one process, it shows what the shared store
//! costs against the embedded one (`benches/backends.rs`).

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, ensure};
use cohort_engine::{Engine, Trigger};
use cohort_host::{Host, HostConfig};
use cohort_model::Interner;
use cohort_store::Store;

use crate::generate::{self, AS_OF, Rng};
use crate::{Settings, registrations};

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

/// Every group's run at `at`, all at once; the changes they made.
fn scan(engine: &Engine, ids: &[String], at: i64) -> anyhow::Result<u64> {
    let mut changes = 0;
    for (id, r) in ids
        .iter()
        .zip(engine.run_groups(ids, Trigger::Manual, "bench", at, at))
    {
        let r = r.with_context(|| format!("group {id}"))?;
        ensure!(r.undecided == 0, "group {id}: {} undecided", r.undecided);
        changes += r.added + r.removed;
    }
    Ok(changes)
}

/// The day on `store`, which must be empty.
pub fn day(settings: &Settings, store: Arc<dyn Store>) -> anyhow::Result<Day> {
    let host = Host::new(HostConfig::default(), Arc::new(Interner::new()))?;
    let engine = Engine::new(store.clone(), host);
    for (id, wasm) in cohort_artifacts::STANDARD {
        let grant = (*id == "geoip-country").then_some(settings.geoip_dir.as_path());
        engine
            .add_plugin(wasm, grant, 0)
            .with_context(|| format!("plugin {id}"))?;
    }
    let groups = generate::groups(settings.seed);
    for g in &groups {
        engine.save_group(g, 0)?;
    }
    let ids: Vec<String> = groups.iter().map(|g| g.id.clone()).collect();
    let mut day = Day::default();

    let mut customers = generate::customers(settings.customers, settings.seed);
    let t = Instant::now();
    for chunk in customers.chunks(50_000) {
        store.upsert_customers(chunk, AS_OF)?;
    }
    day.load = t.elapsed().as_secs_f64();

    let t = Instant::now();
    day.added = scan(&engine, &ids, AS_OF)?;
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
    day.rescan_changes = scan(&engine, &ids, AS_OF + 60)?;
    day.rescan = t.elapsed().as_secs_f64();

    let t = Instant::now();
    (day.registration_p50_ms, day.registration_p99_ms) = registrations(&engine, settings, 0)?;
    day.registrations_per_second = settings.registrations as f64 / t.elapsed().as_secs_f64();
    Ok(day)
}
