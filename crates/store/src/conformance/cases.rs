//! The cases of the suite, each a check of one behaviour against a fresh store.

use cohort_model::{CustomerRecord, Group, PluginBudget, Source, State, Timestamp};
use cohort_planner::Change;

use super::{CAUSE, add, events, window};
use crate::*;

pub(super) fn apply_writes_memberships_audit_and_outbox_together(store: &dyn Store) {
    assert_eq!(store.membership_stamp("g").expect("stamp"), 0);
    let applied = store
        .apply(&[add("c1", "g"), add("c2", "g")], &CAUSE, 10)
        .expect("apply");
    let ms = store.group_memberships("g").expect("memberships");
    assert_eq!(
        applied,
        Applied {
            added: 2,
            removed: 0,
            ids: ms.iter().map(|m| m.id).collect(),
            stamps: vec![("g".into(), 1)],
        }
    );
    assert_eq!(store.membership_stamp("g").expect("stamp"), 1);
    let mut held = Vec::new();
    store
        .group_holdings("g", &mut |c, h| held.push((c.to_string(), h)))
        .expect("holdings");
    let expected: Vec<_> = ms.iter().map(|m| (m.customer.clone(), m.held())).collect();
    assert_eq!(held, expected);
    let end = Change::End {
        membership: ms[0].id,
        customer: "c1".into(),
        group: "g".into(),
        at: 20,
        reason: "the rule no longer matches".into(),
    };
    assert_eq!(
        store
            .apply(std::slice::from_ref(&end), &CAUSE, 20)
            .expect("apply")
            .counts(),
        (0, 1)
    );
    assert_eq!(store.membership_stamp("g").expect("stamp"), 2);
    assert_eq!(
        store.apply(&[end], &CAUSE, 21).expect("apply").counts(),
        (0, 0),
        "ending twice is a no-op"
    );
    assert_eq!(store.membership_stamp("other").expect("stamp"), 0);
    let history = store.history(Some("c1"), None, None, 10).expect("history");
    assert_eq!(history.len(), 2);
    assert_eq!(history[0].action, "removed");
    assert_eq!(history[1].action, "added");
    assert_eq!(history[1].run, Some(1));
    let events = store.events_after(0, 10).expect("events");
    let kinds: Vec<_> = events.iter().map(|e| (e.event.as_str(), e.id)).collect();
    assert_eq!(
        kinds,
        [
            ("membership.added", 1),
            ("membership.added", 2),
            ("membership.removed", 3)
        ]
    );
    assert_eq!(events[2].customer, "c1");
    assert_eq!(events[2].actor, "rule:g");
    assert_eq!(events[2].reason, "the rule no longer matches");
    assert_eq!(events[0].trigger, CAUSE.trigger);
    assert_eq!(store.events_after(2, 10).expect("events").len(), 1);
    let c1 = store.customer_memberships("c1").expect("memberships");
    assert_eq!(c1[0].end, Some(20), "the row stays as history");
}

pub(super) fn a_registration_stores_the_customer_and_its_memberships_once(store: &dyn Store) {
    let record = CustomerRecord {
        id: "c1".into(),
        ..CustomerRecord::default()
    };
    let changes = [add("c1", "g"), add("c1", "h")];
    let batches = [(&changes[..], CAUSE)];
    let applied = store.register(&record, 10, &batches).expect("register");
    assert_eq!(applied.map(|a| a[0].counts()), Some((2, 0)));
    assert!(store.customer_exists("c1").expect("exists"));
    // Registered meanwhile by another writer: an update, and no second memberships.
    assert_eq!(store.register(&record, 11, &batches).expect("again"), None);
    assert_eq!(store.customer_memberships("c1").expect("m").len(), 2);
    assert_eq!(store.events_after(0, 10).expect("events").len(), 2);
}

