//! Bulk import through the real binary with real files: format variants, every kind
//! of bad row, all-or-nothing and partial, dry runs, re-imports, import records.

mod common;

use common::Cohort;

/// A store with groups vip, wholesale and staff, and customers C-1001..C-1005.
fn seeded() -> Cohort {
    let c = Cohort::new();
    for (id, name) in [
        ("vip", "VIP"),
        ("wholesale", "Wholesale"),
        ("staff", "Staff"),
    ] {
        let g = c.file(
            &format!("{id}.json"),
            &format!(r#"{{"id":"{id}","name":"{name}"}}"#),
        );
        c.ok(&["group", "save", &g]);
    }
    let customers: String = (1001..=1005)
        .map(|i| format!("{{\"id\":\"C-{i}\"}}\n"))
        .collect();
    let f = c.file("customers.jsonl", &customers);
    c.ok(&["customer", "load", &f]);
    c
}

/// Import `content` as file `name` with JSON output: the report and whether it exited 0.
fn import(c: &Cohort, name: &str, content: &str, extra: &[&str]) -> (serde_json::Value, bool) {
    let f = c.file(name, content);
    let mut args = vec!["--json", "import", "file", &f];
    args.extend(extra);
    let o = c.run(&args);
    let report = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    });
    (report, o.status.success())
}

fn counts(report: &serde_json::Value) -> [u64; 5] {
    let r = &report["record"];
    ["rows", "added", "updated", "unchanged", "rejected"].map(|k| r[k].as_u64().expect("count"))
}

#[test]
fn the_template_imports_and_a_reimport_changes_nothing() {
    let c = seeded();
    let template = c.ok(&["import", "template"]);
    assert!(template.starts_with("Customer #,Assigned Groups,Start Date & Time,End Date & Time"));
    let (report, ok) = import(
        &c,
        "template.csv",
        &template,
        &["--time-zone", "Europe/Berlin"],
    );
    assert!(ok);
    assert_eq!(report["record"]["status"], "applied");
    assert_eq!(counts(&report), [3, 4, 0, 0, 0], "C-1002 joins two groups");
    assert_eq!(report["record"]["sha256"].as_str().map(str::len), Some(64));
    // C-1003's empty start means now: active; the others' windows are in the past.
    assert_eq!(
        c.members("staff", true),
        [("C-1003".into(), "active".into())]
    );
    assert_eq!(
        c.members("vip", true),
        [
            ("C-1001".into(), "expired".into()),
            ("C-1002".into(), "active".into())
        ]
    );

    let (again, _) = import(
        &c,
        "template.csv",
        &template.replace(",,2099", ",2026-01-01,2099"),
        &["--time-zone", "Europe/Berlin"],
    );
    assert_eq!(
        counts(&again)[1..4],
        [1, 0, 3],
        "same rows unchanged; a new start is a new window"
    );
    let (same, _) = import(
        &c,
        "template.csv",
        &template.replace(",,2099", ",2026-01-01,2099"),
        &["--time-zone", "Europe/Berlin"],
    );
    assert_eq!(
        counts(&same)[1..4],
        [0, 0, 4],
        "importing the same file again changes nothing"
    );

    let listed = c.ok(&["import", "list"]);
    assert_eq!(listed.lines().count(), 3, "{listed}");
    assert!(
        listed.contains("applied") && listed.contains("by alice"),
        "{listed}"
    );
}

#[test]
fn a_new_end_updates_the_window() {
    let c = seeded();
    let (first, _) = import(
        &c,
        "a.csv",
        "Customer #,Assigned Groups,Start Date & Time,End Date & Time\nC-1001,vip,2099-01-01,2099-02-01\n",
        &[],
    );
    assert_eq!(counts(&first)[1], 1);
    let (second, _) = import(
        &c,
        "b.csv",
        "Customer #,Assigned Groups,Start Date & Time,End Date & Time\nC-1001,VIP,2099-01-01,2099-03-01\n",
        &[],
    );
    assert_eq!(counts(&second)[1..4], [0, 1, 0], "group by name, end moved");
    assert_eq!(
        c.members("vip", true),
        [("C-1001".into(), "pending".into())]
    );
    let history = c.ok(&["history", "--customer", "C-1001"]);
    assert!(
        history.contains("updated") && history.contains("import #2, line 2"),
        "{history}"
    );
}

#[test]
fn format_variants_all_read() {
    let c = seeded();
    let text = "\u{feff}Kundennummer;Gruppen;Start;Ende\r\n\
                C-1001;\"vip;\r\nwholesale\";2099-01-01 08:00;\r\n\
                \r\n\
                C-1002;staff;2099-01-01T00:00:00+05:00;2099-02-01\r\n";
    let (report, ok) = import(
        &c,
        "variants.csv",
        text,
        &[
            "--map",
            "customer=Kundennummer",
            "--map",
            "groups=Gruppen",
            "--map",
            "end=Ende",
            "--time-zone",
            "Asia/Tokyo",
        ],
    );
    assert!(ok, "{report}");
    assert_eq!(counts(&report), [2, 3, 0, 0, 0]);
    let shown: Vec<serde_json::Value> =
        serde_json::from_str(&c.ok(&["--json", "member", "list", "vip", "--all"])).expect("JSON");
    // 08:00 in Tokyo (UTC+9) is 23:00 UTC the day before.
    assert_eq!(shown[0]["membership"]["start"], "2098-12-31T23:00:00Z");
}

