//! The membership engine: the one place where plugins, rules, the planner and the
//! store meet.
//!
//! It validates what operators save (groups through their plugins' configuration
//! checks, customers through the model), runs a group's rule over every customer in
//! pages (a manual run, a dry run, or the schedule's), checks a newly registered
//! customer against every on-registration group, and applies each run's changes to the
//! store in one transaction, so that a run interrupted at any point leaves the store as
//! it was and a rerun converges to the same memberships.

mod answers;
mod error;
mod holdings;
mod import;
mod schedule;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use cohort_evaluator::{Compiled, Decision, explain};
use cohort_host::{Columns, Condition, Evaluation, Failure, Host, Plugin, PrepareError};
use cohort_model::{
    Customer, CustomerRecord, Group, Held, Membership, Mode, PluginInfo, Source, State, Timestamp,
    Verdicts,
};
use cohort_planner::{Change, Policy, Rival, Standing, plan, plan_into, rule_actor};
use cohort_store::{Applied, Cause, RunRecord, Store, StoredPlugin};
use holdings::Holdings;
use serde::Serialize;

pub use answers::{MembershipAt, Registration, UndecidedGroup, Why};
pub use error::EngineError;
pub use import::{ImportOptions, ImportReport};
pub use schedule::next_run;

pub type Result<T> = std::result::Result<T, EngineError>;

/// Customers read, evaluated and planned per page of a run: large enough that plugin
/// calls are full batches, small enough that a page's facts stay in cache.
const PAGE: usize = 8192;

/// Why a run happens.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Trigger {
    Manual,
    Periodic,
    OnRegistration,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Manual => "manual",
            Trigger::Periodic => "periodic",
            Trigger::OnRegistration => "on-registration",
        }
    }
}

/// What a run did (or, for a dry run, would do).
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunReport {
    pub run: RunRecord,
    /// The changes, in order. Kept for dry runs and for the caller's report.
    pub changes: Vec<Change>,
    pub seconds: f64,
}

/// A run's evaluation: the changes it plans, each change's customer position, and the
/// memberships they were planned against (to carry forward once applied).
struct Evaluated {
    changes: Vec<Change>,
    change_at: Vec<u32>,
    holdings: Arc<Holdings>,
}

/// A run evaluated, on its way to be written: its position among the runs, its record,
/// what evaluating it gave and when it started.
type ToWrite = (usize, RunRecord, Result<Evaluated>, Instant);

/// A run written, to be settled (see `Engine::settle`).
struct Written {
    run: RunRecord,
    evaluated: Evaluated,
    applied: Applied,
    started: Instant,
}

/// The record of a run about to start.
fn new_run(
    group: &Group,
    trigger: Trigger,
    dry_run: bool,
    actor: &str,
    as_of: Timestamp,
    now: Timestamp,
) -> RunRecord {
    RunRecord {
        group: group.id.clone(),
        trigger: trigger.as_str().into(),
        dry_run,
        actor: actor.into(),
        as_of,
        started_at: now,
        status: "running".into(),
        ..RunRecord::default()
    }
}

/// What plugins have cost since the engine started, for monitoring.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Calls into plugins.
    pub calls: u64,
    /// Customers evaluated, once per condition.
    pub evaluations: u64,
    pub fuel: u64,
    /// Calls that trapped (including running out of fuel, time, memory or stack).
    pub traps: u64,
    /// Calls the plugin answered with an error or a broken reply.
    pub errors: u64,
}

#[derive(Default)]
struct Counters {
    calls: AtomicU64,
    evaluations: AtomicU64,
    fuel: AtomicU64,
    traps: AtomicU64,
    errors: AtomicU64,
}

/// Every customer, interned, kept between runs so that each run evaluates instead of
/// re-reading and re-parsing the store; refreshed from the writes made since
/// (`Store::customers_since`), by this process or another.
///
/// The facts are kept as the plugins receive them, in columns, `PAGE` customers to a
/// page: a plugin's batch is then a copy of the slices it reads. Kept as records, each
/// batch walked every customer's own lists on the heap, once per condition — half of a
/// rescan's time. A refresh copies only the pages it changes.
#[derive(Clone, Default)]
struct Facts {
    /// The store's number of the latest write this holds; `None` before the first load.
    seq: Option<i64>,
    /// Shared with the changes runs plan for them (see `Policy::group`).
    ids: Vec<Arc<str>>,
    /// Page `p` holds the customers at positions `p * PAGE..`, in `ids` order.
    pages: Vec<Arc<Columns>>,
    /// Where each id is in `ids`.
    index: FastMap<Arc<str>, usize>,
    /// Records that no longer pass the model's checks (a stricter check since they
    /// were stored), by position: undecided, never a "no".
    invalid: FastMap<usize, String>,
}

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
                page.shrink_to_fit();
            }
            from += take;
        }
        for id in ids {
            self.index.insert(id.clone(), self.ids.len());
            self.ids.push(id);
        }
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

/// Changes a spare list of `run_groups` may hold room for: about 185 MB each, held
/// until the last run is written. Room for the largest run of a million customers, so
/// that once the first few lists have grown, no run grows one into fresh memory.
const SPARE_MOST: usize = 1 << 21;

/// A hash map for the run's hot lookups: SipHash's protection against chosen keys is
/// not needed for customer ids and positions the store already holds, and it costs
/// several times more per lookup.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// One customer's standing as the store has it.
struct Known {
    memberships: Vec<Membership>,
    excluded: HashSet<String>,
}

/// A loaded plugin and the data directory the operator granted it.
type Granted = (Arc<Plugin>, Option<PathBuf>);

pub struct Engine {
    store: Arc<dyn Store>,
    host: Host,
    /// Loaded plugins by the digest of their bytes (a plugin replaced under the same
    /// version is loaded again).
    plugins: Mutex<HashMap<String, Arc<Plugin>>>,
    /// Prepared conditions of groups that registrations check, by group id, with the
    /// definition they were prepared from: a registration must not pay for preparing.
    prepared: Mutex<HashMap<String, (Group, Vec<Condition>)>>,
    counters: Counters,
    facts: Mutex<Arc<Facts>>,
    /// The groups as last read, with the store's stamp they were read at: registration
    /// must not parse every definition for every customer.
    groups: Mutex<Option<(i64, Arc<Vec<Group>>)>>,
    /// Each group's memberships as runs plan against them, by group id.
    holdings: Mutex<HashMap<String, Arc<Holdings>>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").finish_non_exhaustive()
    }
}

