//! Two engines (two servers) on one PostgreSQL database, changing the same customers at
//! once: the invariants hold by the store's locks, not by luck.

mod common;

use std::sync::Arc;

use cohort_engine::Engine;
use cohort_model::{CustomerRecord, Group, State};
use cohort_store_postgres::PgStore;
use cohort_store_postgres::scratch::fresh_url;

fn group(id: &str, priority: u32) -> Group {
    serde_json::from_value(serde_json::json!({
        "id": id, "name": id,
        "auto": {"mode": "disabled"},
        "exclusive": {"set": "tier", "priority": priority},
        "rule": {"all": [{"any": [{"plugin": "country", "config": {"countries": ["DE"]}}]}]}
    }))
    .expect("group")
}

/// Two servers add the same customers by hand, one to `gold`, the other to `silver`,
/// of one exclusive set, at the same moment: each customer ends in one of the two,
/// never both; the other addition is planned again and ends the first membership.
#[test]
fn additions_by_hand_on_two_servers_keep_an_exclusive_set_exclusive() {
    let url = fresh_url();
    let engines: Vec<Engine> = (0..2)
        .map(|_| common::engine_on(Arc::new(PgStore::connect(&url).expect("store"))))
        .collect();
    let first = &engines[0];
    first
        .add_plugin(cohort_artifacts::COUNTRY, None, 0)
        .expect("plugin");
    first.save_group(&group("gold", 1), 0).expect("gold");
    first.save_group(&group("silver", 2), 0).expect("silver");
    let customers: Vec<String> = (0..40).map(|i| format!("c{i}")).collect();
    for id in &customers {
        let record = CustomerRecord {
            id: id.clone(),
            ..CustomerRecord::default()
        };
        first.store().upsert_customer(&record, 0).expect("customer");
    }
    std::thread::scope(|scope| {
        for (engine, group) in engines.iter().zip(["gold", "silver"]) {
            let customers = &customers;
            scope.spawn(move || {
                for id in customers {
                    let added = engine
                        .add_member(id, group, "ops", "by hand", (10, None), 10)
                        .expect("add");
                    assert!(added, "{id} to {group}");
                }
            });
        }
    });
    for id in &customers {
        let active: Vec<String> = first
            .store()
            .customer_memberships(id)
            .expect("memberships")
            .into_iter()
            .filter(|m| m.state(10) == State::Active)
            .map(|m| m.group)
            .collect();
        assert_eq!(active.len(), 1, "{id} is in {active:?}");
    }
}
