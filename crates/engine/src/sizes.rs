//! A group's size: its memberships by state now, and how many were active on each of
//! the last days (a window keeps its past, so the history is exact). One pass over the
//! group's memberships makes both; the result is kept until the group's memberships
//! change or `FRESH_SECONDS` pass (states move with the clock too), so that a page
//! listing groups of a million members does not count them at every view.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use cohort_model::{State, Timestamp, state};
use serde::Serialize;

use crate::{Engine, Result};

/// How long counts are kept while the group's memberships do not change.
pub const FRESH_SECONDS: i64 = 60;

/// Days of history in a group's sizes, one point a day, the last now.
pub const DAYS: usize = 30;

const DAY: i64 = 86_400;

/// A group's memberships by state at one time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StateCounts {
    pub active: u64,
    pub pending: u64,
    pub expired: u64,
}

/// A group's size now and over the last `DAYS` days.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Sizes {
    /// When they were counted.
    pub at: Timestamp,
    pub states: StateCounts,
    /// (time, active members then), oldest first, one a day; the last is `at`.
    pub daily: Vec<(Timestamp, u64)>,
}

/// Counts kept by group, with the membership stamp they were counted at.
#[derive(Default)]
pub(crate) struct SizesCache(Mutex<HashMap<String, (i64, Arc<Sizes>)>>);

/// The sizes of memberships with these windows, as of `at`.
pub fn count(
    windows: impl IntoIterator<Item = (Timestamp, Option<Timestamp>)>,
    at: Timestamp,
) -> Sizes {
    let first = at - (DAYS as i64 - 1) * DAY;
    // Point k is at `first + k * DAY`; a window adds one to the points it covers, as a
    // difference array: +1 at the first covered, -1 after the last.
    let mut diff = [0i64; DAYS + 1];
    let point_at_or_after = |t: Timestamp| -> usize {
        if t <= first {
            0
        } else {
            (((t - first) + DAY - 1) / DAY).min(DAYS as i64) as usize
        }
    };
    let mut states = StateCounts::default();
    for (start, end) in windows {
        match state(start, end, at) {
            State::Active => states.active += 1,
            State::Pending => states.pending += 1,
            State::Expired => states.expired += 1,
        }
        // Active at t when start <= t < end; an empty window never is.
        if end.is_some_and(|e| e <= start) {
            continue;
        }
        let from = point_at_or_after(start);
        let to = end.map_or(DAYS, point_at_or_after);
        if from < to {
            diff[from] += 1;
            diff[to] -= 1;
        }
    }
    let mut running = 0i64;
    let daily = (0..DAYS)
        .map(|k| {
            running += diff[k];
            (first + k as i64 * DAY, running.max(0) as u64)
        })
        .collect();
    Sizes { at, states, daily }
}

impl Engine {
    /// Group `group`'s sizes as of `now`, counted again if its memberships changed or
    /// the counts are older than `FRESH_SECONDS`.
    pub(crate) fn sizes(&self, group: &str, now: Timestamp) -> Result<Arc<Sizes>> {
        let stamp = self.store.membership_stamp(group)?;
        let kept = self
            .sizes
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(group)
            .filter(|(s, sizes)| *s == stamp && (0..FRESH_SECONDS).contains(&(now - sizes.at)))
            .map(|(_, sizes)| sizes.clone());
        if let Some(sizes) = kept {
            return Ok(sizes);
        }
        let mut windows = Vec::new();
        self.store
            .group_holdings(group, &mut |_, held| windows.push((held.start, held.end)))?;
        let sizes = Arc::new(count(windows, now));
        self.sizes
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(group.to_string(), (stamp, sizes.clone()));
        Ok(sizes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_agree_with_the_model_s_states_at_every_point() {
        let at = 1_000 * DAY + 3_600;
        let windows = [
            (0, None),
            (at - 10 * DAY, Some(at - 5 * DAY)),
            (at - 10 * DAY - 1, Some(at - 10 * DAY - 1)),
            (at + DAY, None),
            (at - 40 * DAY, Some(at)),
            (at - 2 * DAY, Some(at + 1)),
            (at - 29 * DAY, Some(at - 29 * DAY + 1)),
        ];
        let sizes = count(windows, at);
        assert_eq!(sizes.daily.len(), DAYS);
        assert_eq!(sizes.daily.last().map(|p| p.0), Some(at));
        for (t, n) in &sizes.daily {
            let want = windows
                .iter()
                .filter(|(s, e)| state(*s, *e, *t) == State::Active)
                .count() as u64;
            assert_eq!(*n, want, "at {t}");
        }
        assert_eq!(
            sizes.states,
            StateCounts {
                active: 2,
                pending: 1,
                expired: 4
            }
        );
        assert_eq!(sizes.daily.last().map(|p| p.1), Some(sizes.states.active));
    }
}