impl Engine {
    pub fn new(store: Arc<dyn Store>, host: Host) -> Self {
        Engine {
            store,
            host,
            plugins: Mutex::new(HashMap::new()),
            prepared: Mutex::new(HashMap::new()),
            counters: Counters::default(),
            facts: Mutex::new(Arc::new(Facts::default())),
            groups: Mutex::new(None),
            holdings: Mutex::new(HashMap::new()),
        }
    }

    /// Every group, parsed again only when a definition has changed.
    fn groups(&self) -> Result<Arc<Vec<Group>>> {
        let stamp = self.store.groups_stamp()?;
        let mut cached = self.groups.lock().unwrap_or_else(PoisonError::into_inner);
        match &*cached {
            Some((at, groups)) if *at == stamp => Ok(groups.clone()),
            _ => {
                let groups = Arc::new(self.store.groups()?);
                *cached = Some((stamp, groups.clone()));
                Ok(groups)
            }
        }
    }

    /// The customer cache, brought up to date with the store.
    ///
    /// Runs share one snapshot; a refresh while a run holds it copies the snapshot
    /// instead of changing it under the run.
    fn facts(&self) -> Result<Arc<Facts>> {
        let mut facts = self.facts.lock().unwrap_or_else(PoisonError::into_inner);
        let held: &Facts = &facts;
        // Interned as read, page by page on as many threads as the store parses with,
        // and a new customer goes straight into its page: a first load never holds a
        // million parsed records. Put back in write order below.
        let batches: Mutex<Vec<(usize, Batch)>> = Mutex::default();
        let seq = self
            .store
            .customers_since(facts.seq, PAGE, &|number, records| {
                let mut memo = self.host.interner().memo();
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
                batch.added.shrink_to_fit();
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
        let new: usize = batches.iter().map(|(_, b)| b.ids.len()).sum();
        f.ids.reserve(new);
        f.index.reserve(new);
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
        for rows in replaced.chunk_by(|a, b| a.0 / PAGE == b.0 / PAGE) {
            let p = rows[0].0 / PAGE;
            f.pages[p] = Arc::new(f.pages[p].with_rows(rows.iter().map(|(at, c)| (at % PAGE, c))));
        }
        for (at, _) in &replaced {
            f.invalid.remove(at);
        }
        f.invalid.extend(problems);
        f.seq = Some(seq);
        Ok(facts.clone())
    }

    /// The group's memberships, from the copy kept since the last run while the
    /// store's stamp says nobody else wrote, otherwise read again.
    fn holdings(&self, group: &str, facts: &Facts) -> Result<Arc<Holdings>> {
        let stamp = self.store.membership_stamp(group)?;
        let cached = self.lock_holdings().get(group).cloned();
        if let Some(h) = cached.filter(|h| h.stamp == stamp) {
            return Ok(h);
        }
        // A membership of a customer the facts do not hold (written since they were
        // read) has nobody to be planned for in this run; a copy without it must not be
        // kept for the next.
        let (mut rows, mut complete) = (Vec::new(), true);
        self.store.group_holdings(
            group,
            &mut |customer, held| match facts.index.get(customer) {
                Some(&at) => rows.push((at as u32, held)),
                None => complete = false,
            },
        )?;
        let holdings = Arc::new(Holdings::new(stamp, rows));
        let mut cache = self.lock_holdings();
        if complete {
            cache.insert(group.to_string(), holdings.clone());
        } else {
            cache.remove(group);
        }
        Ok(holdings)
    }

    /// Keep `holdings` carried forward by a run's applied changes, if the run's write
    /// was the only one since they were read; a run that wrote nothing of the group
    /// leaves the kept copy as it is. `at` is each change's customer position.
    fn advance_holdings(
        &self,
        group: &str,
        holdings: &Holdings,
        changes: &[Change],
        at: &[u32],
        applied: &Applied,
    ) {
        match applied.stamps.iter().find(|(g, _)| g == group) {
            None => return,
            Some(&(_, after)) if after == holdings.stamp + 1 => {}
            Some(_) => {
                self.lock_holdings().remove(group);
                return;
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
        // Merged outside the lock: a run starting meanwhile need not wait for it.
        let next = holdings.advanced(holdings.stamp + 1, added, &ended);
        self.lock_holdings()
            .insert(group.to_string(), Arc::new(next));
    }

    fn lock_holdings(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Holdings>>> {
        self.holdings.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// What plugins have cost since the engine started.
    pub fn stats(&self) -> Stats {
        let c = &self.counters;
        Stats {
            calls: c.calls.load(Ordering::Relaxed),
            evaluations: c.evaluations.load(Ordering::Relaxed),
            fuel: c.fuel.load(Ordering::Relaxed),
            traps: c.traps.load(Ordering::Relaxed),
            errors: c.errors.load(Ordering::Relaxed),
        }
    }

    /// Count an evaluation's cost and keep its verdicts.
    fn tally(&self, evaluation: Evaluation) -> Verdicts {
        let c = &self.counters;
        c.calls
            .fetch_add(u64::from(evaluation.calls), Ordering::Relaxed);
        c.evaluations
            .fetch_add(evaluation.verdicts.len() as u64, Ordering::Relaxed);
        c.fuel.fetch_add(evaluation.fuel_used, Ordering::Relaxed);
        let traps = evaluation
            .failures
            .iter()
            .filter(|f| {
                !matches!(
                    f,
                    Failure::Plugin(_) | Failure::Contract(_) | Failure::GaveUp { .. }
                )
            })
            .count() as u64;
        c.traps.fetch_add(traps, Ordering::Relaxed);
        c.errors
            .fetch_add(evaluation.failures.len() as u64 - traps, Ordering::Relaxed);
        evaluation.verdicts
    }

    /// A stored plugin (the newest added, or the given version) with its
    /// self-description and the contract version it was built against.
    pub fn describe_plugin(
        &self,
        id: &str,
        version: Option<&str>,
    ) -> Result<(StoredPlugin, PluginInfo, &'static str)> {
        let stored = self
            .store
            .plugins()?
            .into_iter()
            .filter(|p| p.id == id && version.is_none_or(|v| v == p.version))
            .max_by_key(|p| p.added_at)
            .ok_or_else(|| EngineError::NotFound {
                what: "plugin",
                id: match version {
                    Some(v) => format!("{id}@{v}"),
                    None => id.to_string(),
                },
            })?;
        let loaded = self.loaded(&stored)?;
        let info = loaded.info().clone();
        Ok((stored, info, loaded.contract_version()))
    }

    pub fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    /// Add (or replace) a plugin: check it against the contract, then keep its bytes
    /// and the operator's data-directory grant in the store.
    pub fn add_plugin(
        &self,
        wasm: &[u8],
        data_dir: Option<&Path>,
        now: Timestamp,
    ) -> Result<PluginInfo> {
        let plugin = self.host.load(wasm)?;
        let info = plugin.info().clone();
        if let Some(dir) = data_dir
            && !info
                .capabilities
                .contains(&cohort_model::Capability::DataDir)
        {
            return Err(EngineError::Grant {
                plugin: info.id,
                dir: dir.display().to_string(),
            });
        }
        let data_dir = data_dir
            .map(|d| {
                d.canonicalize()
                    .map_err(|e| EngineError::DataDir {
                        plugin: info.id.clone(),
                        dir: d.display().to_string(),
                        problem: e.to_string(),
                    })
                    .map(|d| d.display().to_string())
            })
            .transpose()?;
        self.store.put_plugin(
            &StoredPlugin {
                id: info.id.clone(),
                version: info.version.clone(),
                sha256: plugin.sha256().to_string(),
                data_dir,
                added_at: now,
            },
            wasm,
        )?;
        self.lock_plugins()
            .insert(plugin.sha256().to_string(), plugin);
        // Conditions prepared with an earlier build of this plugin must not keep
        // answering for it.
        self.prepared
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        Ok(info)
    }

    fn lock_plugins(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Plugin>>> {
        // Only whole entries are inserted; a panic elsewhere cannot leave one half-made.
        self.plugins.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The newest stored version of plugin `id` that satisfies `requirement`.
    fn plugin(&self, id: &str, requirement: &str) -> Result<Granted> {
        let req = semver::VersionReq::parse(requirement).map_err(|e| EngineError::Version {
            plugin: id.to_string(),
            requirement: requirement.to_string(),
            problem: e.to_string(),
        })?;
        let stored = self.store.plugins()?;
        let candidates: Vec<&StoredPlugin> = stored.iter().filter(|p| p.id == id).collect();
        if candidates.is_empty() {
            return Err(EngineError::UnknownPlugin {
                plugin: id.to_string(),
                nearest: nearest(id, stored.iter().map(|p| p.id.as_str())),
            });
        }
        let best = candidates
            .iter()
            .filter_map(|p| semver::Version::parse(&p.version).ok().map(|v| (v, *p)))
            .filter(|(v, _)| req.matches(v))
            .max_by(|a, b| a.0.cmp(&b.0))
            .map(|(_, p)| p)
            .ok_or_else(|| EngineError::NoMatchingVersion {
                plugin: id.to_string(),
                requirement: requirement.to_string(),
                available: candidates
                    .iter()
                    .map(|p| p.version.clone())
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
        Ok((
            self.loaded(best)?,
            best.data_dir.as_ref().map(PathBuf::from),
        ))
    }

    /// `stored` loaded, reading its bytes only the first time.
    fn loaded(&self, stored: &StoredPlugin) -> Result<Arc<Plugin>> {
        if let Some(found) = self.lock_plugins().get(&stored.sha256) {
            return Ok(found.clone());
        }
        let wasm = self
            .store
            .plugin_wasm(&stored.id, &stored.version)?
            .ok_or_else(|| EngineError::UnknownPlugin {
                plugin: stored.id.clone(),
                nearest: None,
            })?;
        let plugin = self.host.load(&wasm)?;
        // Under the digest of the bytes read, should they have been replaced since.
        self.lock_plugins()
            .insert(plugin.sha256().to_string(), plugin.clone());
        Ok(plugin)
    }

    /// The group's conditions, each prepared by its plugin, in rule order. A rejected
    /// configuration is named by its place in the rule and its field.
    fn prepare(&self, group: &Group) -> Result<Vec<Condition>> {
        group
            .conditions()
            .map(|(i, j, condition)| {
                let (plugin, data_dir) = self
                    .plugin(&condition.plugin, &condition.version)
                    .map_err(|e| match e {
                        // Which plugin a condition names is the rule's business: say
                        // where in the rule. The store's errors are not.
                        EngineError::UnknownPlugin { .. }
                        | EngineError::NoMatchingVersion { .. }
                        | EngineError::Version { .. } => EngineError::Condition {
                            group: group.id.clone(),
                            at: format!("rule.all[{i}].any[{j}]"),
                            source: Box::new(e),
                        },
                        other => other,
                    })?;
                plugin
                    .prepare(&condition.config.to_string(), data_dir.as_deref())
                    .map_err(|e| EngineError::from_prepare(&group.id, i, j, e))
            })
            .collect()
    }

    /// Save a group after checking its shape, its schedule, and every condition's
    /// configuration through its plugin. Nothing is saved if anything is wrong.
    pub fn save_group(&self, group: &Group, now: Timestamp) -> Result<()> {
        group.check()?;
        if let Some(s) = &group.auto.triggers.schedule {
            schedule::parse(&group.id, s)?;
        }
        drop(self.prepare(group)?);
        self.store.put_group(group, now)?;
        Ok(())
    }

    /// Record that a platform entity refers to a group (or no longer does).
    pub fn use_group(&self, group: &str, kind: &str, entity: &str, used: bool) -> Result<()> {
        self.group(group)?;
        if !cohort_model::is_slug(kind) {
            return Err(EngineError::UseKind(kind.to_string()));
        }
        self.store.set_use(group, kind, entity, used)?;
        Ok(())
    }

    /// Delete a group. A group the platform still uses is refused unless `force`.
    pub fn delete_group(&self, id: &str, force: bool) -> Result<()> {
        self.group(id)?;
        let uses = self.store.uses(id)?;
        if !uses.is_empty() && !force {
            return Err(EngineError::InUse {
                group: id.to_string(),
                uses,
            });
        }
        self.store.delete_group(id)?;
        Ok(())
    }

    pub fn group(&self, id: &str) -> Result<Group> {
        self.store.group(id)?.ok_or_else(|| EngineError::NotFound {
            what: "group",
            id: id.to_string(),
        })
    }

    /// Insert or update a customer. A new customer is checked at once against every
    /// group with the on-registration trigger, and stored together with the memberships
    /// it gets, in one transaction.
    pub fn upsert_customer(&self, record: &CustomerRecord, now: Timestamp) -> Result<Registration> {
        let customer = record.intern(self.host.interner())?;
        let mut registration = Registration {
            customer: record.id.clone(),
            new: false,
            joined: Vec::new(),
            undecided: Vec::new(),
        };
        if self.store.customer_exists(&record.id)? {
            self.store.upsert_customer(record, now)?;
            return Ok(registration);
        }
        registration.new = true;
        let groups = self.groups()?;
        // Every group's changes go to the store with the customer; only a group of an
        // exclusive set needs the earlier groups' changes stored before it plans, since
        // it plans against the customer's memberships in its rivals.
        let mut pending: Vec<(Vec<Change>, String)> = Vec::new();
        let mut stored = false;
        let mut known = self.known(&record.id, &groups)?;
        for group in groups.iter() {
            if group.auto.mode == Mode::Disabled || !group.auto.triggers.on_registration {
                continue;
            }
            let columns = self.evaluate_one(group, &customer, now)?;
            let decision = Compiled::new(group).decide(&columns, 0);
            if decision == Decision::Undecided {
                let why = explain(group, &columns, 0).to_string();
                registration.undecided.push((group.id.clone(), why));
                continue;
            }
            if group.exclusive.is_some() && !pending.is_empty() {
                if !stored && !self.store.upsert_customer(record, now)? {
                    return Ok(registered_meanwhile(registration));
                }
                stored = true;
                self.store.apply_batches(&batches(&pending), now)?;
                pending.clear();
                known = self.known(&record.id, &groups)?;
            }
            let changes = self.plan_one(group, &groups, &record.id, &known, decision, now);
            if changes
                .iter()
                .any(|c| matches!(c, Change::Add { group: g, .. } if **g == *group.id))
            {
                registration.joined.push(group.id.clone());
            }
            if !changes.is_empty() {
                pending.push((changes, rule_actor(&group.id)));
            }
        }
        if stored {
            self.store.apply_batches(&batches(&pending), now)?;
        } else if self
            .store
            .register(record, now, &batches(&pending))?
            .is_none()
        {
            return Ok(registered_meanwhile(registration));
        }
        // A later group of an exclusive set may have taken the customer from an earlier
        // one: report where it ended up. Without exclusive sets, nothing was taken.
        if groups.iter().any(|g| g.exclusive.is_some()) {
            let joined: Vec<&str> = registration.joined.iter().map(String::as_str).collect();
            let active: HashSet<String> = self
                .store
                .customer_memberships_in(&record.id, &joined)?
                .into_iter()
                .filter(|m| m.is_active(now))
                .map(|m| m.group)
                .collect();
            registration.joined.retain(|g| active.contains(g));
        }
        Ok(registration)
    }

    /// One customer's verdict columns for `group`, on conditions prepared once and kept
    /// until the group's definition changes.
    fn evaluate_one(
        &self,
        group: &Group,
        customer: &Customer,
        as_of: Timestamp,
    ) -> Result<Vec<Verdicts>> {
        // Conditions hold plugin instances; the lock keeps one caller per instance.
        let mut prepared = self.prepared.lock().unwrap_or_else(PoisonError::into_inner);
        let fresh = prepared.get(&group.id).is_some_and(|(g, _)| g == group);
        if !fresh {
            prepared.insert(group.id.clone(), (group.clone(), self.prepare(group)?));
        }
        let (_, conditions) = prepared
            .get_mut(&group.id)
            .expect("inserted just above when missing");
        Ok(conditions
            .iter_mut()
            .map(|c| self.tally(c.evaluate(as_of, std::slice::from_ref(customer))))
            .collect())
    }

    /// What the store knows of one customer's standing: its memberships in `groups`
    /// (a plan looks at its own group and its rivals, never at a deleted group) and the
    /// groups it is pinned out of. Read once per registration, not per group.
    fn known(&self, customer: &str, groups: &[Group]) -> Result<Known> {
        let ids: Vec<&str> = groups.iter().map(|g| g.id.as_str()).collect();
        Ok(Known {
            memberships: self.store.customer_memberships_in(customer, &ids)?,
            excluded: self.store.excluded_from(customer)?.into_iter().collect(),
        })
    }

    /// The plan for one customer, from its own memberships only: registration must not
    /// read every membership of a group.
    fn plan_one(
        &self,
        group: &Group,
        groups: &[Group],
        customer: &str,
        known: &Known,
        decision: Decision,
        as_of: Timestamp,
    ) -> Vec<Change> {
        let all = &known.memberships;
        let memberships: Vec<Held> = all
            .iter()
            .filter(|m| m.group == group.id)
            .map(Membership::held)
            .collect();
        let pinned_out = known.excluded.contains(&group.id);
        let rivals = rivals_among(group, groups, all, as_of);
        plan(
            policy(group, &group.id.as_str().into()),
            Standing {
                customer: &customer.into(),
                memberships: &memberships,
                pinned_out,
                rivals: &rivals,
            },
            decision,
            as_of,
        )
    }

    /// Active memberships in the other groups of `group`'s exclusive set, by the
    /// customer's position in `index`.
    fn rivals(
        &self,
        group: &Group,
        as_of: Timestamp,
        index: &FastMap<Arc<str>, usize>,
    ) -> Result<FastMap<usize, Vec<Rival>>> {
        let mut rivals: FastMap<usize, Vec<Rival>> = FastMap::default();
        let Some(set) = &group.exclusive else {
            return Ok(rivals);
        };
        for other in self.store.groups()? {
            let Some(other_set) = &other.exclusive else {
                continue;
            };
            if other.id == group.id || other_set.set != set.set {
                continue;
            }
            // One id for all of the group's memberships, as a run's changes share theirs.
            let other_id: Arc<str> = other.id.as_str().into();
            for m in self.store.group_memberships(&other.id)? {
                if let Some(&at) = index.get(m.customer.as_str())
                    && m.is_active(as_of)
                {
                    rivals.entry(at).or_default().push(Rival {
                        membership: m.id,
                        group: other_id.clone(),
                        priority: other_set.priority,
                    });
                }
            }
        }
        Ok(rivals)
    }

    /// Run a group's rule over every customer as of `as_of` (usually `now`; earlier or
    /// later to see what the rule said or will say then). A dry run computes the same
    /// changes and applies none. The run and its history are stamped with `now`.
    /// `progress` is told (done, total) after each page. A run that fails once its
    /// record exists is recorded `failed`, with why, and applies nothing.
    // Each argument is a distinct fact every caller must state; a struct of them would
    // only move the list.
    #[allow(clippy::too_many_arguments)]
    pub fn run_group(
        &self,
        id: &str,
        trigger: Trigger,
        dry_run: bool,
        actor: &str,
        as_of: Timestamp,
        now: Timestamp,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<RunReport> {
        let group = self.runnable(id, trigger)?;
        let mut run = new_run(&group, trigger, dry_run, actor, as_of, now);
        run.id = self
            .store
            .start_runs(std::slice::from_ref(&run))?
            .first()
            .copied()
            .ok_or_else(|| EngineError::NotStarted {
                group: group.id.clone(),
                problem: "the store gave it no id".into(),
            })?;
        self.carry_out(&group, run, now, progress)
    }

    /// The group, if its rule may run for `trigger`.
    fn runnable(&self, id: &str, trigger: Trigger) -> Result<Group> {
        let group = self.group(id)?;
        if group.auto.mode == Mode::Disabled {
            return Err(EngineError::Disabled(group.id));
        }
        if trigger == Trigger::Manual && !group.auto.triggers.manual {
            return Err(EngineError::ManualOff(group.id));
        }
        Ok(group)
    }

    /// Evaluate a recorded run and record how it ended (see `write_run`).
    fn carry_out(
        &self,
        group: &Group,
        run: RunRecord,
        now: Timestamp,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<RunReport> {
        let (run, evaluated, started) = self.evaluate(group, run, Vec::new(), progress);
        let written = self.write_run(group, run, evaluated, started, now)?;
        Ok(self.settle(group, written))
    }

    /// Evaluate a recorded run over every customer, planning into `changes` (empty, but
    /// perhaps with room already): its record with the counts filled in, what
    /// evaluating gave, and when it started.
    fn evaluate(
        &self,
        group: &Group,
        mut run: RunRecord,
        changes: Vec<Change>,
        progress: &mut dyn FnMut(u64, u64),
    ) -> (RunRecord, Result<Evaluated>, Instant) {
        let started = Instant::now();
        let evaluated = self.evaluate_run(group, &mut run, usize::MAX, changes, progress);
        (run, evaluated, started)
    }

    /// Record how an evaluated run ended, started at `started`: finished, with its
    /// changes applied in the same transaction, or failed, with nothing applied.
    fn write_run(
        &self,
        group: &Group,
        mut run: RunRecord,
        evaluated: Result<Evaluated>,
        started: Instant,
        now: Timestamp,
    ) -> Result<Written> {
        let (trigger, actor) = (run.trigger.clone(), rule_actor(&group.id));
        let cause = Cause {
            trigger: &trigger,
            actor: &actor,
            run: Some(run.id),
        };
        let outcome = evaluated.and_then(|evaluated| {
            let mut finished = run.clone();
            finished.status = "finished".into();
            finished.finished_at = Some(now + started.elapsed().as_secs() as Timestamp);
            let apply: &[Change] = if run.dry_run { &[] } else { &evaluated.changes };
            let applied = self.store.finish_run(&finished, apply, &cause, now)?;
            Ok(Written {
                run: finished,
                evaluated,
                applied,
                started,
            })
        });
        outcome.inspect_err(|e| {
            run.status = "failed".into();
            run.error = Some(e.to_string());
            run.finished_at = Some(now + started.elapsed().as_secs() as Timestamp);
            // If even this cannot be written, the run stays `running` until the store
            // is next opened, which marks it `interrupted`: still not a success, and
            // the error goes back to the caller either way.
            let _ = self.store.finish_run(&run, &[], &cause, now);
        })
    }

    /// Carry the group's kept memberships forward by a run written, and report it.
    fn settle(&self, group: &Group, written: Written) -> RunReport {
        let Written {
            mut run,
            evaluated,
            applied,
            started,
        } = written;
        if !run.dry_run && !evaluated.changes.is_empty() {
            self.advance_holdings(
                &group.id,
                &evaluated.holdings,
                &evaluated.changes,
                &evaluated.change_at,
                &applied,
            );
            (run.added, run.removed) = applied.counts();
        }
        RunReport {
            run,
            changes: evaluated.changes,
            seconds: started.elapsed().as_secs_f64(),
        }
    }

    /// Evaluate the customers of the first `pages` pages (every customer, for a run)
    /// against the group and plan the changes into `changes`; fills in the run's counts
    /// (and, for a dry run, what it would add and remove).
    fn evaluate_run(
        &self,
        group: &Group,
        run: &mut RunRecord,
        pages: usize,
        mut changes: Vec<Change>,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<Evaluated> {
        let as_of = run.as_of;
        let mut conditions = self.prepare(group)?;
        let compiled = Compiled::new(group);

        // The customers' standing, by their position in the facts: the loop below visits
        // customers in that order, and hashing a position is far cheaper than hashing
        // an id string.
        let facts = self.facts()?;
        let holdings = self.holdings(&group.id, &facts)?;
        let mut held = holdings.cursor();
        let pinned: HashSet<usize> = self
            .store
            .exclusions(&group.id)?
            .iter()
            .filter_map(|c| facts.index.get(c.as_str()).copied())
            .collect();
        let rivals = self.rivals(group, as_of, &facts.index)?;
        let group_id: Arc<str> = group.id.as_str().into();
        let policy = policy(group, &group_id);

        // A spare list comes emptied by `run_groups`' settling thread, which lets its
        // changes go off the cores that evaluate.
        debug_assert!(changes.is_empty(), "a run plans into an empty list");
        // Each change's customer position, to carry the holdings forward.
        let mut change_at: Vec<u32> = Vec::new();
        let mut failures: HashMap<String, u64> = HashMap::new();
        let total = facts.ids.len() as u64;
        let chunks = facts.ids.chunks(PAGE).zip(&facts.pages).take(pages);
        for (page, (ids, customers)) in chunks.enumerate() {
            let columns: Vec<Verdicts> = conditions
                .iter_mut()
                .map(|c| self.tally(c.evaluate_columns(as_of, customers)))
                .collect();
            // Every failure is counted, also where the rest of the rule decided anyway.
            for (_, e) in columns.iter().flat_map(Verdicts::errors) {
                match failures.get_mut(e.as_str()) {
                    Some(n) => *n += 1,
                    None => drop(failures.insert(e.clone(), 1)),
                }
            }
            for (i, id) in ids.iter().enumerate() {
                let at = page * PAGE + i;
                let decision = if let Some(problem) = facts.invalid.get(&at) {
                    *failures.entry(problem.clone()).or_default() += 1;
                    Decision::Undecided
                } else {
                    compiled.decide(&columns, i)
                };
                match decision {
                    Decision::Member => run.matched += 1,
                    Decision::Undecided => run.undecided += 1,
                    Decision::NotMember => {}
                }
                plan_into(
                    policy,
                    Standing {
                        customer: id,
                        memberships: held.of(at),
                        pinned_out: pinned.contains(&at),
                        rivals: rivals.get(&at).map(Vec::as_slice).unwrap_or(&[]),
                    },
                    decision,
                    as_of,
                    &mut changes,
                );
                change_at.resize(changes.len(), at as u32);
            }
            run.customers += ids.len() as u64;
            progress(run.customers, total);
        }
        drop(facts);

        if run.dry_run {
            for c in &changes {
                match c {
                    Change::Add { group: g, .. } if **g == *group.id => run.added += 1,
                    Change::Add { .. } => {}
                    Change::End { .. } => run.removed += 1,
                }
            }
        }
        let mut failures: Vec<(String, u64)> = failures.into_iter().collect();
        failures.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        run.failures = failures;
        Ok(Evaluated {
            changes,
            change_at,
            holdings,
        })
    }

    /// What a run of `group` is expected to cost, in condition evaluations: its
    /// conditions over every customer, and each change it will write as `WRITE` of them.
    /// The changes are those a dry run plans for the first page of customers, times the
    /// pages: a rule that takes in most customers costs little to evaluate and the most
    /// to write, and started last it would leave the other cores idle while it writes.
    /// A guess that fails (the run itself will say why) costs the evaluations alone, and
    /// so does a rule over fewer than `SAMPLED` pages, where the page evaluated twice
    /// would be more than a few percent of the run.
    fn expected_cost(&self, group: &Group, trigger: Trigger, as_of: Timestamp) -> usize {
        /// A membership written costs about as much as twelve evaluations through
        /// plugins (1.2 against 0.1 µs, in a full scan of the reference workload).
        const WRITE: usize = 12;
        const SAMPLED: usize = 16;
        let conditions = group.rule.all.iter().map(|c| c.any.len()).sum::<usize>();
        let Ok(facts) = self.facts() else {
            return conditions;
        };
        let (customers, pages) = (facts.ids.len(), facts.pages.len());
        drop(facts);
        let mut sample = new_run(group, trigger, true, "", as_of, as_of);
        let changes = if pages < SAMPLED {
            0
        } else {
            match self.evaluate_run(group, &mut sample, 1, Vec::new(), &mut |_, _| {}) {
                Ok(_) => (sample.added + sample.removed) as usize * pages,
                Err(_) => 0,
            }
        };
        conditions * customers + WRITE * changes
    }

    /// Run every group whose schedule has come due by `now` (the scheduler's tick):
    /// each one's report or why it failed. A failed run does not stop the others, and
    /// its group is next due at its next scheduled time, as a finished one is.
    pub fn run_due(&self, now: Timestamp) -> Result<Vec<Result<RunRecord>>> {
        let mut due = Vec::new();
        for group in self.store.groups()? {
            let Some(s) = &group.auto.triggers.schedule else {
                continue;
            };
            if group.auto.mode == Mode::Disabled {
                continue;
            }
            let last = self.store.last_periodic_run(&group.id)?.unwrap_or(now);
            if next_run(&group.id, s, last)?.is_some_and(|next| next <= now) {
                due.push(group.id);
            }
        }
        Ok(self.run_groups(&due, Trigger::Periodic, "scheduler", now, now))
    }

    /// Run several groups' rules as `run_group` would, on as many threads as there are
    /// cores. Groups of one exclusive set run one after another, in id order, on one
    /// thread: each plans against the memberships the ones before it made. Each run's
    /// record comes in the order of `ids`; its changes are let go once applied (every
    /// group of a million customers would hold several million until the last one
    /// finished).
    pub fn run_groups(
        &self,
        ids: &[String],
        trigger: Trigger,
        actor: &str,
        as_of: Timestamp,
        now: Timestamp,
    ) -> Vec<Result<RunRecord>> {
        let mut results: Vec<Option<Result<RunRecord>>> = (0..ids.len()).map(|_| None).collect();
        let mut runnable: Vec<(usize, Group)> = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            match self.runnable(id, trigger) {
                Ok(group) => runnable.push((i, group)),
                Err(e) => results[i] = Some(Err(e)),
            }
        }
        // Every run is recorded before the first one evaluates, and each records its
        // end in the transaction of its changes: a run that had to write its start or
        // its end on its own would wait for the other core's run to finish writing, so
        // the two cores would evaluate at the same time and then write in turn, and the
        // writer would stand idle while they evaluate (a tenth of a full scan at a
        // million customers).
        let records: Vec<RunRecord> = runnable
            .iter()
            .map(|(_, g)| new_run(g, trigger, false, actor, as_of, now))
            .collect();
        let records = match self.store.start_runs(&records) {
            Ok(run_ids) => records
                .into_iter()
                .zip(run_ids)
                .map(|(run, id)| RunRecord { id, ..run })
                .collect::<Vec<_>>(),
            Err(e) => {
                let problem = e.to_string();
                for (i, group) in &runnable {
                    results[*i] = Some(Err(EngineError::NotStarted {
                        group: group.id.clone(),
                        problem: problem.clone(),
                    }));
                }
                runnable.clear();
                Vec::new()
            }
        };
        // Jobs: positions in `runnable`, those of one exclusive set together, each with
        // its cost, which only matters when there are more runs than cores.
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut jobs: Vec<(Vec<usize>, usize)> = Vec::new();
        let mut sets: HashMap<&str, usize> = HashMap::new();
        for (r, (_, group)) in runnable.iter().enumerate() {
            let cost = if runnable.len() > cores {
                self.expected_cost(group, trigger, as_of)
            } else {
                0
            };
            match &group.exclusive {
                Some(exclusive) => {
                    let job = *sets.entry(exclusive.set.as_str()).or_insert_with(|| {
                        jobs.push((Vec::new(), 0));
                        jobs.len() - 1
                    });
                    jobs[job].0.push(r);
                    jobs[job].1 += cost;
                }
                None => jobs.push((vec![r], cost)),
            }
        }
        for (job, _) in &mut jobs {
            job.sort_by(|&a, &b| runnable[a].1.id.cmp(&runnable[b].1.id));
        }
        // The costliest first, so that the last job to finish is a cheap one and no core
        // waits long for it at the end.
        jobs.sort_by_key(|(_, cost)| std::cmp::Reverse(*cost));
        // But the cheapest first of all: the writer has nothing to do until a run has
        // been evaluated.
        if let Some(cheapest) = jobs.pop() {
            jobs.insert(0, cheapest);
        }
        let jobs: Vec<Vec<usize>> = jobs.into_iter().map(|(job, _)| job).collect();
        let results = Mutex::new(results);
        let runnable = &runnable;
        let record = |r: usize, run: Result<RunReport>| {
            results.lock().unwrap_or_else(PoisonError::into_inner)[runnable[r].0] =
                Some(run.map(|report| report.run));
        };
        // Lists of changes written and let go, for the next runs to plan into: a run of
        // a million customers plans hundreds of thousands of changes, and a new list
        // grows by copying into memory the system must zero first (a thirtieth of the
        // scan's CPU time at a million customers). The few lists in flight circulate,
        // the roomiest taken first; one grown past `SPARE_MOST` is let go.
        let spare: Mutex<Vec<Vec<Change>>> = Mutex::default();
        let spare = &spare;
        let next = std::sync::atomic::AtomicUsize::new(0);
        let workers = cores.min(jobs.len());
        std::thread::scope(|scope| {
            // A run evaluated alone is written by a thread of its own, so that the core
            // that evaluated it goes on to the next run instead of waiting for the store
            // while another run writes (a tenth of a full scan's time at a million
            // customers). One run waits to be written at most: each holds its changes.
            // What follows a write (the kept memberships carried forward, the changes let
            // go: a tenth of the writer's time) is left to another thread, so that the
            // writer goes on to the next run's write.
            let (written, to_write) = std::sync::mpsc::sync_channel::<ToWrite>(1);
            let (settled, to_settle) = std::sync::mpsc::channel::<(usize, Written)>();
            scope.spawn(move || {
                for (r, run, evaluated, started) in to_write {
                    match self.write_run(&runnable[r].1, run, evaluated, started, now) {
                        Ok(w) => settled
                            .send((r, w))
                            .expect("the settler lives as long as the writer"),
                        Err(e) => record(r, Err(e)),
                    }
                }
            });
            scope.spawn(move || {
                for (r, w) in to_settle {
                    let mut report = self.settle(&runnable[r].1, w);
                    let mut changes = std::mem::take(&mut report.changes);
                    record(r, Ok(report));
                    changes.clear();
                    if changes.capacity() <= SPARE_MOST {
                        spare
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .push(changes);
                    }
                }
            });
            for _ in 0..workers {
                let written = written.clone();
                scope.spawn(|| {
                    let written = written;
                    while let Some(job) = jobs.get(next.fetch_add(1, Ordering::Relaxed)) {
                        // Each run of an exclusive set plans against what the ones
                        // before it wrote: those are written before the next starts.
                        if let [r] = job[..] {
                            let run = records[r].clone();
                            let changes = {
                                let mut spare =
                                    spare.lock().unwrap_or_else(PoisonError::into_inner);
                                let roomiest =
                                    (0..spare.len()).max_by_key(|&i| spare[i].capacity());
                                roomiest.map(|i| spare.swap_remove(i)).unwrap_or_default()
                            };
                            let (run, evaluated, started) =
                                self.evaluate(&runnable[r].1, run, changes, &mut |_, _| {});
                            written
                                .send((r, run, evaluated, started))
                                .expect("the writer lives as long as the workers");
                            continue;
                        }
                        for &r in job {
                            let run = records[r].clone();
                            record(r, self.carry_out(&runnable[r].1, run, now, &mut |_, _| {}));
                        }
                    }
                });
            }
            drop(written);
        });
        results
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner)
            .into_iter()
            .map(|r| r.expect("every job ran"))
            .collect()
    }

    /// Why `customer` is or is not a member of `group` as of `as_of`.
    pub fn explain(&self, customer: &str, group: &str, as_of: Timestamp) -> Result<Why> {
        let g = self.group(group)?;
        let record = self.customer(customer)?;
        let facts = record.intern(self.host.interner())?;
        let columns = self.evaluate_one(&g, &facts, as_of)?;
        let memberships = self
            .store
            .customer_memberships_in(customer, &[group])?
            .into_iter()
            .map(|m| {
                let state = m.state(as_of);
                (m, state)
            })
            .collect();
        Ok(Why {
            customer: customer.to_string(),
            group: group.to_string(),
            as_of,
            explanation: explain(&g, &columns, 0),
            memberships,
            pinned_out: self
                .store
                .excluded_from(customer)?
                .iter()
                .any(|g| g == group),
        })
    }

    fn customer(&self, id: &str) -> Result<CustomerRecord> {
        self.store
            .customer(id)?
            .ok_or_else(|| EngineError::NotFound {
                what: "customer",
                id: id.to_string(),
            })
    }

    /// Add a customer to a group by hand, optionally for a window `[start, end)`.
    pub fn add_member(
        &self,
        customer: &str,
        group: &str,
        actor: &str,
        reason: &str,
        window: (Timestamp, Option<Timestamp>),
        now: Timestamp,
    ) -> Result<bool> {
        let g = self.group(group)?;
        self.customer(customer)?;
        if let Some(end) = window.1
            && end <= window.0
        {
            return Err(EngineError::Window {
                start: window.0,
                end,
            });
        }
        let memberships = self.store.customer_memberships(customer)?;
        let overlapping = memberships.iter().any(|m| {
            m.group == group
                && m.end.is_none_or(|end| end > window.0)
                && window.1.is_none_or(|end| m.start < end)
        });
        if overlapping {
            return Ok(false);
        }
        let mut changes = Vec::new();
        if let Some(set) = &g.exclusive {
            // By hand the operator's choice wins: leave the other groups of the set.
            for rival in rivals_among(&g, &self.groups()?, &memberships, now) {
                changes.push(Change::End {
                    membership: rival.membership,
                    customer: customer.into(),
                    group: rival.group,
                    at: window.0.max(now),
                    reason: format!("added by hand to `{group}` of exclusive set `{}`", set.set)
                        .into(),
                });
            }
        }
        changes.push(Change::Add {
            customer: customer.into(),
            group: group.into(),
            source: Source::Manual,
            reason: reason.to_string().into(),
            start: window.0,
            end: window.1,
        });
        self.apply_by_hand(&changes, actor, now)?;
        Ok(true)
    }

    fn apply_by_hand(&self, changes: &[Change], actor: &str, now: Timestamp) -> Result<(u64, u64)> {
        let cause = Cause {
            trigger: Trigger::Manual.as_str(),
            actor,
            run: None,
        };
        Ok(self.store.apply(changes, &cause, now)?.counts())
    }

    /// Remove a customer from a group by hand: every active or pending membership ends
    /// now. Returns how many ended. A rule may add the customer again at its next run
    /// unless [`Engine::pin_exclusion`] says otherwise.
    pub fn remove_member(
        &self,
        customer: &str,
        group: &str,
        actor: &str,
        reason: &str,
        now: Timestamp,
    ) -> Result<u64> {
        self.group(group)?;
        let changes: Vec<Change> = self
            .store
            .customer_memberships_in(customer, &[group])?
            .into_iter()
            .filter(|m| m.state(now) != State::Expired)
            .map(|m| Change::End {
                membership: m.id,
                customer: customer.into(),
                group: group.into(),
                // A pending membership ends before it starts: its window becomes empty.
                at: now.max(m.start),
                reason: reason.to_string().into(),
            })
            .collect();
        let (_, ended) = self.apply_by_hand(&changes, actor, now)?;
        Ok(ended)
    }

    /// Pin a customer out of a group (the rule never adds it again) or lift the pin.
    /// Pinning also removes the customer now.
    pub fn pin_exclusion(
        &self,
        customer: &str,
        group: &str,
        pinned: bool,
        actor: &str,
        reason: &str,
        now: Timestamp,
    ) -> Result<()> {
        self.group(group)?;
        self.customer(customer)?;
        self.store
            .set_exclusion(customer, group, pinned, actor, reason, now)?;
        if pinned {
            self.remove_member(customer, group, actor, reason, now)?;
        }
        Ok(())
    }
}

/// A registration's planned changes as store batches, each group's with its own actor.
fn batches(pending: &[(Vec<Change>, String)]) -> Vec<(&[Change], Cause<'_>)> {
    pending
        .iter()
        .map(|(changes, actor)| {
            (
                changes.as_slice(),
                Cause {
                    trigger: Trigger::OnRegistration.as_str(),
                    actor,
                    run: None,
                },
            )
        })
        .collect()
}

/// Another writer registered the customer first: its record was stored as an update,
/// and the registration that came first decided the memberships.
fn registered_meanwhile(registration: Registration) -> Registration {
    Registration {
        new: false,
        joined: Vec::new(),
        undecided: Vec::new(),
        ..registration
    }
}

/// Of one customer's `memberships`, those active at `as_of` in the other groups of
/// `group`'s exclusive set.
fn rivals_among(
    group: &Group,
    groups: &[Group],
    memberships: &[Membership],
    as_of: Timestamp,
) -> Vec<Rival> {
    let Some(set) = &group.exclusive else {
        return Vec::new();
    };
    let mut rivals = Vec::new();
    for m in memberships
        .iter()
        .filter(|m| m.group != group.id && m.is_active(as_of))
    {
        let other = groups.iter().find(|g| g.id == m.group);
        if let Some(other_set) = other.and_then(|g| g.exclusive.as_ref())
            && other_set.set == set.set
        {
            rivals.push(Rival {
                membership: m.id,
                group: m.group.as_str().into(),
                priority: other_set.priority,
            });
        }
    }
    rivals
}

/// `id` is the group's id, shared by the changes planned with the policy.
fn policy<'a>(group: &'a Group, id: &'a Arc<str>) -> Policy<'a> {
    Policy {
        group: id,
        mode: group.auto.mode,
        keep_manual: group.auto.keep_manual,
        exclusive: group.exclusive.as_ref(),
    }
}

impl EngineError {
    /// The error itself, out of the condition that says where it happened.
    pub fn root(&self) -> &EngineError {
        match self {
            EngineError::Condition { source, .. } => source.root(),
            other => other,
        }
    }

    fn from_prepare(group: &str, clause: usize, index: usize, e: PrepareError) -> Self {
        let at = format!("rule.all[{clause}].any[{index}]");
        match e {
            PrepareError::Config { plugin, errors } => EngineError::Config {
                group: group.to_string(),
                at,
                plugin,
                problems: errors
                    .into_iter()
                    .map(|e| {
                        if e.path.is_empty() {
                            format!("config: {}", e.message)
                        } else {
                            format!("config{}: {}", e.path, e.message)
                        }
                    })
                    .collect(),
            },
            other => EngineError::Prepare {
                group: group.to_string(),
                at,
                problem: other.to_string(),
            },
        }
    }
}

/// Of `known`, the id nearest `id` if it is near enough to be a typo of it: at most a
/// third of its letters (and at least one) added, dropped or changed.
fn nearest<'a>(id: &str, known: impl Iterator<Item = &'a str>) -> Option<String> {
    let most = (id.chars().count() / 3).max(1);
    known
        .map(|k| (edits(id, k), k))
        .filter(|(d, _)| *d <= most)
        .min()
        .map(|(_, k)| k.to_string())
}

/// The Levenshtein distance between `a` and `b`.
fn edits(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::{edits, nearest};

    #[test]
    fn a_typo_of_a_plugin_id_finds_it() {
        assert_eq!(edits("contry", "country"), 1);
        assert_eq!(edits("", "abc"), 3);
        let known = ["country", "geoip-country", "provider"];
        assert_eq!(
            nearest("contry", known.into_iter()).as_deref(),
            Some("country")
        );
        assert_eq!(
            nearest("provder", known.into_iter()).as_deref(),
            Some("provider")
        );
        assert_eq!(nearest("loyalty", known.into_iter()), None);
    }
}
