//! Imports: rows staged in the store, checked there against each other and the
//! customers, and applied through the journal; a file of new assignments in one
//! statement (`fresh`).

mod fresh;

use cohort_model::{Source, Timestamp};
use cohort_planner::rule_actor;
use cohort_store::plan::{Action, Event, NewMembership, announced};
use cohort_store::{
    ApplyOptions, Cause, Checked, ImportProblem, ImportRecord, Imports, StagedRow, check_then_apply,
};
use fresh::Fresh;
use rusqlite::{Transaction, params};

use crate::bulk::{NULL, insert_select, int, text};
use crate::journal::Journal;
use crate::memberships::bump_membership_stamps;
use crate::{Result, SqliteStore, sql};

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

    fn stage_import(&self, import: i64, rows: &[StagedRow<'_>]) -> cohort_store::Result<()> {
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
                let mut clashes = Clashes::default();
                while let Some(row) = cursor.next()? {
                    let (group, customer, window, known) = staged(row)?;
                    if !known {
                        found += 1;
                        problem.execute(params![
                            import,
                            window.line,
                            customer_column,
                            format!("unknown customer `{customer}`")
                        ])?;
                    }
                    for (first, later) in clashes.add(group, customer, window) {
                        found += 1;
                        problem.execute(params![
                            import,
                            later.line,
                            Option::<&str>::None,
                            clash_message(&first, &later, group, customer)
                        ])?;
                    }
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
        let applied = self.apply_rows(import, cause, dry_run, false, at)?;
        Ok(applied.expect("rows applied without checking are all applied"))
    }

    fn check_and_apply(
        &self,
        import: i64,
        customer_column: &str,
        cause: &Cause<'_>,
        options: ApplyOptions,
        at: Timestamp,
    ) -> cohort_store::Result<Checked> {
        // A file that must apply whole is checked as it is applied, in one read of its
        // rows; at its first problem nothing is kept, and it is checked on its own.
        if !options.partial
            && !options.dry_run
            && let Some(applied) = self.apply_rows(import, cause, false, true, at)?
        {
            return Ok(Checked {
                problem_lines: 0,
                applied: Some(applied),
            });
        }
        check_then_apply(self, import, customer_column, cause, options, at)
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
            // With no other import's rows staged (the usual case), the table is emptied
            // whole: SQLite then frees its pages without taking out each row.
            let others: bool = tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM import_rows WHERE import < ?1)
                     OR EXISTS (SELECT 1 FROM import_rows WHERE import > ?1)",
                [r.id],
                |row| row.get(0),
            )?;
            if others {
                tx.execute("DELETE FROM import_rows WHERE import = ?1", [r.id])?;
            } else {
                tx.execute("DELETE FROM import_rows", [])?;
            }
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

impl SqliteStore {
    /// Apply the staged rows of lines without problems, in one transaction (or, for a
    /// dry run, only count). With `checking`, the rows are also checked as they are
    /// read, as `check_import` does, and the first problem undoes everything: `None`.
    fn apply_rows(
        &self,
        import: i64,
        cause: &Cause<'_>,
        dry_run: bool,
        checking: bool,
        at: Timestamp,
    ) -> cohort_store::Result<Option<(u64, u64, u64)>> {
        if checking && !dry_run {
            match self.apply_new_rows(import, cause, at)? {
                Some(Fresh::Added(added)) => return Ok(Some((added, 0, 0))),
                Some(Fresh::Problem) => return Ok(None),
                Some(Fresh::NotNew) | None => {}
            }
        }
        sql(|| {
            let mut conn = self.conn();
            // The write lock is held from here (see `SqliteStore::setup`).
            let tx = conn.transaction()?;
            // Lines with problems are left out; with none (the usual case) the
            // statement need not ask of every row. A check as the rows are read
            // expects none: the reader's problems are already recorded.
            let problems = has_problems(&tx, import)?;
            if checking && problems {
                return Ok(None);
            }
            let query = planned_rows(problems);
            let mut plan = Plan {
                import,
                checking,
                clashes: Clashes::default(),
            };
            let mut apply = Apply::new(&tx, cause, dry_run, at)?;
            let done = match self.own_reader()? {
                // Reading the rows and their memberships (and checking them) takes
                // about as long as writing what they add: another connection reads
                // while this one writes. It
                // reads what this transaction started from (it begins after the write
                // lock was taken, and nothing else writes until this commits), which
                // is what a read here would find: rows of other keys than those this
                // writes meanwhile.
                Some(reader) => std::thread::scope(|scope| -> Result<bool> {
                    let (send, batches) = std::sync::mpsc::sync_channel::<Vec<Planned>>(4);
                    let reading = scope.spawn(move || -> Result<()> {
                        let mut stmt = reader.prepare(&query)?;
                        let mut rows = stmt.query_map([import], |row| plan.read(row))?;
                        loop {
                            let batch = rows
                                .by_ref()
                                .take(READ_BATCH)
                                .collect::<rusqlite::Result<Vec<_>>>()?;
                            // Empty: all read. Unsent: the writer stopped at a problem.
                            if batch.is_empty() || send.send(batch).is_err() {
                                return Ok(());
                            }
                        }
                    });
                    let mut done = true;
                    for row in batches.iter().flatten() {
                        if !apply.row(&tx, row)? {
                            done = false;
                            break;
                        }
                    }
                    drop(batches);
                    // The reader's failure ends its rows early: nothing is kept then.
                    reading
                        .join()
                        .unwrap_or_else(|p| std::panic::resume_unwind(p))?;
                    Ok(done)
                })?,
                // In memory there is one connection: it reads and writes in turn.
                None => {
                    let mut stmt = tx.prepare(&query)?;
                    let mut rows = stmt.query_map([import], |row| plan.read(row))?;
                    let mut done = true;
                    for row in rows.by_ref() {
                        if !apply.row(&tx, row?)? {
                            done = false;
                            break;
                        }
                    }
                    done
                }
            };
            if !done {
                // Dropping the transaction undoes what was written.
                return Ok(None);
            }
            let counts = apply.finish(&tx)?;
            if dry_run {
                // Nothing was written; the transaction only gave the reads one snapshot.
                tx.rollback()?;
            } else {
                tx.commit()?;
            }
            Ok(Some(counts))
        })
    }

    /// Add a membership for each staged row in one statement, checking the rows
    /// meanwhile (see `fresh`); `None` where that cannot be tried: in memory, with one
    /// connection, or for an actor stored otherwise than as given.
    fn apply_new_rows(
        &self,
        import: i64,
        cause: &Cause<'_>,
        at: Timestamp,
    ) -> cohort_store::Result<Option<Fresh>> {
        sql(|| {
            if cause.actor.starts_with(&rule_actor("")) {
                return Ok(None);
            }
            let Some(reader) = self.own_reader()? else {
                return Ok(None);
            };
            let mut conn = self.conn();
            // The write lock is held from here, before the reader reads.
            let tx = conn.transaction()?;
            if has_problems(&tx, import)? {
                return Ok(Some(Fresh::Problem));
            }
            let fresh = fresh::apply(&tx, reader, import, cause, at)?;
            // Otherwise dropping the transaction undoes what was written.
            if let Fresh::Added(_) = fresh {
                tx.commit()?;
            }
            Ok(Some(fresh))
        })
    }
}

/// Whether the import's lines have problems recorded (by the reader, or a check).
fn has_problems(tx: &Transaction<'_>, import: i64) -> Result<bool> {
    Ok(tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM import_errors WHERE import = ?1)",
        [import],
        |r| r.get(0),
    )?)
}

