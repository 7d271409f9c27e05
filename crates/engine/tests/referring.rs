//! A group as a condition: "is (not) a member of group X". Saving refuses unknown
//! groups and cycles (naming the cycle); a referred group counts as used; runs decide X
//! before the groups that refer to it; a rescan evaluates again only the customers
//! whose membership of X changed, by X's runs, by hand or by the clock; registration
//! and explanations see the membership too.

mod common;

use std::collections::BTreeSet;

use cohort_engine::{Engine, EngineError, Trigger};
use cohort_model::{CustomerRecord, Group};
use serde_json::json;

const T: i64 = 1_780_000_000;

fn group(value: serde_json::Value) -> Group {
    serde_json::from_value(value).expect("a valid group")
}

/// `id`, full-sync, with the given clauses.
fn rule(id: &str, clauses: serde_json::Value) -> Group {
    group(json!({"id": id, "name": id, "auto": {"mode": "full-sync",
        "triggers": {"on_registration": true}}, "rule": {"all": clauses}}))
}

fn country(countries: &[&str]) -> serde_json::Value {
    json!({"plugin": "country", "config": {"countries": countries}})
}

fn customer(id: &str, country: &str) -> CustomerRecord {
    serde_json::from_value(json!({"id": id, "country": country})).expect("a customer")
}

fn engine(dir: &tempfile::TempDir) -> Engine {
    let engine = common::engine(&dir.path().join("cohort.db"));
    engine
        .add_plugin(cohort_artifacts::COUNTRY, None, 0)
        .expect("plugin");
    engine
}

fn active(engine: &Engine, group: &str, at: i64) -> BTreeSet<String> {
    common::active(engine.store(), group, at)
}

/// Save `id`, full-sync and checked at registration, with the given clauses.
fn save(engine: &Engine, id: &str, clauses: serde_json::Value) {
    engine.save_group(&rule(id, clauses), 0).expect("saved");
}

fn run(engine: &Engine, group: &str, at: i64) -> cohort_engine::RunReport {
    engine
        .run_group(group, Trigger::Manual, false, "ops", at, at, &mut |_, _| {})
        .expect("run")
}

#[test]
fn saving_refuses_unknown_groups_and_cycles_and_a_referred_group_is_used() {
    let dir = tempfile::tempdir().expect("dir");
    let engine = engine(&dir);
    let err = engine
        .save_group(&rule("a", json!([{"any": [{"group": "b"}]}])), 0)
        .expect_err("b does not exist");
    assert_eq!(
        err.to_string(),
        "group `a`: rule.all[0].any[0]: no group `b`",
        "named by its place in the rule"
    );
    save(&engine, "c", json!([{"any": [country(&["DE"])]}]));
    save(&engine, "b", json!([{"any": [{"group": "c"}]}]));
    save(
        &engine,
        "a",
        json!([{"any": [country(&["FR"]), {"group": "b"}]}]),
    );
    // c referring to a would close a -> b -> c -> a.
    let cycle = json!([{"any": [country(&["DE"])]}, {"any": [{"group": "a", "negate": true}]}]);
    let err = engine
        .save_group(&rule("c", cycle), 0)
        .expect_err("a cycle");
    match &err {
        EngineError::InvalidGroup(e) => {
            assert_eq!(e.field, "rule.all[1].any[0].group");
            assert_eq!(
                e.problem,
                "groups would refer to each other in a cycle: `c` -> `a` -> `b` -> `c`"
            );
        }
        other => panic!("not a refusal of the group: {other}"),
    }
    assert_eq!(
        engine.group("c").expect("c").referred(),
        Vec::<&str>::new(),
        "nothing was saved"
    );

    assert_eq!(
        engine.uses("b").expect("uses"),
        [("group".to_string(), "a".to_string())]
    );
    let err = engine.delete_group("b", false).expect_err("a refers to b");
    assert!(err.to_string().contains("group `a`"), "{err}");
    // Deleted by force, the rule that refers to it says so when it runs.
    engine.delete_group("b", true).expect("forced");
    let err = engine
        .run_group("a", Trigger::Manual, false, "ops", T, T, &mut |_, _| {})
        .expect_err("b is gone");
    assert!(
        err.to_string().contains("rule.all[0].any[1]: no group `b`"),
        "{err}"
    );
}

