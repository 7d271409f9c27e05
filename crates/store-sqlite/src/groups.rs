//! Group definitions, what refers to them, and when their schedules last ran.

use cohort_model::{Group, Timestamp};
use cohort_store::{Groups, StoreError};
use rusqlite::{OptionalExtension, params};

use crate::{SqliteStore, corrupt, sql};

impl Groups for SqliteStore {
    fn put_group_if(
        &self,
        group: &Group,
        now: Timestamp,
        precondition: &dyn Fn(Option<&Group>) -> bool,
    ) -> cohort_store::Result<bool> {
        sql(|| {
            let json = serde_json::to_string(group).map_err(|e| corrupt("group", &group.id, e))?;
            let mut conn = self.conn();
            // The write lock is held from here (see `SqliteStore::setup`).
            let tx = conn.transaction()?;
            let stored: Option<String> = tx
                .query_row(
                    "SELECT definition FROM groups WHERE id = ?1",
                    [&group.id],
                    |r| r.get(0),
                )
                .optional()?;
            let stored: Option<Group> = stored
                .map(|j| serde_json::from_str(&j).map_err(|e| corrupt("group", &group.id, e)))
                .transpose()?;
            if !precondition(stored.as_ref()) {
                return Ok(false);
            }
            tx.execute(
                "INSERT INTO groups (id, definition, updated_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (id) DO UPDATE SET definition = excluded.definition,
                updated_at = excluded.updated_at",
                params![group.id, json, now],
            )?;
            tx.commit()?;
            Ok(true)
        })
    }

    fn group(&self, id: &str) -> cohort_store::Result<Option<Group>> {
        sql(|| {
            let json: Option<String> = self
                .reader()
                .query_row("SELECT definition FROM groups WHERE id = ?1", [id], |r| {
                    r.get(0)
                })
                .optional()?;
            json.map(|j| serde_json::from_str(&j).map_err(|e| corrupt("group", id, e)))
                .transpose()
        })
    }

    fn groups(&self) -> cohort_store::Result<Vec<Group>> {
        sql(|| {
            let conn = self.conn();
            let mut stmt = conn.prepare("SELECT id, definition FROM groups ORDER BY id")?;
            let rows =
                stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
            let mut out = Vec::new();
            for row in rows {
                let (id, json) = row?;
                out.push(serde_json::from_str(&json).map_err(|e| corrupt("group", &id, e))?);
            }
            Ok(out)
        })
    }

    fn groups_stamp(&self) -> cohort_store::Result<i64> {
        sql(|| {
            Ok(self
                .conn()
                .prepare_cached("SELECT n FROM stamps WHERE name = 'groups'")?
                .query_row([], |r| r.get(0))?)
        })
    }

    fn delete_group(&self, id: &str) -> cohort_store::Result<()> {
        sql(|| {
            let mut conn = self.conn();
            let tx = conn.transaction()?;
            if tx.execute("DELETE FROM groups WHERE id = ?1", [id])? == 0 {
                return Err(StoreError::NotFound {
                    what: "group",
                    id: id.to_string(),
                }
                .into());
            }
            // A group made again under the same id starts with no references.
            tx.execute("DELETE FROM group_uses WHERE grp = ?1", [id])?;
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
            if used {
                self.conn().execute(
                    "INSERT OR IGNORE INTO group_uses (grp, kind, entity) VALUES (?1, ?2, ?3)",
                    params![group, kind, entity],
                )?;
            } else {
                self.conn().execute(
                    "DELETE FROM group_uses WHERE grp = ?1 AND kind = ?2 AND entity = ?3",
                    params![group, kind, entity],
                )?;
            }
            Ok(())
        })
    }

    fn uses(&self, group: &str) -> cohort_store::Result<Vec<(String, String)>> {
        sql(|| {
            let conn = self.reader();
            let mut stmt = conn.prepare_cached(
                "SELECT kind, entity FROM group_uses WHERE grp = ?1 ORDER BY kind, entity",
            )?;
            let rows = stmt.query_map([group], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    fn last_periodic_run(&self, group: &str) -> cohort_store::Result<Option<Timestamp>> {
        sql(|| {
            Ok(self
                .reader()
                .query_row(
                    "SELECT COALESCE(last_periodic_run, updated_at) FROM groups WHERE id = ?1",
                    [group],
                    |r| r.get(0),
                )
                .optional()?
                .flatten())
        })
    }

    fn claim_periodic_run(
        &self,
        group: &str,
        last: Timestamp,
        now: Timestamp,
    ) -> cohort_store::Result<bool> {
        sql(|| {
            let n = self.conn().execute(
                "UPDATE groups SET last_periodic_run = ?3
                 WHERE id = ?1 AND coalesce(last_periodic_run, updated_at) = ?2",
                params![group, last, now],
            )?;
            Ok(n > 0)
        })
    }
}
