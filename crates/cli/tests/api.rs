//! The HTTP API end to end: the real `cohort serve` on loopback, real tokens made by
//! the CLI, a real webhook receiver.

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::Cohort;
use common::http::{Api, Server, customer, expect, group, read, tag_of, token};
use common::receiver::Receiver;
use reqwest::StatusCode;
use serde_json::json;
use sha2::{Digest, Sha256};

on_both_backends!(
    every_operation_in_the_document_needs_a_token_and_none_answers_5xx,
    |c: Cohort| {
        let reader = token(&c, "dashboard", "read-only");
        // The `--listen` flag (port 0) wins over the environment.
        let server = Server::start(&c, &[("COHORT_LISTEN", "127.0.0.1:1")]);
        assert!(!server.base.ends_with(":1"), "{}", server.base);
        let anonymous = Api::new(&server, None);
        let doc = expect(anonymous.get("/openapi.json"), StatusCode::OK);
        let paths = doc["paths"].as_object().expect("paths");
        assert!(paths.len() >= 25, "{} paths", paths.len());
        let read_only = Api::new(&server, Some(&reader));
        let mut operations = 0;
        for (path, item) in paths {
            let concrete = path
                .replace("{id}", "1")
                .replace("{customer}", "c1")
                .replace("{kind}", "tariff")
                .replace("{entity}", "t1");
            for method in ["get", "post", "put", "delete"] {
                let Some(op) = item.get(method) else { continue };
                operations += 1;
                let public = op.get("security").is_some_and(|s| s == &json!([{}]));
                let status = anonymous.call(&method.to_uppercase(), &concrete).status();
                if public {
                    assert!(status.is_success(), "{method} {path}: {status}");
                    continue;
                }
                assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}");
                let (status, body) = read(read_only.call(&method.to_uppercase(), &concrete));
                assert!(
                    !status.is_server_error(),
                    "{method} {path}: {status} {body}"
                );
                if method != "get" {
                    assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {body}");
                    assert!(
                        body["detail"]
                            .as_str()
                            .expect("detail")
                            .contains("dashboard")
                    );
                }
            }
        }
        assert!(operations >= 35, "{operations} operations");
        // A wrong token is refused like none.
        let forged = Api::new(&server, Some("cohort_0000"));
        expect(forged.get("/v1/groups"), StatusCode::UNAUTHORIZED);
        // Revoked from the CLI while the server runs: refused at the next request.
        c.ok(&["token", "revoke", "dashboard"]);
        expect(read_only.get("/v1/groups"), StatusCode::UNAUTHORIZED);
        expect(anonymous.get("/v1/nothing-here"), StatusCode::NOT_FOUND);
    }
);