const HEADER: &str = "Customer #,Assigned Groups,Start Date & Time,End Date & Time\n";

fn bad_file() -> String {
    format!(
        "{HEADER}\
         C-1001,vip,2099-01-01,\n\
         C-9999,vip,,\n\
         C-1002,platinum,,\n\
         C-1003,vip,2099-02-30,\n\
         C-1004,vip,2099-05-01,2099-04-01\n\
         C-1001,vip,2099-01-01,\n\
         C-1005,staff,2099-01-01,2099-06-01\n\
         C-1005,staff,2099-03-01,2099-09-01\n\
         C-1002,staff,,\n"
    )
}

#[test]
fn every_bad_row_is_named_and_nothing_is_applied() {
    let c = seeded();
    let (report, ok) = import(&c, "bad.csv", &bad_file(), &[]);
    assert!(!ok, "a failed import exits non-zero");
    assert_eq!(report["record"]["status"], "failed");
    let problems: Vec<String> = report["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .map(|p| format!("{} {} {}", p["line"], p["column"], p["message"]))
        .collect();
    let expect = [
        "3 \"Customer #\" \"unknown customer `C-9999`\"",
        "4 \"Assigned Groups\" \"unknown group `platinum`\"",
        "5 \"Start Date & Time\" \"`2099-02-30` is not an ISO 8601 date",
        "6 \"End Date & Time\" \"ends at `2099-04-01`, not after its start `2099-05-01`\"",
        "7 null \"duplicates line 2",
        "9 null \"overlaps line 8",
    ];
    for (got, want) in problems.iter().zip(expect) {
        assert!(
            got.starts_with(want),
            "`{got}` does not start with `{want}`"
        );
    }
    assert_eq!(problems.len(), expect.len(), "{problems:#?}");
    assert_eq!(counts(&report)[4], 6);
    for group in ["vip", "staff"] {
        assert!(
            c.members(group, true).is_empty(),
            "all or nothing: `{group}` is untouched"
        );
    }
    let errors = c.ok(&["import", "errors", &report["record"]["id"].to_string()]);
    assert!(
        errors.contains("line 4, column `Assigned Groups`: unknown group `platinum`"),
        "{errors}"
    );
}

#[test]
fn partial_applies_the_good_rows_and_dry_run_nothing() {
    let c = seeded();
    let (dry, _) = import(&c, "bad.csv", &bad_file(), &["--partial", "--dry-run"]);
    assert_eq!(dry["record"]["status"], "validated");
    assert_eq!(counts(&dry)[1], 3, "lines 2, 8 and 10 would be added");
    assert!(c.members("vip", true).is_empty() && c.members("staff", true).is_empty());

    let (partial, ok) = import(&c, "bad.csv", &bad_file(), &["--partial"]);
    assert!(ok);
    assert_eq!(partial["record"]["status"], "partially applied");
    assert_eq!(counts(&partial), [9, 3, 0, 0, 6]);
    assert_eq!(
        c.members("vip", true),
        [("C-1001".into(), "pending".into())]
    );
    assert_eq!(
        c.members("staff", true),
        [
            ("C-1002".into(), "active".into()),
            ("C-1005".into(), "pending".into())
        ]
    );
}

#[test]
fn a_file_without_the_needed_columns_fails_whole() {
    let c = seeded();
    let (report, ok) = import(&c, "wrong.csv", "Name,Email\nA,a@example.com\n", &[]);
    assert!(!ok);
    let message = report["problems"][0]["message"].as_str().expect("message");
    assert!(
        message.contains("no column for Customer #") && message.contains("`Name`"),
        "{message}"
    );
}

/// A cell names a group by its id or its name, in any case; an id wins over another
/// group's name; a name two groups share names neither, and the problem says which.
#[test]
fn groups_are_named_by_id_or_name_in_any_case_and_never_ambiguously() {
    let c = seeded();
    // `gold` is one group's id and, in another case, another group's name; `Twin` is
    // the name of two groups.
    for (id, name) in [
        ("gold", "Premium"),
        ("silver", "GOLD"),
        ("a", "Twin"),
        ("b", "twin"),
    ] {
        let g = c.file(
            &format!("{id}.json"),
            &format!(r#"{{"id":"{id}","name":"{name}"}}"#),
        );
        c.ok(&["group", "save", &g]);
    }
    let (report, ok) = import(
        &c,
        "names.csv",
        "Customer #,Assigned Groups,Start Date & Time,End Date & Time\n\
         C-1001,GOLD,2026-03-01,\n\
         C-1002,premium,2026-03-01,\n\
         C-1003,Wholesale,2026-03-01,\n\
         C-1004,TWIN,2026-03-01,\n",
        &["--partial"],
    );
    assert!(ok, "{report}");
    assert_eq!(counts(&report), [4, 3, 0, 0, 1], "{report}");
    assert_eq!(
        c.members("gold", true).len(),
        2,
        "by id in upper case, and by name"
    );
    assert!(
        c.members("silver", true).is_empty(),
        "an id wins over a name"
    );
    assert_eq!(c.members("wholesale", true).len(), 1);
    let errors = c.ok(&["import", "errors", &report["record"]["id"].to_string()]);
    assert!(
        errors.contains("`TWIN` is the name of 2 groups (`a`, `b`): name the group by its id"),
        "{errors}"
    );
}
