//! Cost per customer of the country condition: through the wasm plugin in batches,
//! through the plugin one customer per call, and natively in Rust, on the same
//! customers in the same process. Prints a table with ratios to the native baseline.
//!
//! `cargo bench -p cohort-host --bench country [-- CUSTOMERS [BATCH]]`; naming a batch
//! size runs only that wasm path, which is what a profiler wants to see.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cohort_artifacts::COUNTRY;
use cohort_host::{Host, HostConfig, Limits};
use cohort_model::{Customer, CustomerRecord, Interner, Symbol};

const COUNTRIES: [&str; 24] = [
    "DE", "FR", "GB", "US", "NL", "BE", "AT", "CH", "IT", "ES", "PT", "PL", "CZ", "SE", "NO", "DK",
    "FI", "IE", "RU", "UA", "KZ", "BR", "IN", "CN",
];
const RULE: [&str; 6] = ["DE", "FR", "NL", "BE", "AT", "IT"];
const REPEATS: usize = 7;

fn main() {
    let numbers: Vec<usize> = std::env::args().filter_map(|a| a.parse().ok()).collect();
    let n = numbers.first().copied().unwrap_or(200_000);
    let batches = match numbers.get(1) {
        Some(&batch) => vec![batch],
        None => vec![1024, 64, 1],
    };
    let interner = Arc::new(Interner::new());
    let customers = generate(n, &interner);
    let config = format!(r#"{{"countries":{RULE:?}}}"#);

    let native_set: Vec<Symbol> = {
        let mut v: Vec<Symbol> = RULE.iter().map(|c| interner.intern(c)).collect();
        v.sort_unstable();
        v
    };
    let native = measure(n, || {
        customers
            .iter()
            .filter(|c| {
                c.country
                    .is_some_and(|s| native_set.binary_search(&s).is_ok())
            })
            .count()
    });

    let mut rows = vec![("native Rust (baseline)".to_string(), native)];
    for batch in batches {
        let host = Host::new(
            HostConfig {
                limits: Limits {
                    max_batch: batch,
                    ..Limits::default()
                },
                ..HostConfig::default()
            },
            Arc::clone(&interner),
        )
        .expect("host");
        let plugin = host.load(COUNTRY).expect("country loads");
        let mut condition = plugin.prepare(&config, None).expect("config");
        // The plugin must agree with the baseline before its speed means anything.
        let matched = condition.evaluate(0, &customers).verdicts.matches();
        assert_eq!(matched, native.1, "wasm and native disagree");
        let label = match batch {
            1 => "wasm, one call per customer".to_string(),
            _ => format!("wasm, batches of {batch}"),
        };
        let timing = measure(n, || condition.evaluate(0, &customers).verdicts.matches());
        rows.push((label, timing));
    }

    println!(
        "country condition over {n} customers ({} match), median of {REPEATS} runs, {} cores",
        native.1,
        std::thread::available_parallelism().map_or(1, |p| p.get())
    );
    println!(
        "{:<30} {:>14} {:>18}",
        "path", "ns/customer", "ratio to native"
    );
    let base = per_customer(native.0, n);
    for (label, (time, _)) in rows {
        let ns = per_customer(time, n);
        println!("{label:<30} {ns:>14.1} {:>17.1}x", ns / base);
    }
}

fn per_customer(d: Duration, n: usize) -> f64 {
    d.as_nanos() as f64 / n as f64
}

/// Median wall time of `REPEATS` runs of `f`, and its (checked identical) result.
fn measure(n: usize, mut f: impl FnMut() -> usize) -> (Duration, usize) {
    let mut times = Vec::with_capacity(REPEATS);
    let mut result = None;
    for _ in 0..REPEATS {
        let start = Instant::now();
        let r = black_box(f());
        times.push(start.elapsed());
        assert!(
            result.is_none_or(|prev| prev == r),
            "result changed between runs"
        );
        result = Some(r);
    }
    times.sort();
    assert!(n > 0);
    (times[REPEATS / 2], result.unwrap_or_default())
}

/// Deterministic customers: a fixed LCG picks each one's country; one in fifty has none.
fn generate(n: usize, interner: &Interner) -> Vec<Customer> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..n)
        .map(|i| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let pick = (state >> 33) as usize;
            CustomerRecord {
                id: i.to_string(),
                country: (!pick.is_multiple_of(50))
                    .then(|| COUNTRIES[pick % COUNTRIES.len()].to_string()),
                ..CustomerRecord::default()
            }
            .intern(interner)
            .expect("generated customer is valid")
        })
        .collect()
}