/// Rows the reader hands the writer at a time.
const READ_BATCH: usize = 1024;

/// Each staged row with the imported membership it would update, if any, in the order
/// rows are kept (group, customer, start): the lookups and the memberships added walk
/// `memberships_by_group` from one end to the other, where the file's order jumped
/// about in it. A file never repeats a key (a repeated key is an error of its line),
/// so no row finds a membership another row of the import writes.
fn planned_rows(leave_out_problems: bool) -> String {
    format!(
        "SELECT r.line, r.customer, r.grp, r.start, r.end, r.known, m.id, m.end
         FROM import_rows r
         LEFT JOIN memberships m ON m.grp = r.grp AND m.customer = r.customer
             AND m.start = r.start AND m.source = 'import'
         WHERE r.import = ?1 {}
         ORDER BY r.grp, r.customer, r.start, r.line",
        if leave_out_problems {
            "AND r.line NOT IN (SELECT line FROM import_errors WHERE import = ?1)"
        } else {
            ""
        }
    )
}

/// A staged row as `planned_rows` reads it, ready to apply.
struct Planned {
    customer: String,
    group: String,
    start: Timestamp,
    end: Option<Timestamp>,
    /// Where the membership came from: the import and the row's line.
    reason: String,
    /// The imported membership it would update: its id and end.
    found: Option<(i64, Option<i64>)>,
    /// Checking found a problem with the row.
    problem: bool,
}

/// Reads the rows of `planned_rows`, checking each if asked.
struct Plan {
    import: i64,
    /// Check each row as `check_import` would (the first problem stops the apply).
    checking: bool,
    clashes: Clashes,
}

impl Plan {
    fn read(&mut self, row: &rusqlite::Row<'_>) -> rusqlite::Result<Planned> {
        let customer: String = row.get(1)?;
        let group: String = row.get(2)?;
        let window = Window {
            line: row.get(0)?,
            start: row.get(3)?,
            end: row.get(4)?,
        };
        let problem = self.checking
            && (!row.get::<_, bool>(5)? || !self.clashes.add(&group, &customer, window).is_empty());
        Ok(Planned {
            reason: format!("import #{}, line {}", self.import, window.line),
            customer,
            group,
            start: window.start,
            end: window.end,
            found: match row.get::<_, Option<i64>>(6)? {
                Some(id) => Some((id, row.get(7)?)),
                None => None,
            },
            problem,
        })
    }
}

