//! Fuzzing the CSV reader from the files of `tests/corpus/csv`: whatever the bytes, it
//! neither panics nor loses count of lines, and every row it accepts is whole.

#[path = "../../../tests/fuzz/mutate.rs"]
mod mutate;

use std::collections::BTreeMap;

use cohort_import::{Options, open};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_file_reads_into_whole_rows_or_errors_by_line(bytes in mutate::inputs(mutate::corpus("csv"))) {
        let options = Options {
            time_zone: chrono_tz::Europe::Berlin,
            now: 1_800_000_000,
            mapping: BTreeMap::new(),
        };
        let Ok(rows) = open(&bytes[..], options) else { return Ok(()) };
        // Lines are counted from the header (line 1); a row starts on a later line
        // than the one before, and a file has no more lines than line breaks allow.
        let most = bytes.iter().filter(|&&b| b == b'\n' || b == b'\r').count() as u64 + 1;
        let mut last = 1;
        for row in rows {
            match row {
                Ok(row) => {
                    prop_assert!(row.line > last && row.line <= most, "line {} after {last}", row.line);
                    prop_assert!(cohort_model::check_customer_id(&row.customer).is_ok());
                    prop_assert!(!row.groups.is_empty() && row.groups.iter().all(|g| !g.is_empty()));
                    prop_assert!(row.end.is_none_or(|end| end > row.start), "a window ends after it starts");
                    last = row.line;
                }
                Err(e) => {
                    prop_assert!(e.line >= 1 && e.line <= most, "{e}");
                    prop_assert!(!e.message.is_empty());
                    last = last.max(e.line);
                }
            }
        }
    }
}
