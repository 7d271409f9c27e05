//! The reference workload's day (first load, full scan, rescan after 1% changed,
//! registrations) on the embedded store and on PostgreSQL, in one process, side by side;
//! and on PostgreSQL again with its scans carried out by two workers at once and its
//! registrations made through two servers at once (engines of their own, as processes
//! would be).
//!
//! `COHORT_TEST_POSTGRES=postgres://... cargo bench -p cohort-workload --bench backends`
//! runs 100,000 customers; `-- --customers N` any number. The PostgreSQL store is a
//! fresh schema on that server (`scripts/postgres start DIR` prints such a URL).

use std::path::PathBuf;
use std::sync::Arc;

use cohort_store_postgres::PgStore;
use cohort_store_sqlite::SqliteStore;
use cohort_workload::backends::{Day, day, shared};

fn main() -> anyhow::Result<()> {
    let mut customers = 100_000;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--customers" => {
                customers = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .ok_or_else(|| anyhow::anyhow!("--customers takes a number"))?;
            }
            "--bench" => {}
            other => anyhow::bail!("unknown argument `{other}` (use --customers N)"),
        }
    }
    let settings = cohort_workload::Settings {
        customers,
        seed: 2026,
        geoip_dir: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata/geoip"),
        registrations: 2_000,
    };
    let dir = tempfile::tempdir()?;
    eprintln!("SQLite ...");
    let sqlite = day(
        &settings,
        Arc::new(SqliteStore::open(dir.path().join("day.db"))?),
    )?;
    eprintln!("PostgreSQL ...");
    let url = cohort_store_postgres::scratch::fresh_url();
    let postgres = day(&settings, Arc::new(PgStore::connect(&url)?))?;
    anyhow::ensure!(
        (sqlite.added, sqlite.rescan_changes) == (postgres.added, postgres.rescan_changes),
        "the backends disagree: {sqlite:?} against {postgres:?}"
    );
    eprintln!("PostgreSQL, two workers ...");
    let url = cohort_store_postgres::scratch::fresh_url();
    let two = shared(
        &settings,
        &|| Ok(Arc::new(PgStore::connect(&url)?) as Arc<dyn cohort_store::Store>),
        2,
    )?;
    anyhow::ensure!(
        (sqlite.added, sqlite.rescan_changes) == (two.added, two.rescan_changes),
        "two workers disagree: {sqlite:?} against {two:?}"
    );
    let row = |what: &str, f: fn(&Day) -> f64, unit: &str| {
        let (s, p) = (f(&sqlite), f(&postgres));
        println!("{what:<28} {s:>12.3} {p:>12.3}  {unit:<6} {:>8.2}", p / s);
    };
    println!(
        "{customers} customers, 24 groups; {} memberships added by the full scan, {} changes by the rescan",
        sqlite.added, sqlite.rescan_changes
    );
    println!(
        "{:<28} {:>12} {:>12}  {:<6} {:>8}",
        "", "SQLite", "PostgreSQL", "", "PG/SQLite"
    );
    row("first load", |d| d.load, "s");
    row("full scan", |d| d.scan, "s");
    row("rescan after 1% changed", |d| d.rescan, "s");
    println!(
        "{:<28} {:>12.3} {:>12.3}  {:<6} {:>8.2}",
        "full scan, 2 workers",
        sqlite.scan,
        two.scan,
        "s",
        two.scan / sqlite.scan
    );
    println!(
        "{:<28} {:>12.3} {:>12.3}  {:<6} {:>8.2}",
        "rescan, 2 workers",
        sqlite.rescan,
        two.rescan,
        "s",
        two.rescan / sqlite.rescan
    );
    row("registration p50", |d| d.registration_p50_ms, "ms");
    row("registration p99", |d| d.registration_p99_ms, "ms");
    row(
        "registrations per second",
        |d| d.registrations_per_second,
        "/s",
    );
    println!(
        "{:<28} {:>12.3} {:>12.3}  {:<6} {:>8.2}",
        "registrations/s, 2 servers",
        sqlite.registrations_per_second,
        two.registrations_per_second,
        "/s",
        two.registrations_per_second / sqlite.registrations_per_second
    );
    Ok(())
}
