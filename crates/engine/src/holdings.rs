//! A group's memberships as runs plan against them, kept between runs.
//!
//! Reading every membership of a group back from the store was most of a rescan (a
//! million customers hold millions of memberships, and only a few change). The engine
//! keeps each group's memberships in the small form planning needs, ordered by the
//! customer's position in the customer cache, and carries the copy forward with its
//! own run's changes. The store's membership stamp for the group says whether anybody
//! else wrote since: if so, the copy is dropped and read again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use cohort_model::{Held, Timestamp};
use cohort_planner::Change;
use cohort_store::{Applied, Store};

use crate::Result;
use crate::facts::Facts;

/// The room a copy keeps for additions, as a fraction of its memberships: a
/// sixteenth, several rescans after 1% changed.
const ROOM: usize = 16;

/// One group's memberships, by customer position; several per customer, in the
/// store's order.
#[derive(Debug, Default)]
pub(crate) struct Holdings {
    /// The group's membership stamp this copy is exact at.
    pub stamp: i64,
    positions: Vec<u32>,
    held: Vec<Held>,
}

/// Walks a [`Holdings`] alongside customers visited in increasing position.
pub(crate) struct Cursor<'h> {
    holdings: &'h Holdings,
    next: usize,
}

impl<'h> Cursor<'h> {
    /// The memberships of the customer at `at`; `at` must not go back.
    pub fn of(&mut self, at: usize) -> &'h [Held] {
        let positions = &self.holdings.positions;
        while self.next < positions.len() && (positions[self.next] as usize) < at {
            self.next += 1;
        }
        let start = self.next;
        while self.next < positions.len() && positions[self.next] as usize == at {
            self.next += 1;
        }
        &self.holdings.held[start..self.next]
    }
}

impl Holdings {
    /// From the store's rows, which come in customer order, not position order.
    pub fn new(stamp: i64, mut rows: Vec<(u32, Held)>) -> Self {
        // Stable: a customer's memberships keep the store's order.
        rows.sort_by_key(|(at, _)| *at);
        let (positions, held) = rows.into_iter().unzip();
        Holdings {
            stamp,
            positions,
            held,
        }
    }

    pub fn cursor(&self) -> Cursor<'_> {
        Cursor {
            holdings: self,
            next: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.held.len()
    }

    /// Every membership with its customer's position, in position order.
    pub fn iter(&self) -> impl Iterator<Item = (usize, &Held)> {
        self.positions.iter().map(|&at| at as usize).zip(&self.held)
    }

    /// This copy with a run's own changes applied, at the stamp they moved it to:
    /// `added`, the positions and new memberships, in position order (sized by its
    /// upper bound, such as the run's changes); `ended`, the positions, ids and end
    /// times of the memberships the run ended.
    ///
    /// The additions are merged in as they come rather than gathered first: a first
    /// scan adds millions, and a list of them would be hundreds of megabytes of fresh
    /// memory, written once and read once.
    pub fn advanced(
        &self,
        stamp: i64,
        added: impl IntoIterator<Item = (u32, Held)>,
        ended: &[(u32, i64, Timestamp)],
    ) -> Holdings {
        let mut added = added.into_iter().peekable();
        let (least, most) = added.size_hint();
        let n = self.len() + most.unwrap_or(least);
        // Room for the next rescans' additions, which `advance` then makes in place:
        // grown beyond its room, a list of millions is copied whole.
        let room = n + n / ROOM;
        let (mut positions, mut held) = (Vec::with_capacity(room), Vec::with_capacity(room));
        let mut i = 0;
        loop {
            // On a tie the older first: a new membership comes after a customer's
            // earlier ones, as in the store.
            let older = match (self.positions.get(i), added.peek()) {
                (None, None) => break,
                (Some(&old), Some(&(new, _))) => old <= new,
                (old, _) => old.is_some(),
            };
            let (at, h) = if older {
                i += 1;
                (self.positions[i - 1], self.held[i - 1])
            } else {
                added.next().expect("peeked")
            };
            positions.push(at);
            held.push(h);
        }
        let mut next = Holdings {
            stamp,
            positions,
            held,
        };
        next.end(ended);
        next
    }

