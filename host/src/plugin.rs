//! A loaded plugin and its prepared conditions.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::{Duration, Instant};

use cohort_model::{
    Capability, ConfigError, Customer, FieldSet, PluginBudget, PluginInfo, Timestamp, Verdicts,
};
use wasmtime::component::ResourceAny;
use wasmtime::{Store, Trap};

use crate::columns::{self, Batch, Columns};
use crate::contract::{Answer, Instance, Pre, Version};
use crate::error::{Failure, LoadError, PrepareError};
use crate::limits::{self, Budget};
use crate::runtime::{EPOCH_TICK, Runtime};
use crate::sandbox::State;

/// Where a plugin's machine code came from.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Compiled {
    /// Compiled from the wasm when it was loaded.
    Fresh,
    /// Taken from the on-disk cache of an earlier run.
    FromDiskCache,
}

/// A plugin that passed the contract checks and described itself. Shared: one per
/// distinct wasm per host.
pub struct Plugin {
    runtime: Arc<Runtime>,
    /// Bytes this plugin's instances have added to the shared table of strings.
    interned: Arc<AtomicUsize>,
    pre: Pre,
    sha256: String,
    compiled: Compiled,
    info: PluginInfo,
    /// What the component declares for itself (its `cohort:budget` section), as
    /// declared: [`Plugin::budget`] is what it gets.
    declared: PluginBudget,
    /// The host's defaults with the declaration, up to the limits' ceiling.
    budget: Budget,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("id", &self.info.id)
            .field("version", &self.info.version)
            .field("contract", &self.contract_version())
            .field("sha256", &self.sha256)
            .finish()
    }
}

impl Plugin {
    pub(crate) fn describe(
        runtime: Arc<Runtime>,
        pre: Pre,
        sha256: String,
        compiled: Compiled,
        declared: PluginBudget,
    ) -> Result<Self, LoadError> {
        let budget = runtime
            .limits
            .budget()
            .with(&limits::within(&declared, &runtime.limits.ceiling));
        let interned = Arc::new(AtomicUsize::new(0));
        let mut store = runtime
            .new_store(&interned, budget.memory, None)
            .map_err(|e| LoadError::Engine(format!("{e:#}")))?;
        let fuel = arm(&mut store, &budget, None);
        let info = pre
            .instantiate(&mut store)
            .and_then(|instance| instance.describe(&mut store))
            .map_err(|e| LoadError::Describe(classify(&mut store, &budget, e, fuel)))??;
        Ok(Plugin {
            runtime,
            interned,
            pre,
            sha256,
            compiled,
            info,
            declared,
            budget,
        })
    }

    pub fn info(&self) -> &PluginInfo {
        &self.info
    }

