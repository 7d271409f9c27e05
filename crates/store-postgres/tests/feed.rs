//! What only a shared store must show: writers at once on one database.

use std::time::Duration;

use cohort_model::Group;
use cohort_store::conformance::{CAUSE, add};
use cohort_store::prelude::*;
use cohort_store::{Cause, RunRecord, RunStatus, Trigger};
use cohort_store_postgres::PgStore;

fn group(id: &str) -> Group {
    serde_json::from_value(serde_json::json!({"id": id, "name": id})).expect("group")
}

/// Read the feed as a client polls it: from its cursor on, moving the cursor to the
/// last event it was handed.
fn poll(store: &PgStore, cursor: &mut i64, seen: &mut Vec<i64>) {
    for event in store.events_after(*cursor, 100).expect("events") {
        *cursor = event.id;
        seen.push(event.id);
    }
}

/// A run's changes and its record commit in one transaction, the record last: the test
/// holds the group's row so that a periodic run's transaction, its events written,
/// waits there uncommitted. Meanwhile another writer commits a later event, and a
/// reader polls throughout. With positions from a sequence the reader would see the
/// later event, move past the held one's position, and never see it.
#[test]
fn the_feed_never_skips_an_event_that_commits_late() {
    let url = cohort_store_postgres::scratch::fresh_url();
    let store = PgStore::connect(&url).expect("store");
    store.put_group(&group("slow"), 1).expect("group");
    let run = RunRecord {
        group: "slow".into(),
        trigger: Trigger::Periodic,
        actor: "scheduler".into(),
        status: RunStatus::Running,
        ..RunRecord::default()
    };
    let id = store.start_runs(std::slice::from_ref(&run)).expect("start")[0];
    let finished = RunRecord {
        id,
        status: RunStatus::Finished,
        finished_at: Some(20),
        ..run
    };

    let mut holder = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
    let mut hold = holder.transaction().expect("transaction");
    hold.execute("SELECT 1 FROM groups WHERE id = 'slow' FOR UPDATE", &[])
        .expect("hold the group's row");

    let (mut cursor, mut seen) = (0, Vec::new());
    std::thread::scope(|scope| {
        let slow = scope.spawn(|| {
            let cause = Cause {
                trigger: Trigger::Periodic,
                actor: "rule:slow",
                run: Some(id),
            };
            store
                .finish_run(&finished, &[add("c-slow", "slow")], &cause, 20)
                .expect("the slow run finishes")
        });
        // Until the slow run, its events written, waits for the held row.
        let application = url
            .rsplit_once("application_name=")
            .expect("the store's sessions are named")
            .1;
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let mut admin =
            postgres::Client::connect(&cohort_store_postgres::scratch::server(), postgres::NoTls)
                .expect("admin");
        loop {
            let waiting: i64 = admin
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity
                     WHERE application_name = $1 AND wait_event_type = 'Lock'",
                    &[&application],
                )
                .expect("sessions")
                .get(0);
            if waiting > 0 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the slow run never waited"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let fast = scope.spawn(|| {
            store
                .apply(&[add("c-fast", "fast")], &CAUSE, 21)
                .expect("the fast write")
        });
        for _ in 0..10 {
            poll(&store, &mut cursor, &mut seen);
            std::thread::sleep(Duration::from_millis(30));
        }
        assert!(!slow.is_finished(), "the slow run is held");
        hold.rollback().expect("let the slow run go");
        slow.join().expect("slow");
        fast.join().expect("fast");
    });
    poll(&store, &mut cursor, &mut seen);

    let all: Vec<i64> = store
        .events_after(0, 100)
        .expect("events")
        .iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(all.len(), 2, "both writes' events: {all:?}");
    assert_eq!(seen, all, "the reader saw every event, in order");
    assert_eq!(all, [1, 2], "positions without gaps");
    let customers: Vec<String> = store
        .events_after(0, 100)
        .expect("events")
        .into_iter()
        .map(|e| e.customer)
        .collect();
    assert_eq!(
        customers,
        ["c-slow", "c-fast"],
        "in the order they committed"
    );
}

