//! Loading: what the host accepts as a plugin, and the error it gives for what it does
//! not.

mod common;

use std::sync::Arc;

use cohort_artifacts::{COUNTRY, COUNTRY_PATH, HOSTILE_PATH, LEGACY_PATH};
use cohort_host::{Compiled, Host, HostConfig, LoadError, PrepareError};
use cohort_model::{Field, Interner, Verdict};

#[test]
fn country_plugin_loads_and_describes_itself() {
    let host = common::host();
    let plugin = host.load_file(COUNTRY_PATH).expect("country loads");
    let info = plugin.info();
    assert_eq!(info.id, "country");
    assert_eq!(plugin.contract_version(), "0.2.0");
    assert!(info.reads.contains(Field::Country));
    assert_eq!(info.reads.iter().count(), 1, "reads only the country");
    assert!(info.capabilities.is_empty());
    let schema: serde_json::Value =
        serde_json::from_str(&info.config_schema).expect("schema is JSON");
    assert_eq!(schema["required"][0], "countries");
    assert_eq!(plugin.sha256().len(), 64);
}

#[test]
fn same_bytes_load_once() {
    let host = common::host();
    let a = host.load(COUNTRY).expect("loads");
    let b = host.load_file(COUNTRY_PATH).expect("loads again");
    assert!(Arc::ptr_eq(&a, &b), "second load must come from the cache");
}

#[test]
fn compiled_plugins_are_reused_from_the_disk_cache() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = HostConfig {
        cache_dir: Some(dir.path().to_path_buf()),
        ..HostConfig::default()
    };
    let first = Host::new(config.clone(), Arc::new(Interner::new())).expect("host");
    assert_eq!(
        first.load(COUNTRY).expect("loads").compiled(),
        Compiled::Fresh
    );
    let files = std::fs::read_dir(dir.path()).expect("cache dir").count();
    assert_eq!(files, 1, "one artifact written");

    let second = Host::new(config, Arc::new(Interner::new())).expect("host");
    let plugin = second.load(COUNTRY).expect("loads from cache");
    assert_eq!(plugin.compiled(), Compiled::FromDiskCache);
    // The cached artifact must run, not just load.
    let customers = common::with_country(&second, &["DE"]);
    let mut c = plugin
        .prepare(r#"{"countries":["de"]}"#, None)
        .expect("prepares");
    assert_eq!(
        c.evaluate(0, &customers).verdicts.to_vec(),
        vec![cohort_model::Verdict::Match]
    );
}

#[test]
fn a_corrupt_cache_entry_is_recompiled() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = HostConfig {
        cache_dir: Some(dir.path().to_path_buf()),
        ..HostConfig::default()
    };
    Host::new(config.clone(), Arc::new(Interner::new()))
        .expect("host")
        .load(COUNTRY)
        .expect("loads");
    let entry = std::fs::read_dir(dir.path())
        .expect("cache dir")
        .next()
        .expect("one entry")
        .expect("entry")
        .path();
    std::fs::write(&entry, b"garbage").expect("corrupt it");
    let host = Host::new(config, Arc::new(Interner::new())).expect("host");
    assert_eq!(
        host.load(COUNTRY).expect("loads").compiled(),
        Compiled::Fresh
    );
}

fn load_err(bytes: &[u8]) -> LoadError {
    common::host().load(bytes).expect_err("must be refused")
}

#[test]
fn garbage_is_not_wasm() {
    let err = load_err(b"#!/bin/sh\necho hi\n");
    assert!(matches!(err, LoadError::NotWasm), "{err}");
}

#[test]
fn core_module_is_told_to_become_a_component() {
    let module = wat::parse_str("(module (func (export \"f\")))").expect("wat");
    let err = load_err(&module);
    assert!(matches!(err, LoadError::CoreModule), "{err}");
    assert!(err.to_string().contains("wasm32-wasip2"), "{err}");
}

#[test]
fn truncated_component_is_invalid() {
    let err = load_err(&COUNTRY[..COUNTRY.len() / 2]);
    assert!(matches!(err, LoadError::Invalid(_)), "{err}");
}

/// A component exporting one function `describe` from an instance named `export`.
fn component_exporting(export: &str) -> Vec<u8> {
    wat::parse_str(format!(
        r#"(component
            (core module $m (func (export "f")))
            (core instance $i (instantiate $m))
            (func $f (canon lift (core func $i "f")))
            (instance $inst (export "describe" (func $f)))
            (export "{export}" (instance $inst)))"#
    ))
    .expect("wat")
}

#[test]
fn wrong_world_names_what_it_exports() {
    let err = load_err(&component_exporting("wasi:cli/run@0.2.0"));
    assert!(matches!(err, LoadError::WrongWorld { .. }), "{err}");
    assert!(err.to_string().contains("`wasi:cli/run@0.2.0`"), "{err}");
}

