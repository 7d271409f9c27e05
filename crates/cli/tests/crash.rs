//! Killing `cohort` with SIGKILL in the middle of a large run leaves a store that
//! opens, is consistent, and converges on a rerun to exactly the memberships an
//! uninterrupted run gives.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn cohort(db: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cohort"));
    cmd.arg("--db")
        .arg(db)
        .arg("--cache-dir")
        .arg(Path::new(env!("CARGO_TARGET_TMPDIR")).join("plugin-cache"));
    cmd
}

fn ok(db: &Path, args: &[&str]) -> String {
    let o = cohort(db).args(args).output().expect("cohort runs");
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn members(db: &Path) -> Vec<String> {
    let rows: Vec<serde_json::Value> =
        serde_json::from_str(&ok(db, &["--json", "member", "list", "eu"])).expect("JSON");
    let mut ids: Vec<String> = rows
        .iter()
        .map(|r| {
            r["membership"]["customer"]
                .as_str()
                .expect("id")
                .to_string()
        })
        .collect();
    ids.sort();
    ids
}

/// A store with the standard plugins, a full-sync group and `n` customers, a third
/// of whom match.
fn prepare(dir: &Path, name: &str, n: usize) -> PathBuf {
    let db = dir.join(name);
    ok(&db, &["plugin", "add-standard"]);
    let group = dir.join("eu.json");
    std::fs::write(
        &group,
        r#"{"id":"eu","name":"EU","auto":{"mode":"full-sync"},
            "rule":{"all":[{"any":[{"plugin":"country","config":{"countries":["DE"]}}]}]}}"#,
    )
    .expect("write group");
    ok(&db, &["group", "save", &group.display().to_string()]);
    let customers = dir.join("customers.jsonl");
    let lines: String = (0..n)
        .map(|i| {
            let country = ["DE", "FR", "US"][i % 3];
            format!("{{\"id\":\"c{i:07}\",\"country\":\"{country}\"}}\n")
        })
        .collect();
    std::fs::write(&customers, lines).expect("write customers");
    ok(&db, &["customer", "load", &customers.display().to_string()]);
    db
}

#[test]
fn a_run_killed_midway_leaves_a_consistent_store_that_a_rerun_completes() {
    let n = 120_000;
    let dir = tempfile::tempdir().expect("tempdir");
    let reference = prepare(dir.path(), "reference.db", n);
    let started = Instant::now();
    ok(&reference, &["run", "eu"]);
    let took = started.elapsed();
    let want = members(&reference);
    assert_eq!(want.len(), n / 3);

    let victim = prepare(dir.path(), "victim.db", n);
    // Kill at several points of the run: early (evaluating) and late (writing).
    let mut killed_midway = 0;
    for fraction in [0.3, 0.9] {
        let mut child = cohort(&victim).args(["run", "eu"]).spawn().expect("spawn");
        std::thread::sleep(took.mul_f64(fraction).max(Duration::from_millis(50)));
        let finished_already = child.try_wait().expect("wait").is_some();
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");
        if finished_already {
            continue;
        }
        killed_midway += 1;
        // The store opens and is consistent: every membership has its audit entry.
        let runs: Vec<serde_json::Value> =
            serde_json::from_str(&ok(&victim, &["--json", "runs"])).expect("JSON");
        assert!(
            runs.iter().any(|r| r["status"] == "interrupted"),
            "the killed run is marked: {runs:?}"
        );
        let got = members(&victim);
        assert!(
            got.is_empty() || got == want,
            "a run applies all of its changes or none: {} members",
            got.len()
        );
    }

    assert!(killed_midway > 0, "no kill landed inside a run");

    ok(&victim, &["run", "eu"]);
    assert_eq!(members(&victim), want, "the rerun converges");
    let history: Vec<serde_json::Value> = serde_json::from_str(&ok(
        &victim,
        &["--json", "history", "--group", "eu", "--limit", "1000000"],
    ))
    .expect("JSON");
    assert_eq!(
        history.len(),
        want.len(),
        "one audit entry per membership, no doubles"
    );
}
