//! The registration-parameter plugin.

use crate::common::{config_errors, verdicts};
use cohort_artifacts::REGISTRATION_PARAM;
use cohort_model::Verdict::{self, Match, NoMatch};

const CUSTOMERS: [&str; 5] = [
    r#"{"id":"1","registration_params":{"fromsite":"true","utm_source":"partner-42"}}"#,
    r#"{"id":"2","registration_params":{"fromsite":"false"}}"#,
    r#"{"id":"3","registration_params":{"utm_source":"Partner-7"}}"#,
    r#"{"id":"4"}"#,
    r#"{"id":"5","registration_params":{"FromSite":"true","utm_source":"newsletter"}}"#,
];

fn run(config: &str) -> Vec<Verdict> {
    verdicts(REGISTRATION_PARAM, config, None, 0, &CUSTOMERS)
}

#[test]
fn equals_compares_name_and_value_exactly() {
    assert_eq!(
        run(r#"{"name":"fromsite","operator":"equals","value":"true"}"#),
        vec![Match, NoMatch, NoMatch, NoMatch, NoMatch]
    );
}

#[test]
fn one_of() {
    assert_eq!(
        run(r#"{"name":"fromsite","operator":"one-of","values":["true","false"]}"#),
        vec![Match, Match, NoMatch, NoMatch, NoMatch]
    );
}

#[test]
fn present_whatever_the_value() {
    assert_eq!(
        run(r#"{"name":"utm_source","operator":"present"}"#),
        vec![Match, NoMatch, Match, NoMatch, Match]
    );
}

#[test]
fn matches_a_pattern_unanchored_and_case_insensitive_on_request() {
    assert_eq!(
        run(r#"{"name":"utm_source","operator":"matches","pattern":"^partner-\\d+$"}"#),
        vec![Match, NoMatch, NoMatch, NoMatch, NoMatch]
    );
    assert_eq!(
        run(r#"{"name":"utm_source","operator":"matches","pattern":"(?i)partner"}"#),
        vec![Match, NoMatch, Match, NoMatch, NoMatch]
    );
}

#[test]
fn operands_must_fit_the_operator() {
    let errors = config_errors(
        REGISTRATION_PARAM,
        r#"{"name":"a","operator":"equals"}"#,
        None,
    );
    assert_eq!(
        errors,
        vec![("/value".into(), "required by operator `equals`".into())]
    );
    let errors = config_errors(
        REGISTRATION_PARAM,
        r#"{"name":"a","operator":"present","value":"x"}"#,
        None,
    );
    assert_eq!(
        errors,
        vec![("/value".into(), "not used by operator `present`".into())]
    );
    let errors = config_errors(
        REGISTRATION_PARAM,
        r#"{"name":"a","operator":"one-of","values":[]}"#,
        None,
    );
    assert_eq!(errors[0].0, "/values");
}

#[test]
fn a_bad_pattern_or_operator_is_named() {
    let errors = config_errors(
        REGISTRATION_PARAM,
        r#"{"name":"a","operator":"matches","pattern":"(unclosed"}"#,
        None,
    );
    assert_eq!(errors[0].0, "/pattern");
    assert!(errors[0].1.contains("`(unclosed`"), "{errors:?}");
    let errors = config_errors(
        REGISTRATION_PARAM,
        r#"{"name":"a","operator":"like"}"#,
        None,
    );
    assert_eq!(errors[0].0, "/operator");
    let errors = config_errors(
        REGISTRATION_PARAM,
        r#"{"name":" ","operator":"present"}"#,
        None,
    );
    assert_eq!(errors[0].0, "/name");
}

#[test]
fn an_explanation_quotes_the_parameter_and_the_test() {
    let why = |config: &str| -> Vec<String> {
        crate::common::told(REGISTRATION_PARAM, config, 0, &CUSTOMERS)
            .into_iter()
            .map(|t| t.2)
            .collect()
    };
    assert_eq!(
        why(r#"{"name":"utm_source","operator":"matches","pattern":"^partner-"}"#)[..4],
        [
            "`utm_source` is `partner-42`, which matches `^partner-`",
            "the registration request has no parameter `utm_source`",
            "`utm_source` is `Partner-7`, which does not match `^partner-`",
            "the registration request has no parameter `utm_source`",
        ]
    );
    assert_eq!(
        why(r#"{"name":"fromsite","operator":"equals","value":"true"}"#)[1],
        "`fromsite` is `false`, not one of `true`"
    );
}