on_both_backends!(a_platform_integrates_over_http, |c: Cohort| {
    let admin = token(&c, "root", "admin");
    let operator = token(&c, "billing", "operator");
    let reader = token(&c, "dashboard", "read-only");
    let server = Server::start(&c, &[]);
    let admin = Api::new(&server, Some(&admin));
    let op = Api::new(&server, Some(&operator));
    let ro = Api::new(&server, Some(&reader));

    // Plugins: the digest the caller states is checked.
    let wasm = cohort_artifacts::COUNTRY;
    let digest = hex::encode(Sha256::digest(wasm));
    let wrong = admin
        .request("POST", "/v1/plugins?sha256=00")
        .body(wasm.to_vec())
        .send()
        .expect("upload");
    let problem = expect(wrong, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem["field"], "sha256");
    let not_wasm = admin
        .request(
            "POST",
            &format!(
                "/v1/plugins?sha256={}",
                hex::encode(Sha256::digest(b"nope"))
            ),
        )
        .body(b"nope".to_vec())
        .send()
        .expect("upload");
    expect(not_wasm, StatusCode::UNPROCESSABLE_ENTITY);
    let info = expect(
        admin
            .request("POST", &format!("/v1/plugins?sha256={digest}"))
            .body(wasm.to_vec())
            .send()
            .expect("upload"),
        StatusCode::CREATED,
    );
    assert_eq!(info["id"], "country");
    let detail = expect(ro.get("/v1/plugins/country"), StatusCode::OK);
    assert_eq!(detail["sha256"], digest);
    assert_eq!(detail["contract"], "0.3.0");
    expect(ro.get("/v1/plugins/no-such"), StatusCode::NOT_FOUND);
    let plugins = expect(ro.get("/v1/plugins"), StatusCode::OK);
    assert_eq!(plugins["items"].as_array().expect("items").len(), 1);

    // Groups: validated through the plugin on save; bad bodies name the field.
    let eu = group("eu", "full-sync", true, &["DE", "FR"]);
    let created = expect(op.json("POST", "/v1/groups", &eu), StatusCode::CREATED);
    assert_eq!(created["active_members"], 0);
    expect(op.json("POST", "/v1/groups", &eu), StatusCode::CONFLICT);
    let mut unknown = eu.clone();
    unknown["colour"] = json!("blue");
    let p = expect(
        op.json("PUT", "/v1/groups/eu", &unknown),
        StatusCode::UNPROCESSABLE_ENTITY,
    );
    assert!(
        p["detail"].as_str().expect("detail").contains("colour"),
        "{p}"
    );
    let mut bad_mode = eu.clone();
    bad_mode["auto"]["mode"] = json!("sometimes");
    let p = expect(
        op.json("PUT", "/v1/groups/eu", &bad_mode),
        StatusCode::UNPROCESSABLE_ENTITY,
    );
    assert_eq!(p["field"], "auto.mode");
    let bad_config = group("bad", "full-sync", false, &["XX"]);
    let p = expect(
        op.json("POST", "/v1/groups", &bad_config),
        StatusCode::UNPROCESSABLE_ENTITY,
    );
    assert_eq!(p["type"], "urn:cohort:problem:invalid-condition");
    assert!(
        p["field"]
            .as_str()
            .expect("field")
            .starts_with("rule.all[0]"),
        "{p}"
    );
    let syntax = op
        .request("POST", "/v1/groups")
        .header("content-type", "application/json")
        .body("{\"id\": ")
        .send()
        .expect("send");
    expect(syntax, StatusCode::BAD_REQUEST);
    let plain = op
        .request("POST", "/v1/groups")
        .body(eu.to_string())
        .send()
        .expect("send");
    expect(plain, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let huge = json!({"id": "x".repeat(2 << 20)});
    // On a connection of its own: the server closes it without reading the body.
    let once = Api::new(&server, Some(&operator));
    expect(
        once.json("POST", "/v1/groups", &huge),
        StatusCode::PAYLOAD_TOO_LARGE,
    );
    expect(
        op.json("PUT", "/v1/groups/other", &eu),
        StatusCode::UNPROCESSABLE_ENTITY,
    );
    expect(
        op.json(
            "PUT",
            "/v1/groups/de-only",
            &group("de-only", "add-only", false, &["DE"]),
        ),
        StatusCode::OK,
    );

    // Registration runs the on-registration trigger and says where the customer went.
    let r = expect(
        op.json("POST", "/v1/registrations", &customer("c1", "de")),
        StatusCode::CREATED,
    );
    assert_eq!(r["joined"], json!(["eu"]));
    let r = expect(
        op.json("PUT", "/v1/customers/c1", &customer("c1", "DE")),
        StatusCode::OK,
    );
    assert_eq!(r["new"], false);
    // A batch with one bad record stores none of it.
    let batch = json!({"customers": [customer("c2", "FR"), {"id": "c3", "country": "DE",
        "subscriptions": [{"product": "p", "start": "2026-02-01T00:00:00Z", "end": "2026-01-01T00:00:00Z"}]}]});
    let p = expect(
        op.json("POST", "/v1/customers", &batch),
        StatusCode::UNPROCESSABLE_ENTITY,
    );
    assert_eq!(p["field"], "customers[1].subscriptions[0].end");
    expect(ro.get("/v1/customers/c2"), StatusCode::NOT_FOUND);
    let batch =
        json!({"customers": [customer("c2", "FR"), customer("c3", "US"), customer("c4", "DE")]});
    let done = expect(op.json("POST", "/v1/customers", &batch), StatusCode::OK);
    assert_eq!(done["new"], 3);
    let customers = expect(ro.get("/v1/customers?limit=3"), StatusCode::OK);
    assert_eq!(customers["next"], "c3");
    let rest = expect(ro.get("/v1/customers?limit=3&after=c3"), StatusCode::OK);
    assert_eq!(rest["items"][0]["id"], "c4");
    assert!(rest.get("next").is_none());
    expect(ro.get("/v1/customers?limit=0"), StatusCode::BAD_REQUEST);
    expect(ro.get("/v1/customers?colour=blue"), StatusCode::BAD_REQUEST);

    // Runs, dry and real, waited for; the run's actor is the token's name.
    let dry = expect(
        op.json(
            "POST",
            "/v1/groups/de-only/runs",
            &json!({"dry_run": true, "wait": true}),
        ),
        StatusCode::OK,
    );
    assert_eq!(dry["run"]["added"], 2);
    assert_eq!(dry["changes_total"], 2);
    let real = expect(
        op.json("POST", "/v1/groups/de-only/runs", &json!({"wait": true})),
        StatusCode::CREATED,
    );
    assert_eq!(real["run"]["actor"], "billing");
    let runs = expect(ro.get("/v1/runs?group=de-only&limit=1"), StatusCode::OK);
    let cursor = runs["next"].as_str().expect("a second page").to_string();
    let older = expect(
        ro.get(&format!("/v1/runs?group=de-only&before={cursor}")),
        StatusCode::OK,
    );
    assert_eq!(older["items"][0]["dry_run"], true);
    let members = expect(ro.get("/v1/groups/de-only/members?limit=1"), StatusCode::OK);
    assert_eq!(members["items"][0]["state"], "active");
    let next = members["next"].as_str().expect("next").to_string();
    let second = expect(
        ro.get(&format!("/v1/groups/de-only/members?limit=1&after={next}")),
        StatusCode::OK,
    );
    assert_ne!(
        second["items"][0]["customer"],
        members["items"][0]["customer"]
    );
    expect(
        ro.get("/v1/groups/de-only/members?state=weird"),
        StatusCode::BAD_REQUEST,
    );
    let why = expect(ro.get("/v1/groups/eu/explain/c3"), StatusCode::OK);
    assert_eq!(why["explanation"]["decision"], "not-member");

    // Manual membership, pinned exclusions, history with the token's name.
    let add = json!({"customer": "c3", "end": "2099-01-01T00:00:00Z", "reason": "VIP"});
    let added = expect(
        op.json("POST", "/v1/groups/eu/members", &add),
        StatusCode::CREATED,
    );
    assert_eq!(added["added"], true);
    expect(
        op.json(
            "POST",
            "/v1/groups/eu/members",
            &json!({"customer": "c3", "start": "yesterday"}),
        ),
        StatusCode::BAD_REQUEST,
    );
    let history = expect(ro.get("/v1/history?customer=c3"), StatusCode::OK);
    assert_eq!(history["items"][0]["actor"], "billing");
    assert_eq!(history["items"][0]["source"], "manual");
    let ended = expect(
        op.call("DELETE", "/v1/groups/eu/members/c3"),
        StatusCode::OK,
    );
    assert_eq!(ended["ended"], 1);
    expect(
        op.call("PUT", "/v1/groups/eu/exclusions/c1?reason=fraud"),
        StatusCode::NO_CONTENT,
    );
    let pinned = expect(ro.get("/v1/groups/eu/exclusions"), StatusCode::OK);
    assert_eq!(pinned["items"], json!(["c1"]));
    expect(
        op.call("DELETE", "/v1/groups/eu/exclusions/c1"),
        StatusCode::NO_CONTENT,
    );

    // Idempotency: a retry replays; the same key for another request is refused.
    let body = json!({"customer": "c4", "reason": "retry me"});
    let first = op
        .request("POST", "/v1/groups/de-only/members")
        .header("idempotency-key", "k-1")
        .json(&json!({"customer": "c3"}))
        .send()
        .expect("send");
    assert_eq!(expect(first, StatusCode::CREATED)["added"], true);
    let again = op
        .request("POST", "/v1/groups/de-only/members")
        .header("idempotency-key", "k-1")
        .json(&json!({"customer": "c3"}))
        .send()
        .expect("send");
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(
        expect(again, StatusCode::CREATED)["added"],
        true,
        "the first answer, replayed"
    );
    let reused = op
        .request("POST", "/v1/groups/de-only/members")
        .header("idempotency-key", "k-1")
        .json(&body)
        .send()
        .expect("send");
    expect(reused, StatusCode::UNPROCESSABLE_ENTITY);

    // "Used": a group in use is not deleted unless forced.
    expect(
        op.call("PUT", "/v1/groups/eu/uses/tariff/basic-eu"),
        StatusCode::NO_CONTENT,
    );
    let shown = expect(ro.get("/v1/groups/eu"), StatusCode::OK);
    assert_eq!(
        shown["used_by"],
        json!([{"kind": "tariff", "entity": "basic-eu"}])
    );
    let p = expect(op.call("DELETE", "/v1/groups/eu"), StatusCode::CONFLICT);
    assert!(p["detail"].as_str().expect("detail").contains("basic-eu"));
    expect(
        op.call("PUT", "/v1/groups/eu/uses/Bad%20Kind/x"),
        StatusCode::UNPROCESSABLE_ENTITY,
    );

    // Imports: template, a good file, a bad file that changes nothing.
    let template = op.get("/v1/imports/template");
    assert!(
        template.headers()["content-type"]
            .to_str()
            .expect("type")
            .starts_with("text/csv")
    );
    assert!(template.text().expect("csv").starts_with("Customer #"));
    let csv = "Customer #,Assigned Groups,Start Date & Time,End Date & Time\nc2,eu,2026-01-01,2027-01-01\n";
    let report = expect(
        op.request("POST", "/v1/imports?file_name=jan.csv")
            .header("content-type", "text/csv")
            .body(csv)
            .send()
            .expect("send"),
        StatusCode::CREATED,
    );
    assert_eq!(report["record"]["added"], 1);
    let bad =
        "Customer #,Assigned Groups,Start Date & Time,End Date & Time\nc2,eu,someday,\nzz,eu,,\n";
    let p = expect(
        op.request("POST", "/v1/imports?file_name=bad.csv")
            .body(bad)
            .send()
            .expect("send"),
        StatusCode::UNPROCESSABLE_ENTITY,
    );
    let id = p["extra"]["record"]["id"].as_i64().expect("import id");
    let errors = expect(
        ro.get(&format!("/v1/imports/{id}/errors?limit=1")),
        StatusCode::OK,
    );
    assert_eq!(errors["items"][0]["line"], 2);
    let cursor = errors["next"].as_str().expect("next");
    let more = expect(
        ro.get(&format!("/v1/imports/{id}/errors?after={cursor}")),
        StatusCode::OK,
    );
    assert_eq!(more["items"][0]["line"], 3);
    let record = expect(ro.get(&format!("/v1/imports/{id}")), StatusCode::OK);
    assert_eq!(record["status"], "failed");
    expect(ro.get("/v1/imports/9999"), StatusCode::NOT_FOUND);
    expect(
        op.request("POST", "/v1/imports?time_zone=Mars/Base")
            .body(csv)
            .send()
            .expect("send"),
        StatusCode::BAD_REQUEST,
    );

    // The change feed has every change, in order, from any cursor.
    let feed = expect(ro.get("/v1/events?limit=1000"), StatusCode::OK);
    let events = feed["items"].as_array().expect("events");
    assert!(events.len() >= 6, "{feed}");
    let ids: Vec<i64> = events
        .iter()
        .map(|e| e["id"].as_i64().expect("id"))
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    let tail = expect(
        ro.get(&format!("/v1/events?after={}", ids[ids.len() - 2])),
        StatusCode::OK,
    );
    assert_eq!(tail["items"].as_array().expect("items").len(), 1);
    assert_eq!(tail["next"], ids[ids.len() - 1].to_string());

    // Forced deletion; then the service endpoints.
    expect(
        op.call("DELETE", "/v1/groups/eu?force=true"),
        StatusCode::NO_CONTENT,
    );
    expect(ro.get("/v1/groups/eu"), StatusCode::NOT_FOUND);
    expect(Api::new(&server, None).get("/healthz"), StatusCode::OK);
    expect(Api::new(&server, None).get("/readyz"), StatusCode::OK);
    // An admin may do what an operator may.
    expect(
        admin.json(
            "PUT",
            "/v1/groups/by-admin",
            &group("by-admin", "disabled", false, &["DE"]),
        ),
        StatusCode::OK,
    );
    let metrics = ro.get("/metrics").text().expect("metrics");
    assert!(metrics.contains("cohort_http_requests_total{method=\"POST\",route=\"/v1/registrations\",status=\"201\"} 1"), "{metrics}");
    // One JSON log line per request, with the route and the token's name.
    let logged = server.log_lines().into_iter().any(|l| {
        l["fields"]["route"] == "/v1/registrations"
            && l["fields"]["status"] == 201
            && l["fields"]["caller"] == "billing"
    });
    assert!(logged, "no log line for the registration");
    assert!(metrics.contains("cohort_runs_total{trigger=\"manual\",status=\"finished\"} 2"));
    let fuel: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("cohort_plugin_fuel_total "))
        .expect("fuel")
        .parse()
        .expect("number");
    assert!(fuel > 0);
});

