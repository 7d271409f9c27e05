//! The custom-attribute plugin: typed values, text read as numbers and times, and the
//! last N days.

use crate::common::{config_errors, told, verdicts};
use cohort_artifacts::ATTRIBUTE;
use cohort_model::FOREVER;
use cohort_model::Verdict::{Match, NoMatch};

/// 2026-06-01T00:00:00Z
const AS_OF: i64 = 1_780_272_000;
const DAY: i64 = 86_400;

const CUSTOMERS: [&str; 7] = [
    // a decimal balance, a whole-number plan price, a time, a segment
    r#"{"id":"a","attributes":{"balance":12.5,"price":30,"last_payment":{"timestamp":"2026-05-25T00:00:00Z"},"segment":"b2b"}}"#,
    // the same facts sent as text, as many platforms do
    r#"{"id":"b","attributes":{"balance":"12.50","price":"30","last_payment":"2026-05-25","segment":"B2B"}}"#,
    // a negative balance with more digits than a JSON number carries
    r#"{"id":"c","attributes":{"balance":{"decimal":"-0.000000000000000001"},"last_payment":{"timestamp":"2026-01-01T00:00:00Z"}}}"#,
    // none of them
    r#"{"id":"d"}"#,
    // text that is neither a number nor a time
    r#"{"id":"e","attributes":{"balance":"n/a","last_payment":"soon"}}"#,
    // a payment after the as-of time
    r#"{"id":"f","attributes":{"last_payment":{"timestamp":"2026-06-03T00:00:00Z"}}}"#,
    // exactly the bound
    r#"{"id":"g","attributes":{"balance":10}}"#,
];

fn run(config: &str) -> Vec<cohort_model::Verdict> {
    verdicts(ATTRIBUTE, config, None, AS_OF, &CUSTOMERS)
}

#[test]
fn numbers_compare_exactly_whether_sent_as_numbers_decimals_or_text() {
    assert_eq!(
        run(r#"{"name":"balance","operator":"at-least","value":10}"#),
        vec![Match, Match, NoMatch, NoMatch, NoMatch, NoMatch, Match]
    );
    assert_eq!(
        run(r#"{"name":"balance","operator":"greater-than","value":"10.00"}"#),
        vec![Match, Match, NoMatch, NoMatch, NoMatch, NoMatch, NoMatch]
    );
    assert_eq!(
        run(r#"{"name":"balance","operator":"less-than","value":0}"#),
        vec![NoMatch, NoMatch, Match, NoMatch, NoMatch, NoMatch, NoMatch],
        "one part in 10^18 below zero is below zero"
    );
    assert_eq!(
        run(r#"{"name":"price","operator":"equals","value":30.0}"#),
        vec![Match, Match, NoMatch, NoMatch, NoMatch, NoMatch, NoMatch]
    );
}

#[test]
fn text_is_exact_and_presence_is_any_value() {
    assert_eq!(
        run(r#"{"name":"segment","operator":"equals","value":"b2b"}"#),
        vec![Match, NoMatch, NoMatch, NoMatch, NoMatch, NoMatch, NoMatch]
    );
    assert_eq!(
        run(r#"{"name":"segment","operator":"one-of","values":["B2B","b2c"]}"#),
        vec![NoMatch, Match, NoMatch, NoMatch, NoMatch, NoMatch, NoMatch]
    );
    assert_eq!(
        run(r#"{"name":"balance","operator":"present"}"#),
        vec![Match, Match, Match, NoMatch, Match, NoMatch, Match]
    );
}

#[test]
fn times_compare_as_times_and_the_last_days_move_with_the_as_of_time() {
    assert_eq!(
        run(r#"{"name":"last_payment","operator":"before","value":"2026-02-01"}"#),
        vec![NoMatch, NoMatch, Match, NoMatch, NoMatch, NoMatch, NoMatch]
    );
    let told = told(
        ATTRIBUTE,
        r#"{"name":"last_payment","operator":"within-days","days":30}"#,
        AS_OF,
        &CUSTOMERS,
    );
    let verdicts: Vec<_> = told.iter().map(|t| t.0.clone()).collect();
    assert_eq!(
        verdicts,
        vec![Match, Match, NoMatch, NoMatch, NoMatch, NoMatch, NoMatch]
    );
    let paid = AS_OF - 7 * DAY;
    let until: Vec<i64> = told.iter().map(|t| t.1).collect();
    assert_eq!(
        until,
        vec![
            paid + 30 * DAY, // falls out of the window
            paid + 30 * DAY,
            FOREVER, // long ago: stays out
            FOREVER,
            FOREVER,
            AS_OF + 2 * DAY, // comes into the window
            FOREVER,
        ]
    );
    assert_eq!(
        told[0].2,
        "`last_payment` is 2026-05-25T00:00:00Z, within the 30 days before 2026-06-01T00:00:00Z"
    );
    assert_eq!(
        told[5].2,
        "`last_payment` is 2026-06-03T00:00:00Z, after the as-of time 2026-06-01T00:00:00Z"
    );
}

#[test]
fn explanations_quote_the_value_and_the_bound() {
    let told = told(
        ATTRIBUTE,
        r#"{"name":"balance","operator":"at-least","value":"10"}"#,
        AS_OF,
        &CUSTOMERS,
    );
    let why: Vec<&str> = told.iter().map(|t| t.2.as_str()).collect();
    assert_eq!(
        why,
        vec![
            "`balance` is 12.5, at least 10",
            "`balance` is `12.50`, at least 10",
            "`balance` is -0.000000000000000001, not at least 10",
            "the customer has no attribute `balance`",
            "`balance` is `n/a`, which is not a number",
            "the customer has no attribute `balance`",
            "`balance` is 10, at least 10",
        ]
    );
    assert!(told.iter().all(|t| t.1 == FOREVER), "numbers do not age");
}

#[test]
fn a_bad_configuration_names_its_field() {
    let errors = |config: &str| config_errors(ATTRIBUTE, config, None);
    assert_eq!(
        errors(r#"{"name":"balance","operator":"at-least","value":"ten"}"#),
        vec![(
            "/value".into(),
            "`ten` is not a number such as `12.50` (at most 18 digits after the point)".into()
        )]
    );
    assert_eq!(
        errors(r#"{"name":"balance","operator":"at-least"}"#),
        vec![("/value".into(), "required by operator `at-least`".into())]
    );
    assert_eq!(
        errors(r#"{"name":"x","operator":"present","days":3}"#),
        vec![("/days".into(), "not used by operator `present`".into())]
    );
    let after = errors(r#"{"name":"x","operator":"after","value":"2026-02-30"}"#);
    assert_eq!(after[0].0, "/value");
    assert!(
        after[0].1.contains("not a day of the calendar"),
        "{after:?}"
    );
    assert_eq!(
        errors(r#"{"name":"x","operator":"within-days","days":0}"#),
        vec![("/days".into(), "`0` is not between 1 and 3650".into())]
    );
}
