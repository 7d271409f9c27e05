//! Cases for what the store keeps besides memberships: customers, groups and what
//! refers to them, runs, webhooks.

use std::collections::BTreeMap;
use std::sync::Mutex;

use cohort_model::{CustomerRecord, Group, Source};
use cohort_planner::Change;

use super::{CAUSE, add};
use crate::*;

fn customer(id: &str, country: &str) -> CustomerRecord {
    serde_json::from_value(serde_json::json!({"id": id, "country": country})).expect("customer")
}

fn group(id: &str, name: &str) -> Group {
    serde_json::from_value(serde_json::json!({"id": id, "name": name})).expect("group")
}

/// Every record `customers_since` hands over, in batch order, and the write number it
/// returned.
fn since(store: &dyn Store, seq: Option<i64>) -> (Vec<String>, i64) {
    let batches = Mutex::new(BTreeMap::new());
    let last = store
        .customers_since(seq, 2, &|number, records| {
            let ids: Vec<String> = records.map(|c| c.id).collect();
            batches.lock().expect("batches").insert(number, ids);
        })
        .expect("customers since");
    let ids = batches
        .into_inner()
        .expect("batches")
        .into_values()
        .flatten()
        .collect();
    (ids, last)
}

pub(super) fn customers_are_kept_whole_and_handed_over_in_write_order(store: &dyn Store) {
    assert_eq!(store.customer("c1").expect("read"), None);
    assert!(!store.customer_exists("c1").expect("exists"));
    let first = [
        customer("c2", "DE"),
        customer("c1", "FR"),
        customer("c3", "SE"),
    ];
    assert_eq!(store.upsert_customers(&first, 10).expect("load"), 3);
    assert_eq!(store.customer("c1").expect("read"), Some(first[1].clone()));
    assert!(store.customer_exists("c3").expect("exists"));
    let (all, seq) = since(store, None);
    let mut sorted = all.clone();
    sorted.sort();
    assert_eq!(sorted, ["c1", "c2", "c3"], "every customer once");
    assert_eq!(since(store, Some(seq)), (Vec::new(), seq), "nothing new");

    let moved = customer("c1", "SE");
    assert_eq!(
        store
            .upsert_customers(&[moved.clone(), customer("c4", "DE")], 11)
            .expect("update"),
        1,
        "one of the two is new"
    );
    assert_eq!(store.customer("c1").expect("read"), Some(moved));
    let (changed, later) = since(store, Some(seq));
    assert!(later > seq, "the write number moves");
    assert_eq!(
        changed,
        ["c1", "c4"],
        "only what was written since, in id order"
    );
    assert!(
        !store
            .upsert_customer(&customer("c4", "FR"), 12)
            .expect("one")
    );
    assert_eq!(since(store, Some(later)).0, ["c4"]);
    assert_eq!(store.count_customers().expect("count"), 4);
}

pub(super) fn groups_are_kept_by_id_with_what_refers_to_them(store: &dyn Store) {
    assert_eq!(store.group("b").expect("read"), None);
    store.put_group(&group("b", "B"), 5).expect("put");
    store.put_group(&group("a", "A"), 6).expect("put");
    store.put_group(&group("b", "Bee"), 7).expect("replace");
    assert_eq!(store.group("b").expect("read"), Some(group("b", "Bee")));
    let ids: Vec<String> = store
        .groups()
        .expect("groups")
        .into_iter()
        .map(|g| g.id)
        .collect();
    assert_eq!(ids, ["a", "b"]);
    assert_eq!(
        store.last_periodic_run("b").expect("last"),
        Some(7),
        "until a schedule has run, it counts from the last save"
    );
    assert_eq!(store.last_periodic_run("none").expect("last"), None);

    store.set_use("a", "tariff", "t-2", true).expect("use");
    store.set_use("a", "promotion", "p-1", true).expect("use");
    store.set_use("a", "tariff", "t-2", true).expect("twice");
    store.set_use("a", "tariff", "t-1", true).expect("use");
    assert_eq!(
        store.uses("a").expect("uses"),
        [
            ("promotion".to_string(), "p-1".to_string()),
            ("tariff".into(), "t-1".into()),
            ("tariff".into(), "t-2".into())
        ]
    );
    store.set_use("a", "tariff", "t-2", false).expect("forget");
    assert_eq!(store.uses("a").expect("uses").len(), 2);
    assert!(store.uses("b").expect("uses").is_empty());

    store.apply(&[add("c1", "a")], &CAUSE, 8).expect("apply");
    store.delete_group("a").expect("delete");
    assert_eq!(store.group("a").expect("read"), None);
    assert!(
        store.uses("a").expect("uses").is_empty(),
        "its references go with it"
    );
    assert_eq!(
        store.group_memberships("a").expect("history").len(),
        1,
        "its memberships stay as history"
    );
    match store.delete_group("a") {
        Err(StoreError::NotFound { what: "group", id }) => assert_eq!(id, "a"),
        other => panic!("expected the group not found, got {other:?}"),
    }
}

