//! Contract 0.1.0, frozen: every field a column of its own record, unread ones empty.

wasmtime::component::bindgen!({
    path: "../wit/0.1.0",
    world: "plugin",
    // `host.intern` stops a call that interns past the limits.
    imports: { default: trappable },
});

glue!();

use crate::columns::Batch;

/// A ragged column of 0.2.0 as 0.1.0's record of it; `$item` converts an item.
macro_rules! ragged_v0_1 {
    ($record:ident, $from:expr, $item:expr) => {
        self::cohort::plugin::types::$record {
            offsets: $from.offsets.clone(),
            items: $from.items.iter().map($item).collect(),
        }
    };
}

impl Batch {
    /// A copy in 0.1.0's form, where every column is a field and unread ones are
    /// empty. Only plugins built against 0.1.0 pay for it.
    pub(crate) fn to_v0_1(&self) -> self::cohort::plugin::types::Customers {
        use self::cohort::plugin::types as old;
        use crate::contract::v0_3::cohort::plugin::types as new;
        let pair = |p: &new::Pair| old::Pair {
            key: p.key,
            value: p.value,
        };
        let attributes = super::v0_2::text_attributes(
            &self.attributes.offsets,
            &self.attributes.items,
            |key, value| old::Pair { key, value },
        );
        old::Customers {
            count: self.count,
            country: self.country.clone(),
            registration_ip: self
                .registration_ip
                .iter()
                .map(|ip| {
                    ip.map(|ip| match ip {
                        new::IpAddress::Ipv4(a) => old::IpAddress::Ipv4(a),
                        new::IpAddress::Ipv6(a) => old::IpAddress::Ipv6(a),
                    })
                })
                .collect(),
            registration_params: ragged_v0_1!(RaggedPairs, self.registration_params, pair),
            payers: ragged_v0_1!(RaggedPayers, self.payers, |p| old::Payer {
                kind: match p.kind {
                    new::PayerKind::LegalEntity => old::PayerKind::LegalEntity,
                    new::PayerKind::Individual => old::PayerKind::Individual,
                    new::PayerKind::SoleProprietor => old::PayerKind::SoleProprietor,
                },
                active: p.active,
            }),
            provider: self.provider.clone(),
            auth_methods: ragged_v0_1!(RaggedSymbols, self.auth_methods, |s| *s),
            verification_status: self
                .verification_status
                .iter()
                .map(|s| match s {
                    new::VerificationStatus::Unverified => old::VerificationStatus::Unverified,
                    new::VerificationStatus::Passed => old::VerificationStatus::Passed,
                    new::VerificationStatus::Failed => old::VerificationStatus::Failed,
                })
                .collect(),
            verification_methods: ragged_v0_1!(RaggedSymbols, self.verification_methods, |s| *s),
            subscriptions: ragged_v0_1!(RaggedSubscriptions, self.subscriptions, |s| {
                old::Subscription {
                    product: s.product,
                    status: match s.status {
                        new::SubscriptionStatus::Active => old::SubscriptionStatus::Active,
                        new::SubscriptionStatus::Suspended => old::SubscriptionStatus::Suspended,
                        new::SubscriptionStatus::Cancelled => old::SubscriptionStatus::Cancelled,
                        new::SubscriptionStatus::Pending => old::SubscriptionStatus::Pending,
                    },
                    start: s.start,
                    end: s.end,
                }
            }),
            tags: ragged_v0_1!(RaggedSymbols, self.tags, |s| *s),
            attributes: old::RaggedPairs {
                offsets: attributes.offsets,
                items: attributes.items,
            },
        }
    }
}

/// The verdicts of a batch of `n` customers, appended to `out`, or how the plugin
/// broke the contract (and nothing appended). 0.1.0 does not say how long a verdict
/// holds: each holds for its as-of time only.
pub(crate) fn verdicts(
    v: self::cohort::plugin::types::Verdicts,
    as_of: cohort_model::Timestamp,
    n: usize,
    out: &mut Verdicts,
) -> Result<(), String> {
    super::accept(&v.matches, undecided(v.undecided), None, as_of, n, out)
}
