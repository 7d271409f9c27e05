//! Batches past the size written by `COPY` read back as the embedded store reads the
//! same batches: memberships, history and the feed, row for row.

use cohort_model::Source;
use cohort_planner::Change;
use cohort_store::Store;
use cohort_store::conformance::CAUSE;
use cohort_store_postgres::scratch;
use cohort_store_sqlite::SqliteStore;

fn told(store: &dyn Store) -> Vec<String> {
    let mut out: Vec<String> = store
        .group_memberships("g")
        .expect("memberships")
        .iter()
        .map(|m| format!("{m:?}"))
        .collect();
    out.extend(
        store
            .history(None, None, None, 100_000)
            .expect("history")
            .iter()
            .map(|e| format!("{e:?}")),
    );
    out.extend(
        store
            .events_after(0, 100_000)
            .expect("events")
            .iter()
            .map(|e| format!("{e:?}")),
    );
    out
}

#[test]
fn a_large_batch_reads_back_as_the_embedded_store_reads_it() {
    let adds: Vec<Change> = (0..2_500)
        .map(|i| Change::Add {
            customer: format!("c{i:05}").into(),
            group: "g".into(),
            source: if i % 7 == 0 {
                Source::Manual
            } else {
                Source::Rule
            },
            reason: "the rule matches".into(),
            start: 10,
            end: (i % 5 == 0).then_some(100),
        })
        .collect();
    let sqlite = SqliteStore::in_memory().expect("sqlite");
    let postgres = scratch::fresh();
    for store in [&sqlite as &dyn Store, &postgres] {
        let applied = store.apply(&adds, &CAUSE, 20).expect("adds");
        let ends: Vec<Change> = applied
            .ids
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 2 == 0)
            .map(|(i, id)| Change::End {
                membership: *id,
                customer: format!("c{i:05}").into(),
                group: "g".into(),
                at: 30,
                reason: "the rule no longer matches".into(),
            })
            .collect();
        let ended = store.apply(&ends, &CAUSE, 30).expect("ends");
        assert_eq!(ended.removed, 1_250);
    }
    let (expected, got) = (told(&sqlite), told(&postgres));
    assert_eq!(expected.len(), got.len());
    for (e, g) in expected.iter().zip(&got) {
        assert_eq!(e, g);
    }
}
