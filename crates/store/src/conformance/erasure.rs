//! Erasing a customer: facts and pins gone, memberships ended with their events, the
//! history kept without what was said of the customer.

use cohort_model::{CustomerRecord, Source, State};
use cohort_planner::Change;

use super::{CAUSE, add};
use crate::plan::ERASED_REASON;
use crate::*;

const BY_HAND: Cause<'static> = Cause {
    trigger: Trigger::Manual,
    actor: "alice",
    run: None,
};

fn record(id: &str) -> CustomerRecord {
    serde_json::from_value(serde_json::json!({"id": id, "country": "DE"})).expect("customer")
}

pub(super) fn an_erased_customer_leaves_ids_and_no_reasons(store: &dyn Store) {
    store
        .upsert_customers(&[record("c1"), record("c2")], 5)
        .expect("customers");
    // c1: in `g` by the rule, in `h` by hand with a reason that names a person, a
    // window in `p` that opens later, one in `old` that closed, and a pin out of `x`.
    let by_hand = Change::Add {
        customer: "c1".into(),
        group: "h".into(),
        source: Source::Manual,
        reason: "asked by Jane Roe on the phone".into(),
        start: 10,
        end: None,
    };
    let later = Change::Add {
        customer: "c1".into(),
        group: "p".into(),
        source: Source::Import,
        reason: "import #1, line 2".into(),
        start: 100,
        end: None,
    };
    let closed = Change::Add {
        customer: "c1".into(),
        group: "old".into(),
        source: Source::Import,
        reason: "import #1, line 3".into(),
        start: 1,
        end: Some(5),
    };
    store
        .apply(&[add("c1", "g"), add("c2", "g"), closed], &CAUSE, 10)
        .expect("rule");
    store.apply(&[by_hand, later], &BY_HAND, 10).expect("hand");
    store
        .set_exclusion("c1", "x", true, "alice", "moved to Berlin", 12)
        .expect("pin");
    let stamp = store.erasures_stamp().expect("stamp");
    let feed_before = store.events_after(0, 100).expect("events").len() as i64;

    let erasure = store
        .erase_customer("c1", &BY_HAND, "request 77", 20)
        .expect("erase")
        .expect("something to erase");
    assert_eq!(
        (
            erasure.customer.as_str(),
            erasure.facts,
            erasure.ended,
            erasure.pins
        ),
        ("c1", true, 3, 1)
    );
    assert!(store.customer("c1").expect("read").is_none());
    assert!(!store.customer_exists("c1").expect("read"));
    assert!(store.customer("c2").expect("read").is_some(), "others stay");
    assert!(store.excluded_from("c1").expect("pins").is_empty());
    assert_ne!(store.erasures_stamp().expect("stamp"), stamp);

    // Every membership has ended by the erasure's time; the pending one before it
    // opened; the one that had closed keeps its end.
    let ms = store.customer_memberships("c1").expect("memberships");
    assert_eq!(ms.len(), 4);
    for m in &ms {
        assert_eq!(m.state(20), State::Expired, "{m:?}");
        let end = match m.group.as_str() {
            "p" => 100,
            "old" => 5,
            _ => 20,
        };
        assert_eq!(m.end, Some(end), "{m:?}");
    }
    // Reasons typed about the customer are gone; a rule's own words say nothing of
    // them and stay.
    let reason = |g: &str| {
        ms.iter()
            .find(|m| m.group == g)
            .map(|m| m.reason.clone())
            .expect("membership")
    };
    assert_eq!(reason("h"), ERASED_REASON);
    assert_eq!(reason("p"), ERASED_REASON);
    assert_eq!(reason("g"), "the rule matches");

    // The history keeps every entry, who and when, none of the old reasons; the ends
    // and the erasure give the erasure's reason.
    let history = store.history(Some("c1"), None, None, 100).expect("history");
    let erased = history
        .iter()
        .find(|e| e.action == "erased")
        .expect("the erasure's entry");
    assert_eq!(erased.id, erasure.entry);
    assert_eq!(
        (
            erased.group.as_deref(),
            erased.actor.as_str(),
            erased.reason.as_str()
        ),
        (None, "alice", "request 77")
    );
    for e in &history {
        assert!(
            !e.reason.contains("Jane") && !e.reason.contains("Berlin"),
            "{e:?}"
        );
    }
    let removals = history.iter().filter(|e| e.action == "removed").count();
    assert_eq!(removals, 3);
    assert!(
        history
            .iter()
            .filter(|e| e.action == "removed")
            .all(|e| e.reason == "request 77" && e.actor == "alice")
    );
    assert!(
        history.iter().any(|e| e.action == "excluded"),
        "the pin's entry stays"
    );
    // c2's history is untouched.
    let theirs = store.history(Some("c2"), None, None, 100).expect("history");
    assert_eq!(theirs.len(), 1);
    assert_eq!(theirs[0].reason, "the rule matches");

    // The feed: a removal per membership ended, then the erasure, of no group.
    let events = store.events_after(feed_before, 100).expect("events");
    let kinds: Vec<(&str, Option<&str>)> = events
        .iter()
        .map(|e| (e.event.as_str(), e.group.as_deref()))
        .collect();
    assert_eq!(kinds.len(), 4, "{kinds:?}");
    assert!(
        kinds[..3]
            .iter()
            .all(|(kind, group)| *kind == "membership.removed" && group.is_some())
    );
    let last = events.last().expect("event");
    assert_eq!(
        (
            last.event.as_str(),
            last.customer.as_str(),
            last.group.as_deref(),
            last.membership,
            last.reason.as_str()
        ),
        ("customer.erased", "c1", None, None, "request 77")
    );
    // Older events read back without the old reasons.
    let all = store.events_after(0, 100).expect("events");
    assert!(all.iter().all(|e| !e.reason.contains("Jane")), "{all:?}");

    // Nothing is left to erase: a second erasure writes nothing.
    assert!(
        store
            .erase_customer("c1", &BY_HAND, "again", 30)
            .expect("erase")
            .is_none()
    );
    assert_eq!(store.events_after(0, 100).expect("events").len(), all.len());
    assert!(
        store
            .erase_customer("nobody", &BY_HAND, "?", 30)
            .expect("erase")
            .is_none()
    );

    // The id may come back as a new customer.
    assert!(store.upsert_customer(&record("c1"), 40).expect("upsert"));
}

pub(super) fn an_erasure_ends_what_a_late_writer_added(store: &dyn Store) {
    store
        .upsert_customers(&[record("c1")], 5)
        .expect("customer");
    store
        .erase_customer("c1", &BY_HAND, "request 1", 20)
        .expect("erase")
        .expect("erased");
    // A run that read the customer before the erasure writes after it.
    store
        .apply(&[add("c1", "g")], &CAUSE, 21)
        .expect("late add");
    let again = store
        .erase_customer("c1", &BY_HAND, "request 1", 22)
        .expect("erase")
        .expect("a membership to end");
    assert_eq!((again.facts, again.ended, again.pins), (false, 1, 0));
    let ms = store.customer_memberships("c1").expect("memberships");
    assert_eq!(ms[0].end, Some(22));
}
