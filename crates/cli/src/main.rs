//! `cohort`: the command line over Cohort's libraries. Thin glue: parsing arguments,
//! reading files, printing results.

mod assemble;
mod demo;
mod ops;
mod runner;
mod serve;
mod staff;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cohort",
    version,
    about = "Sort billing customers into groups with sandboxed WebAssembly condition plugins"
)]
struct Cli {
    /// Where compiled plugins are cached between runs [default: $XDG_CACHE_HOME/cohort or
    /// ~/.cache/cohort]
    #[arg(long, global = true, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Compile plugins afresh every time
    #[arg(long, global = true)]
    no_cache: bool,
    #[command(flatten)]
    store: ops::StoreArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List the plugins that ship with Cohort
    Plugins,
    /// Print a plugin's self-description
    Describe(runner::DescribeArgs),
    /// Run a plugin over customers from a JSON-lines file and show each verdict with the
    /// fuel, memory and time it took against the limits
    Eval(runner::EvalArgs),
    /// Generate a sample platform in a fresh store, run its groups and report
    Demo(demo::DemoArgs),
    /// Manage the plugins in the store
    #[command(subcommand)]
    Plugin(ops::PluginCommand),
    /// The keys trusted to sign plugins, and whether plugins must be signed
    #[command(subcommand)]
    Trust(ops::TrustCommand),
    /// Manage groups
    #[command(subcommand)]
    Group(ops::GroupCommand),
    /// Manage customers
    #[command(subcommand)]
    Customer(ops::CustomerCommand),
    /// Run a group's rule now (or a dry run)
    Run(ops::RunArgs),
    /// Run groups whose schedule is due, now and then (or --once)
    Scheduler(ops::SchedulerArgs),
    /// Carry out the scans recorded in a PostgreSQL store, range by range, beside any
    /// number of other workers
    Worker(ops::WorkerArgs),
    /// Where a scan shared by workers stands (or wait for it to end)
    Scan(ops::ScanArgs),
    /// List and change memberships by hand
    #[command(subcommand)]
    Member(ops::MemberCommand),
    /// The audit history of membership changes
    History(ops::HistoryArgs),
    /// Recent runs
    Runs {
        #[arg(long)]
        group: Option<String>,
    },
    /// Why a customer is or is not a member of a group
    Explain(ops::ExplainArgs),
    /// Bulk-assign customers to groups with validity windows from CSV files
    #[command(subcommand)]
    Import(ops::ImportCommand),
    /// Serve the HTTP API on the store, with webhooks and the scheduler
    Serve(serve::ServeArgs),
    /// Manage the API's bearer tokens
    #[command(subcommand)]
    Token(serve::TokenCommand),
    /// Manage the billing staff who sign in to the console
    #[command(subcommand)]
    User(staff::UserCommand),
    /// Print the HTTP API's OpenAPI document
    Openapi,
    /// Manage the compiled plugins cached on disk
    #[command(subcommand)]
    Cache(runner::CacheCommand),
    /// Move a whole store to another backend
    #[command(subcommand)]
    Store(ops::StoreCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if !matches!(
        cli.command,
        Command::Serve(_) | Command::Scheduler(_) | Command::Worker(_)
    ) {
        // Rust ignores SIGPIPE, so a write to a pipe whose reader has gone fails and
        // `println!` panics ("failed printing to stdout: Broken pipe"). A command that
        // prints and ends should stop quietly instead, as `cat` does; the long-running
        // ones keep ignoring it, so that a client hanging up fails one write only.
        // SAFETY: `signal` with a valid signal number and `SIG_DFL`, before any thread
        // is started.
        #[allow(unsafe_code, reason = "setting a signal's disposition is a C call")]
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let cache_dir = if cli.no_cache {
        None
    } else {
        cli.cache_dir.or_else(default_cache_dir)
    };
    let store = &cli.store;
    let json = store.json;
    let result = match cli.command {
        Command::Plugins => runner::plugins(json, cache_dir),
        Command::Describe(args) => runner::describe(args, json, cache_dir),
        Command::Eval(args) => runner::eval(args, json, cache_dir),
        Command::Demo(args) => demo::run(args, store.db.as_deref(), cache_dir),
        Command::Plugin(cmd) => ops::plugin(cmd, store, cache_dir),
        Command::Trust(cmd) => ops::trust(cmd, store, cache_dir),
        Command::Group(cmd) => ops::group(cmd, store, cache_dir),
        Command::Customer(cmd) => ops::customer(cmd, store, cache_dir),
        Command::Run(args) => ops::run(args, store, cache_dir),
        Command::Scheduler(args) => ops::scheduler(args, store, cache_dir),
        Command::Worker(args) => ops::worker(args, store, cache_dir),
        Command::Scan(args) => ops::scan(args, store, cache_dir),
        Command::Member(cmd) => ops::member(cmd, store, cache_dir),
        Command::History(args) => ops::history(args, store, cache_dir),
        Command::Runs { group } => ops::runs(group, store, cache_dir),
        Command::Explain(args) => ops::explain(args, store, cache_dir),
        Command::Import(cmd) => ops::import(cmd, store, cache_dir),
        Command::Serve(args) => serve::serve(args, store, cache_dir),
        Command::Store(cmd) => ops::store(cmd, json),
        Command::Token(cmd) => serve::token(cmd, store, cache_dir),
        Command::User(cmd) => staff::user(cmd, store, cache_dir),
        Command::Openapi => serve::openapi(),
        Command::Cache(cmd) => runner::cache(cmd, json, cache_dir),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", report(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes, each said once: a cause whose words are already in what
/// precedes it (an error that shows its source, and also has it as its cause) is not
/// repeated.
fn report(e: &anyhow::Error) -> String {
    let mut text = e.to_string();
    for cause in e.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

fn default_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("cohort"))
}

#[cfg(test)]
mod tests {
    use super::report;

    #[derive(Debug, thiserror::Error)]
    #[error("plugin: {0}")]
    struct Shows(#[from] std::io::Error);

    #[test]
    fn each_cause_is_said_once() {
        let e = anyhow::Error::from(Shows(std::io::Error::other("not wasm")))
            .context("cannot load plugin `x.wasm`");
        assert_eq!(report(&e), "cannot load plugin `x.wasm`: plugin: not wasm");
    }
}
