//! Running many groups at once, reading changes and endings as people do, through the
//! real `cohort` binary.

mod common;

use common::Cohort;

const CUSTOMERS: &str = r#"{"id":"c1","country":"DE"}
{"id":"c2","country":"FR"}
{"id":"c3","country":"US"}
"#;

/// A group of `countries`, in exclusive set `set` at `priority` if given.
fn group(id: &str, countries: &[&str], set: Option<(&str, u32)>, manual: bool) -> String {
    let mut g = serde_json::json!({
        "id": id, "name": id,
        "auto": {"mode": "full-sync", "triggers": {"manual": manual}},
        "rule": {"all": [{"any": [{"plugin": "country", "config": {"countries": countries}}]}]}
    });
    if let Some((set, priority)) = set {
        g["exclusive"] = serde_json::json!({"set": set, "priority": priority});
    }
    g.to_string()
}

fn platform() -> Cohort {
    let c = Cohort::new();
    c.ok(&["plugin", "add-standard"]);
    for (id, countries, set, manual) in [
        ("de", &["DE"][..], None, true),
        ("eu", &["DE", "FR"][..], Some(("tier", 2)), true),
        ("fr", &["FR"][..], Some(("tier", 1)), true),
        ("us", &["US"][..], None, false),
    ] {
        let file = c.file(&format!("{id}.json"), &group(id, countries, set, manual));
        c.ok(&["group", "save", &file]);
    }
    c.ok(&["customer", "load", &c.file("c.jsonl", CUSTOMERS)]);
    c
}

#[test]
fn every_group_runs_in_one_command_with_a_summary() {
    let c = platform();
    let o = c.run(&["run", "--all"]);
    assert_eq!(o.status.code(), Some(0));
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(out.contains("ran 3 group(s)"), "{out}");
    assert!(
        err.contains("skipped 1 group(s)") && err.contains("us"),
        "a group whose manual trigger is off is skipped, and said so: {err}"
    );
    let row = |id: &str| {
        out.lines()
            .find(|l| l.split_whitespace().next() == Some(id))
            .unwrap_or_else(|| panic!("a row for `{id}`: {out}"))
            .split_whitespace()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    // group, customers, match, added, removed, undecided, status
    assert_eq!(row("de"), ["de", "3", "1", "1", "0", "0", "finished"]);
    // The set's groups run in id order: `eu` takes c1 and c2, then `fr`, first in the
    // set by priority, takes c2 from it.
    assert_eq!(row("eu"), ["eu", "3", "2", "2", "0", "0", "finished"]);
    assert_eq!(row("fr"), ["fr", "3", "1", "1", "1", "0", "finished"]);
    assert_eq!(c.members("eu", false), [("c1".into(), "active".into())]);
    assert_eq!(c.members("fr", false), [("c2".into(), "active".into())]);
    assert_eq!(c.members("de", false), [("c1".into(), "active".into())]);
    assert_eq!(
        c.members("us", false),
        Vec::<(String, String)>::new(),
        "not run"
    );
}

#[test]
fn a_set_or_a_list_of_groups_runs_and_json_is_one_document() {
    let c = platform();
    let json: serde_json::Value =
        serde_json::from_str(&c.ok(&["--json", "run", "--set", "tier", "--dry-run"]))
            .expect("one JSON document");
    let groups: Vec<&str> = json["runs"]
        .as_array()
        .expect("runs")
        .iter()
        .map(|r| r["group"].as_str().expect("group"))
        .collect();
    assert_eq!(groups, ["eu", "fr"]);
    assert!(json["runs"][0]["dry_run"].as_bool().expect("dry run"));
    assert!(
        c.members("eu", true).is_empty(),
        "a dry run changes nothing"
    );

    let o = c.run(&["--json", "run", "de", "us", "nope"]);
    assert_eq!(o.status.code(), Some(1), "two of three could not run");
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON document");
    assert_eq!(json["runs"].as_array().expect("runs").len(), 1);
    let errors = json["errors"].to_string();
    assert!(
        errors.contains("\"group\":\"nope\"") && errors.contains("\"group\":\"us\""),
        "{errors}"
    );
    assert!(
        c.fails(&["run", "de", "fr", "--changes"])
            .contains("--changes lists the changes of one group's run")
    );
    assert!(
        c.fails(&["run", "--set", "none"])
            .contains("no group is in exclusive set `none`")
    );
    assert!(c.fails(&["run"]).contains("no group to run"));
}

#[test]
fn changes_and_endings_read_as_dates_with_who_and_why() {
    let c = platform();
    let changes = c.ok(&["run", "de", "--dry-run", "--changes"]);
    assert!(
        changes.contains("+ `c1` joins `de` from 20")
            && changes.contains("(rule: the rule matches)"),
        "{changes}"
    );
    c.ok(&["run", "de"]);
    c.ok(&["member", "remove", "c1", "de", "--reason", "asked to leave"]);
    let listed = c.ok(&["member", "list", "de", "--all"]);
    assert!(
        listed.contains("by rule:de (the rule matches)")
            && listed.contains("ended ")
            && listed.contains("(manual): asked to leave"),
        "the end says who and why, beside how it was added: {listed}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&c.ok(&["--json", "member", "list", "de", "--all"])).expect("JSON");
    assert_eq!(json[0]["ended"]["reason"], "asked to leave");
    // The customer's own page says so too.
    let shown = c.ok(&["customer", "show", "c1"]);
    assert!(
        shown.contains("ended ") && shown.contains("(manual): asked to leave"),
        "{shown}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&c.ok(&["--json", "customer", "show", "c1"])).expect("JSON");
    assert_eq!(json["memberships"][0]["ended"]["actor"], "alice");
    assert_eq!(json["memberships"][0]["state"], "expired");

    // Before the removal, nobody had ended it yet.
    let before = c.ok(&[
        "--json",
        "member",
        "list",
        "de",
        "--as-of",
        "2000-01-01T00:00:00Z",
        "--all",
    ]);
    let before: serde_json::Value = serde_json::from_str(&before).expect("JSON");
    assert!(before[0]["ended"].is_null(), "{before}");

    // Membership at another time: a window in the future is listed then, not now.
    c.ok(&[
        "member",
        "add",
        "c3",
        "de",
        "--start",
        "2090-01-01T00:00:00Z",
        "--end",
        "2091-01-01T00:00:00Z",
    ]);
    assert!(!c.ok(&["member", "list", "de"]).contains("c3"));
    let then = c.ok(&["member", "list", "de", "--as-of", "2090-06-01T00:00:00Z"]);
    assert!(then.contains("c3") && then.contains("active"), "{then}");

    let o = c.run(&["member", "remove", "c1", "de"]);
    assert_eq!(o.status.code(), Some(1), "nothing left to remove");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no active or pending membership"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}
