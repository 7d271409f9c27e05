//! The GeoIP country plugin, against MaxMind's public test databases in
//! `../shared/testdata/geoip/` granted as the plugin's read-only data directory.

use std::path::{Path, PathBuf};

use crate::common::{self, config_errors, verdicts};
use cohort_artifacts::GEOIP_COUNTRY;
use cohort_host::PrepareError;
use cohort_model::Verdict::{self, Match, NoMatch};

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata/geoip")
}

const CUSTOMERS: [&str; 8] = [
    r#"{"id":"gb","registration_ip":"81.2.69.142"}"#,
    r#"{"id":"us","registration_ip":"216.160.83.56"}"#,
    r#"{"id":"se","registration_ip":"89.160.20.112"}"#,
    r#"{"id":"no-v6","registration_ip":"2a02:cf40::1"}"#,
    r#"{"id":"jp-v6","registration_ip":"2001:218::1"}"#,
    r#"{"id":"unknown","registration_ip":"1.1.1.1"}"#,
    r#"{"id":"no-ip","country":"GB"}"#,
    r#"{"id":"gb-mapped","registration_ip":"::ffff:81.2.69.142"}"#,
];

fn run(countries: &str, database: &str) -> Vec<Verdict> {
    let config = format!(r#"{{"countries":{countries},"database":"{database}"}}"#);
    verdicts(GEOIP_COUNTRY, &config, Some(&testdata()), 0, &CUSTOMERS)
}

#[test]
fn the_country_of_the_registration_ip_ipv4_and_ipv6() {
    assert_eq!(
        run(r#"["gb","NO"]"#, "GeoIP2-Country-Test.mmdb"),
        vec![
            Match, NoMatch, NoMatch, Match, NoMatch, NoMatch, NoMatch, Match
        ]
    );
    assert_eq!(
        run(r#"["JP","SE"]"#, "GeoLite2-Country-Test.mmdb"),
        vec![
            NoMatch, NoMatch, Match, NoMatch, Match, NoMatch, NoMatch, NoMatch
        ]
    );
}

#[test]
fn the_country_is_where_the_address_is_not_where_it_was_registered() {
    // 81.2.69.142 is in GB but registered to a US organisation; 216.160.83.56 the
    // other way round.
    assert_eq!(
        run(r#"["US"]"#, "GeoIP2-Country-Test.mmdb")[..2],
        [NoMatch, Match]
    );
}

#[test]
fn a_corrupt_database_is_refused_when_the_rule_is_saved() {
    // MaxMind's deliberately broken database: its search tree has invalid nodes, which
    // a lookup would report as "not found". Verification catches it up front.
    let errors = config_errors(
        GEOIP_COUNTRY,
        r#"{"countries":["GB"],"database":"MaxMind-DB-test-broken-search-tree-24.mmdb"}"#,
        Some(&testdata()),
    );
    assert_eq!(errors[0].0, "/database");
    assert!(
        errors[0].1.contains("is not a sound MaxMind database"),
        "{errors:?}"
    );
}

#[test]
fn a_missing_database_is_a_configuration_error() {
    let errors = config_errors(
        GEOIP_COUNTRY,
        r#"{"countries":["GB"],"database":"GeoLite2-Country.mmdb"}"#,
        Some(&testdata()),
    );
    assert_eq!(errors[0].0, "/database");
    // Named where the operator put it, in plain words: the sandbox's `/data` and its
    // error numbers mean nothing to an operator.
    let want = format!(
        "cannot read `{}/GeoLite2-Country.mmdb`: there is no such file",
        testdata().display()
    );
    assert!(errors[0].1.contains(&want), "{errors:?}");
}

#[test]
fn without_a_grant_the_database_cannot_be_read() {
    let errors = config_errors(
        GEOIP_COUNTRY,
        r#"{"countries":["GB"],"database":"GeoIP2-Country-Test.mmdb"}"#,
        None,
    );
    assert_eq!(errors[0].0, "/database");
    assert!(
        errors[0].1.contains("grant the plugin a data directory"),
        "{errors:?}"
    );
}

#[test]
fn a_file_that_is_not_a_database_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("countries.mmdb"), "just text").expect("write");
    let errors = config_errors(
        GEOIP_COUNTRY,
        r#"{"countries":["GB"],"database":"countries.mmdb"}"#,
        Some(dir.path()),
    );
    assert!(
        errors[0].1.contains("is not a sound MaxMind database"),
        "{errors:?}"
    );
}

#[test]
fn paths_outside_the_data_directory_are_refused() {
    for database in ["../LICENSE-MIT", "/etc/passwd", ""] {
        let config = format!(r#"{{"countries":["GB"],"database":"{database}"}}"#);
        let errors = config_errors(GEOIP_COUNTRY, &config, Some(&testdata()));
        assert_eq!(errors[0].0, "/database", "{database}: {errors:?}");
    }
}

#[test]
fn unknown_country_codes_are_rejected() {
    let errors = config_errors(
        GEOIP_COUNTRY,
        r#"{"countries":["GB","ZZ"],"database":"GeoIP2-Country-Test.mmdb"}"#,
        Some(&testdata()),
    );
    assert_eq!(errors[0].0, "/countries/1");
}

#[test]
fn the_plugin_asks_for_a_data_directory_and_it_must_be_one() {
    let host = common::host();
    let plugin = host.load(GEOIP_COUNTRY).expect("loads");
    assert_eq!(
        plugin.info().capabilities,
        vec![cohort_model::Capability::DataDir]
    );
    let missing = testdata().join("no-such-dir");
    let err = plugin
        .prepare(
            r#"{"countries":["GB"],"database":"x.mmdb"}"#,
            Some(&missing),
        )
        .expect_err("not a directory");
    assert!(matches!(err, PrepareError::Grant { .. }), "{err}");
}

#[test]
fn an_explanation_names_the_country_the_database_gives() {
    let config = r#"{"countries":["DE","SE"],"database":"GeoIP2-Country-Test.mmdb"}"#;
    let told = crate::common::told_in(GEOIP_COUNTRY, config, Some(&testdata()), 0, &CUSTOMERS);
    let why: Vec<&str> = told.iter().map(|t| t.2.as_str()).collect();
    assert_eq!(
        why[0],
        "`81.2.69.142` is in `GB` by the GeoIP database, not one of `DE`, `SE`"
    );
    assert_eq!(
        why[2],
        "`89.160.20.112` is in `SE` by the GeoIP database, one of `DE`, `SE`"
    );
    assert_eq!(why[5], "`1.1.1.1` has no country in the GeoIP database");
    assert_eq!(
        why[6],
        "no registration IP is given; the rule asks for one of `DE`, `SE`"
    );
    assert!(told.iter().all(|t| t.1 == cohort_model::FOREVER));
}
