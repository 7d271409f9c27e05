//! What the store keeps and hands back: plugins, runs, imports, events, tokens and
//! webhooks as records, backend-neutral.

use cohort_model::{Membership, PluginBudget, Source, State, Timestamp};
use serde::{Deserialize, Serialize};

/// A plugin as the operator added it. Its bytes (about a hundred kilobytes to a few
/// megabytes) are read on their own, by `Store::plugin_wasm`, and only to load it.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StoredPlugin {
    pub id: String,
    pub version: String,
    /// Of the bytes: a plugin replaced under the same version has another digest.
    pub sha256: String,
    /// The read-only data directory the operator granted, if any, as an absolute path:
    /// what the plugin is given, from any working directory.
    pub data_dir: Option<String>,
    /// The same directory as the operator wrote it (`./geoip`, say), for showing back.
    pub data_dir_as_given: Option<String>,
    #[serde(with = "cohort_model::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub added_at: Timestamp,
    /// Who vouched for it: the name of the trusted key whose signature it carried,
    /// `standard` for a plugin built with Cohort, none for one added unsigned.
    pub signer: Option<String>,
    /// The public key of that signature (`ed25519:<hex>`).
    pub signer_key: Option<String>,
    /// The operator's budget for this plugin, for every version of it (set by
    /// `Plugins::set_plugin_budget`; `put_plugin` leaves it as it is). Empty when the
    /// operator set none: the plugin then runs on its own.
    pub budget: PluginBudget,
}

/// The operator's budget for plugin `id` as a store keeps it (JSON; none for no
/// budget).
pub fn plugin_budget(id: &str, stored: Option<&str>) -> crate::Result<PluginBudget> {
    stored.map_or(Ok(PluginBudget::default()), |json| {
        serde_json::from_str(json).map_err(|e| crate::StoreError::corrupt("plugin budget", id, e))
    })
}

/// A public key the operator trusts to sign plugins.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TrustedKey {
    /// The operator's name for it (a vendor, a team).
    pub name: String,
    /// `ed25519:` and the key's 32 bytes in hex.
    pub public_key: String,
    #[serde(with = "cohort_model::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub added_at: Timestamp,
}

