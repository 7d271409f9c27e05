//! The plugins an operator added, with their bytes.

use cohort_model::PluginBudget;
use cohort_store::{Plugins, StoredPlugin, TrustedKey, plugin_budget};
use rusqlite::{OptionalExtension, params};

use crate::{SqliteStore, sql};

/// Every stored plugin but its component, read from `plugins_listed` alone: the
/// planner, which prefers the primary key's index in the same order, would read each
/// row past its component.
const PLUGINS: &str = "SELECT p.id, version, sha256, data_dir, data_dir_as_given, added_at, signer,
        signer_key, b.budget
 FROM plugins p INDEXED BY plugins_listed LEFT JOIN plugin_budgets b ON b.id = p.id
 ORDER BY p.id, version";

impl Plugins for SqliteStore {
    fn put_plugin(&self, p: &StoredPlugin, wasm: &[u8]) -> cohort_store::Result<()> {
        sql(|| {
            self.conn().execute(
                "INSERT INTO plugins (id, version, sha256, wasm, data_dir, data_dir_as_given,
                                      added_at, signer, signer_key)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
             ON CONFLICT (id, version) DO UPDATE SET
                sha256 = excluded.sha256, wasm = excluded.wasm,
                data_dir = excluded.data_dir, data_dir_as_given = excluded.data_dir_as_given,
                added_at = excluded.added_at, signer = excluded.signer,
                signer_key = excluded.signer_key",
                params![
                    p.id,
                    p.version,
                    p.sha256,
                    wasm,
                    p.data_dir,
                    p.data_dir_as_given,
                    p.added_at,
                    p.signer,
                    p.signer_key
                ],
            )?;
            Ok(())
        })
    }

    fn plugins(&self) -> cohort_store::Result<Vec<StoredPlugin>> {
        sql(|| {
            let conn = self.reader();
            let mut stmt = conn.prepare_cached(PLUGINS)?;
            let mut rows = stmt.query([])?;
            let mut plugins = Vec::new();
            while let Some(r) = rows.next()? {
                let id: String = r.get(0)?;
                let budget = plugin_budget(&id, r.get::<_, Option<String>>(8)?.as_deref())?;
                plugins.push(StoredPlugin {
                    id,
                    version: r.get(1)?,
                    sha256: r.get(2)?,
                    data_dir: r.get(3)?,
                    data_dir_as_given: r.get(4)?,
                    added_at: r.get(5)?,
                    signer: r.get(6)?,
                    signer_key: r.get(7)?,
                    budget,
                });
            }
            Ok(plugins)
        })
    }

    fn set_plugin_budget(&self, id: &str, budget: &PluginBudget) -> cohort_store::Result<()> {
        sql(|| {
            let conn = self.conn();
            if budget.is_empty() {
                conn.execute("DELETE FROM plugin_budgets WHERE id = ?1", [id])?;
            } else {
                conn.execute(
                    "INSERT INTO plugin_budgets (id, budget) VALUES (?1, ?2)
                     ON CONFLICT (id) DO UPDATE SET budget = excluded.budget",
                    params![id, serde_json::to_string(budget).unwrap_or_default()],
                )?;
            }
            Ok(())
        })
    }

    fn plugin_wasm(&self, id: &str, version: &str) -> cohort_store::Result<Option<Vec<u8>>> {
        sql(|| {
            Ok(self
                .reader()
                .query_row(
                    "SELECT wasm FROM plugins WHERE id = ?1 AND version = ?2",
                    [id, version],
                    |r| r.get(0),
                )
                .optional()?)
        })
    }

    fn trusted_keys(&self) -> cohort_store::Result<Vec<TrustedKey>> {
        sql(|| {
            let conn = self.reader();
            let mut stmt = conn.prepare_cached(
                "SELECT name, public_key, added_at FROM trusted_keys ORDER BY name",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(TrustedKey {
                    name: r.get(0)?,
                    public_key: r.get(1)?,
                    added_at: r.get(2)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    fn trust_key(&self, key: &TrustedKey) -> cohort_store::Result<()> {
        sql(|| {
            self.conn().execute(
                "INSERT INTO trusted_keys (name, public_key, added_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (name) DO UPDATE SET public_key = excluded.public_key,
                    added_at = excluded.added_at",
                params![key.name, key.public_key, key.added_at],
            )?;
            Ok(())
        })
    }

    fn distrust_key(&self, name: &str) -> cohort_store::Result<bool> {
        sql(|| {
            Ok(self
                .conn()
                .execute("DELETE FROM trusted_keys WHERE name = ?1", [name])?
                > 0)
        })
    }

    fn signatures_required(&self) -> cohort_store::Result<bool> {
        sql(|| {
            let value: Option<String> = self
                .reader()
                .query_row(
                    "SELECT value FROM settings WHERE name = 'signatures_required'",
                    [],
                    |r| r.get(0),
                )
                .optional()?;
            Ok(value.as_deref() == Some("true"))
        })
    }

    fn require_signatures(&self, required: bool) -> cohort_store::Result<()> {
        sql(|| {
            self.conn().execute(
                "INSERT INTO settings (name, value) VALUES ('signatures_required', ?1)
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                [required.to_string()],
            )?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The list reads the covering index, never the rows that hold each component.
    #[test]
    fn the_plugin_list_is_read_without_the_components() {
        let store = SqliteStore::in_memory().expect("store");
        let conn = store.reader();
        let mut stmt = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {PLUGINS}"))
            .expect("plan");
        let plan: Vec<String> = stmt
            .query_map([], |r| r.get::<_, String>(3))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
        assert!(
            plan.iter()
                .any(|step| step.contains("SCAN p USING COVERING INDEX plugins_listed")),
            "{plan:?}"
        );
    }
}
