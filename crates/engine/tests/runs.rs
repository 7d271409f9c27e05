//! What the run records say: every run that starts ends `finished` or `failed`, and a
//! failed one says why and applied nothing.

mod common;

use cohort_engine::{Engine, EngineError, Trigger};
use cohort_model::{CustomerRecord, Group, PluginBudget};
use cohort_store::{RunRecord, RunStatus};
use common::engine;
use tempfile::TempDir;

/// An engine (on a store in the directory returned) with group `de` of German
/// customers, group `gone`, whose plugin is not there, both on `schedule` if given, and
/// customers c0 and c2 in Germany, c1 in France.
fn de_and_gone(schedule: Option<serde_json::Value>) -> (TempDir, Engine) {
    let group = |id: &str, plugin: &str| -> Group {
        let mut g = serde_json::json!({
            "id": id, "name": id,
            "auto": {"mode": "full-sync"},
            "rule": {"all": [{"any": [{"plugin": plugin, "config": {"countries": ["DE"]}}]}]}
        });
        if let Some(s) = &schedule {
            g["auto"]["triggers"] = serde_json::json!({"schedule": s});
        }
        serde_json::from_value(g).expect("group")
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = engine(&dir.path().join("cohort.db"));
    engine
        .add_plugin(cohort_artifacts::COUNTRY, None, 0)
        .expect("plugin");
    engine
        .save_group(&group("de", "country"), 0)
        .expect("saves");
    // Written past the engine's checks, as a group whose plugin was since taken away
    // would be: it starts, then cannot prepare its condition.
    engine
        .store()
        .put_group(&group("gone", "no-such-plugin"), 0)
        .expect("stored");
    let customers: Vec<CustomerRecord> = ["DE", "FR", "DE"]
        .iter()
        .enumerate()
        .map(|(i, country)| CustomerRecord {
            id: format!("c{i}"),
            country: Some(country.to_string()),
            ..CustomerRecord::default()
        })
        .collect();
    engine
        .store()
        .upsert_customers(&customers, 0)
        .expect("load");
    (dir, engine)
}

#[test]
fn a_run_that_fails_is_recorded_failed_and_the_others_finish() {
    let (_dir, engine) = de_and_gone(None);

    let ids = ["gone", "de"].map(String::from).to_vec();
    let results = engine.run_groups(&ids, Trigger::Periodic, "scheduler", 10, 10);
    assert!(
        matches!(results[0].as_ref().map_err(EngineError::root), Err(EngineError::UnknownPlugin { plugin, .. }) if plugin == "no-such-plugin"),
        "{:?}",
        results[0].as_ref().map(|r| &r.status)
    );
    let de = results[1].as_ref().expect("de runs");
    assert_eq!((de.status.as_str(), de.added), ("finished", 2));

    let runs = engine.store().runs(None, None, 10).expect("runs");
    let recorded =
        |group: &str| -> &RunRecord { runs.iter().find(|r| r.group == group).expect("recorded") };
    let gone = recorded("gone");
    assert_eq!(gone.status, RunStatus::Failed);
    assert!(
        gone.error
            .as_deref()
            .is_some_and(|e| e.contains("no-such-plugin")),
        "{:?}",
        gone.error
    );
    assert_eq!(gone.finished_at, Some(10));
    assert!(
        engine
            .store()
            .group_memberships("gone")
            .expect("read")
            .is_empty()
    );
    assert_eq!(
        engine.store().last_periodic_run("gone").expect("last"),
        Some(10),
        "a failed run is the last periodic run: the schedule tries again at its next time"
    );
    let de = recorded("de");
    assert_eq!(
        (de.status.as_str(), de.added, de.error.as_deref()),
        ("finished", 2, None)
    );
    assert_eq!(
        engine.store().last_periodic_run("de").expect("last"),
        Some(10)
    );

    // One group run on its own fails the same way.
    let err = engine
        .run_group("gone", Trigger::Manual, false, "op", 20, 20, &mut |_, _| {})
        .expect_err("cannot prepare");
    assert!(
        matches!(err.root(), EngineError::UnknownPlugin { .. }),
        "{err}"
    );
    let latest = &engine.store().runs(Some("gone"), None, 1).expect("runs")[0];
    assert_eq!(
        (latest.status.as_str(), latest.trigger.as_str()),
        ("failed", "manual")
    );
}

#[test]
fn a_failed_scheduled_run_waits_for_its_next_time_and_does_not_stop_the_others() {
    let (_dir, engine) = de_and_gone(Some(
        serde_json::json!({"cron": "0 0 * * * *", "time_zone": "UTC"}),
    ));

    let hour = 3_600;
    let outcomes = engine.run_due(hour).expect("due");
    let ran: Vec<(String, bool)> = outcomes
        .iter()
        .map(|o| match o {
            Ok(run) => (run.group.clone(), true),
            Err(e) if matches!(e.root(), EngineError::UnknownPlugin { .. }) => {
                ("gone".into(), false)
            }
            Err(e) => panic!("unexpected: {e}"),
        })
        .collect();
    assert_eq!(ran, [("de".to_string(), true), ("gone".to_string(), false)]);
    assert_eq!(
        engine.store().group_memberships("de").expect("read").len(),
        2
    );

    assert!(
        engine.run_due(hour + 1).expect("due").is_empty(),
        "neither group is due again before the next hour"
    );
    assert_eq!(engine.run_due(2 * hour).expect("due").len(), 2);
    let failed = engine
        .store()
        .runs(Some("gone"), None, 10)
        .expect("runs")
        .iter()
        .filter(|r| r.status == RunStatus::Failed)
        .count();
    assert_eq!(failed, 2, "one failed run per scheduled time, not per tick");
}

/// The clock's tick, which `cohort scheduler` and `cohort serve` share: windows that
/// opened since are announced once, then the groups due run.
#[test]
fn a_tick_announces_windows_that_opened_and_runs_what_is_due() {
    let (_dir, engine) = de_and_gone(Some(
        serde_json::json!({"cron": "0 0 * * * *", "time_zone": "UTC"}),
    ));
    let hour = 3_600;
    assert!(
        engine
            .add_member("c1", "de", "op", "from noon", (hour - 10, None), 1)
            .expect("added by hand")
    );
    let tick = engine.tick(hour).expect("tick");
    assert_eq!(tick.announced, 1, "the pending window opened");
    assert_eq!(tick.runs.len(), 2, "both scheduled groups were due");
    let opened = engine
        .store()
        .events_after(0, 100)
        .expect("events")
        .into_iter()
        .filter(|e| e.event == "membership.activated")
        .count();
    assert_eq!(opened, 1);
    let again = engine.tick(hour + 1).expect("tick");
    assert_eq!((again.announced, again.runs.len()), (0, 0), "nothing new");
}

/// In Kleene logic a failed condition need not cost a decision, but its failure is
/// still counted in the run: a German customer whose other condition traps is a
/// member, and the trap is among the run's failures.
#[test]
fn a_failure_the_rule_decided_around_is_still_counted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = engine(&dir.path().join("cohort.db"));
    for wasm in [
        cohort_artifacts::COUNTRY.to_vec(),
        std::fs::read(cohort_artifacts::HOSTILE_PATH).expect("hostile"),
    ] {
        engine.add_plugin(&wasm, None, 0).expect("plugin");
    }
    let group: Group = serde_json::from_value(serde_json::json!({
        "id": "either", "name": "either", "auto": {"mode": "full-sync"},
        "rule": {"all": [{"any": [
            {"plugin": "country", "config": {"countries": ["DE"]}},
            {"plugin": "hostile", "config": {"behaviour": "trap"}}]}]}
    }))
    .expect("group");
    engine.save_group(&group, 0).expect("saves");
    let customer = |id: &str, country: &str| CustomerRecord {
        id: id.into(),
        country: Some(country.into()),
        tags: vec!["hostile".into()],
        ..CustomerRecord::default()
    };
    engine
        .store()
        .upsert_customers(&[customer("de", "DE"), customer("fr", "FR")], 0)
        .expect("load");
    let run = engine
        .run_group(
            "either",
            Trigger::Manual,
            false,
            "op",
            10,
            10,
            &mut |_, _| {},
        )
        .expect("runs")
        .run;
    assert_eq!((run.matched, run.undecided), (1, 1));
    let failed: u64 = run.failures.iter().map(|(_, n)| n).sum();
    assert_eq!(failed, 2, "both traps are counted: {:?}", run.failures);
}