/// An enum whose variants have names, as the store keeps them and JSON shows them:
/// `as_str`, `parse` and `Display` come from one list, so the three cannot disagree
/// (and serde's kebab-case names are checked against it in the tests).
macro_rules! named {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $($(#[$variant_meta:meta])* $variant:ident = $text:literal,)+
        }
    ) => {
        $(#[$meta])*
        pub enum $name {
            $($(#[$variant_meta])* $variant,)+
        }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }

            /// The variant named `s` as [`Self::as_str`] names it.
            pub fn parse(s: &str) -> Option<$name> {
                match s {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

named! {
    /// What set a change off: one of a group's triggers (a run by hand, its schedule, a
    /// customer's registration), an import, or the clock (a window that opened or closed
    /// by itself). Runs have the first three.
    #[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
    #[serde(rename_all = "kebab-case")]
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    pub enum Trigger {
        #[default]
        Manual = "manual",
        Periodic = "periodic",
        OnRegistration = "on-registration",
        Import = "import",
        Clock = "clock",
    }
}

named! {
    /// Where a run is: `running` until it is written `finished` (its changes applied in
    /// the same transaction) or `failed` (nothing applied); `interrupted` when the
    /// process that ran it went away first.
    #[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
    #[serde(rename_all = "kebab-case")]
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    pub enum RunStatus {
        #[default]
        Running = "running",
        Finished = "finished",
        Failed = "failed",
        Interrupted = "interrupted",
        /// Stopped on request: on the embedded store nothing was applied; on a shared
        /// one, the ranges committed before stay.
        Cancelled = "cancelled",
    }
}

/// Who and what caused a batch of membership changes.
#[derive(Clone, Debug)]
pub struct Cause<'a> {
    pub trigger: Trigger,
    /// An operator's name, or `rule:<group>`.
    pub actor: &'a str,
    pub run: Option<i64>,
}

/// What erasing a customer did (`Customers::erase_customer`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Erasure {
    pub customer: String,
    /// Whether the customer's facts were stored (a customer may be erased again to end
    /// what a run added while the first erasure was made).
    pub facts: bool,
    /// The memberships it ended: those active or pending.
    pub ended: u64,
    /// The pins keeping the customer out of groups, deleted.
    pub pins: u64,
    /// The audit entry that records the erasure.
    pub entry: i64,
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

/// What a plan for one customer read: the customer's memberships in some groups.
#[derive(Clone, Copy, Debug)]
pub struct PlanRead<'a> {
    pub customer: &'a str,
    pub groups: &'a [&'a str],
    pub memberships: &'a [Membership],
}

impl PlanRead<'_> {
    /// Whether `now`, the customer's memberships in the same groups read again, are
    /// what the plan read: the same memberships with the same windows.
    pub fn still(&self, now: &[Membership]) -> bool {
        let key = |ms: &[Membership]| {
            let mut k: Vec<(i64, Timestamp, Option<Timestamp>)> =
                ms.iter().map(|m| (m.id, m.start, m.end)).collect();
            k.sort_unstable();
            k
        };
        key(self.memberships) == key(now)
    }
}

/// How a membership was ended: by whom, why and when, from its removal's entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Ending {
    pub membership: i64,
    #[serde(with = "cohort_model::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub at: Timestamp,
    pub actor: String,
    pub trigger: Trigger,
    pub reason: String,
}

/// Which audit entries to read: each filter given narrows the history.
#[derive(Clone, Debug, Default)]
pub struct HistoryQuery {
    pub customer: Option<String>,
    /// Entries of any of these groups; none for every group. An erasure, which
    /// belongs to no group, is left out by a set of groups.
    pub groups: Option<Vec<String>>,
    /// Who acted: a token's or staff member's name, `rule:<group>`, `scheduler`.
    pub actor: Option<String>,
    /// Entries at or after this time.
    pub since: Option<Timestamp>,
    /// Entries before this time.
    pub until: Option<Timestamp>,
}

impl HistoryQuery {
    /// Whether an entry of `group`, made by `actor` at `at`, passes the filters other
    /// than the customer.
    pub fn admits(&self, group: Option<&str>, actor: &str, at: Timestamp) -> bool {
        self.groups
            .as_ref()
            .is_none_or(|gs| group.is_some_and(|g| gs.iter().any(|x| x == g)))
            && self.actor.as_deref().is_none_or(|a| a == actor)
            && self.since.is_none_or(|s| at >= s)
            && self.until.is_none_or(|u| at < u)
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
    /// None for an erasure, which is the customer's.
    pub group: Option<String>,
    /// `added`, `removed`, `updated`, `activated`, `expired`, `excluded`, `unexcluded`,
    /// `erased`.
    pub action: String,
    pub source: Option<Source>,
    pub actor: String,
    pub trigger: Trigger,
    pub run: Option<i64>,
    pub reason: String,
}

/// A run of a group's rule: what ran, when, why, and what it did.
#[derive(Clone, Debug, Default, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunRecord {
    pub id: i64,
    pub group: String,
    pub trigger: Trigger,
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
    pub status: RunStatus,
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

/// Failures as `FailureCount` objects: a tuple would break generated clients.
pub fn failures_as_objects<S: serde::Serializer>(
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

/// One membership an import asks for, by file line. The group is usually borrowed:
/// every row of a file names one of a few groups.
#[derive(Clone, Debug)]
pub struct StagedRow<'a> {
    pub line: u64,
    pub customer: String,
    pub group: std::borrow::Cow<'a, str>,
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
    /// `membership.activated`, `membership.expired`, and `customer.erased` (the
    /// customer's facts were deleted and their memberships ended).
    pub event: String,
    #[serde(with = "cohort_model::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub at: Timestamp,
    pub customer: String,
    /// The membership's group; none for `customer.erased`.
    pub group: Option<String>,
    /// The membership; none for `customer.erased`.
    pub membership: Option<i64>,
    /// The membership as stored when the event is read (a later event may have moved
    /// its end since), with its state at the event's time; none for `customer.erased`.
    #[serde(default)]
    pub snapshot: Option<MembershipSnapshot>,
    /// The version of this shape ([`EVENT_SCHEMA`]).
    #[serde(default = "event_schema")]
    pub schema: u32,
    pub trigger: Trigger,
    pub actor: String,
    pub reason: String,
}

named! {
    /// What a bearer token may do. Each role may do everything the ones before it may.
    #[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
    #[serde(rename_all = "kebab-case")]
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    pub enum Role {
        /// Reads everything.
        ReadOnly = "read-only",
        /// Also groups, rules, customers, runs, imports and manual membership.
        Operator = "operator",
        /// Also plugins and settings (webhooks).
        Admin = "admin",
    }
}

/// A member of the billing staff who signs in to the console. The password is kept
/// only as an argon2id digest, and only `Staff::staff_login` hands it out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StaffMember {
    pub name: String,
    pub role: Role,
    /// The groups this member sees, and only their customers and history; none for
    /// every group.
    pub groups: Option<Vec<String>>,
    #[serde(with = "cohort_model::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    #[serde(with = "cohort_model::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub password_changed_at: Timestamp,
}

/// What signing a member in needs: the digest of their password and whether repeated
/// failures have locked them out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaffLogin {
    pub member: StaffMember,
    /// The password's argon2id digest, in the PHC string form.
    pub password_hash: String,
    /// Failed sign-ins since the last success or lock.
    pub failed_sign_ins: u32,
    /// Until when sign-ins are refused, if they are.
    pub locked_until: Option<Timestamp>,
}

