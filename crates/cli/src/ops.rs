//! The operator's commands over the embedded store: plugins, groups, customers, runs,
//! memberships, history and explanations.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use crate::assemble::{self, Stack};
use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use cohort_engine::{Engine, Trigger};
use cohort_host::Limits;
use cohort_model::{CustomerRecord, Group, State, Timestamp};
use serde_json::json;

use crate::runner;

/// Where the store lives and who is acting.
#[derive(Args, Clone)]
pub struct StoreArgs {
    /// The embedded store (an SQLite file; created if missing) [default: cohort.db, or
    /// the `db` of `serve`'s configuration file]
    #[arg(long, global = true, env = "COHORT_DB")]
    pub db: Option<PathBuf>,
    /// Who is acting, for the audit history [default: $USER]
    #[arg(long, global = true, env = "COHORT_ACTOR")]
    pub actor: Option<String>,
    /// Print JSON for scripts instead of text for people
    #[arg(long, global = true)]
    pub json: bool,
}

impl StoreArgs {
    pub fn actor(&self) -> String {
        self.actor
            .clone()
            .or_else(|| std::env::var("USER").ok())
            .unwrap_or_else(|| "operator".into())
    }
}

/// The store `--db` names (or `cohort.db`), its plugin host and engine.
pub fn stack(store: &StoreArgs, cache_dir: Option<PathBuf>) -> anyhow::Result<Stack> {
    let db = store.db.as_deref().unwrap_or("cohort.db".as_ref());
    assemble::open(db, Limits::default(), cache_dir)
}

/// The engine over the store `--db` names.
pub fn open(store: &StoreArgs, cache_dir: Option<PathBuf>) -> anyhow::Result<Arc<Engine>> {
    Ok(stack(store, cache_dir)?.engine)
}

pub fn now() -> Timestamp {
    Utc::now().timestamp()
}

pub fn time(t: Timestamp) -> String {
    DateTime::<Utc>::from_timestamp(t, 0)
        .map(|d| d.to_rfc3339())
        .unwrap_or_else(|| t.to_string())
}

pub fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

