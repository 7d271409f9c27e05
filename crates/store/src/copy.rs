//! A whole store as rows, for moving it from one backend to another (`cohort store
//! copy`): what a backend hands over from `dump` and takes back in `restore`, with
//! every id, position, time and digest kept, so that history, the change feed's
//! positions, webhooks' positions and tokens carry over unchanged.

use cohort_model::{Membership, Timestamp};

use crate::{
    AuditEntry, ImportProblem, ImportRecord, OutboxEvent, RunRecord, StaffLogin, StoredPlugin,
    TokenRecord, TrustedKey, Webhook,
};

/// Where a dump hands its rows, batch by batch.
pub type Sink<'a> = dyn FnMut(Vec<Kept>) -> crate::Result<()> + 'a;

/// One kept row, whole.
#[derive(Clone, Debug)]
pub enum Kept {
    Plugin {
        plugin: StoredPlugin,
        wasm: Vec<u8>,
    },
    Customer {
        id: String,
        /// The record as stored (JSON).
        record: String,
        registered_at: Timestamp,
        updated_at: Timestamp,
    },
    Group {
        id: String,
        /// The definition as stored (JSON).
        definition: String,
        updated_at: Timestamp,
        last_periodic_run: Option<Timestamp>,
    },
    Use {
        group: String,
        kind: String,
        entity: String,
    },
    Membership {
        membership: Membership,
        /// The last state announced to the feed: `pending`, `active` or `expired`.
        announced: String,
    },
    Exclusion {
        customer: String,
        group: String,
        actor: String,
        reason: String,
        at: Timestamp,
    },
    Entry {
        entry: AuditEntry,
        /// The membership the entry is about; none for a pin.
        membership: Option<i64>,
    },
    Event(OutboxEvent),
    Run(RunRecord),
    Import(ImportRecord),
    Problem {
        import: i64,
        problem: ImportProblem,
    },
    Token {
        token: TokenRecord,
        /// The digest the token is found by.
        hash: String,
    },
    Webhook(Webhook),
    TrustedKey(TrustedKey),
    /// Whether plugins must be signed.
    SignaturesRequired(bool),
    /// A member of staff with their password's digest (sessions are not moved: they
    /// sign in again).
    Staff(StaffLogin),
}

impl Kept {
    /// What the row is, as a copy's progress names it.
    pub fn kind(&self) -> &'static str {
        match self {
            Kept::Plugin { .. } => "plugins",
            Kept::Customer { .. } => "customers",
            Kept::Group { .. } => "groups",
            Kept::Use { .. } => "group uses",
            Kept::Membership { .. } => "memberships",
            Kept::Exclusion { .. } => "pins",
            Kept::Entry { .. } => "audit entries",
            Kept::Event(_) => "events",
            Kept::Run(_) => "runs",
            Kept::Import(_) => "imports",
            Kept::Problem { .. } => "import problems",
            Kept::Token { .. } => "tokens",
            Kept::Webhook(_) => "webhooks",
            Kept::TrustedKey(_) => "trusted keys",
            Kept::SignaturesRequired(_) => "settings",
            Kept::Staff(_) => "staff",
        }
    }
}
