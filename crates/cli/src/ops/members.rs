//! Membership by hand, and imports of membership files.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::Subcommand;
use std::collections::HashMap;

use cohort_model::{Membership, State, Timestamp};
use cohort_store::Ending;
use serde_json::json;

use super::runs::Progress;
use super::{StoreArgs, now, open, print_json, time};

#[derive(Subcommand)]
pub enum MemberCommand {
    /// List a group's members: active ones, or all with --all
    List {
        group: String,
        /// Include pending and expired memberships
        #[arg(long)]
        all: bool,
        /// Membership as it stood, or will stand, at this time (RFC 3339) [default: now]
        #[arg(long, value_name = "TIME")]
        as_of: Option<DateTime<Utc>>,
    },
    /// Add a customer by hand, optionally for a window
    Add {
        customer: String,
        group: String,
        #[arg(long, value_name = "TIME")]
        start: Option<DateTime<Utc>>,
        #[arg(long, value_name = "TIME")]
        end: Option<DateTime<Utc>>,
        #[arg(long, default_value = "added by hand")]
        reason: String,
    },
    /// Remove a customer by hand (a rule may add it again; see `pin`)
    Remove {
        customer: String,
        group: String,
        #[arg(long, default_value = "removed by hand")]
        reason: String,
    },
    /// Pin a customer out of a group: removed now and never added by the rule
    Pin {
        customer: String,
        group: String,
        #[arg(long, default_value = "pinned out by hand")]
        reason: String,
    },
    /// Lift a pinned exclusion
    Unpin { customer: String, group: String },
}

