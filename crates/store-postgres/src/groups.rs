//! Group definitions, what refers to them, and when their schedules last ran.

use cohort_model::{Group, Timestamp};
use cohort_store::{Groups, StoreError};
use postgres::GenericClient;

use crate::{PgStore, Result, corrupt, sql};

/// Count a change to the groups' definitions, in the transaction that makes it.
fn bump_groups_stamp(tx: &mut impl GenericClient) -> Result<()> {
    tx.execute("UPDATE stamps SET n = n + 1 WHERE name = 'groups'", &[])?;
    Ok(())
}

fn parse(id: &str, json: &str) -> Result<Group> {
    serde_json::from_str(json).map_err(|e| corrupt("group", id, e))
}

impl Groups for PgStore {
    fn put_group_if(
        &self,
        group: &Group,
        now: Timestamp,
        precondition: &dyn Fn(Option<&Group>) -> bool,
    ) -> cohort_store::Result<bool> {
        sql(|| {
            let json = serde_json::to_string(group).map_err(|e| corrupt("group", &group.id, e))?;
            let mut conn = self.pool.get()?;
            let mut tx = conn.transaction()?;
            // The stored row stays locked until the write: no other server's write
            // comes between the look and it.
            let stored = tx
                .query_opt(
                    "SELECT definition FROM groups WHERE id = $1 FOR UPDATE",
                    &[&group.id],
                )?
                .map(|r| parse(&group.id, r.get(0)))
                .transpose()?;
            if !precondition(stored.as_ref()) {
                return Ok(false);
            }
            tx.execute(
                "INSERT INTO groups (id, definition, updated_at) VALUES ($1, $2, $3)
                 ON CONFLICT (id) DO UPDATE SET definition = excluded.definition,
                    updated_at = excluded.updated_at",
                &[&group.id, &json, &now],
            )?;
            bump_groups_stamp(&mut tx)?;
            tx.commit()?;
            Ok(true)
        })
    }

    fn group(&self, id: &str) -> cohort_store::Result<Option<Group>> {
        sql(|| {
            self.pool
                .get()?
                .query_opt("SELECT definition FROM groups WHERE id = $1", &[&id])?
                .map(|r| parse(id, r.get(0)))
                .transpose()
        })
    }

    fn groups(&self) -> cohort_store::Result<Vec<Group>> {
        sql(|| {
            let rows = self
                .pool
                .get()?
                .query("SELECT id, definition FROM groups ORDER BY id", &[])?;
            rows.iter().map(|r| parse(r.get(0), r.get(1))).collect()
        })
    }

    fn groups_stamp(&self) -> cohort_store::Result<i64> {
        sql(|| {
            Ok(self
                .pool
                .get()?
                .query_one("SELECT n FROM stamps WHERE name = 'groups'", &[])?
                .get(0))
        })
    }

    fn delete_group(&self, id: &str) -> cohort_store::Result<()> {
        sql(|| {
            let mut conn = self.pool.get()?;
            let mut tx = conn.transaction()?;
            if tx.execute("DELETE FROM groups WHERE id = $1", &[&id])? == 0 {
                return Err(StoreError::NotFound {
                    what: "group",
                    id: id.to_string(),
                }
                .into());
            }
            // A group made again under the same id starts with no references.
            tx.execute("DELETE FROM group_uses WHERE grp = $1", &[&id])?;
            bump_groups_stamp(&mut tx)?;
            tx.commit()?;
            Ok(())
        })
    }

    fn set_use(
        &self,
        group: &str,
        kind: &str,
        entity: &str,
        used: bool,
    ) -> cohort_store::Result<()> {
        sql(|| {
            let statement = if used {
                "INSERT INTO group_uses (grp, kind, entity) VALUES ($1, $2, $3)
                 ON CONFLICT DO NOTHING"
            } else {
                "DELETE FROM group_uses WHERE grp = $1 AND kind = $2 AND entity = $3"
            };
            self.pool
                .get()?
                .execute(statement, &[&group, &kind, &entity])?;
            Ok(())
        })
    }

    fn uses(&self, group: &str) -> cohort_store::Result<Vec<(String, String)>> {
        sql(|| {
            let rows = self.pool.get()?.query(
                "SELECT kind, entity FROM group_uses WHERE grp = $1 ORDER BY kind, entity",
                &[&group],
            )?;
            Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
        })
    }

    fn last_periodic_run(&self, group: &str) -> cohort_store::Result<Option<Timestamp>> {
        sql(|| {
            Ok(self
                .pool
                .get()?
                .query_opt(
                    "SELECT coalesce(last_periodic_run, updated_at) FROM groups WHERE id = $1",
                    &[&group],
                )?
                .and_then(|r| r.get(0)))
        })
    }

    fn claim_periodic_run(
        &self,
        group: &str,
        last: Timestamp,
        now: Timestamp,
    ) -> cohort_store::Result<bool> {
        sql(|| {
            // Servers claiming at once wait for each other's row lock; the later one
            // then finds the row changed and takes nothing.
            let n = self.pool.get()?.execute(
                "UPDATE groups SET last_periodic_run = $3
                 WHERE id = $1 AND coalesce(last_periodic_run, updated_at) = $2",
                &[&group, &last, &now],
            )?;
            Ok(n > 0)
        })
    }
}
