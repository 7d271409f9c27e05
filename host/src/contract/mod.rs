//! The versions of the `cohort:plugin` contract this host runs: which one a component
//! was built against, and calls into it whatever its version.
//!
//! Each supported version has a module of its own (`v0_1.rs`, `v0_2.rs`, `v0_3.rs`): its
//! `bindgen!` of the frozen WIT folder, the host functions, and the conversions
//! between its generated types and the model's. A new version gets a new module beside
//! the old ones; released modules never change, so a plugin built against an older
//! supported version keeps loading. Dispatch over the versions is here, in one place.
//!
//! Customers are kept in the newest version's column types (`crate::columns`); a call
//! to a plugin of the newest version moves the columns it reads into the call and
//! back, a call to an older one gets a converted copy.

use cohort_model::{ConfigError, FieldSet, PluginBudget, PluginInfo, Timestamp, Verdicts};
use wasmtime::Store;
use wasmtime::component::{InstancePre, ResourceAny};

use crate::columns::Batch;
use crate::error::LoadError;
use crate::sandbox::State;

/// What every version needs besides the batch: the host functions, and the plugin's
/// description, configuration errors and verdicts in the model's terms. The generated
/// types of each version have the same names, so the code is the same.
macro_rules! glue {
    ($($flag:expr => $field:expr),*) => {
        use self::cohort::plugin::types as wit;
        use crate::error::LoadError;
        use crate::sandbox::State;
        use cohort_model::{Capability, ConfigError, Field, FieldSet, PluginInfo, Verdicts};

        impl self::cohort::plugin::types::Host for State {}

        impl self::cohort::plugin::host::Host for State {
            fn intern(&mut self, text: String) -> wasmtime::Result<u32> {
                self.symbols.intern(&text).map_err(wasmtime::Error::msg)
            }

            fn symbol_text(&mut self, symbol: u32) -> wasmtime::Result<Option<String>> {
                Ok(self.symbols.text(symbol).map(|s| s.to_string()))
            }
        }

        pub(crate) fn info(info: wit::PluginInfo) -> Result<PluginInfo, LoadError> {
            if !cohort_model::is_slug(&info.id) {
                return Err(LoadError::Description(format!(
                    "id `{}` must be 1-64 lower-case letters, digits and `-`, \
                         not starting with `-`",
                    info.id
                )));
            }
            // Groups pick a plugin by a version requirement (`^0.1`), which only a
            // semantic version can meet.
            if let Err(e) = semver::Version::parse(&info.version) {
                return Err(LoadError::Description(format!(
                    "plugin `{}` gives version `{}`, which is not a semantic version \
                         (MAJOR.MINOR.PATCH, such as `1.4.0`): {e}",
                    info.id, info.version
                )));
            }
            if let Err(e) = serde_json::from_str::<serde_json::Value>(&info.config_schema) {
                return Err(LoadError::Description(format!(
                    "plugin `{}`: its configuration schema is not JSON: {e}",
                    info.id
                )));
            }
            let flags = [
                (wit::Fields::COUNTRY, Field::Country),
                (wit::Fields::REGISTRATION_IP, Field::RegistrationIp),
                (wit::Fields::REGISTRATION_PARAMS, Field::RegistrationParams),
                (wit::Fields::PAYERS, Field::Payers),
                (wit::Fields::PROVIDER, Field::Provider),
                (wit::Fields::AUTH_METHODS, Field::AuthMethods),
                (wit::Fields::VERIFICATION_STATUS, Field::VerificationStatus),
                (
                    wit::Fields::VERIFICATION_METHODS,
                    Field::VerificationMethods,
                ),
                (wit::Fields::SUBSCRIPTIONS, Field::Subscriptions),
                (wit::Fields::TAGS, Field::Tags),
                (wit::Fields::ATTRIBUTES, Field::Attributes),
                $(($flag, $field),)*
            ];
            let reads: FieldSet = flags
                .iter()
                .filter(|(flag, _)| info.reads.contains(*flag))
                .map(|(_, field)| *field)
                .collect();
            let mut capabilities: Vec<Capability> = info
                .capabilities
                .iter()
                .map(|c| match c {
                    wit::Capability::DataDir => Capability::DataDir,
                })
                .collect();
            capabilities.dedup();
            Ok(PluginInfo {
                id: info.id,
                version: info.version,
                description: info.description,
                config_schema: info.config_schema,
                reads,
                capabilities,
            })
        }

        pub(crate) fn config_errors(errors: Vec<wit::ConfigError>) -> Vec<ConfigError> {
            errors
                .into_iter()
                .map(|e| ConfigError {
                    path: e.path,
                    message: e.message,
                })
                .collect()
        }

        /// The undecided customers of an answer, by index.
        fn undecided(list: Vec<wit::Undecided>) -> Vec<(u32, String)> {
            list.into_iter().map(|u| (u.index, u.message)).collect()
        }
    };
}

