//! Plugins: loaded once per digest of their bytes; and each group's conditions,
//! prepared once per group definition for registrations, and kept apart from run to
//! run while the plugins, budgets and data directories they were prepared on hold.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use cohort_host::{Budget, Condition, Plugin};
use cohort_model::{Customer, Group, PluginBudget, PluginInfo, Timestamp, Verdicts};
use cohort_store::StoredPlugin;

use crate::decided::{group_identity, plugin_identity};
use crate::referred;
use crate::signing::{self, PluginSignature};
use crate::{Engine, EngineError, Result};

/// A loaded plugin, the data directory the operator granted it and the operator's
/// budget for it.
type Granted = (Arc<Plugin>, Option<PathBuf>, PluginBudget);

/// A plugin's budgets, from the bottom up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budgets {
    /// What the plugin's component declares for itself.
    pub declared: PluginBudget,
    /// What the operator set for it.
    pub operator: PluginBudget,
    /// What its calls run on: the host's defaults, the declaration up to the host's
    /// ceiling, the operator's word.
    pub effective: Budget,
}

/// A rule's condition, ready to decide with: a plugin's, prepared, or "a member of
/// this group", answered from the group's memberships (see `referred.rs`).
pub(crate) enum Slot {
    /// Boxed: a prepared condition is large, and a rule's slots move as one list.
    Plugin(Box<Condition>),
    Group(String),
}

/// A rule's condition as it would be prepared: the plugin, data directory and budget
/// the store names for it now, or a group.
enum Resolved {
    Plugin {
        /// The condition's place in the rule: `rule.all[i].any[j]`.
        at: (usize, usize),
        config: String,
        granted: Granted,
    },
    Group(String),
}

impl Resolved {
    /// The condition's entry in its rule's identity (see `decided::plugin_identity`),
    /// as it would be prepared now.
    fn identity(&self) -> String {
        match self {
            Resolved::Plugin {
                granted: (plugin, data_dir, _),
                ..
            } => plugin_identity(plugin.sha256(), data_dir.as_deref()),
            Resolved::Group(g) => group_identity(g),
        }
    }
}

/// A group's conditions as its last run left them.
struct RunConditions {
    /// The definition they were prepared from.
    group: Group,
    slots: Vec<Slot>,
    /// Their identity (see `decided::plugin_identity`) when they were prepared.
    identity: Vec<String>,
}

impl RunConditions {
    /// Whether these still stand for `resolved`, the same rule's conditions as they
    /// would be prepared now: the same plugin builds on the same budgets, with data
    /// directories that hold what they held (a new GeoIP database is new answers).
    fn stands(&self, group: &Group, resolved: &[Resolved], identity: &[String]) -> bool {
        self.group == *group
            && self.identity == identity
            && self
                .slots
                .iter()
                .zip(resolved)
                .all(|(slot, r)| match (slot, r) {
                    (Slot::Plugin(c), Resolved::Plugin { granted, .. }) => {
                        let (plugin, data_dir, budget) = granted;
                        c.data_dir() == data_dir.as_deref()
                            && c.budget() == plugin.budget().with(budget)
                    }
                    (Slot::Group(_), Resolved::Group(_)) => true,
                    _ => false,
                })
    }
}

/// Why a group's conditions are prepared: to check a definition being saved, or to
/// run one saved earlier. A configuration refused on saving is the operator's to mend;
/// one refused on running was accepted then, and what it relies on has changed.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Purpose {
    Save,
    Run,
}

/// Plugins and conditions kept between calls.
#[derive(Default)]
pub(crate) struct PluginCache {
    /// Loaded plugins by the digest of their bytes (a plugin replaced under the same
    /// version is loaded again).
    loaded: Mutex<HashMap<String, Arc<Plugin>>>,
    /// Prepared conditions of groups that registrations check, by group id, with the
    /// definition they were prepared from: a registration must not pay for preparing.
    prepared: Mutex<HashMap<String, (Group, Vec<Slot>)>>,
    /// Each group's conditions as its last run left them, by group id, for the next
    /// (a rescan of a few customers need not pay for preparing either). Apart from the
    /// registrations': on instances that had evaluated pages of a thousand customers,
    /// registrations took a tenth longer.
    runs: Mutex<HashMap<String, RunConditions>>,
}