pub(super) fn a_customer_s_memberships_in_some_groups_and_pins(store: &dyn Store) {
    for g in ["a", "b", "c"] {
        store
            .apply(&[add("c1", g), add("c2", g)], &CAUSE, 10)
            .expect("apply");
    }
    let groups = |ms: Vec<cohort_model::Membership>| -> Vec<(String, String)> {
        ms.into_iter().map(|m| (m.customer, m.group)).collect()
    };
    assert_eq!(
        groups(
            store
                .customer_memberships_in("c1", &["c", "a", "x"])
                .expect("in")
        ),
        [("c1".into(), "a".into()), ("c1".into(), "c".into())]
    );
    assert!(
        store
            .customer_memberships_in("c1", &[])
            .expect("in")
            .is_empty()
    );

    store
        .set_exclusion("c1", "a", true, "op", "never", 11)
        .expect("pin");
    store
        .set_exclusion("c2", "a", true, "op", "never", 11)
        .expect("pin");
    store
        .set_exclusion("c2", "a", true, "op", "again", 12)
        .expect("pinned twice");
    let mut pinned = store.exclusions("a").expect("pins");
    pinned.sort();
    assert_eq!(pinned, ["c1", "c2"]);
    store
        .set_exclusion("c1", "a", false, "op", "back", 13)
        .expect("unpin");
    assert_eq!(store.exclusions("a").expect("pins"), ["c2"]);
    assert!(store.exclusions("b").expect("pins").is_empty());
    let actions: Vec<String> = store
        .history(Some("c2"), Some("a"), None, 10)
        .expect("history")
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(
        actions,
        ["excluded", "added"],
        "a pin already there is not written again"
    );
}

pub(super) fn runs_are_recorded_as_they_start_and_end(store: &dyn Store) {
    store.put_group(&group("g", "G"), 1).expect("put");
    let run = |group: &str, trigger: Trigger, dry_run: bool| RunRecord {
        group: group.into(),
        trigger,
        dry_run,
        actor: "op".into(),
        as_of: 4,
        started_at: 5,
        status: RunStatus::Running,
        ..RunRecord::default()
    };
    let started = [
        run("g", Trigger::Manual, false),
        run("h", Trigger::Periodic, true),
        run("g", Trigger::Periodic, false),
    ];
    let ids = store.start_runs(&started).expect("start");
    assert_eq!(ids.len(), 3);
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids in order: {ids:?}");
    let listed = store.runs(None, None, 10).expect("runs");
    assert_eq!(
        listed.iter().map(|r| r.id).collect::<Vec<_>>(),
        ids.iter().rev().copied().collect::<Vec<_>>(),
        "newest first"
    );
    assert!(listed.iter().all(|r| r.status == RunStatus::Running));
    assert_eq!(listed[2].actor, "op");
    assert_eq!(listed[2].as_of, 4);

    let finished = RunRecord {
        id: ids[0],
        status: RunStatus::Finished,
        finished_at: Some(9),
        customers: 3,
        matched: 2,
        undecided: 1,
        failures: vec![("no data".into(), 1)],
        ..started[0].clone()
    };
    let cause = Cause {
        run: Some(ids[0]),
        ..CAUSE
    };
    let applied = store
        .finish_run(&finished, &[add("c1", "g"), add("c2", "g")], &cause, 9)
        .expect("finish");
    assert_eq!(applied.counts(), (2, 0));
    let dry = RunRecord {
        id: ids[1],
        status: RunStatus::Finished,
        finished_at: Some(9),
        added: 7,
        ..started[1].clone()
    };
    store.finish_run(&dry, &[], &cause, 9).expect("dry run");
    let failed = RunRecord {
        id: ids[2],
        status: RunStatus::Failed,
        finished_at: Some(9),
        error: Some("the store went away".into()),
        ..started[2].clone()
    };
    store
        .finish_run(&failed, &[], &cause, 9)
        .expect("failed run");

    let of_g = store.runs(Some("g"), None, 10).expect("runs");
    assert_eq!(of_g.len(), 2);
    let first = &of_g[1];
    assert_eq!(
        (
            first.status,
            first.added,
            first.removed,
            first.customers,
            first.matched,
            first.undecided,
            first.finished_at
        ),
        (RunStatus::Finished, 2, 0, 3, 2, 1, Some(9)),
        "the counts are what applying did"
    );
    assert_eq!(first.failures, [("no data".to_string(), 1)]);
    assert_eq!(of_g[0].error.as_deref(), Some("the store went away"));
    assert_eq!(
        store.runs(None, None, 10).expect("runs")[1].added,
        7,
        "a dry run keeps what it would have done"
    );
    assert_eq!(
        store
            .runs(None, Some(ids[2]), 1)
            .expect("page")
            .iter()
            .map(|r| r.id)
            .collect::<Vec<_>>(),
        [ids[1]],
        "before a cursor, at most the limit"
    );
    assert_eq!(
        store.last_periodic_run("g").expect("last"),
        Some(5),
        "a periodic run that failed still counts as the schedule's"
    );
    let history = store.history(Some("c1"), None, None, 10).expect("history");
    assert_eq!(history[0].run, Some(ids[0]));
}

