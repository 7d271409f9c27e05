//! `cohort`: the command line over Cohort's libraries. Thin glue: parsing arguments,
//! reading files, printing results.

mod demo;
mod runner;

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
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List the plugins that ship with Cohort
    Plugins(runner::PluginsArgs),
    /// Print a plugin's self-description
    Describe(runner::DescribeArgs),
    /// Run a plugin over customers from a JSON-lines file and show each verdict with the
    /// fuel, memory and time it took against the limits
    Eval(runner::EvalArgs),
    /// Generate sample customers and run the country plugin over them
    Demo(demo::DemoArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let cache_dir = if cli.no_cache {
        None
    } else {
        cli.cache_dir.or_else(default_cache_dir)
    };
    let result = match cli.command {
        Command::Plugins(args) => runner::plugins(args, cache_dir),
        Command::Describe(args) => runner::describe(args, cache_dir),
        Command::Eval(args) => runner::eval(args, cache_dir),
        Command::Demo(args) => demo::run(args, cache_dir),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn default_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("cohort"))
}