pub(crate) mod v0_1;
pub(crate) mod v0_2;
pub(crate) mod v0_3;

/// Contract versions this host can run, newest first.
pub const SUPPORTED_CONTRACTS: &[&str] = &["0.3.0", "0.2.0", "0.1.0"];

/// Append the verdicts of a batch of `n` customers called as of `as_of` to `out`, or
/// say how the plugin broke the contract (and append nothing). `until` is what the
/// plugin said of how long each verdict holds; `None` from a contract that cannot say,
/// whose verdicts then hold for their as-of time only.
fn accept(
    matches: &[u8],
    mut undecided: Vec<(u32, String)>,
    until: Option<&[Timestamp]>,
    as_of: Timestamp,
    n: usize,
    out: &mut Verdicts,
) -> Result<(), String> {
    if matches.len() != n {
        return Err(format!(
            "returned {} verdicts for {} customers",
            matches.len(),
            n
        ));
    }
    undecided.sort_unstable_by_key(|(i, _)| *i);
    if let Some((i, _)) = undecided.last()
        && *i as usize >= n
    {
        return Err(format!("called customer {i} undecided in a batch of {n}"));
    }
    if let Some(w) = undecided.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(format!("called customer {} undecided twice", w[0].0));
    }
    // The byte of an undecided customer is ignored; every other must be 0 or 1, or a
    // plugin's garbage would count as a match.
    let is_undecided = |i: usize| {
        undecided
            .binary_search_by_key(&i, |(u, _)| *u as usize)
            .is_ok()
    };
    if let Some((i, b)) = matches
        .iter()
        .enumerate()
        .find(|&(i, &b)| b > 1 && !is_undecided(i))
    {
        return Err(format!(
            "gave customer {i} the verdict byte {b}, which is neither 0 (no match) nor 1 \
             (match)"
        ));
    }
    let now_only;
    let until = match until {
        Some(until) => {
            if !until.is_empty() && until.len() != n {
                return Err(format!(
                    "said how long {} verdicts hold for {n} customers",
                    until.len()
                ));
            }
            // A verdict must hold at least at the time it was made for.
            if let Some((i, t)) = until
                .iter()
                .enumerate()
                .find(|&(i, &t)| t <= as_of && !is_undecided(i))
            {
                return Err(format!(
                    "said customer {i}'s verdict holds until {t}, which is not after the \
                     as-of time {as_of}"
                ));
            }
            until
        }
        None => {
            now_only = vec![as_of.saturating_add(1); n];
            &now_only[..]
        }
    };
    out.extend_batch(matches, undecided, until);
    Ok(())
}

const EXPORT_PREFIX: &str = "cohort:plugin/condition@";

/// A contract version a loaded plugin was built against.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Version {
    V0_1,
    V0_2,
    V0_3,
}

