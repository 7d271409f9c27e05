//! Conditions kept from one run to the next: a run starts from the plugin instances the
//! last run of its group (or a registration) left, unless what they were prepared on has
//! changed since, in this process or another.

mod common;

use std::path::Path;
use std::sync::Arc;

use cohort_engine::{Engine, Trigger};
use cohort_host::{Host, HostConfig, Limits};
use cohort_model::{CustomerRecord, Group, Interner};
use cohort_store::RunRecord;
use cohort_store_sqlite::SqliteStore;
use common::{active, geoip_gb, geoip_testdata};

fn run(engine: &Engine, group: &str, at: i64) -> RunRecord {
    engine
        .run_group(group, Trigger::Manual, false, "op", at, at, &mut |_, _| {})
        .expect("runs")
        .run
}

/// A dry run: it decides every customer afresh, where a run may keep decisions.
fn dry_run(engine: &Engine, group: &str, at: i64) -> RunRecord {
    engine
        .run_group(group, Trigger::Manual, true, "op", at, at, &mut |_, _| {})
        .expect("runs")
        .run
}

fn group(value: serde_json::Value) -> Group {
    serde_json::from_value(value).expect("group")
}

/// A run's failures count against a failure budget of its own, also on conditions the
/// last run left: a customer whose call traps is called again in the next run, not
/// given up on for the last run's failures.
#[test]
fn a_kept_condition_has_a_failure_budget_of_its_own_in_each_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = Host::new(
        HostConfig {
            limits: Limits {
                failed_calls: 1,
                ..Limits::default()
            },
            cache_dir: Some(Path::new(env!("CARGO_TARGET_TMPDIR")).join("plugin-cache")),
            ..HostConfig::default()
        },
        Arc::new(Interner::new()),
    )
    .expect("host");
    let store = SqliteStore::open(dir.path().join("cohort.db")).expect("store");
    let engine = Engine::new(Arc::new(store), host);
    let wasm = std::fs::read(cohort_artifacts::HOSTILE_PATH).expect("hostile");
    engine.add_plugin(&wasm, None, 0).expect("plugin");
    engine
        .save_group(
            &group(serde_json::json!({
                "id": "traps", "name": "traps", "auto": {"mode": "full-sync"},
                "rule": {"all": [{"any": [{"plugin": "hostile", "config": {"behaviour": "trap"}}]}]}
            })),
            0,
        )
        .expect("saves");
    let customer = CustomerRecord {
        id: "c".into(),
        tags: vec!["hostile".into()],
        ..CustomerRecord::default()
    };
    engine
        .store()
        .upsert_customers(&[customer], 0)
        .expect("load");

    let first = run(&engine, "traps", 10);
    assert_eq!(first.undecided, 1);
    assert!(
        first.failures.iter().all(|(f, _)| f.contains("trap")),
        "{:?}",
        first.failures
    );
    let second = run(&engine, "traps", 20);
    assert_eq!(
        second.failures, first.failures,
        "the customer is called again and traps again"
    );
}

/// A plugin reads its data directory when it is prepared (GeoIP loads its database
/// then): a directory that holds something else since makes the next run prepare
/// afresh instead of answering from what the kept instance loaded.
#[test]
fn a_changed_data_directory_makes_the_next_run_prepare_afresh() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (engine, data) = geoip_gb(dir.path());
    run(&engine, "gb", 10);
    let members = active(engine.store(), "gb", 10);
    assert_eq!(members.len(), 2, "{members:?}");

    std::fs::copy(
        geoip_testdata().join("MaxMind-DB-test-broken-search-tree-24.mmdb"),
        data.join("Country.mmdb"),
    )
    .expect("replace");
    let broken = engine.run_group("gb", Trigger::Manual, false, "op", 20, 20, &mut |_, _| {});
    let answered = broken.as_ref().map(|r| r.run.undecided);
    assert!(
        !matches!(answered, Ok(0)),
        "a broken database must not go unnoticed: {answered:?}"
    );
    assert_eq!(
        active(engine.store(), "gb", 20),
        members,
        "nothing decided on the broken database changes a membership"
    );
}

/// What another process changes in the store counts too: an operator's budget for the
/// plugin set there applies to this process's next run, kept conditions or not (dry
/// runs, which decide every customer afresh: a kept decision stands on a new budget).
#[test]
fn a_budget_set_by_another_process_applies_to_the_next_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (engine, _data) = geoip_gb(dir.path());
    assert_eq!(dry_run(&engine, "gb", 10).matched, 2);

    let other = common::engine(&dir.path().join("cohort.db"));
    let starved = common::starved();
    other
        .set_plugin_budget("geoip-country", &starved)
        .expect("set");
    let starved_run = dry_run(&engine, "gb", 20);
    common::assert_starved(&starved_run, 3);
}
