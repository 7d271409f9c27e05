//! Runs keep customers, each group's memberships and its last decisions in memory
//! between runs; what another writer (another process on the same store file), a
//! change by hand, the clock, a plugin's data or a deleted group changes in between
//! must still be seen.

mod common;

use std::collections::BTreeSet;

use cohort_engine::{Engine, ImportOptions, Trigger};
use cohort_import::Options;
use cohort_model::{CustomerRecord, Group, State};
use common::engine;
use tempfile::TempDir;

fn customer(id: &str, country: &str) -> CustomerRecord {
    CustomerRecord {
        id: id.into(),
        country: Some(country.into()),
        ..CustomerRecord::default()
    }
}

/// Run group `de` at `at`: (added, removed).
fn run(engine: &Engine, at: i64) -> (u64, u64) {
    let report = engine
        .run_group("de", Trigger::Manual, false, "test", at, at, &mut |_, _| {})
        .expect("run");
    assert_eq!(report.run.undecided, 0);
    (report.run.added, report.run.removed)
}

/// Run group `de` at `at`: its members then.
fn members(engine: &Engine, at: i64) -> BTreeSet<String> {
    run(engine, at);
    held(engine, at)
}

/// The members of group `de` at `at`, as the store has them.
fn held(engine: &Engine, at: i64) -> BTreeSet<String> {
    engine
        .store()
        .group_memberships("de")
        .expect("memberships")
        .into_iter()
        .filter(|m| m.is_active(at))
        .map(|m| m.customer)
        .collect()
}

/// Run `group` at `at`: how many customers it evaluated.
fn evaluated(engine: &Engine, group: &str, at: i64) -> u64 {
    engine
        .run_group(
            group,
            Trigger::Manual,
            false,
            "test",
            at,
            at,
            &mut |_, _| {},
        )
        .expect("run")
        .evaluated
}

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

/// Two engines on one store file (in the directory returned, which must live as long),
/// the full-sync group `de` of German customers, c1 in Germany and c2 in France.
fn two_writers() -> (TempDir, Engine, Engine) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("cohort.db");
    let (runner, other) = (engine(&db), engine(&db));
    runner
        .add_plugin(cohort_artifacts::COUNTRY, None, 0)
        .expect("plugin");
    let group: Group = serde_json::from_value(serde_json::json!({
        "id": "de", "name": "DE",
        "auto": {"mode": "full-sync"},
        "rule": {"all": [{"any": [{"plugin": "country", "config": {"countries": ["DE"]}}]}]}
    }))
    .expect("group");
    runner.save_group(&group, 0).expect("group saves");
    runner
        .store()
        .upsert_customers(&[customer("c1", "DE"), customer("c2", "FR")], 0)
        .expect("load");
    (dir, runner, other)
}

#[test]
fn a_run_sees_customers_another_writer_changed_since_the_last_run() {
    let (_dir, runner, other) = two_writers();
    assert_eq!(members(&runner, 10), set(&["c1"]));

    // Another process moves c2 to Germany and registers c3 there.
    other
        .store()
        .upsert_customers(&[customer("c2", "de"), customer("c3", "DE")], 20)
        .expect("load");
    assert_eq!(members(&runner, 30), set(&["c1", "c2", "c3"]));

    // And moves c1 away, one record at a time.
    other
        .store()
        .upsert_customer(&customer("c1", "FR"), 40)
        .expect("upsert");
    assert_eq!(members(&runner, 50), set(&["c2", "c3"]));
}

