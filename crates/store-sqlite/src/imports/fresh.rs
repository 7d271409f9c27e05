//! A file of new assignments, applied by one statement.
//!
//! The usual import adds a membership for every row: nothing it names was imported
//! before. Written from Rust row by row, each binding nine values, that took 1.3 s of
//! a million-row import; one `INSERT ... SELECT` from the staged rows, in their key
//! order, takes 0.6 s. Meanwhile another connection reads the same rows and checks
//! them (unknown customers, rows that clash) and looks each up among the imported
//! memberships. A problem, or a row that would update a membership rather than add
//! one, stops the statement: its transaction is dropped, and the caller goes the
//! general way, row by row.

use cohort_model::{Source, Timestamp};
use cohort_store::Cause;
use cohort_store::plan::announced;
use rusqlite::{Connection, Transaction, params};

use super::{Clashes, staged};
use crate::Result;
use crate::journal::Journal;
use crate::memberships::bump_membership_stamps;

/// What became of a file's rows.
pub(super) enum Fresh {
    /// Each row added a membership: this many.
    Added(u64),
    /// A row has a problem: nothing was written.
    Problem,
    /// A row names a membership imported before: nothing was written.
    NotNew,
}

/// The staged rows of `import` as memberships, in their key order, with their reason
/// in `Plan::read`'s words, the actor `?2` and their state at `?3` as `announced` says
/// (`?5` ended, `?6` not yet started, `?7` otherwise).
const INSERT_NEW: &str = "INSERT OR FAIL INTO memberships
    (customer, grp, source, actor, reason, start, end, announced)
    SELECT customer, grp, ?4, ?2, 'import #' || ?1 || ', line ' || line, start, end,
        CASE WHEN end <= ?3 THEN ?5 WHEN start > ?3 THEN ?6 ELSE ?7 END
    FROM import_rows WHERE import = ?1
    ORDER BY grp, customer, start, line";

/// The staged rows as the checker reads them, in the order `INSERT_NEW` writes them.
const CHECKED: &str = "SELECT r.grp, r.customer, r.start, r.end, r.line, r.known,
        EXISTS (SELECT 1 FROM memberships m WHERE m.grp = r.grp
            AND m.customer = r.customer AND m.start = r.start AND m.source = 'import')
    FROM import_rows r WHERE r.import = ?1
    ORDER BY r.grp, r.customer, r.start, r.line";

/// Add a membership for each staged row of `import` in `tx`, if every row is new and
/// without problems; `reader` checks them meanwhile. `tx` must have taken the write
/// lock before `reader` reads (the reader then sees what `tx` started from). The
/// actor is stored as given: it must not be a rule's (see `NewMembership::stored_actor`).
pub(super) fn apply(
    tx: &Transaction<'_>,
    reader: Connection,
    import: i64,
    cause: &Cause<'_>,
    at: Timestamp,
) -> Result<Fresh> {
    let mut journal = Journal::open(tx, at, cause)?;
    let interrupt = tx.get_interrupt_handle();
    let (added, verdict) = std::thread::scope(|scope| {
        let checker = scope.spawn(move || {
            let verdict = check(&reader, import);
            if !matches!(verdict, Ok(Verdict::New(_))) {
                // The statement need not run on: its work is dropped.
                interrupt.interrupt();
            }
            verdict
        });
        let added = tx.execute(
            INSERT_NEW,
            params![
                import,
                cause.actor,
                at,
                Source::Import.as_str(),
                announced(at, Some(at), at),
                announced(at + 1, None, at),
                announced(at, None, at),
            ],
        );
        let verdict = checker
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        (added, verdict)
    });
    let groups = match verdict? {
        Verdict::New(groups) => groups,
        Verdict::Problem => return Ok(Fresh::Problem),
        Verdict::NotNew => return Ok(Fresh::NotNew),
    };
    let added = added? as i64;
    journal.inserted(tx, added)?;
    journal.finish(tx)?;
    let groups: Vec<&str> = groups.iter().map(String::as_str).collect();
    bump_membership_stamps(tx, &groups)?;
    Ok(Fresh::Added(added as u64))
}

/// What the checker found.
enum Verdict {
    /// Every row is new and fine; the groups they name, in order.
    New(Vec<String>),
    Problem,
    NotNew,
}

/// Read the staged rows as `check_import` does, stopping at the first problem or the
/// first row that names an imported membership.
fn check(reader: &Connection, import: i64) -> Result<Verdict> {
    let mut stmt = reader.prepare(CHECKED)?;
    let mut rows = stmt.query([import])?;
    let mut clashes = Clashes::default();
    let mut groups: Vec<String> = Vec::new();
    while let Some(row) = rows.next()? {
        if row.get::<_, bool>(6)? {
            return Ok(Verdict::NotNew);
        }
        let (group, customer, window, known) = staged(row)?;
        if !known || !clashes.add(group, customer, window).is_empty() {
            return Ok(Verdict::Problem);
        }
        if groups.last().is_none_or(|last| last != group) {
            groups.push(group.to_string());
        }
    }
    Ok(Verdict::New(groups))
}
