//! The record of each run, written as it starts and, with its changes, as it ends.

use cohort_model::Timestamp;
use cohort_planner::Change;
use cohort_store::{Applied, Cause, RunRecord, RunStatus, Runs, Scans, Trigger};
use postgres::Row;

use crate::journal::apply_all;
use crate::{PgStore, Result, big, corrupt, count, named, sql};

impl Runs for PgStore {
    fn start_runs(&self, runs: &[RunRecord]) -> cohort_store::Result<Vec<i64>> {
        sql(|| {
            let mut conn = self.pool.get()?;
            let mut tx = conn.begin()?;
            let insert = tx.prepared(
                "INSERT INTO runs (grp, trigger, dry_run, actor, as_of, started_at, status, owner)
                 VALUES ($1, $2, $3, $4, $5, $6, 'running', $7) RETURNING id",
            )?;
            let mut ids = Vec::with_capacity(runs.len());
            for run in runs {
                let row = tx.query_one(
                    &insert,
                    &[
                        &run.group,
                        &run.trigger.as_str(),
                        &run.dry_run,
                        &run.actor,
                        &run.as_of,
                        &run.started_at,
                        &self.owner.id,
                    ],
                )?;
                ids.push(row.get(0));
            }
            tx.commit()?;
            Ok(ids)
        })
    }

    fn finish_run(
        &self,
        run: &RunRecord,
        changes: &[Change],
        cause: &Cause<'_>,
        at: Timestamp,
    ) -> cohort_store::Result<Applied> {
        sql(|| {
            let failures = serde_json::to_string(&run.failures)
                .map_err(|e| corrupt("run", &run.id.to_string(), e))?;
            let mut conn = self.pool.get()?;
            let mut tx = conn.begin()?;
            let (applied, counts) = if changes.is_empty() {
                (Applied::default(), (run.added, run.removed))
            } else {
                let applied = apply_all(&mut tx, &[(changes, cause.clone())], at)?.remove(0);
                let counts = applied.counts();
                (applied, counts)
            };
            tx.execute(
                "UPDATE runs SET finished_at = $2, status = $3, customers = $4, matched = $5,
                    added = $6, removed = $7, undecided = $8, failures = $9, error = $10
                 WHERE id = $1",
                &[
                    &run.id,
                    &run.finished_at,
                    &run.status.as_str(),
                    &big(run.customers),
                    &big(run.matched),
                    &big(counts.0),
                    &big(counts.1),
                    &big(run.undecided),
                    &failures,
                    &run.error,
                ],
            )?;
            if run.trigger == Trigger::Periodic && !run.dry_run {
                tx.execute(
                    "UPDATE groups SET last_periodic_run = $2 WHERE id = $1",
                    &[&run.group, &run.started_at],
                )?;
            }
            tx.commit()?;
            Ok(applied)
        })
    }

    fn runs(
        &self,
        group: Option<&str>,
        before: Option<i64>,
        limit: usize,
    ) -> cohort_store::Result<Vec<RunRecord>> {
        sql(|| {
            let rows = self.pool.get()?.query(
                &format!(
                    "SELECT {RUN_COLUMNS} FROM runs WHERE ($1::text IS NULL OR grp = $1) AND id < $3
                 ORDER BY id DESC LIMIT $2"
                ),
                &[&group, &(limit as i64), &before.unwrap_or(i64::MAX)],
            )?;
            rows.iter().map(run_record).collect()
        })
    }

    fn scans(&self) -> Option<&dyn Scans> {
        Some(self)
    }
}

/// The columns [`run_record`] reads, in its order.
pub(crate) const RUN_COLUMNS: &str = "id, grp, trigger, dry_run, actor, as_of, started_at, \
     finished_at, status, customers, matched, added, removed, undecided, failures, error";

/// A run from a row of [`RUN_COLUMNS`].
pub(crate) fn run_record(r: &Row) -> Result<RunRecord> {
    let id: i64 = r.get(0);
    let key = id.to_string();
    Ok(RunRecord {
        id,
        group: r.get(1),
        trigger: named(r.get(2), Trigger::parse, "run", &key)?,
        dry_run: r.get(3),
        actor: r.get(4),
        as_of: r.get(5),
        started_at: r.get(6),
        finished_at: r.get(7),
        status: named(r.get(8), RunStatus::parse, "run", &key)?,
        customers: count(r.get(9)),
        matched: count(r.get(10)),
        added: count(r.get(11)),
        removed: count(r.get(12)),
        undecided: count(r.get(13)),
        failures: serde_json::from_str(r.get(14)).map_err(|e| corrupt("run", &key, e))?,
        error: r.get(15),
    })
}