#[test]
fn why_shows_the_customers_memberships_in_the_group_as_the_store_has_them() {
    let (_dir, runner, other) = two_writers();
    assert_eq!(members(&runner, 10), set(&["c1"]));

    // Another writer ends c1's membership by hand.
    assert_eq!(
        other
            .remove_member("c1", "de", "ops", "asked", 20)
            .expect("remove"),
        1
    );
    let why = runner.explain("c1", "de", 30).expect("why");
    let held: Vec<(String, String, State)> = why
        .memberships
        .iter()
        .map(|(m, state)| (m.customer.clone(), m.group.clone(), *state))
        .collect();
    assert_eq!(held, [("c1".into(), "de".into(), State::Expired)]);
    let why = runner.explain("c2", "de", 30).expect("why");
    assert!(why.memberships.is_empty(), "{:?}", why.memberships);
    let condition = &why.explanation.clauses[0].conditions[0];
    assert_eq!(
        condition.because.as_deref(),
        Some("country `FR` is not one of `DE`"),
        "the plugin's own words"
    );
    assert_eq!(condition.until, None, "a country does not run out");
    assert!(!why.disabled);

    // A disabled rule says so: it does not run, whatever it decides.
    let mut group = runner.group("de").expect("group");
    group.auto.mode = cohort_model::Mode::Disabled;
    runner.save_group(&group, 40).expect("saved");
    assert!(runner.explain("c2", "de", 50).expect("why").disabled);
}

#[test]
fn a_stored_record_that_fails_the_checks_leaves_its_memberships_until_it_is_mended() {
    let (_dir, runner, other) = two_writers();
    assert_eq!(members(&runner, 10), set(&["c1"]));

    // Another writer stores a record the model refuses (not a country code): no
    // decision for c1, so its membership stays.
    other
        .store()
        .upsert_customer(&customer("c1", "Germany"), 20)
        .expect("stored as sent");
    let report = runner
        .run_group("de", Trigger::Manual, false, "test", 30, 30, &mut |_, _| {})
        .expect("run");
    assert_eq!((report.run.undecided, report.run.removed), (1, 0));

    // Once mended, c1 is decided again.
    other
        .store()
        .upsert_customer(&customer("c1", "FR"), 40)
        .expect("upsert");
    assert_eq!(members(&runner, 50), set(&[]));
}

#[test]
fn customers_changed_and_added_across_pages_of_the_cache_are_seen() {
    // The engine keeps customers in pages of 8,192: change some on either side of a
    // page boundary, fill the last page and start new ones.
    let (_dir, runner, other) = two_writers();
    let id = |i: usize| format!("p{i:05}");
    let country = |i: usize| if i.is_multiple_of(3) { "DE" } else { "FR" };
    // One record the model refuses, in the second page: read in batches of a page,
    // perhaps on several threads, it must be the one left undecided, not a customer at
    // the same place in the first page (p00810, German, is at place 812 of each).
    let refused = 9_002;
    let load: Vec<CustomerRecord> = (0..10_000)
        .map(|i| match i {
            _ if i == refused => customer(&id(i), "Germany"),
            _ => customer(&id(i), country(i)),
        })
        .collect();
    other.store().upsert_customers(&load, 1).expect("load");
    let mut expected: BTreeSet<String> = (0..10_000)
        .filter(|&i| i != refused && country(i) == "DE")
        .map(id)
        .chain(["c1".to_string()])
        .collect();
    let report = runner
        .run_group("de", Trigger::Manual, false, "test", 10, 10, &mut |_, _| {})
        .expect("run");
    assert_eq!(report.run.undecided, 1);
    assert_eq!(held(&runner, 10), expected);
    other
        .store()
        .upsert_customer(&customer(&id(refused), "DE"), 15)
        .expect("mended");
    expected.insert(id(refused));
    assert_eq!(members(&runner, 15), expected);

    let moved = [5, 8_189, 8_190, 8_191, 9_999];
    let mut batch: Vec<CustomerRecord> = moved
        .iter()
        .map(|&i| {
            let to = if country(i) == "DE" { "FR" } else { "DE" };
            if to == "DE" {
                expected.insert(id(i));
            } else {
                expected.remove(&id(i));
            }
            customer(&id(i), to)
        })
        .collect();
    for i in 10_000..17_000 {
        batch.push(customer(&id(i), country(i)));
        if country(i) == "DE" {
            expected.insert(id(i));
        }
    }
    other.store().upsert_customers(&batch, 20).expect("changes");
    assert_eq!(members(&runner, 30), expected);
}

