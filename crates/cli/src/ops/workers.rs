//! Workers, which carry out the scans recorded in a shared store, and the scans as
//! operators follow them.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::Args;
use cohort_engine::{Engine, RangeReport, Worked};
use cohort_store::{ScanRecord, ScanStatus};

use super::{StoreArgs, now, open, print_json};

#[derive(Args)]
pub struct WorkerArgs {
    /// This worker's name in the store's record of who holds a range [default: the
    /// machine's name and the process id]
    #[arg(long)]
    name: Option<String>,
    /// Seconds between looks for work while there is none
    #[arg(long, default_value_t = 1.0)]
    poll: f64,
    /// Seconds a claimed range stays this worker's unless renewed: how soon another
    /// worker takes it over when this one dies
    #[arg(long, default_value_t = cohort_engine::LEASE_SECONDS)]
    lease: u32,
    /// Stop once no range is left to claim, instead of waiting for the next scan (a
    /// worker takes one range at a time on each core)
    #[arg(long)]
    once: bool,
}

#[derive(Args)]
pub struct ScanArgs {
    /// The scan's id, as `cohort run --detach` printed it
    id: i64,
    /// Wait until the scan ends, showing its ranges as they finish
    #[arg(long)]
    wait: bool,
    /// Stop the scan: no range is claimed after this, those committed stay, and its
    /// runs end `cancelled`
    #[arg(long, conflicts_with = "wait")]
    cancel: bool,
}

/// Set once SIGINT or SIGTERM arrives: the range in hand is finished, then the worker
/// stops.
fn stop_on_signal() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    std::thread::spawn(move || {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        runtime.block_on(async {
            let Ok(mut term) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            else {
                return;
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        });
        flag.store(true, Ordering::Relaxed);
    });
    stop
}

pub fn worker(
    args: WorkerArgs,
    store: &StoreArgs,
    cache_dir: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let engine = open(store, cache_dir)?;
    let scans = engine.scans()?;
    let name = args.name.clone().unwrap_or_else(cohort_engine::worker_name);
    let stop = stop_on_signal();
    let poll = Duration::from_secs_f64(args.poll.clamp(0.01, 3600.0));
    let mut failed = false;
    eprintln!("worker `{name}` takes ranges of scans in the store");
    while !stop.load(Ordering::Relaxed) {
        let mut worked = false;
        engine.work_ranges(
            scans,
            &name,
            None,
            args.lease,
            now(),
            false,
            &stop,
            &mut |report| {
                worked = true;
                match report {
                    Ok(report) => failed |= !tell(&report),
                    Err(e) => {
                        // The store may be back shortly; the range's lease lapses
                        // meanwhile, and whoever claims it next does it from the start.
                        eprintln!("{}: {e}", super::time(now()));
                        failed = true;
                    }
                }
            },
        );
        if args.once && !worked {
            break;
        }
        sleep_unless_stopped(&stop, poll);
    }
    Ok(if failed && args.once {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Print what became of a range; false if it was given up.
fn tell(report: &RangeReport) -> bool {
    let at = format!("scan {}, range {}", report.scan, report.range);
    match &report.worked {
        Worked::Done(scan) => {
            println!(
                "{at}: {} customers, {} added, {} removed; {}/{} ranges done",
                report.customers, report.added, report.removed, scan.done, scan.ranges
            );
            if scan.status != ScanStatus::Running {
                println!("scan {} {}", scan.id, scan.status.as_str());
            }
            true
        }
        Worked::Lost => {
            println!("{at}: its lease lapsed and another worker took it over");
            true
        }
        Worked::Failed(problem) => {
            println!("{at}: given up: {problem}; scan {} failed", report.scan);
            false
        }
    }
}

fn sleep_unless_stopped(stop: &AtomicBool, time: Duration) {
    let step = Duration::from_millis(50);
    let mut slept = Duration::ZERO;
    while slept < time && !stop.load(Ordering::Relaxed) {
        std::thread::sleep(step.min(time - slept));
        slept += step;
    }
}

pub fn scan(
    args: ScanArgs,
    store: &StoreArgs,
    cache_dir: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let engine = open(store, cache_dir)?;
    if args.cancel {
        let scans = engine.scans()?;
        let reason = format!("cancelled by {}", store.actor());
        if !scans.cancel_scan(args.id, &reason, super::now())? {
            let record = scans
                .scan(args.id)?
                .ok_or_else(|| anyhow::anyhow!("no scan `{}`", args.id))?;
            eprintln!(
                "scan {} is not running: it ended {}",
                args.id,
                record.status.as_str()
            );
            return Ok(ExitCode::FAILURE);
        }
    }
    let record = follow(&engine, args.id, args.wait, !store.json)?;
    if store.json {
        print_json(&record)?;
    } else {
        print_scan(&record);
    }
    Ok(match record.status {
        ScanStatus::Failed => ExitCode::FAILURE,
        _ => ExitCode::SUCCESS,
    })
}

/// Scan `id` as it stands, or once it has ended if `wait`.
pub(super) fn follow(
    engine: &Engine,
    id: i64,
    wait: bool,
    show: bool,
) -> anyhow::Result<ScanRecord> {
    let scans = engine.scans()?;
    let bar = super::runs::Progress::new(show && wait);
    loop {
        let record = scans
            .scan(id)?
            .ok_or_else(|| anyhow::anyhow!("no scan `{id}`"))?;
        bar.show_ranges(record.done, record.ranges);
        if !wait || record.status != ScanStatus::Running {
            bar.finish();
            return Ok(record);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn print_scan(record: &ScanRecord) {
    println!(
        "scan {}: {}, {}/{} ranges done",
        record.id,
        record.status.as_str(),
        record.done,
        record.ranges
    );
    if let Some(e) = &record.error {
        println!("  {e}");
    }
    for r in &record.runs {
        println!(
            "  run {} of `{}`: {}, {} customers, {} added, {} removed, {} undecided",
            r.id,
            r.group,
            r.status.as_str(),
            r.customers,
            r.added,
            r.removed,
            r.undecided
        );
    }
}