impl PluginCache {
    /// Let go every prepared condition, for registrations and runs alike.
    fn forget_prepared(&self) {
        self.prepared
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        self.runs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

/// Who vouches for a plugin being added.
#[derive(Clone, Copy, Debug)]
pub enum Provenance<'a> {
    /// The operator, without a signature: refused where signatures are required.
    Unsigned,
    /// The signer of this signature, if the store trusts its key.
    Signed(&'a PluginSignature),
    /// Built with Cohort from its own sources (the standard plugins).
    Standard,
}

/// The signer recorded for a standard plugin.
pub const STANDARD_SIGNER: &str = "standard";

impl Engine {
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

    /// What a component says it is, and its sha256 (hex): checked against the contract
    /// as an addition would be, and kept nowhere.
    pub fn describe_wasm(&self, wasm: &[u8]) -> Result<(PluginInfo, String)> {
        let plugin = self.host.load(wasm)?;
        Ok((plugin.info().clone(), plugin.sha256().to_string()))
    }

    /// Add (or replace) a plugin the operator vouches for without a signature (refused
    /// where the store requires signatures).
    pub fn add_plugin(
        &self,
        wasm: &[u8],
        data_dir: Option<&Path>,
        now: Timestamp,
    ) -> Result<PluginInfo> {
        self.add_plugin_as(wasm, data_dir, Provenance::Unsigned, now)
    }

    /// Add (or replace) a plugin: check it against the contract and its signature
    /// (against the store's trusted keys), then keep its bytes, who vouched for it and
    /// the operator's data-directory grant in the store.
    pub fn add_plugin_as(
        &self,
        wasm: &[u8],
        data_dir: Option<&Path>,
        provenance: Provenance<'_>,
        now: Timestamp,
    ) -> Result<PluginInfo> {
        let plugin = self.host.load(wasm)?;
        let info = plugin.info().clone();
        let (signer, signer_key) = self.vouched(&info, plugin.sha256(), provenance)?;
        let data_dir_as_given = data_dir;
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
                data_dir_as_given: data_dir_as_given.map(|d| d.display().to_string()),
                added_at: now,
                signer,
                signer_key,
                // Kept by the store per plugin id; not written by `put_plugin`.
                budget: PluginBudget::default(),
            },
            wasm,
        )?;
        self.lock_plugins()
            .insert(plugin.sha256().to_string(), plugin);
        // Conditions prepared with an earlier build of this plugin must not keep
        // answering for it.
        self.plugins.forget_prepared();
        Ok(info)
    }

    /// The budgets of plugin `id` (its newest stored version): what it declares, what
    /// the operator set, and what its calls run on.
    pub fn plugin_budget(&self, id: &str) -> Result<Budgets> {
        let (plugin, _, operator) = self.plugin(id, "*")?;
        Ok(Budgets {
            declared: *plugin.declared_budget(),
            effective: plugin.budget().with(&operator),
            operator,
        })
    }

    /// Set the operator's budget for plugin `id` (every version of it), or remove it
    /// with an empty one. Conditions prepared on the old budget are prepared again.
    pub fn set_plugin_budget(&self, id: &str, budget: &PluginBudget) -> Result<()> {
        let problems = budget.problems();
        if !problems.is_empty() {
            return Err(EngineError::Budget {
                plugin: id.to_string(),
                problems,
            });
        }
        let stored = self.store.plugins()?;
        if !stored.iter().any(|p| p.id == id) {
            return Err(EngineError::UnknownPlugin {
                plugin: id.to_string(),
                nearest: nearest(id, stored.iter().map(|p| p.id.as_str())),
            });
        }
        self.store.set_plugin_budget(id, budget)?;
        self.plugins.forget_prepared();
        Ok(())
    }

    /// Who vouches for the plugin described by `info` with digest `sha256`: the name of
    /// the trusted key whose signature it carries (and the key), `standard`, or nobody;
    /// or why it may not be added.
    fn vouched(
        &self,
        info: &PluginInfo,
        sha256: &str,
        provenance: Provenance<'_>,
    ) -> Result<(Option<String>, Option<String>)> {
        let refuse = |reason: String| EngineError::Unsigned {
            plugin: info.id.clone(),
            reason,
        };
        match provenance {
            Provenance::Standard => Ok((Some(STANDARD_SIGNER.into()), None)),
            Provenance::Unsigned => {
                if self.store.signatures_required()? {
                    return Err(refuse(
                        "this store requires plugins signed by a key it trusts: sign it \
                         (`cohort plugin sign`) and add it with its signature"
                            .into(),
                    ));
                }
                Ok((None, None))
            }
            Provenance::Signed(signature) => {
                signing::verify(signature, sha256, &info.id, &info.version).map_err(refuse)?;
                let key = signing::public_key(&signature.key).map_err(refuse)?;
                let trusted = self
                    .store
                    .trusted_keys()?
                    .into_iter()
                    .find(|t| signing::public_key(&t.public_key).is_ok_and(|k| k == key));
                match trusted {
                    Some(t) => Ok((Some(t.name), Some(signature.key.clone()))),
                    None => Err(refuse(format!(
                        "it is signed by {}, which this store does not trust \
                         (`cohort trust add NAME KEY` trusts a key)",
                        signature.key
                    ))),
                }
            }
        }
    }

