//! The database goes away in the middle of a run: the run writes all of its changes or
//! none, and its record ends `finished`, `failed` or (once its store is gone)
//! `interrupted`, never `running` with half its rows.

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

    // Every session of the store is ended, again and again, while the run goes on.
    let running = AtomicBool::new(true);
    let outcome = std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut admin = postgres::Client::connect(&server(), postgres::NoTls).expect("admin");
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

    // Read by a store opened afterwards, as the next server would.
    let after = PgStore::connect(&url).expect("the database is back");
    use cohort_store::prelude::*;
    // A run cut off before its record was written has none.
    let runs = after.runs(Some("de"), None, 10).expect("runs");
    assert!(runs.len() <= 1, "{runs:?}");
    for run in &runs {
        assert!(
            matches!(run.status, RunStatus::Failed | RunStatus::Interrupted),
            "{run:?}"
        );
    }
    assert!(
        after
            .group_memberships("de")
            .expect("memberships")
            .is_empty()
    );
    assert!(
        after
            .history(None, None, None, 10)
            .expect("history")
            .is_empty()
    );
    assert!(after.events_after(0, 10).expect("events").is_empty());
}
