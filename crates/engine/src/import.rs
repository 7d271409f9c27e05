//! Bulk import of time-phased group assignments from a CSV file.
//!
//! Validation comes first and writes nothing but the import's record: rows stream
//! through the reader into a staging area, problems are collected by line and column,
//! then the staged rows are checked against the store and each other. Only then, in
//! one transaction, are memberships written — all of them, or with `partial` those of
//! the good lines. Importing the same file again changes nothing.

use std::collections::HashMap;
use std::io::Read;
use std::sync::mpsc::SyncSender;

use cohort_import::{Column, Options, open};
use cohort_store::{ApplyOptions, Cause, ImportProblem, ImportRecord, StagedRow, Trigger};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::{Engine, Result};
use cohort_model::Timestamp;

/// Rows staged per write: large enough to amortise a transaction, small enough to keep
/// memory flat however long the file.
const STAGE: usize = 10_000;

/// How to run an import.
#[derive(Clone, Debug)]
pub struct ImportOptions {
    pub read: Options,
    /// Apply the valid rows even if others are rejected.
    pub partial: bool,
    /// Validate and count, change nothing.
    pub dry_run: bool,
}

/// What an import did, with its first problems.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImportReport {
    pub record: ImportRecord,
    pub problems: Vec<ImportProblem>,
}

/// Hashes what it reads, so that the file is read once.
struct Hashing<R> {
    inner: R,
    hasher: Sha256,
    bytes: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

impl Engine {
    /// Import a customer-assignment file. `progress` is told the rows read so far.
    pub fn import(
        &self,
        input: impl Read,
        file_name: &str,
        options: ImportOptions,
        actor: &str,
        now: Timestamp,
        progress: &mut dyn FnMut(u64),
    ) -> Result<ImportReport> {
        let store = self.store.as_ref();
        let mut record = ImportRecord {
            actor: actor.to_string(),
            file_name: file_name.to_string(),
            started_at: now,
            dry_run: options.dry_run,
            partial: options.partial,
            ..ImportRecord::default()
        };
        record.id = store.begin_import(&record)?;
        let id = record.id;
        let groups = GroupNames::new(&store.groups()?);

        let mut hashing = Hashing {
            inner: input,
            hasher: Sha256::new(),
            bytes: 0,
        };
        // Reading and parsing take about as long as staging what was read; on two
        // cores they overlap: this thread reads, another writes each batch as it comes.
        // A few batches in flight keep memory flat.
        let (batches, received) = std::sync::mpsc::sync_channel::<Batch>(4);
        let (customer_column, rows) = std::thread::scope(|scope| {
            let stager = scope.spawn(|| -> Result<()> {
                for batch in received {
                    if !batch.rows.is_empty() {
                        store.stage_import(id, &batch.rows)?;
                    }
                    if !batch.problems.is_empty() {
                        store.add_import_problems(id, &batch.problems)?;
                    }
                }
                Ok(())
            });
            let read = read_rows(&mut hashing, options.read, &groups, &batches, progress);
            drop(batches);
            let staged = stager
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p));
            // A failed write ends the reading early (its batch finds no receiver):
            // the write's error is the one to report.
            staged.map(|()| read)
        })?;
        record.rows = rows;
        record.sha256 = hex::encode(hashing.hasher.finalize());
        let checked = store.check_and_apply(
            id,
            &customer_column,
            &Cause {
                trigger: Trigger::Import,
                actor,
                run: None,
            },
            ApplyOptions {
                partial: options.partial,
                dry_run: options.dry_run,
            },
            now,
        )?;
        record.rejected = checked.problem_lines;
        let apply = checked.applied.is_some();
        if let Some((added, updated, unchanged)) = checked.applied {
            record.added = added;
            record.updated = updated;
            record.unchanged = unchanged;
        }
        let problem_lines = checked.problem_lines;
        record.status = match (apply, options.dry_run, problem_lines) {
            (false, _, _) => "failed",
            (true, true, _) => "validated",
            (true, false, 0) => "applied",
            (true, false, _) => "partially applied",
        }
        .to_string();
        record.finished_at = Some(now);
        store.finish_import(&record)?;
        let (problems, _) = store.import_problems(record.id, 100)?;
        Ok(ImportReport { record, problems })
    }
}

