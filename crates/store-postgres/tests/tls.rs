//! Encrypted connections, as `sslmode` and `sslrootcert` ask, against the test server
//! (which `scripts/postgres` starts with a certificate from an authority of its own,
//! for 127.0.0.1 only).

use cohort_store::Customers;
use cohort_store_postgres::PgStore;
use cohort_store_postgres::scratch::{authority, fresh_url, server};

/// Whether every session of the store `url` names (by its application name) is
/// encrypted, as the server sees them.
fn encrypted(url: &str) -> bool {
    let name = url
        .split("application_name=")
        .nth(1)
        .and_then(|rest| rest.split('&').next())
        .expect("a scratch URL names its sessions");
    let mut admin = postgres::Client::connect(&server(), postgres::NoTls).expect("server");
    let ssl: Vec<bool> = admin
        .query(
            "SELECT a.application_name, s.ssl FROM pg_stat_ssl s
             JOIN pg_stat_activity a ON a.pid = s.pid",
            &[],
        )
        .expect("sessions")
        .iter()
        .filter(|r| r.get::<_, Option<String>>(0).as_deref() == Some(name))
        .map(|r| r.get(1))
        .collect();
    let sessions = ssl.len();
    let all = ssl.iter().all(|&s| s);
    assert!(sessions > 0, "the store keeps sessions open");
    all
}

fn works(store: &PgStore) {
    assert_eq!(store.count_customers().expect("a query"), 0);
}

#[test]
fn sslmode_says_whether_connections_are_encrypted() {
    for (mode, expected) in [("require", true), ("prefer", true), ("disable", false)] {
        let url = format!("{}&sslmode={mode}", fresh_url());
        let store = PgStore::connect(&url).expect(mode);
        works(&store);
        assert_eq!(encrypted(&url), expected, "sslmode={mode}");
    }
    // No sslmode is `prefer`, as for PostgreSQL's own clients.
    let url = fresh_url();
    let store = PgStore::connect(&url).expect("default");
    works(&store);
    assert!(encrypted(&url));
}

#[test]
fn the_server_s_certificate_is_checked_as_verify_ca_and_verify_full_ask() {
    let ca = authority();
    let root = format!("sslrootcert={}", ca.display());
    // Signed by the authority given, for the address connected to.
    let url = format!("{}&sslmode=verify-full&{root}", fresh_url());
    let store = PgStore::connect(&url).expect("verify-full");
    works(&store);
    assert!(encrypted(&url));

    // Not signed by an authority the binary trusts.
    let url = format!("{}&sslmode=verify-full", fresh_url());
    let e = PgStore::connect(&url)
        .err()
        .expect("unknown authority")
        .to_string();
    assert!(e.contains("certificate") && e.contains("127.0.0.1"), "{e}");

    // Issued for 127.0.0.1, reached as localhost: verify-full refuses, verify-ca
    // checks the authority only.
    let by_name = |mode: &str| {
        format!("{}&sslmode={mode}&{root}", fresh_url()).replace("127.0.0.1", "localhost")
    };
    let e = PgStore::connect(&by_name("verify-full"))
        .err()
        .expect("another name")
        .to_string();
    assert!(e.contains("certificate"), "{e}");
    works(&PgStore::connect(&by_name("verify-ca")).expect("verify-ca"));

    // A root file that is not there, or holds no certificate, is named.
    let url = format!(
        "{}&sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
        fresh_url()
    );
    let e = PgStore::connect(&url).err().expect("no file").to_string();
    assert!(e.contains("/nonexistent/ca.pem"), "{e}");
    let e = PgStore::connect(&format!("{}&sslmode=sometimes", fresh_url()))
        .err()
        .expect("unknown mode")
        .to_string();
    assert!(e.contains("sslmode `sometimes`"), "{e}");
}