#[test]
fn a_run_sees_memberships_another_writer_changed_since_the_last_run() {
    let (_dir, runner, other) = two_writers();
    assert_eq!(members(&runner, 10), set(&["c1"]));

    // Another process ends c1's membership and adds c2 by hand; the group is full-sync
    // without keep-manual, so the rule puts c1 back and takes c2 out again.
    other
        .remove_member("c1", "de", "ops", "asked", 20)
        .expect("removed");
    assert!(
        other
            .add_member("c2", "de", "ops", "asked", (20, None), 20)
            .expect("added")
    );
    assert_eq!(members(&runner, 30), set(&["c1"]));
    let c1 = runner.store().customer_memberships("c1").expect("m");
    assert_eq!(c1.len(), 2, "a new window, not the ended one: {c1:?}");

    // The copy carried forward by the runner's own run plans the next one exactly.
    assert_eq!(run(&runner, 40), (0, 0));
}

#[test]
fn a_run_sees_memberships_another_writer_imported_since_the_last_run() {
    let (_dir, runner, other) = two_writers();
    assert_eq!(members(&runner, 10), set(&["c1"]));

    let csv = "Customer #,Assigned Groups,Start Date & Time\nc2,de,1970-01-01\n";
    let options = ImportOptions {
        read: Options {
            time_zone: chrono_tz::UTC,
            now: 20,
            mapping: Default::default(),
        },
        partial: false,
        dry_run: false,
    };
    let report = other
        .import(csv.as_bytes(), "in.csv", options, "ops", 20, &mut |_| {})
        .expect("import");
    assert_eq!(report.record.added, 1, "{:?}", report.problems);
    // Full-sync without keep-manual: the rule takes the imported French customer out.
    assert_eq!(run(&runner, 30), (0, 1));
    assert_eq!(members(&runner, 40), set(&["c1"]));
}

#[test]
fn groups_run_together_keep_an_exclusive_set_exclusive() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = engine(&dir.path().join("cohort.db"));
    engine
        .add_plugin(cohort_artifacts::COUNTRY, None, 0)
        .expect("plugin");
    // `conditions` copies of one condition: the costliest group runs first, so reports
    // must be put back in the order asked for.
    let group = |id: &str, priority: Option<u32>, conditions: usize| -> Group {
        let country = serde_json::json!({"plugin": "country", "config": {"countries": ["DE"]}});
        let mut g = serde_json::json!({
            "id": id, "name": id,
            "auto": {"mode": "full-sync"},
            "rule": {"all": [{"any": vec![country; conditions]}]}
        });
        if let Some(p) = priority {
            g["exclusive"] = serde_json::json!({"set": "tier", "priority": p});
        }
        serde_json::from_value(g).expect("group")
    };
    for g in [
        group("a", Some(2), 1),
        group("b", Some(1), 1),
        group("c", None, 1),
        group("d", None, 3),
    ] {
        engine.save_group(&g, 0).expect("group saves");
    }
    let customers: Vec<CustomerRecord> = (0..200)
        .map(|i| customer(&format!("c{i:03}"), "DE"))
        .collect();
    engine
        .store()
        .upsert_customers(&customers, 0)
        .expect("load");
    let ids: Vec<String> = ["a", "b", "c", "d"].map(String::from).to_vec();
    let reported: Vec<String> = engine
        .run_groups(&ids, Trigger::Manual, "test", 10, 10)
        .into_iter()
        .map(|r| r.expect("run").group)
        .collect();
    assert_eq!(reported, ids, "reports in the order of the ids asked for");
    let active = |g: &str| -> BTreeSet<String> {
        engine
            .store()
            .group_memberships(g)
            .expect("memberships")
            .into_iter()
            .filter(|m| m.is_active(10))
            .map(|m| m.customer)
            .collect()
    };
    assert!(
        active("a").is_empty(),
        "the set's first choice takes everyone"
    );
    assert_eq!(active("b").len(), 200);
    assert_eq!(active("c").len(), 200);
    assert_eq!(active("d").len(), 200);
}