    /// The hex sha256 of the plugin's wasm.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// The contract version the plugin was built against, e.g. `0.1.0`.
    pub fn contract_version(&self) -> &'static str {
        self.pre.version().as_str()
    }

    pub fn compiled(&self) -> Compiled {
        self.compiled
    }

    /// The budget the component declares for itself, as declared.
    pub fn declared_budget(&self) -> &PluginBudget {
        &self.declared
    }

    /// What each call may spend unless the operator says otherwise: the host's
    /// defaults, with what the plugin declares up to the limits' ceiling.
    pub fn budget(&self) -> Budget {
        self.budget
    }

    /// Check and compile a configuration into a condition ready to evaluate batches,
    /// on the plugin's own [`budget`](Self::budget).
    ///
    /// `data_dir` is the operator's grant: a directory the plugin may read (only),
    /// seen by it as `/data`. It is refused for a plugin that did not ask for it.
    pub fn prepare(
        self: &Arc<Self>,
        config: &str,
        data_dir: Option<&Path>,
    ) -> Result<Condition, PrepareError> {
        self.prepare_with(config, data_dir, &PluginBudget::default())
    }

    /// [`prepare`](Self::prepare) on the plugin's budget with the fields of
    /// `operator` replaced: the operator's word for this plugin, which no ceiling
    /// limits.
    pub fn prepare_with(
        self: &Arc<Self>,
        config: &str,
        data_dir: Option<&Path>,
        operator: &PluginBudget,
    ) -> Result<Condition, PrepareError> {
        self.check_grant(data_dir)?;
        let budget = self.budget.with(operator);
        let live = Live::start(self, &budget, config, data_dir)?;
        Ok(Condition {
            plugin: Arc::clone(self),
            config: config.to_string(),
            data_dir: data_dir.map(Path::to_path_buf),
            budget,
            live: Some(live),
            batch: Batch::default(),
            losses: Losses::default(),
        })
    }

    fn check_grant(&self, data_dir: Option<&Path>) -> Result<(), PrepareError> {
        let Some(dir) = data_dir else { return Ok(()) };
        let grant_error = |message: String| PrepareError::Grant {
            plugin: self.info.id.clone(),
            message,
        };
        if !self.info.capabilities.contains(&Capability::DataDir) {
            return Err(grant_error(format!(
                "does not ask for a data directory; refusing to grant `{}`",
                dir.display()
            )));
        }
        if !dir.is_dir() {
            return Err(grant_error(format!(
                "the granted data directory `{}` is not a directory",
                dir.display()
            )));
        }
        Ok(())
    }
}

/// A running instance with a prepared configuration.
struct Live {
    store: Store<State>,
    instance: Instance,
    evaluator: ResourceAny,
    calls: u64,
}

impl Live {
    fn start(
        plugin: &Plugin,
        budget: &Budget,
        config: &str,
        data_dir: Option<&Path>,
    ) -> Result<Live, PrepareError> {
        let failed = |failure| PrepareError::Failed {
            plugin: plugin.info.id.clone(),
            failure,
        };
        let mut store = plugin
            .runtime
            .new_store(&plugin.interned, budget.memory, data_dir)
            .map_err(|e| failed(Failure::Instantiate(format!("{e:#}"))))?;
        let fuel = arm(&mut store, budget, None);
        let instance = match plugin.pre.instantiate(&mut store) {
            Ok(i) => i,
            Err(e) => return Err(failed(classify(&mut store, budget, e, fuel))),
        };
        match instance.prepare(&mut store, config) {
            Ok(Ok(evaluator)) => Ok(Live {
                store,
                instance,
                evaluator,
                calls: 0,
            }),
            Ok(Err(errors)) => Err(PrepareError::Config {
                plugin: plugin.info.id.clone(),
                errors: errors
                    .into_iter()
                    .map(|e| ConfigError {
                        message: crate::sandbox::as_granted(&e.message, data_dir),
                        ..e
                    })
                    .collect(),
            }),
            Err(e) => Err(failed(classify(&mut store, budget, e, fuel))),
        }
    }
}

/// Set the limits for the next call: an evaluation of `Some(n)` customers, or `None`
/// for describing or preparing. Returns the call's fuel budget.
fn arm(store: &mut Store<State>, budget: &Budget, customers: Option<usize>) -> u64 {
    let fuel = match customers {
        Some(n) => budget.fuel_for(n),
        None => budget.fuel_per_prepare,
    };
    // Fuel is always enabled on our engine, so setting it cannot fail.
    let _ = store.set_fuel(fuel);
    let ticks = budget.deadline.as_millis() / EPOCH_TICK.as_millis();
    store.set_epoch_deadline(u64::try_from(ticks).unwrap_or(u64::MAX).max(1));
    store.data_mut().limiter.hit_cap = false;
    store.data_mut().symbols.start_call(customers.is_some());
    fuel
}

