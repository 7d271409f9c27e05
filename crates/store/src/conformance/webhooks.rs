//! Webhooks: their settings, changed only as read; deliveries recorded only under the
//! settings they were made with; the delivery log; what an event carries.

use cohort_model::State;

use super::{CAUSE, add};
use crate::*;

pub(super) fn a_webhook_changes_only_as_read_and_each_change_starts_a_generation(
    store: &dyn Store,
) {
    let kinds = vec!["membership.removed".to_string()];
    let hook = store
        .add_webhook("https://a.example/hook", "first-secret", Some(&kinds), 1)
        .expect("hook");
    assert_eq!(hook.events.as_deref(), Some(&kinds[..]));
    assert!(hook.wants("membership.removed") && !hook.wants("membership.added"));
    assert!(!hook.paused);
    let settings = WebhookChange::Settings {
        url: "https://b.example/hook",
        events: None,
        paused: true,
    };
    assert_eq!(
        store
            .change_webhook(hook.id, &settings, &|_| false)
            .expect("change"),
        Conditional::Refused
    );
    assert_eq!(
        store
            .change_webhook(hook.id + 100, &settings, &|_| true)
            .expect("change"),
        Conditional::Missing
    );
    let Conditional::Written(changed) = store
        .change_webhook(hook.id, &settings, &|stored| {
            stored.generation == hook.generation
        })
        .expect("change")
    else {
        panic!("written");
    };
    assert_eq!(
        (changed.url.as_str(), changed.events.clone(), changed.paused),
        ("https://b.example/hook", None, true)
    );
    assert_eq!(changed.generation, hook.generation + 1);
    assert!(changed.wants("membership.added"));

    // A delivery made under the earlier generation is not recorded.
    store
        .webhook_delivered(hook.id, hook.generation, 5, 2)
        .expect("delivered");
    store
        .webhook_failed(hook.id, hook.generation, "503")
        .expect("failed");
    let now = store.webhook(hook.id).expect("read").expect("hook");
    assert_eq!((now.position, now.attempts), (hook.position, 0));
    store
        .webhook_delivered(hook.id, now.generation, 5, 3)
        .expect("delivered");
    assert_eq!(
        store
            .webhook(hook.id)
            .expect("read")
            .expect("hook")
            .position,
        5
    );

    // Rotating keeps the secret it replaces, with the end of its overlap.
    let Conditional::Written(rotated) = store
        .change_webhook(
            hook.id,
            &WebhookChange::Rotate {
                secret: "second-secret",
                previous_until: 50,
            },
            &|_| true,
        )
        .expect("rotate")
    else {
        panic!("written");
    };
    assert_eq!(rotated.secret, "second-secret");
    assert_eq!(rotated.previous_secret.as_deref(), Some("first-secret"));
    assert_eq!(rotated.previous_secret_until, Some(50));

    // Rewinding moves the position back and forgets the failures.
    store
        .webhook_failed(hook.id, rotated.generation, "503")
        .expect("failed");
    let Conditional::Written(rewound) = store
        .change_webhook(hook.id, &WebhookChange::Rewind { after: 1 }, &|_| true)
        .expect("rewind")
    else {
        panic!("written");
    };
    assert_eq!(
        (rewound.position, rewound.attempts, rewound.last_error),
        (1, 0, None)
    );
    assert!(rewound.generation > rotated.generation);
    let listed = store.webhooks().expect("webhooks");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].generation, rewound.generation);
}

pub(super) fn a_webhook_keeps_its_latest_delivery_attempts(store: &dyn Store) {
    let hook = store
        .add_webhook("https://a.example/hook", "secret", None, 1)
        .expect("hook");
    let other = store
        .add_webhook("https://b.example/hook", "secret", None, 1)
        .expect("hook");
    let attempt = |webhook: i64, n: i64| DeliveryAttempt {
        id: 0,
        webhook,
        at: n,
        after: n,
        last: n + 1,
        events: 1,
        ping: n == 0,
        status: if n % 2 == 0 { Some(200) } else { None },
        latency_ms: 7,
        error: (n % 2 == 1).then(|| "cannot reach".to_string()),
    };
    for n in 0..DELIVERIES_KEPT + 5 {
        store.log_delivery(&attempt(hook.id, n)).expect("log");
    }
    store.log_delivery(&attempt(other.id, 0)).expect("log");
    let all = store.deliveries(hook.id, None, 1000).expect("deliveries");
    assert_eq!(all.len() as i64, DELIVERIES_KEPT, "the oldest are let go");
    let newest = &all[0];
    assert_eq!(
        DeliveryAttempt {
            id: 0,
            ..newest.clone()
        },
        attempt(hook.id, DELIVERIES_KEPT + 4)
    );
    assert_eq!(all.last().expect("oldest").at, 5);
    // Paged newest first.
    let page = store.deliveries(hook.id, Some(all[1].id), 2).expect("page");
    assert_eq!(
        page.iter().map(|a| a.id).collect::<Vec<_>>(),
        [all[2].id, all[3].id]
    );
    assert_eq!(store.deliveries(other.id, None, 10).expect("log").len(), 1);
    // Removing a webhook removes its log.
    assert!(store.remove_webhook(hook.id).expect("removed"));
    assert!(store.deliveries(hook.id, None, 10).expect("log").is_empty());
}

pub(super) fn an_event_carries_its_membership_as_stored(store: &dyn Store) {
    store.apply(&[add("c1", "g")], &CAUSE, 20).expect("add");
    let m = store.group_memberships("g").expect("memberships")[0].clone();
    let end = cohort_planner::Change::End {
        membership: m.id,
        customer: "c1".into(),
        group: "g".into(),
        at: 30,
        reason: "left".into(),
    };
    store.apply(&[end], &CAUSE, 30).expect("end");
    let events = store.events_after(0, 10).expect("events");
    assert_eq!(events.len(), 2);
    for e in &events {
        assert_eq!(e.schema, EVENT_SCHEMA);
        let s = e.snapshot.as_ref().expect("a membership's event has one");
        assert_eq!(
            (s.source, s.start, s.end),
            (cohort_model::Source::Rule, 10, Some(30))
        );
    }
    // Its state at the event's time: active when added, expired when ended.
    assert_eq!(
        events
            .iter()
            .map(|e| e.snapshot.as_ref().map(|s| s.state))
            .collect::<Vec<_>>(),
        [Some(State::Active), Some(State::Expired)]
    );
}
