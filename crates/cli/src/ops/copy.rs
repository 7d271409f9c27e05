//! Moving a whole embedded store to PostgreSQL.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Subcommand;
use cohort_store_postgres::{PgStore, describe_url, is_postgres_url};
use cohort_store_sqlite::SqliteStore;

use super::print_json;

#[derive(Subcommand)]
pub enum StoreCommand {
    /// Copy a whole embedded store into an empty PostgreSQL database: plugins,
    /// customers, groups, memberships with their windows, pins, the audit history, the
    /// change feed with its positions, webhooks with theirs, tokens, runs and imports.
    /// Stop everything that writes to the embedded store first. All or nothing: if the
    /// copy fails, the database stays empty.
    Copy {
        /// The embedded store's file
        #[arg(long)]
        from: PathBuf,
        /// The PostgreSQL database (`postgres://user@host/db`)
        #[arg(long)]
        to: String,
    },
}

pub fn store(cmd: StoreCommand, json: bool) -> anyhow::Result<ExitCode> {
    let StoreCommand::Copy { from, to } = cmd;
    if !is_postgres_url(&to) {
        anyhow::bail!(
            "--to `{to}` is not a PostgreSQL database (postgres://user@host/db): a copy goes \
             from the embedded store to a shared one"
        );
    }
    if !from.is_file() {
        anyhow::bail!("--from `{}`: no embedded store there", from.display());
    }
    let started = Instant::now();
    let source = SqliteStore::open(&from)?;
    let target = PgStore::connect(&to)?;
    let counts = target.restore(&mut |sink| source.dump(sink))?;
    if json {
        let counts: serde_json::Map<String, serde_json::Value> = counts
            .iter()
            .map(|(kind, n)| (kind.to_string(), (*n).into()))
            .collect();
        print_json(&serde_json::json!({"from": from, "to": describe_url(&to), "copied": counts}))?;
    } else {
        println!(
            "copied `{}` to `{}` in {:.1} s:",
            from.display(),
            describe_url(&to),
            started.elapsed().as_secs_f64()
        );
        for (kind, n) in counts {
            println!("  {n:>10} {kind}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
