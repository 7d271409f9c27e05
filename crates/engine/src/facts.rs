//! The customer cache: every customer, interned, in column pages.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use cohort_host::Columns;
use cohort_model::Interner;
use cohort_model::{Customer, FieldSet};
use cohort_store::Store;

use crate::{FastMap, PAGE, Result};

/// Every customer, interned, kept between runs so that each run evaluates instead of
/// re-reading and re-parsing the store; refreshed from the writes made since
/// (`Store::customers_since`), by this process or another.
///
/// The facts are kept as the plugins receive them, in columns, `PAGE` customers to a
/// page: a plugin's batch is then a copy of the slices it reads. Kept as records, each
/// batch walked every customer's own lists on the heap, once per condition — half of a
/// rescan's time. A refresh copies only the pages it changes.
#[derive(Clone, Default)]
pub(crate) struct Facts {
    /// The store's number of the latest write this holds; `None` before the first load.
    seq: Option<i64>,
    /// The store's count of erasures when this was loaded: a customer erased since is
    /// still held here, and writes say nothing of what was deleted.
    erasures: i64,
    /// Shared with the changes runs plan for them (see `Policy::group`).
    pub(crate) ids: Vec<Arc<str>>,
    /// Page `p` holds the customers at positions `p * PAGE..`, in `ids` order.
    pub(crate) pages: Vec<Arc<Columns>>,
    /// Where each id is in `ids`.
    pub(crate) index: FastMap<Arc<str>, usize>,
    /// Records that no longer pass the model's checks (a stricter check since they
    /// were stored), by position: undecided, never a "no".
    pub(crate) invalid: FastMap<usize, String>,
    /// Which load this is: positions mean the same customers only within one. A load
    /// from scratch (the first, or after an erasure) is a new one.
    pub(crate) epoch: u64,
    /// How many refreshes changed something since the load.
    pub(crate) generation: u32,
    /// By position, the generation in which the customer was last written: what
    /// changed since a group's last decisions (see `decided.rs`).
    pub(crate) written: Vec<u32>,
    /// The positions each of the latest refreshes wrote, with the fields that changed
    /// in each, by generation, so that a rescan finds what changed without a look at
    /// every position; as many as make an eighth of the customers, or `LOG_LEAST`.
    log: std::collections::VecDeque<(u32, Vec<(usize, FieldSet)>)>,
}

/// Entries the log keeps however few the customers (16 bytes each): without the log, a
/// rescan looks at every position and evaluates everyone written since, whatever
/// fields changed.
const LOG_LEAST: usize = 4_096;

/// Loads are numbered across the process, so that two never share an epoch.
static EPOCHS: AtomicU64 = AtomicU64::new(1);

impl Facts {
    /// New customers at the end: the last page filled first, then new pages. A batch
    /// that starts a page and fits in it becomes that page as it is, as every batch of
    /// a first load does.
    fn append(&mut self, ids: Vec<Arc<str>>, added: Columns) {
        let mut from = 0;
        while from < added.len() {
            let at = self.ids.len() + from;
            if at.is_multiple_of(PAGE) && from == 0 && added.len() <= PAGE {
                self.pages.push(Arc::new(added));
                break;
            }
            if at.is_multiple_of(PAGE) {
                self.pages.push(Arc::default());
            }
            let take = (PAGE - at % PAGE).min(added.len() - from);
            if let Some(last) = self.pages.last_mut() {
                // A copy if a run still reads the page.
                let page = Arc::make_mut(last);
                page.push_rows(&added, from..from + take);
                page.trim();
            }
            from += take;
        }
        for id in ids {
            self.index.insert(id.clone(), self.ids.len());
            self.ids.push(id);
            self.written.push(self.generation);
        }
    }
}

