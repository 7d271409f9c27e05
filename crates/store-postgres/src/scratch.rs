//! For tests, here and in the crates above: a store of its own for each test, on the
//! throwaway server `scripts/test` starts (`COHORT_TEST_POSTGRES`, the URL
//! `scripts/postgres start` prints): a schema per store in one database, made fresh and
//! never reused. Behind the feature `scratch`.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::PgStore;

/// The server's URL; a test cannot go on without one.
pub fn server() -> String {
    std::env::var("COHORT_TEST_POSTGRES").unwrap_or_else(|_| {
        panic!(
            "COHORT_TEST_POSTGRES is not set: run the tests through scripts/test, which \
             starts a throwaway PostgreSQL server (or start one with \
             `scripts/postgres start DIR` and set it to the URL printed)"
        )
    })
}

/// The authority that signed the server's certificate (`DIR/ca.crt` of
/// `scripts/postgres start DIR`), for the tests of encrypted connections.
pub fn authority() -> std::path::PathBuf {
    std::env::var_os("COHORT_TEST_POSTGRES_CA")
        .map(Into::into)
        .unwrap_or_else(|| {
            panic!(
                "COHORT_TEST_POSTGRES_CA is not set: run the tests through scripts/test, or                  set it to DIR/ca.crt of the server `scripts/postgres start DIR` started"
            )
        })
}

/// The URL of a new, empty schema on the server.
pub fn fresh_url() -> String {
    static MADE: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let schema = format!(
        "t{}_{nanos:x}_{}",
        std::process::id(),
        MADE.fetch_add(1, Ordering::Relaxed)
    );
    let server = server();
    let mut admin = postgres::Client::connect(&server, postgres::NoTls).expect("the test server");
    admin
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .expect("a schema");
    let join = if server.contains('?') { '&' } else { '?' };
    // The schema's name is also the connections' application name, so that a test can
    // find (and end) the sessions of its own store among all on the server.
    format!("{server}{join}options=-csearch_path%3D{schema}&application_name={schema}")
}

pub fn fresh() -> PgStore {
    PgStore::connect(&fresh_url()).expect("a store on the test server")
}
