//! A seeded platform: customers with realistic spreads of facts, and 24 groups whose
//! rules use the nine standard plugins that read what the customers carry.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use cohort_model::{
    CustomerRecord, Group, PayerKind, PayerRecord, SubscriptionRecord, SubscriptionStatus,
    VerificationStatus,
};
use serde_json::{Value, json};

/// splitmix64: small, fast, and the same sequence on every machine.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }

    /// Skewed towards the front: a few countries, products and providers have most
    /// customers, as on a real platform.
    pub fn skewed(&mut self, n: usize) -> usize {
        let u = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        ((u * u) * n as f64) as usize % n
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }

    /// `min + below(spread)` distinct items.
    fn some<'a>(&mut self, items: &[&'a str], min: usize, spread: usize) -> Vec<&'a str> {
        let k = min + self.below(spread);
        let mut out: Vec<&str> = Vec::new();
        while out.len() < k.min(items.len()) {
            let x = self.pick(items);
            if !out.contains(&x) {
                out.push(x);
            }
        }
        out
    }
}

pub const COUNTRIES: [&str; 60] = [
    "DE", "US", "GB", "FR", "NL", "PL", "ES", "IT", "SE", "AT", "CH", "BE", "CZ", "DK", "FI", "NO",
    "IE", "PT", "GR", "HU", "RO", "BG", "HR", "SK", "SI", "LT", "LV", "EE", "LU", "CY", "MT", "IS",
    "UA", "TR", "RU", "KZ", "CA", "MX", "BR", "AR", "CL", "CO", "JP", "CN", "KR", "IN", "SG", "AU",
    "NZ", "ZA", "EG", "NG", "KE", "IL", "AE", "SA", "TH", "VN", "ID", "PH",
];
const PROVIDERS: [&str; 5] = [
    "main",
    "reseller-eu",
    "reseller-us",
    "partner-asia",
    "legacy",
];
const AUTH: [&str; 6] = [
    "login-password",
    "google",
    "facebook",
    "apple",
    "phone",
    "sso",
];
const VERIFY: [&str; 4] = ["email", "phone", "passport", "video"];
const CAMPAIGNS: [&str; 10] = [
    "spring",
    "summer",
    "autumn",
    "winter",
    "black-friday",
    "referral",
    "tv",
    "radio",
    "search",
    "social",
];
/// Addresses the MaxMind test databases know (GB, SE, US, JP, ...) and some they do not.
const IPS: [&str; 8] = [
    "81.2.69.142",
    "81.2.69.160",
    "89.160.20.112",
    "216.160.83.56",
    "2001:218::1",
    "2a02:cf40::1",
    "10.1.2.3",
    "192.0.2.44",
];
pub const PRODUCTS: usize = 500;
/// The time the workload's memberships are judged at.
pub const AS_OF: i64 = 1_780_000_000;

fn product(i: usize) -> String {
    format!("p-{i:03}")
}

fn time(t: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(t, 0).expect("in range")
}

/// Customer `i` of the platform made from `seed`.
pub fn customer(rng: &mut Rng, i: u64) -> CustomerRecord {
    let mut params = BTreeMap::new();
    params.insert(
        "fromsite".to_string(),
        if rng.chance(0.7) { "true" } else { "false" }.to_string(),
    );
    if rng.chance(0.5) {
        params.insert("campaign".into(), rng.pick(&CAMPAIGNS).into());
    }
    if rng.chance(0.1) {
        params.insert("partner".into(), format!("pa-{}", rng.below(50)));
    }
    let payers = (0..1 + rng.below(3))
        .map(|_| PayerRecord {
            kind: match rng.below(10) {
                0..=5 => PayerKind::Individual,
                6..=8 => PayerKind::LegalEntity,
                _ => PayerKind::SoleProprietor,
            },
            active: rng.chance(0.9),
        })
        .collect();
    let subscriptions = (0..rng.below(6))
        .map(|_| {
            let start = AS_OF - 86_400 * rng.below(3 * 365) as i64;
            let end = rng
                .chance(0.3)
                .then(|| start + 86_400 * (30 + rng.below(700)) as i64);
            SubscriptionRecord {
                product: product(rng.skewed(PRODUCTS)),
                status: match rng.below(20) {
                    0 => SubscriptionStatus::Suspended,
                    1 => SubscriptionStatus::Cancelled,
                    2 => SubscriptionStatus::Pending,
                    _ => SubscriptionStatus::Active,
                },
                start: time(start),
                end: end.map(time),
            }
        })
        .collect();
    CustomerRecord {
        id: format!("c{i:08}"),
        country: rng
            .chance(0.97)
            .then(|| COUNTRIES[rng.skewed(COUNTRIES.len())].to_string()),
        registration_ip: rng
            .chance(0.9)
            .then(|| rng.pick(&IPS).parse().expect("an address")),
        registration_params: params,
        payers,
        provider: Some(PROVIDERS[rng.skewed(PROVIDERS.len())].to_string()),
        auth_methods: rng
            .some(&AUTH, 1, 3)
            .into_iter()
            .map(String::from)
            .collect(),
        verification_status: match rng.below(10) {
            0..=5 => VerificationStatus::Passed,
            6..=8 => VerificationStatus::Unverified,
            _ => VerificationStatus::Failed,
        },
        verification_methods: rng
            .some(&VERIFY, 0, 3)
            .into_iter()
            .map(String::from)
            .collect(),
        subscriptions,
        tags: Vec::new(),
        attributes: BTreeMap::new(),
        registered_at: None,
    }
}

