//! A row view over the column batch that crosses the boundary.

use crate::{
    Customers, IpAddress, Pair, Payer, Subscription, Symbol, VerificationStatus,
    bindings::cohort::plugin::types::{
        RaggedPairs, RaggedPayers, RaggedSubscriptions, RaggedSymbols,
    },
};

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
        let RaggedPairs { offsets, items } = &self.batch.registration_params;
        slice(offsets, items, self.index)
    }

    pub fn payers(&self) -> &'a [Payer] {
        let RaggedPayers { offsets, items } = &self.batch.payers;
        slice(offsets, items, self.index)
    }

    pub fn provider(&self) -> Option<Symbol> {
        present(self.batch.provider.get(self.index))
    }

    pub fn auth_methods(&self) -> &'a [Symbol] {
        let RaggedSymbols { offsets, items } = &self.batch.auth_methods;
        slice(offsets, items, self.index)
    }

    pub fn verification_status(&self) -> VerificationStatus {
        self.batch
            .verification_status
            .get(self.index)
            .copied()
            .unwrap_or(VerificationStatus::Unverified)
    }

    pub fn verification_methods(&self) -> &'a [Symbol] {
        let RaggedSymbols { offsets, items } = &self.batch.verification_methods;
        slice(offsets, items, self.index)
    }

    pub fn subscriptions(&self) -> &'a [Subscription] {
        let RaggedSubscriptions { offsets, items } = &self.batch.subscriptions;
        slice(offsets, items, self.index)
    }

    pub fn tags(&self) -> &'a [Symbol] {
        let RaggedSymbols { offsets, items } = &self.batch.tags;
        slice(offsets, items, self.index)
    }

    pub fn attributes(&self) -> &'a [Pair] {
        let RaggedPairs { offsets, items } = &self.batch.attributes;
        slice(offsets, items, self.index)
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
