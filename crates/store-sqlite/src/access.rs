//! What the HTTP layer keeps: tokens by digest and the responses kept for idempotency
//! keys (webhooks: `webhooks.rs`).

use cohort_model::Timestamp;
use cohort_store::{IDEMPOTENCY_KEY_LIFETIME, Idempotency, Remembered, Role, TokenRecord, Tokens};
use rusqlite::{OptionalExtension, params};

use crate::{Result, SqliteStore, corrupt, sql};

const TOKEN_COLUMNS: &str = "id, name, role, created_at, revoked_at, expires_at, group_scope";

fn token_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(TokenRecord, String, Option<String>)> {
    Ok((
        TokenRecord {
            id: r.get(0)?,
            name: r.get(1)?,
            role: Role::ReadOnly,
            created_at: r.get(3)?,
            revoked_at: r.get(4)?,
            expires_at: r.get(5)?,
            groups: None,
        },
        r.get(2)?,
        r.get(6)?,
    ))
}

fn with_role(
    (mut token, role, scope): (TokenRecord, String, Option<String>),
) -> Result<TokenRecord> {
    token.role = Role::parse(&role).ok_or_else(|| corrupt("token", &token.name, "role"))?;
    token.groups = scope
        .map(|json| serde_json::from_str(&json))
        .transpose()
        .map_err(|e| corrupt("token", &token.name, format!("groups: {e}")))?;
    Ok(token)
}

impl Tokens for SqliteStore {
    fn create_token(
        &self,
        name: &str,
        role: Role,
        groups: Option<&[String]>,
        hash: &str,
        at: Timestamp,
        expires_at: Option<Timestamp>,
    ) -> cohort_store::Result<i64> {
        sql(|| {
            let scope = groups.map(|g| serde_json::Value::from(g).to_string());
            let conn = self.conn();
            conn.execute(
                "INSERT INTO tokens (name, role, hash, created_at, expires_at, group_scope)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![name, role.as_str(), hash, at, expires_at, scope],
            )?;
            Ok(conn.last_insert_rowid())
        })
    }

    fn tokens(&self) -> cohort_store::Result<Vec<TokenRecord>> {
        sql(|| {
            let conn = self.reader();
            let mut stmt =
                conn.prepare(&format!("SELECT {TOKEN_COLUMNS} FROM tokens ORDER BY id"))?;
            let rows = stmt.query_map([], token_row)?;
            rows.map(|r| with_role(r?)).collect()
        })
    }

    fn revoke_token(&self, name: &str, at: Timestamp) -> cohort_store::Result<bool> {
        sql(|| {
            let n = self.conn().execute(
                "UPDATE tokens SET revoked_at = ?2 WHERE name = ?1 AND revoked_at IS NULL",
                params![name, at],
            )?;
            Ok(n > 0)
        })
    }

    fn token_by_hash(&self, hash: &str) -> cohort_store::Result<Option<TokenRecord>> {
        sql(|| {
            let conn = self.reader();
            let row = conn
                .prepare_cached(&format!(
                    "SELECT {TOKEN_COLUMNS} FROM tokens WHERE hash = ?1 AND revoked_at IS NULL"
                ))?
                .query_row([hash], token_row)
                .optional()?;
            row.map(with_role).transpose()
        })
    }
}

impl Idempotency for SqliteStore {
    fn recall(
        &self,
        token: i64,
        key: &str,
        since: Timestamp,
    ) -> cohort_store::Result<Option<Remembered>> {
        sql(|| {
            let conn = self.reader();
            Ok(conn
                .prepare_cached(
                    "SELECT request, status, body FROM idempotency
                 WHERE token = ?1 AND key = ?2 AND at >= ?3",
                )?
                .query_row(params![token.to_string(), key, since], |r| {
                    Ok(Remembered {
                        request: r.get(0)?,
                        status: r.get(1)?,
                        body: r.get(2)?,
                    })
                })
                .optional()?)
        })
    }

    fn remember(
        &self,
        token: i64,
        key: &str,
        response: &Remembered,
        at: Timestamp,
    ) -> cohort_store::Result<()> {
        sql(|| {
            // An expired key of the same name is replaced; a live one stays as it was.
            self.conn().execute(
                "INSERT INTO idempotency (token, key, request, status, body, at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (token, key) DO UPDATE SET request = excluded.request,
                 status = excluded.status, body = excluded.body, at = excluded.at
             WHERE at < excluded.at - ?7",
                params![
                    token.to_string(),
                    key,
                    response.request,
                    response.status,
                    response.body,
                    at,
                    IDEMPOTENCY_KEY_LIFETIME
                ],
            )?;
            Ok(())
        })
    }

    fn forget_responses(&self, before: Timestamp) -> cohort_store::Result<usize> {
        sql(|| {
            Ok(self
                .conn()
                .execute("DELETE FROM idempotency WHERE at < ?1", [before])?)
        })
    }
}
