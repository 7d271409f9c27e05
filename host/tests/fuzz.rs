//! Fuzzing component bytes from the plugins built from this repository's sources (no
//! wasm is committed, so the corpus is built): whatever the bytes, loading either
//! gives a plugin that describes itself or an error, never a panic, and a plugin
//! that loads prepares and evaluates without one.

#[path = "../../tests/fuzz/mutate.rs"]
mod mutate;

mod common;

use cohort_artifacts::{COUNTRY, PROVIDER};
use proptest::prelude::*;

proptest! {
    // Each case compiles what it loads: few cases, for a bounded time in CI.
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn any_component_bytes_load_or_are_refused(bytes in mutate::inputs(vec![COUNTRY.to_vec(), PROVIDER.to_vec()])) {
        let host = common::host();
        match host.load(&bytes) {
            Ok(plugin) => {
                prop_assert!(!plugin.info().id.is_empty());
                if let Ok(mut condition) = plugin.prepare(r#"{"countries":["DE"],"providers":["main"]}"#, None) {
                    let customers = common::with_country(&host, &["DE", "FR", ""]);
                    prop_assert_eq!(condition.evaluate(0, &customers).verdicts.len(), 3);
                }
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }
}
