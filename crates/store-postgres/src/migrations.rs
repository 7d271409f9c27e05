//! The schema, as frozen steps: `migrations/NN-*.sql` takes the schema from version
//! `NN - 1` to `NN`, kept in `schema_version`. A released step never changes; a change
//! of schema is a new step. Servers starting at once on one database take turns (an
//! advisory lock), so each step runs once.

use postgres::Client;

use crate::{Error, Result};

/// Each entry migrates the schema from version `i` to `i + 1`.
pub(crate) const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/01-schema.sql"),
    include_str!("../migrations/02-scans.sql"),
    include_str!("../migrations/03-token-expiry.sql"),
    include_str!("../migrations/04-erasure.sql"),
    include_str!("../migrations/05-webhook-management.sql"),
    include_str!("../migrations/06-plugin-signatures.sql"),
    include_str!("../migrations/07-plugin-budgets.sql"),
    include_str!("../migrations/08-staff.sql"),
    include_str!("../migrations/09-token-scope.sql"),
];

/// The advisory lock migrating servers take turns on (`Cohort` in ASCII).
const MIGRATING: i64 = 0x436f_686f_7274;

/// Bring the schema up to date; refuse a database a newer Cohort has migrated.
pub(crate) fn migrate(conn: &mut Client) -> Result<()> {
    let mut tx = conn.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATING])?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_version (
             one boolean PRIMARY KEY DEFAULT true CHECK (one),
             version integer NOT NULL
         )",
    )?;
    let version: i32 = tx
        .query_opt("SELECT version FROM schema_version", &[])?
        .map_or(0, |r| r.get(0));
    let known = MIGRATIONS.len();
    let at = usize::try_from(version).unwrap_or_default();
    if at > known {
        return Err(Error::Store(cohort_store::StoreError::corrupt(
            "schema",
            &version.to_string(),
            format!(
                "the database is at schema version {version}, made by a newer Cohort; this \
                 one knows versions up to {known}: upgrade Cohort to use it"
            ),
        )));
    }
    for (i, step) in MIGRATIONS.iter().enumerate().skip(at) {
        tx.batch_execute(step)?;
        let next = i32::try_from(i + 1).unwrap_or(i32::MAX);
        tx.execute(
            "INSERT INTO schema_version (one, version) VALUES (true, $1)
             ON CONFLICT (one) DO UPDATE SET version = excluded.version",
            &[&next],
        )?;
    }
    tx.commit()?;
    Ok(())
}
