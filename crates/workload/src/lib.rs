//! The reference workload and its baselines, measured side by side in one run.
//!
//! [`generate`] makes a seeded platform (customers and 24 groups); [`run`] loads it
//! into an embedded store and measures Cohort's full scan and rescan, evaluation
//! through the plugins, the same conditions in native Rust ([`native`]), the same
//! memberships computed by SQL over the same store ([`sql`]), one plugin call per
//! customer, and registration latency. It checks that Cohort, native Rust and SQL agree
//! on every group they can all express before it reports anything.

pub mod backends;
pub mod floor;
pub mod generate;
pub mod native;
pub mod sql;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use cohort_engine::{Engine, Trigger};
use cohort_host::{Host, HostConfig};
use cohort_model::{Customer, Interner};
use cohort_store::prelude::*;
use cohort_store_sqlite::SqliteStore;

use generate::{AS_OF, Rng};
use native::NativeRule;

/// What to run.
#[derive(Clone, Debug)]
pub struct Settings {
    pub customers: u64,
    pub seed: u64,
    /// The directory with MaxMind's test database, granted to geoip-country.
    pub geoip_dir: PathBuf,
    /// New customers registered one by one for the latency figures.
    pub registrations: usize,
}

/// Seconds of wall and CPU time, and resident memory: the peak while the phase ran and
/// what the process held when it began (mostly the generator's own records, which the
/// benchmark keeps for its baselines).
#[derive(Clone, Copy, Debug, Default)]
pub struct Cost {
    pub wall: f64,
    pub cpu: f64,
    pub peak_mib: f64,
    pub before_mib: f64,
}

impl Cost {
    /// What the phase itself held at its peak, above what the process held before.
    pub fn own_mib(&self) -> f64 {
        self.peak_mib - self.before_mib
    }
}

#[derive(Debug, Default)]
pub struct Report {
    pub customers: u64,
    pub groups: usize,
    pub memberships: u64,
    pub load: Cost,
    pub scan: Cost,
    /// The scan's rows written again by SQLite alone (see [`floor`]).
    pub floor: Cost,
    pub rescan: Cost,
    pub changed: u64,
    /// Plugin evaluations (a customer against a condition) each scan made.
    pub scan_evaluations: u64,
    pub rescan_evaluations: u64,
    /// A rescan with nothing changed since the last, and one as of a month later.
    pub unchanged: Cost,
    pub unchanged_evaluations: u64,
    pub later: Cost,
    pub later_evaluations: u64,
    /// What the rescan a month later changed (subscriptions that began or ended).
    pub later_changes: u64,
    /// The scan's seconds for the groups SQL can express, and SQL's for the same.
    pub scan_comparable: f64,
    pub sql: Cost,
    pub sql_groups: usize,
    /// Condition evaluations per second on one core.
    pub wasm_eval_rate: f64,
    pub native_eval_rate: f64,
    pub one_call_rate: f64,
    /// Plugin evaluations the native comparison covers (GeoIP excluded).
    pub compared_conditions: usize,
    /// On a quiet store.
    pub registration_p50_ms: f64,
    pub registration_p99_ms: f64,
    /// Right after the rescan, while its writes reach the disk.
    pub registration_busy_p50_ms: f64,
    pub registration_busy_p99_ms: f64,
}

/// CPU seconds this process has used (user + system).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are 14 and 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // The kernel reports in USER_HZ, 100 on Linux.
    (ticks(11) + ticks(12)) / 100.0
}