#[test]
fn a_run_spends_the_operators_budget_for_the_plugin() {
    let (_dir, engine) = de_and_gone(None);
    let run = |engine: &Engine| {
        engine
            .run_group("de", Trigger::Manual, true, "op", 10, 10, &mut |_, _| {})
            .expect("runs")
            .run
    };
    assert_eq!((run(&engine).matched, run(&engine).undecided), (2, 0));

    // Too little fuel for any call: every customer is undecided, and the failure says
    // which budget ran out.
    let starved = common::starved();
    engine.set_plugin_budget("country", &starved).expect("set");
    let budgets = engine.plugin_budget("country").expect("budgets");
    assert_eq!(budgets.operator, starved);
    assert_eq!(budgets.effective.fuel_for(3), 4);
    let starved_run = run(&engine);
    common::assert_starved(&starved_run, 3);

    engine
        .set_plugin_budget("country", &PluginBudget::default())
        .expect("clear");
    assert_eq!(run(&engine).matched, 2, "the plugin's own budget again");

    let refused = engine.set_plugin_budget(
        "country",
        &PluginBudget {
            memory_mib: Some(0),
            ..PluginBudget::default()
        },
    );
    assert!(
        matches!(refused, Err(EngineError::Budget { ref problems, .. }) if problems == &["`memory_mib` must be more than 0"]),
        "{refused:?}"
    );
    assert!(matches!(
        engine.set_plugin_budget("contry", &starved),
        Err(EngineError::UnknownPlugin { .. })
    ));
}