/// How a file's cell names a group: by its id or by its name, in any case (operators
/// think in names, exports carry either; ids are lower case). An id wins over a name; a
/// name that two groups share, in any case, names neither.
struct GroupNames {
    ids: HashMap<String, String>,
    /// Each lower-cased name, with every group that has it.
    names: HashMap<String, Vec<String>>,
}

impl GroupNames {
    fn new(groups: &[cohort_model::Group]) -> GroupNames {
        let mut names: HashMap<String, Vec<String>> = HashMap::new();
        for g in groups {
            names
                .entry(g.name.trim().to_lowercase())
                .or_default()
                .push(g.id.clone());
        }
        GroupNames {
            ids: groups
                .iter()
                .map(|g| (g.id.clone(), g.id.clone()))
                .collect(),
            names,
        }
    }

    /// The id of the group `named` names, or why there is none.
    fn find(&self, named: &str) -> std::result::Result<&String, String> {
        let trimmed = named.trim();
        // Most cells give an id as it is (ids are lower case): found without making a
        // lower-cased copy of every cell.
        if let Some(id) = self.ids.get(trimmed) {
            return Ok(id);
        }
        let key = trimmed.to_lowercase();
        if let Some(id) = self.ids.get(&key) {
            return Ok(id);
        }
        match self.names.get(&key).map(Vec::as_slice) {
            Some([id]) => Ok(id),
            Some(ids) => Err(format!(
                "`{named}` is the name of {} groups ({}): name the group by its id",
                ids.len(),
                ids.iter()
                    .map(|id| format!("`{id}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            None => Err(format!("unknown group `{named}`")),
        }
    }
}

/// Rows and problems read from a file, to be written together.
#[derive(Default)]
struct Batch<'a> {
    rows: Vec<StagedRow<'a>>,
    problems: Vec<ImportProblem>,
}

/// Read the file, sending its rows and problems in batches to `stage`; the name of the
/// file's customer column and the number of rows read. It stops early, sending
/// nothing more, when the receiver is gone (its write failed).
fn read_rows<'g>(
    input: impl Read,
    options: Options,
    groups: &'g GroupNames,
    stage: &SyncSender<Batch<'g>>,
    progress: &mut dyn FnMut(u64),
) -> (String, u64) {
    let mut batch = Batch::default();
    let rows = match open(input, options) {
        Err(e) => {
            batch.problems.push(ImportProblem {
                line: 1,
                column: None,
                message: e.to_string(),
            });
            // Problems name columns as the file's header does.
            let _ = stage.send(batch);
            return (Column::Customer.header().to_string(), 0);
        }
        Ok(rows) => rows,
    };
    let customer_column = rows.header(Column::Customer);
    let group_column = rows.header(Column::Groups);
    let mut read = 0;
    for row in rows {
        read += 1;
        match row {
            Err(e) => batch.problems.push(ImportProblem {
                line: e.line,
                column: e.column,
                message: e.message,
            }),
            Ok(row) => {
                for named in &row.groups {
                    match groups.find(named) {
                        Ok(group) => batch.rows.push(StagedRow {
                            line: row.line,
                            customer: row.customer.clone(),
                            group: group.as_str().into(),
                            start: row.start,
                            end: row.end,
                        }),
                        Err(message) => batch.problems.push(ImportProblem {
                            line: row.line,
                            column: Some(group_column.clone()),
                            message,
                        }),
                    }
                }
            }
        }
        if batch.rows.len() >= STAGE || batch.problems.len() >= STAGE {
            let full = std::mem::replace(
                &mut batch,
                Batch {
                    rows: Vec::with_capacity(STAGE),
                    problems: Vec::new(),
                },
            );
            if stage.send(full).is_err() {
                break;
            }
        }
        if read % 10_000 == 0 {
            progress(read);
        }
    }
    let _ = stage.send(batch);
    (customer_column, read)
}
