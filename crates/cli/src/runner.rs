//! The plugin author's local runner: describe a plugin, run it over customers, and
//! show how close each batch came to the limits.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use cohort_host::{Budget, Compiled, Evaluation, Host, HostConfig, Limits, Plugin};
use cohort_model::{Customer, CustomerRecord, FOREVER, Interner, PluginBudget, VerdictRef};
use serde_json::json;

#[derive(Args)]
pub struct DescribeArgs {
    /// A bundled plugin's id (see `cohort plugins`) or a path to a .wasm component
    plugin: String,
}

#[derive(Args)]
pub struct EvalArgs {
    /// A bundled plugin's id (see `cohort plugins`) or a path to a .wasm component
    plugin: String,
    /// The configuration: a JSON document, or @FILE to read it from a file
    #[arg(long, short)]
    config: String,
    /// Customers, one JSON object per line (`-` for standard input)
    #[arg(long)]
    customers: PathBuf,
    /// Evaluate as of this time (RFC 3339) [default: now]
    #[arg(long, value_name = "TIME")]
    as_of: Option<DateTime<Utc>>,
    /// Grant the plugin read-only access to this directory, seen by it as /data
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Also ask the plugin why: the facts behind each verdict, in its words, and until
    /// when the verdict holds (contract 0.3.0 on)
    #[arg(long)]
    explain: bool,
    #[command(flatten)]
    limits: LimitArgs,
}

/// A budget for a plugin's calls, as flags. A flag left out keeps what is below it: the
/// plugin's own budget (what it declares for itself, else the host's default).
#[derive(Args, Default)]
pub struct BudgetArgs {
    /// Fuel per call before the per-customer share [default: the plugin's, else 10000000]
    #[arg(long, value_name = "N")]
    fuel_per_call: Option<u64>,
    /// Fuel added per customer in a call [default: the plugin's, else 100000]
    #[arg(long, value_name = "N")]
    fuel_per_customer: Option<u64>,
    /// Fuel for preparing a configuration [default: the plugin's, else 2000000000]
    #[arg(long, value_name = "N")]
    fuel_per_prepare: Option<u64>,
    /// Memory cap per plugin instance, in MiB [default: the plugin's, else 64]
    #[arg(long, value_name = "MIB")]
    memory_mib: Option<u32>,
    /// Wall-clock deadline per call, in milliseconds [default: the plugin's, else 2000]
    #[arg(long, value_name = "MS")]
    deadline_ms: Option<u64>,
}

impl BudgetArgs {
    /// The flags given, as an operator's budget for the plugin.
    pub fn budget(&self) -> anyhow::Result<PluginBudget> {
        let budget = PluginBudget {
            fuel_per_call: self.fuel_per_call,
            fuel_per_customer: self.fuel_per_customer,
            fuel_per_prepare: self.fuel_per_prepare,
            memory_mib: self.memory_mib,
            deadline_ms: self.deadline_ms,
        };
        let problems = budget.problems();
        if !problems.is_empty() {
            bail!("{}", problems.join("; ").replace('_', "-"));
        }
        Ok(budget)
    }
}

#[derive(Args)]
pub struct LimitArgs {
    #[command(flatten)]
    budget: BudgetArgs,
    /// Customers per call
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_batch)]
    batch: usize,
}

pub fn new_host(limits: Limits, cache_dir: Option<PathBuf>) -> anyhow::Result<Host> {
    let config = HostConfig {
        limits,
        cache_dir,
        ..HostConfig::default()
    };
    Host::new(config, Arc::new(Interner::new())).context("cannot start the plugin host")
}

#[derive(Subcommand)]
pub enum CacheCommand {
    /// Remove the compiled plugins this build cannot use (another version or
    /// configuration) and, oldest first, what is past the size bound
    Prune {
        /// The size bound, in MiB [default: 2048]
        #[arg(long, value_name = "MIB")]
        max_mib: Option<u64>,
    },
}

