//! The country plugin.

use crate::common;
use cohort_artifacts::COUNTRY;
use cohort_host::PrepareError;
use cohort_model::Verdict::{self, Match, NoMatch};

fn verdicts(config: &str, countries: &[&str]) -> Vec<Verdict> {
    let host = common::host();
    let plugin = host.load(COUNTRY).expect("loads");
    let customers = common::with_country(&host, countries);
    let mut condition = plugin.prepare(config, None).expect("valid config");
    condition
        .evaluate(1_700_000_000, &customers)
        .verdicts
        .to_vec()
}

fn config_errors(config: &str) -> Vec<(String, String)> {
    let host = common::host();
    let plugin = host.load(COUNTRY).expect("loads");
    match plugin.prepare(config, None) {
        Err(PrepareError::Config { plugin, errors }) => {
            assert_eq!(plugin, "country");
            errors.into_iter().map(|e| (e.path, e.message)).collect()
        }
        other => panic!("expected configuration errors, got {other:?}"),
    }
}

#[test]
fn matches_one_of_the_set() {
    assert_eq!(
        verdicts(r#"{"countries":["DE","FR"]}"#, &["DE", "FR", "GB", "us"]),
        vec![Match, Match, NoMatch, NoMatch]
    );
}

#[test]
fn codes_are_case_insensitive_on_both_sides() {
    assert_eq!(
        verdicts(r#"{"countries":["de", "Gb"]}"#, &["De", "gb", "fr"]),
        vec![Match, Match, NoMatch]
    );
}

#[test]
fn a_customer_without_a_country_does_not_match() {
    assert_eq!(
        verdicts(r#"{"countries":["DE"]}"#, &["", "DE"]),
        vec![NoMatch, Match]
    );
}

#[test]
fn verdicts_keep_their_order_across_batches() {
    let mut codes = Vec::new();
    for i in 0..2500 {
        codes.push(if i % 3 == 0 { "DE" } else { "FR" });
    }
    let got = verdicts(r#"{"countries":["DE"]}"#, &codes);
    let want: Vec<Verdict> = (0..2500)
        .map(|i| if i % 3 == 0 { Match } else { NoMatch })
        .collect();
    assert_eq!(got, want);
}

#[test]
fn unknown_codes_are_rejected_each_with_its_index() {
    let errors = config_errors(r#"{"countries":["DE","XX","FR","UK"]}"#);
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert_eq!(errors[0].0, "/countries/1");
    assert!(errors[0].1.contains("`XX`"), "{errors:?}");
    assert_eq!(errors[1].0, "/countries/3");
}

#[test]
fn an_empty_set_is_rejected() {
    assert_eq!(config_errors(r#"{"countries":[]}"#)[0].0, "/countries");
}

#[test]
fn unknown_keys_and_wrong_types_are_rejected() {
    let errors = config_errors(r#"{"countries":["DE"],"negate":true}"#);
    assert!(errors[0].1.contains("`negate`"), "{errors:?}");
    let errors = config_errors(r#"{"countries":"DE"}"#);
    assert_eq!(errors[0].0, "/countries");
    let errors = config_errors("not json");
    assert_eq!(errors[0].0, "");
}

#[test]
fn a_data_directory_is_not_granted_to_a_plugin_that_did_not_ask() {
    let host = common::host();
    let plugin = host.load(COUNTRY).expect("loads");
    let dir = tempfile::tempdir().expect("tempdir");
    let err = plugin
        .prepare(r#"{"countries":["DE"]}"#, Some(dir.path()))
        .expect_err("grant refused");
    assert!(matches!(err, PrepareError::Grant { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("does not ask for a data directory"),
        "{err}"
    );
}
