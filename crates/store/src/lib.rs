//! Where Cohort keeps customers, groups, plugins, memberships and their history.
//!
//! [`Store`] is the interface the engine uses; [`SqliteStore`] is the embedded default
//! (one file, WAL, migrations on open). Every change to memberships goes through
//! [`Store::apply`], which writes the change, its audit entry and its outbox event in
//! one transaction: a crash leaves either all of a batch or none of it.

mod sqlite;

use cohort_model::{CustomerRecord, Group, Held, Membership, Source, State, Timestamp};
use cohort_planner::Change;
use serde::{Deserialize, Serialize};

pub use sqlite::SqliteStore;

/// How long the response to a request with an idempotency key is replayed for a retry
/// of it, in seconds: a day, time enough for any client's retries; afterwards the key
/// is forgotten and may be used again.
pub const IDEMPOTENCY_KEY_LIFETIME: Timestamp = 24 * 60 * 60;

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

impl StoreError {
    /// Another writer holds the store: worth trying again shortly.
    pub fn is_busy(&self) -> bool {
        matches!(
            self,
            StoreError::Sqlite(e) if matches!(
                e.sqlite_error_code(),
                Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
            )
        )
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// A plugin as the operator added it. Its bytes (about a hundred kilobytes to a few
/// megabytes) are read on their own, by `Store::plugin_wasm`, and only to load it.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StoredPlugin {
    pub id: String,
    pub version: String,
    /// Of the bytes: a plugin replaced under the same version has another digest.
    pub sha256: String,
    /// The read-only data directory the operator granted, if any.
    pub data_dir: Option<String>,
    #[serde(with = "cohort_model::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
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

/// What applying one batch of changes did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    pub added: u64,
    /// Memberships ended (one that was already ended is not counted).
    pub removed: u64,
    /// The ids the added memberships got, in the order of their `Add` changes.
    pub ids: Vec<i64>,
    /// Each group whose memberships the batch wrote, with the group's membership stamp
    /// after it; the stamp before was one less.
    pub stamps: Vec<(String, i64)>,
}

impl Applied {
    /// (added, removed)
    pub fn counts(&self) -> (u64, u64) {
        (self.added, self.removed)
    }
}

/// One line of the audit history.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEntry {
    pub id: i64,
    #[serde(with = "cohort_model::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunRecord {
    pub id: i64,
    pub group: String,
    pub trigger: String,
    pub dry_run: bool,
    pub actor: String,
    #[serde(with = "cohort_model::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub as_of: Timestamp,
    #[serde(with = "cohort_model::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub started_at: Timestamp,
    #[serde(with = "cohort_model::rfc3339::option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub finished_at: Option<Timestamp>,
    /// `running`, `finished`, `failed`, `interrupted`.
    pub status: String,
    pub customers: u64,
    pub matched: u64,
    pub added: u64,
    pub removed: u64,
    pub undecided: u64,
    /// The distinct reasons conditions could not decide, with how many customers
    /// each left without a verdict (also those the rest of the rule decided).
    #[serde(serialize_with = "failures_as_objects")]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<FailureCount>))]
    pub failures: Vec<(String, u64)>,
    /// Why a `failed` run stopped; it applied nothing.
    pub error: Option<String>,
}

/// One reason conditions could not decide in a run, as JSON shows it.
#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FailureCount<'a> {
    pub reason: &'a str,
    /// Customers it left without a verdict.
    pub count: u64,
}

fn failures_as_objects<S: serde::Serializer>(
    failures: &[(String, u64)],
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    s.collect_seq(failures.iter().map(|(reason, count)| FailureCount {
        reason,
        count: *count,
    }))
}

/// One import of a customer-assignment file.
#[derive(Clone, Debug, Default, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImportRecord {
    pub id: i64,
    pub actor: String,
    pub file_name: String,
    pub sha256: String,
    #[serde(with = "cohort_model::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub started_at: Timestamp,
    #[serde(with = "cohort_model::rfc3339::option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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

/// Which memberships of a group a listing shows, by their state at a time.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Listing {
    /// Only this state.
    Only(State),
    /// Every membership, whatever its state.
    All,
}

/// A change event as platforms receive it: from a webhook, or from the change feed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OutboxEvent {
    /// Increases with every event: the change feed's cursor.
    #[serde(default)]
    pub id: i64,
    /// `membership.added`, `membership.removed`, `membership.updated`,
    /// `membership.activated`, `membership.expired`.
    pub event: String,
    #[serde(with = "cohort_model::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub at: Timestamp,
    pub customer: String,
    pub group: String,
    pub membership: i64,
    /// `manual`, `on-registration`, `periodic`, `import`, or `clock` for a window that
    /// opened or closed by itself.
    pub trigger: String,
    pub actor: String,
    pub reason: String,
}