pub(super) fn a_batch_longer_than_a_statement_keeps_its_order_and_references(store: &dyn Store) {
    store.apply(&[add("first", "g")], &CAUSE, 5).expect("apply");
    let first = store.customer_memberships("first").expect("m")[0].id;
    // Enough rows for whole multi-row statements and a remainder, with ends in the
    // middle: one of a membership stored before, one of a membership this batch
    // queued (`a00`, numbered right after `first`), which must be written first.
    let mut changes: Vec<Change> = (0..40).map(|i| add(&format!("a{i:02}"), "g")).collect();
    for (membership, customer) in [(first, "first"), (first + 1, "a00")] {
        changes.push(Change::End {
            membership,
            customer: customer.into(),
            group: "g".into(),
            at: 10,
            reason: "gone".into(),
        });
    }
    changes.extend((0..40).map(|i| add(&format!("b{i:02}"), "g")));
    let applied = store.apply(&changes, &CAUSE, 10).expect("apply");
    assert_eq!(applied.counts(), (80, 2));
    assert_eq!(applied.ids[0], first + 1);
    let a00 = store.customer_memberships("a00").expect("m");
    assert_eq!(a00[0].end, Some(10), "the queued membership was ended");

    let events = store.events_after(1, 100).expect("events");
    assert_eq!(events.len(), 82);
    let members = store.group_memberships("g").expect("memberships");
    for (change, event) in changes.iter().zip(&events) {
        let (kind, customer) = match change {
            Change::Add { customer, .. } => ("membership.added", &**customer),
            Change::End { customer, .. } => ("membership.removed", &**customer),
        };
        assert_eq!(
            (event.event.as_str(), event.customer.as_str()),
            (kind, customer)
        );
        let m = members
            .iter()
            .find(|m| Some(m.id) == event.membership)
            .expect("the event's membership exists");
        assert_eq!(
            m.customer, customer,
            "event {} names its membership",
            event.id
        );
    }
    let history = store.history(Some("b39"), None, None, 10).expect("history");
    assert_eq!(history.len(), 1);
    assert_eq!(
        (history[0].action.as_str(), history[0].run),
        ("added", Some(1))
    );
}

/// A batch mixing long stretches of alike memberships (written with their shared
/// values bound once, their entries read back from them) with memberships unlike
/// their neighbours and a removal between: every row is as written one by one.
pub(super) fn a_mixed_batch_writes_every_membership_entry_and_event_as_told(store: &dyn Store) {
    let first = store
        .apply(&[add("old", "b")], &CAUSE, 5)
        .expect("apply")
        .ids[0];
    // Stretches of 32 alike (as `add` makes them), each ended by one that differs
    // from them in one thing.
    let to_a = |i: usize, source, reason: &'static str, start, end| Change::Add {
        customer: format!("a{i}").into(),
        group: "a".into(),
        source,
        reason: reason.into(),
        start,
        end,
    };
    let mut changes = Vec::new();
    for (k, odd) in [
        to_a(1000, Source::Rule, "another reason", 10, None),
        to_a(1001, Source::Rule, "the rule matches", 9, None),
        to_a(1002, Source::Rule, "the rule matches", 10, Some(50)),
        to_a(1003, Source::Manual, "the rule matches", 10, None),
    ]
    .into_iter()
    .enumerate()
    {
        changes.extend((0..32).map(|i| add(&format!("a{k}-{i}"), "a")));
        changes.push(odd);
    }
    for (i, group) in ["x", "y", "x"].iter().enumerate() {
        changes.push(Change::Add {
            customer: format!("m{i}").into(),
            group: (*group).into(),
            source: Source::Manual,
            reason: format!("reason {i}").into(),
            start: 10 + i as Timestamp,
            end: Some(100),
        });
    }
    changes.push(Change::End {
        membership: first,
        customer: "old".into(),
        group: "b".into(),
        at: 10,
        reason: "the rule no longer matches".into(),
    });
    changes.extend((0..35).map(|i| add(&format!("b{i}"), "b")));
    store.apply(&changes, &CAUSE, 10).expect("apply");

    let mut expected = Vec::new();
    for c in &changes {
        match c {
            Change::Add {
                customer,
                group,
                source,
                reason,
                start,
                end,
            } => expected.push((
                "membership.added".to_string(),
                customer.to_string(),
                group.to_string(),
                source.as_str().to_string(),
                reason.to_string(),
                *start,
                *end,
            )),
            Change::End {
                customer,
                group,
                reason,
                ..
            } => expected.push((
                "membership.removed".to_string(),
                customer.to_string(),
                group.to_string(),
                "rule".to_string(),
                reason.to_string(),
                10,
                Some(10),
            )),
        }
    }
    let events = store.events_after(1, 1000).expect("events");
    let mut found = Vec::new();
    for e in &events {
        let m = store
            .customer_memberships(&e.customer)
            .expect("memberships")
            .into_iter()
            .find(|m| Some(m.id) == e.membership)
            .expect("the event's membership");
        assert_eq!(
            (&m.customer, Some(&m.group)),
            (&e.customer, e.group.as_ref())
        );
        let reason = if e.event == "membership.added" {
            assert_eq!(
                m.reason, e.reason,
                "an addition's reason is its membership's"
            );
            m.reason.clone()
        } else {
            e.reason.clone()
        };
        assert_eq!(
            (e.at, e.actor.as_str(), e.trigger.as_str()),
            (10, "rule:g", "manual")
        );
        found.push((
            e.event.clone(),
            m.customer,
            m.group,
            m.source.as_str().to_string(),
            reason,
            m.start,
            m.end,
        ));
    }
    assert_eq!(found, expected);
    let ids: Vec<i64> = events.iter().map(|e| e.id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    let history = store.history(Some("m1"), None, None, 10).expect("history");
    assert_eq!(history.len(), 1);
    assert_eq!(
        (
            history[0].action.as_str(),
            history[0].run,
            history[0].reason.as_str()
        ),
        ("added", Some(1), "reason 1")
    );
}