#[test]
fn groups_run_together_each_write_their_own_changes_only() {
    // More runs than cores, each adding its own country's customers: a run's list of
    // changes, once written, is handed to a later run, which must not write it again.
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = engine(&dir.path().join("cohort.db"));
    engine
        .add_plugin(cohort_artifacts::COUNTRY, None, 0)
        .expect("plugin");
    let countries = ["DE", "FR", "IT", "ES", "NL", "BE", "AT", "PL"];
    for country in countries {
        let group: Group = serde_json::from_value(serde_json::json!({
            "id": country.to_lowercase(), "name": country,
            "auto": {"mode": "full-sync"},
            "rule": {"all": [{"any": [{"plugin": "country", "config": {"countries": [country]}}]}]}
        }))
        .expect("group");
        engine.save_group(&group, 0).expect("group saves");
    }
    let customers: Vec<CustomerRecord> = (0..800)
        .map(|i| customer(&format!("c{i:03}"), countries[i % countries.len()]))
        .collect();
    engine
        .store()
        .upsert_customers(&customers, 0)
        .expect("load");
    let ids: Vec<String> = countries.map(|c| c.to_lowercase()).to_vec();
    for (id, report) in ids
        .iter()
        .zip(engine.run_groups(&ids, Trigger::Manual, "test", 10, 10))
    {
        assert_eq!(report.expect("run").added, 100, "group {id}");
    }
    for (g, country) in countries.iter().enumerate() {
        let held: Vec<String> = engine
            .store()
            .group_memberships(&ids[g])
            .expect("memberships")
            .into_iter()
            .map(|m| m.customer)
            .collect();
        let expected: Vec<String> = (0..800)
            .filter(|i| i % countries.len() == g)
            .map(|i| format!("c{i:03}"))
            .collect();
        assert_eq!(held.len(), 100, "group {country}: {held:?}");
        assert_eq!(
            held.into_iter().collect::<BTreeSet<_>>(),
            expected.into_iter().collect::<BTreeSet<_>>()
        );
    }
}

#[test]
fn a_customer_erased_by_another_writer_is_not_added_again() {
    let (_dir, runner, other) = two_writers();
    assert_eq!(members(&runner, 10), set(&["c1"]));

    // Another process erases c1 (its membership ends) and stores c4, in Germany too.
    let erasure = other
        .erase_customer("c1", "dpo", "request 12", 20)
        .expect("erase");
    assert_eq!(erasure.ended, 1);
    other
        .store()
        .upsert_customer(&customer("c4", "DE"), 21)
        .expect("upsert");
    // The runner held c1 from its last run: it must not add c1 again.
    assert_eq!(members(&runner, 30), set(&["c4"]));
    assert_eq!(held(&runner, 40), set(&["c4"]));
    assert!(matches!(
        runner.erase_customer("c1", "dpo", "again", 50),
        Err(cohort_engine::EngineError::NotFound { .. })
    ));
}

