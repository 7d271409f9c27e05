//! Runs by hand, the scheduler, and the runs recorded.

use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::Args;
use cohort_engine::Trigger;
use cohort_model::{Group, Mode, Timestamp};
use cohort_planner::Change;
use cohort_store::RunRecord;

use super::{StoreArgs, now, open, print_json, time};

#[derive(Args)]
pub struct RunArgs {
    /// The groups to run, by id (several run at once, one core each)
    groups: Vec<String>,
    /// Run every group that may run by hand (disabled groups, and those whose manual
    /// trigger is off, are skipped)
    #[arg(long)]
    all: bool,
    /// Run every group of this exclusive set, one after another in id order
    #[arg(long, value_name = "SET")]
    set: Option<String>,
    /// Report what would change without changing anything
    #[arg(long)]
    dry_run: bool,
    /// Evaluate as of this time (RFC 3339) [default: now]
    #[arg(long, value_name = "TIME")]
    as_of: Option<DateTime<Utc>>,
    /// On PostgreSQL: record the run as a scan for workers (`cohort worker`) and print
    /// its id at once, instead of taking part and waiting (see `cohort scan ID`)
    #[arg(long, conflicts_with_all = ["dry_run", "changes"])]
    detach: bool,
    /// On PostgreSQL: customers per range of the scan that workers share
    #[arg(long, value_name = "N", default_value_t = cohort_engine::RANGE_SIZE)]
    range_size: usize,
    /// List every change of one group's run (with --json, the run and its changes are
    /// one object, `{"run": ..., "changes": [...]}`)
    #[arg(long)]
    changes: bool,
}

pub fn run(
    args: RunArgs,
    store: &StoreArgs,
    cache_dir: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let engine = open(store, cache_dir)?;
    engine.set_range_size(args.range_size);
    let as_of = args.as_of.map_or_else(now, |t| t.timestamp());
    if args.detach {
        return detach(&engine, &args, as_of, store);
    }
    if let [group] = &args.groups[..]
        && !args.all
        && args.set.is_none()
    {
        return run_one(&engine, group, &args, as_of, store);
    }
    anyhow::ensure!(
        !args.changes,
        "--changes lists the changes of one group's run: name one group"
    );
    let ids = chosen(&engine, &args)?;
    let bar = Progress::new(!store.json);
    let shared = engine.scans().is_ok();
    let outcomes: Vec<anyhow::Result<RunRecord>> = if args.dry_run {
        // A dry run writes nothing, so nothing is gained by running them at once.
        ids.iter()
            .enumerate()
            .map(|(i, id)| {
                let run = engine.run_group(
                    id,
                    Trigger::Manual,
                    true,
                    &store.actor(),
                    as_of,
                    now(),
                    &mut |_, _| {},
                );
                bar.show_groups(i + 1, ids.len());
                Ok(run?.run)
            })
            .collect()
    } else {
        engine
            .run_groups_reporting(
                &ids,
                Trigger::Manual,
                &store.actor(),
                as_of,
                now(),
                &|done, total| {
                    if shared {
                        bar.show_ranges(done as u64, total as u64);
                    } else {
                        bar.show_groups(done, total);
                    }
                },
            )
            .into_iter()
            .map(|r| r.map_err(anyhow::Error::from))
            .collect()
    };
    bar.finish();
    let failed = outcomes.iter().filter(|o| o.is_err()).count();
    let undecided: u64 = outcomes.iter().flatten().map(|r| r.undecided).sum();
    if store.json {
        let runs: Vec<&RunRecord> = outcomes.iter().flatten().collect();
        let errors: Vec<serde_json::Value> = ids
            .iter()
            .zip(&outcomes)
            .filter_map(|(id, o)| {
                let e = o.as_ref().err()?;
                Some(serde_json::json!({"group": id, "error": format!("{e:#}")}))
            })
            .collect();
        print_json(&serde_json::json!({"runs": runs, "errors": errors}))?;
    } else {
        print_summary(&ids, &outcomes, as_of, args.dry_run);
    }
    Ok(if failed > 0 {
        ExitCode::FAILURE
    } else {
        undecided_status(undecided)
    })
}