/// A registration's groups share one journal: each change is still written under
/// its own group's cause, and every one of them has its event, in order.
pub(super) fn batches_for_several_causes_keep_each_cause_and_every_event(store: &dyn Store) {
    let causes = ["rule:a", "rule:b", "rule:c"].map(|actor| Cause {
        trigger: Trigger::OnRegistration,
        actor,
        run: None,
    });
    let changes = [
        vec![add("c1", "a")],
        vec![add("c1", "b"), add("c2", "b")],
        vec![add("c1", "c")],
    ];
    let batches: Vec<(&[Change], Cause<'_>)> = changes
        .iter()
        .map(Vec::as_slice)
        .zip(causes.iter().cloned())
        .collect();
    let applied = store.apply_batches(&batches, 10).expect("apply");
    assert_eq!(
        applied.iter().map(Applied::counts).collect::<Vec<_>>(),
        [(1, 0), (2, 0), (1, 0)]
    );
    let events: Vec<(String, String, String)> = store
        .events_after(0, 10)
        .expect("events")
        .into_iter()
        .map(|e| (e.customer, e.group.expect("a membership's"), e.actor))
        .collect();
    let expected = [
        ("c1", "a", "rule:a"),
        ("c1", "b", "rule:b"),
        ("c2", "b", "rule:b"),
        ("c1", "c", "rule:c"),
    ]
    .map(|(c, g, a)| (c.to_string(), g.to_string(), a.to_string()));
    assert_eq!(events, expected);
    let actors: Vec<String> = store
        .customer_memberships("c1")
        .expect("memberships")
        .into_iter()
        .map(|m| m.actor)
        .collect();
    assert_eq!(actors, ["rule:a", "rule:b", "rule:c"]);
}

pub(super) fn a_groups_history_is_its_entries_newest_first_page_by_page(store: &dyn Store) {
    for (at, group) in [(10, "a"), (11, "b"), (12, "a"), (13, "b"), (14, "a")] {
        store
            .apply(&[add(&format!("c{at}"), group)], &CAUSE, at)
            .expect("apply");
    }
    let page = |before: Option<i64>| -> Vec<(String, String, Timestamp)> {
        store
            .history(None, Some("a"), before, 2)
            .expect("history")
            .into_iter()
            .map(|e| (e.customer, e.group.expect("a membership's"), e.at))
            .collect()
    };
    let entry = |c: &str, at| (c.to_string(), "a".to_string(), at);
    assert_eq!(page(None), [entry("c14", 14), entry("c12", 12)]);
    let last = store.history(None, Some("a"), None, 2).expect("history")[1].id;
    assert_eq!(page(Some(last)), [entry("c10", 10)]);
}

pub(super) fn plugins_are_listed_without_their_bytes_and_replaced_by_id_and_version(
    store: &dyn Store,
) {
    let plugin = |sha256: &str| StoredPlugin {
        id: "country".into(),
        version: "1.0.0".into(),
        sha256: sha256.into(),
        data_dir: None,
        data_dir_as_given: None,
        added_at: 1,
        signer: None,
        signer_key: None,
        budget: PluginBudget::default(),
    };
    store.put_plugin(&plugin("aa"), b"first").expect("put");
    let granted = StoredPlugin {
        data_dir: Some("/srv/geoip".into()),
        data_dir_as_given: Some("./geoip".into()),
        signer: Some("acme".into()),
        signer_key: Some("ed25519:00".into()),
        ..plugin("bb")
    };
    store.put_plugin(&granted, b"second").expect("replace");
    let listed = store.plugins().expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].sha256, "bb");
    assert_eq!(
        (
            listed[0].data_dir.as_deref(),
            listed[0].data_dir_as_given.as_deref()
        ),
        (Some("/srv/geoip"), Some("./geoip")),
        "the granted directory, and as the operator wrote it"
    );
    assert_eq!(
        (listed[0].signer.as_deref(), listed[0].signer_key.as_deref()),
        (Some("acme"), Some("ed25519:00")),
        "who vouched for it"
    );
    // The keys trusted to sign, and whether a signature is required.
    assert!(store.trusted_keys().expect("keys").is_empty());
    assert!(!store.signatures_required().expect("setting"));
    let key = |name: &str, public_key: &str| TrustedKey {
        name: name.into(),
        public_key: public_key.into(),
        added_at: 2,
    };
    store.trust_key(&key("zeta", "ed25519:01")).expect("trust");
    store.trust_key(&key("acme", "ed25519:02")).expect("trust");
    store
        .trust_key(&key("acme", "ed25519:03"))
        .expect("replace");
    assert_eq!(
        store.trusted_keys().expect("keys"),
        [key("acme", "ed25519:03"), key("zeta", "ed25519:01")]
    );
    assert!(store.distrust_key("zeta").expect("distrust"));
    assert!(!store.distrust_key("zeta").expect("distrust"));
    store.require_signatures(true).expect("require");
    assert!(store.signatures_required().expect("setting"));
    store.require_signatures(false).expect("require");
    assert!(!store.signatures_required().expect("setting"));
    assert_eq!(
        store.plugin_wasm("country", "1.0.0").expect("read"),
        Some(b"second".to_vec())
    );
    assert_eq!(store.plugin_wasm("country", "2.0.0").expect("read"), None);

    // The operator's budget holds for every version of the plugin, outlives a
    // replacement, and an empty one removes it.
    let budget = PluginBudget {
        memory_mib: Some(256),
        fuel_per_customer: Some(2_000_000),
        ..PluginBudget::default()
    };
    store.set_plugin_budget("country", &budget).expect("set");
    store
        .put_plugin(
            &StoredPlugin {
                version: "2.0.0".into(),
                ..plugin("cc")
            },
            b"third",
        )
        .expect("another version");
    store.put_plugin(&plugin("dd"), b"fourth").expect("replace");
    let budgets = |store: &dyn Store| -> Vec<(String, PluginBudget)> {
        store
            .plugins()
            .expect("list")
            .into_iter()
            .map(|p| (p.version, p.budget))
            .collect()
    };
    assert_eq!(
        budgets(store),
        [("1.0.0".to_string(), budget), ("2.0.0".to_string(), budget)]
    );
    let smaller = PluginBudget {
        deadline_ms: Some(500),
        ..PluginBudget::default()
    };
    store
        .set_plugin_budget("country", &smaller)
        .expect("replace");
    assert_eq!(budgets(store)[1].1, smaller, "replaced whole");
    store
        .set_plugin_budget("country", &PluginBudget::default())
        .expect("remove");
    assert!(budgets(store).iter().all(|(_, b)| b.is_empty()));
}