/// `n` customers from `seed`.
pub fn customers(n: u64, seed: u64) -> Vec<CustomerRecord> {
    let mut rng = Rng::new(seed);
    (0..n).map(|i| customer(&mut rng, i)).collect()
}

/// Change a customer as a platform would between two scans: a move, a new sign-in
/// method, a passed verification, a new subscription.
pub fn change(rng: &mut Rng, c: &mut CustomerRecord) {
    match rng.below(4) {
        0 => c.country = Some(COUNTRIES[rng.below(COUNTRIES.len())].to_string()),
        1 => c.auth_methods = vec![rng.pick(&AUTH).to_string()],
        2 => c.verification_status = VerificationStatus::Passed,
        _ => c.subscriptions.push(SubscriptionRecord {
            product: product(rng.skewed(PRODUCTS)),
            status: SubscriptionStatus::Active,
            start: time(AS_OF - 86_400),
            end: None,
        }),
    }
}

/// The standard plugins the reference groups use, in the order groups take them as
/// their first condition: the nine that read the facts these customers carry. The
/// customers have no custom attributes and no registration times (the workload is kept
/// as it was when its baselines were measured), so `attribute` and `registered` would
/// decide nothing here.
fn plugins() -> Vec<&'static str> {
    const UNUSED: [&str; 2] = ["attribute", "registered"];
    cohort_artifacts::STANDARD
        .iter()
        .map(|(id, _)| *id)
        .filter(|id| !UNUSED.contains(id))
        .collect()
}

/// The GeoIP database the geoip-country conditions name (MaxMind's test database).
pub const GEOIP_DATABASE: &str = "GeoIP2-Country-Test.mmdb";

fn config(rng: &mut Rng, plugin: &str) -> Value {
    match plugin {
        "country" => json!({"countries": rng.some(&COUNTRIES[..30], 3, 8)}),
        "geoip-country" => json!({
            "countries": rng.some(&["GB", "SE", "US", "JP", "DE"], 1, 2),
            "database": GEOIP_DATABASE,
        }),
        "registration-param" => match rng.below(3) {
            0 => json!({"name": "fromsite", "operator": "equals", "value": "true"}),
            1 => json!({"name": "campaign", "operator": "one-of",
                        "values": rng.some(&CAMPAIGNS, 2, 3)}),
            _ => json!({"name": "partner", "operator": "present"}),
        },
        "payer-status" => json!({
            "kinds": rng.some(&["legal-entity", "individual", "sole-proprietor"], 1, 2),
            "include_inactive": rng.chance(0.3),
        }),
        "provider" => json!({"providers": rng.some(&PROVIDERS, 1, 2)}),
        "auth-method" => json!({"methods": rng.some(&AUTH, 1, 2)}),
        "verification-status" => {
            json!({"statuses": rng.some(&["passed", "failed", "unverified"], 1, 2)})
        }
        "verification-method" => json!({"methods": rng.some(&VERIFY, 1, 2)}),
        "product" => {
            let products: Vec<String> = (0..5 + rng.below(25))
                .map(|_| product(rng.skewed(PRODUCTS)))
                .collect();
            json!({"products": products})
        }
        other => unreachable!("no configuration for `{other}`"),
    }
}

/// The 24 groups: 1-3 clauses (mostly 2-3) of 1-3 conditions each, each of `plugins()` used,
/// add-only and full-sync mixed, all checked at registration too.
pub fn groups(seed: u64) -> Vec<Group> {
    let mut rng = Rng::new(seed ^ 0x5EED);
    let plugins = plugins();
    (0..24)
        .map(|g| {
            // Mostly two or three clauses: a segment is a conjunction of facts, and a
            // customer is in a few groups, not in most.
            let clauses: Vec<Value> = (0..1 + rng.below(3).max(rng.below(3)))
                .map(|c| {
                    let conditions: Vec<Value> = (0..1 + rng.below(3))
                        .map(|k| {
                            let plugin = if c == 0 && k == 0 {
                                plugins[g % plugins.len()]
                            } else {
                                plugins[rng.below(plugins.len())]
                            };
                            json!({
                                "plugin": plugin,
                                "config": config(&mut rng, plugin),
                                "negate": rng.chance(0.08),
                            })
                        })
                        .collect();
                    json!({"any": conditions})
                })
                .collect();
            serde_json::from_value(json!({
                "id": format!("g{g:02}"),
                "name": format!("Reference group {g}"),
                "auto": {
                    "mode": if g % 3 == 0 { "add-only" } else { "full-sync" },
                    "triggers": {"on_registration": true},
                },
                "rule": {"all": clauses},
            }))
            .expect("a valid group")
        })
        .collect()
}
