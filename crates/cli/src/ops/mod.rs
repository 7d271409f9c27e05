//! The operator's commands over the store: plugins, groups and customers
//! (`catalog`), runs and the scheduler (`runs`), membership by hand and imports
//! (`members`), history and explanations (`history`), moving a store (`copy`); and what
//! they share.

mod catalog;
mod copy;
mod history;
mod members;
mod runs;
mod signing;
mod workers;

pub use catalog::{CustomerCommand, GroupCommand, PluginCommand, customer, group, plugin};
pub use copy::{StoreCommand, store};
pub use history::{ExplainArgs, HistoryArgs, explain, history};
pub use members::{ImportCommand, MemberCommand, import, member};
pub use runs::{RunArgs, SchedulerArgs, run, runs, scheduler};
pub use signing::{TrustCommand, trust};
pub use workers::{ScanArgs, WorkerArgs, scan, worker};

use std::path::PathBuf;
use std::sync::Arc;

use crate::assemble::{self, Stack};
use chrono::{DateTime, Utc};
use clap::Args;
use cohort_engine::Engine;
use cohort_host::Limits;
use cohort_model::Timestamp;

/// Where the store lives and who is acting.
#[derive(Args, Clone)]
pub struct StoreArgs {
    /// The store: an SQLite file (created if missing; `sqlite:FILE` too), or a
    /// PostgreSQL database shared by several servers (`postgres://user@host/db`)
    /// [default: cohort.db, or the `db` of `serve`'s configuration file]
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