pub(super) fn a_webhook_removed_is_gone_and_failures_are_counted(store: &dyn Store) {
    let first = store
        .add_webhook("https://a.example/hook", "s1", None, 1)
        .expect("add");
    let second = store
        .add_webhook("https://b.example/hook", "s2", None, 2)
        .expect("add");
    assert_eq!(first.secret, "s1");
    store.webhook_failed(second.id, 0, "503").expect("failed");
    store
        .webhook_failed(second.id, 0, "timed out")
        .expect("failed");
    let hooks = store.webhooks().expect("webhooks");
    assert_eq!(hooks.len(), 2);
    assert_eq!(
        (hooks[1].attempts, hooks[1].last_error.as_deref()),
        (2, Some("timed out"))
    );
    store
        .apply(&[add("c1", "g")], &CAUSE, 3)
        .expect("an event to deliver");
    store
        .webhook_delivered(second.id, 0, 1, 4)
        .expect("delivered");
    let hooks = store.webhooks().expect("webhooks");
    assert_eq!(
        (
            hooks[1].attempts,
            hooks[1].last_error.as_deref(),
            hooks[1].position,
            hooks[1].last_delivered_at
        ),
        (0, None, 1, Some(4)),
        "a delivery clears the failures"
    );
    assert!(store.remove_webhook(first.id).expect("remove"));
    assert!(!store.remove_webhook(first.id).expect("again"));
    let left: Vec<i64> = store
        .webhooks()
        .expect("webhooks")
        .iter()
        .map(|w| w.id)
        .collect();
    assert_eq!(left, [second.id]);
}

/// A membership the rule added reads back with the rule as its actor and the rule's
/// words as its reason, whatever the backend stores of them; any other keeps its own.
pub(super) fn a_rule_s_own_words_read_back_as_written(store: &dyn Store) {
    let told = Change::Add {
        customer: "c2".into(),
        group: "g".into(),
        source: Source::Manual,
        reason: "asked for".into(),
        start: 10,
        end: None,
    };
    store.apply(&[add("c1", "g")], &CAUSE, 10).expect("rule");
    let by_hand = Cause {
        actor: "alice",
        ..CAUSE
    };
    store.apply(&[told], &by_hand, 10).expect("by hand");
    let read: Vec<(String, String, String)> = store
        .group_memberships("g")
        .expect("memberships")
        .into_iter()
        .map(|m| (m.customer, m.actor, m.reason))
        .collect();
    assert_eq!(
        read,
        [
            (
                "c1".to_string(),
                cohort_planner::rule_actor("g"),
                cohort_planner::RULE_MATCHES.to_string()
            ),
            ("c2".into(), "alice".into(), "asked for".into())
        ]
    );
    let events: Vec<(String, String)> = store
        .events_after(0, 10)
        .expect("events")
        .into_iter()
        .map(|e| (e.actor, e.reason))
        .collect();
    assert_eq!(
        events,
        [
            ("rule:g".to_string(), "the rule matches".to_string()),
            ("alice".into(), "asked for".into())
        ]
    );
}