pub(super) fn windows_opening_and_closing_by_the_clock_are_announced_once(store: &dyn Store) {
    let changes = [
        window("later", 100, None),
        window("brief", 100, Some(150)),
        window("now", 0, Some(120)),
        window("forever", 0, None),
    ];
    store.apply(&changes, &CAUSE, 50).expect("apply");
    assert_eq!(
        store.announce(60).expect("announce"),
        0,
        "nothing changed yet"
    );
    assert_eq!(store.announce(130).expect("announce"), 3);
    let e = events(store, 4);
    assert_eq!(
        e,
        [
            ("later".into(), "membership.activated".into(), 100),
            ("brief".into(), "membership.activated".into(), 100),
            ("now".into(), "membership.expired".into(), 120),
        ]
    );
    let clock = &store.events_after(4, 1).expect("events")[0];
    assert_eq!(
        (
            clock.trigger.as_str(),
            clock.actor.as_str(),
            clock.reason.as_str()
        ),
        ("clock", "cohort", "the membership's window opened")
    );
    assert_eq!(store.announce(130).expect("announce"), 0, "announced once");
    assert_eq!(store.announce(200).expect("announce"), 1);
    assert_eq!(
        events(store, 7),
        [("brief".into(), "membership.expired".into(), 150)]
    );
    // A window ended by a removal is announced by its `removed` event only.
    let forever = store.customer_memberships("forever").expect("m")[0].id;
    let end = Change::End {
        membership: forever,
        customer: "forever".into(),
        group: "g".into(),
        at: 300,
        reason: "removed".into(),
    };
    store.apply(&[end], &CAUSE, 300).expect("apply");
    assert_eq!(store.announce(400).expect("announce"), 0);
}

