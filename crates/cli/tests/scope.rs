//! A token limited to some groups, over the real API: it sees those groups, their
//! customers and their history, and anything else answers as if it did not exist;
//! what spans every group is refused. The console's staff accounts go through the same
//! check (`Engine::within`); `console.rs` shows it in a browser.

mod common;

use common::Cohort;
use common::http::{Api, Server, expect, read, token};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Germans in `de` by rule; `vip` by hand, holding c3 (who is also in `de` by hand).
fn store() -> Cohort {
    let c = Cohort::new();
    c.ok(&["plugin", "add", "country"]);
    c.ok(&[
        "group",
        "save",
        &c.file(
            "vip.json",
            r#"{"id":"vip","name":"VIP","auto":{"mode":"disabled"},"rule":{"all":[]}}"#,
        ),
    ]);
    c.ok(&[
        "group",
        "save",
        &c.file(
            "de.json",
            r#"{"id":"de","name":"Germany","auto":{"mode":"add-only"},
               "rule":{"all":[{"any":[{"plugin":"country","config":{"countries":["DE"]}}]}]}}"#,
        ),
    ]);
    c.ok(&[
        "customer",
        "load",
        &c.file(
            "c.jsonl",
            "{\"id\":\"c1\",\"country\":\"DE\"}\n{\"id\":\"c2\",\"country\":\"DE\"}\n\
             {\"id\":\"c3\",\"country\":\"FR\"}\n{\"id\":\"c4\",\"country\":\"FR\"}\n",
        ),
    ]);
    c.ok(&["run", "de"]);
    c.ok(&["member", "add", "c3", "vip"]);
    c.ok(&["member", "add", "c3", "de"]);
    c
}

fn ids(page: &Value, key: &str) -> Vec<String> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i[key].as_str().expect("a string").to_string())
        .collect()
}

/// A hidden thing answers exactly as a missing one: the same status and type, and a
/// detail that differs only in the name asked for.
fn as_if_missing(api: &Api, method: &str, hidden: &str, missing: &str) {
    let body = |path: &str| {
        let r = if method == "GET" {
            api.get(path)
        } else {
            api.json(method, path, &json!({"customer": "c1"}))
        };
        read(r)
    };
    let (hidden_status, hidden_body) = body(hidden);
    let (missing_status, missing_body) = body(missing);
    assert_eq!(
        hidden_status,
        StatusCode::NOT_FOUND,
        "{hidden}: {hidden_body:#}"
    );
    assert_eq!(
        missing_status,
        StatusCode::NOT_FOUND,
        "{missing}: {missing_body:#}"
    );
    assert_eq!(hidden_body["type"], missing_body["type"], "{hidden}");
}

