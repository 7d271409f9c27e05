//! Each group's last decisions, so that a rescan evaluates only what can have changed.
//!
//! A customer's decision depends on its facts, the group's rule, the plugins, and the
//! as-of time; 0.3.0 plugins say until when a verdict holds if the facts stay. A run
//! keeps, per customer position, the decision it made and the earliest time one of
//! its verdicts runs out. The next run of the same rule on the same plugins evaluates
//! again only the customers written since in a field its plugins read (a plugin is
//! given no other), those whose time ran out by its as-of time, those undecided or
//! with a failed verdict (so that every failure is still counted in every run), those
//! who joined or left a group the rule refers to, and new ones; the rest keep their
//! decision. Planning still visits every customer, so pins, manual memberships,
//! windows and exclusive sets act as in a full run; only where the memberships the
//! last plan started from have not moved does a run plan just the customers decided
//! again or pinned since (`Planned`).

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use cohort_evaluator::Decision;
use cohort_model::{FOREVER, FieldSet, Group, Timestamp, Verdicts};

use crate::facts::Facts;
use crate::referred::{Members, Referred};

/// A decision as kept: what it was, and whether a verdict behind it failed.
const MEMBER: u8 = 1;
const NOT_MEMBER: u8 = 0;
const UNDECIDED: u8 = 2;
/// Set beside the decision when some verdict behind it was a failure, decided or not.
const FAILED: u8 = 0x80;

// A rule's conditions' identity, one entry per condition: what they are made of beyond
// the rule. Decisions stand only on the same identity, and so do a run's kept conditions
// (see `plugins.rs`).

/// A group condition's entry: its answers are its group's members, which a run compares
/// itself.
pub(crate) fn group_identity(group: &str) -> String {
    format!("group {group}")
}

/// A plugin condition's entry: its component's digest, and what its data directory
/// holds (a new GeoIP database is new answers).
pub(crate) fn plugin_identity(sha256: &str, data_dir: Option<&Path>) -> String {
    let mut id = sha256.to_string();
    if let Some(dir) = data_dir {
        id.push_str(&directory_listing(dir));
    }
    id
}

