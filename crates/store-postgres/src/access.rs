//! What the HTTP layer keeps: tokens by digest and the responses kept for idempotency
//! keys (webhooks: `webhooks.rs`).

use cohort_model::Timestamp;
use cohort_store::{IDEMPOTENCY_KEY_LIFETIME, Idempotency, Remembered, Role, TokenRecord, Tokens};
use postgres::Row;

use crate::{PgStore, Result, corrupt, named, sql};

const TOKEN_COLUMNS: &str = "id, name, role, created_at, revoked_at, expires_at, group_scope";

fn token(r: &Row) -> Result<TokenRecord> {
    let name: String = r.get(1);
    Ok(TokenRecord {
        id: r.get(0),
        role: named(r.get(2), Role::parse, "token", &name)?,
        created_at: r.get(3),
        revoked_at: r.get(4),
        expires_at: r.get(5),
        groups: r
            .get::<_, Option<&str>>(6)
            .map(serde_json::from_str)
            .transpose()
            .map_err(|e| corrupt("token", &name, format!("groups: {e}")))?,
        name,
    })
}

impl Tokens for PgStore {
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
            Ok(self
                .pool
                .get()?
                .query_one(
                    "INSERT INTO tokens (name, role, hash, created_at, expires_at, group_scope)
                     VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                    &[&name, &role.as_str(), &hash, &at, &expires_at, &scope],
                )?
                .get(0))
        })
    }

    fn tokens(&self) -> cohort_store::Result<Vec<TokenRecord>> {
        sql(|| {
            let rows = self.pool.get()?.query(
                &format!("SELECT {TOKEN_COLUMNS} FROM tokens ORDER BY id"),
                &[],
            )?;
            rows.iter().map(token).collect()
        })
    }

    fn revoke_token(&self, name: &str, at: Timestamp) -> cohort_store::Result<bool> {
        sql(|| {
            let n = self.pool.get()?.execute(
                "UPDATE tokens SET revoked_at = $2 WHERE name = $1 AND revoked_at IS NULL",
                &[&name, &at],
            )?;
            Ok(n > 0)
        })
    }

    fn token_by_hash(&self, hash: &str) -> cohort_store::Result<Option<TokenRecord>> {
        sql(|| {
            // Every request of the API asks this first.
            let mut conn = self.pool.get()?;
            let statement = conn.prepared(
                "SELECT id, name, role, created_at, revoked_at, expires_at, group_scope
                 FROM tokens WHERE hash = $1 AND revoked_at IS NULL",
            )?;
            conn.query_opt(&statement, &[&hash])?
                .as_ref()
                .map(token)
                .transpose()
        })
    }
}

impl Idempotency for PgStore {
    fn recall(
        &self,
        token: i64,
        key: &str,
        since: Timestamp,
    ) -> cohort_store::Result<Option<Remembered>> {
        sql(|| {
            Ok(self
                .pool
                .get()?
                .query_opt(
                    "SELECT request, status, body FROM idempotency
                     WHERE token = $1 AND key = $2 AND at >= $3",
                    &[&token, &key, &since],
                )?
                .map(|r| Remembered {
                    request: r.get(0),
                    status: u16::try_from(r.get::<_, i32>(1)).unwrap_or_default(),
                    body: r.get(2),
                }))
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
            self.pool.get()?.execute(
                "INSERT INTO idempotency (token, key, request, status, body, at)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (token, key) DO UPDATE SET request = excluded.request,
                     status = excluded.status, body = excluded.body, at = excluded.at
                 WHERE idempotency.at < excluded.at - $7",
                &[
                    &token,
                    &key,
                    &response.request,
                    &i32::from(response.status),
                    &response.body,
                    &at,
                    &IDEMPOTENCY_KEY_LIFETIME,
                ],
            )?;
            Ok(())
        })
    }

    fn forget_responses(&self, before: Timestamp) -> cohort_store::Result<usize> {
        sql(|| {
            let n = self
                .pool
                .get()?
                .execute("DELETE FROM idempotency WHERE at < $1", &[&before])?;
            Ok(usize::try_from(n).unwrap_or(usize::MAX))
        })
    }
}
