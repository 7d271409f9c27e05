//! The billing staff who sign in to the console, and their sessions.

use cohort_model::Timestamp;
use cohort_store::{
    Role, SIGN_IN_FAILURES, SIGN_IN_LOCK_SECONDS, Staff, StaffLogin, StaffMember, StaffSession,
};
use postgres::Row;

use crate::{PgStore, Result, corrupt, named, sql};

const COLUMNS: &str = "name, role, group_scope, created_at, password_changed_at, \
                       password_hash, failed_sign_ins, locked_until";

fn login(r: &Row) -> Result<StaffLogin> {
    let name: String = r.get(0);
    let groups = r
        .get::<_, Option<&str>>(2)
        .map(serde_json::from_str)
        .transpose()
        .map_err(|e| corrupt("staff member", &name, format!("groups: {e}")))?;
    Ok(StaffLogin {
        member: StaffMember {
            role: named(r.get(1), Role::parse, "staff member", &name)?,
            name,
            groups,
            created_at: r.get(3),
            password_changed_at: r.get(4),
        },
        password_hash: r.get(5),
        failed_sign_ins: u32::try_from(r.get::<_, i32>(6)).unwrap_or(0),
        locked_until: r.get(7),
    })
}

impl Staff for PgStore {
    fn create_staff(&self, m: &StaffMember, password_hash: &str) -> cohort_store::Result<bool> {
        sql(|| {
            let scope = m
                .groups
                .as_ref()
                .map(|g| serde_json::to_string(g).unwrap_or_default());
            let n = self.pool.get()?.execute(
                "INSERT INTO staff (name, role, group_scope, password_hash, created_at,
                                    password_changed_at)
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (name) DO NOTHING",
                &[
                    &m.name,
                    &m.role.as_str(),
                    &scope,
                    &password_hash,
                    &m.created_at,
                    &m.password_changed_at,
                ],
            )?;
            Ok(n > 0)
        })
    }

    fn staff(&self) -> cohort_store::Result<Vec<StaffMember>> {
        sql(|| {
            let rows = self
                .pool
                .get()?
                .query(&format!("SELECT {COLUMNS} FROM staff ORDER BY name"), &[])?;
            rows.iter().map(|r| Ok(login(r)?.member)).collect()
        })
    }

    fn staff_login(&self, name: &str) -> cohort_store::Result<Option<StaffLogin>> {
        sql(|| {
            self.pool
                .get()?
                .query_opt(
                    &format!("SELECT {COLUMNS} FROM staff WHERE name = $1"),
                    &[&name],
                )?
                .as_ref()
                .map(login)
                .transpose()
        })
    }

    fn set_staff_password(
        &self,
        name: &str,
        password_hash: &str,
        at: Timestamp,
    ) -> cohort_store::Result<bool> {
        sql(|| {
            let mut conn = self.pool.get()?;
            let mut tx = conn.transaction()?;
            let n = tx.execute(
                "UPDATE staff SET password_hash = $2, password_changed_at = $3,
                                  failed_sign_ins = 0, locked_until = NULL
                 WHERE name = $1",
                &[&name, &password_hash, &at],
            )?;
            tx.execute("DELETE FROM staff_sessions WHERE staff = $1", &[&name])?;
            tx.commit()?;
            Ok(n > 0)
        })
    }

    fn record_failed_sign_in(
        &self,
        name: &str,
        at: Timestamp,
    ) -> cohort_store::Result<Option<Timestamp>> {
        sql(|| {
            let lock = at + SIGN_IN_LOCK_SECONDS;
            let failures = i32::try_from(SIGN_IN_FAILURES).unwrap_or(i32::MAX);
            // One statement: two failures at once both count.
            Ok(self
                .pool
                .get()?
                .query_opt(
                    "UPDATE staff SET
                        failed_sign_ins = CASE WHEN failed_sign_ins + 1 >= $2 THEN 0
                                               ELSE failed_sign_ins + 1 END,
                        locked_until = CASE WHEN failed_sign_ins + 1 >= $2 THEN $3
                                            ELSE locked_until END
                     WHERE name = $1
                     RETURNING CASE WHEN locked_until = $3 THEN $3 END",
                    &[&name, &failures, &lock],
                )?
                .and_then(|r| r.get::<_, Option<Timestamp>>(0)))
        })
    }

    fn open_session(&self, digest: &str, s: &StaffSession) -> cohort_store::Result<()> {
        sql(|| {
            let mut conn = self.pool.get()?;
            let mut tx = conn.transaction()?;
            tx.execute(
                "DELETE FROM staff_sessions WHERE expires_at <= $1",
                &[&s.created_at],
            )?;
            tx.execute(
                "UPDATE staff SET failed_sign_ins = 0 WHERE name = $1",
                &[&s.staff],
            )?;
            tx.execute(
                "INSERT INTO staff_sessions (digest, staff, csrf, created_at, expires_at)
                 VALUES ($1, $2, $3, $4, $5)",
                &[&digest, &s.staff, &s.csrf, &s.created_at, &s.expires_at],
            )?;
            tx.commit()?;
            Ok(())
        })
    }

    fn session(&self, digest: &str, now: Timestamp) -> cohort_store::Result<Option<StaffSession>> {
        sql(|| {
            Ok(self
                .pool
                .get()?
                .query_opt(
                    "SELECT staff, csrf, created_at, expires_at FROM staff_sessions
                     WHERE digest = $1 AND expires_at > $2",
                    &[&digest, &now],
                )?
                .map(|r| StaffSession {
                    staff: r.get(0),
                    csrf: r.get(1),
                    created_at: r.get(2),
                    expires_at: r.get(3),
                }))
        })
    }

    fn close_session(&self, digest: &str) -> cohort_store::Result<bool> {
        sql(|| {
            Ok(self
                .pool
                .get()?
                .execute("DELETE FROM staff_sessions WHERE digest = $1", &[&digest])?
                > 0)
        })
    }

    fn delete_staff(&self, name: &str) -> cohort_store::Result<bool> {
        sql(|| {
            let mut conn = self.pool.get()?;
            let mut tx = conn.transaction()?;
            tx.execute("DELETE FROM staff_sessions WHERE staff = $1", &[&name])?;
            let n = tx.execute("DELETE FROM staff WHERE name = $1", &[&name])?;
            tx.commit()?;
            Ok(n > 0)
        })
    }
}