impl Version {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Version::V0_1 => "0.1.0",
            Version::V0_2 => "0.2.0",
            Version::V0_3 => "0.3.0",
        }
    }
}

/// The custom section in which a component declares the budget it needs (JSON, a
/// [`PluginBudget`]). A custom section, not a field of the contract: it works for
/// every contract version and every language's toolchain (the Python SDK's build adds
/// it), and the component's digest, which a signature covers, covers it too.
pub const BUDGET_SECTION: &str = "cohort:budget";

/// What is read from a component's bytes before it is compiled.
pub(crate) struct Header {
    pub(crate) version: Version,
    /// Empty when the component declares no budget.
    pub(crate) budget: PluginBudget,
}

/// Which contract version the component in `bytes` was built against, from the name
/// of its `cohort:plugin/condition@X.Y.Z` export, and the budget it declares. Read
/// from the bytes before anything is compiled: a component the host cannot run costs
/// a parse, not a compile (tens of seconds for a large one).
pub(crate) fn detect(bytes: &[u8]) -> Result<Header, LoadError> {
    use wasmparser::{Parser, Payload};
    let invalid = |e: wasmparser::BinaryReaderError| LoadError::Invalid(e.to_string());
    let mut exports: Vec<String> = Vec::new();
    let mut budget: Option<PluginBudget> = None;
    // What encloses the payload being read: nested modules and components have exports
    // of their own, and only the outermost component's are the plugin's. A budget is
    // read at the top (where a build tool appends it) or in a core module of the
    // component itself (where a compiled language's linker puts a section the source
    // declares, as the Rust SDK's `declare_budget!` does).
    let mut within: Vec<bool> = Vec::new();
    for payload in Parser::new(0).parse_all(bytes) {
        let payload = payload.map_err(invalid)?;
        match &payload {
            Payload::ModuleSection { .. } => within.push(true),
            Payload::ComponentSection { .. } => within.push(false),
            Payload::End(_) => drop(within.pop()),
            Payload::ComponentExportSection(section) if within.is_empty() => {
                for export in section.clone() {
                    exports.push(export.map_err(invalid)?.name.name.to_string());
                }
            }
            Payload::CustomSection(section)
                if section.name() == BUDGET_SECTION && within.len() <= 1 && within != [false] =>
            {
                if budget.is_some() {
                    return Err(LoadError::Budget("it appears twice".into()));
                }
                budget = Some(declared_budget(section.data())?);
            }
            _ => {}
        }
    }
    let Some(found) = exports.iter().find_map(|n| n.strip_prefix(EXPORT_PREFIX)) else {
        return Err(LoadError::WrongWorld {
            exports: if exports.is_empty() {
                "none".into()
            } else {
                exports
                    .iter()
                    .map(|e| format!("`{e}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        });
    };
    // Semver for 0.x: a minor version is a breaking line, patches within it are
    // compatible. Newer patches may import host functions this host lacks; the linker
    // reports those by name.
    let mut parts = found.split('.').map(str::parse::<u64>);
    let version = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(Ok(0)), Some(Ok(1)), Some(Ok(_)), None) => Version::V0_1,
        (Some(Ok(0)), Some(Ok(2)), Some(Ok(_)), None) => Version::V0_2,
        (Some(Ok(0)), Some(Ok(3)), Some(Ok(_)), None) => Version::V0_3,
        _ => {
            return Err(LoadError::UnsupportedContract {
                found: found.to_string(),
                supported: SUPPORTED_CONTRACTS.join(", "),
            });
        }
    };
    Ok(Header {
        version,
        budget: budget.unwrap_or_default(),
    })
}

/// The budget a `cohort:budget` section declares.
fn declared_budget(data: &[u8]) -> Result<PluginBudget, LoadError> {
    let budget: PluginBudget =
        serde_json::from_slice(data).map_err(|e| LoadError::Budget(e.to_string()))?;
    let problems = budget.problems();
    if !problems.is_empty() {
        return Err(LoadError::Budget(problems.join("; ")));
    }
    Ok(budget)
}

/// Add the host's side of every supported version to `linker`.
pub(crate) fn link(linker: &mut wasmtime::component::Linker<State>) -> wasmtime::Result<()> {
    use wasmtime::component::HasSelf;
    v0_1::Plugin::add_to_linker::<State, HasSelf<State>>(linker, |s| s)?;
    v0_2::Plugin::add_to_linker::<State, HasSelf<State>>(linker, |s| s)?;
    v0_3::Plugin::add_to_linker::<State, HasSelf<State>>(linker, |s| s)
}

/// A plugin compiled and linked, ready to instantiate, in the version it was built
/// against.
pub(crate) enum Pre {
    V0_1(v0_1::PluginPre<State>),
    V0_2(v0_2::PluginPre<State>),
    V0_3(v0_3::PluginPre<State>),
}

/// A running instance's exports.
pub(crate) enum Instance {
    V0_1(v0_1::Plugin),
    V0_2(v0_2::Plugin),
    V0_3(v0_3::Plugin),
}

/// What a plugin answered for a batch, short of a trap.
pub(crate) enum Answer {
    /// The verdicts were appended.
    Verdicts,
    /// The plugin failed the whole batch, with its message.
    Failed(String),
    /// The answer breaks the contract, as said.
    Broken(String),
}

impl Pre {
    pub(crate) fn new(version: Version, pre: InstancePre<State>) -> Result<Pre, LoadError> {
        let contract = |e: wasmtime::Error| LoadError::Contract {
            version: version.as_str(),
            message: format!("{e:#}"),
        };
        Ok(match version {
            Version::V0_1 => Pre::V0_1(v0_1::PluginPre::new(pre).map_err(contract)?),
            Version::V0_2 => Pre::V0_2(v0_2::PluginPre::new(pre).map_err(contract)?),
            Version::V0_3 => Pre::V0_3(v0_3::PluginPre::new(pre).map_err(contract)?),
        })
    }

    pub(crate) fn version(&self) -> Version {
        match self {
            Pre::V0_1(_) => Version::V0_1,
            Pre::V0_2(_) => Version::V0_2,
            Pre::V0_3(_) => Version::V0_3,
        }
    }

    pub(crate) fn instantiate(&self, store: &mut Store<State>) -> wasmtime::Result<Instance> {
        Ok(match self {
            Pre::V0_1(pre) => Instance::V0_1(pre.instantiate(store)?),
            Pre::V0_2(pre) => Instance::V0_2(pre.instantiate(store)?),
            Pre::V0_3(pre) => Instance::V0_3(pre.instantiate(store)?),
        })
    }
}

impl Instance {
    /// The plugin's description, or what is wrong with it.
    pub(crate) fn describe(
        &self,
        store: &mut Store<State>,
    ) -> wasmtime::Result<Result<PluginInfo, LoadError>> {
        Ok(match self {
            Instance::V0_1(b) => v0_1::info(b.cohort_plugin_condition().call_describe(store)?),
            Instance::V0_2(b) => v0_2::info(b.cohort_plugin_condition().call_describe(store)?),
            Instance::V0_3(b) => v0_3::info(b.cohort_plugin_condition().call_describe(store)?),
        })
    }

    /// A prepared evaluator, or every problem with `config`.
    pub(crate) fn prepare(
        &self,
        store: &mut Store<State>,
        config: &str,
    ) -> wasmtime::Result<Result<ResourceAny, Vec<ConfigError>>> {
        Ok(match self {
            Instance::V0_1(b) => b
                .cohort_plugin_condition()
                .call_prepare(store, config)?
                .map_err(v0_1::config_errors),
            Instance::V0_2(b) => b
                .cohort_plugin_condition()
                .call_prepare(store, config)?
                .map_err(v0_2::config_errors),
            Instance::V0_3(b) => b
                .cohort_plugin_condition()
                .call_prepare(store, config)?
                .map_err(v0_3::config_errors),
        })
    }

    /// Evaluate the customers of `batch` (filled for `reads`), appending their verdicts
    /// to `out`. `batch` is as it was when this returns.
    pub(crate) fn evaluate(
        &self,
        store: &mut Store<State>,
        evaluator: ResourceAny,
        as_of: Timestamp,
        batch: &mut Batch,
        reads: FieldSet,
        out: &mut Verdicts,
    ) -> wasmtime::Result<Answer> {
        let n = batch.count as usize;
        let answer = match self {
            Instance::V0_1(b) => b
                .cohort_plugin_condition()
                .evaluator()
                .call_evaluate(store, evaluator, as_of, &batch.to_v0_1())?
                .map(|v| v0_1::verdicts(v, as_of, n, out)),
            Instance::V0_2(b) => b
                .cohort_plugin_condition()
                .evaluator()
                .call_evaluate(store, evaluator, as_of, &batch.to_v0_2(reads))?
                .map(|v| v0_2::verdicts(v, as_of, n, out)),
            Instance::V0_3(b) => batch
                .lent(reads, |sent| {
                    b.cohort_plugin_condition()
                        .evaluator()
                        .call_evaluate(store, evaluator, as_of, sent)
                })?
                .map(|v| v0_3::verdicts(v, as_of, n, out)),
        };
        Ok(match answer {
            Ok(Ok(())) => Answer::Verdicts,
            Ok(Err(broken)) => Answer::Broken(broken),
            Err(message) => Answer::Failed(message),
        })
    }

    /// The plugin's sentence for each customer of `batch` (filled for `reads`), or
    /// `None` from a contract before 0.3.0, which cannot explain.
    pub(crate) fn explain(
        &self,
        store: &mut Store<State>,
        evaluator: ResourceAny,
        as_of: Timestamp,
        batch: &mut Batch,
        reads: FieldSet,
    ) -> wasmtime::Result<Option<Result<Vec<String>, String>>> {
        let Instance::V0_3(b) = self else {
            return Ok(None);
        };
        let n = batch.count as usize;
        let answer = batch.lent(reads, |sent| {
            b.cohort_plugin_condition()
                .evaluator()
                .call_explain(store, evaluator, as_of, sent)
        })?;
        Ok(Some(answer.and_then(|sentences| {
            if sentences.len() == n {
                Ok(sentences)
            } else {
                Err(format!(
                    "gave {} explanations for {n} customers",
                    sentences.len()
                ))
            }
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::v0_3::cohort::plugin::types as wit;
    use super::v0_3::info;
    use cohort_model::{FOREVER, Timestamp, Verdict, Verdicts};

    const AS_OF: Timestamp = 1_000;

    fn verdicts(v: wit::Verdicts, n: usize, out: &mut Verdicts) -> Result<(), String> {
        super::v0_3::verdicts(v, AS_OF, n, out)
    }

    #[test]
    fn verdicts_are_placed_by_index_and_undecided_wins() {
        let mut out = Verdicts::default();
        out.push(cohort_model::VerdictRef::NoMatch);
        let v = wit::Verdicts {
            matches: vec![1, 0, 1],
            undecided: vec![wit::Undecided {
                index: 2,
                message: "db unreadable".into(),
            }],
            until: Vec::new(),
        };
        verdicts(v, 3, &mut out).expect("well-formed");
        // An undecided customer's byte is ignored, whatever it is.
        let ignored = wit::Verdicts {
            matches: vec![9],
            undecided: vec![wit::Undecided {
                index: 0,
                message: "no data".into(),
            }],
            until: Vec::new(),
        };
        verdicts(ignored, 1, &mut out).expect("an undecided byte is ignored");
        assert_eq!(
            out.to_vec(),
            vec![
                Verdict::NoMatch,
                Verdict::Match,
                Verdict::NoMatch,
                Verdict::Error("db unreadable".into()),
                Verdict::Error("no data".into()),
            ]
        );
    }

    #[test]
    fn malformed_verdicts_break_the_contract() {
        let mut out = Verdicts::default();
        let short = wit::Verdicts {
            matches: vec![1],
            undecided: Vec::new(),
            until: Vec::new(),
        };
        assert_eq!(
            verdicts(short, 2, &mut out).expect_err("too few"),
            "returned 1 verdicts for 2 customers"
        );
        let outside = wit::Verdicts {
            matches: vec![1, 1],
            undecided: vec![wit::Undecided {
                index: 5,
                message: String::new(),
            }],
            until: Vec::new(),
        };
        assert!(verdicts(outside, 2, &mut out).is_err());
        let garbage = wit::Verdicts {
            matches: vec![1, 7, 0],
            undecided: Vec::new(),
            until: Vec::new(),
        };
        assert_eq!(
            verdicts(garbage, 3, &mut out).expect_err("a byte of 7"),
            "gave customer 1 the verdict byte 7, which is neither 0 (no match) nor 1 (match)"
        );
        let twice = wit::Verdicts {
            matches: vec![1, 1],
            undecided: vec![
                wit::Undecided {
                    index: 1,
                    message: "a".into(),
                },
                wit::Undecided {
                    index: 1,
                    message: "b".into(),
                },
            ],
            until: Vec::new(),
        };
        assert_eq!(
            verdicts(twice, 2, &mut out).expect_err("twice"),
            "called customer 1 undecided twice"
        );
        assert!(
            out.is_empty(),
            "nothing is appended from a malformed answer"
        );
    }

    #[test]
    fn validity_must_fit_the_batch_and_come_after_the_as_of_time() {
        let answer = |until: Vec<Timestamp>| wit::Verdicts {
            matches: vec![1, 0],
            undecided: Vec::new(),
            until,
        };
        let mut out = Verdicts::default();
        verdicts(answer(vec![AS_OF + 5, FOREVER]), 2, &mut out).expect("well-formed");
        assert_eq!((out.until(0), out.until(1)), (AS_OF + 5, FOREVER));
        assert_eq!(
            verdicts(answer(vec![FOREVER]), 2, &mut out).expect_err("one short"),
            "said how long 1 verdicts hold for 2 customers"
        );
        assert_eq!(
            verdicts(answer(vec![FOREVER, AS_OF]), 2, &mut out).expect_err("already over"),
            "said customer 1's verdict holds until 1000, which is not after the as-of time 1000"
        );
        assert_eq!(out.len(), 2, "nothing appended from a broken answer");
    }

    #[test]
    fn an_older_contracts_verdicts_hold_for_their_time_only() {
        use super::v0_2::cohort::plugin::types as old;
        let mut out = Verdicts::default();
        let answer = old::Verdicts {
            matches: vec![1, 0],
            undecided: Vec::new(),
        };
        super::v0_2::verdicts(answer, AS_OF, 2, &mut out).expect("well-formed");
        assert_eq!((out.until(0), out.until(1)), (AS_OF + 1, AS_OF + 1));
    }

    #[test]
    fn a_plugin_version_must_be_semantic() {
        let info = |version: &str| {
            info(wit::PluginInfo {
                id: "p".into(),
                version: version.into(),
                description: String::new(),
                config_schema: "{}".into(),
                reads: wit::Fields::empty(),
                capabilities: Vec::new(),
            })
        };
        assert!(info("1.4.0").is_ok());
        assert!(info("0.1.0-beta.2").is_ok());
        for bad in ["not-a-version", "1.4", ""] {
            let err = info(bad).expect_err("refused");
            assert!(
                err.to_string().contains(&format!(
                    "plugin `p` gives version `{bad}`, which is not a semantic version"
                )),
                "{err}"
            );
        }
    }
}
