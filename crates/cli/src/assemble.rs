//! The one place that builds what commands work with: the store their configuration
//! names, the plugin host, and the engine over both.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cohort_engine::Engine;
use cohort_host::Limits;
use cohort_store::{Access, Store};
use cohort_store_postgres::{PgStore, is_postgres_url};
use cohort_store_sqlite::SqliteStore;

use crate::runner;

/// An engine, and the store's part that the HTTP layer keeps for itself.
pub struct Stack {
    pub engine: Arc<Engine>,
    /// Tokens, webhooks and idempotency: no rule or run touches them.
    pub access: Arc<dyn Access>,
}

/// Open the store `db` names, start a plugin host with `limits` and its compile cache
/// in `cache_dir` (or the default), and put an engine over both.
pub fn open(db: &Path, limits: Limits, cache_dir: Option<PathBuf>) -> anyhow::Result<Stack> {
    let store = store(db)?;
    let host = runner::new_host(limits, cache_dir)?;
    Ok(Stack {
        engine: Arc::new(Engine::new(store.clone(), host)),
        access: store,
    })
}

/// The store `db` names: a PostgreSQL database by its URL (`postgres://...`), else the
/// embedded store in a file, created if missing (a path, or `sqlite:` and a path).
pub fn store(db: &Path) -> anyhow::Result<Arc<dyn Store>> {
    let text = db.to_string_lossy();
    if is_postgres_url(&text) {
        return Ok(Arc::new(PgStore::connect(&text)?));
    }
    let file = match text.strip_prefix("sqlite:") {
        Some(path) => Path::new(path.strip_prefix("//").unwrap_or(path)),
        None => db,
    };
    Ok(Arc::new(SqliteStore::open(file)?))
}
