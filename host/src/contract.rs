//! The versions of the `cohort:plugin` contract this host runs, and the conversions
//! between their generated types and the model.
//!
//! Each supported version has its own `bindgen!` module. A new version gets a new
//! module beside the old ones; released modules never change, so a plugin built
//! against an older supported version keeps loading.

use std::net::IpAddr;

use cohort_model::{
    Capability, ConfigError, Customer, Field, FieldSet, PayerKind, PluginInfo, SubscriptionStatus,
    Verdict, VerificationStatus,
};
use wasmtime::Engine;
use wasmtime::component::Component;

use crate::error::LoadError;
use crate::sandbox::State;

/// Contract versions this host can run, newest first.
pub const SUPPORTED_CONTRACTS: &[&str] = &["0.1.0"];

const EXPORT_PREFIX: &str = "cohort:plugin/condition@";

pub(crate) mod v0_1 {
    wasmtime::component::bindgen!({
        path: "../wit/0.1.0",
        world: "plugin",
    });
}

use v0_1::cohort::plugin::types as wit;

/// A contract version a loaded plugin was built against.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Version {
    V0_1,
}

impl Version {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Version::V0_1 => "0.1.0",
        }
    }
}

/// Which contract version `component` was built against, from the name of its
/// `cohort:plugin/condition@X.Y.Z` export.
pub(crate) fn detect(engine: &Engine, component: &Component) -> Result<Version, LoadError> {
    let exports: Vec<String> = component
        .component_type()
        .exports(engine)
        .map(|(name, _)| name.to_string())
        .collect();
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
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(Ok(0)), Some(Ok(1)), Some(Ok(_)), None) => Ok(Version::V0_1),
        _ => Err(LoadError::UnsupportedContract {
            found: found.to_string(),
            supported: SUPPORTED_CONTRACTS.join(", "),
        }),
    }
}

impl v0_1::cohort::plugin::types::Host for State {}

impl v0_1::cohort::plugin::host::Host for State {
    fn intern(&mut self, text: String) -> u32 {
        self.interner.intern(&text).as_u32()
    }

    fn symbol_text(&mut self, symbol: u32) -> Option<String> {
        self.interner
            .resolve(cohort_model::Symbol::from_u32(symbol))
            .map(|s| s.to_string())
    }
}

/// The projection of a customer that a plugin declared it reads. Everything else stays
/// empty, so it costs nothing to copy into the guest.
pub(crate) fn project(c: &Customer, reads: FieldSet) -> wit::Customer {
    let has = |f| reads.contains(f);
    let pairs = |ps: &[(cohort_model::Symbol, cohort_model::Symbol)]| {
        ps.iter()
            .map(|(k, v)| wit::Pair {
                key: k.as_u32(),
                value: v.as_u32(),
            })
            .collect()
    };
    let symbols = |ss: &[cohort_model::Symbol]| ss.iter().map(|s| s.as_u32()).collect::<Vec<u32>>();
    wit::Customer {
        country: c
            .country
            .filter(|_| has(Field::Country))
            .map(|s| s.as_u32()),
        registration_ip: c
            .registration_ip
            .filter(|_| has(Field::RegistrationIp))
            .map(|ip| match ip {
                IpAddr::V4(v4) => wit::IpAddress::Ipv4(u32::from(v4)),
                IpAddr::V6(v6) => {
                    let n = u128::from(v6);
                    wit::IpAddress::Ipv6(((n >> 64) as u64, n as u64))
                }
            }),
        registration_params: if has(Field::RegistrationParams) {
            pairs(&c.registration_params)
        } else {
            Vec::new()
        },
        payers: if has(Field::Payers) {
            c.payers
                .iter()
                .map(|p| wit::Payer {
                    kind: match p.kind {
                        PayerKind::LegalEntity => wit::PayerKind::LegalEntity,
                        PayerKind::Individual => wit::PayerKind::Individual,
                        PayerKind::SoleProprietor => wit::PayerKind::SoleProprietor,
                    },
                    active: p.active,
                })
                .collect()
        } else {
            Vec::new()
        },
        provider: c
            .provider
            .filter(|_| has(Field::Provider))
            .map(|s| s.as_u32()),
        auth_methods: if has(Field::AuthMethods) {
            symbols(&c.auth_methods)
        } else {
            Vec::new()
        },
        verification_status: if has(Field::VerificationStatus) {
            match c.verification_status {
                VerificationStatus::Unverified => wit::VerificationStatus::Unverified,
                VerificationStatus::Passed => wit::VerificationStatus::Passed,
                VerificationStatus::Failed => wit::VerificationStatus::Failed,
            }
        } else {
            wit::VerificationStatus::Unverified
        },
        verification_methods: if has(Field::VerificationMethods) {
            symbols(&c.verification_methods)
        } else {
            Vec::new()
        },
        subscriptions: if has(Field::Subscriptions) {
            c.subscriptions
                .iter()
                .map(|s| wit::Subscription {
                    product: s.product.as_u32(),
                    status: match s.status {
                        SubscriptionStatus::Active => wit::SubscriptionStatus::Active,
                        SubscriptionStatus::Suspended => wit::SubscriptionStatus::Suspended,
                        SubscriptionStatus::Cancelled => wit::SubscriptionStatus::Cancelled,
                        SubscriptionStatus::Pending => wit::SubscriptionStatus::Pending,
                    },
                    start: s.start,
                    end: s.end,
                })
                .collect()
        } else {
            Vec::new()
        },
        tags: if has(Field::Tags) {
            symbols(&c.tags)
        } else {
            Vec::new()
        },
        attributes: if has(Field::Attributes) {
            pairs(&c.attributes)
        } else {
            Vec::new()
        },
    }
}

