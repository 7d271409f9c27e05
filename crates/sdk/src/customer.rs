//! A row view over the column batch that crosses the boundary.

use crate::bindings::cohort::plugin::types::{
    Column, Customers as Batch, RaggedAttributes, RaggedPairs, RaggedPayers, RaggedSubscriptions,
    RaggedSymbols,
};
use crate::{
    Attribute, IpAddress, Pair, Payer, Subscription, Symbol, Timestamp, Value, VerificationStatus,
};

/// A list per customer, flattened: customer `i` owns `items[offsets[i] .. offsets[i + 1]]`.
#[derive(Clone, Debug)]
pub struct Ragged<T> {
    pub offsets: Vec<u32>,
    pub items: Vec<T>,
}

impl<T> Default for Ragged<T> {
    fn default() -> Self {
        Ragged {
            offsets: Vec::new(),
            items: Vec::new(),
        }
    }
}

impl<T> Ragged<T> {
    /// Customer `i`'s part; empty for a column that was not sent or offsets that do not
    /// make sense.
    fn of(&self, i: usize) -> &[T] {
        slice(&self.offsets, &self.items, i)
    }
}

/// The contract's ragged records all have this shape; only their names differ.
macro_rules! ragged_from {
    ($($wit:ty => $item:ty),*) => {$(
        impl From<$wit> for Ragged<$item> {
            fn from(r: $wit) -> Self {
                Ragged { offsets: r.offsets, items: r.items }
            }
        }
    )*};
}
ragged_from!(RaggedPairs => Pair, RaggedPayers => Payer, RaggedSubscriptions => Subscription,
             RaggedSymbols => Symbol, RaggedAttributes => Attribute);

/// A batch with a field per column: the columns the plugin declared in `reads` are
/// filled (ragged ones with one offset more than there are customers), every other one
/// is empty. The contract sends only the columns read; they are moved here, not copied.
#[derive(Clone, Debug, Default)]
pub struct Customers {
    /// how many customers the batch holds
    pub count: u32,
    pub country: Vec<Symbol>,
    pub registration_ip: Vec<Option<IpAddress>>,
    pub registration_params: Ragged<Pair>,
    pub payers: Ragged<Payer>,
    pub provider: Vec<Symbol>,
    pub auth_methods: Ragged<Symbol>,
    pub verification_status: Vec<VerificationStatus>,
    pub verification_methods: Ragged<Symbol>,
    pub subscriptions: Ragged<Subscription>,
    pub tags: Ragged<Symbol>,
    pub attributes: Ragged<Attribute>,
    /// The least timestamp for a customer whose platform did not say.
    pub registered: Vec<Timestamp>,
}

impl From<Batch> for Customers {
    fn from(batch: Batch) -> Self {
        let mut out = Customers {
            count: batch.count,
            ..Customers::default()
        };
        // A column sent twice is a host bug; the later one wins rather than trapping.
        for column in batch.columns {
            match column {
                Column::Country(c) => out.country = c,
                Column::RegistrationIp(c) => out.registration_ip = c,
                Column::RegistrationParams(c) => out.registration_params = c.into(),
                Column::Payers(c) => out.payers = c.into(),
                Column::Provider(c) => out.provider = c,
                Column::AuthMethods(c) => out.auth_methods = c.into(),
                Column::VerificationStatus(c) => out.verification_status = c,
                Column::VerificationMethods(c) => out.verification_methods = c.into(),
                Column::Subscriptions(c) => out.subscriptions = c.into(),
                Column::Tags(c) => out.tags = c.into(),
                Column::Attributes(c) => out.attributes = c.into(),
                Column::Registered(c) => out.registered = c,
            }
        }
        out
    }
}

/// One customer of a batch. Cheap to copy; every accessor is a slice or a value
/// read out of the batch's columns. A field the plugin did not declare in `reads`
/// reads as absent (`None`, empty, `Unverified`).
#[derive(Copy, Clone)]
pub struct Customer<'a> {
    batch: &'a Customers,
    index: usize,
}

