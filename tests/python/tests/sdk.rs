//! The Python SDK's own promises, through the real host: the row view reads every
//! column, an exception is no decision (for a customer, or for a batch), a verdict
//! that is not a verdict is refused, configuration problems point at their fields, and
//! the SDK's country table is the Rust SDK's.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use cohort_host::{Condition, Failure, Host, PrepareError};
use cohort_model::{CustomerRecord, Verdict};

fn prepare(host: &Host, config: &str) -> Result<Condition, PrepareError> {
    host.load_file(cohort_python_plugins::SDK_CHECKS_PATH)
        .expect("the SDK's test plugin loads")
        .prepare(config, None)
}

/// The verdicts and failures of `mode` over customers given as JSON.
fn run(mode: &str, json: &[&str]) -> (Vec<Verdict>, Vec<Failure>) {
    let host = common::host();
    let customers: Vec<_> = json
        .iter()
        .map(|j| {
            serde_json::from_str::<CustomerRecord>(j)
                .expect("test customer parses")
                .intern(host.interner())
                .expect("test customer is valid")
        })
        .collect();
    let config = format!(r#"{{"mode":"{mode}","values":["GOOGLE"]}}"#);
    let mut condition = prepare(&host, &config).expect("valid configuration");
    let evaluation = condition.evaluate(1_800_000_000, &customers);
    (evaluation.verdicts.to_vec(), evaluation.failures)
}

const FULL: &str = r#"{"id":"full","country":"se","registration_ip":"2001:db8::1",
    "registration_params":{"utm_source":"partner"},
    "payers":[{"kind":"legal_entity","active":true},{"kind":"individual","active":false}],
    "provider":"acme","auth_methods":["google","password"],"verification_status":"passed",
    "verification_methods":["passport"],
    "subscriptions":[{"product":"tower-host","status":"active","start":"2023-11-14T22:13:20Z"},
                     {"product":"vps","status":"cancelled","start":"1970-01-01T00:00:01Z","end":"1970-01-01T00:00:02Z"}],
    "tags":["vip","boom"],"attributes":{"segment":"b2b","balance":-0.05,"seats":3,
    "renewal":{"timestamp":"2026-09-01T00:00:00Z"}},"registered_at":"2025-06-01T00:00:00Z"}"#;
const EMPTY: &str = r#"{"id":"empty"}"#;
const IPV4: &str = r#"{"id":"v4","registration_ip":"81.2.69.142","tags":["x"]}"#;

#[test]
fn the_row_view_reads_every_column() {
    let (verdicts, failures) = run("echo", &[FULL, EMPTY, IPV4]);
    assert!(failures.is_empty(), "{failures:?}");
    let echoed: Vec<String> = verdicts
        .into_iter()
        .map(|v| match v {
            Verdict::Error(text) => text,
            other => panic!("echo answers no decision, not {other:?}"),
        })
        .collect();
    assert_eq!(
        echoed,
        [
            "country=SE ip=2001:db8::1 params=utm_source=partner \
             payers=legal_entity:True,individual:False provider=acme \
             auth=google,password verification=passed methods=passport \
             subscriptions=tower-host:active:1700000000:None,vps:cancelled:1:2 \
             tags=vip,boom attributes=balance=-0.05,renewal=2026-09-01T00:00:00Z,seats=3,\
             segment=`b2b` registered=1748736000",
            "country=- ip=None params= payers= provider=- auth= verification=unverified \
             methods= subscriptions= tags= attributes= registered=None",
            "country=- ip=81.2.69.142 params= payers= provider=- auth= \
             verification=unverified methods= subscriptions= tags=x attributes= \
             registered=None",
        ]
    );
}

#[test]
fn an_exception_is_no_decision_for_that_customer_only() {
    let (verdicts, failures) = run("raise", &[EMPTY, FULL, IPV4]);
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(
        verdicts,
        [
            Verdict::Match,
            Verdict::Error("ValueError: customer 1 is tagged boom".into()),
            Verdict::Match,
        ]
    );
}

