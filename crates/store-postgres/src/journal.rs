//! Writing membership changes with their audit entries and change-feed events, in the
//! caller's transaction.
//!
//! Rows go in as arrays, many per statement (`unnest`): a statement per row would cost
//! a round trip per row. Memberships and audit entries take their ids from sequences
//! before they are written, as an entry names its membership. Events are numbered
//! last, from the one counter row `feed_head`, whose lock the transaction then holds
//! until it commits: two writers' events are numbered in the order they commit, so a
//! reader of the feed never sees a position before an earlier one has committed (see
//! `feed`). Taking the counter last keeps that wait to the end of each transaction.

use std::collections::BTreeMap;

use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::{ToSql, Type};

use crate::pool::Tx;
use cohort_model::{Source, Timestamp};
use cohort_planner::Change;
use cohort_store::plan::{Action, announced};
use cohort_store::{Applied, Cause, Trigger};

use crate::Result;

/// Rows per statement: arrays of this many values are a few megabytes at most.
const CHUNK: usize = 50_000;

/// Batches of at least this many rows go in by binary `COPY`, 1.2-1.3 times the rows
/// per second of arrays (`benches/bulk.rs`); smaller ones as arrays, one statement
/// where `COPY` takes a round trip to start and another to end (a registration writes
/// a handful of rows).
const COPY_FROM: usize = 1_000;

/// Write `rows` with `COPY <into> FROM STDIN BINARY`, each row's values from `values`
/// in the order of `types`.
fn copy_in<T>(
    tx: &mut Tx<'_>,
    into: &str,
    types: &[Type],
    rows: &[T],
    values: impl Fn(&T, &mut dyn FnMut(&[&(dyn ToSql + Sync)]) -> Result<()>) -> Result<()>,
) -> Result<()> {
    let sink = tx.copy_in(&format!("COPY {into} FROM STDIN BINARY"))?;
    let mut writer = BinaryCopyInWriter::new(sink, types);
    for row in rows {
        values(row, &mut |v| Ok(writer.write(v)?))?;
    }
    writer.finish()?;
    Ok(())
}

/// `n` numbers from the sequence `sequence`, in order.
fn take_ids(tx: &mut Tx<'_>, sequence: &str, n: usize) -> Result<Vec<i64>> {
    if n == 0 {
        return Ok(Vec::new());
    }
    let statement =
        tx.prepared("SELECT nextval($1::text::regclass) FROM generate_series(1, $2::bigint)")?;
    let mut ids: Vec<i64> = tx
        .query(&statement, &[&sequence, &(n as i64)])?
        .iter()
        .map(|r| r.get(0))
        .collect();
    ids.sort_unstable();
    Ok(ids)
}

/// One text column of `rows`, as an array to bind.
fn texts<'s, T>(rows: &'s [T], f: fn(&'s T) -> &'s str) -> Vec<&'s str> {
    rows.iter().map(f).collect()
}

/// A membership to insert.
pub(crate) struct NewRow<'a> {
    pub customer: &'a str,
    pub group: &'a str,
    pub source: Source,
    pub actor: &'a str,
    pub reason: &'a str,
    pub starts: Timestamp,
    pub ends: Option<Timestamp>,
    pub announced: &'static str,
}

/// Insert `rows`; returns their ids, in order.
pub(crate) fn insert_memberships(tx: &mut Tx<'_>, rows: &[NewRow<'_>]) -> Result<Vec<i64>> {
    let ids = take_ids(tx, "membership_ids", rows.len())?;
    if rows.len() >= COPY_FROM {
        let numbered: Vec<(i64, &NewRow<'_>)> = ids.iter().copied().zip(rows).collect();
        copy_in(
            tx,
            "memberships (id, customer, grp, source, actor, reason, starts, ends, announced)",
            &[
                Type::INT8,
                Type::TEXT,
                Type::TEXT,
                Type::TEXT,
                Type::TEXT,
                Type::TEXT,
                Type::INT8,
                Type::INT8,
                Type::TEXT,
            ],
            &numbered,
            |(id, r), write| {
                write(&[
                    id,
                    &r.customer,
                    &r.group,
                    &r.source.as_str(),
                    &r.actor,
                    &r.reason,
                    &r.starts,
                    &r.ends,
                    &r.announced,
                ])
            },
        )?;
        return Ok(ids);
    }
    let statement = tx.prepared(
        "INSERT INTO memberships
            (id, customer, grp, source, actor, reason, starts, ends, announced)
         SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[],
                              $6::text[], $7::bigint[], $8::bigint[], $9::text[])",
    )?;
    for (rows, ids) in rows.chunks(CHUNK).zip(ids.chunks(CHUNK)) {
        let customers: Vec<&str> = rows.iter().map(|r| r.customer).collect();
        let groups: Vec<&str> = rows.iter().map(|r| r.group).collect();
        let sources: Vec<&str> = rows.iter().map(|r| r.source.as_str()).collect();
        let actors: Vec<&str> = rows.iter().map(|r| r.actor).collect();
        let reasons: Vec<&str> = rows.iter().map(|r| r.reason).collect();
        let starts: Vec<i64> = rows.iter().map(|r| r.starts).collect();
        let ends: Vec<Option<i64>> = rows.iter().map(|r| r.ends).collect();
        let announced: Vec<&str> = rows.iter().map(|r| r.announced).collect();
        tx.execute(
            &statement,
            &[
                &ids, &customers, &groups, &sources, &actors, &reasons, &starts, &ends, &announced,
            ],
        )?;
    }
    Ok(ids)
}

