//! Plugins, groups and customers: what the operator adds and reads back.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use cohort_model::{CustomerRecord, Group, Membership, PluginBudget};
use cohort_store::Ending;
use serde_json::json;

use super::members::print_memberships;
use super::signing;
use super::{StoreArgs, now, open, print_json, time};
use crate::runner::{self, BudgetArgs};
use cohort_engine::Provenance;

#[derive(Subcommand)]
pub enum PluginCommand {
    /// Add a plugin to the store: a bundled plugin's id or a .wasm file
    Add {
        plugin: String,
        /// Grant the plugin read-only access to this directory (seen as /data)
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
        /// Its signature (`cohort plugin sign`); the file's name with `.sig` added, if
        /// there is one
        #[arg(long, value_name = "FILE")]
        signature: Option<PathBuf>,
    },
    /// Make a key to sign plugins: the secret key goes to a file only you can read, the
    /// public key is printed for operators to trust
    Keygen {
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Sign a plugin file: its digest, id and version, with your secret key
    Sign {
        plugin: PathBuf,
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// Where the signature goes; beside the plugin (`.sig` added) if absent
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Check a plugin file's signature, and whether this store trusts its key
    Verify {
        plugin: PathBuf,
        #[arg(long, value_name = "FILE")]
        signature: Option<PathBuf>,
    },
    /// Add every bundled plugin (geoip-country gets --geoip-dir if given)
    AddStandard {
        #[arg(long, value_name = "DIR")]
        geoip_dir: Option<PathBuf>,
    },
    /// Show a plugin's budget per call (fuel, memory, deadline), or set the operator's:
    /// each flag given replaces that field, the others stay
    Budget {
        plugin: String,
        #[command(flatten)]
        budget: BudgetArgs,
        /// Remove the operator's budget: the plugin runs on its own again
        #[arg(long, conflicts_with_all = ["fuel_per_call", "fuel_per_customer", "fuel_per_prepare", "memory_mib", "deadline_ms"])]
        clear: bool,
    },
    /// List the plugins in the store
    List,
    /// Show a stored plugin's self-description and grant
    Inspect {
        plugin: String,
        /// A version; the newest stored one if absent
        #[arg(long)]
        version: Option<String>,
    },
}

pub fn plugin(
    cmd: PluginCommand,
    store: &StoreArgs,
    cache_dir: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    if let PluginCommand::Keygen { out } = &cmd {
        return signing::keygen(out);
    }
    let engine = open(store, cache_dir)?;
    match cmd {
        PluginCommand::Keygen { .. } => {}
        PluginCommand::Sign { plugin, key, out } => {
            return signing::sign(&engine, &plugin, &key, out);
        }
        PluginCommand::Verify { plugin, signature } => {
            return signing::verify(&engine, &plugin, signature);
        }
        PluginCommand::Add {
            plugin,
            data_dir,
            signature,
        } => {
            let wasm = plugin_bytes(&plugin)?;
            let signature = signing::provenance_of(&plugin, signature)?;
            let provenance = signing::provenance(&plugin, signature.as_ref());
            let info = engine.add_plugin_as(&wasm, data_dir.as_deref(), provenance, now())?;
            if store.json {
                print_json(&info)?;
            } else {
                println!("added plugin `{}` {}", info.id, info.version);
            }
        }
        PluginCommand::AddStandard { geoip_dir } => {
            for (id, wasm) in cohort_artifacts::STANDARD {
                let grant = geoip_dir.as_deref().filter(|_| *id == "geoip-country");
                let info = engine.add_plugin_as(wasm, grant, Provenance::Standard, now())?;
                if !store.json {
                    println!("added plugin `{}` {}", info.id, info.version);
                }
            }
        }
        PluginCommand::Budget {
            plugin,
            budget,
            clear,
        } => {
            let given = budget.budget()?;
            if clear || !given.is_empty() {
                let set = if clear {
                    PluginBudget::default()
                } else {
                    given.over(engine.plugin_budget(&plugin)?.operator)
                };
                engine.set_plugin_budget(&plugin, &set)?;
            }
            let budgets = engine.plugin_budget(&plugin)?;
            if store.json {
                print_json(&json!({
                    "plugin": plugin,
                    "declared": budgets.declared,
                    "operator": budgets.operator,
                    "effective": runner::budget_json(&budgets.effective),
                }))?;
            } else {
                let shown = |b: &PluginBudget| {
                    if b.is_empty() {
                        "none".to_string()
                    } else {
                        serde_json::to_string(b).unwrap_or_default()
                    }
                };
                println!("plugin `{plugin}`");
                println!("  declared by the plugin  {}", shown(&budgets.declared));
                println!("  set by the operator     {}", shown(&budgets.operator));
                println!(
                    "  each call runs on       {}",
                    runner::budget_line(&budgets.effective)
                );
            }
        }
        PluginCommand::Inspect { plugin, version } => {
            let (stored, info, contract) = engine.describe_plugin(&plugin, version.as_deref())?;
            let mut value = serde_json::to_value(info)?;
            value["contract"] = json!(contract);
            value["sha256"] = json!(stored.sha256);
            value["data_dir"] = json!(stored.data_dir);
            value["added_at"] = json!(time(stored.added_at));
            print_json(&value)?;
        }
        PluginCommand::List => {
            let plugins = engine.store().plugins()?;
            if store.json {
                print_json(&plugins)?;
            } else {
                for p in plugins {
                    let budget = if p.budget.is_empty() {
                        String::new()
                    } else {
                        format!("  budget: {}", serde_json::to_string(&p.budget)?)
                    };
                    println!(
                        "{:<22} {:<8} {}  signed by: {:<12} data-dir: {}{budget}",
                        p.id,
                        p.version,
                        &p.sha256[..12],
                        p.signer.as_deref().unwrap_or("-"),
                        // As the operator wrote it; plugins added before kept only the
                        // absolute path.
                        p.data_dir_as_given
                            .as_deref()
                            .or(p.data_dir.as_deref())
                            .unwrap_or("-")
                    );
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn plugin_bytes(plugin: &str) -> anyhow::Result<Vec<u8>> {
    if let Some((_, wasm)) = cohort_artifacts::STANDARD
        .iter()
        .find(|(id, _)| *id == plugin)
    {
        return Ok(wasm.to_vec());
    }
    std::fs::read(plugin)
        .with_context(|| format!("no bundled plugin `{plugin}` and the file cannot be read"))
}

#[derive(Subcommand)]
pub enum GroupCommand {
    /// Create or update a group from a JSON file (checked through its plugins first)
    Save { file: PathBuf },
    /// List the groups
    List,
    /// Show one group's definition and what uses it
    Show { group: String },
    /// Delete a group (its memberships stay in the history); a group in use is refused
    /// unless --force
    Delete {
        group: String,
        #[arg(long)]
        force: bool,
    },
    /// Record that a platform entity (tariff, promotion, contract-template, segment,
    /// vat-setting, ...) refers to the group
    Use {
        group: String,
        kind: String,
        entity: String,
    },
    /// Forget such a reference
    Unuse {
        group: String,
        kind: String,
        entity: String,
    },
}

pub fn group(
    cmd: GroupCommand,
    store: &StoreArgs,
    cache_dir: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let engine = open(store, cache_dir)?;
    match cmd {
        GroupCommand::Save { file } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read `{}`", file.display()))?;
            let group: Group = serde_json::from_str(&text)
                .with_context(|| format!("`{}` is not a group definition", file.display()))?;
            engine.save_group(&group, now())?;
            println!("saved group `{}`", group.id);
        }
        GroupCommand::List => {
            let groups = engine.store().groups()?;
            if store.json {
                print_json(&groups)?;
            } else {
                for g in groups {
                    let members = engine.store().count_active(&g.id, now())?;
                    let used = engine.uses(&g.id)?.len();
                    println!(
                        "{:<24} {:<10} {:>8} members {:>3} used  {}",
                        g.id,
                        serde_json::to_value(g.auto.mode)?.as_str().unwrap_or("?"),
                        members,
                        used,
                        g.name
                    );
                }
            }
        }
        GroupCommand::Show { group } => {
            let definition = engine.group(&group)?;
            let used_by: Vec<_> = engine
                .uses(&group)?
                .into_iter()
                .map(|(kind, entity)| json!({"kind": kind, "entity": entity}))
                .collect();
            print_json(&json!({"group": definition, "used_by": used_by}))?;
        }
        GroupCommand::Delete { group, force } => {
            engine.delete_group(&group, force)?;
            println!("deleted group `{group}`");
        }
        GroupCommand::Use {
            group,
            kind,
            entity,
        } => {
            engine.use_group(&group, &kind, &entity, true)?;
            println!("group `{group}` is used by {kind} `{entity}`");
        }
        GroupCommand::Unuse {
            group,
            kind,
            entity,
        } => {
            engine.use_group(&group, &kind, &entity, false)?;
            println!("group `{group}` is no longer used by {kind} `{entity}`");
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Subcommand)]
pub enum CustomerCommand {
    /// Insert or update one customer (JSON, or @FILE); a new one is checked against
    /// every on-registration group at once
    Upsert { customer: String },
    /// Insert or update many customers from a JSON-lines file. All lines are checked
    /// before any is stored
    Load {
        file: PathBuf,
        /// Run the on-registration trigger for each new customer (slower)
        #[arg(long)]
        trigger: bool,
    },
    /// Show one customer and its memberships
    Show { customer: String },
    /// Erase a customer: their facts and pins are deleted, their active and pending
    /// memberships end now, and their history keeps who did what and when but not the
    /// reasons written about them
    Delete {
        customer: String,
        #[arg(long, default_value = "erased on request")]
        reason: String,
    },
}

pub fn customer(
    cmd: CustomerCommand,
    store: &StoreArgs,
    cache_dir: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let engine = open(store, cache_dir)?;
    match cmd {
        CustomerCommand::Upsert { customer } => {
            let text = match customer.strip_prefix('@') {
                Some(file) => std::fs::read_to_string(file)
                    .with_context(|| format!("cannot read `{file}`"))?,
                None => customer,
            };
            let record: CustomerRecord =
                serde_json::from_str(&text).context("not a customer record")?;
            let registration = engine.upsert_customer(&record, now())?;
            if store.json {
                print_json(&registration)?;
            } else {
                println!(
                    "{} customer `{}`; joined: {}",
                    if registration.new {
                        "registered"
                    } else {
                        "updated"
                    },
                    registration.customer,
                    if registration.joined.is_empty() {
                        "none".to_string()
                    } else {
                        registration.joined.join(", ")
                    }
                );
                for (group, why) in &registration.undecided {
                    println!("undecided for `{group}`:\n{why}");
                }
            }
        }
        CustomerCommand::Load { file, trigger } => {
            // Every line is checked before anything is stored, so a bad line at the end
            // does not leave the first half loaded.
            let (records, _) = runner::read_customers(&file, &cohort_model::Interner::new())?;
            let at = now();
            let new = if trigger {
                let mut new = 0;
                for record in &records {
                    new += u64::from(engine.upsert_customer(record, at)?.new);
                }
                new
            } else {
                // One transaction: a failure stores none of the file.
                engine.store().upsert_customers(&records, at)?
            };
            println!(
                "loaded {} customers from `{}` ({new} new)",
                records.len(),
                file.display()
            );
        }
        CustomerCommand::Delete { customer, reason } => {
            let erasure = engine.erase_customer(&customer, &store.actor(), &reason, now())?;
            if store.json {
                print_json(&erasure)?;
            } else {
                println!(
                    "erased customer `{}`{}: ended {} membership(s), lifted {} pin(s); \
                     history entry {}",
                    erasure.customer,
                    if erasure.facts {
                        ""
                    } else {
                        " (their facts were gone already)"
                    },
                    erasure.ended,
                    erasure.pins,
                    erasure.entry
                );
            }
        }
        CustomerCommand::Show { customer } => {
            let record = engine
                .store()
                .customer(&customer)?
                .with_context(|| format!("no customer `{customer}`"))?;
            let memberships = engine.store().customer_memberships(&customer)?;
            let endings: HashMap<i64, Ending> = engine
                .store()
                .customer_endings(&customer)?
                .into_iter()
                .map(|e| (e.membership, e))
                .collect();
            let ended = |m: &Membership| endings.get(&m.id);
            if store.json {
                let rows: Vec<_> = memberships
                    .iter()
                    .map(|m| json!({"membership": m, "state": m.state(now()), "ended": ended(m)}))
                    .collect();
                print_json(&json!({"customer": record, "memberships": rows}))?;
            } else {
                println!("{}", serde_json::to_string_pretty(&record)?);
                print_memberships(&memberships, now(), true, &ended);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
