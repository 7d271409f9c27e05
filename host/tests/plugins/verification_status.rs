//! The verification-status plugin.

use crate::common::{config_errors, verdicts};
use cohort_artifacts::VERIFICATION_STATUS;
use cohort_model::Verdict::{Match, NoMatch};

const CUSTOMERS: [&str; 3] = [
    r#"{"id":"passed","verification_status":"passed"}"#,
    r#"{"id":"failed","verification_status":"failed"}"#,
    r#"{"id":"never"}"#,
];

#[test]
fn each_status_and_their_union() {
    let run = |config| verdicts(VERIFICATION_STATUS, config, None, 0, &CUSTOMERS);
    assert_eq!(
        run(r#"{"statuses":["passed"]}"#),
        vec![Match, NoMatch, NoMatch]
    );
    assert_eq!(
        run(r#"{"statuses":["failed"]}"#),
        vec![NoMatch, Match, NoMatch]
    );
    assert_eq!(
        run(r#"{"statuses":["failed","unverified"]}"#),
        vec![NoMatch, Match, Match],
        "everyone who has not passed"
    );
}

#[test]
fn bad_configuration_is_named() {
    assert_eq!(
        config_errors(VERIFICATION_STATUS, r#"{"statuses":[]}"#, None)[0].0,
        "/statuses"
    );
    let errors = config_errors(
        VERIFICATION_STATUS,
        r#"{"statuses":["passed","maybe"]}"#,
        None,
    );
    assert_eq!(errors[0].0, "/statuses/1");
    assert!(errors[0].1.contains("`maybe`"), "{errors:?}");
}