#[test]
fn an_answer_that_is_not_a_verdict_is_no_decision() {
    let (verdicts, _) = run("not-a-bool", &[EMPTY, IPV4]);
    let texts: Vec<&str> = verdicts
        .iter()
        .map(|v| match v {
            Verdict::Error(text) => text.as_str(),
            other => panic!("a list is not a verdict, yet the host got {other:?}"),
        })
        .collect();
    // An empty list is falsy and a full one truthy; neither is taken for an answer.
    assert_eq!(
        texts[0],
        "the plugin answered [], not True, False or Undecided"
    );
    assert!(
        texts[1].starts_with("the plugin answered [")
            && texts[1].ends_with("], not True, False or Undecided"),
        "{}",
        texts[1]
    );
}

#[test]
fn a_batch_error_and_an_exception_in_the_batch_fail_the_batch() {
    for (mode, message) in [
        ("batch-error", "the database is gone"),
        ("crash", "KeyError: 'missing'"),
    ] {
        let (verdicts, failures) = run(mode, &[EMPTY, FULL]);
        assert_eq!(failures, [Failure::Plugin(message.into())], "{mode}");
        assert!(
            verdicts.iter().all(|v| matches!(v, Verdict::Error(_))),
            "{mode}: every customer of the batch is undecided, not {verdicts:?}"
        );
    }
}

#[test]
fn caseless_sets_ignore_case() {
    let (verdicts, _) = run("caseless", &[FULL, EMPTY]);
    assert_eq!(verdicts, [Verdict::Match, Verdict::NoMatch]);
}

#[test]
fn configuration_problems_point_at_their_fields() {
    let host = common::host();
    let errors = |config: &str| match prepare(&host, config) {
        Err(PrepareError::Config { errors, .. }) => errors
            .into_iter()
            .map(|e| (e.path, e.message))
            .collect::<Vec<_>>(),
        other => panic!(
            "{config}: expected configuration errors, got {:?}",
            other.err()
        ),
    };
    let pair = |path: &str, message: &str| (path.to_string(), message.to_string());
    assert_eq!(
        errors(r#"{"mode":"names","values":["a"," ",""]}"#),
        [
            pair("/values/1", "must not be blank"),
            pair("/values/2", "must not be blank")
        ]
    );
    assert_eq!(
        errors(r#"{"mode":"names"}"#),
        [pair("/values", "name at least one value")]
    );
    assert_eq!(
        errors(r#"{"mode":"echo","values":[[]]}"#),
        [pair(
            "/values/0",
            "invalid type: sequence, expected a string"
        )]
    );
    assert_eq!(
        errors(r#"{"mode":"echo","a/b~":1}"#)[0].0,
        "/a~1b~0",
        "keys are escaped as RFC 6901 asks"
    );
}

#[test]
fn an_exception_while_preparing_is_a_failure_with_its_traceback() {
    let host = common::host();
    match prepare(&host, r#"{"mode":"prepare-crash"}"#) {
        Err(PrepareError::Failed { failure, .. }) => {
            let text = failure.to_string();
            assert!(text.contains("RuntimeError: prepare went wrong"), "{text}");
        }
        other => panic!("expected a failure, got {:?}", other.err()),
    }
}

/// The ISO 3166-1 codes in a source file: every two-capital-letter string literal.
fn codes_in(file: &str) -> BTreeSet<String> {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(file))
        .unwrap_or_else(|e| panic!("{file}: {e}"));
    let start = text.find("ASSIGNED").expect("the table is named ASSIGNED");
    text[start..]
        .split('"')
        .skip(1)
        .step_by(2)
        .take_while(|s| s.len() == 2 && s.bytes().all(|b| b.is_ascii_uppercase()))
        .map(str::to_string)
        .collect()
}

#[test]
fn the_python_sdk_knows_the_same_countries_as_the_rust_sdk() {
    let python = codes_in("../../sdk/python/cohort_plugin/country.py");
    let rust = codes_in("../../crates/sdk/src/country.rs");
    assert_eq!(rust.len(), 249);
    assert_eq!(python, rust);
}

#[test]
fn the_interpreter_sees_no_environment_clock_files_or_network() {
    let (verdicts, failures) = run("peek", &[EMPTY]);
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(
        verdicts,
        [Verdict::Error(
            "env=0 clock=0 /etc/passwd=refused(FileNotFoundError) \
             /data/anything=refused(FileNotFoundError) net=refused(ModuleNotFoundError)"
                .into()
        )]
    );
}
