//! Multi-row `INSERT`s: one statement for many rows, with the values every row shares
//! bound once. One `INSERT` per row costs as much as the row itself (binding, running
//! the statement's program, resetting it); the journal and import staging write
//! millions of rows this way.

use rusqlite::Transaction;
use rusqlite::types::{ToSqlOutput, Value, ValueRef};

use crate::Result;

/// Rows per multi-row `INSERT`: past a few dozen, longer statements gain nothing.
pub(crate) const CHUNK: usize = 32;

pub(crate) const NULL: ToSqlOutput<'static> = ToSqlOutput::Owned(Value::Null);

pub(crate) fn int(i: i64) -> ToSqlOutput<'static> {
    ToSqlOutput::Owned(Value::Integer(i))
}

pub(crate) fn text(s: &str) -> ToSqlOutput<'_> {
    ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes()))
}

/// Insert `rows` with `CHUNK` rows per statement, the rest one by one. `head` names the
/// `C` columns every row shares first (bound once, as `?1`…), then the row's `N`.
pub(crate) fn insert<'r, T, const C: usize, const N: usize>(
    tx: &Transaction<'_>,
    head: &str,
    shared: [ToSqlOutput<'r>; C],
    rows: &'r [T],
    values: impl Fn(&'r T) -> [ToSqlOutput<'r>; N],
) -> Result<()> {
    insert_select(tx, head, "", shared, rows, values)
}

/// As `insert`, with `tail` after the rows: `head` may open `SELECT … FROM (VALUES`
/// and `tail` close it, to insert what is computed from each row's values.
pub(crate) fn insert_select<'r, T, const C: usize, const N: usize>(
    tx: &Transaction<'_>,
    head: &str,
    tail: &str,
    shared: [ToSqlOutput<'r>; C],
    rows: &'r [T],
    values: impl Fn(&'r T) -> [ToSqlOutput<'r>; N],
) -> Result<()> {
    let statement = |n: usize| {
        let rows: Vec<String> = (0..n)
            .map(|r| {
                let own = (0..N).map(|i| format!("?{}", C + r * N + i + 1));
                let all: Vec<String> = (1..=C).map(|i| format!("?{i}")).chain(own).collect();
                format!("({})", all.join(", "))
            })
            .collect();
        format!("{head} {}{tail}", rows.join(", "))
    };
    let run = |n: usize, rows: &mut dyn Iterator<Item = &'r [T]>| -> Result<()> {
        let mut stmt = tx.prepare_cached(&statement(n))?;
        for (at, value) in shared.iter().enumerate() {
            stmt.raw_bind_parameter(at + 1, value)?;
        }
        for rows in rows {
            for (at, value) in rows.iter().flat_map(&values).enumerate() {
                stmt.raw_bind_parameter(C + at + 1, value)?;
            }
            stmt.raw_execute()?;
        }
        Ok(())
    };
    let mut chunks = rows.chunks_exact(CHUNK);
    if chunks.len() > 0 {
        run(CHUNK, &mut chunks)?;
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        run(1, &mut rest.chunks(1))?;
    }
    Ok(())
}
