//! Erasing a customer, over HTTP and from the command line, against the real binary.

mod common;

use common::Cohort;
use common::http::{Api, Server, customer, expect, group, read, token};
use reqwest::StatusCode;

on_both_backends!(an_admin_erases_a_customer_over_http, |c: Cohort| {
    let admin = token(&c, "dpo", "admin");
    let operator = token(&c, "billing", "operator");
    c.ok(&["plugin", "add", "country"]);
    c.ok(&[
        "group",
        "save",
        &c.file(
            "g.json",
            &group("de", "full-sync", true, &["DE"]).to_string(),
        ),
    ]);
    let server = Server::start(&c, &[]);
    let admin = Api::new(&server, Some(&admin));
    let op = Api::new(&server, Some(&operator));
    // Registered, C-1 joins `de`; C-2 stays.
    expect(
        op.json("PUT", "/v1/customers/C-1", &customer("C-1", "DE")),
        StatusCode::CREATED,
    );
    expect(
        op.json("PUT", "/v1/customers/C-2", &customer("C-2", "DE")),
        StatusCode::CREATED,
    );
    let seen = expect(op.get("/v1/events"), StatusCode::OK)["next"]
        .as_str()
        .expect("next")
        .to_string();

    // Erasure is an admin's.
    let (status, problem) = read(op.call("DELETE", "/v1/customers/C-1"));
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
    let erased = expect(
        admin.call("DELETE", "/v1/customers/C-1?reason=request%2012"),
        StatusCode::OK,
    );
    assert_eq!(erased["customer"], "C-1");
    assert_eq!(erased["facts"], true);
    assert_eq!(erased["ended"], 1);
    assert_eq!(erased["pins"], 0);

    // The facts are gone; the membership ended; C-2 is untouched.
    expect(op.get("/v1/customers/C-1"), StatusCode::NOT_FOUND);
    expect(op.get("/v1/customers/C-2"), StatusCode::OK);
    let members: Vec<String> = c.members("de", false).into_iter().map(|m| m.0).collect();
    assert_eq!(members, ["C-2"]);

    // The feed shows the end, then the erasure, which belongs to no group.
    let events = expect(op.get(&format!("/v1/events?after={seen}")), StatusCode::OK);
    let events = events["items"].as_array().expect("items");
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().expect("event"))
        .collect();
    assert_eq!(kinds, ["membership.removed", "customer.erased"]);
    let last = &events[1];
    assert_eq!(last["customer"], "C-1");
    assert!(
        last["group"].is_null() && last["membership"].is_null(),
        "{last}"
    );
    assert_eq!(
        (&last["actor"], &last["reason"]),
        (&"dpo".into(), &"request 12".into())
    );

    // The history keeps the customer's entries and says who erased them.
    let history = expect(op.get("/v1/history?customer=C-1"), StatusCode::OK);
    let actions: Vec<&str> = history["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| e["action"].as_str().expect("action"))
        .collect();
    assert_eq!(actions, ["erased", "removed", "added"]);

    // Nothing is left to erase.
    expect(
        admin.call("DELETE", "/v1/customers/C-1"),
        StatusCode::NOT_FOUND,
    );
    expect(
        admin.call("DELETE", "/v1/customers/nobody"),
        StatusCode::NOT_FOUND,
    );
});

#[test]
fn an_operator_erases_a_customer_from_the_command_line() {
    let c = Cohort::new();
    c.ok(&[
        "customer",
        "upsert",
        r#"{"id": "C-7", "country": "DE", "attributes": {"email": "jane@example.com"}}"#,
    ]);
    c.ok(&[
        "group",
        "save",
        &c.file("vip.json", r#"{"id": "vip", "name": "VIP"}"#),
    ]);
    c.ok(&[
        "member",
        "add",
        "C-7",
        "vip",
        "--reason",
        "asked by Jane Roe",
    ]);
    let out = c.ok(&["customer", "delete", "C-7", "--reason", "request 9"]);
    assert!(
        out.contains("erased customer `C-7`: ended 1 membership(s), lifted 0 pin(s)"),
        "{out}"
    );
    let gone = c.fails(&["customer", "show", "C-7"]);
    assert!(gone.contains("no customer `C-7`"), "{gone}");
    let history = c.ok(&["history", "--customer", "C-7"]);
    assert!(!history.contains("Jane"), "{history}");
    assert!(history.contains("erased"), "{history}");
    assert!(history.contains("(erased with the customer)"), "{history}");
    let again = c.fails(&["customer", "delete", "C-7"]);
    assert!(again.contains("no customer `C-7`"), "{again}");
}