on_both_backends!(
    webhooks_are_signed_retried_in_order_and_survive_a_restart,
    |c: Cohort| {
        let admin = token(&c, "root", "admin");
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
        // The receiver is on loopback: the deployment delivers inside its own network.
        let env = [
            ("COHORT_WEBHOOK_BACKOFF_INITIAL_MS", "50"),
            ("COHORT_WEBHOOK_BACKOFF_MAX_MS", "200"),
            ("COHORT_WEBHOOK_ALLOW_PRIVATE_TARGETS", "true"),
        ];
        let receiver = Receiver::start(2);
        let secret = "a-secret-of-enough-length";
        let server = Server::start(&c, &env);
        let hook = expect(
            Api::new(&server, Some(&admin)).json(
                "POST",
                "/v1/webhooks",
                &json!({"url": receiver.url, "secret": secret}),
            ),
            StatusCode::CREATED,
        );
        assert_eq!(hook["secret"], secret);
        expect(
            Api::new(&server, Some(&admin)).json(
                "POST",
                "/v1/webhooks",
                &json!({"url": "ftp://x"}),
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
        );
        let op = Api::new(&server, Some(&operator));
        for i in 0..5 {
            expect(
                op.json(
                    "POST",
                    "/v1/registrations",
                    &customer(&format!("c{i}"), "DE"),
                ),
                StatusCode::CREATED,
            );
        }
        expect(
            op.call("DELETE", "/v1/groups/de/members/c0"),
            StatusCode::OK,
        );
        let events = receiver.wait_for(secret, 6);
        assert_eq!(events.len(), 6, "{events:#?}");
        assert!(
            receiver.requests.load(Ordering::SeqCst) >= 3,
            "two failures, then success"
        );
        let kinds: Vec<(&str, &str)> = events
            .iter()
            .map(|e| {
                (
                    e["customer"].as_str().expect("c"),
                    e["event"].as_str().expect("e"),
                )
            })
            .collect();
        assert_eq!(kinds[0], ("c0", "membership.added"));
        assert_eq!(
            kinds[5],
            ("c0", "membership.removed"),
            "in order for the customer"
        );
        let ids: Vec<i64> = events
            .iter()
            .map(|e| e["id"].as_i64().expect("id"))
            .collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");

        // The receiver goes down; changes keep coming; the server restarts meanwhile.
        receiver.down.store(true, Ordering::SeqCst);
        expect(
            op.json("POST", "/v1/registrations", &customer("c5", "DE")),
            StatusCode::CREATED,
        );
        std::thread::sleep(Duration::from_millis(300));
        server.stop();
        // A change made while no server runs waits in the outbox too.
        c.ok(&["member", "add", "c0", "de", "--end", "2099-01-01T00:00:00Z"]);
        let server = Server::start(&c, &env);
        receiver.down.store(false, Ordering::SeqCst);
        let events = receiver.wait_for(secret, 8);
        let tail: Vec<(&str, &str)> = events[6..]
            .iter()
            .map(|e| {
                (
                    e["customer"].as_str().expect("c"),
                    e["event"].as_str().expect("e"),
                )
            })
            .collect();
        assert_eq!(
            tail,
            [("c5", "membership.added"), ("c0", "membership.added")]
        );
        let hooks = expect(
            Api::new(&server, Some(&admin)).get("/v1/webhooks"),
            StatusCode::OK,
        );
        assert_eq!(hooks["items"][0]["attempts"], 0);
        assert!(
            hooks["items"][0].get("secret").is_none(),
            "the secret is shown once"
        );
        let metrics = Api::new(&server, Some(&admin))
            .get("/metrics")
            .text()
            .expect("metrics");
        assert!(metrics.contains("cohort_outbox_lag_events 0"), "{metrics}");

        // A removed webhook receives nothing more.
        let id = hooks["items"][0]["id"].as_i64().expect("id");
        let admin = Api::new(&server, Some(&admin));
        let op = Api::new(&server, Some(&operator));
        let remove = |status| expect(admin.call("DELETE", &format!("/v1/webhooks/{id}")), status);
        remove(StatusCode::NO_CONTENT);
        remove(StatusCode::NOT_FOUND);
        std::thread::sleep(Duration::from_millis(800));
        expect(
            op.json("POST", "/v1/registrations", &customer("c6", "DE")),
            StatusCode::CREATED,
        );
        std::thread::sleep(Duration::from_millis(800));
        assert_eq!(receiver.events(secret).len(), 8, "nothing after removal");
    }
);

on_both_backends!(
    windows_that_open_later_are_announced_when_they_do,
    |c: Cohort| {
        let reader = token(&c, "feed", "read-only");
        c.ok(&["plugin", "add", "country"]);
        c.ok(&[
            "group",
            "save",
            &c.file(
                "g.json",
                &group("vip", "disabled", false, &["DE"]).to_string(),
            ),
        ]);
        let file = c.file("c.json", &customer("c1", "DE").to_string());
        c.ok(&["customer", "upsert", &format!("@{file}")]);
        let start = chrono::Utc::now() + chrono::Duration::seconds(2);
        c.ok(&["member", "add", "c1", "vip", "--start", &start.to_rfc3339()]);
        let server = Server::start(&c, &[]);
        let ro = Api::new(&server, Some(&reader));
        let deadline = Instant::now() + Duration::from_secs(30);
        let events = loop {
            let feed = expect(ro.get("/v1/events"), StatusCode::OK);
            let events: Vec<String> = feed["items"]
                .as_array()
                .expect("items")
                .iter()
                .map(|e| e["event"].as_str().expect("event").to_string())
                .collect();
            if events.len() >= 2 || Instant::now() > deadline {
                break events;
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        assert_eq!(events, ["membership.added", "membership.activated"]);
    }
);

/// Every response carries a request id: the client's, if usable, else a fresh one; a
/// problem names it, and so does the request's log line.
#[test]
fn every_response_carries_its_request_id() {
    let c = Cohort::new();
    let reader = token(&c, "reader", "read-only");
    let server = Server::start(&c, &[]);
    let api = Api::new(&server, Some(&reader));
    let id_of = |r: &reqwest::blocking::Response| {
        r.headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .expect("an X-Request-Id")
            .to_string()
    };
    let given = api
        .request("GET", "/v1/groups")
        .header("X-Request-Id", "client-7f3a")
        .send()
        .expect("GET");
    assert_eq!(given.status(), StatusCode::OK);
    assert_eq!(id_of(&given), "client-7f3a");

    let made = Api::new(&server, None).get("/healthz");
    let made = id_of(&made);
    assert!(
        made.len() == 32 && made.bytes().all(|b| b.is_ascii_hexdigit()),
        "{made}"
    );
    let unusable = api
        .request("GET", "/v1/groups")
        .header("X-Request-Id", "two words")
        .send()
        .expect("GET");
    assert_eq!(id_of(&unusable).len(), 32, "replaced");

    let missing = api
        .request("GET", "/v1/groups/nope")
        .header("X-Request-Id", "trace-404")
        .send()
        .expect("GET");
    assert_eq!(id_of(&missing), "trace-404");
    let (status, problem) = read(missing);
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(problem["request_id"], "trace-404", "{problem}");
    let logged = server
        .log_lines()
        .into_iter()
        .any(|l| l["fields"]["request_id"] == "trace-404" && l["fields"]["status"] == 404);
    assert!(logged, "the log line names the request id");
}

on_both_backends!(admins_manage_tokens_over_http, |c: Cohort| {
    let root = token(&c, "root", "admin");
    let server = Server::start(&c, &[]);
    let admin = Api::new(&server, Some(&root));
    let soon = |seconds: i64| {
        (chrono::Utc::now() + chrono::Duration::seconds(seconds))
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    };

    let created = expect(
        admin.json(
            "POST",
            "/v1/tokens",
            &json!({"name": "sync", "role": "operator", "expires_at": soon(3600)}),
        ),
        StatusCode::CREATED,
    );
    let secret = created["token"]
        .as_str()
        .expect("the token, once")
        .to_string();
    assert!(secret.starts_with("cohort_"), "{created}");
    assert_eq!(created["role"], "operator");
    assert!(created["expires_at"].is_string(), "{created}");
    let sync = Api::new(&server, Some(&secret));
    expect(sync.get("/v1/groups"), StatusCode::OK);
    expect(
        sync.json("POST", "/v1/tokens", &json!({"name": "x", "role": "admin"})),
        StatusCode::FORBIDDEN,
    );

    let listed = expect(admin.get("/v1/tokens"), StatusCode::OK);
    let items = listed["items"].as_array().expect("items");
    let names: Vec<&str> = items.iter().filter_map(|t| t["name"].as_str()).collect();
    assert_eq!(names, ["root", "sync"]);
    assert!(
        items
            .iter()
            .all(|t| t.get("token").is_none() && t.get("hash").is_none()),
        "{listed}"
    );

    // Refusals name the field.
    let taken = expect(
        admin.json(
            "POST",
            "/v1/tokens",
            &json!({"name": "sync", "role": "admin"}),
        ),
        StatusCode::CONFLICT,
    );
    assert_eq!(taken["field"], "name");
    let past = expect(
        admin.json(
            "POST",
            "/v1/tokens",
            &json!({"name": "old", "role": "read-only", "expires_at": "2020-01-01T00:00:00Z"}),
        ),
        StatusCode::UNPROCESSABLE_ENTITY,
    );
    assert_eq!(past["field"], "expires_at");
    expect(
        admin.json(
            "POST",
            "/v1/tokens",
            &json!({"name": "boss", "role": "owner"}),
        ),
        StatusCode::UNPROCESSABLE_ENTITY,
    );
    expect(
        admin.json("POST", "/v1/tokens", &json!({"name": " ", "role": "admin"})),
        StatusCode::UNPROCESSABLE_ENTITY,
    );

    // A retry with the same idempotency key gets the first answer without the token.
    let once = |key: &str| {
        admin
            .request("POST", "/v1/tokens")
            .header("Idempotency-Key", key)
            .json(&json!({"name": "retried", "role": "read-only"}))
            .send()
            .expect("request")
    };
    let first = expect(once("k-1"), StatusCode::CREATED);
    let again = expect(once("k-1"), StatusCode::CREATED);
    assert!(
        first["token"].is_string() && again.get("token").is_none(),
        "{again}"
    );
    assert_eq!(first["id"], again["id"]);

    // Revoked: refused from the next request on; a second revocation finds nothing.
    expect(
        admin.call("DELETE", "/v1/tokens/sync"),
        StatusCode::NO_CONTENT,
    );
    expect(sync.get("/v1/groups"), StatusCode::UNAUTHORIZED);
    expect(
        admin.call("DELETE", "/v1/tokens/sync"),
        StatusCode::NOT_FOUND,
    );

    // Expired: refused, saying so, and listed by the CLI as expired.
    let brief = expect(
        admin.json(
            "POST",
            "/v1/tokens",
            &json!({"name": "brief", "role": "read-only", "expires_at": soon(2)}),
        ),
        StatusCode::CREATED,
    );
    let brief = Api::new(&server, Some(brief["token"].as_str().expect("token")));
    expect(brief.get("/v1/groups"), StatusCode::OK);
    std::thread::sleep(Duration::from_millis(3_100));
    let refused = expect(brief.get("/v1/groups"), StatusCode::UNAUTHORIZED);
    assert!(
        refused["detail"]
            .as_str()
            .is_some_and(|d| d.contains("`brief` expired at")),
        "{refused}"
    );
    let listing = c.ok(&["token", "list"]);
    assert!(
        listing
            .lines()
            .any(|l| l.starts_with("brief") && l.contains("expired")),
        "{listing}"
    );
});

#[test]
fn the_cli_makes_a_token_that_expires_and_refuses_a_past_expiry() {
    let c = Cohort::new();
    let out = c.ok(&[
        "--json",
        "token",
        "create",
        "nightly",
        "--role",
        "read-only",
        "--expires",
        "2099-01-01T00:00:00Z",
    ]);
    let made: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(made["expires_at"], "2099-01-01T00:00:00Z");
    let listing = c.ok(&["token", "list"]);
    assert!(
        listing.contains("nightly") && listing.contains("expires 2099-01-01"),
        "{listing}"
    );
    let err = c.fails(&[
        "token",
        "create",
        "late",
        "--role",
        "admin",
        "--expires",
        "2020-01-01T00:00:00Z",
    ]);
    assert!(err.contains("not in the future"), "{err}");
}

on_both_backends!(a_stale_write_of_a_group_is_refused_with_412, |c: Cohort| {
    c.ok(&["plugin", "add", "country"]);
    let operator = token(&c, "billing", "operator");
    let server = Server::start(&c, &[]);
    let op = Api::new(&server, Some(&operator));
    let put = |body: &serde_json::Value, if_match: Option<&str>| {
        let mut r = op.request("PUT", "/v1/groups/vip").json(body);
        if let Some(tag) = if_match {
            r = r.header("If-Match", tag);
        }
        r.send().expect("put")
    };
    let mut vip = group("vip", "full-sync", false, &["DE"]);

    // A PUT with `*` needs the group to exist.
    let none = put(&vip, Some("*"));
    assert_eq!(none.status(), StatusCode::PRECONDITION_FAILED);
    let created = op.json("POST", "/v1/groups", &vip);
    assert_eq!(created.status(), StatusCode::CREATED);
    let first = tag_of(&created);
    let fetched = op.get("/v1/groups/vip");
    assert_eq!(tag_of(&fetched), first, "the tag read is the tag written");

    // Two staff members read the same version; the first to save wins.
    vip["description"] = json!("gold customers");
    let saved = put(&vip, Some(&first));
    assert_eq!(saved.status(), StatusCode::OK);
    let second = tag_of(&saved);
    assert_ne!(second, first);
    assert_eq!(tag_of(&op.get("/v1/groups/vip")), second);
    vip["description"] = json!("silver customers");
    let (status, problem) = read(put(&vip, Some(&first)));
    assert_eq!(status, StatusCode::PRECONDITION_FAILED, "{problem}");
    assert_eq!(problem["field"], "If-Match");
    let kept = expect(op.get("/v1/groups/vip"), StatusCode::OK);
    assert_eq!(kept["description"], "gold customers", "nothing was written");

    // Any of several tags, `*`, and no header at all.
    let listed = format!("\"0000\", {second}");
    assert_eq!(put(&vip, Some(&listed)).status(), StatusCode::OK);
    assert_eq!(put(&vip, Some("*")).status(), StatusCode::OK);
    assert_eq!(put(&vip, None).status(), StatusCode::OK);
    let (status, problem) = read(put(&vip, Some("not-quoted")));
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");

    // Saves racing with one tag: exactly one is written.
    let current = tag_of(&op.get("/v1/groups/vip"));
    let statuses: Vec<StatusCode> = std::thread::scope(|s| {
        let racers: Vec<_> = (0..4)
            .map(|i| {
                let mut body = vip.clone();
                body["description"] = json!(format!("racer {i}"));
                let current = current.clone();
                let put = &put;
                s.spawn(move || put(&body, Some(&current)).status())
            })
            .collect();
        racers
            .into_iter()
            .map(|r| r.join().expect("racer"))
            .collect()
    });
    assert_eq!(
        statuses.iter().filter(|s| **s == StatusCode::OK).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::PRECONDITION_FAILED)
            .count(),
        3,
        "{statuses:?}"
    );
});

on_both_backends!(
    a_stale_write_of_a_customer_is_refused_with_412,
    |c: Cohort| {
        let operator = token(&c, "billing", "operator");
        let server = Server::start(&c, &[]);
        let op = Api::new(&server, Some(&operator));
        let put = |country: &str, if_match: Option<&str>| {
            let mut r = op
                .request("PUT", "/v1/customers/C-1")
                .json(&customer("C-1", country));
            if let Some(tag) = if_match {
                r = r.header("If-Match", tag);
            }
            r.send().expect("put")
        };
        assert_eq!(
            put("DE", Some("*")).status(),
            StatusCode::PRECONDITION_FAILED,
            "If-Match needs the customer to exist"
        );
        let created = put("DE", None);
        assert_eq!(created.status(), StatusCode::CREATED);
        let first = tag_of(&created);
        assert_eq!(tag_of(&op.get("/v1/customers/C-1")), first);

        let updated = put("FR", Some(&first));
        assert_eq!(updated.status(), StatusCode::OK);
        let second = tag_of(&updated);
        assert_ne!(second, first);
        assert_eq!(tag_of(&op.get("/v1/customers/C-1")), second);
        let (status, problem) = read(put("SE", Some(&first)));
        assert_eq!(status, StatusCode::PRECONDITION_FAILED, "{problem}");
        let kept = expect(op.get("/v1/customers/C-1"), StatusCode::OK);
        assert_eq!(kept["customer"]["country"], "FR", "nothing was written");
    }
);

#[test]
fn a_token_past_its_rate_gets_429_with_retry_after_and_others_go_on() {
    let c = Cohort::new();
    let busy = token(&c, "busy", "read-only");
    let calm = token(&c, "calm", "read-only");
    let server = Server::start(
        &c,
        &[
            ("COHORT_RATE_LIMIT_PER_SECOND", "1"),
            ("COHORT_RATE_LIMIT_BURST", "3"),
        ],
    );
    let busy = Api::new(&server, Some(&busy));
    let calm = Api::new(&server, Some(&calm));
    for _ in 0..3 {
        expect(busy.get("/v1/groups"), StatusCode::OK);
    }
    let refused = busy.get("/v1/groups");
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = refused
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in seconds");
    assert!((1..=2).contains(&wait), "{wait}");
    let (_, problem) = read(refused);
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("`busy`")),
        "{problem}"
    );
    expect(calm.get("/v1/groups"), StatusCode::OK);
    std::thread::sleep(Duration::from_secs(wait));
    expect(busy.get("/v1/groups"), StatusCode::OK);
    // Without a limit (the default), nothing is refused.
    let open = Server::start(&c, &[]);
    let any = Api::new(&open, Some(&token(&c, "any", "read-only")));
    for _ in 0..20 {
        expect(any.get("/v1/groups"), StatusCode::OK);
    }
}