/// A signed-in member's session, kept under the digest of its cookie.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaffSession {
    pub staff: String,
    /// The token every state-changing form of this session must carry.
    pub csrf: String,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

/// How many failed sign-ins in a row lock a member out, and for how long: a password
/// guessed online gets five tries per quarter hour.
pub const SIGN_IN_FAILURES: u32 = 5;
pub const SIGN_IN_LOCK_SECONDS: i64 = 15 * 60;

/// An API token as stored: its name and role, never the token itself.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenRecord {
    pub id: i64,
    pub name: String,
    pub role: Role,
    #[serde(with = "cohort_model::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    #[serde(with = "cohort_model::rfc3339::option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub revoked_at: Option<Timestamp>,
    /// When the token stops being accepted, if ever.
    #[serde(with = "cohort_model::rfc3339::option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub expires_at: Option<Timestamp>,
    /// The groups the token is limited to, as a staff member may be; none for every
    /// group.
    pub groups: Option<Vec<String>>,
}

/// The one rule for a token about to be made, from the CLI or the API: its name,
/// trimmed, or the field at fault (`name`, `expires_at`) and why.
pub fn check_new_token(
    name: &str,
    expires_at: Option<Timestamp>,
    now: Timestamp,
) -> Result<String, (&'static str, String)> {
    let name = name.trim();
    cohort_model::check_label(name, 64).map_err(|why| ("name", format!("a token's name {why}")))?;
    if let Some(at) = expires_at.filter(|at| *at <= now) {
        return Err((
            "expires_at",
            format!(
                "the token would expire at {}, which is not in the future",
                cohort_model::rfc3339::format(at)
            ),
        ));
    }
    Ok(name.to_string())
}

impl TokenRecord {
    /// Whether the token is past its expiry at `now`.
    pub fn expired(&self, now: Timestamp) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }
}

/// The version of an event's shape: 2 added `snapshot` and `customer.erased` (whose
/// `group` and `membership` are null).
pub const EVENT_SCHEMA: u32 = 2;

fn event_schema() -> u32 {
    EVENT_SCHEMA
}

/// A membership as an event carries it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MembershipSnapshot {
    pub source: Source,
    #[serde(with = "cohort_model::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub start: Timestamp,
    #[serde(with = "cohort_model::rfc3339::option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub end: Option<Timestamp>,
    /// Its state at the event's time, by its window as stored.
    pub state: State,
}

impl MembershipSnapshot {
    pub fn new(source: Source, start: Timestamp, end: Option<Timestamp>, at: Timestamp) -> Self {
        MembershipSnapshot {
            source,
            start,
            end,
            state: cohort_model::state(start, end, at),
        }
    }
}