    /// [`advanced`](Self::advanced), changing this copy instead of making another:
    /// for a rescan's few changes, where a new copy of every membership was most of
    /// what carrying the copy forward cost (fresh memory the kernel zeroes: 0.6 s of
    /// CPU over the 24 groups of a million customers after 1% changed). `added` must
    /// be in position order.
    pub fn advance(&mut self, stamp: i64, added: &[(u32, Held)], ended: &[(u32, i64, Timestamp)]) {
        let old = self.len();
        let grown = old + added.len();
        if self.held.capacity() < grown {
            let more = added.len() + grown / ROOM;
            self.positions.reserve_exact(more);
            self.held.reserve_exact(more);
        }
        if let Some(&(_, filler)) = added.first() {
            // Overwritten below: every place from the first addition's on is written.
            self.positions.resize(grown, 0);
            self.held.resize(grown, filler);
        }
        // Merged from the back, so that every membership moves once, by as many places
        // as there are additions before it: those after the last addition's position
        // move first, in one copy.
        let (mut kept, mut to) = (old, grown);
        for &(at, h) in added.iter().rev() {
            // On a tie the older first, as in `advanced`.
            let from = self.positions[..kept].partition_point(|&p| p <= at);
            let moved = kept - from;
            self.positions.copy_within(from..kept, to - moved);
            self.held.copy_within(from..kept, to - moved);
            (kept, to) = (from, to - moved - 1);
            self.positions[to] = at;
            self.held[to] = h;
        }
        self.stamp = stamp;
        self.end(ended);
    }

    /// Ends the memberships `ended` names: (position, id, end time).
    fn end(&mut self, ended: &[(u32, i64, Timestamp)]) {
        for &(at, id, end) in ended {
            let from = self.positions.partition_point(|&p| p < at);
            let to = self.positions.partition_point(|&p| p <= at);
            // As the store does: an end never moves a window's end later.
            if let Some(h) = self.held[from..to].iter_mut().find(|h| h.id == id)
                && h.end.is_none_or(|e| e > end)
            {
                h.end = Some(end);
            }
        }
    }
}

/// Each group's memberships as runs plan against them, by group id.
#[derive(Default)]
pub(crate) struct HoldingsCache(Mutex<HashMap<String, Arc<Holdings>>>);

impl HoldingsCache {
    /// The group's memberships, from the copy kept since the last run while the
    /// store's stamp says nobody else wrote, otherwise read again.
    pub(crate) fn current(
        &self,
        store: &dyn Store,
        group: &str,
        facts: &Facts,
    ) -> Result<Arc<Holdings>> {
        let stamp = store.membership_stamp(group)?;
        let cached = self.lock().get(group).cloned();
        if let Some(h) = cached.filter(|h| h.stamp == stamp) {
            return Ok(h);
        }
        // A membership of a customer the facts do not hold (written since they were
        // read) has nobody to be planned for in this run; a copy without it must not be
        // kept for the next.
        let (mut rows, mut complete) = (Vec::new(), true);
        store.group_holdings(
            group,
            &mut |customer, held| match facts.index.get(customer) {
                Some(&at) => rows.push((at as u32, held)),
                None => complete = false,
            },
        )?;
        let holdings = Arc::new(Holdings::new(stamp, rows));
        let mut cache = self.lock();
        if complete {
            cache.insert(group.to_string(), holdings.clone());
        } else {
            cache.remove(group);
        }
        Ok(holdings)
    }

