//! The record of each run, written as it starts and, with its changes, as it ends.

use cohort_model::Timestamp;
use cohort_planner::Change;
use cohort_store::{Applied, Cause, RunRecord, RunStatus, Runs, Trigger};
use rusqlite::params;

use crate::memberships::apply_all;
use crate::{SqliteStore, corrupt, named, sql};

impl Runs for SqliteStore {
    fn start_runs(&self, runs: &[RunRecord]) -> cohort_store::Result<Vec<i64>> {
        sql(|| {
            let mut conn = self.conn();
            let tx = conn.transaction()?;
            let ids = {
                let mut insert = tx.prepare_cached(
                "INSERT INTO runs (grp, trigger, dry_run, actor, as_of, started_at, status, owner)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'running', ?7) RETURNING id",
            )?;
                let owner = self.owner.as_ref().map(|o| o.token.as_str());
                runs.iter()
                    .map(|run| {
                        insert.query_row(
                            params![
                                run.group,
                                run.trigger.as_str(),
                                run.dry_run,
                                run.actor,
                                run.as_of,
                                run.started_at,
                                owner
                            ],
                            |r| r.get(0),
                        )
                    })
                    .collect::<rusqlite::Result<Vec<i64>>>()?
            };
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
            let mut conn = self.conn();
            let tx = conn.transaction()?;
            let (applied, counts) = if changes.is_empty() {
                (Applied::default(), (run.added, run.removed))
            } else {
                let applied = apply_all(&tx, &[(changes, cause.clone())], at)?.remove(0);
                let counts = applied.counts();
                (applied, counts)
            };
            tx.execute(
                "UPDATE runs SET finished_at = ?2, status = ?3, customers = ?4, matched = ?5,
                added = ?6, removed = ?7, undecided = ?8, failures = ?9, error = ?10
             WHERE id = ?1",
                params![
                    run.id,
                    run.finished_at,
                    run.status.as_str(),
                    run.customers as i64,
                    run.matched as i64,
                    counts.0 as i64,
                    counts.1 as i64,
                    run.undecided as i64,
                    failures,
                    run.error
                ],
            )?;
            if run.trigger == Trigger::Periodic && !run.dry_run {
                tx.execute(
                    "UPDATE groups SET last_periodic_run = ?2 WHERE id = ?1",
                    params![run.group, run.started_at],
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
            let conn = self.reader();
            let mut stmt = conn.prepare(
                "SELECT id, grp, trigger, dry_run, actor, as_of, started_at, finished_at, status,
                    customers, matched, added, removed, undecided, failures, error
             FROM runs WHERE (?1 IS NULL OR grp = ?1) AND id < ?3 ORDER BY id DESC LIMIT ?2",
            )?;
            let before = before.unwrap_or(i64::MAX);
            let rows = stmt.query_map(params![group, limit as i64, before], |r| {
                Ok((
                    RunRecord {
                        id: r.get(0)?,
                        group: r.get(1)?,
                        trigger: named(r, 2, Trigger::parse)?,
                        dry_run: r.get(3)?,
                        actor: r.get(4)?,
                        as_of: r.get(5)?,
                        started_at: r.get(6)?,
                        finished_at: r.get(7)?,
                        status: named(r, 8, RunStatus::parse)?,
                        customers: r.get::<_, i64>(9)? as u64,
                        matched: r.get::<_, i64>(10)? as u64,
                        added: r.get::<_, i64>(11)? as u64,
                        removed: r.get::<_, i64>(12)? as u64,
                        undecided: r.get::<_, i64>(13)? as u64,
                        failures: Vec::new(),
                        error: r.get(15)?,
                    },
                    r.get::<_, String>(14)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (mut run, failures) = row?;
                run.failures = serde_json::from_str(&failures)
                    .map_err(|e| corrupt("run", &run.id.to_string(), e))?;
                out.push(run);
            }
            Ok(out)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cohort_model::Group;
    use cohort_store::conformance::{CAUSE, add};
    use cohort_store::prelude::*;

    #[test]
    fn the_schema_survives_reopening_and_interrupted_runs_are_marked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("cohort.db");
        {
            let store = SqliteStore::open(&path).expect("open");
            store
                .start_runs(&[RunRecord {
                    group: "g".into(),
                    trigger: Trigger::Manual,
                    actor: "op".into(),
                    ..RunRecord::default()
                }])
                .expect("run");
            store.apply(&[add("c1", "g")], &CAUSE, 10).expect("apply");
        }
        let store = SqliteStore::open(&path).expect("reopen");
        assert_eq!(store.group_memberships("g").expect("memberships").len(), 1);
        assert_eq!(
            store.runs(None, None, 10).expect("runs")[0].status,
            RunStatus::Interrupted
        );
    }

    #[test]
    fn a_run_whose_store_is_still_open_is_not_interrupted_by_another_opening() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("cohort.db");
        let running = SqliteStore::open(&path).expect("open");
        let run = RunRecord {
            group: "g".into(),
            trigger: Trigger::Manual,
            actor: "op".into(),
            ..RunRecord::default()
        };
        running.start_runs(&[run]).expect("run");
        let status = |store: &SqliteStore| store.runs(None, None, 10).expect("runs")[0].status;
        let reader = SqliteStore::open(&path).expect("open beside it");
        assert_eq!(status(&reader), RunStatus::Running, "its owner is alive");
        drop(reader);
        assert_eq!(status(&running), RunStatus::Running);
        drop(running);
        let after = SqliteStore::open(&path).expect("reopen");
        assert_eq!(status(&after), RunStatus::Interrupted, "its owner is gone");
    }

    /// A run's record says `finished` exactly when its changes are in the store: both
    /// are written in one transaction, or neither is.
    #[test]
    fn a_run_ends_in_the_transaction_of_its_changes() {
        let store = SqliteStore::in_memory().expect("store");
        let group: Group =
            serde_json::from_value(serde_json::json!({"id": "h", "name": "H"})).expect("group");
        store.put_group(&group, 1).expect("put");
        let started = |group: &str, trigger: Trigger| {
            let run = RunRecord {
                group: group.into(),
                trigger,
                actor: "op".into(),
                started_at: 7,
                status: RunStatus::Running,
                ..RunRecord::default()
            };
            let id = store.start_runs(std::slice::from_ref(&run)).expect("start")[0];
            RunRecord { id, ..run }
        };
        let finish =
            |run: &RunRecord, status: RunStatus, error: Option<String>, changes: &[Change]| {
                let ended = RunRecord {
                    status,
                    finished_at: Some(8),
                    error,
                    ..run.clone()
                };
                let cause = Cause {
                    run: Some(run.id),
                    ..CAUSE
                };
                store.finish_run(&ended, changes, &cause, 8)
            };
        let status = |id: i64| {
            let runs = store.runs(None, None, 10).expect("runs");
            let run = runs.into_iter().find(|r| r.id == id).expect("recorded");
            (run.status, run.added, run.error)
        };

        let run = started("g", Trigger::Manual);
        let applied = finish(
            &run,
            RunStatus::Finished,
            None,
            &[add("c1", "g"), add("c2", "g")],
        )
        .expect("finish");
        assert_eq!(applied.counts(), (2, 0));
        assert_eq!(status(run.id), (RunStatus::Finished, 2, None));
        let history = store.history(None, None, None, 10).expect("history");
        assert_eq!(history.len(), 2);
        assert!(history.iter().all(|e| e.run == Some(run.id)));

        // A write that fails midway takes the run's end down with it.
        let run = started("h", Trigger::Periodic);
        store
            .conn()
            .execute_batch(
                "CREATE TEMP TRIGGER full BEFORE INSERT ON memberships
                 WHEN NEW.customer = 'c4' BEGIN SELECT RAISE(ABORT, 'disk full'); END;",
            )
            .expect("trigger");
        let err = finish(
            &run,
            RunStatus::Finished,
            None,
            &[add("c3", "h"), add("c4", "h")],
        )
        .expect_err("the write fails");
        assert!(err.to_string().contains("disk full"), "{err}");
        assert_eq!(status(run.id).0, RunStatus::Running);
        assert!(store.group_memberships("h").expect("read").is_empty());
        assert_eq!(
            store.last_periodic_run("h").expect("last"),
            Some(1),
            "still the group's own time, not the run's"
        );

        finish(&run, RunStatus::Failed, Some(err.to_string()), &[]).expect("record the failure");
        let (state, added, error) = status(run.id);
        assert_eq!((state.as_str(), added), ("failed", 0));
        assert!(error.is_some_and(|e| e.contains("disk full")));
        assert_eq!(
            store.last_periodic_run("h").expect("last"),
            Some(7),
            "a failed periodic run is the last one too: the schedule waits for its next time"
        );
    }
}
