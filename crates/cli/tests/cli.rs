//! The real `cohort` binary, driven as a user would.

use std::path::Path;
use std::process::{Command, Output};

fn cohort(args: &[&str]) -> Output {
    // Shared by the tests of one run so that each plugin is compiled once.
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("plugin-cache");
    Command::new(env!("CARGO_BIN_EXE_cohort"))
        .arg("--cache-dir")
        .arg(cache)
        .args(args)
        .output()
        .expect("cohort runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn examples() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/customers.jsonl")
        .display()
        .to_string()
}

#[test]
fn plugins_lists_every_bundled_plugin() {
    let o = cohort(&["plugins", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let ids: Vec<String> = stdout(&o)
        .lines()
        .map(|l| {
            let info: serde_json::Value = serde_json::from_str(l).expect("JSON line");
            info["id"].as_str().expect("id").to_string()
        })
        .collect();
    assert_eq!(
        ids,
        [
            "country",
            "geoip-country",
            "registration-param",
            "payer-status",
            "provider",
            "auth-method",
            "verification-status",
            "verification-method",
            "product",
            "attribute",
            "registered"
        ]
    );
}

#[test]
fn every_bundled_plugin_describes_itself() {
    for (id, _) in cohort_artifacts::STANDARD {
        let o = cohort(&["describe", id]);
        assert!(o.status.success(), "{id}: {}", stderr(&o));
        assert!(
            stdout(&o).contains("contract      cohort:plugin@0.3.0"),
            "{id}"
        );
    }
}

#[test]
fn describe_prints_the_self_description() {
    let o = cohort(&["describe", "country", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let info: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(info["id"], "country");
    assert_eq!(info["contract"], "0.3.0");
    assert_eq!(info["reads"], serde_json::json!(["country"]));
}

#[test]
fn eval_prints_a_verdict_per_customer_and_the_usage() {
    let o = cohort(&[
        "eval",
        "country",
        "--config",
        r#"{"countries":["de","FR"]}"#,
        "--customers",
        &examples(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let lines: Vec<serde_json::Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    let verdict = |id: &str| {
        lines
            .iter()
            .find(|l| l["customer"] == id)
            .map(|l| l["verdict"]["verdict"].clone())
            .expect("customer listed")
    };
    assert_eq!(verdict("C-1001"), "match");
    assert_eq!(verdict("C-1002"), "match", "country `fr` in any case");
    assert_eq!(verdict("C-1003"), "no-match");
    assert_eq!(verdict("C-1005"), "no-match", "no country given");
    let summary = &lines.last().expect("summary")["summary"];
    assert_eq!(summary["matched"], 2);
    assert!(summary["fuel_used"].as_u64().expect("number") > 0);
}

#[test]
fn a_rejected_configuration_names_the_field_and_exits_non_zero() {
    let o = cohort(&[
        "eval",
        "country",
        "--config",
        r#"{"countries":["DE","XX"]}"#,
        "--customers",
        &examples(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("`/countries/1`: `XX`"),
        "{}",
        stderr(&o)
    );
    assert!(o.stdout.is_empty(), "nothing evaluated");
}

#[test]
fn a_bad_customer_line_is_named_by_file_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("customers.jsonl");
    std::fs::write(
        &file,
        "{\"id\":\"1\",\"country\":\"DE\"}\n\n{\"id\":\"2\",\"country\":\"Germany\"}\n",
    )
    .expect("write");
    let o = cohort(&[
        "eval",
        "country",
        "--config",
        r#"{"countries":["DE"]}"#,
        "--customers",
        &file.display().to_string(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("customers.jsonl:3"), "{err}");
    assert!(err.contains("`Germany`"), "{err}");
}

#[test]
fn a_plugin_that_cannot_decide_exits_with_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("customers.jsonl");
    std::fs::write(
        &file,
        "{\"id\":\"x\",\"tags\":[\"hostile\"]}\n{\"id\":\"y\"}\n",
    )
    .expect("write");
    let o = cohort(&[
        "eval",
        cohort_artifacts::HOSTILE_PATH,
        "--config",
        r#"{"behaviour":"hog"}"#,
        "--customers",
        &file.display().to_string(),
        "--memory-mib",
        "8",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("x         no decision: plugin `hostile` exceeded the memory cap of 8 MiB"),
        "{out}"
    );
    assert!(out.contains("y         match"), "{out}");
}

#[test]
fn a_file_that_is_not_a_plugin_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("plugin.wasm");
    std::fs::write(&file, b"not wasm at all").expect("write");
    let o = cohort(&["describe", &file.display().to_string()]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o).matches("not a WebAssembly file").count(),
        1,
        "said once: {}",
        stderr(&o)
    );
    let db = dir.path().join("cohort.db").display().to_string();
    let o = cohort(&["--db", &db, "plugin", "add", &file.display().to_string()]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o).matches("not a WebAssembly file").count(),
        1,
        "said once: {}",
        stderr(&o)
    );
}

#[test]
fn cache_prune_keeps_the_cache_within_the_bound_given() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = dir.path().join("cache").display().to_string();
    let run = |args: &[&str]| {
        let o = Command::new(env!("CARGO_BIN_EXE_cohort"))
            .args(["--cache-dir", &cache])
            .args(args)
            .output()
            .expect("cohort runs");
        assert!(o.status.success(), "{}", stderr(&o));
        stdout(&o)
    };
    run(&["describe", "country"]);
    let kept: serde_json::Value =
        serde_json::from_str(&run(&["--json", "cache", "prune"])).expect("JSON");
    assert_eq!(
        (kept["kept"].as_u64(), kept["removed"].as_u64()),
        (Some(1), Some(0))
    );
    let out = run(&["cache", "prune", "--max-mib", "0"]);
    assert!(out.starts_with("removed 1 compiled plugin(s)"), "{out}");
    // No compiled plugin is left; the cache's key stays, for the next ones.
    let left: Vec<String> = std::fs::read_dir(&cache)
        .expect("cache")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, ["key"], "emptied of compiled plugins");
}

#[test]
fn the_demo_runs_and_reports() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("demo.db").display().to_string();
    let geoip = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/testdata/geoip")
        .display()
        .to_string();
    let args = [
        "demo",
        "--customers",
        "3000",
        "--demo-db",
        &db,
        "--geoip-dir",
        &geoip,
    ];
    let o = cohort(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    for expected in [
        "stored 3000 generated customers",
        "config/countries/1: `EU` is not",
        "eu-residents           full-sync       3000",
        "registered-abroad",
        "a second run of `eu-residents` changes nothing: 0 added, 0 removed",
        "Pending from",
        "Active from",
        "Expired from",
        "it joined: eu-residents, site-google",
        "the next registration, `C-NEW-2`, took",
        "=> ",
    ] {
        assert!(out.contains(expected), "missing `{expected}` in:\n{out}");
    }
    // The same seed tells the same story.
    let again = stdout(&cohort(&args));
    let counts = |s: &str| -> Vec<String> {
        s.lines()
            .filter(|l| l.contains("full-sync") || l.contains("add-only"))
            .map(|l| l.split_whitespace().take(6).collect::<Vec<_>>().join(" "))
            .collect()
    };
    assert_eq!(counts(&out), counts(&again));
    signs_in_as_told(&again, &db);
}

/// The demo ends by telling how to open the console on its store and sign in: the
/// command it gives serves the console, and the password it gives signs in.
fn signs_in_as_told(out: &str, db: &str) {
    let told = out
        .split_once("the console for billing staff: ")
        .expect("the demo tells how to open the console")
        .1;
    let command = told.lines().next().expect("a command");
    assert!(command.ends_with(&format!("--db {db} serve")), "{command}");
    let password = told
        .split_once("with the password `")
        .and_then(|(_, rest)| rest.split_once('`'))
        .expect("a password")
        .0;
    let mut server = Command::new(env!("CARGO_BIN_EXE_cohort"))
        .args(["--db", db, "serve", "--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("serve starts");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(server.stdout.take().expect("stdout")),
        &mut line,
    )
    .expect("it says where it listens");
    let base = line.trim().trim_start_matches("listening on ").to_string();
    let http = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let cookie = |r: &reqwest::blocking::Response, name: &str| -> String {
        r.headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|v| v.strip_prefix(&format!("{name}=")))
            .and_then(|v| v.split(';').next())
            .expect("the cookie is set")
            .to_string()
    };
    let form = http.get(format!("{base}/")).send().expect("GET /");
    let csrf = cookie(&form, "cohort_sign_in");
    let signed = http
        .post(format!("{base}/sign-in"))
        .header("cookie", format!("cohort_sign_in={csrf}"))
        .form(&[("name", "demo"), ("password", password), ("csrf", &csrf)])
        .send()
        .expect("POST /sign-in");
    assert_eq!(signed.status(), 303, "the demo's password signs in");
    let session = cookie(&signed, "cohort_session");
    let page = http
        .get(format!("{base}/"))
        .header("cookie", format!("cohort_session={session}"))
        .send()
        .expect("GET /")
        .text()
        .expect("page");
    let _ = server.kill();
    let _ = server.wait();
    assert!(page.contains("EU residents"), "{page}");
}

/// A plugin author asks the runner why: each verdict with the plugin's sentence and,
/// where it runs out, until when it holds.
#[test]
fn eval_explains_each_verdict_and_says_until_when_it_holds() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let config = format!(
        "@{}",
        root.join("examples/configs/registered.json").display()
    );
    let examples_path = examples();
    let o = cohort(&[
        "eval",
        "registered",
        "--config",
        &config,
        "--customers",
        &examples_path,
        "--as-of",
        "2026-11-25T00:00:00Z",
        "--explain",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(
        text.contains(
            "C-1002    match\n            because registered 2026-02-10T14:30:00Z: within the \
             365 days before 2026-11-25T00:00:00Z\n            holds until 2027-02-10T14:30:00Z\n"
        ),
        "{text}"
    );
    assert!(
        text.contains("C-1004    no match\n            because the platform did not say when the customer registered\n"),
        "{text}"
    );
    let o = cohort(&[
        "eval",
        "attribute",
        "--config",
        r#"{"name":"balance","operator":"at-least","value":"100"}"#,
        "--customers",
        &examples_path,
        "--explain",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let first: serde_json::Value =
        serde_json::from_str(stdout(&o).lines().next().expect("a line")).expect("JSON");
    assert_eq!(first["explanation"], "`balance` is 250.75, at least 100");
    assert_eq!(
        first["until"],
        serde_json::Value::Null,
        "a number does not age"
    );
}

/// The runner on every bundled plugin, with the sample configurations in
/// `examples/configs/` over `examples/customers.jsonl`. `m` is match, `-` no match.
#[test]
fn eval_runs_every_bundled_plugin_on_the_examples() {
    let expected = [
        ("country", "mm---m"),
        ("geoip-country", "m-m-m-"),
        ("registration-param", "---m--"),
        ("payer-status", "-mm---"),
        ("provider", "mm----"),
        ("auth-method", "-m-m-m"),
        ("verification-status", "--mmm-"),
        ("verification-method", "-m----"),
        ("product", "---m--"),
        ("attribute", "m-m--m"),
        ("registered", "-mm--m"),
    ];
    assert_eq!(
        expected.len(),
        cohort_artifacts::STANDARD.len(),
        "a plugin is missing here"
    );
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let examples_path = examples();
    let geoip = root.join("../shared/testdata/geoip").display().to_string();
    for (id, want) in expected {
        let config = format!(
            "@{}",
            root.join(format!("examples/configs/{id}.json")).display()
        );
        let mut args = vec![
            "eval",
            id,
            "--config",
            &config,
            "--customers",
            &examples_path,
            "--as-of",
            "2026-11-25T00:00:00Z",
            "--json",
        ];
        if id == "geoip-country" {
            args.extend(["--data-dir", &geoip]);
        }
        let o = cohort(&args);
        assert!(o.status.success(), "{id}: {}", stderr(&o));
        let got: String = stdout(&o)
            .lines()
            .filter_map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).expect("JSON line");
                match v["verdict"]["verdict"].as_str()? {
                    "match" => Some('m'),
                    "no-match" => Some('-'),
                    other => panic!("{id}: unexpected verdict {other}"),
                }
            })
            .collect();
        assert_eq!(got, want, "{id}");
    }
}

/// Output piped into a reader that stops early (`cohort openapi | head`) ends the
/// command as it ends `cat`: by SIGPIPE, quietly, not with a panic about a broken pipe.
#[test]
fn a_reader_that_stops_early_ends_the_command_quietly() {
    use std::io::Read;
    use std::os::unix::process::ExitStatusExt;
    use std::process::Stdio;

    let mut child = Command::new(env!("CARGO_BIN_EXE_cohort"))
        .arg("openapi")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cohort runs");
    let mut start = [0u8; 16];
    child
        .stdout
        .take()
        .expect("piped")
        .read_exact(&mut start)
        .expect("the document's start");
    // The rest of the document (hundreds of kilobytes) finds no reader.
    let out = child.wait_with_output().expect("ends");
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGPIPE),
        "ended by SIGPIPE: {:?}",
        out.status
    );
    assert_eq!(stderr(&out), "", "nothing said");
}