/// Turn a trap into the limit that caused it.
fn classify(store: &mut Store<State>, budget: &Budget, err: wasmtime::Error, fuel: u64) -> Failure {
    let detail = store.data_mut().take_stderr();
    match err.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => return Failure::OutOfFuel { budget: fuel },
        Some(Trap::Interrupt) => {
            return Failure::Deadline {
                limit: budget.deadline,
            };
        }
        Some(Trap::StackOverflow) => return Failure::Stack,
        _ => {}
    }
    if let Some(why) = store.data_mut().symbols.exceeded.take() {
        return Failure::Symbols(why);
    }
    // A plugin that hits the cap sees its allocation fail and aborts, which is an
    // `unreachable` trap; the limiter knows the real reason.
    if store.data().limiter.hit_cap {
        return Failure::Memory { cap: budget.memory };
    }
    if err.downcast_ref::<Trap>().is_none() {
        // Not a trap of the plugin's code: wasmtime refused what crossed the boundary
        // (an export whose type is not the contract's, a value that cannot be lifted),
        // or the plugin asked to exit.
        return Failure::Contract(format!("{err:#}"));
    }
    Failure::Trap {
        trap: err.root_cause().to_string(),
        detail,
    }
}

/// How many times one evaluation may split a trapping batch in two. Pinning a trap on
/// one customer in a batch of 1024 takes ten splits; the cap bounds the retries when
/// every customer traps.
const MAX_SPLITS: u32 = 32;

/// What evaluating a slice of customers produced.
#[derive(Debug, Default)]
pub struct Evaluation {
    /// One per customer, in order.
    pub verdicts: Verdicts,
    pub fuel_used: u64,
    /// The sum of the calls' budgets: how close `fuel_used` came to the limit.
    pub fuel_budget: u64,
    /// The largest linear memory an instance reached, in bytes.
    pub peak_memory: usize,
    pub calls: u32,
    /// Instances started for this evaluation (after a trap or a recycle).
    pub instances_started: u32,
    /// Every call that failed and was not split further, in order.
    pub failures: Vec<Failure>,
    /// Calls that trapped and were split in two to find the customers causing it.
    pub isolated_traps: u32,
    pub elapsed: Duration,
}

/// A plugin with a prepared configuration: the unit that evaluates customers.
///
/// Owns its instance. After a trap the instance is dropped and the next call starts a
/// fresh one from the pre-instantiated component and prepares the configuration again.
pub struct Condition {
    plugin: Arc<Plugin>,
    config: String,
    data_dir: Option<PathBuf>,
    /// What each call may spend: the plugin's budget with the operator's word.
    budget: Budget,
    live: Option<Live>,
    /// The columns of the current call, kept so that their capacity is reused.
    batch: Batch,
    /// What failed calls have cost this condition so far, against the limits'
    /// failure budget.
    losses: Losses,
}

/// The failed calls of one prepared condition.
#[derive(Debug, Default)]
struct Losses {
    calls: u32,
    time: Duration,
    last: Option<Failure>,
}

impl Losses {
    fn record(&mut self, began: Instant, failure: &Failure) {
        self.calls = self.calls.saturating_add(1);
        self.time += began.elapsed();
        self.last = Some(failure.clone());
    }

    /// The failure to give the customers not yet called, once the budget is spent.
    fn given_up(&self, limits: &crate::Limits) -> Option<Failure> {
        let spent = self.calls >= limits.failed_calls || self.time >= limits.failure_time;
        let last = self.last.as_ref().filter(|_| spent)?;
        Some(Failure::GaveUp {
            calls: self.calls,
            time: self.time,
            last: Box::new(last.clone()),
        })
    }
}

impl std::fmt::Debug for Condition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Condition")
            .field("plugin", &self.plugin.info.id)
            .field("config", &self.config)
            .finish()
    }
}

impl Condition {
    pub fn plugin(&self) -> &Arc<Plugin> {
        &self.plugin
    }

    /// What each call of this condition may spend.
    pub fn budget(&self) -> Budget {
        self.budget
    }

    /// The directory granted to the plugin, if any.
    pub fn data_dir(&self) -> Option<&Path> {
        self.data_dir.as_deref()
    }

    /// Count failed calls against the failure budget from nothing again: a condition
    /// kept for another run starts that with a budget of its own, as a condition
    /// prepared for it would.
    pub fn forget_failures(&mut self) {
        self.losses = Losses::default();
    }

