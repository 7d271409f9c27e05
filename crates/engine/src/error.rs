use cohort_host::PrepareError;

use crate::plugins::Purpose;
use cohort_model::Timestamp;

/// Every way an engine call can fail. Each names what it is about; none leaves the
/// store half-changed.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] cohort_store::StoreError),
    #[error("plugin: {0}")]
    Load(#[from] cohort_host::LoadError),
    #[error(transparent)]
    InvalidGroup(#[from] cohort_model::InvalidGroup),
    #[error(transparent)]
    InvalidCustomer(#[from] cohort_model::InvalidCustomer),
    #[error(
        "no plugin `{plugin}` has been added{} (see `cohort plugin list` and `cohort plugin add`)",
        nearest.as_ref().map(|n| format!("; did you mean `{n}`?")).unwrap_or_default()
    )]
    UnknownPlugin {
        plugin: String,
        /// The added plugin whose id is nearest, if one is near enough to be a typo.
        nearest: Option<String>,
    },
    /// What went wrong with one condition of a group's rule, and where.
    #[error("group `{group}`: {at}: {source}")]
    Condition {
        group: String,
        /// Where in the rule, e.g. `rule.all[0].any[1]`.
        at: String,
        source: Box<EngineError>,
    },
    #[error("no version of plugin `{plugin}` matches `{requirement}` (available: {available})")]
    NoMatchingVersion {
        plugin: String,
        requirement: String,
        available: String,
    },
    #[error("plugin `{plugin}`: `{requirement}` is not a version requirement: {problem}")]
    Version {
        plugin: String,
        requirement: String,
        problem: String,
    },
    #[error("group `{group}`: {at}: plugin `{plugin}` rejects the configuration: {}", problems.join("; "))]
    Config {
        group: String,
        /// Where in the rule, e.g. `rule.all[0].any[1]`.
        at: String,
        plugin: String,
        /// Each problem with its field, e.g. `config/countries/1: ...`.
        problems: Vec<String>,
    },
    /// A condition the group was saved with no longer prepares, when it runs: the
    /// configuration was accepted then, and what it relies on (a data file, say) has
    /// changed since.
    #[error(
        "group `{group}`: {at}: plugin `{plugin}` cannot prepare the condition the group was saved with: {}",
        problems.join("; ")
    )]
    Unprepared {
        group: String,
        at: String,
        plugin: String,
        problems: Vec<String>,
    },
    #[error("group `{group}`: {at}: {problem}")]
    Prepare {
        group: String,
        at: String,
        problem: String,
    },
    #[error("group `{group}`: schedule: {problem}")]
    Schedule { group: String, problem: String },
    #[error("plugin `{plugin}`: budget: {}", problems.join("; "))]
    Budget {
        plugin: String,
        problems: Vec<String>,
    },
    #[error("plugin `{plugin}` does not ask for a data directory; refusing to grant `{dir}`")]
    Grant { plugin: String, dir: String },
    /// A plugin refused for want of a signature the store accepts.
    #[error("plugin `{plugin}` is refused: {reason}")]
    Unsigned { plugin: String, reason: String },
    #[error("plugin `{plugin}`: data directory `{dir}`: {problem}")]
    DataDir {
        plugin: String,
        dir: String,
        problem: String,
    },
    #[error(
        "group `{0}` is disabled: its rule does not run (set auto.mode to add-only or full-sync)"
    )]
    Disabled(String),
    #[error("group `{0}` does not allow manual runs (auto.triggers.manual is false)")]
    ManualOff(String),
    #[error("no {what} `{id}`")]
    NotFound { what: &'static str, id: String },
    /// A caller limited to some groups asked for what spans every group.
    #[error("an account or token limited to groups cannot {0}")]
    Limited(&'static str),
    #[error("the list of groups is empty: name at least one, or leave it out for every group")]
    EmptyScope,
    #[error("group `{group}`: not run: its run could not be recorded: {problem}")]
    NotStarted { group: String, problem: String },
    /// A run of a scan shared by workers failed in one of its ranges.
    #[error("group `{group}`: the run failed: {problem}")]
    Failed { group: String, problem: String },
    /// A run was asked to stop.
    #[error("the run was cancelled by {by}")]
    Cancelled { by: String },
    #[error(
        "workers share a PostgreSQL store: this store is a file, where a run is one process's (use --db postgres://...)"
    )]
    NoScans,
    #[error("group `{group}` is in use by {}; remove those references first or force the deletion", uses.iter().map(|(k, e)| format!("{k} `{e}`")).collect::<Vec<_>>().join(", "))]
    InUse {
        group: String,
        uses: Vec<(String, String)>,
    },
    #[error(
        "`{0}` is not a kind of entity: use lower-case letters, digits and `-` (tariff, promotion, contract-template, segment, vat-setting, ...)"
    )]
    UseKind(String),
    #[error(
        "the window ends (`{}`) before it starts (`{}`)",
        cohort_model::rfc3339::format(*end),
        cohort_model::rfc3339::format(*start)
    )]
    Window { start: Timestamp, end: Timestamp },
}

impl EngineError {
    /// The error itself, out of the condition that says where it happened.
    pub fn root(&self) -> &EngineError {
        match self {
            EngineError::Condition { source, .. } => source.root(),
            other => other,
        }
    }

    /// What preparing condition `index` of clause `clause` of `group` for `purpose` met.
    pub(crate) fn from_prepare(
        group: &str,
        clause: usize,
        index: usize,
        e: PrepareError,
        purpose: Purpose,
    ) -> Self {
        let at = format!("rule.all[{clause}].any[{index}]");
        match e {
            PrepareError::Config { plugin, errors } => {
                let problems = errors
                    .into_iter()
                    .map(|e| {
                        if e.path.is_empty() {
                            format!("config: {}", e.message)
                        } else {
                            format!("config{}: {}", e.path, e.message)
                        }
                    })
                    .collect();
                let group = group.to_string();
                match purpose {
                    Purpose::Save => EngineError::Config {
                        group,
                        at,
                        plugin,
                        problems,
                    },
                    Purpose::Run => EngineError::Unprepared {
                        group,
                        at,
                        plugin,
                        problems,
                    },
                }
            }
            other => EngineError::Prepare {
                group: group.to_string(),
                at,
                problem: other.to_string(),
            },
        }
    }
}
