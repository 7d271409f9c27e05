//! What the engine's integration tests share.
#![allow(
    dead_code,
    reason = "each test binary that includes these helpers uses some of them"
)]

use std::path::Path;
use std::sync::Arc;

use cohort_engine::Engine;
use cohort_host::{Host, HostConfig};
use cohort_model::Interner;
use cohort_store::Store;
use cohort_store_sqlite::SqliteStore;

/// An engine on the store file `db`, with no plugins yet. Compiled plugins are cached
/// on disk across tests, as an operator's host would cache them across restarts.
pub fn engine(db: &Path) -> Engine {
    engine_on(Arc::new(SqliteStore::open(db).expect("store opens")))
}

/// An engine on `store`, with no plugins yet.
pub fn engine_on(store: Arc<dyn Store>) -> Engine {
    let host = Host::new(
        HostConfig {
            cache_dir: Some(Path::new(env!("CARGO_TARGET_TMPDIR")).join("plugin-cache")),
            ..HostConfig::default()
        },
        Arc::new(Interner::new()),
    )
    .expect("host");
    Engine::new(store, host)
}

/// The customers with a membership of `group` active at `at`.
pub fn active(store: &dyn Store, group: &str, at: i64) -> std::collections::BTreeSet<String> {
    store
        .group_memberships(group)
        .expect("memberships")
        .into_iter()
        .filter(|m| m.is_active(at))
        .map(|m| m.customer)
        .collect()
}
