//! The HTTP API against callers who push it: bodies it must not buffer, idempotency
//! keys replayed, reused and inherited, webhook targets inside the server's network.

mod common;

use std::io::Read;

use common::Cohort;
use common::http::{Api, Server, expect, token};
use reqwest::StatusCode;
use serde_json::json;

/// `len` bytes of JSON-ish filler, made as they are sent.
struct Filler {
    left: u64,
}

impl Read for Filler {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (buf.len() as u64).min(self.left) as usize;
        buf[..n].fill(b' ');
        self.left -= n as u64;
        Ok(n)
    }
}

/// The most memory the process has held, in bytes.
fn peak_memory(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM");
    kib << 10
}

#[test]
fn a_large_body_is_refused_before_it_is_buffered() {
    let c = Cohort::new();
    let reader = token(&c, "reader", "read-only");
    let operator = token(&c, "operator", "operator");
    let server = Server::start(&c, &[]);
    let before = peak_memory(server.pid());
    const BODY: u64 = 200 << 20;
    for (who, path, refused) in [
        // The role is checked first: a read-only token may not create groups.
        (&reader, "/v1/groups", StatusCode::FORBIDDEN),
        // A group is JSON, limited to 1 MiB, not to the 256 MiB of uploads.
        (&operator, "/v1/groups", StatusCode::PAYLOAD_TOO_LARGE),
    ] {
        let api = Api::new(&server, Some(who));
        let sent = api
            .request("POST", path)
            .header("content-type", "application/json")
            .header("idempotency-key", "big")
            .body(reqwest::blocking::Body::sized(Filler { left: BODY }, BODY))
            .send();
        // The server may answer and close before the client has sent it all.
        if let Ok(response) = sent {
            assert_eq!(response.status(), refused, "{path} as {who}");
        }
    }
    let grew = peak_memory(server.pid()).saturating_sub(before);
    assert!(
        grew < 32 << 20,
        "the server's peak memory grew by {} MiB for bodies it refused",
        grew >> 20
    );
}

