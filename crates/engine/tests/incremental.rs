//! A rescan that builds on the group's last decisions gives exactly what a full scan
//! gives: the same memberships and the same counts, over random customers, changes,
//! times and rules, with plugins whose verdicts run out (subscriptions, registration
//! times, dated attributes), ones whose verdicts hold forever, and a group whose rule
//! refers to the others. That group belongs to no exclusive set, so a rescan may plan
//! only the customers it decided again; changes by hand to it (a removal, a pin set or
//! lifted, a membership whose window opens later) must make it plan them again.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};

use cohort_engine::{Engine, Trigger};
use cohort_model::{CustomerRecord, Group};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::json;

const T0: i64 = 1_780_000_000;
const DAY: i64 = 86_400;

/// A customer's facts, drawn: country, subscriptions, registration, attributes.
#[derive(Clone, Debug)]
struct Facts {
    country: u8,
    /// (product, start day, length in days or open-ended, cancelled)
    subscriptions: Vec<(u8, i64, Option<i64>, bool)>,
    registered_day: Option<i64>,
    paid_day: Option<i64>,
    balance: i64,
}

fn facts() -> impl Strategy<Value = Facts> {
    (
        0u8..4,
        prop::collection::vec(
            (0u8..2, -6i64..12, prop::option::of(1i64..6), any::<bool>()),
            0..3,
        ),
        prop::option::of(-8i64..12),
        prop::option::of(-6i64..12),
        -3i64..3,
    )
        .prop_map(
            |(country, subscriptions, registered_day, paid_day, balance)| Facts {
                country,
                subscriptions,
                registered_day,
                paid_day,
                balance,
            },
        )
}

fn record(id: usize, f: &Facts) -> CustomerRecord {
    let at = |day: i64| chrono::DateTime::from_timestamp(T0 + day * DAY, 0).expect("time");
    let mut value = json!({ "id": format!("c{id}") });
    if f.country < 3 {
        value["country"] = json!(["DE", "FR", "US"][f.country as usize]);
    }
    value["subscriptions"] = f
        .subscriptions
        .iter()
        .map(|&(p, start, length, cancelled)| {
            let mut s = json!({"product": format!("p{p}"), "start": at(start)});
            if let Some(length) = length {
                s["end"] = json!(at(start + length));
            }
            if cancelled {
                s["status"] = json!("cancelled");
            }
            s
        })
        .collect();
    if let Some(day) = f.registered_day {
        value["registered_at"] = json!(at(day));
    }
    let mut attributes = json!({ "balance": f.balance });
    if let Some(day) = f.paid_day {
        attributes["paid"] = json!({ "timestamp": at(day) });
    }
    value["attributes"] = attributes;
    serde_json::from_value(value).expect("a valid record")
}

/// A condition, drawn among plugins that read the time and ones that do not.
fn condition() -> impl Strategy<Value = serde_json::Value> {
    let config = prop_oneof![
        (0usize..3).prop_map(|n| {
            let countries = &["DE", "FR", "US"][..=n];
            json!({"plugin": "country", "config": {"countries": countries}})
        }),
        Just(json!({"plugin": "product", "config": {"products": ["p0"]}})),
        (1u32..4).prop_map(|d| json!({"plugin": "product",
            "config": {"products": ["p0", "p1"], "within_days": d}})),
        (1u32..6).prop_map(|d| json!({"plugin": "registered", "config": {"within_days": d}})),
        (1u32..5).prop_map(|d| json!({"plugin": "attribute",
            "config": {"name": "paid", "operator": "within-days", "days": d}})),
        Just(json!({"plugin": "attribute",
            "config": {"name": "balance", "operator": "at-least", "value": 0}})),
    ];
    (config, any::<bool>()).prop_map(|(mut c, negate)| {
        c["negate"] = json!(negate);
        c
    })
}

