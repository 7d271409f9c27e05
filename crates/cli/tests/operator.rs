//! The operator's workflow through the real `cohort` binary on a real store: plugins,
//! groups, customers, runs and dry runs, memberships by hand, history, explain, and
//! the errors bad input gets.

mod common;

use std::path::Path;

use common::Cohort;

const CUSTOMERS: &str = r#"{"id":"c1","country":"DE","verification_methods":["phone"]}
{"id":"c2","country":"FR"}
{"id":"c3","country":"US","verification_methods":["phone"]}
"#;

const GROUP: &str = r#"{"id":"eu","name":"EU residents","auto":{"mode":"full-sync"},
 "rule":{"all":[{"any":[{"plugin":"country","config":{"countries":["DE","FR"]}}]}]}}"#;

#[test]
fn the_operators_day() {
    let c = Cohort::new();
    c.ok(&["plugin", "add-standard"]);
    assert!(c.ok(&["plugin", "list"]).contains("country"));
    let inspected: serde_json::Value =
        serde_json::from_str(&c.ok(&["plugin", "inspect", "product"])).expect("JSON");
    assert_eq!(inspected["reads"], serde_json::json!(["subscriptions"]));
    assert!(
        c.fails(&["plugin", "inspect", "nope"])
            .contains("no plugin `nope`")
    );

    let group = c.file("eu.json", GROUP);
    assert!(
        c.ok(&["group", "save", &group])
            .contains("saved group `eu`")
    );
    let customers = c.file("customers.jsonl", CUSTOMERS);
    assert!(
        c.ok(&["customer", "load", &customers])
            .contains("loaded 3 customers")
    );

    let dry = c.ok(&["run", "eu", "--dry-run"]);
    assert!(dry.contains("2 would be added"), "{dry}");
    assert!(
        c.members("eu", false).is_empty(),
        "a dry run changes nothing"
    );

    let ran = c.ok(&["run", "eu"]);
    assert!(ran.contains("2 added, 0 removed"), "{ran}");
    assert_eq!(
        c.members("eu", false),
        [
            ("c1".into(), "active".into()),
            ("c2".into(), "active".into())
        ]
    );

    c.ok(&["member", "remove", "c2", "eu"]);
    c.ok(&["member", "pin", "c1", "eu"]);
    c.ok(&[
        "member",
        "add",
        "c3",
        "eu",
        "--start",
        "2099-01-01T00:00:00Z",
    ]);
    assert!(c.members("eu", false).is_empty());
    let all = c.members("eu", true);
    assert!(all.contains(&("c3".into(), "pending".into())), "{all:?}");
    assert!(all.contains(&("c2".into(), "expired".into())), "{all:?}");

    let rerun = c.ok(&["run", "eu"]);
    assert!(
        rerun.contains("1 added"),
        "c2 comes back, pinned c1 does not: {rerun}"
    );
    assert_eq!(c.members("eu", false), [("c2".into(), "active".into())]);

    let history = c.ok(&["history", "--customer", "c1"]);
    assert!(
        history.contains("excluded") && history.contains("by alice"),
        "{history}"
    );

    let why = c.ok(&["explain", "c3", "eu"]);
    assert!(why.contains("=> not a member: clause 1 fails"), "{why}");
    // The condition as the rule reads it, and the plugin's own words for the facts.
    assert!(
        why.contains(
            "  no  is country {\"countries\":[\"DE\",\"FR\"]}: does not hold (the plugin \
             answers no-match)\n        because country `US` is not one of `DE`, `FR`\n"
        ),
        "{why}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&c.ok(&["explain", "c3", "eu", "--json"])).expect("JSON");
    assert_eq!(
        json["explanation"]["clauses"][0]["conditions"][0]["because"],
        "country `US` is not one of `DE`, `FR`"
    );
    assert_eq!(json["disabled"], false);
    let runs = c.ok(&["runs", "--group", "eu"]);
    assert_eq!(runs.lines().count(), 3, "{runs}");

    c.ok(&["member", "unpin", "c1", "eu"]);
    assert!(
        c.ok(&["run", "eu"]).contains("1 added"),
        "unpinned, c1 comes back"
    );

    // A customer registered through the CLI meets the on-registration groups at once.
    let on_registration = c.file(
        "eu.json",
        &GROUP.replace(
            r#""mode":"full-sync""#,
            r#""mode":"full-sync","triggers":{"on_registration":true}"#,
        ),
    );
    c.ok(&["group", "save", &on_registration]);
    let registered = c.ok(&["customer", "upsert", r#"{"id":"c4","country":"FR"}"#]);
    assert!(
        registered.contains("registered customer `c4`; joined: eu"),
        "{registered}"
    );
    let updated = c.ok(&["customer", "upsert", r#"{"id":"c4","country":"US"}"#]);
    assert!(
        updated.contains("updated customer `c4`; joined: none"),
        "{updated}"
    );
    let listed = c.ok(&["group", "list"]);
    assert!(
        listed.contains("       3 members"),
        "c1, c2, c4 are active: {listed}"
    );
}

#[test]
fn bad_input_is_named_and_changes_nothing() {
    let c = Cohort::new();
    c.ok(&["plugin", "add-standard"]);
    let group = c.file("eu.json", GROUP);
    c.ok(&["group", "save", &group]);

    let typo = c.file(
        "typo.json",
        &GROUP.replace(r#"["DE","FR"]"#, r#"["DE","XX"]"#),
    );
    let err = c.fails(&["group", "save", &typo]);
    assert!(
        err.contains("rule.all[0].any[0]") && err.contains("config/countries/1"),
        "{err}"
    );
    let shown = c.ok(&["group", "show", "eu"]);
    assert!(
        shown.contains("\"FR\""),
        "the saved group is unchanged: {shown}"
    );

    let unknown = c.file("unknown.json", &GROUP.replace("\"country\"", "\"loyalty\""));
    assert!(
        c.fails(&["group", "save", &unknown])
            .contains("group `eu`: rule.all[0].any[0]: no plugin `loyalty` has been added")
    );
    let typo = c.file("typo.json", &GROUP.replace("\"country\"", "\"contry\""));
    let err = c.fails(&["group", "save", &typo]);
    assert!(err.contains("did you mean `country`?"), "{err}");
    assert_eq!(err.matches("no plugin").count(), 1, "said once: {err}");

    let bad_cron = c.file(
        "cron.json",
        &GROUP.replace(
            r#""mode":"full-sync""#,
            r#""mode":"full-sync","triggers":{"schedule":{"cron":"at night"}}"#,
        ),
    );
    assert!(
        c.fails(&["group", "save", &bad_cron])
            .contains("`at night` is not a cron expression")
    );

    let customers = c.file(
        "customers.jsonl",
        "{\"id\":\"ok\",\"country\":\"DE\"}\n{\"id\":\"bad\",\"country\":\"Deutschland\"}\n",
    );
    let err = c.fails(&["customer", "load", &customers]);
    assert!(
        err.contains("customers.jsonl:2") && err.contains("`Deutschland`"),
        "{err}"
    );
    let ran = c.ok(&["run", "eu"]);
    assert!(
        ran.contains(": 0 customers"),
        "no line of the bad file was stored: {ran}"
    );

    let disabled = c.file("off.json", &GROUP.replace("full-sync", "disabled"));
    c.ok(&["group", "save", &disabled]);
    assert!(c.fails(&["run", "eu"]).contains("group `eu` is disabled"));
    assert!(c.fails(&["run", "nope"]).contains("no group `nope`"));
}

#[test]
fn the_readme_example_group_saves() {
    let c = Cohort::new();
    c.ok(&["plugin", "add-standard"]);
    let example =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/groups/eu-residents.json");
    c.ok(&["group", "save", &example.display().to_string()]);
    assert!(c.ok(&["group", "list"]).contains("eu-residents"));
}

/// A scheduled group whose plugin can no longer prepare (the GeoIP database directory
/// the operator granted was taken away): its run is recorded failed, with why, and the
/// scheduler says so and exits non-zero after its one pass.
#[test]
fn a_scheduled_run_that_fails_is_recorded_and_the_scheduler_says_so() {
    let c = Cohort::new();
    let data = c.dir.join("geoip");
    std::fs::create_dir(&data).expect("data dir");
    let testdata = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata/geoip");
    std::fs::copy(
        testdata.join("GeoIP2-Country-Test.mmdb"),
        data.join("GeoIP2-Country-Test.mmdb"),
    )
    .expect("copy the test database");
    c.ok(&[
        "plugin",
        "add-standard",
        "--geoip-dir",
        &data.display().to_string(),
    ]);
    let group = c.file(
        "gb.json",
        r#"{"id":"gb","name":"GB by address","auto":{"mode":"full-sync",
            "triggers":{"schedule":{"cron":"* * * * * *","time_zone":"UTC"}}},
            "rule":{"all":[{"any":[{"plugin":"geoip-country",
            "config":{"countries":["GB"],"database":"GeoIP2-Country-Test.mmdb"}}]}]}}"#,
    );
    c.ok(&["group", "save", &group]);
    let customers = c.file(
        "customers.jsonl",
        r#"{"id":"c1","registration_ip":"81.2.69.142"}"#,
    );
    c.ok(&["customer", "load", &customers]);
    std::fs::remove_dir_all(&data).expect("take the data away");
    // Due from the next whole second after the group was saved.
    std::thread::sleep(std::time::Duration::from_millis(1_100));

    let o = c.run(&["scheduler", "--once"]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("periodic run failed"), "{stderr}");
    let runs = c.ok(&["runs"]);
    assert!(
        runs.contains("periodic") && runs.contains("failed"),
        "{runs}"
    );
    assert!(
        runs.contains("granted data directory"),
        "the run says why: {runs}"
    );
    assert!(
        c.members("gb", true).is_empty(),
        "a failed run applies nothing"
    );
}

/// A run that leaves customers undecided applies what it decided and says so in its
/// exit status (2), as `eval` does; so does the scheduler's one pass.
#[test]
fn runs_that_leave_customers_undecided_exit_2() {
    let c = Cohort::new();
    c.ok(&["plugin", "add", cohort_artifacts::HOSTILE_PATH]);
    let group = c.file(
        "g.json",
        r#"{"id":"g","name":"Ruled by a plugin that traps for some customers",
            "auto":{"mode":"full-sync",
            "triggers":{"schedule":{"cron":"* * * * * *","time_zone":"UTC"}}},
            "rule":{"all":[{"any":[{"plugin":"hostile","config":{"behaviour":"trap"}}]}]}}"#,
    );
    c.ok(&["group", "save", &group]);
    let customers = c.file(
        "customers.jsonl",
        "{\"id\":\"calm\"}\n{\"id\":\"evil\",\"tags\":[\"hostile\"]}\n",
    );
    c.ok(&["customer", "load", &customers]);

    let o = c.run(&["run", "g"]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(2), "{stdout}");
    assert!(
        stdout.contains("1 added") && stdout.contains("1 undecided"),
        "{stdout}"
    );
    let o = c.run(&["--json", "run", "g", "--dry-run", "--changes"]);
    assert_eq!(o.status.code(), Some(2));
    let shown: serde_json::Value =
        serde_json::from_slice(&o.stdout).expect("one JSON document, the run and its changes");
    assert_eq!(shown["run"]["undecided"], 1);
    assert!(shown["changes"].is_array());
    assert!(
        shown["run"]["as_of"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')),
        "times are RFC 3339: {shown}"
    );

    std::thread::sleep(std::time::Duration::from_millis(1_100));
    let o = c.run(&["scheduler", "--once"]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// `cohort runs` in a second process while a first one runs a group: the run is
/// still running, not interrupted, and finishes as usual.
#[test]
fn a_run_in_progress_is_not_interrupted_by_another_process_opening_the_store() {
    let c = Cohort::new();
    c.ok(&["plugin", "add-standard"]);
    c.ok(&["group", "save", &c.file("eu.json", GROUP)]);
    // Enough customers, all joining, for a run of a second or more.
    let lines: String = (0..300_000)
        .map(|i| format!("{{\"id\":\"c{i:07}\",\"country\":\"DE\"}}\n"))
        .collect();
    c.ok(&["customer", "load", &c.file("customers.jsonl", &lines)]);

    let mut first = c
        .command(&["run", "eu"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("the first process starts");
    let mut seen_running = 0;
    while first.try_wait().expect("wait").is_none() {
        let runs = c.ok(&["runs"]);
        assert!(!runs.contains("interrupted"), "{runs}");
        seen_running += usize::from(runs.contains("running"));
    }
    assert!(first.wait().expect("exit").success());
    assert!(seen_running >= 1, "the run was seen while it ran");
    let runs = c.ok(&["runs"]);
    assert!(runs.contains("finished"), "{runs}");
}

/// Errors give times as people read them, not as Unix seconds.
#[test]
fn a_window_that_ends_before_it_starts_is_named_in_rfc3339() {
    let c = Cohort::new();
    c.ok(&["plugin", "add-standard"]);
    c.ok(&["group", "save", &c.file("eu.json", GROUP)]);
    c.ok(&["customer", "upsert", r#"{"id":"c1","country":"DE"}"#]);
    let backwards = c.fails(&[
        "member",
        "add",
        "c1",
        "eu",
        "--start",
        "2026-06-01T00:00:00Z",
        "--end",
        "2026-03-01T00:00:00Z",
    ]);
    assert!(
        backwards.contains(
            "the window ends (`2026-03-01T00:00:00Z`) before it starts (`2026-06-01T00:00:00Z`)"
        ),
        "times as people read them: {backwards}"
    );
}

/// A file of customers with bad lines stores nothing and names every bad line once,
/// by the file's line, with the field and what is wrong with it.
#[test]
fn every_bad_customer_line_is_named_with_its_field() {
    let c = Cohort::new();
    let file = c.file(
        "bad.jsonl",
        "{\"id\":\"c1\",\"country\":\"DE\",\"payers\":[{\"kind\":\"legal-entity\"}]}\n\
         {\"id\":\"c2\",\"payers\":[{\"kind\":\"company\"}]}\n\
         \n\
         {\"id\":\"c3\",\"payers\":\"x\"}\n\
         not json\n\
         {\"id\":\"bad id!\"}\n",
    );
    let err = c.fails(&["customer", "load", &file]);
    for want in [
        "bad.jsonl:2: field `payers[0].kind`: unknown variant `company`",
        "bad.jsonl:4: field `payers`: invalid type: string \"x\"",
        "bad.jsonl:5: column 2:",
        "bad.jsonl:6: customer `bad id!`",
    ] {
        assert!(err.contains(want), "`{want}` in: {err}");
    }
    assert!(
        !err.contains("line 1 column"),
        "one line number per problem: {err}"
    );
    assert!(!err.contains("bad.jsonl:1:"), "line 1 is good: {err}");
    assert!(
        c.fails(&["customer", "show", "c1"])
            .contains("no customer `c1`"),
        "nothing of the file was stored"
    );
}

/// A group with a bad schedule is refused with the cron's problem and the time zone's
/// together, on one line.
#[test]
fn a_bad_schedule_says_everything_wrong_with_it_at_once() {
    let c = Cohort::new();
    c.ok(&["plugin", "add-standard"]);
    let group = c.file(
        "s.json",
        r#"{"id":"s","name":"S","auto":{"mode":"full-sync","triggers":{"schedule":
            {"cron":"0 0 25 * * *","time_zone":"Mars/Olympus"}}},
            "rule":{"all":[{"any":[{"plugin":"country","config":{"countries":["DE"]}}]}]}}"#,
    );
    let err = c.fails(&["group", "save", &group]);
    assert!(
        err.contains("`0 0 25 * * *` is not a cron expression")
            && err.contains("`Mars/Olympus` is not an IANA time zone"),
        "{err}"
    );
    assert!(
        !err.contains('^') && err.trim().lines().count() == 1,
        "{err}"
    );
}

/// The GeoIP plugin's errors name the directory the operator granted, not the
/// sandbox's `/data`, in plain words; a database gone at run time is not called a
/// rejected configuration, since the configuration was accepted when it was saved.
#[test]
fn a_missing_geoip_database_is_named_where_the_operator_put_it() {
    let c = Cohort::new();
    let data = c.dir.join("geoip");
    std::fs::create_dir(&data).expect("data dir");
    let testdata = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata/geoip");
    let db = data.join("GeoIP2-Country-Test.mmdb");
    std::fs::copy(testdata.join("GeoIP2-Country-Test.mmdb"), &db).expect("copy");
    let dir = data.display().to_string();
    c.ok(&["plugin", "add-standard", "--geoip-dir", &dir]);
    let group = |database: &str| {
        c.file(
            "gb.json",
            &format!(
                r#"{{"id":"gb","name":"GB","auto":{{"mode":"full-sync"}},
                "rule":{{"all":[{{"any":[{{"plugin":"geoip-country",
                "config":{{"countries":["GB"],"database":"{database}"}}}}]}}]}}}}"#
            ),
        )
    };
    let refused = c.fails(&["group", "save", &group("missing.mmdb")]);
    assert!(
        refused.contains("rejects the configuration")
            && refused.contains(&format!("`{dir}/missing.mmdb`"))
            && refused.contains("there is no such file"),
        "{refused}"
    );
    assert!(
        !refused.contains("/data/") && !refused.contains("os error"),
        "{refused}"
    );

    c.ok(&["group", "save", &group("GeoIP2-Country-Test.mmdb")]);
    std::fs::remove_file(&db).expect("the database goes away");
    let failed = c.fails(&["run", "gb"]);
    assert!(
        failed.contains("cannot prepare the condition the group was saved with")
            && !failed.contains("rejects the configuration")
            && failed.contains(&dir),
        "{failed}"
    );
}

/// `plugin list` shows a data directory as the operator wrote it, while the plugin is
/// granted the absolute path, whatever the working directory of a later command.
#[test]
fn a_data_directory_is_listed_as_the_operator_wrote_it() {
    let c = Cohort::new();
    let home = c.dir.clone();
    std::fs::create_dir(home.join("geoip")).expect("data dir");
    let o = c
        .command(&["plugin", "add", "geoip-country", "--data-dir", "./geoip"])
        .current_dir(&home)
        .output()
        .expect("runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let listed = c.ok(&["plugin", "list"]);
    assert!(listed.contains("data-dir: ./geoip"), "{listed}");
    let json: serde_json::Value =
        serde_json::from_str(&c.ok(&["--json", "plugin", "list"])).expect("JSON");
    let granted = json[0]["data_dir"].as_str().expect("absolute path");
    assert!(
        Path::new(granted).is_absolute() && granted.ends_with("geoip"),
        "{granted}"
    );
    assert_eq!(json[0]["data_dir_as_given"], "./geoip");
}

/// A group that refers to another: `run --all` decides the other first, `explain`
/// shows the membership behind the condition, a cycle is refused naming it, and the
/// referred group is in use.
#[test]
fn a_group_that_refers_to_another_runs_after_it_and_explains_itself() {
    let c = Cohort::new();
    c.ok(&["plugin", "add-standard"]);
    c.ok(&["customer", "load", &c.file("customers.jsonl", CUSTOMERS)]);
    c.ok(&["group", "save", &c.file("eu.json", GROUP)]);
    // "EU customers not verified by phone", sorting before `eu`.
    let refers = r#"{"id":"a-unverified-eu","name":"Unverified EU","auto":{"mode":"full-sync"},
     "rule":{"all":[{"any":[{"group":"eu"}]},
       {"any":[{"plugin":"verification-method","negate":true,"config":{"methods":["phone"]}}]}]}}"#;
    c.ok(&["group", "save", &c.file("unverified.json", refers)]);
    c.ok(&["run", "--all"]);
    assert_eq!(
        c.members("a-unverified-eu", false),
        [("c2".into(), "active".into())]
    );
    let why = c.ok(&["explain", "c1", "a-unverified-eu"]);
    assert!(
        why.contains("yes is a member of group `eu`: holds"),
        "{why}"
    );
    assert!(
        why.contains("because the customer is a member of `eu` at "),
        "{why}"
    );

    let cycle = r#"{"id":"eu","name":"EU residents","auto":{"mode":"full-sync"},
     "rule":{"all":[{"any":[{"group":"a-unverified-eu","negate":true}]}]}}"#;
    let refused = c.fails(&["group", "save", &c.file("cycle.json", cycle)]);
    assert!(
        refused.contains("rule.all[0].any[0].group: groups would refer to each other in a cycle: `eu` -> `a-unverified-eu` -> `eu`"),
        "{refused}"
    );
    let shown: serde_json::Value =
        serde_json::from_str(&c.ok(&["group", "show", "eu"])).expect("JSON");
    assert_eq!(
        shown["used_by"],
        serde_json::json!([{"kind": "group", "entity": "a-unverified-eu"}])
    );
    assert!(
        c.fails(&["group", "delete", "eu"])
            .contains("group `a-unverified-eu`")
    );
}