/// What a bearer token may do. Each role may do everything the ones before it may.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Role {
    /// Reads everything.
    ReadOnly,
    /// Also groups, rules, customers, runs, imports and manual membership.
    Operator,
    /// Also plugins and settings (webhooks).
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::ReadOnly => "read-only",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "read-only" => Some(Role::ReadOnly),
            "operator" => Some(Role::Operator),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// An API token as stored: its name and role, never the token itself.
#[derive(Clone, Debug, Serialize)]
pub struct TokenRecord {
    pub id: i64,
    pub name: String,
    pub role: Role,
    #[serde(with = "cohort_model::rfc3339")]
    pub created_at: Timestamp,
    #[serde(with = "cohort_model::rfc3339::option")]
    pub revoked_at: Option<Timestamp>,
}

/// A webhook and how far delivery to it has come.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Webhook {
    pub id: i64,
    pub url: String,
    /// The key of the HMAC-SHA256 signature; shown only when the webhook is created.
    #[serde(skip)]
    pub secret: String,
    #[serde(with = "cohort_model::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    /// The id of the last event delivered.
    pub position: i64,
    /// Failed attempts to deliver the next batch since the last success.
    pub attempts: u32,
    pub last_error: Option<String>,
    #[serde(with = "cohort_model::rfc3339::option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub last_delivered_at: Option<Timestamp>,
}

/// The response to a request made with an idempotency key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Remembered {
    /// A digest of the request (method, path, body), to refuse the key's reuse for a
    /// different request.
    pub request: String,
    pub status: u16,
    pub body: String,
}

/// The storage interface of the engine.
pub trait Store: Send + Sync {
    /// Add a plugin, or replace the one with the same id and version.
    fn put_plugin(&self, plugin: &StoredPlugin, wasm: &[u8]) -> Result<()>;
    /// Every stored plugin, without its bytes.
    fn plugins(&self) -> Result<Vec<StoredPlugin>>;
    /// The bytes of plugin `id` at `version`, if it is stored.
    fn plugin_wasm(&self, id: &str, version: &str) -> Result<Option<Vec<u8>>>;

