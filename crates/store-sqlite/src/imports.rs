//! Imports: rows staged in the store, checked there against each other and the
//! customers, and applied through the journal.

use cohort_model::{Source, Timestamp};
use cohort_store::plan::{Action, Event, NewMembership, announced};
use cohort_store::{Cause, ImportProblem, ImportRecord, Imports, StagedRow};
use rusqlite::params;

use crate::bulk::{NULL, insert_select, int, text};
use crate::journal::Journal;
use crate::memberships::bump_membership_stamps;
use crate::{SqliteStore, sql};

impl Imports for SqliteStore {
    fn begin_import(&self, r: &ImportRecord) -> cohort_store::Result<i64> {
        sql(|| {
            let conn = self.conn();
            conn.execute(
            "INSERT INTO imports (actor, file_name, sha256, started_at, status, dry_run, partial)
             VALUES (?1, ?2, ?3, ?4, 'validating', ?5, ?6)",
            params![
                r.actor,
                r.file_name,
                r.sha256,
                r.started_at,
                r.dry_run,
                r.partial
            ],
        )?;
            Ok(conn.last_insert_rowid())
        })
    }

    fn stage_import(&self, import: i64, rows: &[StagedRow]) -> cohort_store::Result<()> {
        sql(|| {
            let mut conn = self.conn();
            let tx = conn.transaction()?;
            // Whether each row's customer is known is looked up here, as the row is
            // staged: staging keeps pace with the reading of the file (see
            // `Engine::import`) with time to spare, and the check afterwards only reads.
            insert_select(
                &tx,
                "INSERT INTO import_rows (import, line, customer, grp, start, end, known)
                 SELECT column1, column2, column3, column4, column5, column6,
                        EXISTS (SELECT 1 FROM customers c WHERE c.id = column3)
                 FROM (VALUES",
                ")",
                [int(import)],
                rows,
                |r| {
                    [
                        int(r.line as i64),
                        text(&r.customer),
                        text(&r.group),
                        int(r.start),
                        r.end.map_or(NULL, int),
                    ]
                },
            )?;
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
            let mut conn = self.conn();
            let tx = conn.transaction()?;
            {
                let mut insert = tx.prepare_cached(
                "INSERT INTO import_errors (import, line, col, message) VALUES (?1, ?2, ?3, ?4)",
            )?;
                for p in problems {
                    insert.execute(params![import, p.line as i64, p.column, p.message])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
    }

    fn check_import(&self, import: i64, customer_column: &str) -> cohort_store::Result<u64> {
        sql(|| {
            let mut conn = self.conn();
            let tx = conn.transaction()?;
            let mut found = 0;
            {
                // One read of the staged rows in their order: a customer and group's
                // rows come together, so rows that clash are found among those few,
                // where a join of the rows with themselves looked each one up again.
                let mut rows = tx.prepare(
                    "SELECT grp, customer, start, end, line, known FROM import_rows
                     WHERE import = ?1 ORDER BY grp, customer, start, line",
                )?;
                let mut problem = tx.prepare_cached(
                    "INSERT INTO import_errors (import, line, col, message)
                     VALUES (?1, ?2, ?3, ?4)",
                )?;
                let mut cursor = rows.query([import])?;
                let mut key: Option<(String, String)> = None;
                let mut windows: Vec<Window> = Vec::new();
                while let Some(row) = cursor.next()? {
                    let group: String = row.get(0)?;
                    let customer: String = row.get(1)?;
                    let window = Window {
                        start: row.get(2)?,
                        end: row.get(3)?,
                        line: row.get(4)?,
                    };
                    if !row.get::<_, bool>(5)? {
                        found += 1;
                        problem.execute(params![
                            import,
                            window.line,
                            customer_column,
                            format!("unknown customer `{customer}`")
                        ])?;
                    }
                    if key
                        .as_ref()
                        .is_none_or(|(g, c)| *g != group || *c != customer)
                    {
                        windows.clear();
                        key = Some((group.clone(), customer.clone()));
                    }
                    // Each pair is reported on its later line, naming the earlier one.
                    for earlier in &windows {
                        let Some((first, later)) = earlier.clash(&window) else {
                            continue;
                        };
                        found += 1;
                        let message = if first.start == later.start && first.end == later.end {
                            format!("duplicates line {} (`{customer}` in `{group}`)", first.line)
                        } else {
                            format!(
                                "overlaps line {}: both put `{customer}` in `{group}` at the same time",
                                first.line
                            )
                        };
                        problem.execute(params![
                            import,
                            later.line,
                            Option::<&str>::None,
                            message
                        ])?;
                    }
                    windows.push(window);
                }
            }
            tx.commit()?;
            Ok(found)
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
            let mut conn = self.conn();
            let tx = conn.transaction()?;
            let (mut added, mut updated, mut unchanged) = (0, 0, 0);
            {
                // Each row with the membership it would update, if any, in one
                // statement, in the order rows are kept (group, customer, start): the
                // lookups and the memberships added walk `memberships_by_group` from one
                // end to the other, where the file's order jumped about in it. The
                // memberships this writes meanwhile have keys of other rows, which a
                // file never repeats (a repeated key is an error of its line), so none
                // is found again.
                // Lines with problems are left out; with none (the usual case) the
                // statement need not ask of every row.
                let problems: bool = tx.query_row(
                    "SELECT EXISTS (SELECT 1 FROM import_errors WHERE import = ?1)",
                    [import],
                    |r| r.get(0),
                )?;
                let mut rows = tx.prepare(&format!(
                    "SELECT r.line, r.customer, r.grp, r.start, r.end, m.id, m.end
                     FROM import_rows r
                     LEFT JOIN memberships m ON m.grp = r.grp AND m.customer = r.customer
                         AND m.start = r.start AND m.source = 'import'
                     WHERE r.import = ?1 {}
                     ORDER BY r.grp, r.customer, r.start, r.line",
                    if problems {
                        "AND r.line NOT IN (SELECT line FROM import_errors WHERE import = ?1)"
                    } else {
                        ""
                    }
                ))?;
                let mut set_end = tx.prepare_cached(
                    "UPDATE memberships SET end = ?2, announced = ?3 WHERE id = ?1",
                )?;
                let mut journal = Journal::open(&tx, at, cause)?;
                let mut touched = std::collections::BTreeSet::new();
                let mut cursor = rows.query([import])?;
                while let Some(row) = cursor.next()? {
                    let line: i64 = row.get(0)?;
                    let customer: String = row.get(1)?;
                    let group: String = row.get(2)?;
                    let start: i64 = row.get(3)?;
                    let end: Option<i64> = row.get(4)?;
                    let found: Option<i64> = row.get(5)?;
                    // The membership says where it came from: the import and its line.
                    let reason = format!("import #{import}, line {line}");
                    match found {
                        Some(_) if row.get::<_, Option<i64>>(6)? == end => {
                            unchanged += 1;
                            continue;
                        }
                        Some(id) => {
                            updated += 1;
                            if dry_run {
                                continue;
                            }
                            set_end.execute(params![id, end, announced(start, end, at)])?;
                            journal.record(Event {
                                kind: Action::Updated,
                                customer: customer.into(),
                                group: group.clone().into(),
                                membership: id,
                                source: Some(Source::Import),
                                reason: reason.into(),
                            });
                        }
                        None => {
                            added += 1;
                            if dry_run {
                                continue;
                            }
                            // Its entry is the membership's (see migration 12).
                            journal.added(NewMembership {
                                customer: customer.into(),
                                group: group.clone().into(),
                                source: Source::Import,
                                reason: reason.into(),
                                start,
                                end,
                                announced: announced(start, end, at),
                            });
                        }
                    }
                    if !touched.contains(&group) {
                        touched.insert(group);
                    }
                    journal.spill(&tx)?;
                }
                journal.finish(&tx)?;
                let touched: Vec<&str> = touched.iter().map(String::as_str).collect();
                bump_membership_stamps(&tx, &touched)?;
            }
            if dry_run {
                // Nothing was written; the transaction only gave the reads one snapshot.
                tx.rollback()?;
            } else {
                tx.commit()?;
            }
            Ok((added, updated, unchanged))
        })
    }

    fn finish_import(&self, r: &ImportRecord) -> cohort_store::Result<()> {
        sql(|| {
            let mut conn = self.conn();
            let tx = conn.transaction()?;
            tx.execute(
                "UPDATE imports SET finished_at = ?2, status = ?3, rows = ?4, added = ?5,
                updated = ?6, unchanged = ?7, rejected = ?8 WHERE id = ?1",
                params![
                    r.id,
                    r.finished_at,
                    r.status,
                    r.rows as i64,
                    r.added as i64,
                    r.updated as i64,
                    r.unchanged as i64,
                    r.rejected as i64
                ],
            )?;
            tx.execute("DELETE FROM import_rows WHERE import = ?1", [r.id])?;
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
            let conn = self.reader();
            let mut stmt = conn.prepare(
                "SELECT id, actor, file_name, sha256, started_at, finished_at, status, dry_run,
                    partial, rows, added, updated, unchanged, rejected
             FROM imports WHERE id < ?2 ORDER BY id DESC LIMIT ?1",
            )?;
            let rows = stmt.query_map(params![limit as i64, before.unwrap_or(i64::MAX)], |r| {
                Ok(ImportRecord {
                    id: r.get(0)?,
                    actor: r.get(1)?,
                    file_name: r.get(2)?,
                    sha256: r.get(3)?,
                    started_at: r.get(4)?,
                    finished_at: r.get(5)?,
                    status: r.get(6)?,
                    dry_run: r.get(7)?,
                    partial: r.get(8)?,
                    rows: r.get::<_, i64>(9)? as u64,
                    added: r.get::<_, i64>(10)? as u64,
                    updated: r.get::<_, i64>(11)? as u64,
                    unchanged: r.get::<_, i64>(12)? as u64,
                    rejected: r.get::<_, i64>(13)? as u64,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    fn import_problems(
        &self,
        import: i64,
        limit: usize,
    ) -> cohort_store::Result<(Vec<ImportProblem>, u64)> {
        sql(|| {
            let conn = self.reader();
            let lines: i64 = conn.query_row(
                "SELECT count(DISTINCT line) FROM import_errors WHERE import = ?1",
                [import],
                |r| r.get(0),
            )?;
            let mut stmt = conn.prepare(
                "SELECT line, col, message FROM import_errors WHERE import = ?1
             ORDER BY line, rowid LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![import, limit as i64], |r| {
                Ok(ImportProblem {
                    line: r.get::<_, i64>(0)? as u64,
                    column: r.get(1)?,
                    message: r.get(2)?,
                })
            })?;
            Ok((rows.collect::<rusqlite::Result<_>>()?, lines as u64))
        })
    }

    fn import_problems_page(
        &self,
        import: i64,
        after: Option<(u64, i64)>,
        limit: usize,
    ) -> cohort_store::Result<Vec<((u64, i64), ImportProblem)>> {
        sql(|| {
            let (line, seq) = after.map_or((-1, -1), |(l, s)| (l as i64, s));
            let conn = self.reader();
            let mut stmt = conn.prepare(
                "SELECT line, rowid, col, message FROM import_errors
             WHERE import = ?1 AND (line, rowid) > (?2, ?3)
             ORDER BY line, rowid LIMIT ?4",
            )?;
            let rows = stmt.query_map(params![import, line, seq, limit as i64], |r| {
                let line = r.get::<_, i64>(0)? as u64;
                Ok((
                    (line, r.get(1)?),
                    ImportProblem {
                        line,
                        column: r.get(2)?,
                        message: r.get(3)?,
                    },
                ))
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }
}

/// A staged row's window and line, to find the rows that clash with it.
#[derive(Clone, Copy)]
struct Window {
    start: i64,
    end: Option<i64>,
    line: i64,
}

impl Window {
    /// The two rows in the order of their lines, if their windows overlap.
    fn clash<'a>(&'a self, other: &'a Window) -> Option<(&'a Window, &'a Window)> {
        let overlap = self.start < other.end.unwrap_or(i64::MAX)
            && other.start < self.end.unwrap_or(i64::MAX);
        let ordered = if self.line < other.line {
            (self, other)
        } else {
            (other, self)
        };
        overlap.then_some(ordered)
    }
}
