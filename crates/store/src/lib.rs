//! Where Cohort keeps customers, groups, plugins, memberships and their history.
//!
//! [`Store`] is the interface the engine uses; [`SqliteStore`] is the embedded default
//! (one file, WAL, migrations on open). Every change to memberships goes through
//! [`Store::apply`], which writes the change, its audit entry and its outbox event in
//! one transaction: a crash leaves either all of a batch or none of it.

mod sqlite;

use cohort_model::{CustomerRecord, Group, Membership, Source, Timestamp};
use cohort_planner::Change;
use serde::Serialize;

pub use sqlite::SqliteStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("store: stored {what} `{id}` cannot be read: {problem}")]
    Corrupt {
        what: &'static str,
        id: String,
        problem: String,
    },
    #[error("no {what} `{id}`")]
    NotFound { what: &'static str, id: String },
    #[error("cannot open the store at `{path}`: {problem}")]
    Open { path: String, problem: String },
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// A plugin as the operator added it.
#[derive(Clone, Debug, Serialize)]
pub struct StoredPlugin {
    pub id: String,
    pub version: String,
    pub sha256: String,
    #[serde(skip)]
    pub wasm: Vec<u8>,
    /// The read-only data directory the operator granted, if any.
    pub data_dir: Option<String>,
    pub added_at: Timestamp,
}

/// Who and what caused a batch of membership changes.
#[derive(Clone, Debug)]
pub struct Cause<'a> {
    /// `manual`, `on-registration`, `periodic`, `import`.
    pub trigger: &'a str,
    /// An operator's name, or `rule:<group>`.
    pub actor: &'a str,
    pub run: Option<i64>,
}

/// One line of the audit history.
#[derive(Clone, Debug, Serialize)]
pub struct AuditEntry {
    pub id: i64,
    pub at: Timestamp,
    pub customer: String,
    pub group: String,
    /// `added`, `removed`, `excluded`, `unexcluded`.
    pub action: String,
    pub source: Option<Source>,
    pub actor: String,
    pub trigger: String,
    pub run: Option<i64>,
    pub reason: String,
}

/// A run of a group's rule: what ran, when, why, and what it did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RunRecord {
    pub id: i64,
    pub group: String,
    pub trigger: String,
    pub dry_run: bool,
    pub actor: String,
    pub as_of: Timestamp,
    pub started_at: Timestamp,
    pub finished_at: Option<Timestamp>,
    /// `running`, `finished`, `failed`, `interrupted`.
    pub status: String,
    pub customers: u64,
    pub matched: u64,
    pub added: u64,
    pub removed: u64,
    pub undecided: u64,
    /// The distinct reasons conditions could not decide, with counts.
    pub failures: Vec<(String, u64)>,
}

/// One import of a customer-assignment file.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ImportRecord {
    pub id: i64,
    pub actor: String,
    pub file_name: String,
    pub sha256: String,
    pub started_at: Timestamp,
    pub finished_at: Option<Timestamp>,
    /// `validating`, `applied`, `partially applied`, `failed`, `validated` (a dry run).
    pub status: String,
    pub dry_run: bool,
    /// Valid rows are applied even if others are rejected.
    pub partial: bool,
    pub rows: u64,
    pub added: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub rejected: u64,
}

/// A problem with one row of an import (line 1 is the header; line 0 the whole file).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ImportProblem {
    pub line: u64,
    pub column: Option<String>,
    pub message: String,
}

/// One membership an import asks for, by file line.
#[derive(Clone, Debug)]
pub struct StagedRow {
    pub line: u64,
    pub customer: String,
    pub group: String,
    pub start: Timestamp,
    pub end: Option<Timestamp>,
}

/// The storage interface of the engine.
pub trait Store: Send + Sync {
    fn put_plugin(&self, plugin: &StoredPlugin) -> Result<()>;
    fn plugins(&self) -> Result<Vec<StoredPlugin>>;

    /// Insert or replace a customer; `true` when it is new.
    fn upsert_customer(&self, record: &CustomerRecord, now: Timestamp) -> Result<bool>;
    /// Insert or replace many customers in one transaction: all or none. Returns how
    /// many were new.
    fn upsert_customers(&self, records: &[CustomerRecord], now: Timestamp) -> Result<u64>;
    fn customer(&self, id: &str) -> Result<Option<CustomerRecord>>;
    /// Customers in id order after `after`, at most `limit`.
    fn customers_after(&self, after: Option<&str>, limit: usize) -> Result<Vec<CustomerRecord>>;
    fn count_customers(&self) -> Result<u64>;

