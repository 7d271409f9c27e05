//! What a condition written in Python costs per customer, against the same condition
//! in Rust, in batches of 1,024 and one customer per call, on the same customers in the
//! same process: time (median of several runs) and fuel, which does not depend on the
//! machine's load. The table goes in `wit/README.md`.
//!
//! `cargo bench -p cohort-python-plugins --bench cost [-- CUSTOMERS]`

use std::sync::Arc;
use std::time::{Duration, Instant};

use cohort_host::{Host, HostConfig, Limits};
use cohort_model::{Customer, CustomerRecord, Interner};

const COUNTRIES: [&str; 8] = ["DE", "FR", "GB", "US", "NL", "SE", "PL", "CN"];
const CONFIG: &str = r#"{"countries":["DE","FR","NL"]}"#;
const REPEATS: usize = 5;

fn main() {
    let n: usize = std::env::args()
        .filter_map(|a| a.parse().ok())
        .next()
        .unwrap_or(20_480);
    let interner = Arc::new(Interner::new());
    let customers: Vec<Customer> = (0..n)
        .map(|i| {
            CustomerRecord {
                id: format!("c{i}"),
                country: Some(COUNTRIES[i % COUNTRIES.len()].into()),
                ..CustomerRecord::default()
            }
            .intern(&interner)
            .expect("valid customer")
        })
        .collect();
    let python = std::fs::read(cohort_python_plugins::COUNTRY_PATH).expect("built by build.rs");
    let plugins: [(&str, &[u8]); 2] = [("Rust", cohort_artifacts::COUNTRY), ("Python", &python)];

    println!(
        "country condition over {n} customers, median of {REPEATS} runs, {} cores",
        std::thread::available_parallelism().map_or(1, |p| p.get())
    );
    println!(
        "{:<8} {:>6} {:>14} {:>16} {:>12}",
        "plugin", "batch", "ns/customer", "fuel/customer", "vs Rust"
    );
    let mut rust = [0.0f64; 2];
    let mut expected = None;
    for (language, wasm) in plugins {
        for (slot, batch) in [1024usize, 1].into_iter().enumerate() {
            let host = Host::new(
                HostConfig {
                    limits: Limits {
                        max_batch: batch,
                        ..Limits::default()
                    },
                    cache_dir: Some(
                        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("plugin-cache"),
                    ),
                    ..HostConfig::default()
                },
                Arc::clone(&interner),
            )
            .expect("host");
            let plugin = host.load(wasm).expect("plugin loads");
            let mut condition = plugin.prepare(CONFIG, None).expect("valid configuration");
            // Warm up (instances, memory), and check both languages agree before
            // their speed means anything.
            let first = condition.evaluate(0, &customers);
            assert!(first.failures.is_empty(), "{:?}", first.failures);
            let matched = first.verdicts.matches();
            assert_eq!(
                *expected.get_or_insert(matched),
                matched,
                "{language} disagrees"
            );
            let fuel = first.fuel_used as f64 / n as f64;
            let mut times: Vec<Duration> = (0..REPEATS)
                .map(|_| {
                    let started = Instant::now();
                    let evaluation = condition.evaluate(0, &customers);
                    assert_eq!(evaluation.verdicts.matches(), matched);
                    started.elapsed()
                })
                .collect();
            times.sort();
            let ns = times[REPEATS / 2].as_nanos() as f64 / n as f64;
            let ratio = if language == "Rust" {
                rust[slot] = ns;
                "1.0x".to_string()
            } else {
                format!("{:.0}x", ns / rust[slot])
            };
            println!("{language:<8} {batch:>6} {ns:>14.0} {fuel:>16.0} {ratio:>12}");
        }
    }
}