#[test]
fn unsupported_contract_version_is_named() {
    let err = load_err(&component_exporting("cohort:plugin/condition@9.0.0"));
    assert!(
        matches!(err, LoadError::UnsupportedContract { .. }),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains("cohort:plugin@9.0.0") && text.contains("0.1.0"),
        "{text}"
    );
}

#[test]
fn missing_export_is_a_contract_error() {
    let err = load_err(&component_exporting("cohort:plugin/condition@0.1.0"));
    assert!(matches!(err, LoadError::Contract { .. }), "{err}");
    assert!(err.to_string().contains("0.1.0"), "{err}");
}

#[test]
fn unknown_import_of_a_condition_plugin_is_named() {
    // The condition export of a real plugin, plus an import the host lacks.
    let component = wat::parse_str(
        r#"(component
            (import "acme:billing/ledger@1.0.0" (instance (export "balance" (func (result u64)))))
            (core module $m (func (export "f")))
            (core instance $i (instantiate $m))
            (func $f (canon lift (core func $i "f")))
            (instance $inst (export "describe" (func $f)))
            (export "cohort:plugin/condition@0.1.0" (instance $inst)))"#,
    )
    .expect("wat");
    let err = load_err(&component);
    assert!(matches!(err, LoadError::Imports(_)), "{err}");
    assert!(err.to_string().contains("acme:billing/ledger"), "{err}");
}

/// Customers with every fact, with none, and in between; all tagged `hostile` so that
/// the hostile plugin acts on them.
const ASSORTED: &[&str] = &[
    r#"{"id":"1","country":"DE","registration_ip":"2001:db8::1",
        "registration_params":{"fromsite":"true","campaign":"spring"},
        "payers":[{"kind":"individual"},{"kind":"legal_entity","active":false}],
        "provider":"main","auth_methods":["phone","password"],
        "verification_status":"passed","verification_methods":["email"],
        "subscriptions":[{"product":"tower","start":"2026-01-01T00:00:00Z"},
                         {"product":"vps","status":"suspended","start":"2026-02-01T00:00:00Z",
                          "end":"2026-03-01T00:00:00Z"}],
        "tags":["hostile","vip"],"attributes":{"segment":"b2b"}}"#,
    r#"{"id":"2","tags":["hostile"]}"#,
    r#"{"id":"3","registration_ip":"81.2.69.142","verification_status":"failed",
        "payers":[{"kind":"sole_proprietor"}],"tags":["hostile"]}"#,
];

#[test]
fn a_plugin_built_against_contract_0_1_still_loads_and_answers() {
    let host = common::host();
    let plugin = host.load_file(LEGACY_PATH).expect("a 0.1.0 plugin loads");
    assert_eq!(plugin.contract_version(), "0.1.0");
    assert_eq!(plugin.info().id, "legacy");
    assert_eq!(plugin.info().reads.iter().count(), Field::ALL.len());

    let err = plugin
        .prepare(r#"{"tag":""}"#, None)
        .expect_err("an empty tag is refused");
    let PrepareError::Config { errors, .. } = &err else {
        panic!("a configuration error, not {err}");
    };
    assert_eq!(errors[0].path, "/tag", "the 0.1.0 error names its field");

    let customers = common::customers(&host, ASSORTED);
    let mut vip = plugin.prepare(r#"{"tag":"vip"}"#, None).expect("prepares");
    assert_eq!(
        vip.evaluate(0, &customers).verdicts.to_vec(),
        vec![Verdict::Match, Verdict::NoMatch, Verdict::NoMatch]
    );
}

/// The facts each customer of `ASSORTED` was sent, as the plugin at `path` reports them.
fn echoed(host: &Host, path: &str, config: &str) -> Vec<String> {
    let customers = common::customers(host, ASSORTED);
    let mut condition = host
        .load_file(path)
        .expect("loads")
        .prepare(config, None)
        .expect("prepares");
    condition
        .evaluate(0, &customers)
        .verdicts
        .to_vec()
        .into_iter()
        .map(|v| match v {
            Verdict::Error(facts) => facts,
            other => panic!("echo answers no decision, not {other:?}"),
        })
        .collect()
}

#[test]
fn both_contract_versions_carry_every_fact_alike() {
    let host = common::host();
    let old = echoed(&host, LEGACY_PATH, r#"{"tag":"vip","echo":true}"#);
    let new = echoed(&host, HOSTILE_PATH, r#"{"behaviour":"echo"}"#);
    assert_eq!(old, new);
    // The comparison means something only if the facts got there.
    assert!(
        old[0].contains("Ipv6((2306139568115548160, 1))")
            && old[0].contains("SubscriptionStatus::Suspended")
            && old[0].contains("PayerKind::LegalEntity")
            && old[0].contains("VerificationStatus::Passed"),
        "{}",
        old[0]
    );
    assert!(old[2].contains("Ipv4(1359103374)"), "{}", old[2]);
}
