//! The reference benchmark at a tiny size: it builds, runs, and Cohort, SQL and native
//! Rust agree on every group (`run` refuses to report otherwise).

use std::path::PathBuf;

#[test]
fn the_reference_workload_runs_and_all_implementations_agree() {
    let settings = cohort_workload::Settings {
        customers: 3_000,
        seed: 7,
        geoip_dir: PathBuf::from("../../../shared/testdata/geoip"),
        registrations: 50,
    };
    let report = cohort_workload::run(&settings, &mut |_| {}).expect("the workload runs");
    assert_eq!(report.groups, 24);
    assert!(
        report.sql_groups >= 12,
        "{} groups compared with SQL",
        report.sql_groups
    );
    assert!(
        report.memberships > 1_000,
        "{} memberships",
        report.memberships
    );
    assert!(report.compared_conditions > 20);
    let table = report.table();
    assert!(table.contains("| full scan"), "{table}");
}