pub(super) fn membership_pages_follow_ids_and_filter_by_state(store: &dyn Store) {
    let changes = [
        window("a", 0, None),
        window("b", 100, None),
        window("c", 0, Some(10)),
        window("d", 0, None),
    ];
    store.apply(&changes, &CAUSE, 50).expect("apply");
    let page = |listing, after, limit| -> Vec<String> {
        store
            .group_memberships_page("g", listing, 50, after, limit)
            .expect("page")
            .into_iter()
            .map(|m| m.customer)
            .collect()
    };
    assert_eq!(page(Listing::Only(State::Active), 0, 10), ["a", "d"]);
    assert_eq!(page(Listing::Only(State::Pending), 0, 10), ["b"]);
    assert_eq!(page(Listing::Only(State::Expired), 0, 10), ["c"]);
    assert_eq!(page(Listing::All, 0, 2), ["a", "b"]);
    assert_eq!(page(Listing::All, 2, 2), ["c", "d"]);
    assert!(page(Listing::All, 4, 2).is_empty());
}

pub(super) fn the_groups_stamp_moves_with_definitions_only(store: &dyn Store) {
    let group: Group =
        serde_json::from_value(serde_json::json!({"id": "g", "name": "G"})).expect("group");
    let s0 = store.groups_stamp().expect("stamp");
    store.put_group(&group, 1).expect("put");
    let s1 = store.groups_stamp().expect("stamp");
    assert_ne!(s0, s1);
    let periodic = RunRecord {
        group: "g".into(),
        trigger: Trigger::Periodic,
        started_at: 2,
        ..RunRecord::default()
    };
    let id = store
        .start_runs(std::slice::from_ref(&periodic))
        .expect("run")[0];
    let finished = RunRecord {
        id,
        status: RunStatus::Finished,
        ..periodic
    };
    store
        .finish_run(&finished, &[], &CAUSE, 2)
        .expect("periodic run");
    assert_eq!(store.last_periodic_run("g").expect("last"), Some(2));
    assert_eq!(store.groups_stamp().expect("stamp"), s1, "not a definition");
    store.put_group(&group, 3).expect("put");
    let s2 = store.groups_stamp().expect("stamp");
    assert_ne!(s1, s2);
    store.delete_group("g").expect("delete");
    assert_ne!(store.groups_stamp().expect("stamp"), s2);
}