    fn lock_plugins(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Plugin>>> {
        // Only whole entries are inserted; a panic elsewhere cannot leave one half-made.
        self.plugins
            .loaded
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The newest stored version of plugin `id` that satisfies `requirement`.
    fn plugin(&self, id: &str, requirement: &str) -> Result<Granted> {
        self.plugin_of(&self.store.plugins()?, id, requirement)
    }

    /// [`plugin`](Self::plugin) among `stored`, the store's plugins as read once for
    /// all the conditions of a rule (read again for each, they were a tenth of a
    /// rescan's CPU time at a million customers after 1% changed).
    fn plugin_of(&self, stored: &[StoredPlugin], id: &str, requirement: &str) -> Result<Granted> {
        let req = semver::VersionReq::parse(requirement).map_err(|e| EngineError::Version {
            plugin: id.to_string(),
            requirement: requirement.to_string(),
            problem: e.to_string(),
        })?;
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
            best.budget,
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

    /// The group's conditions, each prepared by its plugin, in rule order; a group
    /// condition's group must exist. A rejected configuration is named by its place in
    /// the rule and its field.
    pub(crate) fn prepare(&self, group: &Group, purpose: Purpose) -> Result<Vec<Slot>> {
        let resolved = self.resolve(group)?;
        self.instantiate(group, resolved, purpose)
    }

    /// The group's conditions for a run, with their identity (see `decided.rs`): those
    /// its last run left if nothing they stand on has changed since, prepared afresh
    /// otherwise. Preparing starts an instance of each plugin, which a rescan after 1%
    /// of a million customers changed paid for 104 times, with the pages each fresh
    /// instance's memory then faulted in.
    pub(crate) fn conditions_for_run(&self, group: &Group) -> Result<(Vec<Slot>, Vec<String>)> {
        let resolved = self.resolve(group)?;
        let identity: Vec<String> = resolved.iter().map(Resolved::identity).collect();
        let kept = self
            .plugins
            .runs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&group.id);
        match kept {
            Some(mut kept) if kept.stands(group, &resolved, &identity) => {
                for slot in &mut kept.slots {
                    if let Slot::Plugin(c) = slot {
                        c.forget_failures();
                    }
                }
                Ok((kept.slots, identity))
            }
            _ => Ok((self.instantiate(group, resolved, Purpose::Run)?, identity)),
        }
    }

    /// Keep a run's conditions for the group's next run, unless another run of it (a
    /// range of a shared scan, say) has left its own meanwhile.
    pub(crate) fn keep_conditions(&self, group: &Group, slots: Vec<Slot>, identity: Vec<String>) {
        self.plugins
            .runs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(group.id.clone())
            .or_insert_with(|| RunConditions {
                group: group.clone(),
                slots,
                identity,
            });
    }

    /// What each of the group's conditions would be prepared with, in rule order,
    /// from the store's plugins and groups as they are now.
    fn resolve(&self, group: &Group) -> Result<Vec<Resolved>> {
        let groups = if group.referred().is_empty() {
            None
        } else {
            Some(self.groups()?)
        };
        let stored = if group.conditions().any(|(_, _, c)| c.plugin().is_some()) {
            self.store.plugins()?
        } else {
            Vec::new()
        };
        group
            .conditions()
            .map(|(i, j, condition)| {
                let at = || format!("rule.all[{i}].any[{j}]");
                let condition = match condition {
                    cohort_model::Condition::Plugin(c) => c,
                    cohort_model::Condition::Group(c) => {
                        let known = groups
                            .as_ref()
                            .is_some_and(|gs| gs.iter().any(|g| g.id == c.group));
                        if !known {
                            return Err(EngineError::Condition {
                                group: group.id.clone(),
                                at: at(),
                                source: Box::new(EngineError::NotFound {
                                    what: "group",
                                    id: c.group.clone(),
                                }),
                            });
                        }
                        return Ok(Resolved::Group(c.group.clone()));
                    }
                };
                let granted = self
                    .plugin_of(&stored, &condition.plugin, &condition.version)
                    .map_err(|e| match e {
                        // Which plugin a condition names is the rule's business: say
                        // where in the rule. The store's errors are not.
                        EngineError::UnknownPlugin { .. }
                        | EngineError::NoMatchingVersion { .. }
                        | EngineError::Version { .. } => EngineError::Condition {
                            group: group.id.clone(),
                            at: at(),
                            source: Box::new(e),
                        },
                        other => other,
                    })?;
                Ok(Resolved::Plugin {
                    at: (i, j),
                    config: condition.config.to_string(),
                    granted,
                })
            })
            .collect()
    }

    /// The conditions `resolved` for `group`, each plugin's prepared.
    fn instantiate(
        &self,
        group: &Group,
        resolved: Vec<Resolved>,
        purpose: Purpose,
    ) -> Result<Vec<Slot>> {
        resolved
            .into_iter()
            .map(|r| match r {
                Resolved::Group(g) => Ok(Slot::Group(g)),
                Resolved::Plugin {
                    at: (i, j),
                    config,
                    granted: (plugin, data_dir, budget),
                } => plugin
                    .prepare_with(&config, data_dir.as_deref(), &budget)
                    .map(|c| Slot::Plugin(Box::new(c)))
                    .map_err(|e| EngineError::from_prepare(&group.id, i, j, e, purpose)),
            })
            .collect()
    }

    /// One customer's verdict columns for `group`, on conditions prepared once and kept
    /// until the group's definition changes; `member_of` says whether the customer is a
    /// member of a group the rule refers to.
    pub(crate) fn evaluate_one(
        &self,
        group: &Group,
        customer: &Customer,
        as_of: Timestamp,
        member_of: &dyn Fn(&str) -> bool,
    ) -> Result<Vec<Verdicts>> {
        self.on_prepared(group, |slots| {
            slots
                .iter_mut()
                .map(|slot| match slot {
                    Slot::Plugin(c) => {
                        let evaluation = c.evaluate(as_of, std::slice::from_ref(customer));
                        self.tally(c.plugin().info(), evaluation)
                    }
                    Slot::Group(g) => referred::one(member_of(g)),
                })
                .collect()
        })
    }

    /// [`evaluate_one`](Self::evaluate_one), and the facts behind each verdict: the
    /// plugin's sentence (`None` for a plugin that cannot explain; a plugin that fails
    /// to says so in the sentence), or the customer's membership of the group.
    pub(crate) fn explain_one(
        &self,
        group: &Group,
        customer: &Customer,
        as_of: Timestamp,
        member_of: &dyn Fn(&str) -> bool,
    ) -> Result<(Vec<Verdicts>, Vec<Option<String>>)> {
        self.on_prepared(group, |slots| {
            slots
                .iter_mut()
                .map(|slot| match slot {
                    Slot::Plugin(c) => {
                        let customers = std::slice::from_ref(customer);
                        let evaluation = c.evaluate(as_of, customers);
                        let because = match c.explain(as_of, customers) {
                            Ok(sentences) => sentences.and_then(|s| s.into_iter().next()),
                            Err(failure) => {
                                Some(format!("(the plugin could not explain: {failure})"))
                            }
                        };
                        (self.tally(c.plugin().info(), evaluation), because)
                    }
                    Slot::Group(g) => {
                        let member = member_of(g);
                        let because = format!(
                            "the customer {} a member of `{g}` at {}",
                            if member { "is" } else { "is not" },
                            cohort_model::rfc3339::format(as_of)
                        );
                        (referred::one(member), Some(because))
                    }
                })
                .unzip()
        })
    }

    /// `work` on `group`'s conditions, prepared once and kept until the group's
    /// definition changes.
    fn on_prepared<T>(&self, group: &Group, work: impl FnOnce(&mut Vec<Slot>) -> T) -> Result<T> {
        // Conditions hold plugin instances; the lock keeps one caller per instance.
        let mut prepared = self
            .plugins
            .prepared
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let fresh = prepared.get(&group.id).is_some_and(|(g, _)| g == group);
        if !fresh {
            let conditions = self.prepare(group, Purpose::Run)?;
            prepared.insert(group.id.clone(), (group.clone(), conditions));
        }
        let (_, conditions) = prepared
            .get_mut(&group.id)
            .expect("inserted just above when missing");
        Ok(work(conditions))
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