fn group(id: &str) -> impl Strategy<Value = Group> {
    let id = id.to_string();
    (
        prop::collection::vec(prop::collection::vec(condition(), 1..3), 1..3),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(move |(clauses, full_sync, keep_manual)| {
            let all: Vec<_> = clauses
                .into_iter()
                .map(|any| json!({ "any": any }))
                .collect();
            serde_json::from_value(json!({
                "id": id, "name": id,
                "auto": {"mode": if full_sync { "full-sync" } else { "add-only" },
                         "keep_manual": keep_manual},
                "exclusive": {"set": "tier", "priority": if id == "a" { 1 } else { 2 }},
                "rule": {"all": all},
            }))
            .expect("a valid group")
        })
}

/// A group outside the exclusive set whose rule refers to `a` and `b` (as "is (not) a
/// member of"), beside a plugin condition: its decisions change when theirs do.
fn referring() -> impl Strategy<Value = Group> {
    let condition = (0usize..3, any::<bool>()).prop_map(|(which, negate)| match which {
        0 => json!({"group": "a", "negate": negate}),
        1 => json!({"group": "b", "negate": negate}),
        _ => json!({"plugin": "country", "config": {"countries": ["DE"]}, "negate": negate}),
    });
    (
        prop::collection::vec(prop::collection::vec(condition, 1..3), 1..3),
        any::<bool>(),
    )
        .prop_map(|(clauses, full_sync)| {
            let all: Vec<_> = clauses
                .into_iter()
                .map(|any| json!({ "any": any }))
                .collect();
            serde_json::from_value(json!({
                "id": "c", "name": "c",
                "auto": {"mode": if full_sync { "full-sync" } else { "add-only" }},
                "rule": {"all": all},
            }))
            .expect("a valid group")
        })
}

/// Between two scans: customers rewritten, customers with one field changed (which
/// some rules read and others do not), customers added, a member removed by hand, a
/// change by hand to group `c`, group `b`'s rule changed, and the clock moved on (by
/// nothing, hours or days).
#[derive(Clone, Debug)]
struct Step {
    rewritten: Vec<(usize, Facts)>,
    touched: Vec<(usize, Touch)>,
    added: Vec<Facts>,
    removed_by_hand: Option<usize>,
    in_c: Option<ByHand>,
    redefined: Option<Group>,
    hours: i64,
}

/// One field of a customer's facts, changed.
#[derive(Clone, Debug)]
enum Touch {
    Country(u8),
    Balance(i64),
    Registered(Option<i64>),
    Paid(Option<i64>),
}

fn touch() -> impl Strategy<Value = Touch> {
    prop_oneof![
        (0u8..4).prop_map(Touch::Country),
        (-3i64..3).prop_map(Touch::Balance),
        prop::option::of(-8i64..12).prop_map(Touch::Registered),
        prop::option::of(-6i64..12).prop_map(Touch::Paid),
    ]
}

impl Touch {
    fn apply(&self, f: &mut Facts) {
        match *self {
            Touch::Country(c) => f.country = c,
            Touch::Balance(b) => f.balance = b,
            Touch::Registered(day) => f.registered_day = day,
            Touch::Paid(day) => f.paid_day = day,
        }
    }
}

/// A change by hand to group `c`'s memberships or pins, on customer `.0`.
#[derive(Clone, Debug)]
enum ByHand {
    Remove(usize),
    Pin(usize),
    Unpin(usize),
    /// A membership whose window starts this many hours after the change.
    AddFrom(usize, i64),
}

fn by_hand() -> impl Strategy<Value = ByHand> {
    prop_oneof![
        (0usize..40).prop_map(ByHand::Remove),
        (0usize..40).prop_map(ByHand::Pin),
        (0usize..40).prop_map(ByHand::Unpin),
        (0usize..40, 1i64..72).prop_map(|(i, hours)| ByHand::AddFrom(i, hours)),
    ]
}

impl ByHand {
    /// Make the change in `engine` at `at`, if customer `.0` is one of `count`; whether
    /// the engine took it.
    fn apply(&self, engine: &Engine, at: i64, count: usize) -> Option<bool> {
        let (ByHand::Remove(i) | ByHand::Pin(i) | ByHand::Unpin(i) | ByHand::AddFrom(i, _)) = *self;
        let customer = format!("c{i}");
        let done = match self {
            _ if i >= count => return None,
            ByHand::Remove(_) => engine
                .remove_member(&customer, "c", "ops", "asked", at)
                .map(|_| ()),
            ByHand::Pin(_) | ByHand::Unpin(_) => engine.pin_exclusion(
                &customer,
                "c",
                matches!(self, ByHand::Pin(_)),
                "ops",
                "asked",
                at,
            ),
            ByHand::AddFrom(_, hours) => engine
                .add_member(
                    &customer,
                    "c",
                    "ops",
                    "later",
                    (at + hours * 3600, None),
                    at,
                )
                .map(|_| ()),
        };
        Some(done.is_ok())
    }
}

fn step() -> impl Strategy<Value = Step> {
    (
        prop::collection::vec((0usize..40, facts()), 0..4),
        prop::collection::vec((0usize..40, touch()), 0..4),
        prop::collection::vec(facts(), 0..3),
        prop::option::of(0usize..40),
        prop::option::of(by_hand()),
        prop::option::weighted(0.2, group("b")),
        prop_oneof![Just(0i64), 1i64..30, 24i64..24 * 5],
    )
        .prop_map(
            |(rewritten, touched, added, removed_by_hand, in_c, redefined, hours)| Step {
                rewritten,
                touched,
                added,
                removed_by_hand,
                in_c,
                redefined,
                hours,
            },
        )
}

/// Each group's memberships as (customer, start, end, source) and each run's counts.
type Seen = (
    Vec<BTreeSet<(String, i64, Option<i64>, String)>>,
    Vec<[u64; 5]>,
);

fn seen(engine: &Engine, runs: &[cohort_engine::RunReport]) -> Seen {
    let memberships = GROUPS
        .iter()
        .map(|g| {
            engine
                .store()
                .group_memberships(g)
                .expect("memberships")
                .into_iter()
                .map(|m| (m.customer, m.start, m.end, m.source.to_string()))
                .collect()
        })
        .collect();
    let counts = runs
        .iter()
        .map(|r| {
            let run = &r.run;
            [
                run.customers,
                run.matched,
                run.undecided,
                run.added,
                run.removed,
            ]
        })
        .collect();
    (memberships, counts)
}

/// The groups, in the order they run: `c` after the groups it refers to.
const GROUPS: [&str; 3] = ["a", "b", "c"];

fn run_both(engine: &Engine, at: i64) -> Vec<cohort_engine::RunReport> {
    GROUPS
        .iter()
        .map(|g| {
            engine
                .run_group(g, Trigger::Manual, false, "test", at, at, &mut |_, _| {})
                .expect("run")
        })
        .collect()
}

static EVALUATED: AtomicU64 = AtomicU64::new(0);
static CUSTOMERS: AtomicU64 = AtomicU64::new(0);

#[test]
fn an_incremental_rescan_gives_exactly_the_memberships_of_a_full_one() {
    let mut runner = TestRunner::new(Config {
        cases: 32,
        ..Config::default()
    });
    let strategy = (
        prop::collection::vec(facts(), 5..40),
        group("a"),
        group("b"),
        referring(),
        prop::collection::vec(step(), 1..6),
    );
    runner
        .run(&strategy, |(customers, a, b, c, steps)| {
            let dir = tempfile::tempdir().expect("tempdir");
            let (kept, full) = (dir.path().join("kept.db"), dir.path().join("full.db"));
            // `kept` keeps its engine from scan to scan; `full` gets a fresh one each
            // time, which has no decisions to build on.
            let incremental = common::engine(&kept);
            let fresh = || common::engine(&full);
            for engine in [&incremental, &fresh()] {
                for plugin in [
                    cohort_artifacts::COUNTRY,
                    cohort_artifacts::PRODUCT,
                    cohort_artifacts::REGISTERED,
                    cohort_artifacts::ATTRIBUTE,
                ] {
                    engine.add_plugin(plugin, None, 0).expect("plugin");
                }
                engine.save_group(&a, 0).expect("group a");
                engine.save_group(&b, 0).expect("group b");
                engine.save_group(&c, 0).expect("group c");
                let records: Vec<_> = customers
                    .iter()
                    .enumerate()
                    .map(|(i, f)| record(i, f))
                    .collect();
                engine.store().upsert_customers(&records, T0).expect("load");
            }
            let mut current = customers.clone();
            let mut at = T0;
            let first = seen(&incremental, &run_both(&incremental, at));
            prop_assert_eq!(&first, &seen(&fresh(), &run_both(&fresh(), at)));
            for step in steps {
                at += step.hours * 3600;
                let count = current.len();
                let mut written = BTreeSet::new();
                for (i, f) in step.rewritten.iter().filter(|(i, _)| *i < count) {
                    current[*i] = f.clone();
                    written.insert(*i);
                }
                for (i, touch) in step.touched.iter().filter(|(i, _)| *i < count) {
                    touch.apply(&mut current[*i]);
                    written.insert(*i);
                }
                current.extend(step.added.iter().cloned());
                written.extend(count..current.len());
                let records: Vec<_> = written.iter().map(|&i| record(i, &current[i])).collect();
                let count = current.len();
                let mut taken = Vec::new();
                for engine in [&incremental, &fresh()] {
                    engine
                        .store()
                        .upsert_customers(&records, at)
                        .expect("write");
                    if let Some(change) = &step.in_c {
                        taken.push(change.apply(engine, at, count));
                    }
                    if let Some(b) = &step.redefined {
                        engine.save_group(b, at).expect("group b changed");
                    }
                    if let Some(i) = step.removed_by_hand.filter(|&i| i < count) {
                        engine
                            .remove_member(&format!("c{i}"), "a", "ops", "asked", at)
                            .expect("remove");
                    }
                }
                prop_assert!(taken.windows(2).all(|w| w[0] == w[1]), "{:?}", taken);
                let kept_runs = run_both(&incremental, at);
                for r in &kept_runs {
                    EVALUATED.fetch_add(r.evaluated, Ordering::Relaxed);
                    CUSTOMERS.fetch_add(r.run.customers, Ordering::Relaxed);
                }
                let full_engine = fresh();
                let full_runs = run_both(&full_engine, at);
                prop_assert!(full_runs.iter().all(|r| r.evaluated == r.run.customers));
                prop_assert_eq!(
                    seen(&incremental, &kept_runs),
                    seen(&full_engine, &full_runs)
                );
            }
            Ok(())
        })
        .expect("incremental and full scans agree");
    let (evaluated, customers) = (
        EVALUATED.load(Ordering::Relaxed),
        CUSTOMERS.load(Ordering::Relaxed),
    );
    assert!(
        evaluated * 2 < customers,
        "the rescans kept most decisions ({evaluated} evaluated of {customers}), or the test \
         compares full scans with full scans"
    );
}

/// A rule that changes on the same plugins (only its configuration) is decided afresh,
/// not from the decisions of the rule before.
#[test]
fn a_changed_rule_is_decided_afresh_even_on_the_same_plugins() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = common::engine(&dir.path().join("cohort.db"));
    engine
        .add_plugin(cohort_artifacts::COUNTRY, None, 0)
        .expect("plugin");
    let rule = |country: &str| -> Group {
        serde_json::from_value(json!({
            "id": "g", "name": "g", "auto": {"mode": "full-sync"},
            "rule": {"all": [{"any": [{"plugin": "country",
                                        "config": {"countries": [country]}}]}]},
        }))
        .expect("a valid group")
    };
    engine.save_group(&rule("DE"), 0).expect("saved");
    let records: Vec<CustomerRecord> = ["DE", "FR"]
        .iter()
        .enumerate()
        .map(|(i, c)| {
            serde_json::from_value(json!({"id": format!("c{i}"), "country": c})).expect("record")
        })
        .collect();
    engine.store().upsert_customers(&records, T0).expect("load");
    let run = |at| {
        engine
            .run_group("g", Trigger::Manual, false, "test", at, at, &mut |_, _| {})
            .expect("run")
    };
    let members = |at| -> Vec<String> {
        engine
            .store()
            .group_memberships("g")
            .expect("memberships")
            .into_iter()
            .filter(|m| m.is_active(at))
            .map(|m| m.customer)
            .collect()
    };
    run(T0);
    assert_eq!(members(T0), ["c0"]);
    assert_eq!(
        run(T0 + 1).evaluated,
        0,
        "nothing changed: every decision kept"
    );
    engine.save_group(&rule("FR"), T0 + 2).expect("changed");
    let changed = run(T0 + 3);
    assert_eq!(changed.evaluated, 2, "a new rule evaluates everyone");
    assert_eq!(members(T0 + 3), ["c1"]);
}