pub fn cache(
    cmd: CacheCommand,
    json: bool,
    cache_dir: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let CacheCommand::Prune { max_mib } = cmd;
    let Some(dir) = cache_dir else {
        bail!("there is no cache to prune without a cache directory (--no-cache)");
    };
    let mut config = HostConfig {
        cache_dir: Some(dir.clone()),
        ..HostConfig::default()
    };
    if let Some(mib) = max_mib {
        config.cache_max_bytes = mib.saturating_mul(1 << 20);
    }
    let host =
        Host::new(config, Arc::new(Interner::new())).context("cannot start the plugin host")?;
    let pruned = host
        .prune_cache()
        .with_context(|| format!("cannot prune the cache `{}`", dir.display()))?;
    if json {
        println!(
            "{}",
            json!({
                "dir": dir,
                "removed": pruned.removed,
                "freed_bytes": pruned.freed_bytes,
                "kept": pruned.kept,
                "kept_bytes": pruned.kept_bytes,
            })
        );
    } else {
        let mib = |bytes: u64| bytes as f64 / f64::from(1 << 20);
        println!(
            "removed {} compiled plugin(s) ({:.1} MiB); kept {} ({:.1} MiB) in `{}`",
            pruned.removed,
            mib(pruned.freed_bytes),
            pruned.kept,
            mib(pruned.kept_bytes),
            dir.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// A bundled plugin by id, or a plugin file by path.
pub fn load(host: &Host, plugin: &str) -> anyhow::Result<Arc<Plugin>> {
    let path = Path::new(plugin);
    if path.extension().is_some_and(|e| e == "wasm") || path.exists() {
        return host
            .load_file(path)
            .with_context(|| format!("cannot load plugin `{plugin}`"));
    }
    match cohort_artifacts::STANDARD
        .iter()
        .find(|(id, _)| *id == plugin)
    {
        Some((_, bytes)) => host
            .load(bytes)
            .with_context(|| format!("the bundled plugin `{plugin}` failed to load")),
        None => bail!(
            "no bundled plugin `{plugin}` and no such file; `cohort plugins` lists the bundled ones"
        ),
    }
}

pub fn plugins(json: bool, cache_dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let host = new_host(Limits::default(), cache_dir)?;
    let mut out = std::io::stdout().lock();
    for (id, bytes) in cohort_artifacts::STANDARD {
        let plugin = host
            .load(bytes)
            .with_context(|| format!("the bundled plugin `{id}` failed to load"))?;
        let info = plugin.info();
        if json {
            writeln!(out, "{}", serde_json::to_string(info)?)?;
        } else {
            writeln!(
                out,
                "{:<24} {:<8} {}",
                info.id, info.version, info.description
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn describe(
    args: DescribeArgs,
    json: bool,
    cache_dir: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let cached = cache_dir.is_some();
    let host = new_host(Limits::default(), cache_dir)?;
    let plugin = load(&host, &args.plugin)?;
    let info = plugin.info();
    let mut out = std::io::stdout().lock();
    if json {
        let mut value = serde_json::to_value(info)?;
        value["contract"] = json!(plugin.contract_version());
        value["sha256"] = json!(plugin.sha256());
        value["compiled"] = json!(match plugin.compiled() {
            Compiled::Fresh => "fresh",
            Compiled::FromDiskCache => "disk-cache",
        });
        value["budget"] = json!({
            "declared": plugin.declared_budget(),
            "granted": budget_json(&plugin.budget()),
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    let reads: Vec<&str> = info.reads.iter().map(|f| f.name()).collect();
    let capabilities: Vec<String> = info
        .capabilities
        .iter()
        .map(|c| serde_json::to_value(c).map(|v| v.as_str().unwrap_or_default().to_string()))
        .collect::<Result<_, _>>()?;
    writeln!(out, "id            {}", info.id)?;
    writeln!(out, "version       {}", info.version)?;
    writeln!(
        out,
        "contract      cohort:plugin@{}",
        plugin.contract_version()
    )?;
    writeln!(out, "sha256        {}", plugin.sha256())?;
    writeln!(
        out,
        "compiled      {}",
        match plugin.compiled() {
            Compiled::Fresh if cached => "now, and cached on disk for the next process",
            Compiled::Fresh => "now (the disk cache is off)",
            Compiled::FromDiskCache => "taken from the disk cache",
        }
    )?;
    writeln!(out, "budget        {}", budget_text(&plugin))?;
    writeln!(out, "description   {}", info.description)?;
    writeln!(out, "reads         {}", reads.join(", "))?;
    writeln!(
        out,
        "capabilities  {}",
        if capabilities.is_empty() {
            "none".to_string()
        } else {
            capabilities.join(", ")
        }
    )?;
    let schema: serde_json::Value = serde_json::from_str(&info.config_schema)?;
    writeln!(
        out,
        "configuration schema:\n{}",
        serde_json::to_string_pretty(&schema)?
    )?;
    Ok(ExitCode::SUCCESS)
}

/// A budget in the units its flags and a `cohort:budget` section use.
pub fn budget_json(budget: &Budget) -> serde_json::Value {
    json!({
        "fuel_per_call": budget.fuel_per_call,
        "fuel_per_customer": budget.fuel_per_customer,
        "fuel_per_prepare": budget.fuel_per_prepare,
        "memory_mib": budget.memory >> 20,
        "deadline_ms": budget.deadline.as_millis() as u64,
    })
}

/// A budget as one line.
pub fn budget_line(b: &Budget) -> String {
    format!(
        "{} fuel per call + {} per customer, {} MiB, {} ms",
        b.fuel_per_call,
        b.fuel_per_customer,
        b.memory >> 20,
        b.deadline.as_millis()
    )
}

/// The budget a plugin gets, and whether it asked for it.
fn budget_text(plugin: &Plugin) -> String {
    let granted = budget_line(&plugin.budget());
    let declared = plugin.declared_budget();
    if declared.is_empty() {
        format!("{granted} (the host's default)")
    } else {
        let asked = serde_json::to_string(declared).unwrap_or_default();
        format!("{granted} (the plugin declares {asked}; granted up to the host's ceiling)")
    }
}

/// Customers from a JSON-lines file (`-` for standard input), validated and interned;
/// the first bad line stops everything, named by file and line, before anything is
/// used.
pub fn read_customers(
    path: &Path,
    interner: &Interner,
) -> anyhow::Result<(Vec<CustomerRecord>, Vec<Customer>)> {
    let reader: Box<dyn BufRead> = if path == Path::new("-") {
        Box::new(BufReader::new(std::io::stdin()))
    } else {
        let file = std::fs::File::open(path)
            .with_context(|| format!("cannot open customers file `{}`", path.display()))?;
        Box::new(BufReader::new(file))
    };
    let mut records = Vec::new();
    let mut customers = Vec::new();
    // Every bad line, so that one pass over the file finds them all.
    let mut problems: Vec<String> = Vec::new();
    for (n, line) in reader.lines().enumerate() {
        let at = format!("{}:{}", path.display(), n + 1);
        let line = line.with_context(|| format!("cannot read {at}"))?;
        if line.trim().is_empty() {
            continue;
        }
        let parsed = serde_path_to_error::deserialize::<_, CustomerRecord>(
            &mut serde_json::Deserializer::from_str(&line),
        );
        let record = match parsed {
            Ok(record) => record,
            Err(e) => {
                problems.push(format!("{at}: {}", line_problem(&e)));
                continue;
            }
        };
        match record.intern(interner) {
            Ok(customer) => {
                customers.push(customer);
                records.push(record);
            }
            Err(e) => problems.push(format!("{at}: {e}")),
        }
    }
    if !problems.is_empty() {
        /// Lines shown; the rest are counted.
        const SHOWN: usize = 20;
        let more = problems.len().saturating_sub(SHOWN);
        problems.truncate(SHOWN);
        if more > 0 {
            problems.push(format!("... and {more} more bad lines"));
        }
        anyhow::bail!(
            "{} is not a file of customers (one JSON object per line):\n  {}",
            path.display(),
            problems.join("\n  ")
        );
    }
    Ok((records, customers))
}

/// Why a line is not a customer: the field, and the problem at the column where the
/// reader stopped (the line number is the file's, said once by the caller).
fn line_problem(e: &serde_path_to_error::Error<serde_json::Error>) -> String {
    let inner = e.inner();
    let message = inner.to_string();
    // serde_json ends its message with the position in the text it read: the line's.
    let suffix = format!(" at line {} column {}", inner.line(), inner.column());
    let message = message.strip_suffix(&suffix).unwrap_or(&message);
    match e.path().to_string().as_str() {
        "." => format!("column {}: {message}", inner.column()),
        field => format!("field `{field}`: {message}"),
    }
}

fn read_config(config: &str) -> anyhow::Result<String> {
    match config.strip_prefix('@') {
        Some(file) => std::fs::read_to_string(file)
            .with_context(|| format!("cannot read configuration file `{file}`")),
        None => Ok(config.to_string()),
    }
}

pub fn eval(args: EvalArgs, json: bool, cache_dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let limits = Limits {
        max_batch: args.limits.batch.max(1),
        ..Limits::default()
    };
    let given = args.limits.budget.budget()?;
    let host = new_host(limits, cache_dir)?;
    let plugin = load(&host, &args.plugin)?;
    let config = read_config(&args.config)?;
    let mut condition = plugin.prepare_with(&config, args.data_dir.as_deref(), &given)?;
    let budget = Spent {
        budget: condition.budget(),
        from: if !given.is_empty() {
            "the command line's flags, over the plugin's"
        } else if !plugin.declared_budget().is_empty() {
            "the plugin's own, from its cohort:budget section"
        } else {
            "the host's default"
        },
    };
    let (records, customers) = read_customers(&args.customers, host.interner())?;
    let ids: Vec<&str> = records.iter().map(|r| r.id.as_str()).collect();
    let as_of = args.as_of.unwrap_or_else(Utc::now);
    let evaluation = condition.evaluate(as_of.timestamp(), &customers);
    let explained = if args.explain {
        let why = condition
            .explain(as_of.timestamp(), &customers)
            .map_err(|f| anyhow::anyhow!("plugin `{}` {f}", plugin.info().id))?;
        if why.is_none() {
            eprintln!(
                "plugin `{}` is built against contract {}, which cannot explain",
                plugin.info().id,
                plugin.contract_version()
            );
        }
        why
    } else {
        None
    };
    let until = |i: usize| {
        let t = evaluation.verdicts.until(i);
        (t != FOREVER).then(|| rfc3339(t))
    };

    let mut out = std::io::stdout().lock();
    if json {
        for (i, (id, verdict)) in ids.iter().zip(evaluation.verdicts.iter()).enumerate() {
            let mut line =
                json!({"customer": id, "verdict": verdict.to_owned(), "until": until(i)});
            if let Some(why) = explained.as_ref().and_then(|w| w.get(i)) {
                line["explanation"] = json!(why);
            }
            writeln!(out, "{line}")?;
        }
        writeln!(out, "{}", usage_json(&evaluation, &budget, customers.len()))?;
    } else {
        let width = ids.iter().map(|id| id.len()).max().unwrap_or(8).max(8);
        writeln!(out, "{:<width$}  verdict", "customer")?;
        for (i, (id, verdict)) in ids.iter().zip(evaluation.verdicts.iter()).enumerate() {
            let shown = match verdict {
                VerdictRef::Match => "match".to_string(),
                VerdictRef::NoMatch => "no match".to_string(),
                VerdictRef::Error(message) => format!("no decision: {message}"),
            };
            writeln!(out, "{id:<width$}  {shown}")?;
            if let Some(why) = explained.as_ref().and_then(|w| w.get(i)) {
                writeln!(out, "{:<width$}    because {why}", "")?;
                if let Some(until) = until(i) {
                    writeln!(out, "{:<width$}    holds until {until}", "")?;
                }
            }
        }
        writeln!(out)?;
        write_usage(&mut out, &evaluation, &budget, customers.len())?;
    }
    // A plugin that could not decide is worth a non-zero exit in scripts.
    Ok(if evaluation.verdicts.errors().is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

/// A timestamp as the runner prints it: RFC 3339, UTC.
fn rfc3339(t: i64) -> String {
    DateTime::from_timestamp(t, 0).map_or_else(
        || t.to_string(),
        |d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    )
}

fn percent(part: f64, whole: f64) -> f64 {
    if whole > 0.0 {
        100.0 * part / whole
    } else {
        0.0
    }
}

/// The largest share of the deadline one call used, assuming calls took equal time.
fn time_per_call(ev: &Evaluation) -> Duration {
    ev.elapsed / ev.calls.max(1)
}

/// The budget an evaluation ran on, and where it came from.
struct Spent {
    budget: Budget,
    from: &'static str,
}

fn write_usage(
    out: &mut impl Write,
    ev: &Evaluation,
    spent: &Spent,
    customers: usize,
) -> std::io::Result<()> {
    let limits = &spent.budget;
    let per_call = time_per_call(ev);
    writeln!(
        out,
        "{customers} customers in {} call(s), {} matched, {} undecided",
        ev.calls,
        ev.verdicts.matches(),
        ev.verdicts.errors().len()
    )?;
    writeln!(
        out,
        "  fuel    {:>14} used of {:>14} budgeted ({:.2}%)",
        ev.fuel_used,
        ev.fuel_budget,
        percent(ev.fuel_used as f64, ev.fuel_budget as f64)
    )?;
    writeln!(
        out,
        "  memory  {:>10.1} MiB peak of {:>6} MiB cap ({:.1}%)",
        ev.peak_memory as f64 / (1 << 20) as f64,
        limits.memory >> 20,
        percent(ev.peak_memory as f64, limits.memory as f64)
    )?;
    writeln!(
        out,
        "  time    {:>10.3} ms in all, {:.3} ms per call of a {} ms deadline ({:.2}%)",
        ev.elapsed.as_secs_f64() * 1e3,
        per_call.as_secs_f64() * 1e3,
        limits.deadline.as_millis(),
        percent(per_call.as_secs_f64(), limits.deadline.as_secs_f64())
    )?;
    writeln!(
        out,
        "  budget  {} fuel per call + {} per customer; {}",
        limits.fuel_per_call, limits.fuel_per_customer, spent.from
    )?;
    for failure in &ev.failures {
        writeln!(out, "  failed call: {failure}")?;
    }
    Ok(())
}

fn usage_json(ev: &Evaluation, spent: &Spent, customers: usize) -> serde_json::Value {
    let limits = &spent.budget;
    json!({
        "summary": {
            "customers": customers,
            "calls": ev.calls,
            "matched": ev.verdicts.matches(),
            "undecided": ev.verdicts.errors().len(),
            "fuel_used": ev.fuel_used,
            "fuel_budget": ev.fuel_budget,
            "peak_memory_bytes": ev.peak_memory,
            "memory_cap_bytes": limits.memory,
            "elapsed_ms": ev.elapsed.as_secs_f64() * 1e3,
            "deadline_ms": limits.deadline.as_millis() as u64,
            "fuel_per_call": limits.fuel_per_call,
            "fuel_per_customer": limits.fuel_per_customer,
            "budget_from": spent.from,
            "failures": ev.failures.iter().map(ToString::to_string).collect::<Vec<_>>(),
        }
    })
}
