//! The billing staff who sign in to the console, and their sessions.

use cohort_model::Timestamp;
use cohort_store::{
    Role, SIGN_IN_FAILURES, SIGN_IN_LOCK_SECONDS, Staff, StaffLogin, StaffMember, StaffSession,
};
use rusqlite::{OptionalExtension, params};

use crate::{Result, SqliteStore, corrupt, sql};

const COLUMNS: &str = "name, role, group_scope, created_at, password_changed_at, \
                       password_hash, failed_sign_ins, locked_until";

fn login(r: &rusqlite::Row<'_>) -> Result<StaffLogin> {
    let name: String = r.get(0)?;
    let role: String = r.get(1)?;
    let scope: Option<String> = r.get(2)?;
    let role = Role::parse(&role).ok_or_else(|| corrupt("staff member", &name, "role"))?;
    let groups = scope
        .map(|json| serde_json::from_str(&json))
        .transpose()
        .map_err(|e| corrupt("staff member", &name, format!("groups: {e}")))?;
    Ok(StaffLogin {
        member: StaffMember {
            name,
            role,
            groups,
            created_at: r.get(3)?,
            password_changed_at: r.get(4)?,
        },
        password_hash: r.get(5)?,
        failed_sign_ins: r.get(6)?,
        locked_until: r.get(7)?,
    })
}

impl Staff for SqliteStore {
    fn create_staff(&self, m: &StaffMember, password_hash: &str) -> cohort_store::Result<bool> {
        sql(|| {
            let scope = m
                .groups
                .as_ref()
                .map(|g| serde_json::to_string(g).unwrap_or_default());
            let n = self.conn().execute(
                "INSERT INTO staff (name, role, group_scope, password_hash, created_at,
                                    password_changed_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (name) DO NOTHING",
                params![
                    m.name,
                    m.role.as_str(),
                    scope,
                    password_hash,
                    m.created_at,
                    m.password_changed_at
                ],
            )?;
            Ok(n > 0)
        })
    }

    fn staff(&self) -> cohort_store::Result<Vec<StaffMember>> {
        sql(|| {
            let conn = self.reader();
            let mut stmt = conn.prepare(&format!("SELECT {COLUMNS} FROM staff ORDER BY name"))?;
            let mut rows = stmt.query([])?;
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                out.push(login(r)?.member);
            }
            Ok(out)
        })
    }

    fn staff_login(&self, name: &str) -> cohort_store::Result<Option<StaffLogin>> {
        sql(|| {
            let conn = self.reader();
            let mut stmt =
                conn.prepare_cached(&format!("SELECT {COLUMNS} FROM staff WHERE name = ?1"))?;
            let mut rows = stmt.query([name])?;
            rows.next()?.map(login).transpose()
        })
    }

    fn set_staff_password(
        &self,
        name: &str,
        password_hash: &str,
        at: Timestamp,
    ) -> cohort_store::Result<bool> {
        sql(|| {
            let mut conn = self.conn();
            let tx = conn.transaction()?;
            let n = tx.execute(
                "UPDATE staff SET password_hash = ?2, password_changed_at = ?3,
                                  failed_sign_ins = 0, locked_until = NULL
                 WHERE name = ?1",
                params![name, password_hash, at],
            )?;
            tx.execute("DELETE FROM staff_sessions WHERE staff = ?1", [name])?;
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
            Ok(self
                .conn()
                .query_row(
                    "UPDATE staff SET
                        failed_sign_ins = CASE WHEN failed_sign_ins + 1 >= ?2 THEN 0
                                               ELSE failed_sign_ins + 1 END,
                        locked_until = CASE WHEN failed_sign_ins + 1 >= ?2 THEN ?3
                                            ELSE locked_until END
                     WHERE name = ?1
                     RETURNING CASE WHEN locked_until = ?3 THEN ?3 END",
                    params![name, SIGN_IN_FAILURES, lock],
                    |r| r.get::<_, Option<Timestamp>>(0),
                )
                .optional()?
                .flatten())
        })
    }

    fn open_session(&self, digest: &str, s: &StaffSession) -> cohort_store::Result<()> {
        sql(|| {
            let mut conn = self.conn();
            let tx = conn.transaction()?;
            tx.execute(
                "DELETE FROM staff_sessions WHERE expires_at <= ?1",
                [s.created_at],
            )?;
            tx.execute(
                "UPDATE staff SET failed_sign_ins = 0 WHERE name = ?1",
                [&s.staff],
            )?;
            tx.execute(
                "INSERT INTO staff_sessions (digest, staff, csrf, created_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![digest, s.staff, s.csrf, s.created_at, s.expires_at],
            )?;
            tx.commit()?;
            Ok(())
        })
    }

    fn session(&self, digest: &str, now: Timestamp) -> cohort_store::Result<Option<StaffSession>> {
        sql(|| {
            Ok(self
                .reader()
                .query_row(
                    "SELECT staff, csrf, created_at, expires_at FROM staff_sessions
                     WHERE digest = ?1 AND expires_at > ?2",
                    params![digest, now],
                    |r| {
                        Ok(StaffSession {
                            staff: r.get(0)?,
                            csrf: r.get(1)?,
                            created_at: r.get(2)?,
                            expires_at: r.get(3)?,
                        })
                    },
                )
                .optional()?)
        })
    }

    fn close_session(&self, digest: &str) -> cohort_store::Result<bool> {
        sql(|| {
            Ok(self
                .conn()
                .execute("DELETE FROM staff_sessions WHERE digest = ?1", [digest])?
                > 0)
        })
    }

    fn delete_staff(&self, name: &str) -> cohort_store::Result<bool> {
        sql(|| {
            let mut conn = self.conn();
            let tx = conn.transaction()?;
            tx.execute("DELETE FROM staff_sessions WHERE staff = ?1", [name])?;
            let n = tx.execute("DELETE FROM staff WHERE name = ?1", [name])?;
            tx.commit()?;
            Ok(n > 0)
        })
    }
}
