//! Every limit trips on a plugin that misbehaves, the failure is "no decision" (never
//! "no match") for the customer that caused it and only for it, the host keeps working,
//! and the next call succeeds on a fresh instance.

mod common;

use std::time::Duration;

use cohort_artifacts::HOSTILE_PATH;
use cohort_host::{Condition, Evaluation, Failure, Host, Limits};
use cohort_model::{Customer, Verdict};

const AS_OF: i64 = 1_700_000_000;

fn hostile(host: &Host, config: &str, data_dir: Option<&std::path::Path>) -> Condition {
    host.load_file(HOSTILE_PATH)
        .expect("hostile plugin loads")
        .prepare(config, data_dir)
        .expect("config is valid")
}

/// Two well-behaved customers around a hostile one.
fn batch(host: &Host) -> Vec<Customer> {
    common::customers(
        host,
        &[
            r#"{"id":"a"}"#,
            r#"{"id":"evil","tags":["hostile"]}"#,
            r#"{"id":"b"}"#,
        ],
    )
}

fn benign(host: &Host) -> Vec<Customer> {
    common::customers(host, &[r#"{"id":"c"}"#, r#"{"id":"d"}"#])
}

/// The hostile customer gets an error naming the plugin, its neighbours in the batch
/// still get their verdicts, and then a benign batch on the same condition succeeds on
/// a new instance.
fn assert_contained(host: &Host, mut condition: Condition) -> Failure {
    let failed: Evaluation = condition.evaluate(AS_OF, &batch(host));
    let verdicts = failed.verdicts.to_vec();
    assert_eq!(verdicts.len(), 3);
    match &verdicts[1] {
        Verdict::Error(message) => assert!(message.starts_with("plugin `hostile` "), "{message}"),
        other => panic!("a failed call must give no decision, got {other:?}"),
    }
    assert_eq!(
        verdicts[0],
        Verdict::Match,
        "the trap was pinned on its customer"
    );
    assert_eq!(
        verdicts[2],
        Verdict::Match,
        "the trap was pinned on its customer"
    );
    assert_eq!(failed.failures.len(), 1);
    assert!(failed.isolated_traps >= 1);
    assert!(
        failed.instances_started >= 1,
        "each poisoned instance was replaced"
    );

    let next = condition.evaluate(AS_OF, &benign(host));
    assert_eq!(next.verdicts.to_vec(), vec![Verdict::Match, Verdict::Match]);
    assert!(next.failures.is_empty());
    failed.failures.into_iter().next().expect("one failure")
}

#[test]
fn a_loop_runs_out_of_fuel() {
    let host = common::host();
    let condition = hostile(&host, r#"{"behaviour":"spin"}"#, None);
    let failure = assert_contained(&host, condition);
    assert_eq!(
        failure,
        Failure::OutOfFuel {
            // the budget of the call that held only the hostile customer
            budget: Limits::default().fuel_for(1)
        }
    );
}

#[test]
fn a_loop_with_ample_fuel_hits_the_deadline() {
    let host = common::host_with(Limits {
        fuel_per_call: u64::MAX / 2,
        deadline: Duration::from_millis(200),
        ..Limits::default()
    });
    let condition = hostile(&host, r#"{"behaviour":"spin"}"#, None);
    let failure = assert_contained(&host, condition);
    assert_eq!(
        failure,
        Failure::Deadline {
            limit: Duration::from_millis(200)
        }
    );
}

#[test]
fn endless_allocation_hits_the_memory_cap() {
    let host = common::host_with(Limits {
        memory: 16 << 20,
        fuel_per_call: u64::MAX / 2,
        ..Limits::default()
    });
    let condition = hostile(&host, r#"{"behaviour":"hog"}"#, None);
    let failure = assert_contained(&host, condition);
    assert_eq!(failure, Failure::Memory { cap: 16 << 20 });
    assert_eq!(failure.to_string(), "exceeded the memory cap of 16 MiB");
}

#[test]
fn endless_recursion_hits_the_stack_cap() {
    let host = common::host();
    let condition = hostile(&host, r#"{"behaviour":"deep"}"#, None);
    assert_eq!(assert_contained(&host, condition), Failure::Stack);
}

#[test]
fn a_panic_is_a_trap_with_its_message() {
    let host = common::host();
    let condition = hostile(&host, r#"{"behaviour":"trap"}"#, None);
    match assert_contained(&host, condition) {
        Failure::Trap { detail, .. } => {
            assert!(
                detail.contains("hostile plugin traps on purpose"),
                "{detail}"
            )
        }
        other => panic!("expected a trap, got {other:?}"),
    }
}

#[test]
fn no_file_is_readable_without_a_grant() {
    let host = common::host();
    for path in [
        "/etc/passwd",
        "/data/GeoIP2-Country-Test.mmdb",
        "Cargo.toml",
    ] {
        let mut condition = hostile(
            &host,
            &format!(r#"{{"behaviour":"read","path":"{path}"}}"#),
            None,
        );
        let ev = condition.evaluate(AS_OF, &batch(&host));
        match ev.verdicts.to_vec()[1].clone() {
            Verdict::Error(message) => assert!(message.contains("cannot read"), "{message}"),
            other => panic!("reading `{path}` must fail, got {other:?}"),
        }
        assert_eq!(
            ev.verdicts.to_vec()[0],
            Verdict::Match,
            "others are unaffected"
        );
    }
}

#[test]
fn a_granted_directory_is_readable_and_nothing_beside_it() {
    let host = common::host();
    let root = tempfile::tempdir().expect("tempdir");
    let granted = root.path().join("granted");
    std::fs::create_dir(&granted).expect("mkdir");
    std::fs::write(granted.join("inside.txt"), "ok").expect("write");
    std::fs::write(root.path().join("outside.txt"), "secret").expect("write");

    let read = |path: &str| {
        let mut condition = hostile(
            &host,
            &format!(r#"{{"behaviour":"read","path":"{path}"}}"#),
            Some(&granted),
        );
        condition.evaluate(AS_OF, &batch(&host)).verdicts.to_vec()[1].clone()
    };
    assert_eq!(read("/data/inside.txt"), Verdict::Match);
    for escape in [
        "/data/../outside.txt",
        "/outside.txt",
        &root.path().join("outside.txt").display().to_string(),
    ] {
        assert!(
            matches!(read(escape), Verdict::Error(_)),
            "`{escape}` must not be readable"
        );
    }
}

#[test]
fn a_granted_directory_is_read_only() {
    let host = common::host();
    let granted = tempfile::tempdir().expect("tempdir");
    std::fs::write(granted.path().join("existing.txt"), "keep").expect("write");
    for path in ["/data/new.txt", "/data/existing.txt"] {
        let mut condition = hostile(
            &host,
            &format!(r#"{{"behaviour":"write","path":"{path}"}}"#),
            Some(granted.path()),
        );
        match condition.evaluate(AS_OF, &batch(&host)).verdicts.to_vec()[1].clone() {
            Verdict::Error(message) => assert!(message.contains("cannot write"), "{message}"),
            other => panic!("writing `{path}` must fail, got {other:?}"),
        }
    }
    assert!(!granted.path().join("new.txt").exists());
    assert_eq!(
        std::fs::read_to_string(granted.path().join("existing.txt")).expect("read"),
        "keep"
    );
}

#[test]
fn environment_clock_randomness_and_network_are_denied() {
    let host = common::host();
    let peek = || {
        let mut condition = hostile(&host, r#"{"behaviour":"peek"}"#, None);
        match condition.evaluate(AS_OF, &batch(&host)).verdicts.to_vec()[1].clone() {
            Verdict::Error(seen) => seen,
            other => panic!("peek reports as an error, got {other:?}"),
        }
    };
    let first = peek();
    assert!(first.starts_with("env=0 clock=0 "), "{first}");
    assert!(first.contains("net=refused"), "{first}");
    // Two fresh instances see the same "randomness": nothing in a verdict can vary.
    assert_eq!(first, peek());
}

#[test]
fn instances_are_recycled_after_the_configured_number_of_calls() {
    let host = common::host_with(Limits {
        max_batch: 1,
        recycle_after_calls: 2,
        ..Limits::default()
    });
    let mut condition = hostile(&host, r#"{"behaviour":"trap"}"#, None);
    let ev = condition.evaluate(AS_OF, &benign(&host));
    assert_eq!(ev.calls, 2);
    assert_eq!(
        ev.instances_started, 0,
        "the prepared instance serves two calls"
    );
    let ev = condition.evaluate(AS_OF, &benign(&host));
    assert_eq!(ev.instances_started, 1, "then it is replaced");
    assert_eq!(ev.verdicts.to_vec(), vec![Verdict::Match, Verdict::Match]);
}

#[test]
fn isolating_traps_is_bounded_when_every_customer_traps() {
    let host = common::host();
    let mut condition = hostile(&host, r#"{"behaviour":"trap"}"#, None);
    let json: Vec<String> = (0..200)
        .map(|i| format!(r#"{{"id":"{i}","tags":["hostile"]}}"#))
        .collect();
    let all_hostile =
        common::customers(&host, &json.iter().map(String::as_str).collect::<Vec<_>>());
    let ev = condition.evaluate(AS_OF, &all_hostile);
    assert_eq!(ev.verdicts.errors().len(), 200, "nobody gets a verdict");
    assert_eq!(ev.isolated_traps, 32, "splitting stops at its cap");
    assert!(ev.calls <= 1 + 2 * 32, "{} calls", ev.calls);
}

#[test]
fn fuel_use_is_reported() {
    let host = common::host();
    let mut condition = hostile(&host, r#"{"behaviour":"trap"}"#, None);
    let ev = condition.evaluate(AS_OF, &benign(&host));
    assert!(ev.fuel_used > 0 && ev.fuel_used < ev.fuel_budget, "{ev:?}");
    assert!(ev.peak_memory > 0, "{ev:?}");
}

fn all_hostile(host: &Host, n: usize) -> Vec<Customer> {
    let json: Vec<String> = (0..n)
        .map(|i| format!(r#"{{"id":"{i}","tags":["hostile"]}}"#))
        .collect();
    common::customers(host, &json.iter().map(String::as_str).collect::<Vec<_>>())
}

#[test]
fn a_condition_that_keeps_hitting_the_deadline_is_given_up_within_its_budget() {
    let deadline = Duration::from_millis(50);
    let host = common::host_with(Limits {
        fuel_per_call: u64::MAX / 2,
        deadline,
        failure_time: 3 * deadline,
        max_batch: 16,
        ..Limits::default()
    });
    let mut condition = hostile(&host, r#"{"behaviour":"spin"}"#, None);
    let customers = all_hostile(&host, 400);
    // A run's pages: the budget is the condition's, not one evaluation's.
    let pages: Vec<Evaluation> = customers
        .chunks(100)
        .map(|page| condition.evaluate(AS_OF, page))
        .collect();
    // Each failed call costs nearly the deadline (the epoch ticks every 10 ms, so at
    // least 40 ms of it), so the budget of three deadlines is spent after three or
    // four calls, however slow the machine; without a budget every batch of 16 (and
    // the halves of each) would wait for it.
    let calls: u32 = pages.iter().map(|ev| ev.calls).sum();
    assert!(
        (3..=4).contains(&calls),
        "{calls} calls: {:?}",
        pages[0].failures
    );
    assert!(
        pages[1..].iter().all(|ev| ev.calls == 0),
        "no call once given up"
    );
    for ev in &pages {
        assert_eq!(
            ev.verdicts.errors().len(),
            ev.verdicts.len(),
            "nobody is decided"
        );
    }
    let (_, message) = &pages[3].verdicts.errors()[0];
    assert!(
        message.starts_with("plugin `hostile` was given up on for the rest of the run: "),
        "{message}"
    );
    assert!(message.contains("exceeded the deadline"), "{message}");
}

#[test]
fn a_condition_that_keeps_trapping_is_given_up_after_its_failed_calls() {
    let host = common::host_with(Limits {
        failed_calls: 10,
        max_batch: 8,
        ..Limits::default()
    });
    let mut condition = hostile(&host, r#"{"behaviour":"trap"}"#, None);
    let customers = all_hostile(&host, 300);
    let calls: u32 = customers
        .chunks(50)
        .map(|page| condition.evaluate(AS_OF, page).calls)
        .sum();
    assert_eq!(calls, 10, "the failed calls stop at the budget");
    // A fresh preparation (the next run) starts with a fresh budget.
    let mut next = hostile(&host, r#"{"behaviour":"trap"}"#, None);
    let ev = next.evaluate(AS_OF, &benign(&host));
    assert_eq!(ev.verdicts.to_vec(), vec![Verdict::Match, Verdict::Match]);
}

#[test]
fn strings_interned_while_evaluating_live_for_their_call_only() {
    let host = common::host();
    let mut condition = hostile(&host, r#"{"behaviour":"intern","size":1000}"#, None);
    let customers = all_hostile(&host, 500);
    let before = host.interner().len();
    for _ in 0..5 {
        let ev = condition.evaluate(AS_OF, &customers);
        assert_eq!(ev.verdicts.matches(), 500, "{:?}", ev.failures);
    }
    assert_eq!(
        host.interner().len(),
        before,
        "the plugin's strings went nowhere"
    );
}

#[test]
fn interning_past_the_limit_of_a_call_is_a_failure() {
    // Fuel enough to build the string: the limit on interning is what must stop it.
    let host = common::host_with(Limits {
        fuel_per_call: u64::MAX / 2,
        ..Limits::default()
    });
    let mut condition = hostile(&host, r#"{"behaviour":"intern","size":2097152}"#, None);
    let customers = batch(&host);
    let before = host.interner().len();
    let ev = condition.evaluate(AS_OF, &customers);
    assert_eq!(
        ev.failures,
        vec![Failure::Symbols(
            "interned more than 1024 KiB of new strings in one call".into()
        )]
    );
    let verdicts = ev.verdicts.to_vec();
    assert_eq!(
        verdicts[0],
        Verdict::Match,
        "the failure is pinned on its customer"
    );
    assert!(
        matches!(&verdicts[1], Verdict::Error(m) if m.contains("1024 KiB")),
        "{verdicts:?}"
    );
    assert_eq!(host.interner().len(), before);

    let host = common::host_with(Limits {
        interned_strings_per_call: 10,
        ..Limits::default()
    });
    let mut many = hostile(&host, r#"{"behaviour":"intern","size":1}"#, None);
    let ev = many.evaluate(AS_OF, &all_hostile(&host, 11));
    assert!(
        ev.failures.iter().all(|f| *f
            == Failure::Symbols("interned more than 10 new strings in one call".into())),
        "{:?}",
        ev.failures
    );
}

#[test]
fn what_a_plugin_adds_to_the_shared_table_is_bounded() {
    let host = common::host_with(Limits {
        interned_bytes_per_plugin: 4 << 10,
        ..Limits::default()
    });
    let plugin = host.load_file(HOSTILE_PATH).expect("hostile plugin loads");
    let prepare = |salt: usize| {
        plugin.prepare(
            &format!(r#"{{"behaviour":"trap","path":"{salt}","prepare_size":1000}}"#),
            None,
        )
    };
    // The same configuration again adds nothing; new strings add up.
    for salt in [0, 0, 1, 2, 3] {
        prepare(salt).expect("within the plugin's share");
    }
    let err = prepare(4).expect_err("past the plugin's share");
    assert_eq!(
        err.to_string(),
        "plugin `hostile` failed while preparing: added more than 4 KiB of strings to the \
         host's table"
    );
}
