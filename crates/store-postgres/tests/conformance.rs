//! The PostgreSQL backend against the backend-neutral suite, on a real server.

use cohort_store::conformance::suite;

#[test]
fn a_store_on_postgresql_passes_the_conformance_suite() {
    suite(&|| Box::new(cohort_store_postgres::scratch::fresh()));
}
