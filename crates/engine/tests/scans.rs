//! Scans cut into ranges on PostgreSQL write what one run in one transaction writes on
//! the embedded store; a range whose lease lapsed is written by one worker only; a
//! range no worker finishes fails its scan.

mod common;

use std::sync::Arc;

use cohort_engine::{Engine, Trigger, Worked};
use cohort_model::{CustomerRecord, Group};
use cohort_planner::Change;
use cohort_store::{Cause, NewScan, RunRecord, RunStatus, Runs, ScanStatus, Store};
use cohort_store_postgres::PgStore;
use cohort_store_postgres::scratch::fresh_url;

fn group(value: serde_json::Value) -> Group {
    serde_json::from_value(value).expect("group")
}

fn groups() -> Vec<Group> {
    let countries = |c: &[&str]| serde_json::json!({"all": [{"any": [{"plugin": "country", "config": {"countries": c}}]}]});
    vec![
        group(serde_json::json!({"id": "de", "name": "de",
            "auto": {"mode": "full-sync"}, "rule": countries(&["DE"])})),
        group(serde_json::json!({"id": "eu", "name": "eu",
            "auto": {"mode": "add-only"}, "rule": countries(&["DE", "FR"])})),
        group(serde_json::json!({"id": "gold", "name": "gold",
            "auto": {"mode": "full-sync"}, "exclusive": {"set": "tier", "priority": 1},
            "rule": countries(&["DE"])})),
        group(serde_json::json!({"id": "silver", "name": "silver",
            "auto": {"mode": "full-sync"}, "exclusive": {"set": "tier", "priority": 2},
            "rule": countries(&["DE", "FR", "US"])})),
        // Rules that refer to the groups above, and sort before them: each range
        // decides them after the groups they refer to wrote.
        group(
            serde_json::json!({"id": "a-eu-not-de", "name": "a-eu-not-de",
            "auto": {"mode": "full-sync"},
            "rule": {"all": [{"any": [{"group": "eu"}]},
                             {"any": [{"group": "de", "negate": true}]}]}}),
        ),
        group(serde_json::json!({"id": "a-tiered", "name": "a-tiered",
            "auto": {"mode": "add-only"},
            "rule": {"all": [{"any": [{"group": "silver"}, {"group": "gold"}]}]}})),
    ]
}

fn customer(i: usize, round: usize) -> CustomerRecord {
    let country = ["DE", "FR", "US", "NL"][(i * 7 + round * (i % 3)) % 4];
    serde_json::from_value(serde_json::json!({"id": format!("c{i:04}"), "country": country}))
        .expect("customer")
}

fn prepare(engine: &Engine) {
    engine
        .add_plugin(cohort_artifacts::COUNTRY, None, 0)
        .expect("plugin");
    for g in groups() {
        engine.save_group(&g, 0).expect("group");
    }
    load(engine, 0);
    // Memberships by hand, for the rules to keep or end.
    for i in (0..300).step_by(11) {
        let id = format!("c{i:04}");
        engine
            .add_member(&id, "de", "ops", "by hand", (5, None), 5)
            .expect("add");
    }
}

/// More customers than a page of the customer cache holds (8,192), their ids not in
/// the order they were written (`c10000` sorts between `c1000` and `c1001`): ranges
/// gather customers from several pages, in stretches.
const CUSTOMERS: usize = 20_000;

fn load(engine: &Engine, round: usize) {
    let records: Vec<CustomerRecord> = (0..CUSTOMERS).map(|i| customer(i, round)).collect();
    engine
        .store()
        .upsert_customers(&records, 1 + round as i64)
        .expect("customers");
}

/// Every membership, as comparable across stores: no ids.
fn memberships(store: &dyn Store) -> Vec<String> {
    let mut out: Vec<String> = groups()
        .iter()
        .flat_map(|g| store.group_memberships(&g.id).expect("memberships"))
        .map(|m| {
            format!(
                "{} {} {:?} {} {:?} {}",
                m.customer, m.group, m.source, m.start, m.end, m.reason
            )
        })
        .collect();
    out.sort();
    out
}

/// Every event of the feed (of three rounds of six groups over 20,000 customers), as
/// comparable across stores.
fn events(store: &dyn Store) -> Vec<String> {
    let mut out: Vec<String> = store
        .events_after(0, 1_000_000)
        .expect("events")
        .iter()
        .map(|e| {
            format!(
                "{} {} {} {}",
                e.event,
                e.customer,
                e.group.as_deref().unwrap_or_default(),
                e.at
            )
        })
        .collect();
    out.sort();
    out
}

