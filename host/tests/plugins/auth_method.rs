//! The authorization-method plugin.

use crate::common::{config_errors, verdicts};
use cohort_artifacts::AUTH_METHOD;
use cohort_model::Verdict::{Match, NoMatch};

#[test]
fn any_of_the_methods_matches_in_any_case() {
    let got = verdicts(
        AUTH_METHOD,
        r#"{"methods":["Google","phone"]}"#,
        None,
        0,
        &[
            r#"{"id":"1","auth_methods":["google"]}"#,
            r#"{"id":"2","auth_methods":["login-password","PHONE"]}"#,
            r#"{"id":"3","auth_methods":["facebook"]}"#,
            r#"{"id":"4"}"#,
            r#"{"id":"5","auth_methods":["telegram","google"]}"#,
        ],
    );
    assert_eq!(got, vec![Match, Match, NoMatch, NoMatch, Match]);
}

#[test]
fn a_method_the_platform_invented_works_too() {
    let got = verdicts(
        AUTH_METHOD,
        r#"{"methods":["sso-keycloak"]}"#,
        None,
        0,
        &[r#"{"id":"1","auth_methods":["SSO-Keycloak"]}"#],
    );
    assert_eq!(got, vec![Match]);
}

#[test]
fn bad_configuration_is_named() {
    assert_eq!(
        config_errors(AUTH_METHOD, r#"{"methods":[]}"#, None)[0].0,
        "/methods"
    );
    assert_eq!(
        config_errors(AUTH_METHOD, r#"{"methods":"google"}"#, None)[0].0,
        "/methods"
    );
}