#[test]
fn a_token_limited_to_groups_sees_only_them_their_customers_and_their_history() {
    let c = store();
    let vip = c
        .ok(&[
            "token", "create", "vip-desk", "--role", "operator", "--groups", "vip",
        ])
        .trim()
        .to_string();
    let listed = c.ok(&["token", "list"]);
    assert!(
        listed.contains("vip-desk") && listed.contains("vip"),
        "{listed}"
    );
    let err = c.fails(&[
        "token", "create", "typo", "--role", "operator", "--groups", "vpi",
    ]);
    assert!(err.contains("no group `vpi`"), "{err}");
    // A group the token does not see refers to vip: vip is in use, by a group unnamed.
    c.ok(&[
        "group",
        "save",
        &c.file(
            "vip-de.json",
            r#"{"id":"vip-de","name":"VIP in Germany","rule":{"all":[
                {"any":[{"group":"vip"}]},{"any":[{"group":"de"}]}]}}"#,
        ),
    ]);
    let server = Server::start(&c, &[]);
    let api = Api::new(&server, Some(&vip));

    // Groups: only vip, by list or by id.
    let groups = expect(api.get("/v1/groups"), StatusCode::OK);
    assert_eq!(ids(&groups, "id"), ["vip"]);
    let shown = expect(api.get("/v1/groups/vip"), StatusCode::OK);
    assert_eq!(
        shown["used_by"],
        json!([{"kind": "group", "entity": "a group you do not see"}])
    );
    as_if_missing(&api, "GET", "/v1/groups/de", "/v1/groups/nope");
    as_if_missing(
        &api,
        "GET",
        "/v1/groups/de/members",
        "/v1/groups/nope/members",
    );
    as_if_missing(
        &api,
        "GET",
        "/v1/groups/de/exclusions",
        "/v1/groups/nope/exclusions",
    );
    as_if_missing(
        &api,
        "POST",
        "/v1/groups/de/members",
        "/v1/groups/nope/members",
    );
    as_if_missing(
        &api,
        "GET",
        "/v1/groups/de/explain/c3",
        "/v1/groups/nope/explain/c3",
    );

    // Customers: only those vip holds, and only their vip memberships.
    let customers = expect(api.get("/v1/customers"), StatusCode::OK);
    assert_eq!(ids(&customers, "id"), ["c3"]);
    as_if_missing(&api, "GET", "/v1/customers/c1", "/v1/customers/nobody");
    as_if_missing(
        &api,
        "GET",
        "/v1/groups/vip/explain/c1",
        "/v1/groups/vip/explain/nobody",
    );
    let c3 = expect(api.get("/v1/customers/c3"), StatusCode::OK);
    let groups_of_c3: Vec<&str> = c3["memberships"]
        .as_array()
        .expect("memberships")
        .iter()
        .map(|m| m["group"].as_str().expect("group"))
        .collect();
    assert_eq!(groups_of_c3, ["vip"], "{c3:#}");
    expect(api.get("/v1/groups/vip/explain/c3"), StatusCode::OK);

    // History: vip's entries only, also for a customer in both groups.
    let history = expect(api.get("/v1/history"), StatusCode::OK);
    let entries = history["items"].as_array().expect("items");
    assert!(!entries.is_empty());
    assert!(entries.iter().all(|e| e["group"] == "vip"), "{history:#}");
    let of_c3 = expect(api.get("/v1/history?customer=c3"), StatusCode::OK);
    assert_eq!(
        of_c3["items"].as_array().expect("items").len(),
        1,
        "{of_c3:#}"
    );
    // A filter on a hidden customer or group finds nothing, as on a missing one.
    for path in [
        "/v1/history?customer=c1",
        "/v1/history?customer=nobody",
        "/v1/history?group=de",
        "/v1/history?group=nope",
        "/v1/runs?group=de",
        "/v1/runs?group=nope",
    ] {
        let page = expect(api.get(path), StatusCode::OK);
        assert_eq!(page["items"], json!([]), "{path}");
    }

    // Runs: none of de's, by list or by id.
    let admin = token(&c, "admin", "admin");
    let all = Api::new(&server, Some(&admin));
    let runs = expect(all.get("/v1/runs?group=de"), StatusCode::OK);
    let de_run = runs["items"][0]["id"].as_i64().expect("de's run");
    let seen = expect(api.get("/v1/runs"), StatusCode::OK);
    assert!(
        seen["items"]
            .as_array()
            .expect("items")
            .iter()
            .all(|r| r["group"] == "vip"),
        "{seen:#}"
    );
    as_if_missing(
        &api,
        "GET",
        &format!("/v1/runs/{de_run}"),
        "/v1/runs/999999",
    );
    let (status, _) = read(api.json("POST", "/v1/groups/de/runs", &json!({})));
    assert_eq!(status, StatusCode::NOT_FOUND);
    let mut de = expect(all.get("/v1/groups/de"), StatusCode::OK);
    for detail in ["active_members", "used_by"] {
        de.as_object_mut().expect("a group").remove(detail);
    }
    let (status, _) = read(api.json("POST", "/v1/groups/de/preview", &de));
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = read(api.json(
        "PUT",
        "/v1/groups/de",
        &json!({"id": "de", "name": "x", "rule": {"all": []}}),
    ));
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Adding a customer to its own group is its work; it then sees them, with only
    // that membership.
    expect(
        api.json("POST", "/v1/groups/vip/members", &json!({"customer": "c1"})),
        StatusCode::CREATED,
    );
    let c1 = expect(api.get("/v1/customers/c1"), StatusCode::OK);
    assert_eq!(
        c1["memberships"].as_array().expect("memberships").len(),
        1,
        "{c1:#}"
    );
    let (status, _) = read(api.call("DELETE", "/v1/groups/de/members/c1"));
    assert_eq!(status, StatusCode::NOT_FOUND);
    let c1_in_de = expect(all.get("/v1/groups/de/members"), StatusCode::OK);
    assert!(
        ids(&c1_in_de, "customer").contains(&"c1".to_string()),
        "untouched"
    );

    // What spans every group is refused, not hidden, even to a limited admin.
    let vip_admin = c
        .ok(&[
            "token",
            "create",
            "vip-admin",
            "--role",
            "admin",
            "--groups",
            "vip",
        ])
        .trim()
        .to_string();
    let api = Api::new(&server, Some(&vip_admin));
    for (method, path) in [
        ("GET", "/v1/events"),
        ("GET", "/v1/imports"),
        ("GET", "/metrics"),
        ("POST", "/v1/groups"),
        ("POST", "/v1/customers"),
        ("PUT", "/v1/customers/c9"),
        ("POST", "/v1/registrations"),
        ("GET", "/v1/webhooks"),
        ("GET", "/v1/tokens"),
        ("POST", "/v1/plugins/standard"),
        ("DELETE", "/v1/customers/c3"),
    ] {
        let (status, body) = read(api.json(method, path, &json!({})));
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {body:#}");
        assert!(
            body["detail"]
                .as_str()
                .is_some_and(|d| d.contains("limited to groups")),
            "{body:#}"
        );
    }
    expect(api.get("/v1/plugins"), StatusCode::OK);
}

