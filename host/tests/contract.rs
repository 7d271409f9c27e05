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
    assert_eq!(plugin.contract_version(), "0.3.0");
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
    let config = caching_in(dir.path());
    let first = Host::new(config.clone(), Arc::new(Interner::new())).expect("host");
    assert_eq!(
        first.load(COUNTRY).expect("loads").compiled(),
        Compiled::Fresh
    );
    assert_eq!(compiled_in(dir.path()).len(), 1, "one artifact written");

    let second = Host::new(config, Arc::new(Interner::new())).expect("host");
    let plugin = second.load(COUNTRY).expect("loads from cache");
    assert_eq!(plugin.compiled(), Compiled::FromDiskCache);
    // The cached artifact must run, not just load.
    answers_for_germany(&second, &plugin);
}

/// The country plugin, loaded by `host`, finds a German customer German.
fn answers_for_germany(host: &Host, plugin: &Arc<cohort_host::Plugin>) {
    let customers = common::with_country(host, &["DE"]);
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
    let config = caching_in(dir.path());
    Host::new(config.clone(), Arc::new(Interner::new()))
        .expect("host")
        .load(COUNTRY)
        .expect("loads");
    let entry = compiled_in(dir.path()).pop().expect("one entry");
    std::fs::write(&entry, b"garbage").expect("corrupt it");
    let host = Host::new(config, Arc::new(Interner::new())).expect("host");
    assert_eq!(
        host.load(COUNTRY).expect("loads").compiled(),
        Compiled::Fresh
    );
}

#[test]
fn a_cache_entry_changed_anywhere_is_never_run_but_recompiled() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = caching_in(dir.path());
    Host::new(config.clone(), Arc::new(Interner::new()))
        .expect("host")
        .load(COUNTRY)
        .expect("loads");
    let entry = compiled_in(dir.path()).pop().expect("one entry");
    let good = std::fs::read(&entry).expect("read");
    // A byte of the machine code changed, and the file cut short: wasmtime's own
    // header checks pass the first, so the cache must notice both itself.
    let mut changed = good.clone();
    let middle = changed.len() / 2;
    changed[middle] ^= 0x40;
    let cut = good[..good.len() - 100].to_vec();
    for bad in [changed, cut] {
        std::fs::write(&entry, &bad).expect("tamper");
        let host = Host::new(config.clone(), Arc::new(Interner::new())).expect("host");
        let plugin = host.load(COUNTRY).expect("loads");
        assert_eq!(plugin.compiled(), Compiled::Fresh);
        // Recompiled, it runs as it should, and the entry is whole again.
        answers_for_germany(&host, &plugin);
        let again = Host::new(config.clone(), Arc::new(Interner::new())).expect("host");
        assert_eq!(
            again.load(COUNTRY).expect("loads").compiled(),
            Compiled::FromDiskCache
        );
    }
}

/// The compiled plugins in the cache `dir` (beside them is the cache's key).
fn compiled_in(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "cwasm"))
                .collect()
        })
        .unwrap_or_default()
}

/// A host's settings with its compile cache in `dir`.
fn caching_in(dir: &std::path::Path) -> HostConfig {
    HostConfig {
        cache_dir: Some(dir.to_path_buf()),
        ..HostConfig::default()
    }
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
        "tags":["hostile","vip"],
        "attributes":{"segment":"b2b","balance":12.5,"seats":3,
                      "renewal":{"timestamp":"2026-09-01T00:00:00Z"}},
        "registered_at":"2025-06-01T00:00:00Z"}"#,
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
    // Every fact 0.1.0 has: all but the registration time, which came with 0.3.0.
    assert_eq!(plugin.info().reads.iter().count(), Field::ALL.len() - 1);

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
    // An older contract reads attributes as text: the typed ones are left out.
    assert!(
        old[0].contains("Pair") && !old[0].contains("Decimal"),
        "{}",
        old[0]
    );
}