#[test]
fn a_preview_says_what_a_dry_run_would_and_records_nothing() {
    let (_dir, engine) = de_and_gone(None);
    engine
        .add_member("c1", "de", "ops", "by hand", (0, None), 5)
        .expect("c1 by hand");
    let de = engine.group("de").expect("de");
    let preview = engine.preview(&de, 10).expect("preview");
    let dry = engine
        .run_group("de", Trigger::Manual, true, "ops", 10, 10, &mut |_, _| {})
        .expect("dry run");
    assert_eq!(
        (
            preview.customers,
            preview.matched,
            preview.added,
            preview.removed
        ),
        (
            dry.run.customers,
            dry.run.matched,
            dry.run.added,
            dry.run.removed
        )
    );
    assert_eq!((preview.added, preview.removed), (2, 1), "{preview:?}");
    assert_eq!(preview.added_sample, ["c0", "c2"]);
    assert_eq!(preview.removed_sample, ["c1"]);

    // An unsaved definition, refused as saving would refuse it, or previewed without
    // a trace: no group, no run.
    let runs = engine.store().runs(None, None, 100).expect("runs").len();
    let mut fr = de.clone();
    fr.id = "fr".into();
    let country = |countries| {
        serde_json::from_value(
            serde_json::json!({"plugin": "country", "config": {"countries": countries}}),
        )
        .expect("a condition")
    };
    fr.rule.all[0].any[0] = country(serde_json::json!("FR"));
    assert!(matches!(
        engine.preview(&fr, 10).map_err(|e| e.root().to_string()),
        Err(e) if e.contains("countries")
    ));
    fr.rule.all[0].any[0] = country(serde_json::json!(["FR"]));
    let preview = engine.preview(&fr, 10).expect("preview");
    assert_eq!(
        (preview.added, preview.added_sample.as_slice()),
        (1, &["c1".to_string()][..])
    );
    assert!(engine.store().group("fr").expect("read").is_none());
    assert_eq!(
        engine.store().runs(None, None, 100).expect("runs").len(),
        runs
    );
}
