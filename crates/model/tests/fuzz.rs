//! Fuzzing what platforms send as JSON, from the files of `tests/corpus/customers` and
//! `tests/corpus/groups`: whatever the bytes, reading and checking a customer or a group
//! never panics, and a refusal names its field.

#[path = "../../../tests/fuzz/mutate.rs"]
mod mutate;

use cohort_model::{CustomerRecord, Group, Interner};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_customer_json_is_read_and_checked_or_refused_by_field(bytes in mutate::inputs(mutate::corpus("customers"))) {
        let Ok(record) = serde_json::from_slice::<CustomerRecord>(&bytes) else { return Ok(()) };
        match record.intern(&Interner::new()) {
            Ok(_) => prop_assert!(cohort_model::check_customer_id(&record.id).is_ok()),
            Err(e) => prop_assert!(!e.field.is_empty() && !e.problem.is_empty(), "{e}"),
        }
    }

    #[test]
    fn any_group_json_is_read_and_checked_or_refused(bytes in mutate::inputs(mutate::corpus("groups"))) {
        let Ok(group) = serde_json::from_slice::<Group>(&bytes) else { return Ok(()) };
        if let Err(e) = group.check() {
            prop_assert!(!e.to_string().is_empty());
        }
    }
}
