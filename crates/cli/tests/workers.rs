//! Workers on PostgreSQL: a scan carried out by three `cohort worker` processes, killed
//! (SIGKILL) and restarted at random moments, ends with the memberships, audit entries
//! and events of the same scan run by one process, and a feed with no position
//! missing.

mod common;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::Cohort;
use common::http::group;
use serde_json::json;

const CUSTOMERS: usize = 12_000;
const AS_OF: &str = "2026-06-01T00:00:00Z";

/// The same platform on every store: groups outside and inside an exclusive set, and
/// memberships by hand for the rules to keep or end.
fn platform(c: &Cohort) {
    c.ok(&["plugin", "add", "country"]);
    let mut groups = vec![
        group("de", "full-sync", false, &["DE"]),
        group("eu", "add-only", false, &["DE", "FR"]),
        group("gold", "full-sync", false, &["DE"]),
        group("silver", "full-sync", false, &["DE", "FR", "US"]),
    ];
    groups[2]["exclusive"] = json!({"set": "tier", "priority": 1});
    groups[3]["exclusive"] = json!({"set": "tier", "priority": 2});
    for g in &groups {
        let id = g["id"].as_str().expect("id");
        c.ok(&[
            "group",
            "save",
            &c.file(&format!("{id}.json"), &g.to_string()),
        ]);
    }
    let lines: Vec<String> = (0..CUSTOMERS)
        .map(|i| {
            let country = ["DE", "FR", "US", "NL"][(i * 7 + i / 5) % 4];
            json!({"id": format!("c{i:05}"), "country": country}).to_string()
        })
        .collect();
    c.ok(&["customer", "load", &c.file("c.jsonl", &lines.join("\n"))]);
    for i in (0..CUSTOMERS).step_by(1_000) {
        let customer = format!("c{i:05}");
        c.ok(&[
            "member",
            "add",
            &customer,
            "de",
            "--start",
            "2026-01-01T00:00:00Z",
        ]);
    }
}

/// What a scan leaves in the store, comparable across stores: the memberships, audit
/// entries and events without ids or the times of writing; and the feed's positions.
#[derive(Debug, PartialEq)]
struct Outcome {
    memberships: Vec<String>,
    audit: Vec<String>,
    events: Vec<String>,
}

/// How many of the store's ranges were taken more than once.
fn redone(c: &Cohort) -> i64 {
    let url = c.db.to_string_lossy();
    let mut db = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
    db.query_one("SELECT count(*) FROM scan_ranges WHERE attempts > 1", &[])
        .expect("ranges")
        .get(0)
}

fn outcome(c: &Cohort) -> (Outcome, Vec<i64>) {
    let url = c.db.to_string_lossy();
    let mut db = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
    let mut rows = |sql: &str| -> Vec<String> {
        let mut out: Vec<String> = db
            .query(sql, &[])
            .expect(sql)
            .iter()
            .map(|r| r.get::<_, String>(0))
            .collect();
        out.sort();
        out
    };
    let outcome = Outcome {
        memberships: rows(
            "SELECT concat_ws(' ', customer, grp, source, actor, reason, starts, ends)
             FROM memberships",
        ),
        audit: rows(
            "SELECT concat_ws(' ', customer, grp, action, source, actor, trigger, reason)
             FROM audit",
        ),
        events: rows(
            "SELECT concat_ws(' ', kind, customer, grp, trigger, actor, reason) FROM outbox",
        ),
    };
    let positions: Vec<i64> = db
        .query("SELECT id FROM outbox ORDER BY id", &[])
        .expect("positions")
        .iter()
        .map(|r| r.get(0))
        .collect();
    (outcome, positions)
}

/// A small generator of its own: the trial's seed is printed, to replay a failure.
struct Random(u64);