/// An audit entry, and the change event that points at it.
pub(crate) struct Entry<'a> {
    pub action: Action,
    pub customer: &'a str,
    pub group: &'a str,
    pub membership: i64,
    pub source: Option<Source>,
    pub actor: &'a str,
    pub trigger: Trigger,
    pub run: Option<i64>,
    pub reason: &'a str,
}

/// Write `entries` to the audit history, numbered in order, and their events to the
/// feed (numbered last: see the module's comment).
pub(crate) fn record(tx: &mut Tx<'_>, at: Timestamp, entries: &[Entry<'_>]) -> Result<()> {
    if entries.len() >= COPY_FROM {
        let ids = take_ids(tx, "audit_ids", entries.len())?;
        let numbered: Vec<(i64, &Entry<'_>)> = ids.iter().copied().zip(entries).collect();
        copy_in(
            tx,
            "audit (id, at, customer, grp, action, source, actor, trigger, run, reason, \
             membership)",
            &[
                Type::INT8,
                Type::INT8,
                Type::TEXT,
                Type::TEXT,
                Type::TEXT,
                Type::TEXT,
                Type::TEXT,
                Type::TEXT,
                Type::INT8,
                Type::TEXT,
                Type::INT8,
            ],
            &numbered,
            |(id, e), write| {
                write(&[
                    id,
                    &at,
                    &e.customer,
                    &e.group,
                    &e.action.as_str(),
                    &e.source.map(Source::as_str),
                    &e.actor,
                    &e.trigger.as_str(),
                    &e.run,
                    &e.reason,
                    &e.membership,
                ])
            },
        )?;
    } else if !entries.is_empty() {
        write_entries(tx, at, entries)?;
    }
    let events: Vec<Event<'_>> = entries
        .iter()
        .map(|e| Event {
            at,
            kind: e.action.event(),
            customer: e.customer,
            group: e.group,
            membership: e.membership,
            trigger: e.trigger,
            actor: e.actor,
            reason: e.reason,
        })
        .collect();
    publish(tx, &events)
}

/// Write `entries` numbered `ids` as arrays.
fn write_entries(tx: &mut Tx<'_>, at: Timestamp, entries: &[Entry<'_>]) -> Result<()> {
    // Numbered as the arrays are read, in order: no round trip of its own for the ids.
    let statement = tx.prepared(
        "INSERT INTO audit
            (id, at, customer, grp, action, source, actor, trigger, run, reason, membership)
         SELECT nextval('audit_ids'), $1, u.customer, u.grp, u.action, u.source, u.actor,
                u.trigger, u.run, u.reason, u.membership
         FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                     $8::bigint[], $9::text[], $10::bigint[])
              AS u(customer, grp, action, source, actor, trigger, run, reason, membership)",
    )?;
    let column = |f| texts(entries, f);
    let customers = column(|e| e.customer);
    let groups = column(|e| e.group);
    let actions = column(|e| e.action.as_str());
    let sources: Vec<Option<&str>> = entries
        .iter()
        .map(|e| e.source.map(Source::as_str))
        .collect();
    let actors = column(|e| e.actor);
    let triggers = column(|e| e.trigger.as_str());
    let runs: Vec<Option<i64>> = entries.iter().map(|e| e.run).collect();
    let reasons = column(|e| e.reason);
    let memberships: Vec<i64> = entries.iter().map(|e| e.membership).collect();
    tx.execute(
        &statement,
        &[
            &at,
            &customers,
            &groups,
            &actions,
            &sources,
            &actors,
            &triggers,
            &runs,
            &reasons,
            &memberships,
        ],
    )?;
    Ok(())
}

/// A change event as the outbox keeps it.
pub(crate) struct Event<'a> {
    pub at: Timestamp,
    pub kind: &'static str,
    pub customer: &'a str,
    pub group: &'a str,
    pub membership: i64,
    pub trigger: Trigger,
    pub actor: &'a str,
    pub reason: &'a str,
}