/// The names, sizes and modification times of what `dir` holds, one level deep.
fn directory_listing(dir: &Path) -> String {
    let mut entries: Vec<String> = std::fs::read_dir(dir)
        .map(|read| {
            read.filter_map(|e| e.ok())
                .map(|e| {
                    let meta = e.metadata().ok();
                    format!(
                        "{:?}:{:?}:{:?}",
                        e.file_name(),
                        meta.as_ref().map(std::fs::Metadata::len),
                        meta.and_then(|m| m.modified().ok())
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    entries.sort();
    format!("|{}|{}", dir.display(), entries.join(","))
}

/// One group's decisions, as of one run.
pub(crate) struct Decided {
    definition: Group,
    conditions: Vec<String>,
    epoch: u64,
    generation: u32,
    as_of: Timestamp,
    /// By position: the decision and `FAILED`.
    codes: Vec<u8>,
    /// By position: until when the decision holds; empty while every one holds
    /// forever.
    until: Vec<Timestamp>,
    /// How many codes are which (see `Tally`).
    tally: Tally,
    /// The members of the groups the rule refers to, as the decisions saw them.
    referred: Referred,
    /// What the run planned from beside the decisions.
    pub(crate) planned: Planned,
}

/// What a run planned from beside its decisions, so that the next run can tell whom
/// planning again could change anything for. A plan is a function of each customer's
/// decision, memberships active at the as-of time, pin and rivals; once its changes are
/// written, planning the same again changes nothing. So a run over the memberships the
/// last run left (the store's stamp for the group unmoved since), with no window
/// opening or closing by its as-of time, plans only the customers it decided again and
/// those pinned or unpinned since: at a million customers, planning everyone was most
/// of a rescan with nothing changed, and a tenth of one after 1% changed. Exclusive
/// sets are left out: their rivals are other groups' memberships.
pub(crate) struct Planned {
    /// The customers pinned out of the group.
    pub(crate) pinned: Vec<usize>,
    /// The earliest start or end of the group's memberships after the as-of time: then
    /// a window opens or closes, and a plan may differ.
    pub(crate) next_window: Timestamp,
    /// The group's membership stamp once the run's changes were written (and kept by
    /// the memberships cache), which a plan then starts from; `UNSETTLED` until then,
    /// and for good if the write failed or another writer came between.
    settled: AtomicI64,
}

/// `Planned::settled` of a run not written.
const UNSETTLED: i64 = i64::MIN;

impl Planned {
    pub(crate) fn new(pinned: Vec<usize>, next_window: Timestamp) -> Self {
        Planned {
            pinned,
            next_window,
            settled: AtomicI64::new(UNSETTLED),
        }
    }

    /// Whether planning over memberships at `stamp` as of `as_of` would change nothing
    /// for a customer whose decision and pin are the same.
    pub(crate) fn stands(&self, stamp: i64, as_of: Timestamp) -> bool {
        self.settled.load(Ordering::Acquire) == stamp && self.next_window > as_of
    }
}

impl Decided {
    /// Whether these decisions were made on `group`'s definition as it is, over the
    /// load of the customers `facts` is, as of no later than `as_of` (a verdict says
    /// how long it holds, not since when).
    fn made_for(&self, group: &Group, facts: &Facts, as_of: Timestamp) -> bool {
        self.definition == *group && self.epoch == facts.epoch && self.as_of <= as_of
    }
}

/// A page's verdict columns, with what every row of it shares worked out once: most
/// pages have no failure and no verdict that runs out, and then a row needs no look
/// beyond its decision.
pub(crate) struct Page<'a> {
    columns: &'a [Verdicts],
    failed: bool,
    timed: bool,
}

impl<'a> Page<'a> {
    pub(crate) fn of(columns: &'a [Verdicts]) -> Self {
        Page {
            columns,
            failed: columns.iter().any(|c| !c.errors().is_empty()),
            timed: !columns.iter().all(Verdicts::hold_forever),
        }
    }
}

/// How many of a run's decisions are members, undecided and failed, and the earliest
/// time one of them runs out (no later than that: a decision made again later may
/// leave it early). Kept as decisions are set, so that a rescan that decides a few
/// customers again neither counts every position nor looks at every position for a
/// failure or a time run out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Tally {
    members: usize,
    undecided: usize,
    failed: usize,
    earliest: Timestamp,
}

impl Tally {
    fn of(codes: &[u8], until: &[Timestamp]) -> Self {
        let mut tally = Tally {
            members: 0,
            undecided: 0,
            failed: 0,
            earliest: until.iter().copied().min().unwrap_or(FOREVER),
        };
        for &code in codes {
            tally.count(code, 1);
        }
        tally
    }

    /// Count `n` more (`1`) or fewer (`-1`) of `code`.
    fn count(&mut self, code: u8, n: isize) {
        let add = |c: &mut usize| *c = c.wrapping_add_signed(n);
        match code & !FAILED {
            MEMBER => add(&mut self.members),
            NOT_MEMBER => {}
            _ => add(&mut self.undecided),
        }
        if code & FAILED != 0 {
            add(&mut self.failed);
        }
    }
}

/// The decisions a run is making, position by position: evaluated, or kept from the
/// group's last run where they stand. What the run plans from, and keeps for the next.
pub(crate) struct Deciding {
    codes: Vec<u8>,
    until: Vec<Timestamp>,
    tally: Tally,
}

impl Deciding {
    /// For `n` positions, every one to be set.
    pub(crate) fn new(n: usize) -> Self {
        Deciding {
            codes: vec![UNDECIDED | FAILED; n],
            until: Vec::new(),
            tally: Tally {
                members: 0,
                undecided: n,
                failed: n,
                earliest: FOREVER,
            },
        }
    }

    /// `previous`'s decisions for the first `limit` positions, and the positions among
    /// them that must be evaluated as of `as_of` over `facts`, with `referred` the
    /// members of the groups the rule refers to now and `reads` the fields its plugins
    /// read: written since in one of those fields, new, undecided or failed, with a
    /// verdict that ran out, or in or out of a referred group since. Their codes are to
    /// be set.
    pub(crate) fn from_previous(
        previous: Arc<Decided>,
        facts: &Facts,
        limit: usize,
        as_of: Timestamp,
        referred: &Referred,
        reads: FieldSet,
    ) -> (Deciding, Vec<usize>) {
        let generation = previous.generation;
        let mut moved = Members::default();
        for (group, now) in referred {
            // The same rule refers to the same groups: `usable` checked the definition.
            if let Some(then) = previous.referred.get(group) {
                then.mark_differences(now, &mut moved);
            }
        }
        // Taken over, not copied, when the cache gave it up: at a million customers a
        // copy is megabytes of fresh memory per group and rescan.
        let (mut codes, mut until, mut tally) = match Arc::try_unwrap(previous) {
            Ok(previous) => (previous.codes, previous.until, previous.tally),
            Err(shared) => (shared.codes.clone(), shared.until.clone(), shared.tally),
        };
        let kept = codes.len().min(limit);
        if limit < codes.len() {
            codes.truncate(limit);
            until.truncate(limit);
            tally = Tally::of(&codes, &until);
        }
        // The new positions: undecided until set, which counts them as failed too.
        let failed_before = tally.failed;
        tally.count(UNDECIDED | FAILED, (limit - kept) as isize);
        codes.resize(limit, UNDECIDED | FAILED);
        if !until.is_empty() {
            until.resize(limit, FOREVER);
        }
        let written = facts.written_since(generation, reads);
        let stale = match written {
            // Nothing failed or ran out: the stale are the new, those written since and
            // those a referred group took in or let go, without a look at everyone else.
            Some(written) if failed_before == 0 && tally.earliest > as_of => {
                let mut stale: Vec<usize> = written
                    .into_iter()
                    .chain(moved.positions())
                    .filter(|&at| at < kept)
                    .chain(kept..limit)
                    .collect();
                stale.sort_unstable();
                stale.dedup();
                stale
            }
            // Otherwise one pass over flat arrays.
            _ => {
                let mut stale = Vec::new();
                for (at, (&code, &written)) in codes.iter().zip(&facts.written).enumerate() {
                    let ran_out = until.get(at).is_some_and(|&u| u <= as_of);
                    if code & FAILED != 0 || written > generation || ran_out || moved.contains(at) {
                        stale.push(at);
                    }
                }
                // What runs out next among the decisions kept; those made again count
                // as they are set.
                tally.earliest = until
                    .iter()
                    .copied()
                    .filter(|&u| u > as_of)
                    .min()
                    .unwrap_or(FOREVER);
                stale
            }
        };
        (
            Deciding {
                codes,
                until,
                tally,
            },
            stale,
        )
    }

    /// The decision of position `at`, evaluated from row `i` of a page's verdicts.
    pub(crate) fn set(&mut self, at: usize, decision: Decision, page: &Page<'_>, i: usize) {
        let failed = page.failed
            && page
                .columns
                .iter()
                .any(|c| matches!(c.get(i), Some(cohort_model::VerdictRef::Error(_))));
        let until = if page.timed {
            page.columns
                .iter()
                .map(|c| c.until(i))
                .min()
                .unwrap_or(FOREVER)
        } else {
            FOREVER
        };
        let code = match decision {
            Decision::Member => MEMBER,
            Decision::NotMember => NOT_MEMBER,
            Decision::Undecided => UNDECIDED | FAILED,
        };
        let code = if failed { code | FAILED } else { code };
        self.tally.count(self.codes[at], -1);
        self.tally.count(code, 1);
        self.codes[at] = code;
        self.tally.earliest = self.tally.earliest.min(until);
        // Times are kept from the first that is not forever on.
        if until != FOREVER || !self.until.is_empty() {
            self.until.resize(self.codes.len(), FOREVER);
            self.until[at] = until;
        }
    }

    /// The decision of position `at`.
    pub(crate) fn decision(&self, at: usize) -> Decision {
        match self.codes[at] & !FAILED {
            MEMBER => Decision::Member,
            NOT_MEMBER => Decision::NotMember,
            _ => Decision::Undecided,
        }
    }

    /// How many positions are (members, undecided).
    pub(crate) fn counts(&self) -> (u64, u64) {
        (self.tally.members as u64, self.tally.undecided as u64)
    }
}

/// Every group's last decisions.
#[derive(Default)]
pub(crate) struct DecidedCache(Mutex<HashMap<String, Arc<Decided>>>);

impl DecidedCache {
    /// `group`'s last decisions, if a run of its rule as it is now, on the conditions
    /// `identity` describes, over `facts`, as of `as_of`, may build on them: the same
    /// definition, plugins and load of the customers, and no earlier as-of time (a
    /// verdict says how long it holds, not since when). A run that will keep its own
    /// (`take`) takes them out of the cache, so that it can build on them in place; one
    /// that fails leaves the next run to decide everyone afresh.
    pub(crate) fn usable(
        &self,
        group: &Group,
        identity: &[String],
        facts: &Facts,
        as_of: Timestamp,
        take: bool,
    ) -> Option<Arc<Decided>> {
        let mut kept = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let fits = kept
            .get(&group.id)
            .is_some_and(|d| d.made_for(group, facts, as_of) && d.conditions == identity);
        match (fits, take) {
            (false, _) => None,
            (true, true) => kept.remove(&group.id),
            (true, false) => kept.get(&group.id).cloned(),
        }
    }

    /// Whether `group`'s last decisions were made on its definition as it is now, over
    /// `facts`, as of no later than `as_of`: a run then likely evaluates only what
    /// changed (unless its plugins changed too, which only preparing them tells).
    pub(crate) fn kept_for(&self, group: &Group, facts: &Facts, as_of: Timestamp) -> bool {
        let kept = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        kept.get(&group.id)
            .is_some_and(|d| d.made_for(group, facts, as_of))
    }

    /// Drop the decisions of every group not in `live`.
    pub(crate) fn retain(&self, live: &std::collections::HashSet<&str>) {
        let mut kept = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        kept.retain(|group, _| live.contains(group.as_str()));
    }

    /// Keep what a run over `facts` as of `as_of` decided, with the members of the
    /// groups its rule refers to that it decided with and what else it planned from;
    /// the run tells them through the handle once its changes are written (`settled`).
    #[allow(
        clippy::too_many_arguments,
        reason = "each is a part of what is kept, which the run has apart"
    )]
    pub(crate) fn keep(
        &self,
        group: &Group,
        identity: Vec<String>,
        facts: &Facts,
        as_of: Timestamp,
        deciding: Deciding,
        referred: Referred,
        planned: Planned,
    ) -> Weak<Decided> {
        let decided = Decided {
            definition: group.clone(),
            conditions: identity,
            epoch: facts.epoch,
            generation: facts.generation,
            as_of,
            codes: deciding.codes,
            until: deciding.until,
            tally: deciding.tally,
            referred,
            planned,
        };
        let decided = Arc::new(decided);
        let handle = Arc::downgrade(&decided);
        let mut kept = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        kept.insert(group.id.clone(), decided);
        handle
    }
}

/// The decisions of a run whose changes are now written, leaving the group's
/// memberships at `stamp` (see `Planned`). Decisions since replaced are left be.
pub(crate) fn settled(kept: &Weak<Decided>, stamp: i64) {
    if let Some(decided) = kept.upgrade() {
        decided.planned.settled.store(stamp, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One condition's verdicts: `(match, until)` per customer, `None` for a failure.
    fn column(verdicts: &[Option<(bool, Timestamp)>]) -> Vec<Verdicts> {
        let mut v = Verdicts::default();
        for verdict in verdicts {
            match verdict {
                Some((m, until)) => v.extend_batch(&[u8::from(*m)], Vec::new(), &[*until]),
                None => v.extend_batch(&[0], vec![(0, "broken".into())], &[FOREVER]),
            }
        }
        vec![v]
    }

    #[test]
    fn times_are_kept_from_the_first_that_runs_out_even_at_the_first_position() {
        let columns = column(&[Some((false, 50)), Some((true, FOREVER)), None]);
        let page = Page::of(&columns);
        let mut d = Deciding::new(3);
        d.set(0, Decision::NotMember, &page, 0);
        d.set(1, Decision::Member, &page, 1);
        d.set(2, Decision::Undecided, &page, 2);
        assert_eq!(d.until, [50, FOREVER, FOREVER]);
        assert_eq!(d.codes, [NOT_MEMBER, MEMBER, UNDECIDED | FAILED]);
        assert_eq!(d.counts(), (1, 1));
        assert_eq!(d.tally, Tally::of(&d.codes, &d.until), "counted as set");
        assert_eq!(d.tally.earliest, 50);
        // Set again: a member no more, and the failure decided after all.
        let columns = column(&[
            Some((true, FOREVER)),
            Some((false, FOREVER)),
            Some((true, 70)),
        ]);
        let page = Page::of(&columns);
        d.set(1, Decision::NotMember, &page, 1);
        d.set(2, Decision::Member, &page, 2);
        assert_eq!(d.counts(), (1, 0));
        assert_eq!(d.tally.failed, 0);
        assert_eq!(d.tally.members, Tally::of(&d.codes, &d.until).members);

        let columns = column(&[None, Some((false, FOREVER))]);
        let page = Page::of(&columns);
        let mut forever = Deciding::new(2);
        forever.set(0, Decision::NotMember, &page, 0);
        forever.set(1, Decision::NotMember, &page, 1);
        assert!(
            forever.until.is_empty(),
            "nothing kept while all hold forever"
        );
        assert_eq!(forever.codes, [NOT_MEMBER | FAILED, NOT_MEMBER]);
    }
}
