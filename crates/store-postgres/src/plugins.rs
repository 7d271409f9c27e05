//! The plugins an operator added, with their bytes.

use cohort_store::{Plugins, StoredPlugin};

use crate::{PgStore, sql};

impl Plugins for PgStore {
    fn put_plugin(&self, p: &StoredPlugin, wasm: &[u8]) -> cohort_store::Result<()> {
        sql(|| {
            self.pool.get()?.execute(
                "INSERT INTO plugins (id, version, sha256, wasm, data_dir, data_dir_as_given,
                                      added_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (id, version) DO UPDATE SET
                    sha256 = excluded.sha256, wasm = excluded.wasm,
                    data_dir = excluded.data_dir, data_dir_as_given = excluded.data_dir_as_given,
                    added_at = excluded.added_at",
                &[
                    &p.id,
                    &p.version,
                    &p.sha256,
                    &wasm,
                    &p.data_dir,
                    &p.data_dir_as_given,
                    &p.added_at,
                ],
            )?;
            Ok(())
        })
    }

    fn plugins(&self) -> cohort_store::Result<Vec<StoredPlugin>> {
        sql(|| {
            let rows = self.pool.get()?.query(
                "SELECT id, version, sha256, data_dir, data_dir_as_given, added_at FROM plugins
                 ORDER BY id, version",
                &[],
            )?;
            Ok(rows
                .iter()
                .map(|r| StoredPlugin {
                    id: r.get(0),
                    version: r.get(1),
                    sha256: r.get(2),
                    data_dir: r.get(3),
                    data_dir_as_given: r.get(4),
                    added_at: r.get(5),
                })
                .collect())
        })
    }

    fn plugin_wasm(&self, id: &str, version: &str) -> cohort_store::Result<Option<Vec<u8>>> {
        sql(|| {
            Ok(self
                .pool
                .get()?
                .query_opt(
                    "SELECT wasm FROM plugins WHERE id = $1 AND version = $2",
                    &[&id, &version],
                )?
                .map(|r| r.get(0)))
        })
    }
}
