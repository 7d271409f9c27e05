//! The store's interface, one trait per concern. [`Store`] is all of them, for callers
//! that need everything (the engine); [`Access`] is what the HTTP layer keeps of its own
//! (tokens, webhooks, idempotency). Every method is one transaction: a backend never
//! leaves half of a call's writes behind.

use cohort_model::{CustomerRecord, Group, Held, Membership, PluginBudget, Timestamp};
use cohort_planner::Change;

use crate::{
    Applied, AuditEntry, Cause, Conditional, DeliveryAttempt, Ending, Erasure, HistoryQuery,
    ImportProblem, ImportRecord, Listing, OutboxEvent, PlanRead, Remembered, Result, Role,
    RunRecord, Scans, StaffLogin, StaffMember, StaffSession, StagedRow, StoredPlugin, TokenRecord,
    TrustedKey, Webhook, WebhookChange,
};

/// The plugins an operator added, and their bytes.
pub trait Plugins: Send + Sync {
    /// Add a plugin, or replace the one with the same id and version.
    fn put_plugin(&self, plugin: &StoredPlugin, wasm: &[u8]) -> Result<()>;
    /// Every stored plugin, without its bytes.
    fn plugins(&self) -> Result<Vec<StoredPlugin>>;
    /// The bytes of plugin `id` at `version`, if it is stored.
    fn plugin_wasm(&self, id: &str, version: &str) -> Result<Option<Vec<u8>>>;
    /// Set the operator's budget for plugin `id`, whatever its version; an empty
    /// budget removes it.
    fn set_plugin_budget(&self, id: &str, budget: &PluginBudget) -> Result<()>;
    /// The keys trusted to sign plugins, by name.
    fn trusted_keys(&self) -> Result<Vec<TrustedKey>>;
    /// Trust a key, or replace the key of that name.
    fn trust_key(&self, key: &TrustedKey) -> Result<()>;
    /// Stop trusting the key of that name; whether there was one. Plugins it signed
    /// stay, still naming it.
    fn distrust_key(&self, name: &str) -> Result<bool>;
    /// Whether a plugin must carry a signature by a trusted key to be added.
    fn signatures_required(&self) -> Result<bool>;
    fn require_signatures(&self, required: bool) -> Result<()>;
}

/// Customers' facts, as the platform sends them, and their registration.
pub trait Customers: Send + Sync {
    /// Insert or replace a customer; `true` when it is new.
    fn upsert_customer(&self, record: &CustomerRecord, now: Timestamp) -> Result<bool>;
    /// Update a stored customer if `precondition` holds of the stored record; in one
    /// transaction, so that no other write comes between the look and the write.
    /// Whether it was written (never, for a customer not stored).
    fn update_customer_if(
        &self,
        record: &CustomerRecord,
        now: Timestamp,
        precondition: &dyn Fn(&CustomerRecord) -> bool,
    ) -> Result<bool>;
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
    /// Erase a customer, in one transaction: their facts and pins are deleted, the
    /// reasons of their memberships and audit entries become [`crate::plan::ERASED_REASON`],
    /// each membership not ended by `at` ends then ([`crate::plan::erasure_ends`], with its
    /// entry and event, for `cause` and `reason`), and an `erased` entry and a
    /// `customer.erased` event record it. Ids stay: the history keeps who did what to
    /// which customer, and when. `None`, with nothing written, if the store has
    /// nothing of the customer to erase (no facts, no pin, no membership not ended).
    fn erase_customer(
        &self,
        id: &str,
        cause: &Cause<'_>,
        reason: &str,
        at: Timestamp,
    ) -> Result<Option<Erasure>>;
    /// A number that changes whenever a customer is erased: a cache of customers, which
    /// learns of writes from `customers_since`, starts over when it changes.
    fn erasures_stamp(&self) -> Result<i64>;
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
}

/// Group definitions, what refers to them, and their schedules' last runs.
pub trait Groups: Send + Sync {
    /// Create or replace a group.
    fn put_group(&self, group: &Group, now: Timestamp) -> Result<()> {
        self.put_group_if(group, now, &|_| true).map(|_| ())
    }
    /// Create or replace a group if `precondition`, given the group as stored (`None`
    /// if there is none), holds; in one transaction, so that no other write comes
    /// between the look and the write. Whether it was written.
    fn put_group_if(
        &self,
        group: &Group,
        now: Timestamp,
        precondition: &dyn Fn(Option<&Group>) -> bool,
    ) -> Result<bool>;
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
    /// Take the group's scheduled run that came due after `last` (what
    /// `last_periodic_run` said): record `now` as its last periodic run, unless another
    /// process took it first (the last periodic run is no longer `last`), which this
    /// says by `false`. Servers sharing a store each see the schedule come due; one
    /// runs it.
    fn claim_periodic_run(&self, group: &str, last: Timestamp, now: Timestamp) -> Result<bool>;
}

