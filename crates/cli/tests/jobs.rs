//! Runs as jobs over HTTP, against the real binary: started at once, followed, paged,
//! cancelled.

mod common;

use std::time::{Duration, Instant};

use common::Cohort;
use common::http::{Api, Server, expect, group, read, token};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// `n` customers, every second one in Germany.
fn customers(c: &Cohort, n: usize) {
    let lines: String = (0..n)
        .map(|i| {
            let country = if i % 2 == 0 { "DE" } else { "FR" };
            format!("{{\"id\":\"c{i:06}\",\"country\":\"{country}\"}}\n")
        })
        .collect();
    c.ok(&["customer", "load", &c.file("customers.jsonl", &lines)]);
}

/// Read the run at `location` until it is no longer running.
fn ended(api: &Api, location: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let state = expect(api.get(location), StatusCode::OK);
        if state["run"]["status"] != "running" {
            assert!(state["progress"].is_null(), "{state}");
            return state["run"].clone();
        }
        assert!(Instant::now() < deadline, "the run never ended: {state}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Start a run of `de`; its `Location` and the run as recorded.
fn start(api: &Api, body: Value) -> (String, Value) {
    let r = api.json("POST", "/v1/groups/de/runs", &body);
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let location = r
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .expect("Location")
        .to_string();
    let run: Value = r.json().expect("the run");
    assert_eq!(location, format!("/v1/runs/{}", run["id"]));
    assert_eq!(run["status"], "running");
    (location, run)
}

on_both_backends!(
    runs_start_at_once_and_are_followed_paged_and_cancelled,
    |c: Cohort| {
        let operator = token(&c, "billing", "operator");
        c.ok(&["plugin", "add", "country"]);
        c.ok(&[
            "group",
            "save",
            &c.file(
                "g.json",
                &group("de", "full-sync", false, &["DE"]).to_string(),
            ),
        ]);
        customers(&c, 2_500);
        let server = Server::start(&c, &[]);
        let op = Api::new(&server, Some(&operator));

        // A dry run: its changes are paged once it has ended, and nothing was written.
        let (location, _) = start(&op, json!({"dry_run": true}));
        let dry = ended(&op, &location);
        assert_eq!(
            (dry["status"].clone(), dry["added"].clone()),
            (json!("finished"), json!(1250))
        );
        let mut seen = Vec::new();
        let mut after = String::from("0");
        loop {
            let page = expect(
                op.get(&format!("{location}/changes?limit=500&after={after}")),
                StatusCode::OK,
            );
            seen.extend(page["items"].as_array().expect("items").iter().cloned());
            match page["next"].as_str() {
                Some(next) => after = next.to_string(),
                None => break,
            }
        }
        assert_eq!(seen.len(), 1250);
        assert!(seen.iter().all(|ch| ch["change"] == "add"));
        assert_eq!(seen[0]["customer"], "c000000");
        assert!(
            c.members("de", false).is_empty(),
            "a dry run writes nothing"
        );

        // A run: it writes once ended, and its changes are in the history, not kept.
        let (location, _) = start(&op, json!({}));
        let run = ended(&op, &location);
        assert_eq!(
            (run["status"].clone(), run["added"].clone()),
            (json!("finished"), json!(1250))
        );
        assert_eq!(run["actor"], "billing");
        assert_eq!(c.members("de", false).len(), 1250);
        let (status, problem) = read(op.get(&format!("{location}/changes")));
        assert_eq!(status, StatusCode::NOT_FOUND, "{problem}");
        let (status, problem) = read(op.call("POST", &format!("{location}/cancel")));
        assert_eq!(status, StatusCode::CONFLICT, "{problem}");
        assert!(
            problem["detail"]
                .as_str()
                .expect("detail")
                .contains("ended finished")
        );
        expect(op.get("/v1/runs/999999"), StatusCode::NOT_FOUND);

        // A long run, cancelled as it goes: it says how far it has come, then ends
        // `cancelled`, naming who.
        customers(&c, 150_000);
        let (location, _) = start(&op, json!({"as_of": "2030-01-01T00:00:00Z"}));
        let state = expect(op.get(&location), StatusCode::OK);
        assert_eq!(state["run"]["status"], "running", "{state}");
        let unit = state["progress"]["unit"]
            .as_str()
            .expect("progress while it runs");
        assert!(unit == "customers" || unit == "ranges", "{state}");
        let (status, cancelled) = read(op.call("POST", &format!("{location}/cancel")));
        assert!(
            status == StatusCode::ACCEPTED || status == StatusCode::OK,
            "{status} {cancelled}"
        );
        let run = ended(&op, &location);
        assert_eq!(run["status"], "cancelled", "{run}");
        assert!(
            run["error"]
                .as_str()
                .expect("why")
                .contains("cancelled by billing"),
            "{run}"
        );
        // What it applied is what its record says: nothing on the embedded store,
        // where a run is one transaction; the ranges committed before the cancel on
        // PostgreSQL.
        let added = run["added"].as_u64().expect("added") as usize;
        assert_eq!(c.members("de", false).len(), 1250 + added, "{run}");
        if !c.db.to_string_lossy().starts_with("postgres") {
            assert_eq!(added, 0, "{run}");
        }
    }
);