#[test]
fn contract_0_3_carries_typed_attributes_and_the_registration_time() {
    let host = common::host();
    let typed = echoed(&host, HOSTILE_PATH, r#"{"behaviour":"echo-typed"}"#);
    let symbol = |t: &str| host.interner().lookup(t).expect("interned").as_u32();
    assert_eq!(
        typed[0],
        format!(
            "([Attribute {{ key: {}, value: Value::Decimal(Decimal {{ units: 125, scale: 1 }}) }}, \
             Attribute {{ key: {}, value: Value::Timestamp(1788220800) }}, \
             Attribute {{ key: {}, value: Value::Integer(3) }}, \
             Attribute {{ key: {}, value: Value::Text({}) }}], Some(1748736000))",
            symbol("balance"),
            symbol("renewal"),
            symbol("seats"),
            symbol("segment"),
            symbol("b2b"),
        )
    );
    assert_eq!(typed[1], "([], None)", "nothing sent, nothing read");
}

#[test]
fn verdicts_say_how_long_they_hold_and_older_contracts_for_their_time_only() {
    let host = common::host();
    let customers = common::customers(&host, ASSORTED);
    let until = |path: &str, config: &str| -> Vec<i64> {
        let mut condition = host
            .load_file(path)
            .expect("loads")
            .prepare(config, None)
            .expect("prepares");
        let verdicts = condition.evaluate(1_000, &customers).verdicts;
        (0..verdicts.len()).map(|i| verdicts.until(i)).collect()
    };
    assert_eq!(
        until(HOSTILE_PATH, r#"{"behaviour":"expire","size":3600}"#),
        vec![4_600; 3]
    );
    assert_eq!(
        until(COUNTRY_PATH, r#"{"countries":["DE"]}"#),
        vec![cohort_model::FOREVER; 3],
        "a country holds as long as the customer's facts"
    );
    assert_eq!(until(LEGACY_PATH, r#"{"tag":"vip"}"#), vec![1_001; 3]);
}

#[test]
fn a_plugin_explains_its_verdict_and_an_older_one_cannot() {
    let host = common::host();
    let customers = common::with_country(&host, &["US", "de", ""]);
    let mut country = host
        .load_file(COUNTRY_PATH)
        .expect("loads")
        .prepare(r#"{"countries":["fr","DE"]}"#, None)
        .expect("prepares");
    assert_eq!(
        country.explain(0, &customers).expect("explains"),
        Some(vec![
            "country `US` is not one of `DE`, `FR`".to_string(),
            "country `DE` is one of `DE`, `FR`".to_string(),
            "no country is given; the rule asks for one of `DE`, `FR`".to_string(),
        ])
    );
    let mut legacy = host
        .load_file(LEGACY_PATH)
        .expect("loads")
        .prepare(r#"{"tag":"vip"}"#, None)
        .expect("prepares");
    assert_eq!(legacy.explain(0, &customers).expect("no failure"), None);
}

/// A component of the 0.2.0 contract as changed by `edit`, whose functions all trap:
/// what a plugin author gets from bindings of a WIT file that drifted from ours.
fn component_of_changed_contract(edit: impl Fn(String) -> String) -> Vec<u8> {
    let wit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../wit/0.2.0/plugin.wit"
    ))
    .expect("the contract");
    let mut resolve = wit_parser::Resolve::default();
    let package = resolve
        .push_str("plugin.wit", &edit(wit))
        .expect("the changed contract parses");
    let world = resolve
        .select_world(&[package], Some("plugin"))
        .expect("the plugin world");
    let mut module =
        wit_component::dummy_module(&resolve, world, wit_parser::ManglingAndAbi::Standard32);
    wit_component::embed_component_metadata(
        &mut module,
        &resolve,
        world,
        wit_component::StringEncoding::UTF8,
    )
    .expect("metadata");
    wit_component::ComponentEncoder::default()
        .module(&module)
        .expect("module")
        .validate(true)
        .encode()
        .expect("a component")
}

#[test]
fn an_export_of_another_type_breaks_the_contract_and_is_not_called_a_trap() {
    let component = component_of_changed_contract(|wit| {
        wit.replace(
            "describe: func() -> plugin-info;",
            "describe: func() -> string;",
        )
    });
    let err = load_err(&component);
    let text = err.to_string();
    assert!(text.contains("contract"), "{text}");
    assert!(!text.contains("trapped"), "{text}");
}

#[test]
fn a_refused_component_is_neither_compiled_nor_cached() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = Host::new(caching_in(dir.path()), Arc::new(Interner::new())).expect("host");
    // Refused from its export names alone, and again when cut short (then as invalid,
    // from the parse that reads those names).
    let mut future = component_of_changed_contract(|wit| {
        wit.replace(
            "package cohort:plugin@0.2.0;",
            "package cohort:plugin@0.9.0;",
        )
    });
    let err = host.load(&future).expect_err("an unsupported contract");
    assert!(
        matches!(err, LoadError::UnsupportedContract { .. }),
        "{err}"
    );
    future.truncate(future.len() - 1);
    assert!(matches!(
        host.load(&future).expect_err("still refused"),
        LoadError::Invalid(_) | LoadError::UnsupportedContract { .. }
    ));
    // Compiled, but refused when it describes itself (its functions trap).
    let trapping = component_of_changed_contract(|wit| wit);
    let err = host.load(&trapping).expect_err("describe traps");
    assert!(matches!(err, LoadError::Describe(_)), "{err}");
    assert!(
        compiled_in(dir.path()).is_empty(),
        "nothing refused is cached"
    );
    host.load(COUNTRY).expect("loads");
    assert_eq!(compiled_in(dir.path()).len(), 1);
}

#[test]
fn the_compile_cache_keeps_within_its_bound_and_prunes_what_no_engine_here_can_use() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = caching_in(dir.path());
    let host = Host::new(config.clone(), Arc::new(Interner::new())).expect("host");
    host.load(COUNTRY).expect("loads");
    let entry = compiled_in(dir.path()).pop().expect("one entry");
    let size = entry.metadata().expect("meta").len();
    let stale = dir
        .path()
        .join(format!("{}-0123456789abcdef.cwasm", "ab".repeat(32)));
    std::fs::write(&stale, b"from another wasmtime").expect("write");
    let unrelated = dir.path().join("notes.txt");
    std::fs::write(&unrelated, b"not the cache's").expect("write");

    let pruned = host.prune_cache().expect("prunes");
    assert_eq!((pruned.removed, pruned.kept), (1, 1), "{pruned:?}");
    assert!(!stale.exists() && entry.exists() && unrelated.exists());

    // A bound that holds either plugin but not both keeps the newer only.
    let hostile = std::fs::read(HOSTILE_PATH).expect("the hostile plugin");
    let elsewhere = tempfile::tempdir().expect("tempdir");
    Host::new(caching_in(elsewhere.path()), Arc::new(Interner::new()))
        .expect("host")
        .load(&hostile)
        .expect("loads");
    let hostile_size = compiled_in(elsewhere.path())
        .iter()
        .map(|p| p.metadata().expect("meta").len())
        .sum::<u64>();
    let small = Host::new(
        HostConfig {
            cache_max_bytes: size.max(hostile_size) + size.min(hostile_size) / 2,
            ..config
        },
        Arc::new(Interner::new()),
    )
    .expect("host");
    // File times are coarse on some file systems: make the newer entry newer.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    small.load(&hostile).expect("loads");
    let left: Vec<String> = std::fs::read_dir(dir.path())
        .expect("cache")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".cwasm"))
        .collect();
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(!entry.exists(), "the older entry went");
}
