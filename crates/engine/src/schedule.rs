//! Periodic runs: cron expressions read in a time zone.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use cohort_model::{Mode, Schedule, Timestamp};

use cohort_store::{RunRecord, StoreError};

use crate::{Engine, EngineError, Result, Trigger};

/// What one tick of the clock did (see [`Engine::tick`]).
#[derive(Debug)]
pub struct Tick {
    /// Events written for windows that opened or closed.
    pub announced: u64,
    /// Each due group's run, or why it failed.
    pub runs: Vec<Result<RunRecord>>,
}

impl Engine {
    /// The clock's work at `now`, the same for `cohort scheduler` and `cohort serve`:
    /// windows that opened or closed since the last tick are announced to the change
    /// feed, then every group whose schedule has come due runs.
    pub fn tick(&self, now: Timestamp) -> Result<Tick> {
        let announced = self.store.announce(now)?;
        Ok(Tick {
            announced,
            runs: self.run_due(now)?,
        })
    }

    /// Run every group whose schedule has come due by `now` (the scheduler's tick) and
    /// that no other process claimed first: each one's report or why it failed. A
    /// failed run does not stop the others, and its group is next due at its next
    /// scheduled time, as a finished one is (the claim already moved its last run).
    pub fn run_due(&self, now: Timestamp) -> Result<Vec<Result<RunRecord>>> {
        let mut due = Vec::new();
        for group in self.groups()?.iter() {
            let Some(s) = &group.auto.triggers.schedule else {
                continue;
            };
            if group.auto.mode == Mode::Disabled {
                continue;
            }
            let Some(last) = self.store.last_periodic_run(&group.id)? else {
                continue;
            };
            // Every server on a shared store comes here; the one that claims the
            // schedule's time runs the group.
            if next_run(&group.id, s, last)?.is_some_and(|next| next <= now)
                && self.store.claim_periodic_run(&group.id, last, now)?
            {
                due.push(group.id.clone());
            }
        }
        let mut runs = self.run_groups(&due, Trigger::Periodic, "scheduler", now, now);
        // On a shared store, a scheduler whose clock came to the next time while
        // another's scan of the group still runs finds that scan in the way. The scan
        // under way is the group's run: this time is not a failure, and it is claimed,
        // so nobody runs it again.
        runs.retain(|r| !matches!(r, Err(EngineError::Store(StoreError::Conflict(_)))));
        Ok(runs)
    }
}

/// The schedule's cron expression and time zone; both problems at once if both are
/// wrong, so that an operator mends them in one go.
pub(crate) fn parse(group: &str, s: &Schedule) -> Result<(cron::Schedule, Tz)> {
    let cron = cron::Schedule::from_str(&s.cron).map_err(|e| {
        format!(
            "`{}` is not a cron expression (sec min hour day month weekday [year]): {}",
            s.cron,
            cron_reason(&e)
        )
    });
    let tz = Tz::from_str(&s.time_zone).map_err(|_| {
        format!(
            "`{}` is not an IANA time zone (such as `Europe/Berlin` or `UTC`)",
            s.time_zone
        )
    });
    match (cron, tz) {
        (Ok(cron), Ok(tz)) => Ok((cron, tz)),
        (cron, tz) => Err(EngineError::Schedule {
            group: group.to_string(),
            problem: [cron.err(), tz.err()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join("; "),
        }),
    }
}

/// What the cron parser says is wrong, without the expression and the caret under it
/// that it prints first: the operator's message already quotes the expression.
fn cron_reason(e: &cron::error::Error) -> String {
    let text = e.to_string();
    let last = text
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty() && !l.chars().all(|c| c == '^' || c == ' '))
        .unwrap_or("not understood");
    let mut reason: String = last.trim_end_matches('.').to_string();
    if let Some(first) = reason.get(..1) {
        reason.replace_range(..1, &first.to_lowercase());
    }
    reason
}

/// The first time after `after` at which the schedule fires, read in its time zone
/// (so "03:00 Europe/Berlin" follows daylight saving time).
pub fn next_run(group: &str, s: &Schedule, after: Timestamp) -> Result<Option<Timestamp>> {
    let (cron, tz) = parse(group, s)?;
    let after = DateTime::<Utc>::from_timestamp(after, 0)
        .unwrap_or_default()
        .with_timezone(&tz);
    Ok(cron.after(&after).next().map(|t| t.timestamp()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(cron: &str, tz: &str) -> Schedule {
        Schedule {
            cron: cron.into(),
            time_zone: tz.into(),
        }
    }

    #[test]
    fn nightly_in_a_time_zone_follows_daylight_saving() {
        let nightly = schedule("0 0 3 * * *", "Europe/Berlin");
        // 2026-01-15T12:00Z: next 03:00 Berlin (CET, UTC+1) is 02:00Z on the 16th.
        let winter = next_run("g", &nightly, 1_768_478_400).expect("valid");
        assert_eq!(winter, Some(1_768_528_800));
        // 2026-07-15T12:00Z: CEST, UTC+2, so 01:00Z on the 16th.
        let summer = next_run("g", &nightly, 1_784_116_800).expect("valid");
        assert_eq!(summer, Some(1_784_163_600));
    }

    #[test]
    fn bad_expressions_and_zones_are_named() {
        let err = next_run("g", &schedule("every night", "UTC"), 0).expect_err("bad cron");
        assert!(
            err.to_string()
                .contains("`every night` is not a cron expression"),
            "{err}"
        );
        let err = next_run("g", &schedule("0 0 3 * * *", "Mars/Olympus"), 0).expect_err("bad tz");
        assert!(
            err.to_string()
                .contains("`Mars/Olympus` is not an IANA time zone"),
            "{err}"
        );
        let both = next_run("g", &schedule("0 0 25 * * *", "Mars/Olympus"), 0)
            .expect_err("both bad")
            .to_string();
        assert!(
            both.contains("`0 0 25 * * *` is not a cron expression")
                && both.contains("25")
                && both.contains("`Mars/Olympus` is not an IANA time zone"),
            "both problems at once: {both}"
        );
        assert!(
            !both.contains('^') && !both.contains('\n'),
            "one line, without the parser's caret: {both}"
        );
    }
}
