//! The standard conditions written directly in Rust over interned customers: the limit
//! the plugins are measured against. GeoIP is left out (it needs the database reader
//! inside the host); groups using it are compared on the other groups only.

use cohort_model::{
    Condition, Customer, Group, Interner, PayerKind, SubscriptionStatus, Symbol, VerificationStatus,
};
use serde_json::Value;

pub enum Native {
    /// The customer's symbol is in the set (country, provider).
    Country(Vec<Symbol>),
    Provider(Vec<Symbol>),
    /// Any of the customer's symbols is in the set.
    Auth(Vec<Symbol>),
    VerificationMethod(Vec<Symbol>),
    VerificationStatus(Vec<VerificationStatus>),
    Payer {
        kinds: Vec<PayerKind>,
        include_inactive: bool,
    },
    /// An active subscription to one of the products at the as-of time.
    Product(Vec<Symbol>),
    Param {
        name: Symbol,
        values: Option<Vec<Symbol>>,
    },
}

fn strings(v: &Value, key: &str) -> Vec<String> {
    v[key]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn symbols(interner: &Interner, v: &Value, key: &str) -> Vec<Symbol> {
    let mut s: Vec<Symbol> = strings(v, key).iter().map(|x| interner.intern(x)).collect();
    s.sort_unstable();
    s
}

impl Native {
    /// The native form of a condition; `None` for GeoIP and group conditions.
    pub fn compile(c: &Condition, interner: &Interner) -> Option<Native> {
        let c = c.plugin()?;
        let v = &c.config;
        Some(match c.plugin.as_str() {
            "country" => Native::Country(symbols(interner, v, "countries")),
            "provider" => Native::Provider(symbols(interner, v, "providers")),
            "auth-method" => Native::Auth(symbols(interner, v, "methods")),
            "verification-method" => Native::VerificationMethod(symbols(interner, v, "methods")),
            "verification-status" => Native::VerificationStatus(
                strings(v, "statuses")
                    .iter()
                    .map(|s| serde_json::from_value(Value::String(s.clone())).expect("a status"))
                    .collect(),
            ),
            "payer-status" => Native::Payer {
                kinds: strings(v, "kinds")
                    .iter()
                    .map(|s| serde_json::from_value(Value::String(s.clone())).expect("a kind"))
                    .collect(),
                include_inactive: v["include_inactive"].as_bool().unwrap_or(false),
            },
            "product" => Native::Product(symbols(interner, v, "products")),
            "registration-param" => Native::Param {
                name: interner.intern(v["name"].as_str().unwrap_or_default()),
                values: match v["operator"].as_str() {
                    Some("equals") => Some(vec![
                        interner.intern(v["value"].as_str().unwrap_or_default()),
                    ]),
                    Some("one-of") => Some(symbols(interner, v, "values")),
                    _ => None,
                },
            },
            _ => return None,
        })
    }

    pub fn holds(&self, c: &Customer, as_of: i64) -> bool {
        let has = |set: &[Symbol], s: Symbol| set.binary_search(&s).is_ok();
        match self {
            Native::Country(set) => c.country.is_some_and(|s| has(set, s)),
            Native::Provider(set) => c.provider.is_some_and(|s| has(set, s)),
            Native::Auth(set) => c.auth_methods.iter().any(|&s| has(set, s)),
            Native::VerificationMethod(set) => c.verification_methods.iter().any(|&s| has(set, s)),
            Native::VerificationStatus(set) => set.contains(&c.verification_status),
            Native::Payer {
                kinds,
                include_inactive,
            } => c
                .payers
                .iter()
                .any(|p| (p.active || *include_inactive) && kinds.contains(&p.kind)),
            Native::Product(set) => c.subscriptions.iter().any(|s| {
                has(set, s.product)
                    && s.status == SubscriptionStatus::Active
                    && s.start <= as_of
                    && s.end.is_none_or(|e| e > as_of)
            }),
            Native::Param { name, values } => c
                .registration_params
                .iter()
                .any(|&(k, v)| k == *name && values.as_ref().is_none_or(|vs| vs.contains(&v))),
        }
    }
}

/// A group's rule in native form: clauses of (condition, negate); `None` if a
/// condition has no native form.
pub struct NativeRule(Vec<Vec<(Native, bool)>>);

impl NativeRule {
    pub fn compile(group: &Group, interner: &Interner) -> Option<NativeRule> {
        group
            .rule
            .all
            .iter()
            .map(|clause| {
                clause
                    .any
                    .iter()
                    .map(|c| Native::compile(c, interner).map(|n| (n, c.negate())))
                    .collect()
            })
            .collect::<Option<_>>()
            .map(NativeRule)
    }

    pub fn decide(&self, c: &Customer, as_of: i64) -> bool {
        self.0.iter().all(|clause| {
            clause
                .iter()
                .any(|(n, negate)| n.holds(c, as_of) != *negate)
        })
    }
}
