//! An operator's budget per plugin, through the command line on both backends and over
//! HTTP: shown beside what the plugin declares, kept across versions and restarts,
//! cleared, refused when it makes no sense.

mod common;

use common::Cohort;

fn budgets(c: &Cohort) -> serde_json::Value {
    serde_json::from_str(&c.ok(&["--json", "plugin", "budget", "country"])).expect("JSON")
}

fn an_operator_sets_and_clears_a_budget(c: &Cohort) {
    c.ok(&["plugin", "add", "country"]);
    let shown = budgets(c);
    assert_eq!(
        shown["declared"],
        serde_json::json!({}),
        "Rust declares none"
    );
    assert_eq!(shown["operator"], serde_json::json!({}));
    assert_eq!(shown["effective"]["memory_mib"], 64);

    c.ok(&["plugin", "budget", "country", "--memory-mib", "96"]);
    c.ok(&["plugin", "budget", "country", "--deadline-ms", "3000"]);
    let shown = budgets(c);
    assert_eq!(
        shown["operator"],
        serde_json::json!({"memory_mib": 96, "deadline_ms": 3000}),
        "each flag replaces its field, the others stay"
    );
    assert_eq!(shown["effective"]["memory_mib"], 96);
    assert_eq!(shown["effective"]["deadline_ms"], 3000);
    let listed = c.ok(&["plugin", "list"]);
    assert!(
        listed.contains(r#"budget: {"memory_mib":96,"deadline_ms":3000}"#),
        "{listed}"
    );

    let refused = c.fails(&["plugin", "budget", "country", "--fuel-per-customer", "0"]);
    assert!(
        refused.contains("`fuel-per-customer` must be more than 0"),
        "{refused}"
    );
    let refused = c.fails(&["plugin", "budget", "contry", "--memory-mib", "8"]);
    assert!(refused.contains("did you mean `country`?"), "{refused}");

    c.ok(&["plugin", "budget", "country", "--clear"]);
    assert_eq!(budgets(c)["operator"], serde_json::json!({}));
    assert_eq!(budgets(c)["effective"]["memory_mib"], 64);
}

#[test]
fn an_operator_sets_and_clears_a_budget_on_sqlite() {
    an_operator_sets_and_clears_a_budget(&Cohort::new());
}

#[test]
fn an_operator_sets_and_clears_a_budget_on_postgresql() {
    an_operator_sets_and_clears_a_budget(&Cohort::on_postgresql());
}

#[test]
fn a_budget_is_read_by_readers_and_set_by_admins_over_http() {
    use common::http::{Api, Server, expect, read, token};
    use reqwest::StatusCode;

    let c = Cohort::new();
    c.ok(&["plugin", "add", "country"]);
    let admin = token(&c, "root", "admin");
    let reader = token(&c, "viewer", "read-only");
    let server = Server::start(&c, &[]);
    let as_admin = Api::new(&server, Some(&admin));
    let as_reader = Api::new(&server, Some(&reader));
    let put = |api: &Api, body: &str| {
        api.request("PUT", "/v1/plugins/country/budget")
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .expect("PUT")
    };

    let (status, _) = read(put(&as_reader, r#"{"memory_mib":96}"#));
    assert_eq!(status, StatusCode::FORBIDDEN);
    let set = expect(put(&as_admin, r#"{"memory_mib":96}"#), StatusCode::OK);
    assert_eq!(set["operator"], serde_json::json!({"memory_mib": 96}));
    assert_eq!(set["effective"]["memory_mib"], 96);
    let read_back = expect(as_reader.get("/v1/plugins/country/budget"), StatusCode::OK);
    assert_eq!(read_back, set);
    let listed = expect(as_reader.get("/v1/plugins"), StatusCode::OK);
    assert_eq!(
        listed["items"][0]["budget"],
        serde_json::json!({"memory_mib": 96})
    );

    let (status, problem) = read(put(&as_admin, r#"{"memory_mib":0}"#));
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert!(
        problem["type"]
            .as_str()
            .is_some_and(|t| t.ends_with("invalid-budget")),
        "{problem}"
    );
    let (status, problem) = read(put(&as_admin, r#"{"memory":96}"#));
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["field"], "memory", "a typo is named, not ignored");
    // serde reads a struct from an array of its fields, and every field of a budget may
    // be null: the body must be an object all the same. Text that is not JSON is a
    // syntax error, said where.
    let (status, problem) = read(put(&as_admin, "[null, null]"));
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["detail"], "the body must be a JSON object");
    let (status, problem) = read(put(&as_admin, "nope"));
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    let cleared = expect(put(&as_admin, "{}"), StatusCode::OK);
    assert_eq!(cleared["operator"], serde_json::json!({}));
}
