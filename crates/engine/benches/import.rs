//! Importing a large customer-assignment file into the embedded store: rows per second
//! and the importing process's peak memory, next to a baseline — only reading and
//! parsing the same file — measured in the same run.
//!
//! `cargo bench -p cohort-engine --bench import [-- ROWS]` (default 1,000,000 rows over
//! 100,000 customers and 10 groups).
//!
//! The import runs in a child process so that its peak resident memory is its own, not
//! the setup's.

use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use cohort_engine::{Engine, ImportOptions};
use cohort_host::{Host, HostConfig};
use cohort_import::Options;
use cohort_model::{CustomerRecord, Group, Interner};
use cohort_store::prelude::*;
use cohort_store_sqlite::SqliteStore;

const CUSTOMERS: usize = 100_000;
const GROUPS: usize = 10;
const NOW: i64 = 1_795_564_800;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        child(&args[i + 1], &args[i + 2], &args[i + 3]);
        return;
    }
    let rows: usize = args
        .iter()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("bench.db");
    let csv = dir.path().join("assignments.csv");
    setup(&db, &csv, rows);
    let size = std::fs::metadata(&csv).map(|m| m.len()).unwrap_or(0);
    println!(
        "import benchmark: {rows} rows ({:.1} MiB) over {CUSTOMERS} customers and {GROUPS} groups, {} cores",
        size as f64 / (1 << 20) as f64,
        std::thread::available_parallelism().map_or(1, |p| p.get())
    );
    println!(
        "{:<34} {:>10} {:>14} {:>14}",
        "path", "seconds", "rows/second", "peak RSS MiB"
    );
    for mode in ["parse", "import"] {
        let out = Command::new(std::env::current_exe().expect("self"))
            .args(["--child", mode])
            .arg(&db)
            .arg(&csv)
            .output()
            .expect("child runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        print!("{}", String::from_utf8_lossy(&out.stdout));
    }
}

fn setup(db: &Path, csv: &Path, rows: usize) {
    let store = SqliteStore::open(db).expect("store");
    let customers: Vec<CustomerRecord> = (0..CUSTOMERS)
        .map(|i| CustomerRecord {
            id: format!("C-{i:07}"),
            ..CustomerRecord::default()
        })
        .collect();
    store.upsert_customers(&customers, NOW).expect("customers");
    for g in 0..GROUPS {
        let group: Group = serde_json::from_value(
            serde_json::json!({"id": format!("g{g}"), "name": format!("Group {g}")}),
        )
        .expect("group");
        store.put_group(&group, NOW).expect("group");
    }
    let mut out = BufWriter::new(std::fs::File::create(csv).expect("csv"));
    writeln!(
        out,
        "Customer #,Assigned Groups,Start Date & Time,End Date & Time"
    )
    .expect("write");
    // Row i puts customer i mod N in group (i / N) mod G in its own month: no two rows
    // clash, so every row is applied.
    for i in 0..rows {
        let month = 1 + (i / (CUSTOMERS * GROUPS)) % 12;
        let year = 2030 + i / (CUSTOMERS * GROUPS * 12);
        writeln!(
            out,
            "C-{:07},g{},{year}-{month:02}-01,{year}-{month:02}-20",
            i % CUSTOMERS,
            (i / CUSTOMERS) % GROUPS
        )
        .expect("write");
    }
}

/// Parse `csv` (mode `parse`) or import it into the store at `target`.
fn child(mode: &str, target: &str, csv: &str) {
    let options = Options {
        time_zone: chrono_tz::UTC,
        now: NOW,
        mapping: Default::default(),
    };
    let started = Instant::now();
    let rows = match mode {
        "parse" => {
            let file = std::fs::File::open(csv).expect("csv");
            cohort_import::open(file, options)
                .expect("opens")
                .filter(|r| r.is_ok())
                .count() as u64
        }
        _ => {
            let store = SqliteStore::open(target).expect("store");
            let host = Host::new(HostConfig::default(), Arc::new(Interner::new())).expect("host");
            let engine = Engine::new(Arc::new(store), host);
            let file = std::fs::File::open(csv).expect("csv");
            let report = engine
                .import(
                    file,
                    "assignments.csv",
                    ImportOptions {
                        read: options,
                        partial: false,
                        dry_run: false,
                    },
                    "bench",
                    NOW,
                    &mut |_| {},
                )
                .expect("import");
            assert_eq!(report.record.status, "applied", "{:?}", report.problems);
            report.record.added
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    let label = if mode == "parse" {
        "baseline: read and parse only"
    } else {
        "import: validate, check, apply"
    };
    println!(
        "{label:<34} {seconds:>10.2} {:>14.0} {:>14.1}",
        rows as f64 / seconds,
        peak_rss_mib()
    );
}

/// The process's peak resident set size, from /proc.
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}
