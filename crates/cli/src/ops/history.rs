//! The audit history and explanations.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::Args;
use cohort_model::State;

use super::{StoreArgs, now, open, print_json, time};

#[derive(Args)]
pub struct HistoryArgs {
    #[arg(long)]
    customer: Option<String>,
    #[arg(long)]
    group: Option<String>,
    #[arg(long, default_value_t = 50)]
    limit: usize,
}

pub fn history(
    args: HistoryArgs,
    store: &StoreArgs,
    cache_dir: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let engine = open(store, cache_dir)?;
    let entries = engine.store().history(
        args.customer.as_deref(),
        args.group.as_deref(),
        None,
        args.limit,
    )?;
    if store.json {
        print_json(&entries)?;
    } else {
        for e in entries {
            println!(
                "{}  {:<9} {:<16} {:<20} by {} ({}{}): {}",
                time(e.at),
                e.action,
                e.customer,
                // An erasure is the customer's, of no group.
                e.group.as_deref().unwrap_or("-"),
                e.actor,
                e.trigger,
                e.run.map(|r| format!(", run {r}")).unwrap_or_default(),
                e.reason
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
pub struct ExplainArgs {
    customer: String,
    group: String,
    #[arg(long, value_name = "TIME")]
    as_of: Option<DateTime<Utc>>,
}

pub fn explain(
    args: ExplainArgs,
    store: &StoreArgs,
    cache_dir: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let engine = open(store, cache_dir)?;
    let as_of = args.as_of.map_or_else(now, |t| t.timestamp());
    let why = engine.explain(&args.customer, &args.group, as_of)?;
    if store.json {
        print_json(&why)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "customer `{}` in group `{}` as of {}",
        why.customer,
        why.group,
        time(why.as_of)
    )?;
    writeln!(out, "{}", why.explanation)?;
    if why.pinned_out {
        writeln!(
            out,
            "pinned out by an operator: the rule never adds this customer"
        )?;
    }
    if let Some(ahead) = &why.ahead {
        writeln!(
            out,
            "in `{ahead}`, which comes first in the exclusive set: the rule does not add the \
             customer here"
        )?;
    }
    if why.disabled {
        writeln!(
            out,
            "the group's rule is disabled: it does not run, whatever it says"
        )?;
    }
    let active = why.memberships.iter().any(|(_, s)| *s == State::Active);
    writeln!(
        out,
        "currently {} member",
        if active { "a" } else { "not a" }
    )?;
    for (m, state) in &why.memberships {
        writeln!(
            out,
            "  {:?} {} membership from {} to {} by {}: {}",
            state,
            m.source,
            time(m.start),
            m.end.map_or_else(|| "open".to_string(), time),
            m.actor,
            m.reason
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