impl Facts {
    /// The positions written after `generation` with a change in a field of `reads`,
    /// if the log still goes back that far: a rule whose plugins read none of the
    /// fields that changed decides as before (a plugin is given only the fields it
    /// declared it reads).
    pub(crate) fn written_since(&self, generation: u32, reads: FieldSet) -> Option<Vec<usize>> {
        if generation >= self.generation {
            return Some(Vec::new());
        }
        let first = self.log.front()?.0;
        (first <= generation + 1).then(|| {
            self.log
                .iter()
                .filter(|(g, _)| *g > generation)
                .flat_map(|(_, written)| written.iter())
                .filter(|(_, changed)| changed.meets(reads))
                .map(|&(at, _)| at)
                .collect()
        })
    }

    /// Log the positions the refresh that made this generation wrote, with the fields
    /// that changed in each, and let go the oldest entries past an eighth of the
    /// customers (or `LOG_LEAST`).
    fn log_written(&mut self, positions: Vec<(usize, FieldSet)>) {
        self.log.push_back((self.generation, positions));
        let mut held: usize = self.log.iter().map(|(_, p)| p.len()).sum();
        while held > (self.ids.len() / 8).max(LOG_LEAST) {
            let Some((_, oldest)) = self.log.pop_front() else {
                break;
            };
            held -= oldest.len();
        }
    }

    /// The customers at `positions` (ascending), as facts of their own: positions
    /// renumbered from 0, pages filled again.
    pub(crate) fn subset(&self, positions: &[usize]) -> Facts {
        let mut out = Facts::default();
        let mut page = Columns::default();
        let mut i = 0;
        while i < positions.len() {
            // A stretch of consecutive positions on one page is copied at once.
            let start = positions[i];
            let mut end = start + 1;
            let room = PAGE - page.len();
            while i + (end - start) < positions.len()
                && positions[i + (end - start)] == end
                && !end.is_multiple_of(PAGE)
                && end - start < room
            {
                end += 1;
            }
            page.push_rows(
                &self.pages[start / PAGE],
                start % PAGE..(end - 1) % PAGE + 1,
            );
            for at in start..end {
                let local = out.ids.len();
                if let Some(problem) = self.invalid.get(&at) {
                    out.invalid.insert(local, problem.clone());
                }
                out.index.insert(self.ids[at].clone(), local);
                out.ids.push(self.ids[at].clone());
            }
            if page.len() == PAGE {
                out.pages.push(Arc::new(std::mem::take(&mut page)));
            }
            i += end - start;
        }
        if !page.is_empty() {
            out.pages.push(Arc::new(page));
        }
        out
    }
}

/// The latest subsets of the facts rescans evaluated, shared by the rescans of the
/// other groups that evaluate the same customers: after a refresh, those are the
/// customers written since in a field the group's rule reads, for every group whose
/// verdicts did not run out. Copying them out of the pages once per group was a third
/// of a rescan's time. Rules that read different fields evaluate different customers,
/// so several subsets are kept, as many as hold an eighth of the customers together.
///
/// The snapshot is held weakly, as `IdOrder` holds it: held strongly, the next refresh
/// would find it shared and copy it whole.
#[derive(Default)]
pub(crate) struct Subsets(Mutex<Vec<Subset>>);

/// A snapshot of the facts, positions in it, and those positions' customers.
type Subset = (std::sync::Weak<Facts>, Vec<usize>, Arc<Facts>);

