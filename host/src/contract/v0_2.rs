//! Contract 0.2.0, frozen: customers as the columns a plugin reads, in field order.

wasmtime::component::bindgen!({
    path: "../wit/0.2.0",
    world: "plugin",
    // `host.intern` stops a call that interns past the limits.
    imports: { default: trappable },
});

glue!();

use crate::columns::Batch;
use crate::contract::v0_3::cohort::plugin::types as new;

/// A ragged column of 0.3.0 as 0.2.0's record of it; `$item` converts an item.
macro_rules! ragged_v0_2 {
    ($record:ident, $from:expr, $item:expr) => {
        wit::$record {
            offsets: $from.offsets.clone(),
            items: $from.items.iter().map($item).collect(),
        }
    };
}

impl Batch {
    /// A copy of the columns `reads` names in 0.2.0's form, in the order of its
    /// `fields`. Attributes are text there: a typed value is left out, as a 0.2.0
    /// plugin never saw one. Only plugins built against 0.2.0 pay for the copy.
    pub(crate) fn to_v0_2(&self, reads: FieldSet) -> wit::Customers {
        use wit::Column as C;
        let mut columns = Vec::new();
        for field in reads.iter() {
            columns.push(match field {
                Field::Country => C::Country(self.country.clone()),
                Field::RegistrationIp => C::RegistrationIp(
                    self.registration_ip
                        .iter()
                        .map(|ip| ip.map(ip_v0_2))
                        .collect(),
                ),
                Field::RegistrationParams => C::RegistrationParams(ragged_v0_2!(
                    RaggedPairs,
                    self.registration_params,
                    |p| wit::Pair {
                        key: p.key,
                        value: p.value,
                    }
                )),
                Field::Payers => C::Payers(ragged_v0_2!(RaggedPayers, self.payers, |p| {
                    wit::Payer {
                        kind: match p.kind {
                            new::PayerKind::LegalEntity => wit::PayerKind::LegalEntity,
                            new::PayerKind::Individual => wit::PayerKind::Individual,
                            new::PayerKind::SoleProprietor => wit::PayerKind::SoleProprietor,
                        },
                        active: p.active,
                    }
                })),
                Field::Provider => C::Provider(self.provider.clone()),
                Field::AuthMethods => {
                    C::AuthMethods(ragged_v0_2!(RaggedSymbols, self.auth_methods, |s| *s))
                }
                Field::VerificationStatus => C::VerificationStatus(
                    self.verification_status
                        .iter()
                        .map(|s| match s {
                            new::VerificationStatus::Unverified => {
                                wit::VerificationStatus::Unverified
                            }
                            new::VerificationStatus::Passed => wit::VerificationStatus::Passed,
                            new::VerificationStatus::Failed => wit::VerificationStatus::Failed,
                        })
                        .collect(),
                ),
                Field::VerificationMethods => C::VerificationMethods(ragged_v0_2!(
                    RaggedSymbols,
                    self.verification_methods,
                    |s| *s
                )),
                Field::Subscriptions => {
                    C::Subscriptions(ragged_v0_2!(RaggedSubscriptions, self.subscriptions, |s| {
                        wit::Subscription {
                            product: s.product,
                            status: match s.status {
                                new::SubscriptionStatus::Active => wit::SubscriptionStatus::Active,
                                new::SubscriptionStatus::Suspended => {
                                    wit::SubscriptionStatus::Suspended
                                }
                                new::SubscriptionStatus::Cancelled => {
                                    wit::SubscriptionStatus::Cancelled
                                }
                                new::SubscriptionStatus::Pending => {
                                    wit::SubscriptionStatus::Pending
                                }
                            },
                            start: s.start,
                            end: s.end,
                        }
                    }))
                }
                Field::Tags => C::Tags(ragged_v0_2!(RaggedSymbols, self.tags, |s| *s)),
                Field::Attributes => C::Attributes(
                    text_attributes(
                        &self.attributes.offsets,
                        &self.attributes.items,
                        |key, value| wit::Pair { key, value },
                    )
                    .into(),
                ),
                // Not in 0.2.0: a 0.2.0 plugin cannot declare it.
                Field::Registered => continue,
            });
        }
        wit::Customers {
            count: self.count,
            columns,
        }
    }
}

/// A ragged column of typed attributes as the text-only pairs an older contract reads,
/// typed values left out; `pair` builds that contract's pair.
pub(crate) fn text_attributes<P>(
    offsets: &[u32],
    items: &[new::Attribute],
    pair: impl Fn(u32, u32) -> P,
) -> RaggedPairs<P> {
    let mut out = RaggedPairs {
        offsets: Vec::with_capacity(offsets.len()),
        items: Vec::new(),
    };
    for w in offsets.windows(2) {
        if out.offsets.is_empty() {
            out.offsets.push(0);
        }
        for a in &items[w[0] as usize..w[1] as usize] {
            if let new::Value::Text(value) = a.value {
                out.items.push(pair(a.key, value));
            }
        }
        out.offsets
            .push(u32::try_from(out.items.len()).unwrap_or(u32::MAX));
    }
    out
}

/// Offsets and pairs, before they are put in a contract's own record.
pub(crate) struct RaggedPairs<P> {
    pub(crate) offsets: Vec<u32>,
    pub(crate) items: Vec<P>,
}

impl From<RaggedPairs<wit::Pair>> for wit::RaggedPairs {
    fn from(r: RaggedPairs<wit::Pair>) -> Self {
        wit::RaggedPairs {
            offsets: r.offsets,
            items: r.items,
        }
    }
}

fn ip_v0_2(ip: new::IpAddress) -> wit::IpAddress {
    match ip {
        new::IpAddress::Ipv4(a) => wit::IpAddress::Ipv4(a),
        new::IpAddress::Ipv6(a) => wit::IpAddress::Ipv6(a),
    }
}

/// The verdicts of a batch of `n` customers, appended to `out`, or how the plugin
/// broke the contract (and nothing appended). 0.2.0 does not say how long a verdict
/// holds: each holds for its as-of time only.
pub(crate) fn verdicts(
    v: wit::Verdicts,
    as_of: cohort_model::Timestamp,
    n: usize,
    out: &mut Verdicts,
) -> Result<(), String> {
    super::accept(&v.matches, undecided(v.undecided), None, as_of, n, out)
}
