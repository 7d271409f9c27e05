//! The registration-time plugin.

use crate::common::{config_errors, told};
use cohort_artifacts::REGISTERED;
use cohort_model::FOREVER;
use cohort_model::Verdict::{Match, NoMatch};

/// 2026-06-01T00:00:00Z
const AS_OF: i64 = 1_780_272_000;
const DAY: i64 = 86_400;

const CUSTOMERS: [&str; 4] = [
    r#"{"id":"a","registered_at":"2026-05-20T00:00:00Z"}"#,
    r#"{"id":"b","registered_at":"2024-01-01T00:00:00Z"}"#,
    r#"{"id":"c"}"#,
    r#"{"id":"d","registered_at":"2026-06-10T00:00:00Z"}"#,
];

#[test]
fn within_the_last_days_holds_until_the_customer_falls_out() {
    let told = told(REGISTERED, r#"{"within_days":30}"#, AS_OF, &CUSTOMERS);
    let verdicts: Vec<_> = told.iter().map(|t| t.0.clone()).collect();
    assert_eq!(verdicts, vec![Match, NoMatch, NoMatch, NoMatch]);
    let registered = AS_OF - 12 * DAY;
    assert_eq!(
        told.iter().map(|t| t.1).collect::<Vec<_>>(),
        vec![registered + 30 * DAY, FOREVER, FOREVER, AS_OF + 9 * DAY]
    );
    assert_eq!(
        told[0].2,
        "registered 2026-05-20T00:00:00Z: within the 30 days before 2026-06-01T00:00:00Z"
    );
    assert_eq!(
        told[2].2,
        "the platform did not say when the customer registered"
    );
}

#[test]
fn before_and_after_together_make_a_range_that_does_not_age() {
    let told = told(
        REGISTERED,
        r#"{"after":"2025-01-01","before":"2026-06-01T00:00:00Z"}"#,
        AS_OF,
        &CUSTOMERS,
    );
    let verdicts: Vec<_> = told.iter().map(|t| t.0.clone()).collect();
    assert_eq!(verdicts, vec![Match, NoMatch, NoMatch, NoMatch]);
    assert!(told.iter().all(|t| t.1 == FOREVER));
    assert_eq!(
        told[1].2,
        "registered 2024-01-01T00:00:00Z: before 2026-06-01T00:00:00Z, not after 2025-01-01T00:00:00Z"
    );
}

#[test]
fn a_bad_configuration_names_its_field() {
    let errors = |config: &str| config_errors(REGISTERED, config, None);
    assert_eq!(
        errors("{}"),
        vec![(
            String::new(),
            "give `before`, `after` or `within_days`".into()
        )]
    );
    assert_eq!(
        errors(r#"{"after":"2026-02-01","before":"2026-01-01"}"#),
        vec![(
            "/after".into(),
            "is not before `before`: no customer could match".into()
        )]
    );
    let bad = errors(r#"{"before":"last week"}"#);
    assert_eq!(bad[0].0, "/before");
    assert!(bad[0].1.contains("`last week` is not a date"), "{bad:?}");
}