/// Staged rows being applied, one by one, in one transaction.
struct Apply<'a> {
    dry_run: bool,
    at: Timestamp,
    journal: Journal<'a>,
    /// The groups written, in order: rows come group by group.
    touched: Vec<String>,
    counts: (u64, u64, u64),
}

impl<'a> Apply<'a> {
    fn new(
        tx: &Transaction<'_>,
        cause: &'a Cause<'a>,
        dry_run: bool,
        at: Timestamp,
    ) -> Result<Apply<'a>> {
        Ok(Apply {
            dry_run,
            at,
            journal: Journal::open(tx, at, cause)?,
            touched: Vec::new(),
            counts: (0, 0, 0),
        })
    }

    /// Apply one row; false if checking found a problem with it.
    fn row(&mut self, tx: &Transaction<'_>, row: Planned) -> Result<bool> {
        let Planned {
            customer,
            group,
            start,
            end,
            reason,
            found,
            problem,
        } = row;
        if problem {
            return Ok(false);
        }
        let announced = announced(start, end, self.at);
        let changed = match found {
            Some((_, was)) if was == end => {
                self.counts.2 += 1;
                return Ok(true);
            }
            Some((id, _)) => {
                self.counts.1 += 1;
                Event {
                    kind: Action::Updated,
                    customer: customer.into(),
                    group: group.into(),
                    membership: id,
                    source: Some(Source::Import),
                    reason: reason.into(),
                }
            }
            None => {
                self.counts.0 += 1;
                if self.dry_run {
                    return Ok(true);
                }
                // Its entry is the membership's (see migration 12).
                self.touch(&group);
                self.journal.added(NewMembership {
                    customer: customer.into(),
                    group: group.into(),
                    source: Source::Import,
                    reason: reason.into(),
                    start,
                    end,
                    announced,
                });
                return self.journal.spill(tx).map(|()| true);
            }
        };
        if self.dry_run {
            return Ok(true);
        }
        self.touch(&changed.group);
        tx.prepare_cached("UPDATE memberships SET end = ?2, announced = ?3 WHERE id = ?1")?
            .execute(params![changed.membership, end, announced])?;
        self.journal.record(changed);
        self.journal.spill(tx)?;
        Ok(true)
    }

    /// Note that `group` is written to.
    fn touch(&mut self, group: &str) {
        if self.touched.last().is_none_or(|last| last != group) {
            self.touched.push(group.to_string());
        }
    }

    /// Write what is left; (added, updated, unchanged).
    fn finish(self, tx: &Transaction<'_>) -> Result<(u64, u64, u64)> {
        self.journal.finish(tx)?;
        let touched: Vec<&str> = self.touched.iter().map(String::as_str).collect();
        bump_membership_stamps(tx, &touched)?;
        Ok(self.counts)
    }
}

/// The rows of each customer in each group, read in key order, to find those that
/// clash: the rows of one customer and group come together.
#[derive(Default)]
struct Clashes {
    group: String,
    customer: String,
    windows: Vec<Window>,
}

impl Clashes {
    /// The next row: each earlier row of its customer and group whose window overlaps
    /// its own, as a pair in the order of their lines. Each pair is reported on its
    /// later line, naming the earlier one.
    fn add(&mut self, group: &str, customer: &str, window: Window) -> Vec<(Window, Window)> {
        if self.group != group || self.customer != customer {
            // Reused, not reallocated: most keys have one row.
            self.group.clear();
            self.group.push_str(group);
            self.customer.clear();
            self.customer.push_str(customer);
            self.windows.clear();
        }
        let clashes = self
            .windows
            .iter()
            .filter_map(|earlier| earlier.clash(&window))
            .collect();
        self.windows.push(window);
        clashes
    }
}

/// A staged row read as `grp, customer, start, end, line, known`: its group, customer,
/// window and whether its customer is known.
fn staged<'r>(row: &'r rusqlite::Row<'_>) -> rusqlite::Result<(&'r str, &'r str, Window, bool)> {
    let window = Window {
        start: row.get(2)?,
        end: row.get(3)?,
        line: row.get(4)?,
    };
    Ok((text_at(row, 0)?, text_at(row, 1)?, window, row.get(5)?))
}

/// Column `i` of `row` as text borrowed from the row.
fn text_at<'r>(row: &'r rusqlite::Row<'_>, i: usize) -> rusqlite::Result<&'r str> {
    row.get_ref(i)?.as_str().map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
    })
}

/// What a pair of rows that clash says, on the later one's line.
fn clash_message(first: &Window, later: &Window, group: &str, customer: &str) -> String {
    if first.start == later.start && first.end == later.end {
        format!("duplicates line {} (`{customer}` in `{group}`)", first.line)
    } else {
        format!(
            "overlaps line {}: both put `{customer}` in `{group}` at the same time",
            first.line
        )
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
    fn clash(&self, other: &Window) -> Option<(Window, Window)> {
        let overlap = self.start < other.end.unwrap_or(i64::MAX)
            && other.start < self.end.unwrap_or(i64::MAX);
        let ordered = if self.line < other.line {
            (*self, *other)
        } else {
            (*other, *self)
        };
        overlap.then_some(ordered)
    }
}
