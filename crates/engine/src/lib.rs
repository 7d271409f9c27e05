//! The membership engine: the one place where plugins, rules, the planner and the
//! store meet.
//!
//! It validates what operators save (groups through their plugins' configuration
//! checks, customers through the model), runs a group's rule over every customer in
//! pages (a manual run, a dry run, or the schedule's), checks a newly registered
//! customer against every on-registration group, and applies each run's changes to the
//! store in one transaction, so that a run interrupted at any point leaves the store as
//! it was and a rerun converges to the same memberships.
//!
//! [`Engine`] holds the store, the host and four caches, each a type of its own: the
//! customers' facts (`facts`), the groups (`groups`), each group's memberships
//! (`holdings`), and loaded plugins with prepared conditions (`plugins`). Its methods
//! live by concern: `registration`, `run` (one run), `pipeline` and `order` (many runs
//! on every core), `schedule`, `explain`, `manual`, `import`, `preview` (a dry run of an unsaved
//! definition); `scope` is the engine
//! as a caller limited to some groups sees it; exclusive-set rivals are
//! found in one place (`rivals`) for all of them, and so are the members of groups a
//! rule refers to (`referred`).

mod answers;
mod decided;
mod error;
mod explain;
mod facts;
mod groups;
mod holdings;
mod import;
mod jobs;
mod manual;
mod order;
mod pipeline;
mod plugins;
mod preview;
mod referred;
mod registration;
mod rivals;
mod run;
mod scan;
mod schedule;
mod scope;
pub mod signing;
mod sizes;
mod stats;

use std::collections::HashMap;
use std::sync::Arc;

use cohort_host::Host;
use cohort_model::CustomerRecord;
use cohort_store::Store;

pub use answers::{MembershipAt, Registration, UndecidedGroup, Why};
pub use cohort_store::Trigger;
pub use error::EngineError;
pub use import::{ImportOptions, ImportReport};
pub use jobs::{Begun, Cancel, Progress};
pub use plugins::{Budgets, Provenance, STANDARD_SIGNER};
pub use preview::Preview;
pub use run::RunReport;
pub use scan::{LEASE_SECONDS, RANGE_SIZE, RangeReport, Worked, worker_name};
pub use schedule::{Tick, next_run};
pub use scope::{HIDDEN_GROUP, Scope, Within};
pub use sizes::{DAYS, Sizes, StateCounts};
pub use stats::Stats;

pub type Result<T> = std::result::Result<T, EngineError>;

/// Customers read, evaluated and planned per page of a run: large enough that plugin
/// calls are full batches, small enough that a page's facts stay in cache.
const PAGE: usize = 8192;

/// A hash map for the run's hot lookups: SipHash's protection against chosen keys is
/// not needed for customer ids and positions the store already holds, and it costs
/// several times more per lookup.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

pub struct Engine {
    store: Arc<dyn Store>,
    host: Host,
    plugins: plugins::PluginCache,
    counters: stats::Counters,
    facts: facts::FactsCache,
    groups: groups::GroupsCache,
    holdings: holdings::HoldingsCache,
    /// Each group's last decisions, for rescans that evaluate only what changed.
    decided: decided::DecidedCache,
    /// The customers the last rescan evaluated, for the next group's.
    subsets: facts::Subsets,
    /// Each group's size now and over the last days, for pages that list groups.
    sizes: sizes::SizesCache,
    /// Customers in id order, for the ranges of scans shared by workers.
    id_order: scan::IdOrder,
    /// Customers per range of the scans this engine starts.
    range_size: std::sync::atomic::AtomicUsize,
    /// The runs this process carries out, to tell their progress and stop them.
    running: jobs::Running,
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
            plugins: plugins::PluginCache::default(),
            counters: stats::Counters::default(),
            facts: facts::FactsCache::default(),
            groups: groups::GroupsCache::default(),
            holdings: holdings::HoldingsCache::default(),
            decided: decided::DecidedCache::default(),
            subsets: facts::Subsets::default(),
            sizes: sizes::SizesCache::default(),
            id_order: scan::IdOrder::default(),
            range_size: scan::RANGE_SIZE.into(),
            running: jobs::Running::default(),
        }
    }

    /// Everything the store keeps, for reads the engine has no opinion on (history,
    /// runs, memberships by page, the change feed, imports).
    pub fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    /// The customer cache, brought up to date with the store.
    fn facts(&self) -> Result<Arc<facts::Facts>> {
        self.facts
            .current(self.store.as_ref(), self.host.interner())
    }

    fn customer(&self, id: &str) -> Result<CustomerRecord> {
        self.store
            .customer(id)?
            .ok_or_else(|| EngineError::NotFound {
                what: "customer",
                id: id.to_string(),
            })
    }
}