    /// Verdicts for `customers` as of `as_of`, in batches of at most
    /// [`Limits::max_batch`](crate::Limits::max_batch). Never fails as a whole: a
    /// failed call gives its customers an error verdict and is listed in
    /// [`Evaluation::failures`]. Once the condition's failed calls (over every
    /// evaluation since it was prepared, or since [`forget_failures`](Self::forget_failures))
    /// pass the limits' failure budget, the rest of its customers get
    /// [`Failure::GaveUp`] without a call.
    pub fn evaluate(&mut self, as_of: Timestamp, customers: &[Customer]) -> Evaluation {
        self.evaluate_rows(as_of, Rows::Records(customers))
    }

    /// [`evaluate`](Self::evaluate) for customers kept in column form, as a run keeps
    /// them: each batch is a copy of the column slices the plugin reads.
    pub fn evaluate_columns(&mut self, as_of: Timestamp, page: &Columns) -> Evaluation {
        self.evaluate_rows(as_of, Rows::Columns(page, 0..page.len()))
    }

    /// The plugin's sentence for each of `customers` as of `as_of`: the facts behind
    /// its verdict, in the operator's words. `Ok(None)` from a plugin built against a
    /// contract before 0.3.0, which cannot explain. For a few customers, when someone
    /// asks why: it does not count against the failure budget of runs.
    pub fn explain(
        &mut self,
        as_of: Timestamp,
        customers: &[Customer],
    ) -> Result<Option<Vec<String>>, Failure> {
        if self.plugin.pre.version() < Version::V0_3 {
            return Ok(None);
        }
        self.ensure_live()?;
        let live = self.live.as_mut().expect("started just above");
        let reads = self.plugin.info.reads;
        columns::fill(&mut self.batch, customers, reads);
        let budget = arm(&mut live.store, &self.budget, Some(customers.len()));
        live.calls += 1;
        match live.instance.explain(
            &mut live.store,
            live.evaluator,
            as_of,
            &mut self.batch,
            reads,
        ) {
            Ok(answer) => answer.transpose().map_err(Failure::Plugin),
            Err(trap) => {
                let failure = classify(&mut live.store, &self.budget, trap, budget);
                self.live = None;
                Err(failure)
            }
        }
    }

    /// An instance to call in `self.live`, started (and the configuration prepared)
    /// if there is none or the last has served its number of calls; `true` when it was
    /// started now.
    fn ensure_live(&mut self) -> Result<bool, Failure> {
        let recycle = self.plugin.runtime.limits.recycle_after_calls;
        if self.live.as_ref().is_some_and(|l| l.calls >= recycle) {
            self.live = None;
        }
        if self.live.is_some() {
            return Ok(false);
        }
        let live = Live::start(
            &self.plugin,
            &self.budget,
            &self.config,
            self.data_dir.as_deref(),
        )
        .map_err(|e| match e {
            PrepareError::Failed { failure, .. } => failure,
            other => Failure::Instantiate(other.to_string()),
        })?;
        self.live = Some(live);
        Ok(true)
    }

    fn evaluate_rows(&mut self, as_of: Timestamp, rows: Rows<'_>) -> Evaluation {
        let started = Instant::now();
        let mut evaluation = Evaluation {
            verdicts: Verdicts::with_capacity(rows.len()),
            ..Evaluation::default()
        };
        let batch = self.plugin.runtime.limits.max_batch.max(1);
        let mut splits = MAX_SPLITS;
        let mut rest = rows;
        while rest.len() > 0 {
            if let Some(gave_up) = self.losses.given_up(&self.plugin.runtime.limits) {
                fail_all(&self.plugin.info.id, rest.len(), gave_up, &mut evaluation);
                break;
            }
            let (chunk, after) = rest.split_at(batch.min(rest.len()));
            self.call(as_of, chunk, &mut evaluation, &mut splits);
            rest = after;
        }
        evaluation.elapsed = started.elapsed();
        evaluation
    }