#[test]
fn idempotency_keys_replay_without_secrets_ignore_spacing_and_belong_to_one_token() {
    let c = Cohort::new();
    let admin = token(&c, "platform", "admin");
    let server = Server::start(&c, &[("COHORT_WEBHOOK_ALLOW_PRIVATE_TARGETS", "true")]);
    let api = Api::new(&server, Some(&admin));
    let post = |key: &str, body: &str| {
        api.request("POST", "/v1/webhooks")
            .header("content-type", "application/json")
            .header("idempotency-key", key)
            .body(body.to_string())
            .send()
            .expect("send")
    };

    let body = r#"{"url":"http://127.0.0.1:9/hook"}"#;
    let first = expect(post("w-1", body), StatusCode::CREATED);
    assert!(
        first["secret"].is_string(),
        "the secret is shown once: {first}"
    );
    let again = post("w-1", body);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let again = expect(again, StatusCode::CREATED);
    assert_eq!(again["id"], first["id"], "the same webhook");
    assert!(
        again.get("secret").is_none(),
        "and not its secret again: {again}"
    );

    // The same JSON, spaced and ordered otherwise, is the same request.
    let spaced = "{\n  \"url\" : \"http://127.0.0.1:9/hook\"\n}";
    let replayed = post("w-1", spaced);
    assert_eq!(replayed.headers()["idempotent-replayed"], "true");
    // Another request under the key is refused.
    expect(
        post("w-1", r#"{"url":"http://127.0.0.1:9/other"}"#),
        StatusCode::UNPROCESSABLE_ENTITY,
    );

    // A POST without a body is answered once too.
    let standard = |key: &str| {
        api.request("POST", "/v1/plugins/standard")
            .header("idempotency-key", key)
            .send()
            .expect("send")
    };
    assert!(
        standard("std")
            .headers()
            .get("idempotent-replayed")
            .is_none()
    );
    let again = standard("std");
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    expect(again, StatusCode::CREATED);

    // A new token under a revoked one's name starts with no keys.
    c.ok(&["token", "revoke", "platform"]);
    let successor = token(&c, "platform", "admin");
    let api = Api::new(&server, Some(&successor));
    let fresh = api
        .request("POST", "/v1/webhooks")
        .header("content-type", "application/json")
        .header("idempotency-key", "w-1")
        .body(r#"{"url":"http://127.0.0.1:9/other"}"#)
        .send()
        .expect("send");
    assert!(fresh.headers().get("idempotent-replayed").is_none());
    let fresh = expect(fresh, StatusCode::CREATED);
    assert_ne!(fresh["id"], first["id"]);
}

#[test]
fn webhook_targets_inside_the_network_are_refused_unless_allowed() {
    let c = Cohort::new();
    let admin = token(&c, "platform", "admin");
    let server = Server::start(&c, &[]);
    let api = Api::new(&server, Some(&admin));
    for url in [
        "http://127.0.0.1:8080/hook",
        "http://2130706433/hook",
        "http://0x7f.1/hook",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://0.0.0.0/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://172.16.5.4/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[fe80::1]/hook",
        "http://[fd00::1]/hook",
        "http://localhost:8080/hook",
    ] {
        let refused = expect(
            api.json("POST", "/v1/webhooks", &json!({ "url": url })),
            StatusCode::UNPROCESSABLE_ENTITY,
        );
        assert_eq!(refused["field"], "url", "{url}: {refused}");
    }
    let with_password = expect(
        api.json(
            "POST",
            "/v1/webhooks",
            &json!({ "url": "https://user:hunter2@hooks.example.com/x" }),
        ),
        StatusCode::UNPROCESSABLE_ENTITY,
    );
    assert!(
        !with_password.to_string().contains("hunter2"),
        "credentials are never echoed: {with_password}"
    );
    // A public address is fine (delivery to it is not attempted here).
    expect(
        api.json(
            "POST",
            "/v1/webhooks",
            &json!({ "url": "https://hooks.example.com/cohort" }),
        ),
        StatusCode::CREATED,
    );
    let listed = expect(api.get("/v1/webhooks"), StatusCode::OK);
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(1));
}

#[test]
fn a_data_directory_granted_over_the_api_must_lie_inside_the_data_root() {
    let c = Cohort::new();
    let admin = token(&c, "platform", "admin");
    let root = c.dir.join("data");
    let geoip = root.join("geoip");
    std::fs::create_dir_all(&geoip).expect("mkdir");
    let refused = |server: &Server, dir: &str| {
        let api = Api::new(server, Some(&admin));
        let p = expect(
            api.call("POST", &format!("/v1/plugins/standard?geoip_dir={dir}")),
            StatusCode::UNPROCESSABLE_ENTITY,
        );
        assert_eq!(p["field"], "geoip_dir", "{p}");
    };
    {
        let server = Server::start(&c, &[]);
        refused(&server, "/");
        refused(&server, &geoip.display().to_string());
    }
    let server = Server::start(&c, &[("COHORT_DATA_ROOT", &root.display().to_string())]);
    refused(&server, "/");
    refused(&server, &format!("{}/../..", geoip.display()));
    let api = Api::new(&server, Some(&admin));
    expect(
        api.call(
            "POST",
            &format!("/v1/plugins/standard?geoip_dir={}", geoip.display()),
        ),
        StatusCode::CREATED,
    );
}

#[test]
fn the_bearer_scheme_is_case_insensitive_and_times_are_rfc3339() {
    let c = Cohort::new();
    let admin = token(&c, "platform", "admin");
    let server = Server::start(&c, &[]);
    for scheme in ["bearer", "BEARER", "Bearer"] {
        let response = reqwest::blocking::Client::new()
            .get(format!("{}/v1/webhooks", server.base))
            .header("authorization", format!("{scheme} {admin}"))
            .send()
            .expect("send");
        assert_eq!(response.status(), StatusCode::OK, "{scheme}");
    }
    let api = Api::new(&server, Some(&admin));
    let hook = expect(
        api.json(
            "POST",
            "/v1/webhooks",
            &json!({ "url": "https://hooks.example.com/cohort" }),
        ),
        StatusCode::CREATED,
    );
    let created = hook["created_at"].as_str().expect("a time is text");
    assert!(
        chrono::DateTime::parse_from_rfc3339(created).is_ok(),
        "`{created}` is RFC 3339"
    );
}