/// A membership ended by a removal says by whom and why; a window that closed by
/// itself was not ended by anyone.
pub(super) fn an_ended_membership_says_who_ended_it_and_why(store: &dyn Store) {
    let lapsed = Change::Add {
        customer: "c3".into(),
        group: "g".into(),
        source: Source::Import,
        reason: "imported".into(),
        start: 1,
        end: Some(5),
    };
    store
        .apply(&[add("c1", "g"), add("c2", "g"), lapsed], &CAUSE, 10)
        .expect("add");
    store.apply(&[add("c1", "other")], &CAUSE, 10).expect("add");
    let ms = store.group_memberships("g").expect("memberships");
    let end = |m: &cohort_model::Membership| Change::End {
        membership: m.id,
        customer: m.customer.as_str().into(),
        group: "g".into(),
        at: 20,
        reason: "left the programme".into(),
    };
    let by_hand = Cause {
        trigger: Trigger::Manual,
        actor: "alice",
        run: None,
    };
    store.apply(&[end(&ms[1])], &by_hand, 20).expect("end");
    assert_eq!(
        store.endings("g").expect("endings"),
        [Ending {
            membership: ms[1].id,
            at: 20,
            actor: "alice".into(),
            trigger: Trigger::Manual,
            reason: "left the programme".into(),
        }]
    );
    assert!(store.endings("other").expect("endings").is_empty());
    // A page's worth: only the endings of memberships in its range of ids.
    assert_eq!(
        store.endings_in("g", ms[1].id, ms[2].id).expect("endings"),
        store.endings("g").expect("endings")
    );
    assert!(
        store
            .endings_in("g", ms[0].id, ms[0].id)
            .expect("endings")
            .is_empty()
    );
    assert!(
        store
            .endings_in("g", ms[2].id, i64::MAX)
            .expect("endings")
            .is_empty()
    );
    assert_eq!(
        store.customer_endings(&ms[1].customer).expect("endings"),
        store.endings("g").expect("endings"),
        "the customer's, from any group"
    );
    assert!(store.customer_endings("c1").expect("endings").is_empty());
}

pub(super) fn a_scheduled_run_is_claimed_once(store: &dyn Store) {
    store.put_group(&group("g", "G"), 5).expect("put");
    let last = store.last_periodic_run("g").expect("last").expect("saved");
    assert_eq!(last, 5);
    assert!(store.claim_periodic_run("g", last, 60).expect("claim"));
    assert!(
        !store.claim_periodic_run("g", last, 61).expect("claim"),
        "another took it first"
    );
    assert_eq!(store.last_periodic_run("g").expect("last"), Some(60));
    assert!(
        store
            .claim_periodic_run("g", 60, 120)
            .expect("the next one")
    );
    assert!(!store.claim_periodic_run("none", 0, 60).expect("no group"));
}

pub(super) fn a_webhook_is_leased_to_one_holder_at_a_time(store: &dyn Store) {
    let hook = store
        .add_webhook("https://a.example/hook", "s", None, 1)
        .expect("add");
    let lease = |holder: &str, now: i64| {
        store
            .lease_webhook(hook.id, holder, now, now + 30)
            .expect("lease")
    };
    assert_eq!(lease("a", 10), Some(hook.position));
    assert_eq!(lease("b", 20), None, "held by a");
    assert_eq!(lease("a", 30), Some(hook.position), "a renews");
    store
        .webhook_delivered(hook.id, 0, 7, 31)
        .expect("delivered");
    assert_eq!(lease("b", 59), None, "a's lease runs to 60");
    assert_eq!(lease("b", 60), Some(7), "b resumes where a stopped");
    assert_eq!(lease("a", 61), None, "now b holds it");
    assert_eq!(
        store
            .lease_webhook(hook.id + 1, "a", 61, 90)
            .expect("lease"),
        None,
        "no such webhook"
    );
}

/// A conditional write sees what is stored and writes only if its precondition holds.
pub(super) fn conditional_writes_look_at_what_is_stored(store: &dyn Store) {
    let first = group("g", "First");
    assert!(
        store
            .put_group_if(&first, 1, &|stored| stored.is_none())
            .expect("create")
    );
    assert!(
        !store
            .put_group_if(&group("g", "Again"), 2, &|stored| stored.is_none())
            .expect("no second creation"),
    );
    assert!(
        !store
            .put_group_if(&group("g", "Stale"), 3, &|stored| stored
                .is_some_and(|g| g.name == "Other"))
            .expect("a failed precondition"),
    );
    assert_eq!(store.group("g").expect("read").expect("g").name, "First");
    assert!(
        store
            .put_group_if(&group("g", "Second"), 4, &|stored| stored
                .is_some_and(|g| g.name == "First"))
            .expect("a holding precondition"),
    );
    assert_eq!(store.group("g").expect("read").expect("g").name, "Second");

    assert!(
        !store
            .update_customer_if(&customer("c1", "DE"), 5, &|_| true)
            .expect("no such customer"),
        "a customer not stored is not written"
    );
    assert!(store.customer("c1").expect("read").is_none());
    store
        .upsert_customer(&customer("c1", "DE"), 6)
        .expect("customer");
    assert!(
        !store
            .update_customer_if(&customer("c1", "SE"), 7, &|c| c.country.as_deref()
                == Some("FR"))
            .expect("a failed precondition")
    );
    assert!(
        store
            .update_customer_if(&customer("c1", "FR"), 8, &|c| c.country.as_deref()
                == Some("DE"))
            .expect("a holding precondition")
    );
    assert_eq!(
        store
            .customer("c1")
            .expect("read")
            .expect("c1")
            .country
            .as_deref(),
        Some("FR")
    );
}
