//! The database goes away in the middle of a run: each of its ranges writes all of its
//! changes or none, and a worker finishes what the run left, each customer once.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use cohort_engine::Trigger;
use cohort_model::{CustomerRecord, Group};
use cohort_store::RunStatus;
use cohort_store_postgres::PgStore;
use cohort_store_postgres::scratch::{fresh_url, server};

#[test]
fn a_run_whose_database_goes_away_writes_all_or_nothing() {
    let url = fresh_url();
    let application = url
        .rsplit_once("application_name=")
        .expect("the store's sessions are named")
        .1
        .to_string();
    let engine = common::engine_on(Arc::new(PgStore::connect(&url).expect("store")));
    engine
        .add_plugin(cohort_artifacts::COUNTRY, None, 0)
        .expect("plugin");
    let group: Group = serde_json::from_value(serde_json::json!({
        "id": "de", "name": "de", "auto": {"mode": "full-sync"},
        "rule": {"all": [{"any": [{"plugin": "country", "config": {"countries": ["DE"]}}]}]}
    }))
    .expect("group");
    engine.save_group(&group, 0).expect("group");
    let customers: Vec<CustomerRecord> = (0..30_000)
        .map(|i| {
            serde_json::from_value(serde_json::json!({"id": format!("c{i:05}"), "country": "DE"}))
                .expect("customer")
        })
        .collect();
    engine
        .store()
        .upsert_customers(&customers, 0)
        .expect("customers");

    // Once the run is recorded, every session of the store is ended, again and again,
    // while the run goes on. (The store's schema is named as its sessions are.)
    let running = AtomicBool::new(true);
    let outcome = std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut admin = postgres::Client::connect(&server(), postgres::NoTls).expect("admin");
            let recorded = format!("SELECT count(*) FROM {application}.runs");
            while running.load(Ordering::SeqCst)
                && admin
                    .query_one(&recorded, &[])
                    .map_or(0, |r| r.get::<_, i64>(0))
                    == 0
            {
                std::thread::sleep(Duration::from_millis(1));
            }
            while running.load(Ordering::SeqCst) {
                let _ = admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                     WHERE application_name = $1",
                    &[&application],
                );
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        let outcome = engine.run_group("de", Trigger::Manual, false, "ops", 10, 10, &mut |_, _| {});
        running.store(false, Ordering::SeqCst);
        outcome
    });
    assert!(
        outcome.is_err(),
        "the run cannot have gone through: {outcome:?}"
    );

    // The server that ran goes away (whatever sessions it had left close), and the
    // sessions ended go a moment after they are told to.
    drop(engine);
    let mut admin = postgres::Client::connect(&server(), postgres::NoTls).expect("admin");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let left: i64 = admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
                &[&application],
            )
            .expect("sessions")
            .get(0);
        if left == 0 {
            break;
        }
        if std::time::Instant::now() > deadline {
            let stay: Vec<String> = admin
                .query(
                    "SELECT state || ': ' || query FROM pg_stat_activity
                     WHERE application_name = $1",
                    &[&application],
                )
                .expect("sessions")
                .iter()
                .map(|r| r.get(0))
                .collect();
            panic!("{left} sessions stay: {stay:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }

    // Read by a store opened afterwards, as the next server would. A range writes all
    // of its changes or none (these 30,000 customers are one range): nothing was
    // written, or every membership with its entry and event.
    let after = Arc::new(PgStore::connect(&url).expect("the database is back"));
    use cohort_store::prelude::*;
    let written = after.group_memberships("de").expect("memberships").len();
    assert!(
        written == 0 || written == customers.len(),
        "{written} written"
    );
    let entries = after
        .history(None, None, None, 100_000)
        .expect("history")
        .len();
    let events = after.events_after(0, 100_000).expect("events").len();
    assert_eq!((entries, events), (written, written));

    // The run's scan belongs to no process: it stays `running` until a worker finishes
    // its ranges.
    let runs = after.runs(Some("de"), None, 10).expect("runs");
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0].status, RunStatus::Running, "{runs:?}");
    let worker = common::engine_on(after.clone());
    let scans = worker.scans().expect("a shared store");
    // The dead run's lease lapses within its 30 seconds; a worker then takes it over.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while after.runs(Some("de"), None, 1).expect("runs")[0].status == RunStatus::Running {
        assert!(
            std::time::Instant::now() < deadline,
            "no worker finished the scan"
        );
        worker
            .work_range(scans, "w", None, 30, 20, false)
            .expect("a range");
        std::thread::sleep(Duration::from_millis(200));
    }
    let run = &after.runs(Some("de"), None, 1).expect("runs")[0];
    assert_eq!(run.status, RunStatus::Finished, "{run:?}");
    let members = after.group_memberships("de").expect("memberships");
    assert_eq!(members.len(), customers.len(), "each customer once");
}