/// A rescan plans only the customers it decided again while what the last plan
/// started from stands: a change by hand in the same process, a pin lifted (which
/// writes no membership), and a window opening later each make it plan the customer
/// again, though the customer's decision stands.
#[test]
fn a_rescan_with_every_decision_kept_plans_again_after_changes_by_hand_and_time() {
    let (_dir, runner, _) = two_writers();
    assert_eq!(members(&runner, 10), set(&["c1"]));
    assert_eq!(run(&runner, 20), (0, 0), "nothing to plan");

    // Removed by hand: the rule puts c1 back.
    runner
        .remove_member("c1", "de", "ops", "asked", 30)
        .expect("removed");
    assert_eq!(members(&runner, 40), set(&["c1"]));

    // Pinned out, then the pin lifted: lifting it writes no membership, and the rule
    // puts c1 back.
    runner
        .pin_exclusion("c1", "de", true, "ops", "asked", 50)
        .expect("pinned");
    assert_eq!(members(&runner, 60), set(&[]));
    runner
        .pin_exclusion("c1", "de", false, "ops", "asked", 70)
        .expect("lifted");
    assert_eq!(members(&runner, 80), set(&["c1"]));

    // c2 (in France) added by hand from a later time: nothing to plan until the window
    // opens, then full-sync ends it.
    assert!(
        runner
            .add_member("c2", "de", "ops", "asked", (200, None), 90)
            .expect("added")
    );
    assert_eq!(run(&runner, 100), (0, 0));
    assert_eq!(run(&runner, 150), (0, 0), "still waiting");
    assert_eq!(run(&runner, 250), (0, 1), "opened, and the rule ends it");
    assert_eq!(held(&runner, 250), set(&["c1"]));
}

/// A rescan evaluates again only the customers written in a field the rule's plugins
/// read: a plugin is given no other, so no other change can change its verdict.
#[test]
fn a_rescan_evaluates_only_the_customers_whose_read_fields_changed() {
    let (_dir, runner, _) = two_writers();
    let evaluated = |at| evaluated(&runner, "de", at);
    let write = |records: &[CustomerRecord], at| {
        runner
            .store()
            .upsert_customers(records, at)
            .expect("written");
    };
    assert_eq!(evaluated(10), 2);
    let tagged = CustomerRecord {
        tags: vec!["vip".into()],
        ..customer("c1", "DE")
    };
    write(std::slice::from_ref(&tagged), 15);
    assert_eq!(evaluated(20), 0, "the country plugin reads no tags");
    write(&[tagged, customer("c2", "DE")], 25);
    assert_eq!(evaluated(30), 1, "c2 moved; c1 was written as it was");
    assert_eq!(held(&runner, 30), set(&["c1", "c2"]));
    write(&[customer("c1", "FR")], 35);
    assert_eq!(evaluated(40), 1);
    assert_eq!(held(&runner, 40), set(&["c2"]));
}

/// A group deleted takes its kept decisions along: the same definition saved again
/// is a new group, decided afresh (and the decisions' memory is given back).
#[test]
fn a_deleted_group_is_decided_afresh_when_saved_again() {
    let (_dir, runner, _) = two_writers();
    let evaluated = |at| evaluated(&runner, "de", at);
    assert_eq!(evaluated(10), 2);
    assert_eq!(evaluated(20), 0, "the decisions stand");
    let group = runner.group("de").expect("group");
    runner.delete_group("de", true).expect("deleted");
    runner.save_group(&group, 30).expect("saved again");
    assert_eq!(evaluated(40), 2, "decided afresh");
    assert_eq!(held(&runner, 40), set(&["c1"]));
}

/// Kept decisions stand only on what they were made from: a plugin's data directory
/// that changed (a new GeoIP database under the same name) or an erasure (the
/// customer cache loads again) makes the next run decide every customer afresh.
#[test]
fn a_changed_data_directory_or_an_erasure_makes_the_decisions_afresh() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (engine, data) = common::geoip_gb(dir.path());
    let database = data.join("Country.mmdb");
    let evaluated = |at| evaluated(&engine, "gb", at);
    assert_eq!(evaluated(10), 3);
    assert_eq!(evaluated(20), 0, "the decisions stand");

    std::fs::copy(
        common::geoip_testdata().join("GeoLite2-Country-Test.mmdb"),
        &database,
    )
    .expect("replace");
    assert_eq!(evaluated(30), 3, "a new database is new answers");
    assert_eq!(evaluated(40), 0);

    engine
        .erase_customer("c2", "ops", "asked", 50)
        .expect("erased");
    assert_eq!(evaluated(60), 2, "the customers loaded again");
}