pub(super) fn tokens_are_found_by_digest_until_revoked_and_names_are_reusable_after(
    store: &dyn Store,
) {
    store
        .create_token(
            "billing",
            Role::Operator,
            Some(&["vip".into()]),
            "h1",
            1,
            None,
        )
        .expect("create");
    assert!(
        store
            .create_token("billing", Role::Admin, None, "h2", 2, None)
            .is_err(),
        "a live name is unique"
    );
    let t = store.token_by_hash("h1").expect("find").expect("live");
    assert_eq!(
        (t.name.as_str(), t.role, t.expires_at),
        ("billing", Role::Operator, None)
    );
    assert_eq!(
        t.groups,
        Some(vec!["vip".to_string()]),
        "its groups are kept"
    );
    assert!(store.revoke_token("billing", 3).expect("revoke"));
    assert!(!store.revoke_token("billing", 4).expect("revoke"));
    assert!(store.token_by_hash("h1").expect("find").is_none());
    store
        .create_token("billing", Role::ReadOnly, None, "h3", 5, None)
        .expect("a revoked name may be used again");
    assert_eq!(store.tokens().expect("tokens").len(), 2);
    // An expiry is kept and told; an expired token is still found (the caller
    // refuses it, saying why) and keeps its name until revoked.
    store
        .create_token("nightly", Role::ReadOnly, None, "h4", 6, Some(100))
        .expect("a token that expires");
    let t = store
        .token_by_hash("h4")
        .expect("find")
        .expect("not revoked");
    assert_eq!(t.expires_at, Some(100));
    assert!(!t.expired(99) && t.expired(100));
    assert!(
        store
            .create_token("nightly", Role::ReadOnly, None, "h5", 200, None)
            .is_err(),
        "an expired token keeps its name"
    );
    assert_eq!(
        store.tokens().expect("tokens").last().map(|t| t.expires_at),
        Some(Some(100))
    );
}

pub(super) fn a_webhook_starts_at_the_newest_event_and_lags_until_delivered(store: &dyn Store) {
    store.apply(&[add("c1", "g")], &CAUSE, 10).expect("apply");
    assert_eq!(store.outbox_len().expect("lag"), 0, "no webhook, no lag");
    let hook = store.add_webhook("http://x", "s", None, 11).expect("hook");
    assert_eq!(hook.position, 1, "earlier events are in the feed, not sent");
    store.apply(&[add("c2", "g")], &CAUSE, 12).expect("apply");
    assert_eq!(store.outbox_len().expect("lag"), 1);
    store.webhook_failed(hook.id, 0, "503").expect("fail");
    let failed = &store.webhooks().expect("hooks")[0];
    assert_eq!(
        (failed.attempts, failed.last_error.as_deref()),
        (1, Some("503"))
    );
    store
        .webhook_delivered(hook.id, 0, 2, 13)
        .expect("delivered");
    let done = &store.webhooks().expect("hooks")[0];
    assert_eq!(
        (done.position, done.attempts, done.last_error.as_deref()),
        (2, 0, None)
    );
    assert_eq!(store.outbox_len().expect("lag"), 0);
    // Three events in one row (migration 13), delivered up to the middle one.
    let three: Vec<Change> = ["c3", "c4", "c5"].iter().map(|c| add(c, "g")).collect();
    store.apply(&three, &CAUSE, 14).expect("apply");
    assert_eq!(store.outbox_len().expect("lag"), 3);
    store
        .webhook_delivered(hook.id, 0, 4, 15)
        .expect("delivered");
    assert_eq!(store.outbox_len().expect("lag"), 1);
    let next = store.add_webhook("http://y", "s", None, 16).expect("hook");
    assert_eq!(next.position, 5, "the newest event, not the newest row");
}