pub fn member(
    cmd: MemberCommand,
    store: &StoreArgs,
    cache_dir: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let engine = open(store, cache_dir)?;
    let actor = store.actor();
    let at = now();
    match cmd {
        MemberCommand::List { group, all, as_of } => {
            engine.group(&group)?;
            let at = as_of.map_or(at, |t| t.timestamp());
            let memberships: Vec<_> = engine
                .store()
                .group_memberships(&group)?
                .into_iter()
                .filter(|m| all || m.is_active(at))
                .collect();
            // A membership active at `at` was not ended by then: only --all lists ended
            // ones.
            let endings: HashMap<i64, Ending> = if all {
                engine
                    .store()
                    .endings(&group)?
                    .into_iter()
                    .map(|e| (e.membership, e))
                    .collect()
            } else {
                HashMap::new()
            };
            // An ending after `at` had not happened yet.
            let ended = |m: &Membership| endings.get(&m.id).filter(|e| e.at <= at);
            if store.json {
                let rows: Vec<_> = memberships
                    .iter()
                    .map(|m| json!({"membership": m, "state": m.state(at), "ended": ended(m)}))
                    .collect();
                print_json(&rows)?;
            } else {
                print_memberships(&memberships, at, false, &ended);
            }
        }
        MemberCommand::Add {
            customer,
            group,
            start,
            end,
            reason,
        } => {
            let window = (
                start.map_or(at, |s| s.timestamp()),
                end.map(|e| e.timestamp()),
            );
            if engine.add_member(&customer, &group, &actor, &reason, window, at)? {
                println!("added `{customer}` to `{group}`");
            } else {
                println!("`{customer}` already has a membership in `{group}` over that window");
            }
        }
        MemberCommand::Remove {
            customer,
            group,
            reason,
        } => {
            let ended = engine.remove_member(&customer, &group, &actor, &reason, at)?;
            if ended == 0 {
                eprintln!(
                    "`{customer}` has no active or pending membership in `{group}`: nothing was removed"
                );
                return Ok(ExitCode::FAILURE);
            }
            println!("ended {ended} membership(s) of `{customer}` in `{group}`");
        }
        MemberCommand::Pin {
            customer,
            group,
            reason,
        } => {
            engine.pin_exclusion(&customer, &group, true, &actor, &reason, at)?;
            println!("pinned `{customer}` out of `{group}`");
        }
        MemberCommand::Unpin { customer, group } => {
            engine.pin_exclusion(&customer, &group, false, &actor, "unpinned by hand", at)?;
            println!("lifted the exclusion of `{customer}` from `{group}`");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One line per membership; `ended` says who ended one, and why, if anybody did.
pub(super) fn print_memberships<'e>(
    memberships: &[Membership],
    at: Timestamp,
    by_group: bool,
    ended: &dyn Fn(&Membership) -> Option<&'e Ending>,
) {
    for m in memberships {
        let state = match m.state(at) {
            State::Pending => "pending",
            State::Active => "active",
            State::Expired => "expired",
        };
        println!(
            "{:<20} {:<8} {:<7} {} .. {}  by {} ({})",
            if by_group { &m.group } else { &m.customer },
            state,
            m.source,
            time(m.start),
            m.end.map_or_else(|| "open".to_string(), time),
            m.actor,
            m.reason
        );
        if let Some(e) = ended(m) {
            println!(
                "{:<20} ended {} by {} ({}): {}",
                "",
                time(e.at),
                e.actor,
                e.trigger,
                e.reason
            );
        }
    }
}

#[derive(Subcommand)]
pub enum ImportCommand {
    /// Import a customer-assignment CSV file (Customer #, Assigned Groups, Start Date &
    /// Time, End Date & Time). All or nothing unless --partial
    File {
        file: PathBuf,
        /// Map a column to the file's header: `customer=Kundennummer`; columns are
        /// customer, groups, start, end
        #[arg(long = "map", value_name = "COLUMN=HEADER")]
        mapping: Vec<String>,
        /// Time zone for dates without an offset
        #[arg(long, default_value = "UTC")]
        time_zone: String,
        /// Apply the valid rows and report the rest
        #[arg(long)]
        partial: bool,
        /// Validate and report what would change, change nothing
        #[arg(long)]
        dry_run: bool,
    },
    /// Print a sample file to start from
    Template,
    /// Recent imports
    List,
    /// The problems of one import, by line and column
    Errors {
        import: i64,
        #[arg(long, default_value_t = 1000)]
        limit: usize,
    },
}

pub fn import(
    cmd: ImportCommand,
    store: &StoreArgs,
    cache_dir: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    match cmd {
        ImportCommand::Template => {
            print!("{}", cohort_import::TEMPLATE);
            Ok(ExitCode::SUCCESS)
        }
        ImportCommand::List => {
            let engine = open(store, cache_dir)?;
            let imports = engine.store().imports(None, 50)?;
            if store.json {
                print_json(&imports)?;
            } else {
                for i in imports {
                    println!(
                        "import {:>4}  {}  {:<18} {}: {} rows, {} added, {} updated, {} unchanged, {} rejected (by {})",
                        i.id,
                        time(i.started_at),
                        i.status,
                        i.file_name,
                        i.rows,
                        i.added,
                        i.updated,
                        i.unchanged,
                        i.rejected,
                        i.actor
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        ImportCommand::Errors { import, limit } => {
            let engine = open(store, cache_dir)?;
            let (problems, lines) = engine.store().import_problems(import, limit)?;
            if store.json {
                print_json(&json!({"lines": lines, "problems": problems}))?;
            } else {
                print_problems(&problems, lines);
            }
            Ok(ExitCode::SUCCESS)
        }
        ImportCommand::File {
            file,
            mapping,
            time_zone,
            partial,
            dry_run,
        } => {
            let engine = open(store, cache_dir)?;
            let columns = cohort_import::mapping(mapping.iter().map(String::as_str))
                .map_err(anyhow::Error::msg)?;
            let zone = cohort_import::time_zone(&time_zone).map_err(anyhow::Error::msg)?;
            let input = std::fs::File::open(&file)
                .with_context(|| format!("cannot open `{}`", file.display()))?;
            let bar = Progress::new(!store.json);
            let name = file.file_name().map_or_else(
                || file.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            );
            let report = engine.import(
                input,
                &name,
                cohort_engine::ImportOptions {
                    read: cohort_import::Options {
                        time_zone: zone,
                        now: now(),
                        mapping: columns,
                    },
                    partial,
                    dry_run,
                },
                &store.actor(),
                now(),
                &mut |rows| bar.show_rows(rows),
            )?;
            bar.finish();
            let r = &report.record;
            if store.json {
                print_json(&report)?;
            } else {
                println!(
                    "import {} of `{}`: {}: {} rows, {} added, {} updated, {} unchanged, {} rejected",
                    r.id,
                    r.file_name,
                    r.status,
                    r.rows,
                    r.added,
                    r.updated,
                    r.unchanged,
                    r.rejected
                );
                print_problems(&report.problems, r.rejected);
            }
            Ok(if r.status == "failed" {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
    }
}

fn print_problems(problems: &[cohort_store::ImportProblem], lines: u64) {
    for p in problems {
        match &p.column {
            Some(c) => println!("  line {}, column `{c}`: {}", p.line, p.message),
            None => println!("  line {}: {}", p.line, p.message),
        }
    }
    if (problems.len() as u64) < lines {
        println!("  ... {lines} lines have problems in all (`cohort import errors ID`)");
    }
}