/// Two servers registering the same customer at once: one stores it with its
/// memberships, the other finds it registered and applies nothing.
#[test]
fn two_registrations_of_one_customer_at_once_apply_once() {
    let url = cohort_store_postgres::scratch::fresh_url();
    let (a, b) = (
        PgStore::connect(&url).expect("store"),
        PgStore::connect(&url).expect("store"),
    );
    let record: cohort_model::CustomerRecord =
        serde_json::from_value(serde_json::json!({"id": "c1", "country": "DE"})).expect("customer");
    let changes = [add("c1", "g")];
    let batches = [(&changes[..], CAUSE)];
    let results: Vec<bool> = std::thread::scope(|scope| {
        let handles: Vec<_> = [&a, &b]
            .into_iter()
            .map(|store| {
                let (record, batches) = (&record, &batches);
                scope.spawn(move || {
                    store
                        .register(record, 10, batches)
                        .expect("register")
                        .is_some()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    assert_eq!(
        results.iter().filter(|&&applied| applied).count(),
        1,
        "{results:?}"
    );
    assert_eq!(a.group_memberships("g").expect("memberships").len(), 1);
    assert_eq!(a.events_after(0, 10).expect("events").len(), 1);
}

/// A store opened by a newer Cohort is refused, both versions named.
#[test]
fn a_database_migrated_by_a_newer_cohort_is_refused() {
    let url = cohort_store_postgres::scratch::fresh_url();
    drop(PgStore::connect(&url).expect("store"));
    let mut client = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
    client
        .execute("UPDATE schema_version SET version = 99", &[])
        .expect("a newer version");
    let error = PgStore::connect(&url).err().expect("refused").to_string();
    // The versions this Cohort knows: one per file in migrations/.
    let known = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
        .expect("migrations")
        .count();
    assert!(
        error.contains("schema version 99") && error.contains(&format!("versions up to {known}")),
        "{error}"
    );
}

/// Runs left `running` by a store that went away are marked interrupted by the next
/// store to open; those of a store still open keep running.
#[test]
fn runs_of_a_store_gone_are_interrupted_and_those_of_a_live_one_are_not() {
    let url = cohort_store_postgres::scratch::fresh_url();
    let run = RunRecord {
        group: "g".into(),
        actor: "op".into(),
        status: RunStatus::Running,
        ..RunRecord::default()
    };
    let live = PgStore::connect(&url).expect("store");
    let gone = PgStore::connect(&url).expect("store");
    live.start_runs(std::slice::from_ref(&run)).expect("start");
    gone.start_runs(std::slice::from_ref(&run)).expect("start");
    drop(gone);
    // PostgreSQL ends the session's locks as the connection closes, a moment after.
    std::thread::sleep(Duration::from_millis(200));
    let next = PgStore::connect(&url).expect("store");
    let statuses: Vec<RunStatus> = next
        .runs(None, None, 10)
        .expect("runs")
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [RunStatus::Interrupted, RunStatus::Running]);
}

/// A customer written by a transaction that commits after a reader has read past it is
/// still handed to that reader next time, once; and what was handed is not handed again.
#[test]
fn a_cache_of_customers_misses_no_write_that_commits_late_and_rereads_nothing() {
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    let url = cohort_store_postgres::scratch::fresh_url();
    let store = PgStore::connect(&url).expect("store");
    let customer = |id: &str| -> cohort_model::CustomerRecord {
        serde_json::from_value(serde_json::json!({"id": id})).expect("customer")
    };
    let since = |seq: Option<i64>| -> (Vec<String>, i64) {
        let batches = Mutex::new(BTreeMap::new());
        let last = store
            .customers_since(seq, 100, &|n, records| {
                let ids: Vec<String> = records.map(|c| c.id).collect();
                batches.lock().expect("batches").insert(n, ids);
            })
            .expect("since");
        let ids = batches
            .into_inner()
            .expect("batches")
            .into_values()
            .flatten();
        (ids.collect(), last)
    };
    store.upsert_customer(&customer("early"), 1).expect("early");

    // A writer that takes its transaction number, writes, and waits.
    let mut holder = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
    let mut held = holder.transaction().expect("transaction");
    held.execute(
        "INSERT INTO customers (id, record, registered_at, updated_at)
         VALUES ('late', '{\"id\":\"late\"}', 2, 2)",
        &[],
    )
    .expect("the held write");

    let (first, at) = since(None);
    assert_eq!(first, ["early"], "the held write is not visible yet");
    store.upsert_customer(&customer("after"), 3).expect("after");
    let (second, at) = since(Some(at));
    assert_eq!(second, ["after"], "only what is new");
    held.commit().expect("the held write commits");
    let (third, at) = since(Some(at));
    assert_eq!(
        third,
        ["late"],
        "the late commit is handed over, not skipped"
    );
    assert_eq!(since(Some(at)), (Vec::new(), at), "and nothing again");
}