    /// Insert or replace a customer; `true` when it is new.
    fn upsert_customer(&self, record: &CustomerRecord, now: Timestamp) -> Result<bool>;
    /// Insert or replace many customers in one transaction: all or none. Returns how
    /// many were new.
    fn upsert_customers(&self, records: &[CustomerRecord], now: Timestamp) -> Result<u64>;
    /// Store a customer who registers together with the changes its registration calls
    /// for, in one transaction. If the customer exists by then (another writer
    /// registered it first), the record is stored as an update and no change is
    /// applied: `None`.
    fn register(
        &self,
        record: &CustomerRecord,
        now: Timestamp,
        batches: &[(&[Change], Cause<'_>)],
    ) -> Result<Option<Vec<Applied>>>;
    fn customer_exists(&self, id: &str) -> Result<bool>;
    fn customer(&self, id: &str) -> Result<Option<CustomerRecord>>;
    /// Customers in id order after `after`, at most `limit`.
    fn customers_after(&self, after: Option<&str>, limit: usize) -> Result<Vec<CustomerRecord>>;
    /// Each customer written after the write numbered `seq` (all if `None`), in write
    /// order, in batches of `batch` numbered from 0, each handed to `each` as its
    /// records parse (a first load must not hold every record at once); returns the
    /// number of the latest write seen: what a cache of customers needs.
    ///
    /// Batches may be handed over on several threads at once and so out of order: the
    /// caller puts them back in order by their numbers. A record that does not parse
    /// ends its batch and fails the call, naming it.
    fn customers_since(
        &self,
        seq: Option<i64>,
        batch: usize,
        each: &(dyn Fn(usize, &mut dyn Iterator<Item = CustomerRecord>) + Sync),
    ) -> Result<i64>;
    fn count_customers(&self) -> Result<u64>;

    fn put_group(&self, group: &Group, now: Timestamp) -> Result<()>;
    fn group(&self, id: &str) -> Result<Option<Group>>;
    fn groups(&self) -> Result<Vec<Group>>;
    /// A number that changes whenever any group's definition does (whoever changes it).
    fn groups_stamp(&self) -> Result<i64>;
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

    /// Every membership of the group, in any state.
    fn group_memberships(&self, group: &str) -> Result<Vec<Membership>>;
    /// Every membership of the group in the form planning needs, with the customer's id,
    /// in customer order, handed to `each` as read.
    fn group_holdings(&self, group: &str, each: &mut dyn FnMut(&str, Held)) -> Result<()>;
    /// The number of the group's latest membership write: a reader that keeps the
    /// group's memberships may keep them while it stays put.
    fn membership_stamp(&self, group: &str) -> Result<i64>;
    /// Every membership of the customer, in any state.
    fn customer_memberships(&self, customer: &str) -> Result<Vec<Membership>>;
    /// The customer's memberships in `groups` only, in any state: what planning for
    /// those groups needs, found without first finding which groups have members.
    fn customer_memberships_in(&self, customer: &str, groups: &[&str]) -> Result<Vec<Membership>>;
    /// Customers pinned out of the group.
    fn exclusions(&self, group: &str) -> Result<Vec<String>>;
    /// The groups one customer is pinned out of.
    fn excluded_from(&self, customer: &str) -> Result<Vec<String>>;
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
    /// nothing.
    fn apply(&self, changes: &[Change], cause: &Cause<'_>, at: Timestamp) -> Result<Applied>;
    /// Several batches, each with its own cause, in one transaction.
    fn apply_batches(
        &self,
        batches: &[(&[Change], Cause<'_>)],
        at: Timestamp,
    ) -> Result<Vec<Applied>>;

    /// Record runs as `running`, in one transaction; returns their ids in order.
    fn start_runs(&self, runs: &[RunRecord]) -> Result<Vec<i64>>;
    /// Record how a run ended, in one transaction with the changes it made (none for a
    /// dry run or a failed one), so that its record says `finished` exactly when its
    /// changes are in the store. Where there are changes, the record's `added` and
    /// `removed` are what applying them did. A periodic run that was not a dry run also
    /// becomes its group's last periodic run, as of its `started_at`, whether it
    /// finished or failed: a schedule tries again at its next time, not at every tick.
    fn finish_run(
        &self,
        run: &RunRecord,
        changes: &[Change],
        cause: &Cause<'_>,
        at: Timestamp,
    ) -> Result<Applied>;
    /// Runs newest first, those with an id below `before` if given.
    fn runs(
        &self,
        group: Option<&str>,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<RunRecord>>;

    /// Audit entries newest first, those with an id below `before` if given.
    fn history(
        &self,
        customer: Option<&str>,
        group: Option<&str>,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>>;
    /// How many change events some webhook has yet to receive.
    fn outbox_len(&self) -> Result<u64>;
    /// Change events after the event `after`, oldest first.
    fn events_after(&self, after: i64, limit: usize) -> Result<Vec<OutboxEvent>>;
    /// Announce memberships whose window opened or closed by `now` since they were
    /// last announced (`membership.activated`, `membership.expired`). Returns how many
    /// events it wrote.
    fn announce(&self, now: Timestamp) -> Result<u64>;

    /// A group's memberships in id order, after the membership `after`.
    fn group_memberships_page(
        &self,
        group: &str,
        listing: Listing,
        at: Timestamp,
        after: i64,
        limit: usize,
    ) -> Result<Vec<Membership>>;

    /// Keep a token's digest; fails if a live token has the name.
    fn create_token(&self, name: &str, role: Role, hash: &str, at: Timestamp) -> Result<i64>;
    fn tokens(&self) -> Result<Vec<TokenRecord>>;
    /// Revoke the live token of this name; false if there is none.
    fn revoke_token(&self, name: &str, at: Timestamp) -> Result<bool>;
    /// The live token with this digest.
    fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRecord>>;

    /// Add a webhook; it receives the events written from now on.
    fn add_webhook(&self, url: &str, secret: &str, at: Timestamp) -> Result<Webhook>;
    fn webhooks(&self) -> Result<Vec<Webhook>>;
    fn remove_webhook(&self, id: i64) -> Result<bool>;
    /// Events up to `position` reached the webhook.
    fn webhook_delivered(&self, id: i64, position: i64, at: Timestamp) -> Result<()>;
    /// An attempt failed; the next starts from the same position.
    fn webhook_failed(&self, id: i64, error: &str) -> Result<()>;

    /// The response kept for an idempotency key of the token with id `token`, if it
    /// was kept at `since` or later.
    fn recall(&self, token: i64, key: &str, since: Timestamp) -> Result<Option<Remembered>>;
    /// Keep a response for a token's idempotency key; a key already kept stays as it
    /// was.
    fn remember(&self, token: i64, key: &str, response: &Remembered, at: Timestamp) -> Result<()>;
    /// Forget the responses kept before `at`; returns how many.
    fn forget_responses(&self, before: Timestamp) -> Result<usize>;

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
    /// Imports newest first, those with an id below `before` if given.
    fn imports(&self, before: Option<i64>, limit: usize) -> Result<Vec<ImportRecord>>;
    /// The problems of an import, by line; and how many lines have one.
    fn import_problems(&self, import: i64, limit: usize) -> Result<(Vec<ImportProblem>, u64)>;
    /// The problems of an import by line, after the cursor `(line, seq)` of the last one
    /// seen; each comes with its own cursor.
    fn import_problems_page(
        &self,
        import: i64,
        after: Option<(u64, i64)>,
        limit: usize,
    ) -> Result<Vec<((u64, i64), ImportProblem)>>;
}
