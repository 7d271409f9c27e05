//! What the engine's integration tests share.

use std::path::Path;
use std::sync::Arc;

use cohort_engine::Engine;
use cohort_host::{Host, HostConfig};
use cohort_model::Interner;
use cohort_store_sqlite::SqliteStore;

/// An engine on the store file `db`, with no plugins yet. Compiled plugins are cached
/// on disk across tests, as an operator's host would cache them across restarts.
pub fn engine(db: &Path) -> Engine {
    let store = SqliteStore::open(db).expect("store opens");
    let host = Host::new(
        HostConfig {
            cache_dir: Some(Path::new(env!("CARGO_TARGET_TMPDIR")).join("plugin-cache")),
            ..HostConfig::default()
        },
        Arc::new(Interner::new()),
    )
    .expect("host");
    Engine::new(Arc::new(store), host)
}
