//! The provider plugin.

use crate::common::{config_errors, verdicts};
use cohort_artifacts::PROVIDER;
use cohort_model::Verdict::{Match, NoMatch};

#[test]
fn the_provider_is_one_of_the_set_exactly() {
    let got = verdicts(
        PROVIDER,
        r#"{"providers":["main","reseller-eu"]}"#,
        None,
        0,
        &[
            r#"{"id":"1","provider":"main"}"#,
            r#"{"id":"2","provider":"reseller-eu"}"#,
            r#"{"id":"3","provider":"Main"}"#,
            r#"{"id":"4","provider":"reseller-us"}"#,
            r#"{"id":"5"}"#,
        ],
    );
    assert_eq!(got, vec![Match, Match, NoMatch, NoMatch, NoMatch]);
}

#[test]
fn bad_configuration_is_named() {
    assert_eq!(
        config_errors(PROVIDER, r#"{"providers":[]}"#, None)[0].0,
        "/providers"
    );
    assert_eq!(
        config_errors(PROVIDER, r#"{"providers":["main"," "]}"#, None)[0].0,
        "/providers/1"
    );
    let errors = config_errors(PROVIDER, r#"{"provider":["main"]}"#, None);
    assert!(errors[0].1.contains("`provider`"), "{errors:?}");
}
