//! The SQLite backend against the backend-neutral suite: in memory (one connection), and
//! in a file (a writer, a reader and the checkpointer, as in production).

use std::sync::Mutex;

use cohort_store::conformance::suite;
use cohort_store_sqlite::SqliteStore;

#[test]
fn a_store_in_memory_passes_the_conformance_suite() {
    suite(&|| Box::new(SqliteStore::in_memory().expect("store")));
}

#[test]
fn a_store_in_a_file_passes_the_conformance_suite() {
    // Each case's folder lives until the suite is done.
    let dirs = Mutex::new(Vec::new());
    suite(&|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(dir.path().join("cohort.db")).expect("store");
        dirs.lock().expect("dirs").push(dir);
        Box::new(store)
    });
}
