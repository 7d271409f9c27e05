//! `cohort demo`: a sample platform on a fresh embedded store — customers, the
//! standard plugins, groups modelled on the billing platforms Cohort replaces the
//! hard-coded logic of — run end to end and reported.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use crate::assemble;
use anyhow::Context;
use chrono::{TimeZone, Utc};
use clap::Args;
use cohort_engine::Trigger;
use cohort_host::Limits;
use cohort_model::{
    CustomerRecord, Group, PayerKind, PayerRecord, SubscriptionRecord, SubscriptionStatus,
    Timestamp, VerificationStatus,
};
use cohort_store::{Role, StaffMember};
use cohort_store_postgres::{describe_url, is_postgres_url};

#[derive(Args)]
pub struct DemoArgs {
    /// How many sample customers to generate
    #[arg(long, default_value_t = 100_000)]
    customers: usize,
    /// Seed of the generator: the same seed gives the same customers
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// The demo's store; replaced if it exists, kept afterwards for exploring with the
    /// other commands (`cohort --db FILE group list`, ...)
    #[arg(long, default_value = "cohort-demo.db")]
    demo_db: PathBuf,
    /// A directory holding a MaxMind Country database named GeoIP2-Country-Test.mmdb,
    /// for the GeoIP group; without one that group is left out
    #[arg(long, default_value = "../shared/testdata/geoip")]
    geoip_dir: PathBuf,
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

/// Registration addresses inside the networks of MaxMind's test database (GB, SE, US,
/// NO, JP, CN), and some it does not cover.
const IPS: [&str; 8] = [
    "81.2.69.142",
    "89.160.20.112",
    "216.160.83.56",
    "2a02:cf40::1",
    "2001:218::1",
    "175.16.199.1",
    "10.0.0.1",
    "192.0.2.7",
];

const PRODUCTS: [&str; 6] = [
    "fiber-100",
    "fiber-1000",
    "tv",
    "voip",
    "static-ip",
    "tower-host",
];

/// 2026-11-25T00:00:00Z: the demo's "now", so that every run of it tells the same story.
const NOW: Timestamp = 1_795_564_800;

/// Run the demo on a fresh embedded store at `--demo-db`, or, where `db` (the global
/// `--db`) names a PostgreSQL database, on that database, which must be empty: the demo
/// never clears a database it did not make.
pub fn run(
    args: DemoArgs,
    db: Option<&Path>,
    cache_dir: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let shared = db.filter(|db| is_postgres_url(&db.to_string_lossy()));
    if let (Some(db), None) = (db, shared) {
        anyhow::bail!(
            "the demo makes a store of its own: give a file with --demo-db, not --db `{}` \
             (--db takes only a PostgreSQL database for the demo)",
            db.display()
        );
    }
    let shown = match shared {
        Some(db) => describe_url(&db.to_string_lossy()),
        None => args.demo_db.display().to_string(),
    };
    let stack = match shared {
        Some(db) => {
            let stack = assemble::open(db, Limits::default(), cache_dir)?;
            let engine = &stack.engine;
            let store = engine.store();
            let (customers, groups) = (store.count_customers()?, store.groups()?.len());
            if customers > 0 || groups > 0 {
                anyhow::bail!(
                    "the demo needs an empty database, and `{shown}` holds {customers} \
                     customers and {groups} groups"
                );
            }
            println!("Cohort demo on an empty PostgreSQL database: {shown}");
            stack
        }
        None => {
            for suffix in ["", "-wal", "-shm"] {
                let path = PathBuf::from(format!("{}{suffix}", args.demo_db.display()));
                if path.exists() {
                    std::fs::remove_file(&path)
                        .with_context(|| format!("cannot replace `{}`", path.display()))?;
                }
            }
            let stack = assemble::open(&args.demo_db, Limits::default(), cache_dir)?;
            println!(
                "Cohort demo on a fresh embedded store: {}",
                args.demo_db.display()
            );
            stack
        }
    };
    let engine = &stack.engine;

    let started = Instant::now();
    let geoip = args
        .geoip_dir
        .join("GeoIP2-Country-Test.mmdb")
        .exists()
        .then_some(args.geoip_dir.as_path());
    for (id, wasm) in cohort_artifacts::STANDARD {
        let grant = geoip.filter(|_| *id == "geoip-country");
        engine.add_plugin_as(wasm, grant, cohort_engine::Provenance::Standard, NOW)?;
    }
    println!(
        "added {} standard plugins in {:.2} s",
        cohort_artifacts::STANDARD.len(),
        started.elapsed().as_secs_f64()
    );

    let started = Instant::now();
    let records = generate(args.customers, args.seed);
    let new = engine.store().upsert_customers(&records, NOW)?;
    println!(
        "stored {new} generated customers in {:.2} s",
        started.elapsed().as_secs_f64()
    );

    // A mistake is caught when the group is saved, with the field named.
    let typo: Group = serde_json::from_value(serde_json::json!({
        "id": "eu-residents", "name": "EU residents", "auto": {"mode": "full-sync"},
        "rule": {"all": [{"any": [{"plugin": "country", "config": {"countries": ["DE", "EU"]}}]}]}
    }))?;
    if let Err(e) = engine.save_group(&typo, NOW) {
        println!("saving a group with a typo is refused: {e}");
    }

    let groups = groups(geoip.is_some())?;
    for g in &groups {
        engine.save_group(g, NOW)?;
    }
    println!("saved {} groups\n", groups.len());

    println!(
        "{:<22} {:<10} {:>9} {:>8} {:>8} {:>8} {:>9} {:>8}",
        "group", "mode", "customers", "match", "added", "removed", "undecided", "seconds"
    );
    let mut total = 0.0;
    let mut runs = 0;
    for g in groups
        .iter()
        .filter(|g| g.auto.mode != cohort_model::Mode::Disabled)
    {
        let report = engine.run_group(
            &g.id,
            Trigger::Manual,
            false,
            "demo",
            NOW,
            NOW,
            &mut |_, _| {},
        )?;
        let r = &report.run;
        total += report.seconds;
        runs += 1;
        println!(
            "{:<22} {:<10} {:>9} {:>8} {:>8} {:>8} {:>9} {:>8.2}",
            r.group,
            serde_json::to_value(g.auto.mode)?.as_str().unwrap_or("?"),
            r.customers,
            r.matched,
            r.added,
            r.removed,
            r.undecided,
            report.seconds
        );
    }
    println!(
        "scanned {} customers against {} groups in {total:.2} s ({:.0} customer-group checks per second)\n",
        records.len(),
        runs,
        (records.len() * runs) as f64 / total.max(1e-9)
    );

    let report = engine.run_group(
        "eu-residents",
        Trigger::Manual,
        false,
        "demo",
        NOW,
        NOW,
        &mut |_, _| {},
    )?;
    println!(
        "a second run of `eu-residents` changes nothing: {} added, {} removed",
        report.run.added, report.run.removed
    );

    // Time-phased memberships (retailcloud): pending, active, expired by themselves.
    let day = 86_400;
    for (customer, start, end) in [
        (&records[0].id, NOW + 30 * day, NOW + 60 * day),
        (&records[1].id, NOW - 10 * day, NOW + 20 * day),
        (&records[2].id, NOW - 60 * day, NOW - 30 * day),
    ] {
        engine.add_member(
            customer,
            "spring-promo",
            "demo",
            "promotion import",
            (start, Some(end)),
            NOW,
        )?;
    }
    println!("time-phased group `spring-promo`:");
    for m in engine.store().group_memberships("spring-promo")? {
        println!(
            "  {:<10} {:?} from {} to {}",
            m.customer,
            m.state(NOW),
            day_of(m.start),
            m.end.map_or_else(|| "open".into(), day_of)
        );
    }

    let newcomer = CustomerRecord {
        id: "C-NEW-1".into(),
        country: Some("fr".into()),
        registration_params: BTreeMap::from([("fromsite".into(), "true".into())]),
        auth_methods: vec!["Google".into()],
        ..CustomerRecord::default()
    };
    // The first registration of a process also prepares every on-registration group's
    // conditions (an instance of each plugin); those are kept for the next ones.
    let started = Instant::now();
    let registration = engine.upsert_customer(&newcomer, NOW)?;
    let first = started.elapsed();
    let second = CustomerRecord {
        id: "C-NEW-2".into(),
        ..newcomer.clone()
    };
    let started = Instant::now();
    engine.upsert_customer(&second, NOW)?;
    println!(
        "\nregistering `{}` checked it against every on-registration group in {:.1} ms, \
         preparing their conditions first; it joined: {}\nthe next registration, `{}`, \
         took {:.2} ms",
        registration.customer,
        first.as_secs_f64() * 1e3,
        registration.joined.join(", "),
        second.id,
        started.elapsed().as_secs_f64() * 1e3,
    );

    let explained = &records[3].id;
    let why = engine.explain(explained, "eu-verified-phone", NOW)?;
    println!(
        "\nwhy is `{explained}` (not) in `eu-verified-phone`?\n{}",
        why.explanation
    );
    println!(
        "\nexplore further: cohort --db {shown} group list | member list eu-residents | history --customer {explained}"
    );

    // A member of staff for the console, with a password made for this store and
    // shown only now: a store that leaves this machine has no known password.
    let password = cohort_server::auth::new_token()
        .map_err(|e| anyhow::anyhow!("no randomness for a password: {e}"))?
        .chars()
        .rev()
        .take(16)
        .collect::<String>();
    let hash = cohort_server::staff::hash_password(&password).map_err(|e| anyhow::anyhow!(e))?;
    stack.access.create_staff(
        &StaffMember {
            name: "demo".into(),
            role: Role::Admin,
            groups: None,
            created_at: NOW,
            password_changed_at: NOW,
        },
        &hash,
    )?;
    let cohort = std::env::current_exe()
        .ok()
        .and_then(|exe| {
            let here = std::env::current_dir().ok()?;
            Some(
                exe.strip_prefix(&here)
                    .map(Path::to_path_buf)
                    .unwrap_or(exe),
            )
        })
        .map_or_else(|| "cohort".to_string(), |p| p.display().to_string());
    println!(
        "\nthe console for billing staff: {cohort} --db {shown} serve\n  then open \
         http://127.0.0.1:8080/ and sign in as `demo` with the password `{password}` \
         (shown only now; `cohort user password demo --password-stdin` sets another)"
    );
    Ok(ExitCode::SUCCESS)
}

fn day_of(t: Timestamp) -> String {
    Utc.timestamp_opt(t, 0)
        .single()
        .map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

/// Groups modelled on the seed platforms' examples.
fn groups(with_geoip: bool) -> anyhow::Result<Vec<Group>> {
    let mut groups = vec![
        serde_json::json!({
            "id": "eu-residents", "name": "EU residents",
            "description": "Prices with VAT; the country chosen at sign-up is an EU member state",
            "attributes": {"vat_module": "eu-oss"},
            "auto": {"mode": "full-sync", "triggers": {"on_registration": true,
                     "schedule": {"cron": "0 0 3 * * *", "time_zone": "Europe/Berlin"}}},
            "rule": {"all": [{"any": [{"plugin": "country", "config": {"countries": EU}}]}]}
        }),
        serde_json::json!({
            "id": "tower-hosts", "name": "Tower hosts",
            "description": "Customers hosting a tower get the tower-host discount (Sonar, Azotel)",
            "attributes": {"discount_id": "tower-host-100"},
            "auto": {"mode": "add-only"},
            "rule": {"all": [{"any": [{"plugin": "product", "config": {"products": ["tower-host"]}}]}]}
        }),
        serde_json::json!({
            "id": "eu-verified-phone", "name": "EU, verified by phone",
            "auto": {"mode": "full-sync"},
            "rule": {"all": [
                {"any": [{"plugin": "country", "config": {"countries": EU}}]},
                {"any": [{"plugin": "verification-method", "config": {"methods": ["phone"]}}]}
            ]}
        }),
        serde_json::json!({
            "id": "legal-entities", "name": "Legal entities",
            "description": "May suspend and delete services themselves (BILLmanager)",
            "attributes": {"allow_service_suspension": "true"},
            "auto": {"mode": "full-sync", "keep_manual": true},
            "rule": {"all": [{"any": [{"plugin": "payer-status", "config": {"kinds": ["legal-entity"]}}]}]}
        }),
        serde_json::json!({
            "id": "unverified", "name": "Not verified",
            "description": "May not order dedicated servers",
            "auto": {"mode": "full-sync"},
            "rule": {"all": [{"any": [{"plugin": "verification-status", "config": {"statuses": ["failed", "unverified"]}}]}]}
        }),
        serde_json::json!({
            "id": "site-google", "name": "Google sign-ups from the site",
            "auto": {"mode": "add-only", "triggers": {"on_registration": true}},
            "rule": {"all": [
                {"any": [{"plugin": "auth-method", "config": {"methods": ["google"]}}]},
                {"any": [{"plugin": "registration-param", "config": {"name": "fromsite", "operator": "equals", "value": "true"}}]}
            ]}
        }),
        serde_json::json!({
            "id": "resellers", "name": "Reseller customers",
            "auto": {"mode": "full-sync"},
            "rule": {"all": [{"any": [{"plugin": "provider", "config": {"providers": ["reseller-eu", "reseller-us"]}}]}]}
        }),
        serde_json::json!({
            "id": "spring-promo", "name": "Spring promotion",
            "description": "Time-phased memberships imported from a CRM (retailcloud)"
        }),
    ];
    if with_geoip {
        groups.push(serde_json::json!({
            "id": "registered-abroad", "name": "Registered from abroad",
            "description": "The registration IP is outside the EU, by GeoIP",
            "auto": {"mode": "full-sync"},
            "rule": {"all": [{"any": [{"plugin": "geoip-country",
                "config": {"countries": ["GB", "US", "NO", "JP", "CN"], "database": "GeoIP2-Country-Test.mmdb"}}]}]}
        }));
    }
    groups
        .into_iter()
        .map(|g| serde_json::from_value(g).context("the demo's groups are valid"))
        .collect()
}

/// Deterministic sample customers with realistic mixes of facts.
fn generate(n: usize, seed: u64) -> Vec<CustomerRecord> {
    let mut rng = Lcg(seed ^ 0x9e37_79b9_7f4a_7c15);
    let total: u32 = COUNTRIES.iter().map(|(_, w)| w).sum();
    let start = |days_ago: u32| {
        Utc.timestamp_opt(NOW - i64::from(days_ago) * 86_400, 0)
            .single()
            .unwrap_or_default()
    };
    (0..n)
        .map(|i| {
            let country = if rng.below(40) == 0 {
                None
            } else {
                let mut pick = rng.below(total);
                COUNTRIES
                    .iter()
                    .find(|(_, w)| {
                        let hit = pick < *w;
                        pick = pick.saturating_sub(*w);
                        hit
                    })
                    .map(|(c, _)| c.to_string())
            };
            let kinds = [
                PayerKind::Individual,
                PayerKind::Individual,
                PayerKind::Individual,
                PayerKind::LegalEntity,
                PayerKind::SoleProprietor,
            ];
            let payers = (0..1 + rng.below(2))
                .map(|_| PayerRecord {
                    kind: kinds[rng.below(5) as usize],
                    active: rng.below(10) != 0,
                })
                .collect();
            let methods = ["login-password", "phone", "google", "facebook"];
            let auth_methods = methods
                .iter()
                .filter(|_| rng.below(3) == 0)
                .map(|m| m.to_string())
                .collect();
            let verification_status = match rng.below(10) {
                0 => VerificationStatus::Failed,
                1 | 2 => VerificationStatus::Unverified,
                _ => VerificationStatus::Passed,
            };
            let verification_methods = if verification_status == VerificationStatus::Passed {
                ["email", "phone", "manual", "payment-method"]
                    .iter()
                    .filter(|_| rng.below(2) == 0)
                    .map(|m| m.to_string())
                    .collect()
            } else {
                Vec::new()
            };
            let subscriptions = (0..rng.below(4))
                .map(|_| {
                    let product = if rng.below(50) == 0 {
                        "tower-host"
                    } else {
                        PRODUCTS[rng.below(5) as usize]
                    };
                    let began = 30 + rng.below(900);
                    let ended = rng.below(5) == 0;
                    SubscriptionRecord {
                        product: product.into(),
                        status: if ended {
                            SubscriptionStatus::Cancelled
                        } else {
                            SubscriptionStatus::Active
                        },
                        start: start(began),
                        end: ended.then(|| start(began - 1 - rng.below(29))),
                    }
                })
                .collect();
            let mut registration_params = BTreeMap::new();
            registration_params.insert("fromsite".to_string(), (rng.below(3) != 0).to_string());
            if rng.below(4) == 0 {
                registration_params.insert(
                    "utm_source".to_string(),
                    format!("partner-{}", rng.below(50)),
                );
            }
            CustomerRecord {
                id: format!("C-{:07}", i + 1),
                country,
                registration_ip: IPS[rng.below(IPS.len() as u32) as usize].parse().ok(),
                registration_params,
                payers,
                provider: Some(
                    ["main", "main", "main", "reseller-eu", "reseller-us"][rng.below(5) as usize]
                        .into(),
                ),
                auth_methods,
                verification_status,
                verification_methods,
                subscriptions,
                ..CustomerRecord::default()
            }
        })
        .collect()
}

/// A fixed-seed linear congruential generator: reproducible and dependency-free.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u32) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) % u64::from(n.max(1))) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_is_deterministic_valid_and_uses_the_weights() {
        let a = generate(5_000, 7);
        assert_eq!(a, generate(5_000, 7));
        assert_ne!(a, generate(5_000, 8));
        let interner = cohort_model::Interner::new();
        for c in &a {
            c.intern(&interner).expect("generated customers are valid");
        }
        let de = a
            .iter()
            .filter(|c| c.country.as_deref() == Some("DE"))
            .count();
        let india = a
            .iter()
            .filter(|c| c.country.as_deref() == Some("IN"))
            .count();
        assert!(de > 10 * india, "DE {de} vs IN {india}");
        assert!(
            a.iter()
                .any(|c| c.subscriptions.iter().any(|s| s.product == "tower-host"))
        );
    }

    #[test]
    fn the_demo_groups_are_valid() {
        for g in groups(true).expect("groups") {
            g.check().expect("valid group");
        }
    }
}
