//! Budgets per plugin: a component declares what it needs in its `cohort:budget`
//! section, the host grants that up to its ceiling, and an operator's word for a plugin
//! goes beyond it. A bad declaration stops the load and says why.

mod common;

use std::time::Duration;

use cohort_artifacts::{COUNTRY, HOSTILE_PATH};
use cohort_host::{BUDGET_SECTION, Failure, Limits, LoadError};
use cohort_model::{PluginBudget, Verdict};

/// `wasm` with a custom section appended: id 0, the size, the name and the payload.
/// A component's top level takes custom sections anywhere, so this is what a build
/// tool that adds one writes.
fn with_section(wasm: &[u8], name: &str, payload: &str) -> Vec<u8> {
    fn leb(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    let mut body = Vec::new();
    leb(name.len(), &mut body);
    body.extend_from_slice(name.as_bytes());
    body.extend_from_slice(payload.as_bytes());
    let mut out = wasm.to_vec();
    out.push(0);
    leb(body.len(), &mut out);
    out.extend_from_slice(&body);
    out
}

fn declaring(wasm: &[u8], budget: &str) -> Vec<u8> {
    with_section(wasm, BUDGET_SECTION, budget)
}

#[test]
fn a_plugin_without_a_declaration_gets_the_hosts_defaults() {
    let host = common::host();
    let plugin = host.load(COUNTRY).expect("loads");
    assert!(plugin.declared_budget().is_empty());
    assert_eq!(plugin.budget(), Limits::default().budget());
}

#[test]
fn a_declared_budget_is_what_the_plugin_runs_on_even_a_smaller_one() {
    let host = common::host();
    let plugin = host
        .load(&declaring(
            COUNTRY,
            r#"{"fuel_per_call":1,"fuel_per_customer":1,"deadline_ms":300}"#,
        ))
        .expect("loads");
    let budget = plugin.budget();
    assert_eq!(budget.fuel_for(10), 11);
    assert_eq!(budget.deadline, Duration::from_millis(300));
    assert_eq!(budget.memory, Limits::default().memory, "not declared");
    let mut condition = plugin
        .prepare(r#"{"countries":["DE"]}"#, None)
        .expect("preparing has its own fuel");
    let customers = common::with_country(&host, &["DE", "FR"]);
    let evaluation = condition.evaluate(0, &customers);
    // The batch of two traps, and so does each half, on a budget of 1 + 1 per customer.
    assert_eq!(
        evaluation.failures,
        [
            Failure::OutOfFuel { budget: 2 },
            Failure::OutOfFuel { budget: 2 }
        ]
    );
    assert!(
        evaluation
            .verdicts
            .to_vec()
            .iter()
            .all(|v| matches!(v, Verdict::Error(_)))
    );
}

#[test]
fn a_declaration_is_granted_up_to_the_ceiling_and_the_operator_goes_beyond() {
    let host = common::host_with(Limits {
        fuel_per_call: u64::MAX / 2,
        ..Limits::default()
    });
    let ceiling = Limits::default().ceiling;
    let hog = host
        .load(&declaring(
            &std::fs::read(HOSTILE_PATH).expect("hostile plugin built"),
            r#"{"memory_mib":4096,"deadline_ms":600000}"#,
        ))
        .expect("loads");
    assert_eq!(
        hog.declared_budget().memory_mib,
        Some(4096),
        "kept as declared"
    );
    assert_eq!(hog.budget().memory, ceiling.memory);
    assert_eq!(hog.budget().deadline, ceiling.deadline);

    // The cap it runs into is the granted one.
    let customers = common::customers(&host, &[r#"{"id":"evil","tags":["hostile"]}"#]);
    let mut condition = hog.prepare(r#"{"behaviour":"hog"}"#, None).expect("valid");
    let evaluation = condition.evaluate(0, &customers);
    assert_eq!(
        evaluation.failures,
        [Failure::Memory {
            cap: ceiling.memory
        }]
    );

    // An operator may give more than any declaration gets, and less.
    let operator = PluginBudget {
        memory_mib: Some(1024),
        deadline_ms: Some(50),
        ..PluginBudget::default()
    };
    let condition = hog
        .prepare_with(r#"{"behaviour":"hog"}"#, None, &operator)
        .expect("valid");
    assert_eq!(condition.budget().memory, 1024 << 20);
    assert_eq!(condition.budget().deadline, Duration::from_millis(50));
}

#[test]
fn a_bad_declaration_stops_the_load_and_says_why() {
    let host = common::host();
    let refused = |wasm: Vec<u8>| match host.load(&wasm) {
        Err(LoadError::Budget(why)) => why,
        other => panic!("expected a budget error, got {other:?}"),
    };
    let why = refused(declaring(COUNTRY, r#"{"fuel":1}"#));
    assert!(why.contains("unknown field `fuel`"), "{why}");
    let why = refused(declaring(COUNTRY, r#"{"memory_mib":0,"deadline_ms":0}"#));
    assert_eq!(
        why,
        "`memory_mib` must be more than 0; `deadline_ms` must be more than 0"
    );
    let why = refused(declaring(COUNTRY, r#"{"memory_mib":5000}"#));
    assert!(why.contains("at most 4096"), "{why}");
    let why = refused(declaring(
        &declaring(COUNTRY, r#"{"memory_mib":64}"#),
        r#"{"memory_mib":128}"#,
    ));
    assert_eq!(why, "it appears twice");
    let error = host
        .load(&declaring(COUNTRY, "not json"))
        .expect_err("refused");
    assert!(
        error
            .to_string()
            .starts_with("the plugin's `cohort:budget` section is not a budget: "),
        "{error}"
    );
}

#[test]
fn another_custom_section_changes_nothing() {
    let host = common::host();
    let plugin = host
        .load(&with_section(COUNTRY, "cohort:budget-notes", "anything"))
        .expect("loads");
    assert!(plugin.declared_budget().is_empty());
}