/// Memberships and pins, and every change to them with its audit entry and event.
pub trait Memberships: Send + Sync {
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
    /// How the group's memberships that were ended were ended (by their removal's audit
    /// entry), in membership order. A window that closed by itself was not ended.
    fn endings(&self, group: &str) -> Result<Vec<Ending>> {
        self.endings_in(group, i64::MIN, i64::MAX)
    }
    /// `endings` of the memberships with ids from `first` to `last`: what a page of
    /// memberships needs, read without the rest of a large group's.
    fn endings_in(&self, group: &str, first: i64, last: i64) -> Result<Vec<Ending>>;
    /// How the customer's memberships that were ended were ended, in membership order.
    fn customer_endings(&self, customer: &str) -> Result<Vec<Ending>>;
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
    /// nothing: one batch of `apply_batches`.
    fn apply(&self, changes: &[Change], cause: &Cause<'_>, at: Timestamp) -> Result<Applied> {
        let mut applied = self.apply_batches(&[(changes, cause.clone())], at)?;
        Ok(applied.pop().unwrap_or_default())
    }
    /// Apply changes as `apply` does, but only if the customer's memberships in the
    /// groups the plan read are still those it read; `None`, and nothing written, if
    /// they changed. Writers for one customer take turns on the customer, so two that
    /// planned from the same reads (two servers adding one customer to two groups of an
    /// exclusive set) cannot both write: the later one finds what it read changed and
    /// plans again.
    fn apply_guarded(
        &self,
        changes: &[Change],
        cause: &Cause<'_>,
        at: Timestamp,
        read: &PlanRead<'_>,
    ) -> Result<Option<Applied>>;
    /// Several batches, each with its own cause, in one transaction.
    fn apply_batches(
        &self,
        batches: &[(&[Change], Cause<'_>)],
        at: Timestamp,
    ) -> Result<Vec<Applied>>;
    /// The customers with a membership in `group`, in any state, or pinned out of
    /// it: in id order after `after`, at most `limit`.
    fn group_customers_after(&self, group: &str, after: &str, limit: usize) -> Result<Vec<String>>;
    /// A group's memberships in id order, after the membership `after`.
    fn group_memberships_page(
        &self,
        group: &str,
        listing: Listing,
        at: Timestamp,
        after: i64,
        limit: usize,
    ) -> Result<Vec<Membership>>;
}

/// The record of each run of a group's rule.
pub trait Runs: Send + Sync {
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
    /// Run `id`, if there is one.
    fn run(&self, id: i64) -> Result<Option<RunRecord>> {
        Ok(self
            .runs(None, id.checked_add(1), 1)?
            .into_iter()
            .find(|r| r.id == id))
    }
    /// Scans shared by workers, where several processes share the store; none on a
    /// store one process owns, whose runs are each one transaction.
    fn scans(&self) -> Option<&dyn Scans> {
        None
    }
}

/// The audit history and the change feed, and the clock's announcements in it.
pub trait Feed: Send + Sync {
    /// Audit entries that `query` admits, newest first, those with an id below
    /// `before` if given.
    fn history_where(
        &self,
        query: &HistoryQuery,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>>;
    /// Audit entries newest first, of a customer and a group if given.
    fn history(
        &self,
        customer: Option<&str>,
        group: Option<&str>,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>> {
        let query = HistoryQuery {
            customer: customer.map(str::to_string),
            groups: group.map(|g| vec![g.to_string()]),
            ..HistoryQuery::default()
        };
        self.history_where(&query, before, limit)
    }
    /// How many change events some webhook has yet to receive.
    fn outbox_len(&self) -> Result<u64>;
    /// Change events after the event `after`, oldest first.
    fn events_after(&self, after: i64, limit: usize) -> Result<Vec<OutboxEvent>>;
    /// Announce memberships whose window opened or closed by `now` since they were
    /// last announced (`membership.activated`, `membership.expired`). Returns how many
    /// events it wrote.
    fn announce(&self, now: Timestamp) -> Result<u64>;
}

/// How staged rows are applied (see `Imports::check_and_apply`).
#[derive(Clone, Copy, Debug, Default)]
pub struct ApplyOptions {
    /// Apply the lines without problems even if others have one.
    pub partial: bool,
    /// Only count what would change.
    pub dry_run: bool,
}

/// What checking and applying an import's staged rows found and did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Checked {
    /// Lines with a problem, including those the reader found.
    pub problem_lines: u64,
    /// (added, updated, unchanged), if the rows were applied (or counted).
    pub applied: Option<(u64, u64, u64)>,
}

/// `Imports::check_and_apply` as two steps: check, then apply if allowed.
pub fn check_then_apply<S: Imports + ?Sized>(
    store: &S,
    import: i64,
    customer_column: &str,
    cause: &Cause<'_>,
    options: ApplyOptions,
    at: Timestamp,
) -> Result<Checked> {
    store.check_import(import, customer_column)?;
    let (_, problem_lines) = store.import_problems(import, 0)?;
    let applied = if problem_lines == 0 || options.partial {
        Some(store.apply_import(import, cause, options.dry_run, at)?)
    } else {
        None
    };
    Ok(Checked {
        problem_lines,
        applied,
    })
}

/// Imports of customer-assignment files: staged rows, their problems, their outcome.
pub trait Imports: Send + Sync {
    /// Start an import record (status `validating`); returns its id.
    fn begin_import(&self, record: &ImportRecord) -> Result<i64>;
    /// Keep rows of an import for checking and applying; rows are streamed in batches.
    fn stage_import(&self, import: i64, rows: &[StagedRow<'_>]) -> Result<()>;
    fn add_import_problems(&self, import: i64, problems: &[ImportProblem]) -> Result<()>;
    /// Check the staged rows against the store and each other: unknown customers,
    /// duplicate rows, overlapping windows for the same customer and group. Records
    /// and returns how many problems it found.
    /// A problem with a row's customer names the column `customer_column`, as the
    /// file's header spells it.
    fn check_import(&self, import: i64, customer_column: &str) -> Result<u64>;
    /// Apply the staged rows of lines without problems, in one transaction (or, for a
    /// dry run, only count): a row whose customer, group and start match an imported
    /// membership updates its end or leaves it unchanged; any other row adds a
    /// membership with source `import`. Rows are applied in the order of their group,
    /// customer (byte by byte), start and line: their changes and events come in that
    /// order, on every backend. Returns (added, updated, unchanged).
    fn apply_import(
        &self,
        import: i64,
        cause: &Cause<'_>,
        dry_run: bool,
        at: Timestamp,
    ) -> Result<(u64, u64, u64)>;
    /// Check the staged rows, then apply them if no line has a problem or
    /// `options.partial` allows it (see `check_import` and `apply_import`). A backend
    /// may do both in one read of the rows; what is recorded and applied is the same.
    fn check_and_apply(
        &self,
        import: i64,
        customer_column: &str,
        cause: &Cause<'_>,
        options: ApplyOptions,
        at: Timestamp,
    ) -> Result<Checked> {
        check_then_apply(self, import, customer_column, cause, options, at)
    }
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

/// API tokens, kept by digest.
pub trait Tokens: Send + Sync {
    /// Keep a token's digest, with the time it expires if any; fails if a token that
    /// is not revoked has the name (an expired one keeps its name until revoked).
    fn create_token(
        &self,
        name: &str,
        role: Role,
        groups: Option<&[String]>,
        hash: &str,
        at: Timestamp,
        expires_at: Option<Timestamp>,
    ) -> Result<i64>;
    fn tokens(&self) -> Result<Vec<TokenRecord>>;
    /// Revoke the live token of this name; false if there is none.
    fn revoke_token(&self, name: &str, at: Timestamp) -> Result<bool>;
    /// The token with this digest, unless revoked; expired or not.
    fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRecord>>;
}

/// Webhooks and how far delivery to each has come.
pub trait Webhooks: Send + Sync {
    /// Add a webhook for the kinds of event `events` names (all if none); it receives
    /// the events written from now on.
    fn add_webhook(
        &self,
        url: &str,
        secret: &str,
        events: Option<&[String]>,
        at: Timestamp,
    ) -> Result<Webhook>;
    fn webhooks(&self) -> Result<Vec<Webhook>>;
    fn webhook(&self, id: i64) -> Result<Option<Webhook>>;
    /// Change a webhook if `precondition` holds of it as stored, in one transaction;
    /// its generation moves on. The webhook as written.
    fn change_webhook(
        &self,
        id: i64,
        change: &WebhookChange<'_>,
        precondition: &dyn Fn(&Webhook) -> bool,
    ) -> Result<Conditional<Webhook>>;
    fn remove_webhook(&self, id: i64) -> Result<bool>;
    /// Events up to `position` reached the webhook, delivered under its `generation`
    /// (nothing is recorded under another: the webhook was changed meanwhile).
    fn webhook_delivered(
        &self,
        id: i64,
        generation: i64,
        position: i64,
        at: Timestamp,
    ) -> Result<()>;
    /// An attempt under `generation` failed; the next starts from the same position.
    fn webhook_failed(&self, id: i64, generation: i64, error: &str) -> Result<()>;
    /// Keep an attempt in the webhook's delivery log, which keeps its latest
    /// [`crate::DELIVERIES_KEPT`].
    fn log_delivery(&self, attempt: &DeliveryAttempt) -> Result<()>;
    /// The webhook's latest attempts, newest first, those with an id below `before`.
    fn deliveries(
        &self,
        webhook: i64,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<DeliveryAttempt>>;
    /// Take or keep the right to deliver the webhook until `until`, for `holder` (a
    /// server): granted when no one holds it, its lease ran out by `now`, or `holder`
    /// holds it already. Returns the webhook's position when granted, `None` when
    /// another holder has it (or the webhook is gone). One server delivers a webhook
    /// at a time; when it dies, its lease runs out and another resumes from the
    /// position the store keeps.
    fn lease_webhook(
        &self,
        id: i64,
        holder: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<Option<i64>>;
}

/// Responses kept for requests made with an idempotency key.
pub trait Idempotency: Send + Sync {
    /// The response kept for an idempotency key of the token with id `token`, if it
    /// was kept at `since` or later.
    fn recall(&self, token: i64, key: &str, since: Timestamp) -> Result<Option<Remembered>>;
    /// Keep a response for a token's idempotency key; a key already kept stays as it
    /// was.
    fn remember(&self, token: i64, key: &str, response: &Remembered, at: Timestamp) -> Result<()>;
    /// Forget the responses kept before `at`; returns how many.
    fn forget_responses(&self, before: Timestamp) -> Result<usize>;
}

/// What the HTTP layer keeps besides the engine's data: who may call, where events go,
/// and the responses it replays.
/// The billing staff who use the console, and their sessions.
pub trait Staff: Send + Sync {
    /// Add a member with the digest of their password; false if the name is taken.
    fn create_staff(&self, member: &StaffMember, password_hash: &str) -> Result<bool>;
    /// Every member, by name.
    fn staff(&self) -> Result<Vec<StaffMember>>;
    /// A member with what signing in needs, if there is one of that name.
    fn staff_login(&self, name: &str) -> Result<Option<StaffLogin>>;
    /// Replace a member's password digest, clear their failed sign-ins and lock, and
    /// end their sessions; false if there is no such member.
    fn set_staff_password(&self, name: &str, password_hash: &str, at: Timestamp) -> Result<bool>;
    /// Count a failed sign-in; the `SIGN_IN_FAILURES`th in a row locks the member out
    /// until `at + SIGN_IN_LOCK_SECONDS` (and starts the count again). Returns the lock
    /// if this failure set one.
    fn record_failed_sign_in(&self, name: &str, at: Timestamp) -> Result<Option<Timestamp>>;
    /// Sign a member in: their failed sign-ins are forgotten and the session is kept
    /// under `digest`. Sessions expired by `session.created_at` are dropped.
    fn open_session(&self, digest: &str, session: &StaffSession) -> Result<()>;
    /// The session kept under `digest`, if it has not expired by `now`.
    fn session(&self, digest: &str, now: Timestamp) -> Result<Option<StaffSession>>;
    /// End one session; whether there was one.
    fn close_session(&self, digest: &str) -> Result<bool>;
    /// Remove a member and end their sessions; whether there was one. The history keeps
    /// their name.
    fn delete_staff(&self, name: &str) -> Result<bool>;
}

pub trait Access: Tokens + Webhooks + Idempotency + Staff {}

impl<T: Tokens + Webhooks + Idempotency + Staff + ?Sized> Access for T {}

/// Everything a backend keeps. A backend implements each concern's trait; this one
/// follows.
pub trait Store:
    Plugins + Customers + Groups + Memberships + Runs + Feed + Imports + Access
{
}

impl<T> Store for T where
    T: Plugins + Customers + Groups + Memberships + Runs + Feed + Imports + Access + ?Sized
{
}