#[derive(Subcommand)]
pub enum PluginCommand {
    /// Add a plugin to the store: a bundled plugin's id or a .wasm file
    Add {
        plugin: String,
        /// Grant the plugin read-only access to this directory (seen as /data)
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Add every bundled plugin (geoip-country gets --geoip-dir if given)
    AddStandard {
        #[arg(long, value_name = "DIR")]
        geoip_dir: Option<PathBuf>,
    },
    /// List the plugins in the store
    List,
    /// Show a stored plugin's self-description and grant
    Inspect {
        plugin: String,
        /// A version; the newest stored one if absent
        #[arg(long)]
        version: Option<String>,
    },
}

pub fn plugin(
    cmd: PluginCommand,
    store: &StoreArgs,
    cache_dir: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let engine = open(store, cache_dir)?;
    match cmd {
        PluginCommand::Add { plugin, data_dir } => {
            let wasm = plugin_bytes(&plugin)?;
            let info = engine.add_plugin(&wasm, data_dir.as_deref(), now())?;
            if store.json {
                print_json(&info)?;
            } else {
                println!("added plugin `{}` {}", info.id, info.version);
            }
        }
        PluginCommand::AddStandard { geoip_dir } => {
            for (id, wasm) in cohort_artifacts::STANDARD {
                let grant = geoip_dir.as_deref().filter(|_| *id == "geoip-country");
                let info = engine.add_plugin(wasm, grant, now())?;
                if !store.json {
                    println!("added plugin `{}` {}", info.id, info.version);
                }
            }
        }
        PluginCommand::Inspect { plugin, version } => {
            let (stored, info, contract) = engine.describe_plugin(&plugin, version.as_deref())?;
            let mut value = serde_json::to_value(info)?;
            value["contract"] = json!(contract);
            value["sha256"] = json!(stored.sha256);
            value["data_dir"] = json!(stored.data_dir);
            value["added_at"] = json!(time(stored.added_at));
            print_json(&value)?;
        }
        PluginCommand::List => {
            let plugins = engine.store().plugins()?;
            if store.json {
                print_json(&plugins)?;
            } else {
                for p in plugins {
                    println!(
                        "{:<22} {:<8} {}  data-dir: {}",
                        p.id,
                        p.version,
                        &p.sha256[..12],
                        p.data_dir.as_deref().unwrap_or("-")
                    );
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn plugin_bytes(plugin: &str) -> anyhow::Result<Vec<u8>> {
    if let Some((_, wasm)) = cohort_artifacts::STANDARD
        .iter()
        .find(|(id, _)| *id == plugin)
    {
        return Ok(wasm.to_vec());
    }
    std::fs::read(plugin)
        .with_context(|| format!("no bundled plugin `{plugin}` and the file cannot be read"))
}

#[derive(Subcommand)]
pub enum GroupCommand {
    /// Create or update a group from a JSON file (checked through its plugins first)
    Save { file: PathBuf },
    /// List the groups
    List,
    /// Show one group's definition and what uses it
    Show { group: String },
    /// Delete a group (its memberships stay in the history); a group in use is refused
    /// unless --force
    Delete {
        group: String,
        #[arg(long)]
        force: bool,
    },
    /// Record that a platform entity (tariff, promotion, contract-template, segment,
    /// vat-setting, ...) refers to the group
    Use {
        group: String,
        kind: String,
        entity: String,
    },
    /// Forget such a reference
    Unuse {
        group: String,
        kind: String,
        entity: String,
    },
}

pub fn group(
    cmd: GroupCommand,
    store: &StoreArgs,
    cache_dir: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let engine = open(store, cache_dir)?;
    match cmd {
        GroupCommand::Save { file } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read `{}`", file.display()))?;
            let group: Group = serde_json::from_str(&text)
                .with_context(|| format!("`{}` is not a group definition", file.display()))?;
            engine.save_group(&group, now())?;
            println!("saved group `{}`", group.id);
        }
        GroupCommand::List => {
            let groups = engine.store().groups()?;
            if store.json {
                print_json(&groups)?;
            } else {
                for g in groups {
                    let members = engine.store().count_active(&g.id, now())?;
                    let used = engine.store().uses(&g.id)?.len();
                    println!(
                        "{:<24} {:<10} {:>8} members {:>3} used  {}",
                        g.id,
                        serde_json::to_value(g.auto.mode)?.as_str().unwrap_or("?"),
                        members,
                        used,
                        g.name
                    );
                }
            }
        }
        GroupCommand::Show { group } => {
            let definition = engine.group(&group)?;
            let used_by: Vec<_> = engine
                .store()
                .uses(&group)?
                .into_iter()
                .map(|(kind, entity)| json!({"kind": kind, "entity": entity}))
                .collect();
            print_json(&json!({"group": definition, "used_by": used_by}))?;
        }
        GroupCommand::Delete { group, force } => {
            engine.delete_group(&group, force)?;
            println!("deleted group `{group}`");
        }
        GroupCommand::Use {
            group,
            kind,
            entity,
        } => {
            engine.use_group(&group, &kind, &entity, true)?;
            println!("group `{group}` is used by {kind} `{entity}`");
        }
        GroupCommand::Unuse {
            group,
            kind,
            entity,
        } => {
            engine.use_group(&group, &kind, &entity, false)?;
            println!("group `{group}` is no longer used by {kind} `{entity}`");
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Subcommand)]
pub enum CustomerCommand {
    /// Insert or update one customer (JSON, or @FILE); a new one is checked against
    /// every on-registration group at once
    Upsert { customer: String },
    /// Insert or update many customers from a JSON-lines file. All lines are checked
    /// before any is stored
    Load {
        file: PathBuf,
        /// Run the on-registration trigger for each new customer (slower)
        #[arg(long)]
        trigger: bool,
    },
    /// Show one customer and its memberships
    Show { customer: String },
}

pub fn customer(
    cmd: CustomerCommand,
    store: &StoreArgs,
    cache_dir: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let engine = open(store, cache_dir)?;
    match cmd {
        CustomerCommand::Upsert { customer } => {
            let text = match customer.strip_prefix('@') {
                Some(file) => std::fs::read_to_string(file)
                    .with_context(|| format!("cannot read `{file}`"))?,
                None => customer,
            };
            let record: CustomerRecord =
                serde_json::from_str(&text).context("not a customer record")?;
            let registration = engine.upsert_customer(&record, now())?;
            if store.json {
                print_json(&registration)?;
            } else {
                println!(
                    "{} customer `{}`; joined: {}",
                    if registration.new {
                        "registered"
                    } else {
                        "updated"
                    },
                    registration.customer,
                    if registration.joined.is_empty() {
                        "none".to_string()
                    } else {
                        registration.joined.join(", ")
                    }
                );
                for (group, why) in &registration.undecided {
                    println!("undecided for `{group}`:\n{why}");
                }
            }
        }
        CustomerCommand::Load { file, trigger } => {
            // Every line is checked before anything is stored, so a bad line at the end
            // does not leave the first half loaded.
            let (records, _) = runner::read_customers(&file, &cohort_model::Interner::new())?;
            let at = now();
            let new = if trigger {
                let mut new = 0;
                for record in &records {
                    new += u64::from(engine.upsert_customer(record, at)?.new);
                }
                new
            } else {
                // One transaction: a failure stores none of the file.
                engine.store().upsert_customers(&records, at)?
            };
            println!(
                "loaded {} customers from `{}` ({new} new)",
                records.len(),
                file.display()
            );
        }
        CustomerCommand::Show { customer } => {
            let record = engine
                .store()
                .customer(&customer)?
                .with_context(|| format!("no customer `{customer}`"))?;
            let memberships = engine.store().customer_memberships(&customer)?;
            if store.json {
                print_json(&json!({"customer": record, "memberships": memberships}))?;
            } else {
                println!("{}", serde_json::to_string_pretty(&record)?);
                print_memberships(&memberships, now(), true);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

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
struct Progress {
    on: bool,
}

impl Progress {
    fn new(wanted: bool) -> Self {
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

    fn show_rows(&self, rows: u64) {
        if self.on {
            eprint!("\r{rows} rows read");
        }
    }

    fn finish(&self) {
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

#[derive(Subcommand)]
pub enum MemberCommand {
    /// List a group's members: active ones, or all with --all
    List {
        group: String,
        /// Include pending and expired memberships
        #[arg(long)]
        all: bool,
    },
    /// Add a customer by hand, optionally for a window
    Add {
        customer: String,
        group: String,
        #[arg(long, value_name = "TIME")]
        start: Option<DateTime<Utc>>,
        #[arg(long, value_name = "TIME")]
        end: Option<DateTime<Utc>>,
        #[arg(long, default_value = "added by hand")]
        reason: String,
    },
    /// Remove a customer by hand (a rule may add it again; see `pin`)
    Remove {
        customer: String,
        group: String,
        #[arg(long, default_value = "removed by hand")]
        reason: String,
    },
    /// Pin a customer out of a group: removed now and never added by the rule
    Pin {
        customer: String,
        group: String,
        #[arg(long, default_value = "pinned out by hand")]
        reason: String,
    },
    /// Lift a pinned exclusion
    Unpin { customer: String, group: String },
}

pub fn member(
    cmd: MemberCommand,
    store: &StoreArgs,
    cache_dir: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let engine = open(store, cache_dir)?;
    let actor = store.actor();
    let at = now();
    match cmd {
        MemberCommand::List { group, all } => {
            engine.group(&group)?;
            let memberships: Vec<_> = engine
                .store()
                .group_memberships(&group)?
                .into_iter()
                .filter(|m| all || m.is_active(at))
                .collect();
            if store.json {
                let rows: Vec<_> = memberships
                    .iter()
                    .map(|m| json!({"membership": m, "state": m.state(at)}))
                    .collect();
                print_json(&rows)?;
            } else {
                print_memberships(&memberships, at, false);
            }
        }
        MemberCommand::Add {
            customer,
            group,
            start,
            end,
            reason,
        } => {
            let window = (
                start.map_or(at, |s| s.timestamp()),
                end.map(|e| e.timestamp()),
            );
            if engine.add_member(&customer, &group, &actor, &reason, window, at)? {
                println!("added `{customer}` to `{group}`");
            } else {
                println!("`{customer}` already has a membership in `{group}` over that window");
            }
        }
        MemberCommand::Remove {
            customer,
            group,
            reason,
        } => {
            let ended = engine.remove_member(&customer, &group, &actor, &reason, at)?;
            println!("ended {ended} membership(s) of `{customer}` in `{group}`");
        }
        MemberCommand::Pin {
            customer,
            group,
            reason,
        } => {
            engine.pin_exclusion(&customer, &group, true, &actor, &reason, at)?;
            println!("pinned `{customer}` out of `{group}`");
        }
        MemberCommand::Unpin { customer, group } => {
            engine.pin_exclusion(&customer, &group, false, &actor, "unpinned by hand", at)?;
            println!("lifted the exclusion of `{customer}` from `{group}`");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_memberships(memberships: &[cohort_model::Membership], at: Timestamp, by_group: bool) {
    for m in memberships {
        let state = match m.state(at) {
            State::Pending => "pending",
            State::Active => "active",
            State::Expired => "expired",
        };
        println!(
            "{:<20} {:<8} {:<7} {} .. {}  by {} ({})",
            if by_group { &m.group } else { &m.customer },
            state,
            m.source,
            time(m.start),
            m.end.map_or_else(|| "open".to_string(), time),
            m.actor,
            m.reason
        );
    }
}

#[derive(Subcommand)]
pub enum ImportCommand {
    /// Import a customer-assignment CSV file (Customer #, Assigned Groups, Start Date &
    /// Time, End Date & Time). All or nothing unless --partial
    File {
        file: PathBuf,
        /// Map a column to the file's header: `customer=Kundennummer`; columns are
        /// customer, groups, start, end
        #[arg(long = "map", value_name = "COLUMN=HEADER")]
        mapping: Vec<String>,
        /// Time zone for dates without an offset
        #[arg(long, default_value = "UTC")]
        time_zone: String,
        /// Apply the valid rows and report the rest
        #[arg(long)]
        partial: bool,
        /// Validate and report what would change, change nothing
        #[arg(long)]
        dry_run: bool,
    },
    /// Print a sample file to start from
    Template,
    /// Recent imports
    List,
    /// The problems of one import, by line and column
    Errors {
        import: i64,
        #[arg(long, default_value_t = 1000)]
        limit: usize,
    },
}

pub fn import(
    cmd: ImportCommand,
    store: &StoreArgs,
    cache_dir: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    match cmd {
        ImportCommand::Template => {
            print!("{}", cohort_import::TEMPLATE);
            Ok(ExitCode::SUCCESS)
        }
        ImportCommand::List => {
            let engine = open(store, cache_dir)?;
            let imports = engine.store().imports(None, 50)?;
            if store.json {
                print_json(&imports)?;
            } else {
                for i in imports {
                    println!(
                        "import {:>4}  {}  {:<18} {}: {} rows, {} added, {} updated, {} unchanged, {} rejected (by {})",
                        i.id,
                        time(i.started_at),
                        i.status,
                        i.file_name,
                        i.rows,
                        i.added,
                        i.updated,
                        i.unchanged,
                        i.rejected,
                        i.actor
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        ImportCommand::Errors { import, limit } => {
            let engine = open(store, cache_dir)?;
            let (problems, lines) = engine.store().import_problems(import, limit)?;
            if store.json {
                print_json(&json!({"lines": lines, "problems": problems}))?;
            } else {
                print_problems(&problems, lines);
            }
            Ok(ExitCode::SUCCESS)
        }
        ImportCommand::File {
            file,
            mapping,
            time_zone,
            partial,
            dry_run,
        } => {
            let engine = open(store, cache_dir)?;
            let columns = cohort_import::mapping(mapping.iter().map(String::as_str))
                .map_err(anyhow::Error::msg)?;
            let zone = cohort_import::time_zone(&time_zone).map_err(anyhow::Error::msg)?;
            let input = std::fs::File::open(&file)
                .with_context(|| format!("cannot open `{}`", file.display()))?;
            let bar = Progress::new(!store.json);
            let name = file.file_name().map_or_else(
                || file.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            );
            let report = engine.import(
                input,
                &name,
                cohort_engine::ImportOptions {
                    read: cohort_import::Options {
                        time_zone: zone,
                        now: now(),
                        mapping: columns,
                    },
                    partial,
                    dry_run,
                },
                &store.actor(),
                now(),
                &mut |rows| bar.show_rows(rows),
            )?;
            bar.finish();
            let r = &report.record;
            if store.json {
                print_json(&report)?;
            } else {
                println!(
                    "import {} of `{}`: {}: {} rows, {} added, {} updated, {} unchanged, {} rejected",
                    r.id,
                    r.file_name,
                    r.status,
                    r.rows,
                    r.added,
                    r.updated,
                    r.unchanged,
                    r.rejected
                );
                print_problems(&report.problems, r.rejected);
            }
            Ok(if r.status == "failed" {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
    }
}

fn print_problems(problems: &[cohort_store::ImportProblem], lines: u64) {
    for p in problems {
        match &p.column {
            Some(c) => println!("  line {}, column `{c}`: {}", p.line, p.message),
            None => println!("  line {}: {}", p.line, p.message),
        }
    }
    if (problems.len() as u64) < lines {
        println!("  ... {lines} lines have problems in all (`cohort import errors ID`)");
    }
}

#[derive(Args)]
pub struct HistoryArgs {
    #[arg(long)]
    customer: Option<String>,
    #[arg(long)]
    group: Option<String>,
    #[arg(long, default_value_t = 50)]
    limit: usize,
}

pub fn history(
    args: HistoryArgs,
    store: &StoreArgs,
    cache_dir: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let engine = open(store, cache_dir)?;
    let entries = engine.store().history(
        args.customer.as_deref(),
        args.group.as_deref(),
        None,
        args.limit,
    )?;
    if store.json {
        print_json(&entries)?;
    } else {
        for e in entries {
            println!(
                "{}  {:<9} {:<16} {:<20} by {} ({}{}): {}",
                time(e.at),
                e.action,
                e.customer,
                e.group,
                e.actor,
                e.trigger,
                e.run.map(|r| format!(", run {r}")).unwrap_or_default(),
                e.reason
            );
        }
    }
    Ok(ExitCode::SUCCESS)
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

#[derive(Args)]
pub struct ExplainArgs {
    customer: String,
    group: String,
    #[arg(long, value_name = "TIME")]
    as_of: Option<DateTime<Utc>>,
}

pub fn explain(
    args: ExplainArgs,
    store: &StoreArgs,
    cache_dir: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let engine = open(store, cache_dir)?;
    let as_of = args.as_of.map_or_else(now, |t| t.timestamp());
    let why = engine.explain(&args.customer, &args.group, as_of)?;
    if store.json {
        print_json(&why)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "customer `{}` in group `{}` as of {}",
        why.customer,
        why.group,
        time(why.as_of)
    )?;
    writeln!(out, "{}", why.explanation)?;
    if why.pinned_out {
        writeln!(
            out,
            "pinned out by an operator: the rule never adds this customer"
        )?;
    }
    let active = why.memberships.iter().any(|(_, s)| *s == State::Active);
    writeln!(
        out,
        "currently {} member",
        if active { "a" } else { "not a" }
    )?;
    for (m, state) in &why.memberships {
        writeln!(
            out,
            "  {:?} {} membership from {} to {} by {}: {}",
            state,
            m.source,
            time(m.start),
            m.end.map_or_else(|| "open".to_string(), time),
            m.actor,
            m.reason
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
