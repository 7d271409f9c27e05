//! `cohort demo`: a sample platform's customers run through the bundled country plugin.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use cohort_host::{Compiled, Limits};
use cohort_model::{CustomerRecord, VerdictRef};

use crate::runner;

#[derive(Args)]
pub struct DemoArgs {
    /// How many sample customers to generate
    #[arg(long, default_value_t = 100_000)]
    customers: usize,
    /// Seed of the generator: the same seed gives the same customers
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

/// The member states of the European Union.
const EU: [&str; 27] = [
    "AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE", "IT", "LV",
    "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE",
];

/// Countries a European ISP's customers come from, with rough weights.
const COUNTRIES: [(&str, u32); 16] = [
    ("DE", 30),
    ("FR", 12),
    ("NL", 8),
    ("GB", 8),
    ("PL", 6),
    ("AT", 5),
    ("CH", 5),
    ("IT", 5),
    ("ES", 4),
    ("US", 4),
    ("UA", 3),
    ("CZ", 3),
    ("SE", 2),
    ("NO", 2),
    ("TR", 2),
    ("IN", 1),
];

pub fn run(args: DemoArgs, cache_dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    let limits = Limits::default();
    let host = runner::new_host(limits.clone(), cache_dir)?;

    let started = Instant::now();
    let plugin = runner::load(&host, "country")?;
    writeln!(
        out,
        "loaded plugin `{}` {} (contract {}) in {:.0} ms, {}",
        plugin.info().id,
        plugin.info().version,
        plugin.contract_version(),
        started.elapsed().as_secs_f64() * 1e3,
        match plugin.compiled() {
            Compiled::Fresh => "compiled now",
            Compiled::FromDiskCache => "from the compile cache",
        }
    )?;

    // A configuration mistake is caught when the rule is saved, with the field named.
    let typo = r#"{"countries":["DE","EU","fr"]}"#;
    if let Err(e) = plugin.prepare(typo, None) {
        writeln!(out, "saving the rule {typo} is refused: {e}")?;
    }

    let config = format!(r#"{{"countries":{EU:?}}}"#);
    let mut condition = plugin
        .prepare(&config, None)
        .context("the demo's EU rule must be valid")?;

    let started = Instant::now();
    let records = generate(args.customers, args.seed);
    let customers = records
        .iter()
        .map(|r| r.intern(host.interner()))
        .collect::<Result<Vec<_>, _>>()
        .context("generated customers must be valid")?;
    writeln!(
        out,
        "generated {} customers in {:.0} ms",
        customers.len(),
        started.elapsed().as_secs_f64() * 1e3
    )?;

    let as_of = chrono::Utc::now().timestamp();
    let evaluation = condition.evaluate(as_of, &customers);

    writeln!(
        out,
        "\ngroup \"EU residents\": client country is one of {} EU states",
        EU.len()
    )?;
    writeln!(out, "{:<10} {:<8} verdict", "customer", "country")?;
    for (record, verdict) in records.iter().zip(evaluation.verdicts.iter()).take(12) {
        let verdict = match verdict {
            VerdictRef::Match => "member".to_string(),
            VerdictRef::NoMatch => "not a member".to_string(),
            VerdictRef::Error(message) => format!("no decision: {message}"),
        };
        writeln!(
            out,
            "{:<10} {:<8} {verdict}",
            record.id,
            record.country.as_deref().unwrap_or("-")
        )?;
    }
    writeln!(out, "...\n")?;
    runner::write_usage(&mut out, &evaluation, &limits, customers.len())?;
    writeln!(
        out,
        "  {:.1} ns per customer",
        evaluation.elapsed.as_nanos() as f64 / customers.len().max(1) as f64
    )?;
    Ok(ExitCode::SUCCESS)
}

/// Deterministic sample customers: a fixed-seed LCG picks countries by weight; one
/// customer in forty left the country field empty.
fn generate(n: usize, seed: u64) -> Vec<CustomerRecord> {
    let total: u32 = COUNTRIES.iter().map(|(_, w)| w).sum();
    let mut state = seed ^ 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) as u32
    };
    (0..n)
        .map(|i| {
            let country = if next().is_multiple_of(40) {
                None
            } else {
                let mut pick = next() % total;
                COUNTRIES
                    .iter()
                    .find(|(_, w)| {
                        let hit = pick < *w;
                        pick = pick.saturating_sub(*w);
                        hit
                    })
                    .map(|(c, _)| c.to_string())
            };
            CustomerRecord {
                id: format!("C-{:06}", i + 1),
                country,
                ..CustomerRecord::default()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_is_deterministic_and_uses_the_weights() {
        let a = generate(10_000, 7);
        assert_eq!(a, generate(10_000, 7));
        assert_ne!(a, generate(10_000, 8));
        let de = a
            .iter()
            .filter(|c| c.country.as_deref() == Some("DE"))
            .count();
        let india = a
            .iter()
            .filter(|c| c.country.as_deref() == Some("IN"))
            .count();
        assert!(de > 10 * india, "DE {de} vs IN {india}");
        assert!(a.iter().any(|c| c.country.is_none()));
    }
}