impl Random {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn worker(c: &Cohort, name: &str) -> Child {
    c.command(&["worker", "--name", name, "--poll", "0.05", "--lease", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("worker starts")
}

fn scan_status(c: &Cohort, id: &str) -> String {
    let scan: serde_json::Value =
        serde_json::from_str(&c.ok(&["--json", "scan", id])).expect("JSON");
    scan["status"].as_str().expect("status").to_string()
}

#[test]
fn workers_killed_at_random_lose_nothing_and_double_nothing() {
    // One process carries out the whole scan: what the workers must match.
    let alone = Cohort::on_postgresql();
    platform(&alone);
    alone.ok(&["run", "--all", "--as-of", AS_OF, "--range-size", "300"]);
    let (expected, positions) = outcome(&alone);
    assert!(
        expected.memberships.len() > CUSTOMERS,
        "the scan added members"
    );
    assert_eq!(positions, (1..=positions.len() as i64).collect::<Vec<_>>());

    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
        | 1;
    println!("seed {seed}");
    let mut random = Random(seed);
    let mut taken_over = 0;
    for trial in 0..3 {
        let c = Cohort::on_postgresql();
        platform(&c);
        let scan: serde_json::Value = serde_json::from_str(&c.ok(&[
            "--json",
            "run",
            "--all",
            "--as-of",
            AS_OF,
            "--range-size",
            "300",
            "--detach",
        ]))
        .expect("JSON");
        let id = scan["id"].to_string();
        let mut workers: Vec<Child> = (0..3).map(|w| worker(&c, &format!("w{w}"))).collect();
        let mut kills = 0;
        let deadline = Instant::now() + Duration::from_secs(180);
        while scan_status(&c, &id) == "running" {
            assert!(
                Instant::now() < deadline,
                "trial {trial}: the scan never ended"
            );
            std::thread::sleep(Duration::from_millis(30 + random.below(250)));
            let w = random.below(3) as usize;
            workers[w].kill().expect("SIGKILL");
            workers[w].wait().expect("reaped");
            kills += 1;
            workers[w] = worker(&c, &format!("w{w}-{kills}"));
        }
        for mut w in workers {
            w.kill().expect("SIGKILL");
            w.wait().expect("reaped");
        }
        assert_eq!(scan_status(&c, &id), "finished", "trial {trial}");
        let (got, positions) = outcome(&c);
        assert_eq!(got, expected, "trial {trial} (seed {seed}, {kills} kills)");
        assert_eq!(
            positions,
            (1..=positions.len() as i64).collect::<Vec<_>>(),
            "trial {trial}: no position missing from the feed"
        );
        let redone = redone(&c);
        taken_over += redone;
        println!("trial {trial}: {kills} workers killed, {redone} ranges taken over");
    }
    assert!(taken_over > 0, "no kill landed while a worker held a range");
}

#[test]
fn a_detached_scan_is_carried_out_by_a_worker_that_stops_when_it_is_done() {
    let c = Cohort::on_postgresql();
    platform(&c);
    let out = c.ok(&["run", "--all", "--range-size", "5000", "--detach"]);
    let id = out
        .split_whitespace()
        .nth(1)
        .expect("scan <id> recorded")
        .to_string();
    assert!(out.contains("4 runs in 3 ranges"), "{out}");
    let waiting = c.ok(&["scan", &id]);
    assert!(waiting.contains("running, 0/3 ranges done"), "{waiting}");

    let worked = c.ok(&["worker", "--once", "--poll", "0.05"]);
    assert_eq!(worked.matches("ranges done").count(), 3, "{worked}");
    assert!(worked.contains(&format!("scan {id} finished")), "{worked}");
    let done = c.ok(&["scan", &id]);
    assert!(done.contains("finished, 3/3 ranges done"), "{done}");
    assert!(
        done.contains(&format!("`de`: finished, {CUSTOMERS} customers")),
        "{done}"
    );
    // Nothing is left: the next worker finds nothing and stops.
    assert!(!c.ok(&["worker", "--once"]).contains("ranges done"));
}

#[test]
fn workers_and_detached_scans_need_a_shared_store() {
    let c = Cohort::new();
    c.ok(&["plugin", "add", "country"]);
    let de = group("de", "full-sync", false, &["DE"]);
    c.ok(&["group", "save", &c.file("de.json", &de.to_string())]);
    for args in [
        &["worker", "--once"][..],
        &["run", "de", "--detach"],
        &["scan", "1"],
    ] {
        let e = c.fails(args);
        assert!(
            e.contains("workers share a PostgreSQL store"),
            "{args:?}: {e}"
        );
    }
}