#[test]
fn a_limited_token_is_made_only_for_groups_that_exist() {
    let c = store();
    let admin = token(&c, "admin", "admin");
    let server = Server::start(&c, &[]);
    let api = Api::new(&server, Some(&admin));
    for groups in [json!(["nope"]), json!([])] {
        let body = expect(
            api.json(
                "POST",
                "/v1/tokens",
                &json!({"name": "desk", "role": "read-only", "groups": groups}),
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
        );
        assert_eq!(body["field"], "groups", "{body:#}");
    }
    let made = expect(
        api.json(
            "POST",
            "/v1/tokens",
            &json!({"name": "desk", "role": "read-only", "groups": ["vip"]}),
        ),
        StatusCode::CREATED,
    );
    assert_eq!(made["groups"], json!(["vip"]));
    let desk = Api::new(&server, made["token"].as_str());
    let groups = expect(desk.get("/v1/groups"), StatusCode::OK);
    assert_eq!(ids(&groups, "id"), ["vip"]);
}

#[test]
fn a_definition_is_previewed_over_every_customer_without_being_saved() {
    let c = store();
    let admin = token(&c, "admin", "admin");
    let server = Server::start(&c, &[]);
    let api = Api::new(&server, Some(&admin));
    let fr = json!({"id": "fr", "name": "France", "auto": {"mode": "full-sync"},
        "rule": {"all": [{"any": [{"plugin": "country", "config": {"countries": ["FR"]}}]}]}});
    let preview = expect(
        api.json("POST", "/v1/groups/fr/preview", &fr),
        StatusCode::OK,
    );
    assert_eq!(preview["added"], 2, "{preview:#}");
    assert_eq!(preview["added_sample"], json!(["c3", "c4"]));
    let (status, _) = read(api.get("/v1/groups/fr"));
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing saved");
    let mut bad = fr.clone();
    bad["rule"]["all"][0]["any"][0]["config"]["countries"] = json!(["XX"]);
    let problem = expect(
        api.json("POST", "/v1/groups/fr/preview", &bad),
        StatusCode::UNPROCESSABLE_ENTITY,
    );
    assert!(
        problem["detail"].as_str().is_some_and(|d| d.contains("XX")),
        "{problem:#}"
    );
}
