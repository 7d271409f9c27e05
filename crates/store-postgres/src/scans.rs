//! Scans shared by workers (see `cohort_store::scans`): the ranges, their leases, and
//! the commit of a range's work with its completion.
//!
//! A claim is a short transaction of its own (`FOR UPDATE SKIP LOCKED`: workers
//! claiming at once take different ranges, none waits), so that the lease and the
//! attempt are seen by everyone at once. The work's transaction takes the range's row
//! last, when it marks the range done, and only while the row still names its worker
//! and is open: a worker whose lease lapsed and whose range another took writes
//! nothing. Until then the row is free for the worker's renewals.

use cohort_model::{Held, Source, Timestamp};
use cohort_planner::Change;
use cohort_store::{
    Applied, Cause, Claim, NewScan, RangeCounts, RangeWork, RunRecord, RunStatus, ScanRecord,
    ScanStatus, Scans, Trigger, Work,
};
use postgres::Row;

use crate::journal::apply_all;
use crate::pool::Tx;
use crate::runs::{RUN_COLUMNS, run_record};
use crate::{PgStore, Result, big, count, named, sql};

/// A range's transaction as the worker's plan reads and writes it.
struct InRange<'t, 'c> {
    tx: &'t mut Tx<'c>,
    from: Option<&'t str>,
    to: Option<&'t str>,
}

impl RangeWork for InRange<'_, '_> {
    fn holdings(
        &mut self,
        groups: &[&str],
        each: &mut dyn FnMut(&str, &str, Held),
    ) -> cohort_store::Result<()> {
        sql(|| {
            // Only what planning needs, and the strings borrowed from the rows: a
            // rescan reads every membership of every range, millions of rows.
            let statement = self.tx.prepared(
                "SELECT customer, grp, id, source, starts, ends FROM memberships
                 WHERE grp = ANY($1) AND ($2::text IS NULL OR customer >= $2)
                   AND ($3::text IS NULL OR customer < $3)
                 ORDER BY customer, id",
            )?;
            for row in self
                .tx
                .query(&statement, &[&groups, &self.from, &self.to])?
            {
                let id: i64 = row.get(2);
                let source = named(row.get(3), Source::parse, "membership", &id.to_string())?;
                let held = Held {
                    id,
                    source,
                    start: row.get(4),
                    end: row.get(5),
                };
                each(row.get(0), row.get(1), held);
            }
            Ok(())
        })
    }

    fn exclusions(&mut self, groups: &[&str]) -> cohort_store::Result<Vec<(String, String)>> {
        sql(|| {
            let statement = self.tx.prepared(
                "SELECT customer, grp FROM exclusions
                 WHERE grp = ANY($1) AND ($2::text IS NULL OR customer >= $2)
                   AND ($3::text IS NULL OR customer < $3)",
            )?;
            let rows = self
                .tx
                .query(&statement, &[&groups, &self.from, &self.to])?;
            Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
        })
    }

