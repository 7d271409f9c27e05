//! The reference workload with its baselines, printed as a table.
//!
//! `cargo bench -p cohort-workload --bench reference` runs 100,000 customers (about a
//! minute); `-- --full` runs the reference size, 1,000,000; `-- --customers N` any.

use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut customers = 100_000;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--full" => customers = 1_000_000,
            "--customers" => {
                customers = it
                    .next()
                    .and_then(|n| n.parse().ok())
                    .ok_or_else(|| anyhow::anyhow!("--customers takes a number"))?;
            }
            "--bench" => {}
            other => anyhow::bail!("unknown argument `{other}` (use --full or --customers N)"),
        }
    }
    let settings = cohort_workload::Settings {
        customers,
        seed: 2026,
        geoip_dir: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata/geoip"),
        registrations: 2_000,
    };
    let started = std::time::Instant::now();
    let report = cohort_workload::run(&settings, &mut |step| {
        eprintln!("[{:>6.1} s] {step}", started.elapsed().as_secs_f64());
    })?;
    println!("{}", report.table());
    Ok(())
}
