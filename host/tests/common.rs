//! Helpers shared by the host's integration tests.
#![allow(
    dead_code,
    reason = "each test binary that includes these helpers uses some of them"
)]

use std::sync::Arc;

use cohort_host::{Host, HostConfig, Limits};
use cohort_model::{Customer, CustomerRecord, Interner};

pub fn host() -> Host {
    host_with(Limits::default())
}

pub fn host_with(limits: Limits) -> Host {
    Host::new(
        HostConfig {
            limits,
            // Shared by the tests of one run so that each plugin is compiled once.
            cache_dir: Some(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("plugin-cache")),
            ..HostConfig::default()
        },
        Arc::new(Interner::new()),
    )
    .expect("host starts")
}

/// Customers from JSON objects, interned into the host's table.
pub fn customers(host: &Host, json: &[&str]) -> Vec<Customer> {
    json.iter()
        .map(|j| {
            serde_json::from_str::<CustomerRecord>(j)
                .expect("test customer parses")
                .intern(host.interner())
                .expect("test customer is valid")
        })
        .collect()
}

pub fn with_country(host: &Host, codes: &[&str]) -> Vec<Customer> {
    let json: Vec<String> = codes
        .iter()
        .enumerate()
        .map(|(i, c)| {
            if c.is_empty() {
                format!(r#"{{"id":"{i}"}}"#)
            } else {
                format!(r#"{{"id":"{i}","country":"{c}"}}"#)
            }
        })
        .collect();
    customers(host, &json.iter().map(String::as_str).collect::<Vec<_>>())
}

/// Verdicts of `plugin` (wasm bytes) with `config` over customers given as JSON.
pub fn verdicts(
    plugin: &[u8],
    config: &str,
    data_dir: Option<&std::path::Path>,
    as_of: i64,
    json: &[&str],
) -> Vec<cohort_model::Verdict> {
    let host = host();
    let plugin = host.load(plugin).expect("plugin loads");
    let customers = customers(&host, json);
    let mut condition = plugin
        .prepare(config, data_dir)
        .unwrap_or_else(|e| panic!("config {config} must be valid: {e}"));
    condition.evaluate(as_of, &customers).verdicts.to_vec()
}

/// The (path, message) of each configuration error `plugin` reports for `config`.
pub fn config_errors(
    plugin: &[u8],
    config: &str,
    data_dir: Option<&std::path::Path>,
) -> Vec<(String, String)> {
    let host = host();
    let plugin = host.load(plugin).expect("plugin loads");
    match plugin.prepare(config, data_dir) {
        Err(cohort_host::PrepareError::Config { errors, .. }) => {
            errors.into_iter().map(|e| (e.path, e.message)).collect()
        }
        other => panic!("expected configuration errors for {config}, got {other:?}"),
    }
}

/// What `plugin` says of each customer (given as JSON) with `config` as of `as_of`:
/// its verdict, until when the verdict holds, and its explanation.
pub fn told(
    plugin: &[u8],
    config: &str,
    as_of: i64,
    json: &[&str],
) -> Vec<(cohort_model::Verdict, i64, String)> {
    told_in(plugin, config, None, as_of, json)
}

/// [`told`], with `data_dir` granted.
pub fn told_in(
    plugin: &[u8],
    config: &str,
    data_dir: Option<&std::path::Path>,
    as_of: i64,
    json: &[&str],
) -> Vec<(cohort_model::Verdict, i64, String)> {
    let host = host();
    let plugin = host.load(plugin).expect("plugin loads");
    let customers = customers(&host, json);
    let mut condition = plugin
        .prepare(config, data_dir)
        .unwrap_or_else(|e| panic!("config {config} must be valid: {e}"));
    let verdicts = condition.evaluate(as_of, &customers).verdicts;
    let explained = condition
        .explain(as_of, &customers)
        .expect("explains")
        .expect("a plugin of contract 0.3.0");
    explained
        .into_iter()
        .enumerate()
        .map(|(i, sentence)| {
            (
                verdicts.get(i).expect("a verdict each").to_owned(),
                verdicts.until(i),
                sentence,
            )
        })
        .collect()
}