    fn apply(
        &mut self,
        batches: &[(&[Change], Cause<'_>)],
        at: Timestamp,
    ) -> cohort_store::Result<Vec<Applied>> {
        sql(|| apply_all(self.tx, batches, at))
    }
}

/// A scan's record and its runs, in the order it was started with.
fn read_scan(tx: &mut Tx<'_>, id: i64) -> Result<Option<ScanRecord>> {
    let Some(row) = tx.query_opt(
        "SELECT status, ranges, done, error FROM scans WHERE id = $1",
        &[&id],
    )?
    else {
        return Ok(None);
    };
    let status = named(row.get(0), ScanStatus::parse, "scan", &id.to_string())?;
    let runs = tx
        .query(
            &format!(
                "SELECT {RUN_COLUMNS} FROM runs
                 WHERE id IN (SELECT run FROM scan_runs WHERE scan = $1) ORDER BY id"
            ),
            &[&id],
        )?
        .iter()
        .map(run_record)
        .collect::<Result<Vec<_>>>()?;
    Ok(Some(ScanRecord {
        id,
        status,
        ranges: count(i64::from(row.get::<_, i32>(1))),
        done: count(i64::from(row.get::<_, i32>(2))),
        error: row.get(3),
        runs,
    }))
}

/// The runs of scan `scan`, a job to a list, each in its order.
fn jobs(tx: &mut Tx<'_>, scan: i64) -> Result<Vec<Vec<RunRecord>>> {
    let rows = tx.query(
        "SELECT s.job, r.id FROM scan_runs s JOIN runs r ON r.id = s.run
         WHERE s.scan = $1 ORDER BY s.job, s.step",
        &[&scan],
    )?;
    let ids: Vec<(i32, i64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let records = tx.query(
        &format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ANY($1)"),
        &[&ids.iter().map(|(_, id)| *id).collect::<Vec<i64>>()],
    )?;
    let mut records: Vec<RunRecord> = records.iter().map(run_record).collect::<Result<_>>()?;
    let mut jobs: Vec<Vec<RunRecord>> = Vec::new();
    let mut last = None;
    for (job, id) in ids {
        let Some(i) = records.iter().position(|r| r.id == id) else {
            continue;
        };
        let record = records.swap_remove(i);
        if last != Some(job) {
            jobs.push(Vec::new());
            last = Some(job);
        }
        if let Some(j) = jobs.last_mut() {
            j.push(record);
        }
    }
    Ok(jobs)
}

/// A claim from a row of (scan, range, from_id, to_id, attempts).
fn claimed(tx: &mut Tx<'_>, row: &Row, worker: &str) -> Result<Claim> {
    let scan: i64 = row.get(0);
    Ok(Claim {
        scan,
        range: i64::from(row.get::<_, i32>(1)),
        from: row.get(2),
        to: row.get(3),
        jobs: jobs(tx, scan)?,
        worker: worker.to_string(),
        attempt: u32::try_from(row.get::<_, i32>(4)).unwrap_or_default(),
    })
}

/// End the claimed range with `status`, if it is still open and the claim's worker's
/// (a lease that lapsed and was taken over is not); whether it was.
fn settle(tx: &mut Tx<'_>, claim: &Claim, status: &str) -> Result<bool> {
    let range = i32::try_from(claim.range).unwrap_or(i32::MAX);
    let settled = tx.execute(
        "UPDATE scan_ranges SET status = $4, lease_until = NULL
         WHERE scan = $1 AND range = $2 AND worker = $3 AND status = 'open'",
        &[&claim.scan, &range, &claim.worker, &status],
    )?;
    Ok(settled == 1)
}

/// Each run's counts merged into its record: the runs locked and read in one
/// statement, written in another (a statement per run was most of a small range's
/// time).
fn add_counts(tx: &mut Tx<'_>, counts: &[RangeCounts], at: Timestamp) -> Result<()> {
    if counts.is_empty() {
        return Ok(());
    }
    let mut counts: Vec<&RangeCounts> = counts.iter().collect();
    // Every worker locks a scan's runs in one order.
    counts.sort_by_key(|c| c.run);
    let ids: Vec<i64> = counts.iter().map(|c| c.run).collect();
    let held =
        tx.prepared("SELECT id, failures FROM runs WHERE id = ANY($1) ORDER BY id FOR UPDATE")?;
    let mut stored: std::collections::HashMap<i64, String> = tx
        .query(&held, &[&ids])?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let mut failures = Vec::with_capacity(counts.len());
    for c in &counts {
        let key = c.run.to_string();
        let mut merged: Vec<(String, u64)> = match stored.remove(&c.run) {
            Some(text) => {
                serde_json::from_str(&text).map_err(|e| crate::corrupt("run", &key, e))?
            }
            None => Vec::new(),
        };
        for (reason, n) in &c.failures {
            match merged.iter_mut().find(|(r, _)| r == reason) {
                Some((_, m)) => *m += n,
                None => merged.push((reason.clone(), *n)),
            }
        }
        merged.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        failures.push(serde_json::to_string(&merged).map_err(|e| crate::corrupt("run", &key, e))?);
    }
    let column =
        |f: fn(&RangeCounts) -> u64| -> Vec<i64> { counts.iter().map(|c| big(f(c))).collect() };
    let errors: Vec<Option<&str>> = counts.iter().map(|c| c.error.as_deref()).collect();
    let write = tx.prepared(
        "UPDATE runs r SET customers = r.customers + u.customers, matched = r.matched + u.matched,
            undecided = r.undecided + u.undecided, added = r.added + u.added,
            removed = r.removed + u.removed, failures = u.failures,
            status = CASE WHEN u.error IS NULL THEN r.status ELSE 'failed' END,
            error = coalesce(u.error, r.error),
            finished_at = CASE WHEN u.error IS NULL THEN r.finished_at ELSE $9 END
         FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[],
                     $6::bigint[], $7::text[], $8::text[])
              AS u(id, customers, matched, undecided, added, removed, failures, error)
         WHERE r.id = u.id",
    )?;
    tx.execute(
        &write,
        &[
            &ids,
            &column(|c| c.customers),
            &column(|c| c.matched),
            &column(|c| c.undecided),
            &column(|c| c.added),
            &column(|c| c.removed),
            &failures,
            &errors,
            &at,
        ],
    )?;
    Ok(())
}

/// End a scan's runs that still run, with `status` (and `error`), at `at`; a periodic
/// run becomes its group's last, as `Runs::finish_run` does.
fn end_runs(
    tx: &mut Tx<'_>,
    scan: i64,
    status: RunStatus,
    error: Option<&str>,
    at: Timestamp,
) -> Result<()> {
    let ended = tx.query(
        "UPDATE runs SET status = $2, error = $3, finished_at = $4
         WHERE status = 'running' AND id IN (SELECT run FROM scan_runs WHERE scan = $1)
         RETURNING grp, trigger, started_at",
        &[&scan, &status.as_str(), &error, &at],
    )?;
    for row in ended {
        let group: String = row.get(0);
        if named(row.get(1), Trigger::parse, "run", &group)? == Trigger::Periodic {
            tx.execute(
                "UPDATE groups SET last_periodic_run = $2 WHERE id = $1",
                &[&group, &row.get::<_, i64>(2)],
            )?;
        }
    }
    Ok(())
}

impl Scans for PgStore {
    fn start_scan(&self, scan: &NewScan) -> cohort_store::Result<ScanRecord> {
        sql(|| {
            let mut conn = self.pool.get()?;
            let mut tx = conn.begin()?;
            // Two scans of one group would each plan its customers from what the other
            // has not committed yet, and add them twice. Starting scans take turns on
            // their groups' rows; a group with a running scan is refused.
            let groups: Vec<&str> = scan.runs.iter().map(|r| r.group.as_str()).collect();
            tx.execute(
                "SELECT 1 FROM groups WHERE id = ANY($1) ORDER BY id FOR UPDATE",
                &[&groups],
            )?;
            if let Some(row) = tx.query_opt(
                "SELECT r.grp, s.id, r.id FROM scans s
                 JOIN scan_runs sr ON sr.scan = s.id JOIN runs r ON r.id = sr.run
                 WHERE s.status = 'running' AND r.grp = ANY($1)
                 ORDER BY s.id LIMIT 1",
                &[&groups],
            )? {
                let (group, running, run): (String, i64, i64) =
                    (row.get(0), row.get(1), row.get(2));
                return Err(cohort_store::StoreError::Conflict(format!(
                    "group `{group}` is being scanned already (scan {running}, run {run}): a \
                     second scan would add its customers twice; wait for it \
                     (`cohort scan {running} --wait`) or cancel it (`cohort scan {running} \
                     --cancel`, or POST /v1/runs/{run}/cancel)"
                ))
                .into());
            }
            // Every `range_size`-th id starts a range; the first range takes what
            // sorts before the first bound, the last what sorts after the last, also
            // customers registered once the scan has started.
            let step = big(scan.range_size.max(1) as u64);
            let bounds: Vec<String> = tx
                .query(
                    "SELECT id FROM (SELECT id, row_number() OVER (ORDER BY id) AS n
                                     FROM customers) c
                     WHERE n > 1 AND n % $1 = 1 ORDER BY id",
                    &[&step],
                )?
                .iter()
                .map(|r| r.get(0))
                .collect();
            let ranges = i32::try_from(bounds.len() + 1).unwrap_or(i32::MAX);
            let id: i64 = tx
                .query_one(
                    "INSERT INTO scans (started_at, status, ranges) VALUES ($1, 'running', $2)
                     RETURNING id",
                    &[&scan.at, &ranges],
                )?
                .get(0);
            let froms: Vec<Option<&str>> = std::iter::once(None)
                .chain(bounds.iter().map(|b| Some(b.as_str())))
                .collect();
            let tos: Vec<Option<&str>> = bounds
                .iter()
                .map(|b| Some(b.as_str()))
                .chain(std::iter::once(None))
                .collect();
            tx.execute(
                "INSERT INTO scan_ranges (scan, range, from_id, to_id)
                 SELECT $1, n - 1, f, t FROM unnest($2::text[], $3::text[])
                      WITH ORDINALITY AS u(f, t, n)",
                &[&id, &froms, &tos],
            )?;
            let insert = tx.prepared(
                "INSERT INTO runs (grp, trigger, dry_run, actor, as_of, started_at, status)
                 VALUES ($1, $2, false, $3, $4, $5, 'running') RETURNING id",
            )?;
            let mut run_ids = Vec::with_capacity(scan.runs.len());
            for run in &scan.runs {
                let row = tx.query_one(
                    &insert,
                    &[
                        &run.group,
                        &run.trigger.as_str(),
                        &run.actor,
                        &run.as_of,
                        &run.started_at,
                    ],
                )?;
                run_ids.push(row.get::<_, i64>(0));
            }
            for (job, positions) in scan.jobs.iter().enumerate() {
                for (step, &at) in positions.iter().enumerate() {
                    let run = run_ids.get(at).ok_or_else(|| {
                        crate::corrupt("scan", &id.to_string(), "a job names a run it lacks")
                    })?;
                    tx.execute(
                        "INSERT INTO scan_runs (scan, run, job, step) VALUES ($1, $2, $3, $4)",
                        &[&id, run, &(job as i32), &(step as i32)],
                    )?;
                }
            }
            // Its runs come in id order: the order they were given.
            let record =
                read_scan(&mut tx, id)?.ok_or_else(|| crate::corrupt("scan", "new", "gone"))?;
            tx.commit()?;
            Ok(record)
        })
    }

    fn claim_range(
        &self,
        worker: &str,
        scan: Option<i64>,
        lease: u32,
    ) -> cohort_store::Result<Option<Claim>> {
        sql(|| {
            let mut conn = self.pool.get()?;
            let mut tx = conn.begin()?;
            let statement = tx.prepared(
                "UPDATE scan_ranges r
                 SET worker = $1, attempts = attempts + 1,
                     lease_until = clock_timestamp() + make_interval(secs => $2)
                 FROM (SELECT scan, range FROM scan_ranges
                       WHERE status = 'open' AND ($3::bigint IS NULL OR scan = $3)
                         AND (lease_until IS NULL OR lease_until < clock_timestamp())
                       ORDER BY scan, range LIMIT 1 FOR UPDATE SKIP LOCKED) free
                 WHERE r.scan = free.scan AND r.range = free.range
                 RETURNING r.scan, r.range, r.from_id, r.to_id, r.attempts",
            )?;
            let Some(row) = tx.query_opt(&statement, &[&worker, &f64::from(lease), &scan])? else {
                return Ok(None);
            };
            let claim = claimed(&mut tx, &row, worker)?;
            tx.commit()?;
            Ok(Some(claim))
        })
    }

    fn renew_range(&self, claim: &Claim, lease: u32) -> cohort_store::Result<bool> {
        sql(|| {
            let mut conn = self.pool.get()?;
            let statement = conn.prepared(
                "UPDATE scan_ranges SET lease_until = clock_timestamp() + make_interval(secs => $4)
                 WHERE scan = $1 AND range = $2 AND worker = $3 AND status = 'open'",
            )?;
            let range = i32::try_from(claim.range).unwrap_or(i32::MAX);
            let n = conn.execute(
                &statement,
                &[&claim.scan, &range, &claim.worker, &f64::from(lease)],
            )?;
            Ok(n == 1)
        })
    }

    fn finish_range(
        &self,
        claim: &Claim,
        at: Timestamp,
        work: &mut Work<'_>,
    ) -> cohort_store::Result<Option<ScanRecord>> {
        let mut conn = self.pool.get().map_err(cohort_store::StoreError::from)?;
        let mut tx = conn.begin().map_err(cohort_store::StoreError::from)?;
        let counts = work(&mut InRange {
            tx: &mut tx,
            from: claim.from.as_deref(),
            to: claim.to.as_deref(),
        })?;
        sql(|| {
            add_counts(&mut tx, &counts, at)?;
            if !settle(&mut tx, claim, "done")? {
                // Dropped unfinished: rolled back.
                return Ok(None);
            }
            let row = tx.query_one(
                "UPDATE scans SET done = done + 1 WHERE id = $1 RETURNING done, ranges",
                &[&claim.scan],
            )?;
            let (done, ranges): (i32, i32) = (row.get(0), row.get(1));
            if done == ranges {
                end_runs(&mut tx, claim.scan, RunStatus::Finished, None, at)?;
                tx.execute(
                    "UPDATE scans SET status = 'finished', finished_at = $2 WHERE id = $1",
                    &[&claim.scan, &at],
                )?;
            }
            let record = read_scan(&mut tx, claim.scan)?;
            tx.commit()?;
            Ok(record)
        })
    }

    fn fail_range(&self, claim: &Claim, error: &str, at: Timestamp) -> cohort_store::Result<()> {
        sql(|| {
            let mut conn = self.pool.get()?;
            let mut tx = conn.begin()?;
            if !settle(&mut tx, claim, "failed")? {
                return Ok(());
            }
            tx.execute(
                "UPDATE scan_ranges SET status = 'given-up', lease_until = NULL
                 WHERE scan = $1 AND status = 'open'",
                &[&claim.scan],
            )?;
            let error = format!("range {} of scan {}: {error}", claim.range, claim.scan);
            end_runs(&mut tx, claim.scan, RunStatus::Failed, Some(&error), at)?;
            tx.execute(
                "UPDATE scans SET status = 'failed', error = $2, finished_at = $3 WHERE id = $1",
                &[&claim.scan, &error, &at],
            )?;
            tx.commit()?;
            Ok(())
        })
    }

    fn scan_of_run(&self, run: i64) -> cohort_store::Result<Option<ScanRecord>> {
        sql(|| {
            let mut conn = self.pool.get()?;
            let mut tx = conn.begin()?;
            let scan: Option<i64> = tx
                .query_opt("SELECT scan FROM scan_runs WHERE run = $1", &[&run])?
                .map(|r| r.get(0));
            let record = match scan {
                Some(scan) => read_scan(&mut tx, scan)?,
                None => None,
            };
            tx.commit()?;
            Ok(record)
        })
    }

    fn cancel_scan(&self, scan: i64, reason: &str, at: Timestamp) -> cohort_store::Result<bool> {
        sql(|| {
            let mut conn = self.pool.get()?;
            let mut tx = conn.begin()?;
            // Ranges first, then the scan, in the order a range's finish locks them: a
            // range finishing after this finds itself given up and writes nothing. Only
            // a running scan has open ranges.
            tx.execute(
                "UPDATE scan_ranges SET status = 'given-up', lease_until = NULL
                 WHERE scan = $1 AND status = 'open'",
                &[&scan],
            )?;
            let running = tx.execute(
                "UPDATE scans SET status = 'failed', error = $2, finished_at = $3
                 WHERE id = $1 AND status = 'running'",
                &[&scan, &reason, &at],
            )? > 0;
            if running {
                end_runs(&mut tx, scan, RunStatus::Cancelled, Some(reason), at)?;
            }
            tx.commit()?;
            Ok(running)
        })
    }

    fn scan(&self, id: i64) -> cohort_store::Result<Option<ScanRecord>> {
        sql(|| {
            let mut conn = self.pool.get()?;
            let mut tx = conn.begin()?;
            let record = read_scan(&mut tx, id)?;
            tx.commit()?;
            Ok(record)
        })
    }
}
