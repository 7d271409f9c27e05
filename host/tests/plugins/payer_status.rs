//! The payer-status plugin.

use crate::common::{config_errors, verdicts};
use cohort_artifacts::PAYER_STATUS;
use cohort_model::Verdict::{Match, NoMatch};

const CUSTOMERS: [&str; 5] = [
    r#"{"id":"company","payers":[{"kind":"legal_entity"}]}"#,
    r#"{"id":"closed-company","payers":[{"kind":"legal_entity","active":false}]}"#,
    r#"{"id":"person","payers":[{"kind":"individual"}]}"#,
    r#"{"id":"mixed","payers":[{"kind":"individual"},{"kind":"sole_proprietor","active":false}]}"#,
    r#"{"id":"no-payer"}"#,
];

#[test]
fn only_active_payers_count_by_default() {
    let got = verdicts(
        PAYER_STATUS,
        r#"{"kinds":["legal_entity"]}"#,
        None,
        0,
        &CUSTOMERS,
    );
    assert_eq!(got, vec![Match, NoMatch, NoMatch, NoMatch, NoMatch]);
}

#[test]
fn include_inactive_counts_every_payer() {
    let got = verdicts(
        PAYER_STATUS,
        r#"{"kinds":["legal_entity","sole_proprietor"],"include_inactive":true}"#,
        None,
        0,
        &CUSTOMERS,
    );
    assert_eq!(got, vec![Match, Match, NoMatch, Match, NoMatch]);
}

/// Kinds are spelled in kebab-case, as every enumerated value is; the snake_case
/// spelling of the tests above is an alias, in customers and configurations alike.
#[test]
fn kinds_read_in_either_spelling() {
    let kebab = [
        r#"{"id":"company","payers":[{"kind":"legal-entity"}]}"#,
        r#"{"id":"sole","payers":[{"kind":"sole-proprietor"}]}"#,
    ];
    for config in [
        r#"{"kinds":["legal-entity","sole-proprietor"]}"#,
        r#"{"kinds":["legal_entity","sole_proprietor"]}"#,
    ] {
        assert_eq!(
            verdicts(PAYER_STATUS, config, None, 0, &kebab),
            vec![Match, Match],
            "{config}"
        );
    }
}

#[test]
fn bad_configuration_is_named() {
    let errors = config_errors(PAYER_STATUS, r#"{"kinds":["company"]}"#, None);
    assert_eq!(errors[0].0, "/kinds/0");
    let errors = config_errors(
        PAYER_STATUS,
        r#"{"kinds":["individual"],"include_inactive":"yes"}"#,
        None,
    );
    assert_eq!(errors[0].0, "/include_inactive");
    assert_eq!(
        config_errors(PAYER_STATUS, r#"{"kinds":[]}"#, None)[0].0,
        "/kinds"
    );
}

#[test]
fn an_explanation_lists_the_payers_and_the_kinds_asked_for() {
    let told = crate::common::told(PAYER_STATUS, r#"{"kinds":["legal-entity"]}"#, 0, &CUSTOMERS);
    let why: Vec<&str> = told.iter().map(|t| t.2.as_str()).collect();
    assert_eq!(
        why,
        [
            "payers active legal entity: one is an active payer of kind `legal-entity`",
            "payers inactive legal entity: none is an active payer of kind `legal-entity`",
            "payers active individual: none is an active payer of kind `legal-entity`",
            "payers active individual, inactive sole proprietor: none is an active payer of kind `legal-entity`",
            "payers none: none is an active payer of kind `legal-entity`",
        ]
    );
}
