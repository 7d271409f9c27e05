//! What the Python plugins' tests share.

use std::path::Path;
use std::sync::Arc;

use cohort_host::{Host, HostConfig};
use cohort_model::Interner;

/// A host with the default limits whose compiled plugins are cached across the tests
/// of a run: each 18 MB Python component is compiled once.
pub fn host() -> Host {
    Host::new(
        HostConfig {
            cache_dir: Some(Path::new(env!("CARGO_TARGET_TMPDIR")).join("plugin-cache")),
            ..HostConfig::default()
        },
        Arc::new(Interner::new()),
    )
    .expect("host starts")
}