fn counts(runs: &[cohort_engine::Result<RunRecord>]) -> Vec<(String, u64, u64, u64, u64)> {
    runs.iter()
        .map(|r| {
            let r = r.as_ref().expect("run");
            assert_eq!(r.status, RunStatus::Finished);
            (r.group.clone(), r.customers, r.matched, r.added, r.removed)
        })
        .collect()
}

#[test]
fn a_scan_in_ranges_writes_what_one_run_writes() {
    let dir = tempfile::tempdir().expect("dir");
    let embedded = common::engine(&dir.path().join("cohort.db"));
    let shared = common::engine_on(Arc::new(PgStore::connect(&fresh_url()).expect("store")));
    shared.set_range_size(7_001);
    let ids: Vec<String> = groups().iter().map(|g| g.id.clone()).collect();
    for engine in [&embedded, &shared] {
        prepare(engine);
    }
    for round in 0..3 {
        if round > 0 {
            load(&embedded, round);
            load(&shared, round);
        }
        let at = 100 + round as i64;
        let one = embedded.run_groups(&ids, Trigger::Manual, "ops", at, at);
        let ranged = shared.run_groups(&ids, Trigger::Manual, "ops", at, at);
        assert_eq!(counts(&one), counts(&ranged), "round {round}");
        assert_eq!(
            memberships(embedded.store()),
            memberships(shared.store()),
            "round {round}"
        );
        assert_eq!(events(embedded.store()), events(shared.store()));
        let store = shared.store();
        let eu_not_de: std::collections::BTreeSet<String> = common::active(store, "eu", at)
            .difference(&common::active(store, "de", at))
            .cloned()
            .collect();
        assert!(!eu_not_de.is_empty());
        assert_eq!(
            common::active(store, "a-eu-not-de", at),
            eu_not_de,
            "round {round}"
        );
        let tiered = common::active(store, "a-tiered", at);
        assert!(common::active(store, "gold", at).is_subset(&tiered));
        assert!(common::active(store, "silver", at).is_subset(&tiered));
    }
    let runs = shared.store().runs(None, None, 100).expect("runs");
    assert!(runs.iter().all(|r| r.status == RunStatus::Finished));
    let scans = shared.store().scans().expect("scans");
    let first = scans.scan(1).expect("scan").expect("the first scan");
    assert_eq!(
        (first.ranges, first.done),
        (3, 3),
        "20,000 customers by 7,001"
    );
    assert!(memberships(shared.store()).len() > CUSTOMERS);
}

fn started(store: &PgStore) -> i64 {
    let run = RunRecord {
        group: "de".into(),
        trigger: Trigger::Manual,
        actor: "ops".into(),
        as_of: 100,
        started_at: 100,
        status: RunStatus::Running,
        ..RunRecord::default()
    };
    store
        .scans()
        .expect("scans")
        .start_scan(&NewScan {
            runs: vec![run],
            jobs: vec![vec![0]],
            range_size: 1_000_000,
            at: 100,
        })
        .expect("scan")
        .id
}

#[test]
fn a_range_whose_lease_lapsed_is_written_by_the_worker_that_took_it_over() {
    let store = Arc::new(PgStore::connect(&fresh_url()).expect("store"));
    let engine = common::engine_on(store.clone());
    prepare(&engine);
    let scan = started(&store);
    let scans = store.scans().expect("scans");
    // A lease of no time lapses at once.
    let first = scans
        .claim_range("a", None, 0)
        .expect("claim")
        .expect("a range");
    let second = scans
        .claim_range("b", None, 30)
        .expect("claim")
        .expect("taken over");
    assert_eq!((first.scan, first.range), (second.scan, second.range));
    assert_eq!(second.attempt, 2);
    assert!(
        !scans.renew_range(&first, 30).expect("renew"),
        "no longer a's"
    );
    let run = first.jobs[0][0].id;
    let add = vec![Change::Add {
        customer: "c0001".into(),
        group: "de".into(),
        source: cohort_model::Source::Rule,
        reason: "late".into(),
        start: 100,
        end: None,
    }];
    let mut late = |tx: &mut dyn cohort_store::RangeWork| {
        let cause = Cause {
            trigger: Trigger::Manual,
            actor: "rule:de",
            run: Some(run),
        };
        tx.apply(&[(&add, cause)], 100)?;
        Ok(Vec::new())
    };
    let before = memberships(store.as_ref());
    assert!(
        scans
            .finish_range(&first, 101, &mut late)
            .expect("finish")
            .is_none(),
        "the worker that lost its lease writes nothing"
    );
    assert_eq!(memberships(store.as_ref()), before);
    let done = scans
        .finish_range(&second, 101, &mut |_| Ok(Vec::new()))
        .expect("finish")
        .expect("b's");
    assert_eq!(
        (done.id, done.status, done.done),
        (scan, ScanStatus::Finished, 1)
    );
    assert_eq!(done.runs[0].status, RunStatus::Finished);
}

