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

/// An engine whose group `gb` takes customers whose registration address GeoIP places
/// in Great Britain, reading the database `Country.mmdb` in the data directory
/// returned, with customers c0 and c1 in Great Britain and c2 nowhere known.
pub fn geoip_gb(dir: &Path) -> (Engine, std::path::PathBuf) {
    let data = dir.join("geoip");
    std::fs::create_dir(&data).expect("data dir");
    std::fs::copy(
        geoip_testdata().join("GeoIP2-Country-Test.mmdb"),
        data.join("Country.mmdb"),
    )
    .expect("copy");
    let engine = engine(&dir.join("cohort.db"));
    engine
        .add_plugin(cohort_artifacts::GEOIP_COUNTRY, Some(&data), 0)
        .expect("plugin");
    engine
        .save_group(
            &serde_json::from_value::<cohort_model::Group>(serde_json::json!({
                "id": "gb", "name": "GB", "auto": {"mode": "full-sync"},
                "rule": {"all": [{"any": [{"plugin": "geoip-country",
                    "config": {"countries": ["GB"], "database": "Country.mmdb"}}]}]}
            }))
            .expect("group"),
            0,
        )
        .expect("group");
    let records: Vec<cohort_model::CustomerRecord> = ["81.2.69.142", "2.125.160.216", "1.2.3.4"]
        .iter()
        .enumerate()
        .map(|(i, ip)| {
            serde_json::from_value(
                serde_json::json!({"id": format!("c{i}"), "registration_ip": ip}),
            )
            .expect("customer")
        })
        .collect();
    engine.store().upsert_customers(&records, 0).expect("load");
    (engine, data)
}

pub fn geoip_testdata() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata/geoip")
}

/// An operator's budget too small for any call: one unit of fuel.
pub fn starved() -> cohort_model::PluginBudget {
    cohort_model::PluginBudget {
        fuel_per_call: Some(1),
        fuel_per_customer: Some(1),
        ..cohort_model::PluginBudget::default()
    }
}

/// `run` decided none of its `customers` on a `starved` budget, and its failures say
/// which budget ran out.
pub fn assert_starved(run: &cohort_store::RunRecord, customers: u64) {
    assert_eq!((run.matched, run.undecided), (0, customers));
    assert!(
        run.failures
            .iter()
            .any(|(failure, _)| failure.contains("ran out of fuel")),
        "{:?}",
        run.failures
    );
}