pub(super) fn idempotency_keys_belong_to_a_token_and_expire(store: &dyn Store) {
    let response = |body: &str| Remembered {
        request: "r".into(),
        status: 201,
        body: body.into(),
    };
    store
        .remember(1, "k", &response("first"), 100)
        .expect("kept");
    store
        .remember(1, "k", &response("second"), 101)
        .expect("kept");
    let recalled = store.recall(1, "k", 0).expect("recall").expect("kept");
    assert_eq!(recalled.body, "first", "a live key stays as it was");
    assert!(
        store.recall(2, "k", 0).expect("recall").is_none(),
        "another token's"
    );
    assert!(
        store.recall(1, "k", 101).expect("recall").is_none(),
        "too old"
    );
    let later = 100 + IDEMPOTENCY_KEY_LIFETIME + 1;
    store
        .remember(1, "k", &response("again"), later)
        .expect("kept");
    let recalled = store.recall(1, "k", later).expect("recall").expect("kept");
    assert_eq!(recalled.body, "again", "an expired key may be used again");
    assert_eq!(store.forget_responses(later + 1).expect("forget"), 1);
    assert!(store.recall(1, "k", 0).expect("recall").is_none());
}

pub(super) fn active_counts_and_exclusions_agree_with_the_model(store: &dyn Store) {
    let windows = [
        (0, None),
        (50, Some(200)),
        (150, None),
        (0, Some(80)),
        (120, Some(120)),
    ];
    let changes: Vec<Change> = windows
        .iter()
        .enumerate()
        .map(|(i, (start, end))| Change::Add {
            customer: format!("c{i}").into(),
            group: "g".into(),
            source: Source::Import,
            reason: "".into(),
            start: *start,
            end: *end,
        })
        .collect();
    store.apply(&changes, &CAUSE, 0).expect("apply");
    for at in [0, 79, 80, 100, 120, 150, 200] {
        let model = store
            .group_memberships("g")
            .expect("memberships")
            .iter()
            .filter(|m| m.is_active(at))
            .count() as u64;
        assert_eq!(
            store.count_active("g", at).expect("count"),
            model,
            "at {at}"
        );
    }
    store
        .set_exclusion("c1", "g", true, "op", "never", 5)
        .expect("pin");
    assert_eq!(store.excluded_from("c1").expect("query"), ["g"]);
    assert!(store.excluded_from("c2").expect("query").is_empty());
}

pub(super) fn customers_page_in_id_order(store: &dyn Store) {
    for id in ["b", "a", "c"] {
        let record = CustomerRecord {
            id: id.into(),
            ..CustomerRecord::default()
        };
        assert!(store.upsert_customer(&record, 0).expect("upsert"));
    }
    assert!(
        !store
            .upsert_customer(
                &CustomerRecord {
                    id: "a".into(),
                    ..CustomerRecord::default()
                },
                1
            )
            .expect("upsert")
    );
    let page = store.customers_after(Some("a"), 10).expect("page");
    assert_eq!(
        page.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
        ["b", "c"]
    );
    assert_eq!(store.count_customers().expect("count"), 3);
}

pub(super) fn a_guarded_apply_writes_only_while_what_it_read_holds(store: &dyn Store) {
    store
        .upsert_customer(
            &CustomerRecord {
                id: "c1".into(),
                ..CustomerRecord::default()
            },
            1,
        )
        .expect("customer");
    let groups = ["g", "h"];
    let read = |store: &dyn Store| store.customer_memberships_in("c1", &groups).expect("read");
    let before = read(store);
    let plan = |memberships| PlanRead {
        customer: "c1",
        groups: &groups,
        memberships,
    };
    let applied = store
        .apply_guarded(&[add("c1", "g")], &CAUSE, 10, &plan(&before))
        .expect("apply")
        .expect("nothing changed since the read");
    assert_eq!(applied.added, 1);
    // A second writer that read before the first wrote: refused, nothing written.
    let refused = store
        .apply_guarded(&[add("c1", "h")], &CAUSE, 10, &plan(&before))
        .expect("apply");
    assert_eq!(refused, None);
    assert!(store.group_memberships("h").expect("h").is_empty());
    assert_eq!(store.events_after(0, 10).expect("events").len(), 1);
    // Another customer's writes do not stand in its way.
    store.apply(&[add("c2", "h")], &CAUSE, 10).expect("c2");
    let fresh = read(store);
    let again = store
        .apply_guarded(&[add("c1", "h")], &CAUSE, 11, &plan(&fresh))
        .expect("apply");
    assert!(again.is_some(), "planned again from fresh reads, it writes");
}