    fn call(&mut self, as_of: Timestamp, chunk: Rows<'_>, ev: &mut Evaluation, splits: &mut u32) {
        let runtime = &self.plugin.runtime;
        if let Some(gave_up) = self.losses.given_up(&runtime.limits) {
            fail_all(&self.plugin.info.id, chunk.len(), gave_up, ev);
            return;
        }
        let began = Instant::now();
        let live = match self.ensure_live() {
            Ok(started) => {
                ev.instances_started += u32::from(started);
                self.live.as_mut().expect("started just above")
            }
            Err(failure) => {
                self.losses.record(began, &failure);
                fail_all(&self.plugin.info.id, chunk.len(), failure, ev);
                return;
            }
        };

        chunk.fill(&mut self.batch, self.plugin.info.reads);
        let budget = arm(&mut live.store, &self.budget, Some(chunk.len()));
        live.calls += 1;
        ev.calls += 1;
        let reads = self.plugin.info.reads;
        let result = live.instance.evaluate(
            &mut live.store,
            live.evaluator,
            as_of,
            &mut self.batch,
            reads,
            &mut ev.verdicts,
        );
        let left = live.store.get_fuel().unwrap_or(0);
        ev.fuel_used = ev.fuel_used.saturating_add(budget.saturating_sub(left));
        ev.fuel_budget = ev.fuel_budget.saturating_add(budget);
        ev.peak_memory = ev.peak_memory.max(live.store.data().limiter.peak);

        let (failure, trapped) = match result {
            Ok(Answer::Verdicts) => return,
            Ok(Answer::Broken(broken)) => (Failure::Contract(broken), false),
            Ok(Answer::Failed(message)) => (Failure::Plugin(message), false),
            Err(trap) => {
                let failure = classify(&mut live.store, &self.budget, trap, budget);
                // A trap leaves the instance in an unknown state: never reuse it.
                self.live = None;
                (failure, true)
            }
        };
        self.losses.record(began, &failure);
        // One customer's data should not cost the whole batch its decisions: halve the
        // batch until the trap is pinned on the customers causing it (each half
        // checks the failure budget first).
        if trapped && chunk.len() > 1 && *splits > 0 {
            *splits -= 1;
            ev.isolated_traps += 1;
            let (left, right) = chunk.split_at(chunk.len() / 2);
            self.call(as_of, left, ev, splits);
            self.call(as_of, right, ev, splits);
            return;
        }
        fail_all(&self.plugin.info.id, chunk.len(), failure, ev);
    }
}

/// The customers of a call: records as given, or rows of a page in column form.
#[derive(Clone)]
enum Rows<'a> {
    Records(&'a [Customer]),
    Columns(&'a Columns, Range<usize>),
}

impl<'a> Rows<'a> {
    fn len(&self) -> usize {
        match self {
            Rows::Records(r) => r.len(),
            Rows::Columns(_, rows) => rows.len(),
        }
    }

    fn split_at(&self, mid: usize) -> (Rows<'a>, Rows<'a>) {
        match self {
            Rows::Records(r) => {
                let (left, right) = r.split_at(mid);
                (Rows::Records(left), Rows::Records(right))
            }
            Rows::Columns(page, rows) => {
                let at = rows.start + mid;
                (
                    Rows::Columns(page, rows.start..at),
                    Rows::Columns(page, at..rows.end),
                )
            }
        }
    }

    fn fill(&self, batch: &mut Batch, reads: FieldSet) {
        match self {
            Rows::Records(r) => columns::fill(batch, r, reads),
            Rows::Columns(page, rows) => columns::fill_from(batch, page, rows.clone(), reads),
        }
    }
}

fn fail_all(plugin: &str, n: usize, failure: Failure, ev: &mut Evaluation) {
    let message = format!("plugin `{plugin}` {failure}");
    for _ in 0..n {
        ev.verdicts.push_error(message.clone());
    }
    ev.failures.push(failure);
}
