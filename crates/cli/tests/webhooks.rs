//! Managing webhooks over HTTP against the real binary and a real receiver: kinds of
//! event, test deliveries, the delivery log, pausing, delivering again, rotating the
//! secret, concurrency control, and what an event carries.

mod common;

use std::time::{Duration, Instant};

use common::Cohort;
use common::http::{Api, Server, expect, read, tag_of, token};
use common::receiver::Receiver;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Wait until `check` holds of what the receiver got (`secret`'s deliveries), or fail
/// saying `what`.
fn until(receiver: &Receiver, secret: &str, what: &str, check: impl Fn(&[Value]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check(&receiver.bodies(secret)) {
        assert!(Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Wait until the receiver has accepted `count` deliveries, or fail saying `what`.
fn arrived(receiver: &Receiver, count: usize, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while receiver.signatures().len() < count {
        assert!(Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Run `examples/webhooks/verify.py` and `verify.mjs` on a delivery: whether each
/// found it `genuine` with `secret`.
fn verify_examples(signature: &str, body: &[u8], secret: &str, genuine: bool) {
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/webhooks");
    for (program, file) in [("python3", "verify.py"), ("node", "verify.mjs")] {
        let mut child = std::process::Command::new(program)
            .arg(format!("{examples}/{file}"))
            .env("COHORT_SECRET", secret)
            .env("COHORT_SIGNATURE", signature)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{program} runs: {e}"));
        std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), body).expect("body");
        let out = child.wait_with_output().expect("verified");
        assert_eq!(
            out.status.success(),
            genuine,
            "{file}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn events(receiver: &Receiver, secret: &str) -> Vec<Value> {
    receiver.events(secret)
}

/// Add `c1` to `vip` by hand and remove it again: an added and a removed event.
fn churn(c: &Cohort) {
    c.ok(&["member", "add", "c1", "vip"]);
    c.ok(&["member", "remove", "c1", "vip"]);
}

on_both_backends!(an_admin_manages_a_webhook, |c: Cohort| {
    let admin = token(&c, "root", "admin");
    c.ok(&["customer", "upsert", r#"{"id": "c1", "country": "DE"}"#]);
    c.ok(&[
        "group",
        "save",
        &c.file("vip.json", r#"{"id": "vip", "name": "VIP"}"#),
    ]);
    let env = [
        ("COHORT_WEBHOOK_BACKOFF_INITIAL_MS", "50"),
        ("COHORT_WEBHOOK_BACKOFF_MAX_MS", "200"),
        ("COHORT_WEBHOOK_ALLOW_PRIVATE_TARGETS", "true"),
    ];
    let receiver = Receiver::start(0);
    let server = Server::start(&c, &env);
    let api = Api::new(&server, Some(&admin));

    // Kinds of event are named as the feed names them.
    let (status, problem) = read(api.json(
        "POST",
        "/v1/webhooks",
        &json!({"url": receiver.url, "events": ["membership.added", "membership.deleted"]}),
    ));
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["field"], "events/1", "{problem}");
    let secret = "the-first-secret-of-enough-length";
    let hook = expect(
        api.json(
            "POST",
            "/v1/webhooks",
            &json!({"url": receiver.url, "secret": secret,
                    "events": ["membership.removed", "customer.erased"]}),
        ),
        StatusCode::CREATED,
    );
    let id = hook["id"].as_i64().expect("id");
    let path = format!("/v1/webhooks/{id}");
    assert_eq!(
        hook["events"],
        json!(["membership.removed", "customer.erased"])
    );
    assert_eq!(hook["paused"], false);

    // A test delivery: signed, no events, answered with how it went, and logged.
    let ping = expect(api.call("POST", &format!("{path}/ping")), StatusCode::OK);
    assert_eq!(
        (ping["ping"].clone(), ping["status"].clone()),
        (json!(true), json!(200))
    );
    assert!(ping["error"].is_null(), "{ping}");
    let bodies = receiver.bodies(secret);
    assert_eq!(bodies.len(), 1);
    assert_eq!(
        (bodies[0]["ping"].clone(), bodies[0]["events"].clone()),
        (json!(true), json!([]))
    );

    // Only the kinds it chose: the removal, not the addition.
    churn(&c);
    until(&receiver, secret, "the removal arrives", |b| b.len() == 2);
    let got = events(&receiver, secret);
    assert_eq!(got.len(), 1, "{got:?}");
    let removed = &got[0];
    assert_eq!(removed["event"], "membership.removed");
    assert_eq!(removed["schema"], 2);
    let snapshot = &removed["snapshot"];
    assert_eq!(snapshot["source"], "manual", "{removed}");
    assert_eq!(snapshot["state"], "expired", "{removed}");
    assert!(
        snapshot["start"].is_string() && snapshot["end"].is_string(),
        "{removed}"
    );

    // The log, newest first: the delivery, then the ping.
    let log = expect(api.get(&format!("{path}/deliveries")), StatusCode::OK);
    let log = log["items"].as_array().expect("items").clone();
    assert_eq!(log.len(), 2, "{log:?}");
    assert_eq!(
        (log[0]["ping"].clone(), log[0]["events"].clone()),
        (json!(false), json!(1))
    );
    assert_eq!(log[0]["status"], 200);
    assert!(log[0]["latency_ms"].is_u64());
    assert_eq!(log[1]["ping"], true);

    // Settings change only while the webhook is as read.
    let first = tag_of(&api.get(&path));
    let pause = json!({"url": receiver.url, "events": ["membership.removed", "customer.erased"],
                       "paused": true});
    let paused = api
        .request("PUT", &path)
        .header("If-Match", &first)
        .json(&pause)
        .send()
        .expect("put");
    assert_eq!(paused.status(), StatusCode::OK);
    let second = tag_of(&paused);
    assert_ne!(second, first);
    let stale = api
        .request("PUT", &path)
        .header("If-Match", &first)
        .json(&pause)
        .send()
        .expect("put");
    assert_eq!(stale.status(), StatusCode::PRECONDITION_FAILED);

    // Paused, nothing arrives; resumed, what was written meanwhile does.
    churn(&c);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(events(&receiver, secret).len(), 1, "nothing while paused");
    let mut resume = pause.clone();
    resume["paused"] = json!(false);
    let resumed = api
        .request("PUT", &path)
        .header("If-Match", &second)
        .json(&resume)
        .send()
        .expect("put");
    assert_eq!(resumed.status(), StatusCode::OK);
    until(&receiver, secret, "the paused removal arrives", |_| {
        events(&receiver, secret).len() == 2
    });

    // Deliver again from the start: both removals come again, in order.
    let (status, problem) = read(api.json(
        "POST",
        &format!("{path}/redeliver"),
        &json!({"after": 1_000_000}),
    ));
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    expect(
        api.json("POST", &format!("{path}/redeliver"), &json!({"after": 0})),
        StatusCode::OK,
    );
    until(&receiver, secret, "the redelivery", |_| {
        events(&receiver, secret).len() == 4
    });
    let ids: Vec<i64> = events(&receiver, secret)
        .iter()
        .map(|e| e["id"].as_i64().expect("id"))
        .collect();
    assert_eq!(&ids[..2], &ids[2..], "the same events again");

    // A rotated secret: during the overlap a delivery verifies with either secret.
    let rotated = expect(
        api.json(
            "POST",
            &format!("{path}/rotate"),
            &json!({"overlap_seconds": 3600}),
        ),
        StatusCode::OK,
    );
    let new_secret = rotated["secret"]
        .as_str()
        .expect("the new secret")
        .to_string();
    assert_ne!(new_secret, secret);
    assert!(rotated["previous_secret_until"].is_string(), "{rotated}");
    let (status, problem) = read(api.json(
        "POST",
        &format!("{path}/rotate"),
        &json!({"overlap_seconds": 999_999}),
    ));
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    let before = receiver.signatures().len();
    churn(&c);
    arrived(&receiver, before + 1, "a delivery after the rotation");
    let last = receiver.signatures().last().cloned().expect("signature");
    assert_eq!(last.matches("v1=").count(), 2, "{last}");
    assert_eq!(
        receiver.signed_by(&new_secret).last(),
        Some(&true),
        "{last}"
    );
    assert_eq!(receiver.signed_by(secret).last(), Some(&true), "{last}");
    assert!(
        !receiver.signed_by(&new_secret)[0],
        "the earlier ones had the old only"
    );
    // The verification examples of the documentation accept it with either secret.
    let (signature, body) = receiver.last().expect("delivery");
    for key in [secret, new_secret.as_str()] {
        verify_examples(&signature, &body, key, true);
    }
    verify_examples(&signature, &body, "a-secret-of-no-one", false);

    // An erasure is delivered too, of no group.
    c.ok(&["customer", "delete", "c1"]);
    arrived(&receiver, before + 2, "the erasure");
    let body = receiver.bodies(secret).pop().expect("body");
    let erased = &body["events"][0];
    assert_eq!(erased["event"], "customer.erased", "{body}");
    assert!(
        erased["group"].is_null() && erased["snapshot"].is_null(),
        "{erased}"
    );

    expect(api.call("DELETE", &path), StatusCode::NO_CONTENT);
    expect(
        api.get(&format!("{path}/deliveries")),
        StatusCode::NOT_FOUND,
    );
});