#[test]
fn runs_decide_a_referred_group_first_and_rescans_follow_its_changes() {
    let dir = tempfile::tempdir().expect("dir");
    let engine = engine(&dir);
    // `a-eu-not-de` sorts before the groups it refers to: only the order of references
    // puts it after them.
    save(
        &engine,
        "eu",
        json!([{"any": [country(&["DE", "FR", "NL"])]}]),
    );
    save(&engine, "de", json!([{"any": [country(&["DE"])]}]));
    save(
        &engine,
        "a-eu-not-de",
        json!([{"any": [{"group": "eu"}]}, {"any": [{"group": "de", "negate": true}]}]),
    );
    let records: Vec<CustomerRecord> = (0..40)
        .map(|i| customer(&format!("c{i:02}"), ["DE", "FR", "NL", "US"][i % 4]))
        .collect();
    engine.store().upsert_customers(&records, T).expect("load");

    let ids: Vec<String> = ["a-eu-not-de", "de", "eu"].map(String::from).to_vec();
    let runs = engine.run_groups(&ids, Trigger::Manual, "ops", T, T);
    assert!(runs.iter().all(Result::is_ok), "{runs:?}");
    let expected = |at| -> BTreeSet<String> {
        let de = active(&engine, "de", at);
        active(&engine, "eu", at).difference(&de).cloned().collect()
    };
    assert_eq!(active(&engine, "a-eu-not-de", T).len(), 20, "FR and NL");
    assert_eq!(active(&engine, "a-eu-not-de", T), expected(T));

    // Nothing changed: nobody is evaluated again.
    assert_eq!(run(&engine, "a-eu-not-de", T + 1).evaluated, 0);

    // A French customer put in `de` by hand leaves; a US customer put in `eu` by hand,
    // for a week, joins, and leaves again when the week is over.
    engine
        .add_member("c01", "de", "ops", "by hand", (T + 2, None), T + 2)
        .expect("c01 in de");
    engine
        .add_member(
            "c03",
            "eu",
            "ops",
            "for a week",
            (T + 2, Some(T + 7 * 86_400)),
            T + 2,
        )
        .expect("c03 in eu");
    let report = run(&engine, "a-eu-not-de", T + 3);
    assert_eq!(
        report.evaluated, 2,
        "only the two whose memberships changed"
    );
    assert_eq!((report.run.added, report.run.removed), (1, 1));
    assert_eq!(active(&engine, "a-eu-not-de", T + 3), expected(T + 3));
    let later = T + 8 * 86_400;
    let report = run(&engine, "a-eu-not-de", later);
    assert_eq!(report.evaluated, 1, "the week in `eu` ended");
    assert_eq!(report.run.removed, 1);
    assert!(!active(&engine, "a-eu-not-de", later).contains("c03"));

    // A customer who moves to Germany leaves through `de`'s run and `eu`'s, in one
    // call that orders them.
    engine
        .store()
        .upsert_customers(&[customer("c02", "DE")], later + 1)
        .expect("moved");
    let runs = engine.run_groups(&ids, Trigger::Manual, "ops", later + 1, later + 1);
    assert!(runs.iter().all(Result::is_ok), "{runs:?}");
    assert!(!active(&engine, "a-eu-not-de", later + 1).contains("c02"));
    assert_eq!(
        active(&engine, "a-eu-not-de", later + 1),
        expected(later + 1)
    );
}

#[test]
fn registration_and_explanations_see_the_membership() {
    let dir = tempfile::tempdir().expect("dir");
    let engine = engine(&dir);
    save(&engine, "de", json!([{"any": [country(&["DE"])]}]));
    // Checked at registration before `de` would be in id order ("b" < "de").
    save(
        &engine,
        "b-not-de",
        json!([{"any": [{"group": "de", "negate": true}]}]),
    );
    save(&engine, "b-de", json!([{"any": [{"group": "de"}]}]));
    let german = engine
        .upsert_customer(&customer("k1", "DE"), T)
        .expect("registered");
    let mut joined = german.joined.clone();
    joined.sort();
    assert_eq!(joined, ["b-de", "de"]);
    let french = engine
        .upsert_customer(&customer("k2", "FR"), T)
        .expect("registered");
    assert_eq!(french.joined, ["b-not-de"]);

    let why = engine.explain("k1", "b-not-de", T + 1).expect("why");
    let text = why.explanation.to_string();
    assert!(
        text.contains("no  is not a member of group `de`: does not hold"),
        "{text}"
    );
    let because = why.explanation.clauses[0].conditions[0].because.as_deref();
    assert_eq!(
        because,
        Some("the customer is a member of `de` at 2026-05-28T20:26:41Z")
    );
    let json = serde_json::to_value(&why.explanation).expect("json");
    assert_eq!(
        json["clauses"][0]["conditions"][0]["condition"]["group"], "de",
        "the condition as the rule has it: {json}"
    );
}
