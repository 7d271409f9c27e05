//! Runs by hand, the scheduler, and the runs recorded.

use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::Args;
use cohort_engine::Trigger;

use super::{StoreArgs, now, open, print_json, time};

#[derive(Args)]
pub struct RunArgs {
    group: String,
    /// Report what would change without changing anything
    #[arg(long)]
    dry_run: bool,
    /// Evaluate as of this time (RFC 3339) [default: now]
    #[arg(long, value_name = "TIME")]
    as_of: Option<DateTime<Utc>>,
    /// List every change (with --json, the run and its changes are one object,
    /// `{"run": ..., "changes": [...]}`)
    #[arg(long)]
    changes: bool,
}

pub fn run(
    args: RunArgs,
    store: &StoreArgs,
    cache_dir: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let engine = open(store, cache_dir)?;
    let as_of = args.as_of.map_or_else(now, |t| t.timestamp());
    let bar = Progress::new(!store.json);
    let report = engine.run_group(
        &args.group,
        Trigger::Manual,
        args.dry_run,
        &store.actor(),
        as_of,
        now(),
        &mut |done, total| bar.show(done, total),
    )?;
    bar.finish();
    let status = undecided_status(report.run.undecided);
    if store.json {
        // One document per command, so that a script can parse what it printed.
        if args.changes {
            print_json(&serde_json::json!({"run": report.run, "changes": report.changes}))?;
        } else {
            print_json(&report.run)?;
        }
        return Ok(status);
    }
    let r = &report.run;
    println!(
        "{} group `{}` as of {}: {} customers, {} match, {} {}, {} {}, {} undecided ({:.2} s)",
        if r.dry_run { "dry run of" } else { "ran" },
        r.group,
        time(r.as_of),
        r.customers,
        r.matched,
        r.added,
        if r.dry_run { "would be added" } else { "added" },
        r.removed,
        if r.dry_run {
            "would be removed"
        } else {
            "removed"
        },
        r.undecided,
        report.seconds
    );
    for (reason, count) in &r.failures {
        println!("  {count} without a verdict: {reason}");
    }
    if args.changes {
        for c in &report.changes {
            println!("  {}", serde_json::to_string(c)?);
        }
    }
    Ok(status)
}

/// A run that left customers undecided exits 2, as `eval` does when a plugin could not
/// decide: the run applied, but scripts should know that some memberships were left
/// as they were.
fn undecided_status(undecided: u64) -> ExitCode {
    if undecided == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    }
}

/// A progress line on stderr for people at a terminal; silent otherwise.
pub(super) struct Progress {
    on: bool,
}

impl Progress {
    pub(super) fn new(wanted: bool) -> Self {
        use std::io::IsTerminal;
        Progress {
            on: wanted && std::io::stderr().is_terminal(),
        }
    }

    fn show(&self, done: u64, total: u64) {
        if self.on {
            let width = 40;
            let filled = (done * width / total.max(1)) as usize;
            eprint!(
                "\r[{}{}] {done}/{total} customers",
                "#".repeat(filled),
                " ".repeat(width as usize - filled)
            );
        }
    }

    pub(super) fn show_rows(&self, rows: u64) {
        if self.on {
            eprint!("\r{rows} rows read");
        }
    }

    pub(super) fn finish(&self) {
        if self.on {
            eprintln!();
        }
    }
}

#[derive(Args)]
pub struct SchedulerArgs {
    /// Check once and exit, instead of running until interrupted
    #[arg(long)]
    once: bool,
    /// Seconds between checks
    #[arg(long, default_value_t = 30)]
    interval: u64,
}

pub fn scheduler(
    args: SchedulerArgs,
    store: &StoreArgs,
    cache_dir: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let engine = open(store, cache_dir)?;
    loop {
        let mut failed = false;
        let mut undecided = 0;
        // Windows that opened or closed since the last pass are announced to the
        // change feed and webhooks, then due schedules run, as `serve` does.
        for outcome in engine.tick(now())?.runs {
            // One group's failure is recorded in its run and must not stop the others'
            // schedules.
            let r = match outcome {
                Ok(run) => run,
                Err(e) => {
                    eprintln!("{} periodic run failed: {e}", time(now()));
                    failed = true;
                    continue;
                }
            };
            undecided += r.undecided;
            println!(
                "{} periodic run of `{}`: {} customers, {} added, {} removed, {} undecided",
                time(r.as_of),
                r.group,
                r.customers,
                r.added,
                r.removed,
                r.undecided
            );
        }
        if args.once {
            return Ok(if failed {
                ExitCode::FAILURE
            } else {
                undecided_status(undecided)
            });
        }
        std::thread::sleep(std::time::Duration::from_secs(args.interval.max(1)));
    }
}

pub fn runs(
    group: Option<String>,
    store: &StoreArgs,
    cache_dir: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let engine = open(store, cache_dir)?;
    let runs = engine.store().runs(group.as_deref(), None, 50)?;
    if store.json {
        print_json(&runs)?;
    } else {
        for r in runs {
            println!(
                "run {:>4}  {:<20} {:<15} {:<11} {}{}: {} customers, {} added, {} removed, {} undecided",
                r.id,
                r.group,
                r.trigger,
                r.status,
                time(r.as_of),
                if r.dry_run { " (dry run)" } else { "" },
                r.customers,
                r.added,
                r.removed,
                r.undecided
            );
            if let Some(error) = &r.error {
                println!("          {error}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