/// Record the run as a scan for workers and print its id.
fn detach(
    engine: &cohort_engine::Engine,
    args: &RunArgs,
    as_of: Timestamp,
    store: &StoreArgs,
) -> anyhow::Result<ExitCode> {
    let ids = chosen(engine, args)?;
    let (scan, left_out) = engine.start_scan(&ids, &store.actor(), as_of, now())?;
    for e in &left_out {
        eprintln!("not run: {e}");
    }
    if store.json {
        print_json(&scan)?;
    } else {
        println!(
            "scan {} recorded: {} runs in {} ranges, for workers to carry out (see `cohort scan {}`)",
            scan.id,
            scan.runs.len(),
            scan.ranges,
            scan.id
        );
    }
    Ok(if left_out.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The groups a run of several names: those given, every group that may run by hand
/// (`--all`), the groups of an exclusive set (`--set`); each once, in id order.
fn chosen(engine: &cohort_engine::Engine, args: &RunArgs) -> anyhow::Result<Vec<String>> {
    let mut ids: Vec<String> = args.groups.clone();
    if args.all || args.set.is_some() {
        let groups = engine.store().groups()?;
        if let Some(set) = &args.set {
            let members: Vec<String> = groups
                .iter()
                .filter(|g| g.exclusive.as_ref().is_some_and(|e| &e.set == set))
                .map(|g| g.id.clone())
                .collect();
            anyhow::ensure!(!members.is_empty(), "no group is in exclusive set `{set}`");
            ids.extend(members);
        }
        if args.all {
            let (runnable, skipped): (Vec<&Group>, Vec<&Group>) = groups
                .iter()
                .partition(|g| g.auto.mode != Mode::Disabled && g.auto.triggers.manual);
            if !skipped.is_empty() {
                let names: Vec<&str> = skipped.iter().map(|g| g.id.as_str()).collect();
                eprintln!(
                    "skipped {} group(s) that do not run by hand (disabled, or manual trigger off): {}",
                    names.len(),
                    names.join(", ")
                );
            }
            ids.extend(runnable.iter().map(|g| g.id.clone()));
        }
    }
    ids.sort();
    ids.dedup();
    anyhow::ensure!(
        !ids.is_empty(),
        "no group to run: name groups, or use --all or --set"
    );
    Ok(ids)
}

/// A table of the runs: one row per group, and what went wrong for those that failed.
fn print_summary(
    ids: &[String],
    outcomes: &[anyhow::Result<RunRecord>],
    as_of: Timestamp,
    dry_run: bool,
) {
    println!(
        "{} {} group(s) as of {}",
        if dry_run { "dry run of" } else { "ran" },
        ids.len(),
        time(as_of)
    );
    let width = ids.iter().map(String::len).max().unwrap_or(5).max(5);
    println!(
        "{:<width$}  {:>10}  {:>9}  {:>9}  {:>9}  {:>9}  status",
        "group", "customers", "match", "added", "removed", "undecided"
    );
    for (id, outcome) in ids.iter().zip(outcomes) {
        match outcome {
            Ok(r) => println!(
                "{:<width$}  {:>10}  {:>9}  {:>9}  {:>9}  {:>9}  {}",
                id,
                r.customers,
                r.matched,
                r.added,
                r.removed,
                r.undecided,
                if dry_run {
                    "dry run"
                } else {
                    r.status.as_str()
                }
            ),
            Err(e) => println!("{id:<width$}  failed: {e:#}"),
        }
    }
    let total = |f: fn(&RunRecord) -> u64| -> u64 { outcomes.iter().flatten().map(f).sum() };
    println!(
        "{:<width$}  {:>10}  {:>9}  {:>9}  {:>9}  {:>9}",
        "total",
        "",
        total(|r| r.matched),
        total(|r| r.added),
        total(|r| r.removed),
        total(|r| r.undecided)
    );
}

/// One group's run, reported as it always was.
fn run_one(
    engine: &cohort_engine::Engine,
    group: &str,
    args: &RunArgs,
    as_of: Timestamp,
    store: &StoreArgs,
) -> anyhow::Result<ExitCode> {
    let bar = Progress::new(!store.json);
    let shared = engine.scans().is_ok() && !args.dry_run;
    let report = engine.run_group(
        group,
        Trigger::Manual,
        args.dry_run,
        &store.actor(),
        as_of,
        now(),
        &mut |done, total| {
            if shared {
                bar.show_ranges(done, total);
            } else {
                bar.show(done, total);
            }
        },
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
            println!("  {}", change_line(c));
        }
    }
    Ok(status)
}

/// A change as people read it: who, where, when, why.
fn change_line(change: &Change) -> String {
    match change {
        Change::Add {
            customer,
            group,
            source,
            reason,
            start,
            end,
        } => format!(
            "+ `{customer}` joins `{group}` from {}{} ({}: {reason})",
            time(*start),
            end.map(|e| format!(" until {}", time(e)))
                .unwrap_or_default(),
            source.as_str()
        ),
        Change::End {
            customer,
            group,
            at,
            reason,
            ..
        } => format!(
            "- `{customer}` leaves `{group}` at {} ({reason})",
            time(*at)
        ),
    }
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

    fn show_groups(&self, done: usize, total: usize) {
        if self.on {
            eprint!("\r{done}/{total} groups run");
        }
    }

    pub(super) fn show_ranges(&self, done: u64, total: u64) {
        if self.on {
            eprint!("\r{done}/{total} ranges done");
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