    fn put_group(&self, group: &Group, now: Timestamp) -> Result<()>;
    fn group(&self, id: &str) -> Result<Option<Group>>;
    fn groups(&self) -> Result<Vec<Group>>;
    /// Delete a group and its "used by" references; memberships stay as history.
    fn delete_group(&self, id: &str) -> Result<()>;
    /// Record (or forget) that one of the platform's entities — a tariff, promotion,
    /// contract template, segment, VAT setting — refers to the group.
    fn set_use(&self, group: &str, kind: &str, entity: &str, used: bool) -> Result<()>;
    /// The platform's entities that refer to the group, as (kind, id).
    fn uses(&self, group: &str) -> Result<Vec<(String, String)>>;
    /// When the group's schedule last started a run; until it first has, when the group
    /// was last saved, so that a schedule counts from then.
    fn last_periodic_run(&self, group: &str) -> Result<Option<Timestamp>>;
    fn set_last_periodic_run(&self, group: &str, at: Timestamp) -> Result<()>;

    /// Every membership of the group, in any state.
    fn group_memberships(&self, group: &str) -> Result<Vec<Membership>>;
    /// Every membership of the customer, in any state.
    fn customer_memberships(&self, customer: &str) -> Result<Vec<Membership>>;
    /// Customers pinned out of the group.
    fn exclusions(&self, group: &str) -> Result<Vec<String>>;
    /// Whether one customer is pinned out of the group.
    fn is_excluded(&self, customer: &str, group: &str) -> Result<bool>;
    /// How many memberships of the group are active at `at`.
    fn count_active(&self, group: &str, at: Timestamp) -> Result<u64>;
    fn set_exclusion(
        &self,
        customer: &str,
        group: &str,
        pinned: bool,
        actor: &str,
        reason: &str,
        at: Timestamp,
    ) -> Result<()>;

    /// Apply membership changes with their audit entries and outbox events, all or
    /// nothing. Returns how many memberships were added and ended.
    fn apply(&self, changes: &[Change], cause: &Cause<'_>, at: Timestamp) -> Result<(u64, u64)>;

    fn start_run(&self, run: &RunRecord) -> Result<i64>;
    fn finish_run(&self, run: &RunRecord) -> Result<()>;
    fn runs(&self, group: Option<&str>, limit: usize) -> Result<Vec<RunRecord>>;

    fn history(
        &self,
        customer: Option<&str>,
        group: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>>;
    /// How many change events wait in the outbox.
    fn outbox_len(&self) -> Result<u64>;

    /// Start an import record (status `validating`); returns its id.
    fn begin_import(&self, record: &ImportRecord) -> Result<i64>;
    /// Keep rows of an import for checking and applying; rows are streamed in batches.
    fn stage_import(&self, import: i64, rows: &[StagedRow]) -> Result<()>;
    fn add_import_problems(&self, import: i64, problems: &[ImportProblem]) -> Result<()>;
    /// Check the staged rows against the store and each other: unknown customers,
    /// duplicate rows, overlapping windows for the same customer and group. Records
    /// and returns how many problems it found.
    fn check_import(&self, import: i64) -> Result<u64>;
    /// Apply the staged rows of lines without problems, in one transaction (or, for a
    /// dry run, only count): a row whose customer, group and start match an imported
    /// membership updates its end or leaves it unchanged; any other row adds a
    /// membership with source `import`. Returns (added, updated, unchanged).
    fn apply_import(
        &self,
        import: i64,
        cause: &Cause<'_>,
        dry_run: bool,
        at: Timestamp,
    ) -> Result<(u64, u64, u64)>;
    /// Record the outcome and drop the staged rows.
    fn finish_import(&self, record: &ImportRecord) -> Result<()>;
    fn imports(&self, limit: usize) -> Result<Vec<ImportRecord>>;
    /// The problems of an import, by line; and how many lines have one.
    fn import_problems(&self, import: i64, limit: usize) -> Result<(Vec<ImportProblem>, u64)>;
}