/// Number `events` after the feed's head and write them. Takes the head's lock, held
/// until the caller's transaction ends: call it last.
pub(crate) fn publish(tx: &mut Tx<'_>, events: &[Event<'_>]) -> Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    let n = events.len() as i64;
    if events.len() >= COPY_FROM {
        let head =
            tx.prepared("UPDATE feed_head SET position = position + $1 RETURNING position")?;
        let last: i64 = tx.query_one(&head, &[&n])?.get(0);
        let numbered: Vec<(i64, &Event<'_>)> = (last - n + 1..=last).zip(events).collect();
        return copy_in(
            tx,
            "outbox (id, at, kind, customer, grp, membership, trigger, actor, reason)",
            &[
                Type::INT8,
                Type::INT8,
                Type::TEXT,
                Type::TEXT,
                Type::TEXT,
                Type::INT8,
                Type::TEXT,
                Type::TEXT,
                Type::TEXT,
            ],
            &numbered,
            |(id, e), write| {
                write(&[
                    id,
                    &e.at,
                    &e.kind,
                    &e.customer,
                    &e.group,
                    &e.membership,
                    &e.trigger.as_str(),
                    &e.actor,
                    &e.reason,
                ])
            },
        );
    }
    // The head moved and the events written in one statement: one round trip.
    let statement = tx.prepared(
        "WITH head AS (UPDATE feed_head SET position = position + $1 RETURNING position)
         INSERT INTO outbox (id, at, kind, customer, grp, membership, trigger, actor, reason)
         SELECT head.position - $1 + u.n, u.at, u.kind, u.customer, u.grp, u.membership,
                u.trigger, u.actor, u.reason
         FROM head, unnest($2::bigint[], $3::text[], $4::text[], $5::text[], $6::bigint[],
                           $7::text[], $8::text[], $9::text[]) WITH ORDINALITY
              AS u(at, kind, customer, grp, membership, trigger, actor, reason, n)",
    )?;
    let column = |f| texts(events, f);
    let ats: Vec<i64> = events.iter().map(|e| e.at).collect();
    let kinds = column(|e| e.kind);
    let customers = column(|e| e.customer);
    let groups = column(|e| e.group);
    let memberships: Vec<i64> = events.iter().map(|e| e.membership).collect();
    let triggers = column(|e| e.trigger.as_str());
    let actors = column(|e| e.actor);
    let reasons = column(|e| e.reason);
    tx.execute(
        &statement,
        &[
            &n,
            &ats,
            &kinds,
            &customers,
            &groups,
            &memberships,
            &triggers,
            &actors,
            &reasons,
        ],
    )?;
    Ok(())
}