/// A webhook and how far delivery to it has come.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Webhook {
    pub id: i64,
    pub url: String,
    /// The key of the HMAC-SHA256 signature; shown only when the webhook is created and
    /// when it is rotated.
    #[serde(skip)]
    pub secret: String,
    /// The secret before the last rotation, still signing with the new one until
    /// `previous_secret_until`.
    #[serde(skip)]
    pub previous_secret: Option<String>,
    /// Until when deliveries carry a signature with the secret before the last rotation
    /// too.
    #[serde(with = "cohort_model::rfc3339::option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub previous_secret_until: Option<Timestamp>,
    /// The kinds of event it receives (`membership.added`, ..., `customer.erased`);
    /// every kind if none are named.
    pub events: Option<Vec<String>>,
    /// A paused webhook keeps its position and receives nothing until resumed.
    pub paused: bool,
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
    /// Counts the changes made to it (settings, rotation, rewinding): a delivery made
    /// under an earlier one is not recorded, and its worker starts over.
    #[serde(skip)]
    pub generation: i64,
}

/// The kinds of event the change feed has.
pub const EVENT_KINDS: &[&str] = &[
    "membership.added",
    "membership.removed",
    "membership.updated",
    "membership.activated",
    "membership.expired",
    "customer.erased",
];

impl Webhook {
    /// Whether it receives events of `kind`.
    pub fn wants(&self, kind: &str) -> bool {
        self.events
            .as_ref()
            .is_none_or(|kinds| kinds.iter().any(|k| k == kind))
    }
}

/// A change to a webhook (see `Webhooks::change_webhook`).
#[derive(Clone, Copy, Debug)]
pub enum WebhookChange<'a> {
    /// Its address, the kinds of event it receives (all if none), and whether it is
    /// paused.
    Settings {
        url: &'a str,
        events: Option<&'a [String]>,
        paused: bool,
    },
    /// A new secret; the one it replaces still signs until `previous_until`.
    Rotate {
        secret: &'a str,
        previous_until: Timestamp,
    },
    /// Deliver again every event after `after` (attempts and the last error start
    /// over).
    Rewind { after: i64 },
}

/// What a conditional write did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Conditional<T> {
    /// Nothing of that id.
    Missing,
    /// The precondition did not hold of what is stored: nothing was written.
    Refused,
    Written(T),
}

/// One attempt to deliver to a webhook: a batch of events, or a ping.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeliveryAttempt {
    #[serde(default)]
    pub id: i64,
    pub webhook: i64,
    #[serde(with = "cohort_model::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub at: Timestamp,
    /// The events sent were those after this position, up to `last`.
    pub after: i64,
    pub last: i64,
    /// How many events the request carried (none for a ping).
    pub events: u32,
    /// A test delivery, made on request.
    pub ping: bool,
    /// The receiver's HTTP status, if it answered.
    pub status: Option<u16>,
    pub latency_ms: u64,
    /// Why the attempt failed; none if it succeeded.
    pub error: Option<String>,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_token_needs_a_plain_name_and_an_expiry_to_come() {
        assert_eq!(check_new_token("  sync ", Some(11), 10), Ok("sync".into()));
        for bad in ["", "   ", "a\nb", "rtl\u{202e}txt"] {
            let (field, _) = check_new_token(bad, None, 10).expect_err(bad);
            assert_eq!(field, "name", "{bad:?}");
        }
        assert!(check_new_token(&"x".repeat(64), None, 10).is_ok());
        assert_eq!(
            check_new_token(&"x".repeat(65), None, 10).map_err(|e| e.0),
            Err("name")
        );
        let (field, why) = check_new_token("late", Some(10), 10).expect_err("now is past");
        assert_eq!(field, "expires_at");
        assert!(why.contains("not in the future"), "{why}");
    }

    /// JSON's name of `value`, which serde derives on its own.
    fn json_name(value: impl Serialize) -> String {
        serde_json::to_value(value)
            .expect("serializes")
            .as_str()
            .expect("a string")
            .to_string()
    }

    #[test]
    fn names_kept_in_the_store_are_json_s_names() {
        use Trigger as T;
        for t in [
            T::Manual,
            T::Periodic,
            T::OnRegistration,
            T::Import,
            T::Clock,
        ] {
            assert_eq!(json_name(t), t.as_str());
            assert_eq!(Trigger::parse(t.as_str()), Some(t));
        }
        use RunStatus as S;
        for s in [S::Running, S::Finished, S::Failed, S::Interrupted] {
            assert_eq!(json_name(s), s.as_str());
            assert_eq!(RunStatus::parse(&s.to_string()), Some(s));
        }
        for r in [Role::ReadOnly, Role::Operator, Role::Admin] {
            assert_eq!(json_name(r), r.as_str());
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert_eq!(Trigger::parse("Manual"), None);
    }
}