#[test]
fn a_range_no_worker_finishes_fails_its_scan_and_its_runs() {
    let store = Arc::new(PgStore::connect(&fresh_url()).expect("store"));
    let engine = common::engine_on(store.clone());
    prepare(&engine);
    let scan = started(&store);
    let scans = store.scans().expect("scans");
    for worker in 0..10 {
        scans
            .claim_range(&format!("w{worker}"), Some(scan), 0)
            .expect("claim")
            .expect("a range");
    }
    let report = engine
        .work_range(scans, "w", Some(scan), 30, 200, false)
        .expect("work")
        .expect("claimed");
    assert!(matches!(report.worked, Worked::Failed(_)), "{report:?}");
    let record = scans.scan(scan).expect("scan").expect("recorded");
    assert_eq!(record.status, ScanStatus::Failed);
    assert!(
        record
            .error
            .as_deref()
            .is_some_and(|e| e.contains("taken 10 times"))
    );
    assert_eq!(record.runs[0].status, RunStatus::Failed);
    assert!(
        engine
            .work_range(scans, "w", Some(scan), 30, 200, false)
            .expect("work")
            .is_none(),
        "nothing is left to claim"
    );
}

#[test]
fn a_group_is_scanned_by_one_scan_at_a_time() {
    let store = Arc::new(PgStore::connect(&fresh_url()).expect("store"));
    let engine = common::engine_on(store.clone());
    prepare(&engine);
    let first = started(&store);
    let scans = store.scans().expect("scans");
    // A second scan of `de` would plan its customers apart from the first's writes.
    let again = engine.start_scan(&["de".to_string()], "ops", 100, 100);
    match again {
        Err(cohort_engine::EngineError::Store(cohort_store::StoreError::Conflict(why))) => {
            assert!(why.contains(&format!("scan {first}")), "{why}");
        }
        other => panic!("a conflict expected: {other:?}"),
    }
    // Cancelled, the first no longer stands in the way; its runs say why they ended.
    assert!(
        scans
            .cancel_scan(first, "cancelled by ops", 101)
            .expect("cancel")
    );
    assert!(
        !scans.cancel_scan(first, "again", 102).expect("cancel"),
        "once"
    );
    let cancelled = scans.scan(first).expect("read").expect("scan");
    assert_eq!(cancelled.runs[0].status, RunStatus::Cancelled);
    assert_eq!(cancelled.runs[0].error.as_deref(), Some("cancelled by ops"));
    assert!(
        scans
            .claim_range("w", Some(first), 30)
            .expect("claim")
            .is_none(),
        "its open ranges were given up"
    );
    engine
        .start_scan(&["de".to_string()], "ops", 103, 103)
        .expect("a new scan of the group");
}

#[test]
fn a_scheduled_time_that_finds_its_group_being_scanned_is_not_a_failure() {
    let store = Arc::new(PgStore::connect(&fresh_url()).expect("store"));
    let engine = common::engine_on(store.clone());
    prepare(&engine);
    let mut de =
        serde_json::to_value(engine.store().group("de").expect("read").expect("de")).expect("JSON");
    de["auto"]["triggers"]["schedule"] =
        serde_json::json!({"cron": "* * * * * *", "time_zone": "UTC"});
    engine
        .save_group(&serde_json::from_value(de).expect("group"), 50)
        .expect("saves");
    // Another scheduler's scan of `de`, started at an earlier second, still runs.
    started(&store);
    let runs = engine.run_due(200).expect("ticks");
    assert!(
        runs.iter().all(Result::is_ok),
        "the scan under way is the group's run: {runs:?}"
    );
    assert!(
        runs.iter().flatten().all(|r| r.group != "de"),
        "no second run of `de`: {runs:?}"
    );
}