pub(crate) fn info(info: wit::PluginInfo) -> Result<PluginInfo, LoadError> {
    let id_ok = !info.id.is_empty()
        && info.id.len() <= 64
        && info
            .id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !info.id.starts_with('-');
    if !id_ok {
        return Err(LoadError::Description(format!(
            "id `{}` must be 1-64 lower-case letters, digits and `-`, not starting with `-`",
            info.id
        )));
    }
    if info.version.trim().is_empty() {
        return Err(LoadError::Description(format!(
            "plugin `{}` gives no version",
            info.id
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

pub(crate) fn verdict(v: wit::Verdict) -> Verdict {
    match v {
        wit::Verdict::Match => Verdict::Match,
        wit::Verdict::NoMatch => Verdict::NoMatch,
        wit::Verdict::Error(message) => Verdict::Error(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cohort_model::{CustomerRecord, Interner};

    fn full_customer(interner: &Interner) -> Customer {
        serde_json::from_str::<CustomerRecord>(
            r#"{"id":"1","country":"DE","registration_ip":"2001:db8::1",
                "registration_params":{"fromsite":"true"},
                "payers":[{"kind":"individual"}],"provider":"main","auth_methods":["phone"],
                "verification_status":"passed","verification_methods":["email"],
                "subscriptions":[{"product":"tower","start":"2026-01-01T00:00:00Z"}],
                "tags":["vip"],"attributes":{"segment":"b2b"}}"#,
        )
        .expect("parses")
        .intern(interner)
        .expect("valid")
    }

    #[test]
    fn unread_fields_are_left_empty() {
        let interner = Interner::new();
        let c = full_customer(&interner);
        let only_country = project(&c, FieldSet::empty().with(Field::Country));
        assert_eq!(
            only_country.country,
            interner.lookup("DE").map(|s| s.as_u32())
        );
        assert!(only_country.registration_ip.is_none());
        assert!(only_country.registration_params.is_empty());
        assert!(only_country.payers.is_empty());
        assert!(only_country.provider.is_none());
        assert!(only_country.auth_methods.is_empty());
        assert!(matches!(
            only_country.verification_status,
            wit::VerificationStatus::Unverified
        ));
        assert!(only_country.verification_methods.is_empty());
        assert!(only_country.subscriptions.is_empty());
        assert!(only_country.tags.is_empty());
        assert!(only_country.attributes.is_empty());
    }

    #[test]
    fn read_fields_are_all_carried() {
        let interner = Interner::new();
        let c = full_customer(&interner);
        let all: FieldSet = Field::ALL.into_iter().collect();
        let p = project(&c, all);
        assert!(matches!(
            p.registration_ip,
            Some(wit::IpAddress::Ipv6((0x2001_0db8_0000_0000, 1)))
        ));
        assert_eq!(p.registration_params.len(), 1);
        assert_eq!(p.payers.len(), 1);
        assert_eq!(p.provider, interner.lookup("main").map(|s| s.as_u32()));
        assert_eq!(p.auth_methods.len(), 1);
        assert!(matches!(
            p.verification_status,
            wit::VerificationStatus::Passed
        ));
        assert_eq!(p.verification_methods.len(), 1);
        assert_eq!(p.subscriptions[0].start, 1_767_225_600);
        assert_eq!(p.tags.len(), 1);
        assert_eq!(p.attributes.len(), 1);
    }

    #[test]
    fn ipv4_is_big_endian() {
        let interner = Interner::new();
        let c =
            serde_json::from_str::<CustomerRecord>(r#"{"id":"1","registration_ip":"81.2.69.142"}"#)
                .expect("parses")
                .intern(&interner)
                .expect("valid");
        let p = project(&c, FieldSet::empty().with(Field::RegistrationIp));
        assert!(matches!(
            p.registration_ip,
            Some(wit::IpAddress::Ipv4(0x5102_458e))
        ));
    }
}
