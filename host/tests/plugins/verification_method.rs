//! The verification-method plugin.

use crate::common::{config_errors, verdicts};
use cohort_artifacts::VERIFICATION_METHOD;
use cohort_model::Verdict::{Match, NoMatch};

const CUSTOMERS: [&str; 4] = [
    r#"{"id":"both","verification_methods":["email","phone"]}"#,
    r#"{"id":"email","verification_methods":["Email"]}"#,
    r#"{"id":"manual","verification_methods":["manual"]}"#,
    r#"{"id":"none"}"#,
];

#[test]
fn a_customer_verified_several_ways_matches_each() {
    let email = verdicts(
        VERIFICATION_METHOD,
        r#"{"methods":["email"]}"#,
        None,
        0,
        &CUSTOMERS,
    );
    assert_eq!(email, vec![Match, Match, NoMatch, NoMatch]);
    let phone = verdicts(
        VERIFICATION_METHOD,
        r#"{"methods":["phone"]}"#,
        None,
        0,
        &CUSTOMERS,
    );
    assert_eq!(phone, vec![Match, NoMatch, NoMatch, NoMatch]);
    let either = verdicts(
        VERIFICATION_METHOD,
        r#"{"methods":["manual","payment-method"]}"#,
        None,
        0,
        &CUSTOMERS,
    );
    assert_eq!(either, vec![NoMatch, NoMatch, Match, NoMatch]);
}

#[test]
fn bad_configuration_is_named() {
    assert_eq!(
        config_errors(VERIFICATION_METHOD, r#"{"methods":["email",""]}"#, None)[0].0,
        "/methods/1"
    );
}