/// A line of `/proc/self/status` in MiB: `VmHWM` (peak resident) or `VmRSS`.
fn status_mib(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn measure<T>(f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<(T, Cost)> {
    // "5" resets the peak to the current resident size (Linux 4.0 and later), so that
    // the peak is this phase's; where it cannot, the peak is the process's so far.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let before_mib = status_mib("VmRSS");
    let (wall, cpu) = (Instant::now(), cpu_seconds());
    let value = f()?;
    Ok((
        value,
        Cost {
            wall: wall.elapsed().as_secs_f64(),
            cpu: cpu_seconds() - cpu,
            peak_mib: status_mib("VmHWM"),
            before_mib,
        },
    ))
}

fn active(store: &dyn Store, group: &str) -> anyhow::Result<BTreeSet<String>> {
    Ok(store
        .group_memberships(group)?
        .into_iter()
        .filter(|m| m.is_active(AS_OF))
        .map(|m| m.customer)
        .collect())
}

/// An engine on `store` with every standard plugin and the workload's groups: the
/// platform the workload runs on; and the groups.
pub fn platform(
    settings: &Settings,
    store: Arc<dyn Store>,
    host: Host,
) -> anyhow::Result<(Engine, Vec<cohort_model::Group>)> {
    let engine = Engine::new(store, host);
    for (id, wasm) in cohort_artifacts::STANDARD {
        let grant = (*id == "geoip-country").then_some(settings.geoip_dir.as_path());
        engine
            .add_plugin_as(wasm, grant, cohort_engine::Provenance::Standard, 0)
            .with_context(|| format!("plugin {id}"))?;
    }
    let groups = generate::groups(settings.seed);
    for g in &groups {
        engine.save_group(g, 0)?;
    }
    Ok((engine, groups))
}

/// What a scan of several groups did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Scanned {
    pub added: u64,
    pub removed: u64,
}

/// Every group of `ids` run at `at`, all at once, as "run all groups" does; each must
/// decide every customer.
pub fn scan(engine: &Engine, ids: &[String], at: i64) -> anyhow::Result<Scanned> {
    let mut scanned = Scanned::default();
    for (id, r) in ids
        .iter()
        .zip(engine.run_groups(ids, Trigger::Manual, "bench", at, at))
    {
        let r = r.with_context(|| format!("group {id}"))?;
        ensure!(r.undecided == 0, "group {id}: {} undecided", r.undecided);
        scanned.added += r.added;
        scanned.removed += r.removed;
    }
    Ok(scanned)
}

pub fn run(settings: &Settings, progress: &mut dyn FnMut(&str)) -> anyhow::Result<Report> {
    let mut report = Report {
        customers: settings.customers,
        ..Report::default()
    };
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("reference.db");
    let store = Arc::new(SqliteStore::open(&db)?);
    let host = Host::new(HostConfig::default(), Arc::new(Interner::new()))?;
    let (engine, groups) = platform(settings, store.clone(), host.clone())?;
    report.groups = groups.len();

    progress("generating and loading customers");
    let mut customers = generate::customers(settings.customers, settings.seed);
    let ((), load) = measure(|| {
        for chunk in customers.chunks(50_000) {
            store.upsert_customers(chunk, AS_OF)?;
        }
        Ok(())
    })?;
    report.load = load;
    // The store as the scan finds it, for scanning the groups SQL can express on their
    // own (see below).
    let unscanned = dir.path().join("unscanned.db");
    rusqlite::Connection::open(&db)?.execute("VACUUM INTO ?1", [unscanned.to_string_lossy()])?;
    // On disk before the scan starts, so that the scan does not share the disk with
    // the copy's writeback.
    std::fs::File::open(&unscanned)?.sync_all()?;

    let interner = Interner::new();
    let comparable: Vec<usize> = (0..groups.len())
        .filter(|&i| {
            sql::members_query(&groups[i], AS_OF).is_some()
                && NativeRule::compile(&groups[i], &interner).is_some()
        })
        .collect();
    let ids = |pick: &dyn Fn(usize) -> bool| -> Vec<String> {
        (0..groups.len())
            .filter(|&i| pick(i))
            .map(|i| groups[i].id.clone())
            .collect()
    };
    let (sql_ids, all) = (ids(&|i| comparable.contains(&i)), ids(&|_| true));
    let scan_groups = |engine: &Engine, ids: &[String], at: i64| Ok(scan(engine, ids, at)?.added);

    progress("full scan");
    // All groups at once, as an operator's "run every group" does.
    let evaluated = || engine.stats().evaluations;
    let before = evaluated();
    let (added, cost) = measure(|| scan_groups(&engine, &all, AS_OF))?;
    report.scan = cost;
    report.memberships = added;
    report.scan_evaluations = evaluated() - before;

    progress("the groups SQL can express, scanned on their own");
    // On the copy taken before the scan, by an engine that has read no customers yet,
    // like the full scan; it shares the host, so its plugins are compiled already.
    {
        let engine = Engine::new(Arc::new(SqliteStore::open(&unscanned)?), host.clone());
        let t = Instant::now();
        let added = scan_groups(&engine, &sql_ids, AS_OF)?;
        report.scan_comparable = t.elapsed().as_secs_f64();
        let in_full_scan = sql_ids
            .iter()
            .map(|g| store.count_active(g, AS_OF))
            .sum::<Result<u64, _>>()?;
        ensure!(
            added == in_full_scan,
            "the groups SQL can express: {added} memberships on their own, {in_full_scan} in the full scan"
        );
    }
    std::fs::remove_file(&unscanned)?;

    progress("the scan's rows written again by SQLite alone");
    let mut replay = floor::Replay::prepare(&db, &dir.path().join("floor.db"))?;
    let (written, floor) = measure(|| replay.write())?;
    drop(replay);
    ensure!(
        written == added,
        "the replay wrote {written} memberships, the scan {added}"
    );
    report.floor = floor;

    progress("SQL baseline");
    report.sql_groups = comparable.len();
    let mut conn = rusqlite::Connection::open(&db)?;
    conn.execute_batch("CREATE TABLE sql_members (grp TEXT NOT NULL, customer TEXT NOT NULL)")?;
    let ((), sql_cost) = measure(|| {
        let tx = conn.transaction()?;
        for &i in &comparable {
            let query = sql::members_query(&groups[i], AS_OF).expect("comparable");
            tx.execute(
                &format!("INSERT INTO sql_members (grp, customer) SELECT ?1, id FROM ({query})"),
                [&groups[i].id],
            )?;
        }
        tx.commit()?;
        Ok(())
    })?;
    report.sql = sql_cost;

    progress("checking that Cohort, SQL and native Rust agree");
    let interned: Vec<Customer> = customers
        .iter()
        .map(|c| c.intern(&interner))
        .collect::<Result<_, _>>()?;
    for &i in &comparable {
        let g = &groups[i];
        let cohort = active(store.as_ref(), &g.id)?;
        let mut stmt = conn.prepare_cached("SELECT customer FROM sql_members WHERE grp = ?1")?;
        let by_sql: BTreeSet<String> = stmt
            .query_map([&g.id], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        let rule = NativeRule::compile(g, &interner).expect("comparable");
        let by_native: BTreeSet<String> = customers
            .iter()
            .zip(&interned)
            .filter(|(_, c)| rule.decide(c, AS_OF))
            .map(|(r, _)| r.id.clone())
            .collect();
        ensure!(
            cohort == by_sql,
            "group {}: Cohort has {} members, SQL {}",
            g.id,
            cohort.len(),
            by_sql.len()
        );
        ensure!(
            cohort == by_native,
            "group {}: Cohort has {} members, native {}",
            g.id,
            cohort.len(),
            by_native.len()
        );
    }

    progress("evaluation only: plugins, native Rust, one call per customer");
    let eval_host = Host::new(HostConfig::default(), Arc::new(Interner::new()))?;
    let facts: Vec<Customer> = customers
        .iter()
        .map(|c| c.intern(eval_host.interner()))
        .collect::<Result<_, _>>()?;
    let (mut wasm_time, mut native_time, mut one_time) =
        (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let (mut evaluations, mut one_calls) = (0u64, 0u64);
    let sample = facts.len().min(2_000);
    for g in &groups {
        for clause in &g.rule.all {
            for c in &clause.any {
                let (Some(native), Some(c)) =
                    (native::Native::compile(c, eval_host.interner()), c.plugin())
                else {
                    continue;
                };
                let wasm = cohort_artifacts::STANDARD
                    .iter()
                    .find(|(id, _)| *id == c.plugin)
                    .map(|(_, w)| *w)
                    .context("a standard plugin")?;
                let plugin = eval_host.load(wasm)?;
                let mut condition = plugin.prepare(&c.config.to_string(), None)?;
                let t = Instant::now();
                let verdicts = condition.evaluate(AS_OF, &facts).verdicts;
                wasm_time += t.elapsed();
                let t = Instant::now();
                let matches = facts.iter().filter(|f| native.holds(f, AS_OF)).count();
                native_time += t.elapsed();
                let by_wasm = (0..verdicts.len())
                    .filter(|&i| verdicts.get(i) == Some(cohort_model::VerdictRef::Match))
                    .count();
                ensure!(
                    by_wasm == matches,
                    "{}: wasm {by_wasm} matches, native {matches}",
                    c.plugin
                );
                let t = Instant::now();
                for f in &facts[..sample] {
                    condition.evaluate(AS_OF, std::slice::from_ref(f));
                }
                one_time += t.elapsed();
                evaluations += facts.len() as u64;
                one_calls += sample as u64;
                report.compared_conditions += 1;
            }
        }
    }
    report.wasm_eval_rate = evaluations as f64 / wasm_time.as_secs_f64();
    report.native_eval_rate = evaluations as f64 / native_time.as_secs_f64();
    report.one_call_rate = one_calls as f64 / one_time.as_secs_f64();

    progress("rescan after 1% of customers changed");
    let mut rng = Rng::new(settings.seed ^ 0x00C4_A66E);
    let changed = (settings.customers / 100).max(1);
    let mut batch = Vec::new();
    for _ in 0..changed {
        let i = rng.below(customers.len());
        generate::change(&mut rng, &mut customers[i]);
        batch.push(customers[i].clone());
    }
    store.upsert_customers(&batch, AS_OF + 60)?;
    report.changed = changed;
    // All groups at once, as the scheduler runs those that come due together.
    let before = evaluated();
    let (_, rescan) = measure(|| scan_groups(&engine, &all, AS_OF + 60))?;
    report.rescan = rescan;
    report.rescan_evaluations = evaluated() - before;

    // Right after the rescan the store is still copying its write-ahead log into the
    // database file and the kernel is writing back what the scans wrote: registrations
    // then share the disk with that. Measured again once it is done, on a quiet store.
    progress("registrations, while the scans' writes settle");
    let busy = registrations(&engine, settings, 0)?;
    conn.busy_timeout(Duration::from_secs(60))?;
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    progress("registrations, on a quiet store");
    let quiet = registrations(&engine, settings, settings.registrations as u64)?;
    (
        report.registration_busy_p50_ms,
        report.registration_busy_p99_ms,
    ) = busy;
    (report.registration_p50_ms, report.registration_p99_ms) = quiet;

    progress("rescans with nothing changed, and a month later");
    // The registrations' customers are new to the groups: one rescan takes them in.
    scan(&engine, &all, AS_OF + 180)?;
    let before = evaluated();
    let (_, unchanged) = measure(|| scan(&engine, &all, AS_OF + 240))?;
    report.unchanged = unchanged;
    report.unchanged_evaluations = evaluated() - before;
    let before = evaluated();
    let (later, cost) = measure(|| scan(&engine, &all, AS_OF + 30 * 86_400))?;
    report.later = cost;
    report.later_evaluations = evaluated() - before;
    report.later_changes = later.added + later.removed;
    Ok(report)
}

/// Register `settings.registrations` new customers one by one (numbered from `first`);
/// the p50 and p99 of their latency in milliseconds.
pub(crate) fn registrations(
    engine: &Engine,
    settings: &Settings,
    first: u64,
) -> anyhow::Result<(f64, f64)> {
    let mut rng = Rng::new(settings.seed ^ 0x4E6 ^ first);
    let mut latencies = Vec::with_capacity(settings.registrations);
    for i in first..first + settings.registrations as u64 {
        let mut record = generate::customer(&mut rng, i);
        record.id = format!("new{i:08}");
        let t = Instant::now();
        let r = engine.upsert_customer(&record, AS_OF + 120)?;
        latencies.push(t.elapsed());
        ensure!(
            r.new && r.undecided.is_empty(),
            "registration of {}",
            record.id
        );
    }
    latencies.sort();
    let q = |p: f64| {
        latencies
            .get(((latencies.len().max(1) - 1) as f64 * p).round() as usize)
            .map_or(0.0, |d| d.as_secs_f64() * 1e3)
    };
    Ok((q(0.5), q(0.99)))
}

impl Report {
    /// The table the benchmark prints: absolute figures, ratios, targets.
    pub fn table(&self) -> String {
        let ok = |holds: bool| if holds { "holds" } else { "missed" };
        let r = self;
        let full = |c: &Cost| {
            format!(
                "{:.2} s wall, {:.2} s CPU, peak {:.0} MiB ({:.0} MiB held before)",
                c.wall, c.cpu, c.peak_mib, c.before_mib
            )
        };
        let sql_ratio = r.scan_comparable / r.sql.wall;
        let native_ratio = r.native_eval_rate / r.wasm_eval_rate;
        [
            format!("reference workload: {} customers, {} groups, {} cores", r.customers, r.groups,
                std::thread::available_parallelism().map_or(0, |n| n.get())),
            "| measure | Cohort | baseline | ratio (Cohort / baseline) | target |".into(),
            "| --- | --- | --- | --- | --- |".into(),
            format!("| load customers into the store | {} | - | - | - |", full(&r.load)),
            format!("| full scan, {} memberships added | {} | - | - | ≤ 10 s at 1M: {}; ≤ 1.5 GiB above what was held before: {} |", r.memberships, full(&r.scan),
                ok(r.scan.wall * 1_000_000.0 / r.customers as f64 <= 10.0), ok(r.scan.own_mib() <= 1536.0)),
            format!("| the scan's rows written again by SQLite alone, without Cohort | - | {:.2} s wall, {:.2} s CPU | {:.2} | - |",
                r.floor.wall, r.floor.cpu, r.scan.wall / r.floor.wall),
            format!("| full scan's plugin evaluations | {} | - | - | - |", r.scan_evaluations),
            format!("| rescan after {} customers changed, {} evaluations | {} | full scan {:.2} s | {:.3} | ≤ 0.3 s at 1M: {} |", r.changed, r.rescan_evaluations, full(&r.rescan),
                r.scan.wall, r.rescan.wall / r.scan.wall, ok(r.rescan.wall * 1_000_000.0 / r.customers as f64 <= 0.3)),
            format!("| rescan with nothing changed, {} evaluations | {} | full scan {:.2} s | {:.3} | ≤ 0.1 s at 1M: {} |", r.unchanged_evaluations, full(&r.unchanged),
                r.scan.wall, r.unchanged.wall / r.scan.wall, ok(r.unchanged.wall * 1_000_000.0 / r.customers as f64 <= 0.1)),
            format!("| rescan as of 30 days later, nothing else changed: {} evaluations, {} changes | {} | full scan {:.2} s | {:.3} | - |", r.later_evaluations, r.later_changes, full(&r.later),
                r.scan.wall, r.later.wall / r.scan.wall),
            format!("| scan of the {} groups SQL can express vs SQL | {:.2} s | {:.2} s (SQL) | {sql_ratio:.2} | ≤ 1: {} |",
                r.sql_groups, r.scan_comparable, r.sql.wall, ok(sql_ratio <= 1.0)),
            format!("| evaluations/s/core, {} conditions: plugins vs native Rust | {:.0} | {:.0} (native) | {:.2}x slower | ≤ 2x: {} |",
                r.compared_conditions, r.wasm_eval_rate, r.native_eval_rate, native_ratio, ok(native_ratio <= 2.0)),
            format!("| evaluations/s/core: batched vs one call per customer | {:.0} | {:.0} (one call) | {:.0}x faster | - |",
                r.wasm_eval_rate, r.one_call_rate, r.wasm_eval_rate / r.one_call_rate),
            format!("| registration against {} groups, in-process, quiet store | p50 {:.3} ms, p99 {:.3} ms | - | - | p99 ≤ 1 ms: {} |",
                r.groups, r.registration_p50_ms, r.registration_p99_ms, ok(r.registration_p99_ms <= 1.0)),
            format!("| the same right after the rescan, while its writes reach the disk | p50 {:.3} ms, p99 {:.3} ms | - | - | - |",
                r.registration_busy_p50_ms, r.registration_busy_p99_ms),
        ]
        .join("\n")
    }
}
