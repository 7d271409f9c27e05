//! Several `cohort serve` on one PostgreSQL database behave as one: a schedule runs
//! once per time it comes due, each event reaches a webhook once and in order, and
//! delivery resumes on another server when the one delivering dies.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::Cohort;
use common::http::{Api, Server, customer, expect, group, token};
use common::receiver::Receiver;
use reqwest::StatusCode;
use serde_json::json;

/// The country plugin and a group `de` that takes German customers as they register.
fn on_registration_group(c: &Cohort) {
    c.ok(&["plugin", "add", "country"]);
    let de = group("de", "full-sync", true, &["DE"]);
    c.ok(&["group", "save", &c.file("de.json", &de.to_string())]);
}

#[test]
fn two_servers_on_one_database_act_as_one() {
    let c = Cohort::on_postgresql();
    let admin = token(&c, "root", "admin");
    let operator = token(&c, "billing", "operator");
    on_registration_group(&c);
    // Due every second, on both servers' clocks.
    let mut nightly = group("every-second", "full-sync", false, &["DE"]);
    nightly["auto"]["triggers"]["schedule"] = json!({"cron": "* * * * * *", "time_zone": "UTC"});
    c.ok(&["group", "save", &c.file("s.json", &nightly.to_string())]);

    let env = [
        ("COHORT_WEBHOOK_ALLOW_PRIVATE_TARGETS", "true"),
        ("COHORT_WEBHOOK_LEASE_SECONDS", "2"),
        ("COHORT_WEBHOOK_BACKOFF_INITIAL_MS", "50"),
    ];
    let (a, b) = (Server::start(&c, &env), Server::start(&c, &env));
    let receiver = Receiver::start(0);
    let secret = "a-secret-of-enough-length";
    expect(
        Api::new(&a, Some(&admin)).json(
            "POST",
            "/v1/webhooks",
            &json!({"url": receiver.url, "secret": secret}),
        ),
        StatusCode::CREATED,
    );
    // Registrations through both servers at once.
    std::thread::scope(|scope| {
        for (server, prefix) in [(&a, "a"), (&b, "b")] {
            let operator = &operator;
            scope.spawn(move || {
                let api = Api::new(server, Some(operator));
                for i in 0..10 {
                    let id = format!("{prefix}{i}");
                    expect(
                        api.json("POST", "/v1/registrations", &customer(&id, "DE")),
                        StatusCode::CREATED,
                    );
                }
            });
        }
    });
    let events = receiver.wait_for(secret, 20);
    let ids: Vec<i64> = events
        .iter()
        .map(|e| e["id"].as_i64().expect("id"))
        .collect();
    let added: Vec<&str> = events
        .iter()
        .filter(|e| e["group"] == "de")
        .map(|e| e["customer"].as_str().expect("customer"))
        .collect();
    assert_eq!(
        added.len(),
        20,
        "each registration's event once: {events:#?}"
    );
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "in order, none twice: {ids:?}"
    );

    // The server delivering dies; the other takes over once its lease runs out.
    let delivered_before = receiver.requests.load(std::sync::atomic::Ordering::SeqCst);
    let mut db = postgres::Client::connect(&c.db.to_string_lossy(), postgres::NoTls)
        .expect("the store's database");
    let holder: String = db
        .query_one("SELECT lease_holder FROM webhooks", &[])
        .expect("the webhook's lease")
        .get(0);
    let (dying, survivor) = if holder.contains(&format!(":{}:", a.pid())) {
        (a, b)
    } else {
        assert!(holder.contains(&format!(":{}:", b.pid())), "{holder}");
        (b, a)
    };
    dying.kill();
    let b = survivor;
    let api = Api::new(&b, Some(&operator));
    expect(
        api.json("POST", "/v1/registrations", &customer("late", "DE")),
        StatusCode::CREATED,
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while !receiver
        .events(secret)
        .iter()
        .any(|e| e["customer"] == "late")
    {
        assert!(
            Instant::now() < deadline,
            "no server resumed delivery ({delivered_before} requests before)"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let all = receiver.events(secret);
    let ids: Vec<i64> = all.iter().map(|e| e["id"].as_i64().expect("id")).collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "in order, none twice: {ids:?}"
    );
    let feed = expect(
        Api::new(&b, Some(&admin)).get("/v1/events?limit=1000"),
        StatusCode::OK,
    );
    let in_feed: Vec<i64> = feed["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| e["id"].as_i64().expect("id"))
        .collect();
    assert_eq!(ids, in_feed, "every event of the feed reached the webhook");

    // The schedule: both servers' clocks saw it due every second; each second it ran
    // once.
    let deadline = Instant::now() + Duration::from_secs(30);
    let per_second = loop {
        let runs = expect(
            Api::new(&b, Some(&admin)).get("/v1/runs?group=every-second&limit=100"),
            StatusCode::OK,
        );
        let mut per_second: BTreeMap<String, usize> = BTreeMap::new();
        for run in runs["items"].as_array().expect("items") {
            assert_eq!(run["trigger"], "periodic");
            *per_second
                .entry(run["started_at"].as_str().expect("started").to_string())
                .or_default() += 1;
        }
        if per_second.len() >= 3 || Instant::now() > deadline {
            break per_second;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(per_second.len() >= 3, "it ran: {per_second:?}");
    assert!(
        per_second.values().all(|&n| n == 1),
        "once per time it came due: {per_second:?}"
    );
}

// Schedulers started at the same moment on one store (servers' clocks ticking together)
// all find the group due; one runs each time it is due, and none fails.
on_both_backends!(
    a_schedule_due_for_several_schedulers_runs_once,
    |c: Cohort| {
        c.ok(&["plugin", "add", "country"]);
        let mut every_second = group("every-second", "full-sync", false, &["DE"]);
        every_second["auto"]["triggers"]["schedule"] =
            json!({"cron": "* * * * * *", "time_zone": "UTC"});
        c.ok(&[
            "group",
            "save",
            &c.file("s.json", &every_second.to_string()),
        ]);
        std::thread::sleep(Duration::from_millis(1_100));
        let schedulers: Vec<_> = (0..4)
            .map(|_| {
                c.command(&["scheduler", "--once"])
                    .stdout(std::process::Stdio::null())
                    .spawn()
                    .expect("a scheduler starts")
            })
            .collect();
        for mut s in schedulers {
            assert!(s.wait().expect("it ends").success());
        }
        let runs: Vec<serde_json::Value> =
            serde_json::from_str(&c.ok(&["--json", "runs", "--group", "every-second"]))
                .expect("JSON");
        // On a loaded machine the schedulers start seconds apart, and a later second
        // is a new time the schedule is due: what must hold is that no time runs twice.
        let mut times: Vec<&str> = runs.iter().filter_map(|r| r["as_of"].as_str()).collect();
        assert!(!times.is_empty(), "it ran");
        times.sort_unstable();
        let all = times.len();
        times.dedup();
        assert_eq!(times.len(), all, "one run per time it came due: {runs:#?}");
    }
);

/// A database that cannot be reached, or is not there: the error names the host and the
/// database, never the password, and the command fails.
#[test]
fn an_unreachable_database_is_named_without_its_password() {
    let server = cohort_store_postgres::scratch::server();
    let missing = format!(
        "{}/no_such_database",
        server.rsplit_once('/').expect("a URL with a database").0
    );
    for (db, named) in [
        (
            "postgres://cohort:s3cret@127.0.0.1:1/billing".to_string(),
            "postgres://cohort@127.0.0.1:1/billing",
        ),
        (missing.clone(), "no_such_database"),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_cohort"))
            .args(["--db", &db, "group", "list"])
            .output()
            .expect("cohort runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(named), "{stderr}");
        assert!(!stderr.contains("s3cret"), "{stderr}");
    }
}

/// A server stopped cleanly gives up its webhook's lease: the other server delivers the
/// next event at once, long before the lease would have lapsed.
#[test]
fn a_server_stopped_cleanly_hands_its_webhook_over_at_once() {
    let c = Cohort::on_postgresql();
    let operator = token(&c, "billing", "operator");
    let admin = token(&c, "root", "admin");
    on_registration_group(&c);
    let env = [
        ("COHORT_WEBHOOK_ALLOW_PRIVATE_TARGETS", "true"),
        // Far longer than the test waits: only a lease given up explains a handover.
        ("COHORT_WEBHOOK_LEASE_SECONDS", "600"),
        ("COHORT_WEBHOOK_BACKOFF_INITIAL_MS", "50"),
    ];
    let a = Server::start(&c, &env);
    let receiver = Receiver::start(0);
    let secret = "a-secret-of-enough-length";
    expect(
        Api::new(&a, Some(&admin)).json(
            "POST",
            "/v1/webhooks",
            &json!({"url": receiver.url, "secret": secret}),
        ),
        StatusCode::CREATED,
    );
    expect(
        Api::new(&a, Some(&operator)).json("POST", "/v1/registrations", &customer("first", "DE")),
        StatusCode::CREATED,
    );
    receiver.wait_for(secret, 1);
    let b = Server::start(&c, &env);
    a.stop();
    expect(
        Api::new(&b, Some(&operator)).json("POST", "/v1/registrations", &customer("second", "DE")),
        StatusCode::CREATED,
    );
    // Waits a minute at most, a tenth of the lease.
    let events = receiver.wait_for(secret, 2);
    assert_eq!(
        events.len(),
        2,
        "the other server took the webhook over: {events:#?}"
    );
    assert_eq!(events[1]["customer"], "second", "{events:#?}");
}