impl Subsets {
    /// `facts.subset(positions)`, made once for each snapshot of the facts and set of
    /// positions. Only small subsets are kept: a large one would hold a copy of most
    /// of the cache.
    pub(crate) fn of(&self, facts: &Arc<Facts>, positions: &[usize]) -> Arc<Facts> {
        let of_facts = |(f, _, _): &Subset| std::ptr::eq(f.as_ptr(), Arc::as_ptr(facts));
        if let Some((_, _, subset)) = self
            .lock()
            .iter()
            .find(|kept| of_facts(kept) && kept.1 == positions)
        {
            return subset.clone();
        }
        let subset = Arc::new(facts.subset(positions));
        let most = facts.ids.len() / 8;
        if positions.len() <= most {
            let mut kept = self.lock();
            kept.retain(of_facts);
            let mut held: usize = kept.iter().map(|k| k.1.len()).sum();
            while held + positions.len() > most {
                held -= kept.remove(0).1.len();
            }
            kept.push((Arc::downgrade(facts), positions.to_vec(), subset.clone()));
        }
        subset
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Subset>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What one batch of customer records read from the store makes.
#[derive(Default)]
struct Batch {
    /// Customers held already, by position, as they are now.
    replaced: Vec<(usize, Customer)>,
    /// New customers, in write order.
    ids: Vec<Arc<str>>,
    added: Columns,
    /// Records that do not pass the model's checks.
    problems: Vec<(Place, String)>,
}

/// Where a customer of a [`Batch`] goes among the facts.
#[derive(Copy, Clone)]
enum Place {
    /// At its position already.
    Held(usize),
    /// The batch's n-th new customer: its position is known once the batches before
    /// it are in.
    New(usize),
}

/// `work` over `items`, in as many shares as there are `cores`, each on a thread of
/// its own; on the calling thread when there are fewer than two items per core (a
/// refresh after a registration: not worth a thread).
fn share_out<T: Send>(items: &mut [T], cores: usize, work: impl Fn(&mut [T]) + Sync) {
    if items.len() < 2 * cores {
        work(items);
        return;
    }
    let size = items.len().div_ceil(cores);
    std::thread::scope(|scope| {
        for share in items.chunks_mut(size) {
            scope.spawn(|| work(share));
        }
    });
}

/// A page of the cache to be written again, its changed rows (by position), and where
/// to say which fields of each changed.
type PageRewrite<'a> = (
    &'a mut Arc<Columns>,
    &'a [(usize, Customer)],
    &'a mut [FieldSet],
);

/// The customer cache, shared by every run.
#[derive(Default)]
pub(crate) struct FactsCache(Mutex<Arc<Facts>>);

impl FactsCache {
    /// The customer cache, brought up to date with `store`, interning with `interner`.
    ///
    /// Runs share one snapshot; a refresh while a run holds it copies the snapshot
    /// instead of changing it under the run.
    pub(crate) fn current(&self, store: &dyn Store, interner: &Interner) -> Result<Arc<Facts>> {
        let mut facts = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        // Read before the writes, so that an erasure between the two is seen next time.
        let erasures = store.erasures_stamp()?;
        if erasures != facts.erasures || facts.epoch == 0 {
            // Erasures are rare: loading everything again is simpler than taking
            // customers out of the pages, and the same whoever erased them.
            *facts = Arc::new(Facts {
                erasures,
                epoch: EPOCHS.fetch_add(1, Ordering::Relaxed),
                ..Facts::default()
            });
        }
        let held: &Facts = &facts;
        // Interned as read, page by page on as many threads as the store parses with,
        // and a new customer goes straight into its page: a first load never holds a
        // million parsed records. Put back in write order below.
        let batches: Mutex<Vec<(usize, Batch)>> = Mutex::default();
        // A first load in batches of a page, each of which becomes its page; a refresh
        // in smaller ones, so that parsing them overlaps reading the rest (a refresh
        // after 1% of a million changed is one page and a bit).
        let batch = if facts.seq.is_none() { PAGE } else { PAGE / 8 };
        let seq = store.customers_since(facts.seq, batch, &|number, records| {
            let mut memo = interner.memo();
            let mut batch = Batch::default();
            for record in records {
                let customer = record.intern_with(|text| memo.intern(text));
                let (customer, problem) = match customer {
                    Ok(customer) => (customer, None),
                    Err(e) => (Customer::default(), Some(e.to_string())),
                };
                if let Some(&at) = held.index.get(record.id.as_str()) {
                    batch.problems.extend(problem.map(|p| (Place::Held(at), p)));
                    batch.replaced.push((at, customer));
                } else {
                    let place = Place::New(batch.ids.len());
                    batch.problems.extend(problem.map(|p| (place, p)));
                    batch.ids.push(record.id.into());
                    batch.added.push(std::slice::from_ref(&customer));
                }
            }
            batch.added.trim();
            let mut batches = batches.lock().unwrap_or_else(PoisonError::into_inner);
            batches.push((number, batch));
        })?;
        let mut batches = batches.into_inner().unwrap_or_else(PoisonError::into_inner);
        let unchanged = batches
            .iter()
            .all(|(_, b)| b.replaced.is_empty() && b.ids.is_empty());
        if unchanged && facts.seq.is_some() {
            return Ok(facts.clone());
        }
        batches.sort_by_key(|(number, _)| *number);
        let f = Arc::make_mut(&mut facts);
        f.generation += 1;
        let new: usize = batches.iter().map(|(_, b)| b.ids.len()).sum();
        f.ids.reserve(new);
        f.index.reserve(new);
        let held_before = f.ids.len();
        let mut replaced: Vec<(usize, Customer)> = Vec::new();
        let mut problems: Vec<(usize, String)> = Vec::new();
        for (_, batch) in batches {
            let first = f.ids.len();
            problems.extend(batch.problems.into_iter().map(|(place, p)| match place {
                Place::Held(at) => (at, p),
                Place::New(i) => (first + i, p),
            }));
            replaced.extend(batch.replaced);
            f.append(batch.ids, batch.added);
        }
        replaced.sort_by_key(|(at, _)| *at);
        // Each changed page has its rows replaced in place, and only a list's column
        // whose rows change length is written again, into a spare's column that then
        // takes its place: a refresh that touches every page (1% of a million
        // customers, at random) neither copies the whole cache nor allocates it again.
        // A page a run still reads is copied, into a spare page. The pages are shared
        // out among the cores: nothing else runs meanwhile.
        let changed: Vec<&[(usize, Customer)]> =
            replaced.chunk_by(|a, b| a.0 / PAGE == b.0 / PAGE).collect();
        let mut wanted = changed.iter().map(|rows| rows[0].0 / PAGE).peekable();
        let mut fields = vec![FieldSet::empty(); replaced.len()];
        let mut unsaid: &mut [FieldSet] = &mut fields;
        let mut pages: Vec<PageRewrite<'_>> = Vec::new();
        for (p, page) in f.pages.iter_mut().enumerate() {
            if wanted.next_if_eq(&p).is_some() {
                let rows = changed[pages.len()];
                let (said, rest) = std::mem::take(&mut unsaid).split_at_mut(rows.len());
                unsaid = rest;
                pages.push((page, rows, said));
            }
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        share_out(&mut pages, cores, |share| {
            let mut spare = Columns::default();
            for (page, rows, fields) in share {
                let rows = rows.iter().map(|(at, c)| (at % PAGE, c));
                match Arc::get_mut(page) {
                    Some(page) => fields.copy_from_slice(&page.replace_rows(rows, &mut spare)),
                    // A run still reads the page: it keeps the old one, and the new one
                    // is a copy, whose rows count as changed in every field.
                    None => {
                        page.with_rows_into(rows, &mut spare);
                        **page = Arc::new(std::mem::take(&mut spare));
                        fields.fill(FieldSet::all());
                    }
                }
            }
        });
        // A record that fails the model's checks, or failed them, is undecided whatever
        // its fields: it counts as changed in all of them. So does a new customer.
        for ((at, _), fields) in replaced.iter().zip(&mut fields) {
            if f.invalid.remove(at).is_some() {
                *fields = FieldSet::all();
            }
            f.written[*at] = f.generation;
        }
        let mut written: Vec<(usize, FieldSet)> =
            replaced.iter().map(|(at, _)| *at).zip(fields).collect();
        for (at, _) in &problems {
            if let Ok(i) = written.binary_search_by_key(at, |&(a, _)| a) {
                written[i].1 = FieldSet::all();
            }
        }
        written.extend((held_before..f.ids.len()).map(|at| (at, FieldSet::all())));
        f.log_written(written);
        f.invalid.extend(problems);
        f.seq = Some(seq);
        Ok(facts.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cohort_model::Field;
    use cohort_store::Customers;

    fn facts(n: usize) -> Arc<Facts> {
        let mut f = Facts::default();
        let ids: Vec<Arc<str>> = (0..n)
            .map(|i| Arc::from(format!("c{i}").as_str()))
            .collect();
        let mut columns = Columns::default();
        columns.push(&vec![Customer::default(); n]);
        f.append(ids, columns);
        Arc::new(f)
    }

    #[test]
    fn groups_that_evaluate_the_same_customers_share_their_subset() {
        let subsets = Subsets::default();
        let all = facts(100);
        let first = subsets.of(&all, &[3, 50, 51]);
        assert_eq!(first.ids.len(), 3);
        assert_eq!(&*first.ids[1], "c50");
        assert!(Arc::ptr_eq(&first, &subsets.of(&all, &[3, 50, 51])));
        let second = subsets.of(&all, &[3, 50]);
        assert!(!Arc::ptr_eq(&first, &second));
        // Groups whose rules read other fields evaluate other customers: both are kept.
        assert!(Arc::ptr_eq(&first, &subsets.of(&all, &[3, 50, 51])));
        assert!(Arc::ptr_eq(&second, &subsets.of(&all, &[3, 50])));
        // Another snapshot of the facts is other customers, whatever their positions.
        let refreshed = facts(100);
        let again = subsets.of(&refreshed, &[3, 50]);
        assert!(!Arc::ptr_eq(&again, &subsets.of(&all, &[3, 50])));
        // Most of the cache is not kept.
        let most: Vec<usize> = (0..60).collect();
        let big = subsets.of(&all, &most);
        assert!(!Arc::ptr_eq(&big, &subsets.of(&all, &most)));
    }

    #[test]
    fn the_log_says_what_each_refresh_wrote_while_it_goes_back_far_enough() {
        let all = FieldSet::all();
        let every = |positions: &[usize]| positions.iter().map(|&at| (at, all)).collect();
        let mut f = Arc::unwrap_or_clone(facts(80));
        assert_eq!(
            f.written_since(0, all),
            Some(Vec::new()),
            "nothing since now"
        );
        f.generation = 1;
        f.log_written(every(&[3, 7]));
        f.generation = 2;
        f.log_written(every(&[7, 9]));
        let mut since = f.written_since(0, all).expect("logged from generation 1");
        since.sort_unstable();
        assert_eq!(since, [3, 7, 7, 9]);
        assert_eq!(f.written_since(1, all), Some(vec![7, 9]));
        assert_eq!(f.written_since(2, all), Some(Vec::new()));
        // Past `LOG_LEAST` entries (an eighth of 80 customers is fewer), the oldest go:
        // what they said can no longer be told.
        f.generation = 3;
        let third: Vec<usize> = (20..20 + LOG_LEAST - 3).collect();
        f.log_written(every(&third));
        assert_eq!(
            f.written_since(0, all),
            None,
            "generation 1's entry is gone"
        );
        let mut since_1 = vec![7, 9];
        since_1.extend(&third);
        assert_eq!(f.written_since(1, all), Some(since_1));
        assert_eq!(f.written_since(2, all), Some(third));
    }

    /// A rule sees a customer written since only if a field its plugins read changed.
    #[test]
    fn the_log_tells_each_rule_the_writes_to_the_fields_it_reads() {
        let country = FieldSet::empty().with(Field::Country);
        let subscriptions = FieldSet::empty().with(Field::Subscriptions);
        let both = country.union(subscriptions);
        let mut f = Arc::unwrap_or_clone(facts(80));
        f.generation = 1;
        f.log_written(vec![
            (3, country),
            (5, subscriptions),
            (7, both),
            (9, FieldSet::empty()),
        ]);
        assert_eq!(f.written_since(0, country), Some(vec![3, 7]));
        assert_eq!(f.written_since(0, subscriptions), Some(vec![5, 7]));
        let tags = FieldSet::empty().with(Field::Tags);
        assert_eq!(f.written_since(0, tags), Some(Vec::new()));
        assert_eq!(f.written_since(0, FieldSet::all()), Some(vec![3, 5, 7]));
    }

    /// A refresh says which fields each customer's write changed (none for a write of
    /// the same facts), and every field of a new customer, of a record that fails or
    /// failed the model's checks, and of a row in a page a run still holds (copied, not
    /// compared).
    #[test]
    fn a_refresh_logs_the_fields_each_write_changed() {
        let store = cohort_store_sqlite::SqliteStore::in_memory().expect("store");
        let record = |id: &str, json: serde_json::Value| {
            let mut value = json;
            value["id"] = serde_json::json!(id);
            serde_json::from_value::<cohort_model::CustomerRecord>(value).expect("record")
        };
        let first = [
            record("a", serde_json::json!({"country": "DE", "tags": ["x"]})),
            record("b", serde_json::json!({"country": "FR"})),
            record("c", serde_json::json!({"country": "US"})),
            record("e", serde_json::json!({})),
        ];
        store.upsert_customers(&first, 0).expect("load");
        let interner = Interner::new();
        let cache = FactsCache::default();
        let loaded = cache.current(&store, &interner).expect("load");
        let generation = loaded.generation;
        drop(loaded);
        // `e` as the store takes it but the model refuses (no country code): its row is
        // the empty customer it was, yet it must be decided again (undecided).
        store
            .upsert_customers(
                &[
                    record("a", serde_json::json!({"country": "DE", "tags": ["y"]})),
                    record("b", serde_json::json!({"country": "FR"})),
                    record("c", serde_json::json!({"country": "GB"})),
                    record("d", serde_json::json!({})),
                    record("e", serde_json::json!({"country": "Germany"})),
                ],
                1,
            )
            .expect("update");
        let now = cache.current(&store, &interner).expect("refresh");
        let at = |ids: &[&str]| {
            let mut positions: Vec<usize> = ids.iter().map(|id| now.index[*id]).collect();
            positions.sort_unstable();
            positions
        };
        let since = |facts: &Facts, generation, reads| {
            let mut positions = facts.written_since(generation, reads).expect("logged");
            positions.sort_unstable();
            positions
        };
        let tags = FieldSet::empty().with(Field::Tags);
        let country = FieldSet::empty().with(Field::Country);
        assert_eq!(since(&now, generation, tags), at(&["a", "d", "e"]));
        assert_eq!(since(&now, generation, country), at(&["c", "d", "e"]));
        assert_eq!(
            since(&now, generation, FieldSet::all()),
            at(&["a", "c", "d", "e"]),
            "b is as it was"
        );

        // A run holds `now` while `b` is written again as it was: its page is copied,
        // and its row counts as changed in every field.
        store
            .upsert_customers(&[record("b", serde_json::json!({"country": "FR"}))], 2)
            .expect("again");
        let later = cache.current(&store, &interner).expect("refresh");
        assert_eq!(since(&later, now.generation, tags), at(&["b"]));
        drop((now, later));

        // `e` mended to the empty customer its row already holds: changed in every
        // field, since it was undecided.
        let before = cache.current(&store, &interner).expect("as is").generation;
        store
            .upsert_customers(&[record("e", serde_json::json!({}))], 3)
            .expect("mended");
        let mended = cache.current(&store, &interner).expect("refresh");
        assert_eq!(since(&mended, before, tags), [mended.index["e"]]);
    }

    #[test]
    fn work_shared_out_does_every_item_once_on_a_thread_per_core() {
        let threads = Mutex::new(std::collections::HashSet::new());
        let work = |share: &mut [u32]| {
            threads
                .lock()
                .expect("threads")
                .insert(std::thread::current().id());
            for item in share {
                *item += 1;
            }
        };
        let mut items = [0u32; 10];
        share_out(&mut items, 3, work);
        assert_eq!(items, [1; 10]);
        assert_eq!(
            threads.lock().expect("threads").len(),
            3,
            "10 items on 3 cores"
        );
        assert!(
            !threads
                .lock()
                .expect("threads")
                .contains(&std::thread::current().id())
        );

        threads.lock().expect("threads").clear();
        let mut few = [0u32; 5];
        share_out(&mut few, 3, work);
        assert_eq!(few, [1; 5]);
        assert_eq!(
            *threads.lock().expect("threads"),
            [std::thread::current().id()].into(),
            "fewer than two a core: on the calling thread"
        );
    }
}