/// Count writes to the memberships of groups, `(group, writes)`, sorted by group (so
/// that concurrent writers lock the counters in one order); returns each group's stamp
/// after.
pub(crate) fn bump_membership_stamps(
    tx: &mut Tx<'_>,
    groups: &BTreeMap<&str, i64>,
) -> Result<BTreeMap<String, i64>> {
    if groups.is_empty() {
        return Ok(BTreeMap::new());
    }
    // One statement for every group, its rows in group order (the lock order).
    let statement = tx.prepared(
        "INSERT INTO stamps (name, n)
         SELECT 'memberships:' || u.grp, u.writes
         FROM unnest($1::text[], $2::bigint[]) AS u(grp, writes) ORDER BY u.grp
         ON CONFLICT (name) DO UPDATE SET n = stamps.n + excluded.n
         RETURNING substr(name, length('memberships:') + 1), n",
    )?;
    let names: Vec<&str> = groups.keys().copied().collect();
    let writes: Vec<i64> = groups.values().copied().collect();
    Ok(tx
        .query(&statement, &[&names, &writes])?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}

/// Apply each batch of changes for its cause, with their entries and events.
pub(crate) fn apply_all(
    tx: &mut Tx<'_>,
    batches: &[(&[Change], Cause<'_>)],
    at: Timestamp,
) -> Result<Vec<Applied>> {
    // Memberships first: a batch may end one it adds.
    let mut rows = Vec::new();
    for (changes, cause) in batches {
        for change in changes.iter() {
            if let Change::Add {
                customer,
                group,
                source,
                reason,
                start,
                end,
            } = change
            {
                rows.push(NewRow {
                    customer,
                    group,
                    source: *source,
                    actor: cause.actor,
                    reason,
                    starts: *start,
                    ends: *end,
                    announced: announced(*start, *end, at),
                });
            }
        }
    }
    let ids = insert_memberships(tx, &rows)?;
    let ended = end_memberships(tx, batches, at)?;

    let mut ids = ids.into_iter();
    let mut ended = ended.into_iter();
    let mut entries = Vec::new();
    let mut applied = Vec::with_capacity(batches.len());
    // How many batches write each group: a group's stamp moves once per batch.
    let mut writes: BTreeMap<&str, i64> = BTreeMap::new();
    for (changes, cause) in batches {
        let mut this = Applied::default();
        let mut groups: Vec<&str> = Vec::new();
        for change in changes.iter() {
            let entry = match change {
                Change::Add {
                    customer,
                    group,
                    source,
                    reason,
                    ..
                } => {
                    let id = ids.next().unwrap_or_default();
                    this.added += 1;
                    this.ids.push(id);
                    groups.push(group);
                    Entry {
                        action: Action::Added,
                        customer,
                        group,
                        membership: id,
                        source: Some(*source),
                        actor: cause.actor,
                        trigger: cause.trigger,
                        run: cause.run,
                        reason,
                    }
                }
                Change::End {
                    membership,
                    customer,
                    group,
                    reason,
                    ..
                } => {
                    groups.push(group);
                    if !ended.next().unwrap_or_default() {
                        // Already ended (a concurrent manual removal): nothing to record.
                        continue;
                    }
                    this.removed += 1;
                    Entry {
                        action: Action::Removed,
                        customer,
                        group,
                        membership: *membership,
                        source: None,
                        actor: cause.actor,
                        trigger: cause.trigger,
                        run: cause.run,
                        reason,
                    }
                }
            };
            entries.push(entry);
        }
        groups.sort_unstable();
        groups.dedup();
        for g in &groups {
            *writes.entry(g).or_default() += 1;
        }
        applied.push((this, groups));
    }
    let stamps = bump_membership_stamps(tx, &writes)?;
    // A group written by several batches: the earlier batches' stamps are the counts
    // before the later ones'.
    let mut later: BTreeMap<&str, i64> = BTreeMap::new();
    let mut out: Vec<Applied> = Vec::with_capacity(applied.len());
    for (mut this, groups) in applied.into_iter().rev() {
        this.stamps = groups
            .iter()
            .map(|g| {
                let after = later.entry(g).or_default();
                let stamp = stamps.get(*g).copied().unwrap_or_default() - *after;
                *after += 1;
                (g.to_string(), stamp)
            })
            .collect();
        out.push(this);
    }
    out.reverse();
    record(tx, at, &entries)?;
    Ok(out)
}

/// End the memberships the `End` changes of `batches` name; returns, for each in
/// order, whether it ended one (one ended before, by someone else, is left as it is).
fn end_memberships(
    tx: &mut Tx<'_>,
    batches: &[(&[Change], Cause<'_>)],
    at: Timestamp,
) -> Result<Vec<bool>> {
    let ends: Vec<(i64, Timestamp)> = batches
        .iter()
        .flat_map(|(changes, _)| changes.iter())
        .filter_map(|c| match c {
            Change::End { membership, at, .. } => Some((*membership, *at)),
            Change::Add { .. } => None,
        })
        .collect();
    if ends.is_empty() {
        return Ok(Vec::new());
    }
    // The removal's event announces the end; the clock must not announce it again.
    const END: &str = "UPDATE memberships m SET ends = e.ends,
            announced = CASE WHEN e.ends <= $3 THEN 'expired' ELSE m.announced END
         FROM unnest($1::bigint[], $2::bigint[]) AS e(id, ends)
         WHERE m.id = e.id AND (m.ends IS NULL OR m.ends > e.ends)
         RETURNING m.id";
    let statement = tx.prepared(END)?;
    let mut sorted: Vec<i64> = ends.iter().map(|(id, _)| *id).collect();
    sorted.sort_unstable();
    let repeated = sorted.windows(2).any(|w| w[0] == w[1]);
    if repeated {
        // A statement changes a row once: a membership ended twice in one call is
        // ended change by change, as the changes say.
        let mut out = Vec::with_capacity(ends.len());
        for (id, ends_at) in &ends {
            let n = tx
                .query(&statement, &[&vec![*id], &vec![*ends_at], &at])?
                .len();
            out.push(n > 0);
        }
        return Ok(out);
    }
    let mut done = std::collections::HashSet::new();
    for chunk in ends.chunks(CHUNK) {
        let ids: Vec<i64> = chunk.iter().map(|(id, _)| *id).collect();
        let times: Vec<i64> = chunk.iter().map(|(_, t)| *t).collect();
        for row in tx.query(&statement, &[&ids, &times, &at])? {
            done.insert(row.get::<_, i64>(0));
        }
    }
    Ok(ends.iter().map(|(id, _)| done.contains(id)).collect())
}
