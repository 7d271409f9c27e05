//! What a view limited to some groups is built from: the history narrowed by groups,
//! actor and time, and the customers a group has ever held.

use super::{CAUSE, add, window};
use crate::*;

fn entries(
    store: &dyn Store,
    query: &HistoryQuery,
    before: Option<i64>,
    limit: usize,
) -> Vec<String> {
    store
        .history_where(query, before, limit)
        .expect("history")
        .into_iter()
        .map(|e| format!("{}/{}", e.customer, e.group.unwrap_or_default()))
        .collect()
}

pub(super) fn history_narrows_by_groups_actor_and_time(store: &dyn Store) {
    for (at, customer, group) in [(10, "c1", "a"), (11, "c2", "b"), (12, "c3", "c")] {
        store
            .apply(&[add(customer, group)], &CAUSE, at)
            .expect("apply");
    }
    store
        .set_exclusion("c4", "a", true, "alice", "pinned by hand", 13)
        .expect("pin");
    let groups = |gs: &[&str]| HistoryQuery {
        groups: Some(gs.iter().map(|g| g.to_string()).collect()),
        ..HistoryQuery::default()
    };
    assert_eq!(
        entries(store, &groups(&["a", "b"]), None, 10),
        ["c4/a", "c2/b", "c1/a"]
    );
    assert!(
        entries(store, &groups(&[]), None, 10).is_empty(),
        "no group, no entry"
    );
    let by_alice = HistoryQuery {
        actor: Some("alice".into()),
        ..HistoryQuery::default()
    };
    assert_eq!(entries(store, &by_alice, None, 10), ["c4/a"]);
    let window = HistoryQuery {
        since: Some(11),
        until: Some(13),
        ..HistoryQuery::default()
    };
    assert_eq!(entries(store, &window, None, 10), ["c3/c", "c2/b"]);
    let customer_in = |gs: &[&str]| HistoryQuery {
        customer: Some("c1".into()),
        ..groups(gs)
    };
    assert!(entries(store, &customer_in(&["b"]), None, 10).is_empty());
    assert_eq!(
        entries(store, &customer_in(&["a", "b"]), None, 10),
        ["c1/a"]
    );
    // Page by page, the filter holding across pages.
    let first = store
        .history_where(&groups(&["a", "c"]), None, 1)
        .expect("history");
    assert_eq!(first.len(), 1);
    assert_eq!(
        entries(store, &groups(&["a", "c"]), Some(first[0].id), 10),
        ["c3/c", "c1/a"]
    );
}

pub(super) fn a_groups_customers_are_those_it_ever_held_or_pinned_in_id_order(store: &dyn Store) {
    store
        .apply(
            &[add("c2", "a"), add("c1", "a"), add("c3", "b")],
            &CAUSE,
            10,
        )
        .expect("apply");
    store
        .set_exclusion("c5", "a", true, "alice", "pinned", 11)
        .expect("pin");
    assert_eq!(
        store.group_customers_after("a", "", 10).expect("customers"),
        ["c1", "c2", "c5"]
    );
    assert_eq!(
        store
            .group_customers_after("a", "c1", 1)
            .expect("customers"),
        ["c2"]
    );
    // A membership that has ended still counts: its history is the group's.
    store
        .apply(&[window("c0", 1, Some(5))], &CAUSE, 12)
        .expect("apply");
    assert_eq!(
        store.group_customers_after("g", "", 10).expect("customers"),
        ["c0"]
    );
}
