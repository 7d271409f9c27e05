//! `cohort user`: staff accounts made, listed, given new passwords and removed, on both
//! backends, with passwords only ever read from standard input.

mod common;

use common::Cohort;

fn staff_accounts(c: &Cohort) {
    c.ok(&["plugin", "add", "country"]);
    c.ok(&[
        "group",
        "save",
        &c.file(
            "vip.json",
            r#"{"id":"vip","name":"VIP","auto":{"mode":"disabled"},"rule":{"all":[]}}"#,
        ),
    ]);
    let (code, out, err) = c.with_stdin(
        &[
            "user",
            "create",
            "ana",
            "--role",
            "operator",
            "--groups",
            "vip",
            "--password-stdin",
        ],
        "correct horse battery\n",
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("staff member `ana` (operator) created"),
        "{out}"
    );
    let (code, _, err) = c.with_stdin(
        &[
            "user",
            "create",
            "ben",
            "--role",
            "admin",
            "--password-stdin",
        ],
        "another long password",
    );
    assert_eq!(code, 0, "{err}");

    let listed: serde_json::Value =
        serde_json::from_str(&c.ok(&["--json", "user", "list"])).expect("JSON");
    assert_eq!(listed[0]["name"], "ana");
    assert_eq!(listed[0]["groups"], serde_json::json!(["vip"]));
    assert_eq!(listed[1]["groups"], serde_json::Value::Null);
    assert!(
        !listed.to_string().contains("argon2"),
        "no digest is ever shown: {listed}"
    );

    // What is refused, and why.
    let refuse = |args: &[&str], input: &str, why: &str| {
        let (code, _, err) = c.with_stdin(args, input);
        assert_eq!(code, 1, "{args:?}");
        assert!(err.contains(why), "{args:?}: {err}");
    };
    let create = |name: &'static str| {
        vec![
            "user",
            "create",
            name,
            "--role",
            "read-only",
            "--password-stdin",
        ]
    };
    refuse(&create("cy"), "short\n", "shorter than 10 characters");
    refuse(
        &create("ana"),
        "correct horse battery\n",
        "already a staff member `ana`",
    );
    refuse(
        &["user", "create", "cy", "--role", "read-only"],
        "",
        "--password-stdin",
    );
    refuse(
        &[
            "user",
            "create",
            "cy",
            "--role",
            "read-only",
            "--groups",
            "vipp",
            "--password-stdin",
        ],
        "correct horse battery\n",
        "no group `vipp`",
    );
    refuse(
        &["user", "password", "nobody", "--password-stdin"],
        "correct horse battery\n",
        "no staff member `nobody`",
    );

    let (code, out, err) = c.with_stdin(
        &["user", "password", "ana", "--password-stdin"],
        "a brand new password\n",
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("sessions have ended"), "{out}");
    c.ok(&["user", "delete", "ben"]);
    assert!(
        c.fails(&["user", "delete", "ben"])
            .contains("no staff member `ben`")
    );
    let listed = c.ok(&["user", "list"]);
    assert!(
        listed.contains("ana") && !listed.contains("ben"),
        "{listed}"
    );
}

#[test]
fn staff_accounts_on_sqlite() {
    staff_accounts(&Cohort::new());
}

#[test]
fn staff_accounts_on_postgresql() {
    staff_accounts(&Cohort::on_postgresql());
}