    /// Keep `holdings` carried forward by a run's applied changes, if the run's write
    /// was the only one since they were read; a run that wrote nothing of the group
    /// leaves the kept copy as it is. `at` is each change's customer position. The
    /// stamp the group's memberships are then at, as the run's plan left them; `None`
    /// if another write came between.
    pub(crate) fn advance(
        &self,
        group: &str,
        holdings: Arc<Holdings>,
        changes: &[Change],
        at: &[u32],
        applied: &Applied,
    ) -> Option<i64> {
        let stamp = holdings.stamp;
        match applied.stamps.iter().find(|(g, _)| g == group) {
            None => return Some(stamp),
            Some(&(_, after)) if after == stamp + 1 => {}
            Some(_) => {
                self.lock().remove(group);
                return None;
            }
        }
        let ended: Vec<(u32, i64, Timestamp)> = changes
            .iter()
            .zip(at)
            .filter_map(|(change, &at)| match change {
                Change::End {
                    group: g,
                    membership,
                    at: end,
                    ..
                } if **g == *group => Some((at, *membership, *end)),
                _ => None,
            })
            .collect();
        // The store numbers every add in order. A run adds only to its own group (of
        // its rivals' memberships it only ends some); an add to another group would
        // still take its number here and be left out of this group's copy.
        let mut ids = applied.ids.iter();
        let added = changes
            .iter()
            .zip(at)
            .filter_map(|(change, &at)| match change {
                Change::Add {
                    group: g,
                    source,
                    start,
                    end,
                    ..
                } => {
                    // `Memberships::apply` returns an id for every `Add`, in order: the
                    // store's contract, which the conformance suite checks.
                    let id = *ids.next().expect("the store numbers every add");
                    (**g == *group).then(|| {
                        let (source, start, end) = (*source, *start, *end);
                        let held = Held {
                            id,
                            source,
                            start,
                            end,
                        };
                        (at, held)
                    })
                }
                Change::End { .. } => None,
            });
        // A few changes to the copy only this run and the cache hold are made to it in
        // place; otherwise they go into a new copy. Either way outside the lock, so that
        // the runs of other groups starting meanwhile need not wait (a run of this
        // group meanwhile finds no copy and reads the store).
        let few = changes.len() <= holdings.len() / 8;
        let mut cache = self.lock();
        let lone = if few
            && cache
                .get(group)
                .is_some_and(|kept| Arc::ptr_eq(kept, &holdings))
        {
            cache.remove(group);
            Arc::try_unwrap(holdings)
        } else {
            Err(holdings)
        };
        drop(cache);
        let next = match lone {
            Ok(mut own) => {
                let added: Vec<(u32, Held)> = added.collect();
                own.advance(stamp + 1, &added, &ended);
                own
            }
            Err(shared) => shared.advanced(stamp + 1, added, &ended),
        };
        let mut cache = self.lock();
        cache.insert(group.to_string(), Arc::new(next));
        Some(stamp + 1)
    }

    /// Drop the copies of every group not in `live`.
    pub(crate) fn retain(&self, live: &std::collections::HashSet<&str>) {
        self.lock().retain(|group, _| live.contains(group.as_str()));
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Arc<Holdings>>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cohort_model::Source;

    fn held(id: i64) -> Held {
        Held {
            id,
            source: Source::Rule,
            start: 0,
            end: None,
        }
    }

    #[test]
    fn a_cursor_finds_each_customers_memberships_in_order() {
        let h = Holdings::new(1, vec![(5, held(1)), (2, held(2)), (5, held(3))]);
        let mut c = h.cursor();
        assert!(c.of(0).is_empty());
        assert_eq!(c.of(2), [held(2)]);
        assert!(c.of(3).is_empty());
        assert_eq!(
            c.of(5),
            [held(1), held(3)],
            "the store's order within a customer"
        );
        assert!(c.of(9).is_empty());
    }

    #[test]
    fn a_run_s_changes_carry_the_copy_forward() {
        let h = Holdings::new(1, vec![(1, held(1)), (3, held(2))]);
        let next = h.advanced(2, [(0, held(7)), (3, held(8)), (4, held(9))], &[(3, 2, 50)]);
        assert_eq!(next.stamp, 2);
        assert_eq!(next.positions, [0, 1, 3, 3, 4]);
        let ids: Vec<i64> = next.held.iter().map(|h| h.id).collect();
        assert_eq!(ids, [7, 1, 2, 8, 9]);
        assert_eq!(next.held[2].end, Some(50));
        let again = next.advanced(3, [], &[(3, 2, 60)]);
        assert_eq!(again.held[2].end, Some(50), "an end is never moved later");
    }

    #[test]
    fn changes_made_in_place_are_those_of_a_new_copy() {
        // A small xorshift: the cases differ in where additions fall (before, among
        // and after the memberships held, several at one position) and what ends.
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = |below: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % below
        };
        let mut id = 0;
        for _ in 0..200 {
            let rows: Vec<(u32, Held)> = (0..next(40))
                .map(|_| {
                    id += 1;
                    (next(30) as u32, held(id))
                })
                .collect();
            let before = Holdings::new(1, rows);
            let mut added: Vec<(u32, Held)> = (0..next(12))
                .map(|_| {
                    id += 1;
                    (next(32) as u32, held(id))
                })
                .collect();
            added.sort_by_key(|(at, _)| *at);
            let mut ended: Vec<(u32, i64, Timestamp)> = Vec::new();
            for (at, h) in before.iter() {
                if next(4) == 0 {
                    ended.push((at as u32, h.id, 40 + next(10) as i64));
                }
            }
            let copied = before.advanced(2, added.clone(), &ended);
            let mut changed =
                Holdings::new(1, before.iter().map(|(at, h)| (at as u32, *h)).collect());
            changed.advance(2, &added, &ended);
            assert_eq!(changed.stamp, 2);
            assert_eq!(changed.positions, copied.positions);
            assert_eq!(changed.held, copied.held);
        }
    }
}