impl<'a> Customer<'a> {
    /// Every customer of `batch`, in order.
    pub fn all(batch: &'a Customers) -> impl Iterator<Item = Customer<'a>> + 'a {
        (0..batch.count as usize).map(move |index| Customer { batch, index })
    }

    /// Position in the batch.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The country declared at sign-up: upper-case ISO 3166-1 alpha-2, interned.
    pub fn country(&self) -> Option<Symbol> {
        present(self.batch.country.get(self.index))
    }

    pub fn registration_ip(&self) -> Option<IpAddress> {
        self.batch
            .registration_ip
            .get(self.index)
            .copied()
            .flatten()
    }

    pub fn registration_params(&self) -> &'a [Pair] {
        self.batch.registration_params.of(self.index)
    }

    pub fn payers(&self) -> &'a [Payer] {
        self.batch.payers.of(self.index)
    }

    pub fn provider(&self) -> Option<Symbol> {
        present(self.batch.provider.get(self.index))
    }

    pub fn auth_methods(&self) -> &'a [Symbol] {
        self.batch.auth_methods.of(self.index)
    }

    pub fn verification_status(&self) -> VerificationStatus {
        self.batch
            .verification_status
            .get(self.index)
            .copied()
            .unwrap_or(VerificationStatus::Unverified)
    }

    pub fn verification_methods(&self) -> &'a [Symbol] {
        self.batch.verification_methods.of(self.index)
    }

    pub fn subscriptions(&self) -> &'a [Subscription] {
        self.batch.subscriptions.of(self.index)
    }

    pub fn tags(&self) -> &'a [Symbol] {
        self.batch.tags.of(self.index)
    }

    /// The custom attributes, typed, sorted by the platform's names for them.
    pub fn attributes(&self) -> &'a [Attribute] {
        self.batch.attributes.of(self.index)
    }

    /// The value of the attribute named by `key`, if the customer has it.
    pub fn attribute(&self, key: Symbol) -> Option<Value> {
        self.attributes()
            .iter()
            .find(|a| a.key == key)
            .map(|a| a.value)
    }

    /// When the customer registered with the platform, if the platform said.
    pub fn registered(&self) -> Option<Timestamp> {
        self.batch
            .registered
            .get(self.index)
            .copied()
            .filter(|&t| t != Timestamp::MIN)
    }
}

/// The contract marks "no value" in a column of optional symbols with all bits set.
const ABSENT: Symbol = u32::MAX;

fn present(symbol: Option<&Symbol>) -> Option<Symbol> {
    symbol.copied().filter(|&s| s != ABSENT)
}

/// Customer `i`'s part of a ragged column; empty for a column that was not sent or
/// offsets that do not make sense.
fn slice<'a, T>(offsets: &[u32], items: &'a [T], i: usize) -> &'a [T] {
    match (offsets.get(i), offsets.get(i + 1)) {
        (Some(&start), Some(&end)) => items.get(start as usize..end as usize).unwrap_or(&[]),
        _ => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_symbols_read_as_none() {
        assert_eq!(present(Some(&7)), Some(7));
        assert_eq!(present(Some(&ABSENT)), None);
        assert_eq!(present(None), None, "column not sent");
    }

    #[test]
    fn ragged_slices_and_bad_offsets() {
        let items = [10u32, 11, 12];
        let offsets = [0u32, 2, 2, 3];
        assert_eq!(slice(&offsets, &items, 0), &[10, 11]);
        assert_eq!(slice(&offsets, &items, 1), &[] as &[u32]);
        assert_eq!(slice(&offsets, &items, 2), &[12]);
        assert_eq!(slice(&offsets, &items, 3), &[] as &[u32], "past the end");
        assert_eq!(
            slice(&[0, 9], &items, 0),
            &[] as &[u32],
            "offset beyond items"
        );
        assert_eq!(slice(&[], &items, 0), &[] as &[u32], "column not sent");
    }
}
