//! The product-ownership plugin.

use crate::common::{config_errors, verdicts};
use cohort_artifacts::PRODUCT;
use cohort_model::Verdict::{self, Match, NoMatch};

/// 2026-06-01T00:00:00Z
const AS_OF: i64 = 1_780_272_000;

const CUSTOMERS: [&str; 8] = [
    // active since January, open-ended
    r#"{"id":"a","subscriptions":[{"product":"tower-host","start":"2026-01-01T00:00:00Z"}]}"#,
    // starts next month
    r#"{"id":"b","subscriptions":[{"product":"tower-host","start":"2026-07-01T00:00:00Z"}]}"#,
    // ended a month ago
    r#"{"id":"c","subscriptions":[{"product":"tower-host","start":"2025-01-01T00:00:00Z","end":"2026-05-01T00:00:00Z"}]}"#,
    // cancelled a week ago
    r#"{"id":"d","subscriptions":[{"product":"tower-host","status":"cancelled","start":"2025-01-01T00:00:00Z","end":"2026-05-25T00:00:00Z"}]}"#,
    // another product only
    r#"{"id":"e","subscriptions":[{"product":"fiber-100","start":"2026-01-01T00:00:00Z"}]}"#,
    // ordered, not yet provisioned
    r#"{"id":"f","subscriptions":[{"product":"tower-host","status":"pending","start":"2026-05-01T00:00:00Z"}]}"#,
    // ends exactly now: the end is exclusive
    r#"{"id":"g","subscriptions":[{"product":"tower-host","start":"2026-01-01T00:00:00Z","end":"2026-06-01T00:00:00Z"}]}"#,
    // one of several products, the matching one suspended, the other active
    r#"{"id":"h","subscriptions":[{"product":"fiber-100","status":"suspended","start":"2026-01-01T00:00:00Z"},{"product":"tv","start":"2026-01-01T00:00:00Z"}]}"#,
];

fn run(config: &str) -> Vec<Verdict> {
    verdicts(PRODUCT, config, None, AS_OF, &CUSTOMERS)
}

#[test]
fn active_at_the_evaluation_time_by_default() {
    assert_eq!(
        run(r#"{"products":["tower-host"]}"#),
        vec![
            Match, NoMatch, NoMatch, NoMatch, NoMatch, NoMatch, NoMatch, NoMatch
        ]
    );
}

#[test]
fn any_of_several_products() {
    assert_eq!(
        run(r#"{"products":["fiber-100","tv"]}"#),
        vec![
            NoMatch, NoMatch, NoMatch, NoMatch, Match, NoMatch, NoMatch, Match
        ]
    );
}

#[test]
fn within_days_is_a_grace_period_whatever_the_status() {
    assert_eq!(
        run(r#"{"products":["tower-host"],"within_days":10}"#),
        vec![
            Match, NoMatch, NoMatch, Match, NoMatch, NoMatch, Match, NoMatch
        ]
    );
    assert_eq!(
        run(r#"{"products":["tower-host"],"within_days":45}"#),
        vec![
            Match, NoMatch, Match, Match, NoMatch, NoMatch, Match, NoMatch
        ]
    );
}

#[test]
fn any_status_counts_every_subscription() {
    assert_eq!(
        run(r#"{"products":["tower-host"],"status":"any"}"#),
        vec![Match, Match, Match, Match, NoMatch, Match, Match, NoMatch]
    );
}

#[test]
fn the_same_data_and_time_give_the_same_answer() {
    let config = r#"{"products":["tower-host"]}"#;
    assert_eq!(run(config), run(config));
    let later = verdicts(PRODUCT, config, None, AS_OF + 40 * 86_400, &CUSTOMERS);
    assert_eq!(later[1], Match, "b has started by then");
}

#[test]
fn bad_configuration_is_named() {
    assert_eq!(
        config_errors(
            PRODUCT,
            r#"{"products":["x"],"status":"any","within_days":3}"#,
            None
        )[0]
        .0,
        "/within_days"
    );
    assert_eq!(
        config_errors(PRODUCT, r#"{"products":["x"],"within_days":0}"#, None)[0].0,
        "/within_days"
    );
    assert_eq!(
        config_errors(PRODUCT, r#"{"products":["x"],"status":"expired"}"#, None)[0].0,
        "/status"
    );
    assert_eq!(
        config_errors(PRODUCT, r#"{"products":[]}"#, None)[0].0,
        "/products"
    );
}

#[test]
fn a_verdict_holds_until_a_subscription_starts_or_stops_counting_and_says_why() {
    let day = 86_400;
    let told = crate::common::told(PRODUCT, r#"{"products":["tower-host"]}"#, AS_OF, &CUSTOMERS);
    let (until, why): (Vec<i64>, Vec<&str>) = told.iter().map(|(_, u, w)| (*u, w.as_str())).unzip();
    assert_eq!(
        until,
        vec![
            cohort_model::FOREVER, // open-ended: active for good
            AS_OF + 30 * day,      // starts 2026-07-01
            cohort_model::FOREVER, // ended
            cohort_model::FOREVER, // cancelled
            cohort_model::FOREVER, // another product
            cohort_model::FOREVER, // pending never counts
            cohort_model::FOREVER, // ended just now
            cohort_model::FOREVER,
        ]
    );
    assert_eq!(
        why,
        vec![
            "`tower-host` is active from 2026-01-01T00:00:00Z",
            "`tower-host` starts 2026-07-01T00:00:00Z, after the as-of time",
            "`tower-host` ended 2026-05-01T00:00:00Z, before the as-of time",
            "`tower-host` is cancelled, not active",
            "no subscription to `tower-host`",
            "`tower-host` is pending, not active",
            "`tower-host` ended 2026-06-01T00:00:00Z, before the as-of time",
            "no subscription to `tower-host`",
        ]
    );
    // Within ten days: the cancelled one counts until ten days after its end.
    let told = crate::common::told(
        PRODUCT,
        r#"{"products":["tower-host"],"within_days":10}"#,
        AS_OF,
        &CUSTOMERS,
    );
    let d = &told[3];
    assert_eq!(d.0, Match);
    assert_eq!(d.1, 1_779_667_200 + 10 * day, "2026-05-25 plus ten days");
    assert_eq!(
        d.2,
        "`tower-host` ended 2026-05-25T00:00:00Z, within the days the rule looks back"
    );
}
