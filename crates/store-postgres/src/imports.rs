//! Imports: rows staged in the store, checked there against each other and the
//! customers, and applied through the journal.

use std::collections::BTreeMap;

use cohort_model::{Source, Timestamp};
use cohort_store::plan::{Action, announced};
use cohort_store::{Cause, ImportProblem, ImportRecord, Imports, StagedRow};

use crate::journal::{Entry, NewRow, bump_membership_stamps, insert_memberships, record};
use crate::{PgStore, big, count, sql};

/// Staged rows per statement.
const CHUNK: usize = 50_000;

/// A staged row to apply, with the imported membership it would update, if any.
struct Planned {
    line: i64,
    customer: String,
    group: String,
    starts: i64,
    ends: Option<i64>,
    found: Option<(i64, Option<i64>)>,
}

impl Imports for PgStore {
    fn begin_import(&self, r: &ImportRecord) -> cohort_store::Result<i64> {
        sql(|| {
            Ok(self
                .pool
                .get()?
                .query_one(
                    "INSERT INTO imports (actor, file_name, sha256, started_at, status, dry_run,
                                          partial)
                     VALUES ($1, $2, $3, $4, 'validating', $5, $6) RETURNING id",
                    &[
                        &r.actor,
                        &r.file_name,
                        &r.sha256,
                        &r.started_at,
                        &r.dry_run,
                        &r.partial,
                    ],
                )?
                .get(0))
        })
    }

    fn stage_import(&self, import: i64, rows: &[StagedRow<'_>]) -> cohort_store::Result<()> {
        sql(|| {
            let mut conn = self.pool.get()?;
            let mut tx = conn.transaction()?;
            let statement = tx.prepare(
                "INSERT INTO import_rows (import, line, customer, grp, starts, ends)
                 SELECT $1, * FROM unnest($2::bigint[], $3::text[], $4::text[], $5::bigint[],
                                          $6::bigint[])",
            )?;
            for rows in rows.chunks(CHUNK) {
                let lines: Vec<i64> = rows.iter().map(|r| big(r.line)).collect();
                let customers: Vec<&str> = rows.iter().map(|r| r.customer.as_str()).collect();
                let groups: Vec<&str> = rows.iter().map(|r| r.group.as_ref()).collect();
                let starts: Vec<i64> = rows.iter().map(|r| r.start).collect();
                let ends: Vec<Option<i64>> = rows.iter().map(|r| r.end).collect();
                tx.execute(
                    &statement,
                    &[&import, &lines, &customers, &groups, &starts, &ends],
                )?;
            }
            tx.commit()?;
            Ok(())
        })
    }

    fn add_import_problems(
        &self,
        import: i64,
        problems: &[ImportProblem],
    ) -> cohort_store::Result<()> {
        sql(|| {
            let lines: Vec<i64> = problems.iter().map(|p| big(p.line)).collect();
            let columns: Vec<Option<&str>> = problems.iter().map(|p| p.column.as_deref()).collect();
            let messages: Vec<&str> = problems.iter().map(|p| p.message.as_str()).collect();
            // In the order given: problems of one line are read back as they were found.
            self.pool.get()?.execute(
                "INSERT INTO import_errors (import, line, col, message)
                 SELECT $1, line, col, message
                 FROM unnest($2::bigint[], $3::text[], $4::text[]) WITH ORDINALITY
                      AS u(line, col, message, n)
                 ORDER BY n",
                &[&import, &lines, &columns, &messages],
            )?;
            Ok(())
        })
    }

    fn check_import(&self, import: i64, customer_column: &str) -> cohort_store::Result<u64> {
        sql(|| {
            let mut conn = self.pool.get()?;
            let mut tx = conn.transaction()?;
            let unknown = tx.execute(
                "INSERT INTO import_errors (import, line, col, message)
                 SELECT r.import, r.line, $2, 'unknown customer `' || r.customer || '`'
                 FROM import_rows r WHERE r.import = $1
                   AND NOT EXISTS (SELECT 1 FROM customers c WHERE c.id = r.customer)
                 ORDER BY r.line",
                &[&import, &customer_column],
            )?;
            // Each pair is reported on its later line, naming the earlier one.
            let clashes = tx.execute(
                "INSERT INTO import_errors (import, line, col, message)
                 SELECT b.import, b.line, NULL,
                        CASE WHEN a.starts = b.starts AND a.ends IS NOT DISTINCT FROM b.ends
                             THEN 'duplicates line ' || a.line || ' (`' || b.customer
                                  || '` in `' || b.grp || '`)'
                             ELSE 'overlaps line ' || a.line || ': both put `' || b.customer
                                  || '` in `' || b.grp || '` at the same time'
                        END
                 FROM import_rows a JOIN import_rows b
                   ON a.import = b.import AND a.customer = b.customer AND a.grp = b.grp
                  AND a.line < b.line
                  AND a.starts < coalesce(b.ends, 9223372036854775807)
                  AND b.starts < coalesce(a.ends, 9223372036854775807)
                 WHERE a.import = $1
                 ORDER BY b.line, a.line",
                &[&import],
            )?;
            tx.commit()?;
            Ok(unknown + clashes)
        })
    }

    fn apply_import(
        &self,
        import: i64,
        cause: &Cause<'_>,
        dry_run: bool,
        at: Timestamp,
    ) -> cohort_store::Result<(u64, u64, u64)> {
        sql(|| {
            let mut conn = self.pool.get()?;
            let mut tx = conn.begin()?;
            // Each row with the imported membership it would update, if any, group by
            // group as on every backend. A file never repeats a key (a repeated key is
            // an error of its line), so no row finds a membership another row of this
            // import writes.
            let planned: Vec<Planned> = tx
                .query(
                    "SELECT r.line, r.customer, r.grp, r.starts, r.ends, m.id, m.ends
                     FROM import_rows r
                     LEFT JOIN memberships m ON m.grp = r.grp AND m.customer = r.customer
                         AND m.starts = r.starts AND m.source = 'import'
                     WHERE r.import = $1
                       AND r.line NOT IN (SELECT line FROM import_errors WHERE import = $1)
                     ORDER BY r.grp COLLATE \"C\", r.customer COLLATE \"C\", r.starts, r.line",
                    &[&import],
                )?
                .iter()
                .map(|r| Planned {
                    line: r.get(0),
                    customer: r.get(1),
                    group: r.get(2),
                    starts: r.get(3),
                    ends: r.get(4),
                    found: r.get::<_, Option<i64>>(5).map(|id| (id, r.get(6))),
                })
                .collect();
            let reasons: Vec<String> = planned
                .iter()
                .map(|p| format!("import #{import}, line {}", p.line))
                .collect();
            let (mut added, mut updated, mut unchanged) = (0, 0, 0);
            let mut new_rows = Vec::new();
            let mut updates: (Vec<i64>, Vec<Option<i64>>, Vec<&str>) = Default::default();
            for (p, reason) in planned.iter().zip(&reasons) {
                match p.found {
                    Some((_, ends)) if ends == p.ends => unchanged += 1,
                    Some((id, _)) => {
                        updated += 1;
                        updates.0.push(id);
                        updates.1.push(p.ends);
                        updates.2.push(announced(p.starts, p.ends, at));
                    }
                    None => {
                        added += 1;
                        new_rows.push(NewRow {
                            customer: &p.customer,
                            group: &p.group,
                            source: Source::Import,
                            actor: cause.actor,
                            reason,
                            starts: p.starts,
                            ends: p.ends,
                            announced: announced(p.starts, p.ends, at),
                        });
                    }
                }
            }
            if dry_run {
                return Ok((added, updated, unchanged));
            }
            let ids = insert_memberships(&mut tx, &new_rows)?;
            tx.execute(
                "UPDATE memberships m SET ends = u.ends, announced = u.announced
                 FROM unnest($1::bigint[], $2::bigint[], $3::text[]) AS u(id, ends, announced)
                 WHERE m.id = u.id",
                &[&updates.0, &updates.1, &updates.2],
            )?;
            // The entries in line order, each for the membership it wrote.
            let mut ids = ids.into_iter();
            let mut entries = Vec::new();
            let mut touched: BTreeMap<&str, i64> = BTreeMap::new();
            for (p, reason) in planned.iter().zip(&reasons) {
                let (action, membership) = match p.found {
                    Some((_, ends)) if ends == p.ends => continue,
                    Some((id, _)) => (Action::Updated, id),
                    None => (Action::Added, ids.next().unwrap_or_default()),
                };
                touched.insert(&p.group, 1);
                entries.push(Entry {
                    action,
                    customer: &p.customer,
                    group: &p.group,
                    membership,
                    source: Some(Source::Import),
                    actor: cause.actor,
                    trigger: cause.trigger,
                    run: cause.run,
                    reason,
                });
            }
            bump_membership_stamps(&mut tx, &touched)?;
            record(&mut tx, at, &entries)?;
            tx.commit()?;
            Ok((added, updated, unchanged))
        })
    }

    fn finish_import(&self, r: &ImportRecord) -> cohort_store::Result<()> {
        sql(|| {
            let mut conn = self.pool.get()?;
            let mut tx = conn.transaction()?;
            tx.execute(
                "UPDATE imports SET finished_at = $2, status = $3, rows = $4, added = $5,
                    updated = $6, unchanged = $7, rejected = $8 WHERE id = $1",
                &[
                    &r.id,
                    &r.finished_at,
                    &r.status,
                    &big(r.rows),
                    &big(r.added),
                    &big(r.updated),
                    &big(r.unchanged),
                    &big(r.rejected),
                ],
            )?;
            tx.execute("DELETE FROM import_rows WHERE import = $1", &[&r.id])?;
            tx.commit()?;
            Ok(())
        })
    }

    fn imports(
        &self,
        before: Option<i64>,
        limit: usize,
    ) -> cohort_store::Result<Vec<ImportRecord>> {
        sql(|| {
            let rows = self.pool.get()?.query(
                "SELECT id, actor, file_name, sha256, started_at, finished_at, status, dry_run,
                        partial, rows, added, updated, unchanged, rejected
                 FROM imports WHERE id < $2 ORDER BY id DESC LIMIT $1",
                &[&(limit as i64), &before.unwrap_or(i64::MAX)],
            )?;
            Ok(rows
                .iter()
                .map(|r| ImportRecord {
                    id: r.get(0),
                    actor: r.get(1),
                    file_name: r.get(2),
                    sha256: r.get(3),
                    started_at: r.get(4),
                    finished_at: r.get(5),
                    status: r.get(6),
                    dry_run: r.get(7),
                    partial: r.get(8),
                    rows: count(r.get(9)),
                    added: count(r.get(10)),
                    updated: count(r.get(11)),
                    unchanged: count(r.get(12)),
                    rejected: count(r.get(13)),
                })
                .collect())
        })
    }

    fn import_problems(
        &self,
        import: i64,
        limit: usize,
    ) -> cohort_store::Result<(Vec<ImportProblem>, u64)> {
        let page = self.import_problems_page(import, None, limit)?;
        sql(|| {
            let lines: i64 = self
                .pool
                .get()?
                .query_one(
                    "SELECT count(DISTINCT line) FROM import_errors WHERE import = $1",
                    &[&import],
                )?
                .get(0);
            Ok((page.into_iter().map(|(_, p)| p).collect(), count(lines)))
        })
    }

    fn import_problems_page(
        &self,
        import: i64,
        after: Option<(u64, i64)>,
        limit: usize,
    ) -> cohort_store::Result<Vec<((u64, i64), ImportProblem)>> {
        sql(|| {
            let (line, seq) = after.map_or((-1, -1), |(l, s)| (big(l), s));
            let rows = self.pool.get()?.query(
                "SELECT line, seq, col, message FROM import_errors
                 WHERE import = $1 AND (line, seq) > ($2, $3)
                 ORDER BY line, seq LIMIT $4",
                &[&import, &line, &seq, &(limit as i64)],
            )?;
            Ok(rows
                .iter()
                .map(|r| {
                    let line = count(r.get(0));
                    (
                        (line, r.get(1)),
                        ImportProblem {
                            line,
                            column: r.get(2),
                            message: r.get(3),
                        },
                    )
                })
                .collect())
        })
    }
}
