//! Customers in the newest contract's column form: the batch a call is filled from,
//! and the pages of the engine's customer cache, every field filled, so that a batch is
//! a copy of slices of the columns a plugin reads.

use std::net::IpAddr;
use std::ops::Range;

use cohort_model::{
    Customer, Field, FieldSet, PayerKind, SubscriptionStatus, Symbol, Timestamp, Value,
    VerificationStatus,
};

/// The contract's mark for a customer whose registration time the platform did not
/// give: the least timestamp, so that a column of times crosses as one block.
pub(crate) const UNREGISTERED: Timestamp = Timestamp::MIN;

use crate::contract::v0_3::cohort::plugin::types as wit;

/// A list per customer, flattened: customer `i` owns `items[offsets[i] .. offsets[i + 1]]`.
/// The contract's `ragged-*` records, by item type.
#[derive(Clone, Debug)]
pub(crate) struct Ragged<T> {
    pub(crate) offsets: Vec<u32>,
    pub(crate) items: Vec<T>,
}

impl<T> Default for Ragged<T> {
    fn default() -> Self {
        Ragged {
            offsets: Vec::new(),
            items: Vec::new(),
        }
    }
}

/// Customers column by column in the newest contract's types, a field per column.
/// Filled by [`fill`] and reused from call to call so that its columns keep their
/// capacity; only the columns a plugin reads are filled.
#[derive(Clone, Debug, Default)]
pub(crate) struct Batch {
    pub(crate) count: u32,
    pub(crate) country: Vec<u32>,
    pub(crate) registration_ip: Vec<Option<wit::IpAddress>>,
    pub(crate) registration_params: Ragged<wit::Pair>,
    pub(crate) payers: Ragged<wit::Payer>,
    pub(crate) provider: Vec<u32>,
    pub(crate) auth_methods: Ragged<u32>,
    pub(crate) verification_status: Vec<wit::VerificationStatus>,
    pub(crate) verification_methods: Ragged<u32>,
    pub(crate) subscriptions: Ragged<wit::Subscription>,
    pub(crate) tags: Ragged<u32>,
    pub(crate) attributes: Ragged<wit::Attribute>,
    pub(crate) registered: Vec<Timestamp>,
    /// The list the columns are lent in, kept empty between calls so that a call
    /// allocates nothing for it (a registration makes a hundred single-customer calls).
    pub(crate) lent: Vec<wit::Column>,
}

/// Fill `batch` with the columns of `customers` that the plugin declared it reads;
/// every other column is left empty and costs nothing to copy into the guest.
pub(crate) fn fill(batch: &mut Batch, customers: &[Customer], reads: FieldSet) {
    clear(batch);
    append(batch, customers, reads);
}

/// Fill `batch` with rows `rows` of `page`, as [`fill`] would from their records.
pub(crate) fn fill_from(batch: &mut Batch, page: &Columns, rows: Range<usize>, reads: FieldSet) {
    clear(batch);
    copy_rows(batch, &page.all, rows, reads);
}

/// Customers in the contract's column form, every field filled: a batch is then a copy
/// of a slice of each column the plugin reads, instead of a walk over every customer's
/// own lists on the heap for every condition.
#[derive(Clone, Default)]
pub struct Columns {
    all: Batch,
}

impl std::fmt::Debug for Columns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Columns").field("len", &self.len()).finish()
    }
}

impl Columns {
    pub fn new(customers: &[Customer]) -> Self {
        let mut page = Columns::default();
        page.push(customers);
        page
    }

    pub fn len(&self) -> usize {
        self.all.count as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Give back the room the columns grew into but a sixteenth, or make room of a
    /// sixteenth: a page is read by every run, and a refresh writes the new copy of a
    /// page into the memory of the one it replaced (see
    /// [`with_rows_into`](Self::with_rows_into)), which needs room for rows that grew.
    /// Without it each refresh allocated every page afresh, and the kernel zeroed the
    /// memory first: half of a refresh after 1% of a million customers changed.
    pub fn trim(&mut self) {
        let b = &mut self.all;
        trim(&mut b.country);
        trim(&mut b.registration_ip);
        trim(&mut b.provider);
        trim(&mut b.verification_status);
        trim(&mut b.registered);
        trim(&mut b.registration_params.offsets);
        trim(&mut b.registration_params.items);
        trim(&mut b.attributes.offsets);
        trim(&mut b.attributes.items);
        trim(&mut b.auth_methods.offsets);
        trim(&mut b.auth_methods.items);
        trim(&mut b.verification_methods.offsets);
        trim(&mut b.verification_methods.items);
        trim(&mut b.tags.offsets);
        trim(&mut b.tags.items);
        trim(&mut b.payers.offsets);
        trim(&mut b.payers.items);
        trim(&mut b.subscriptions.offsets);
        trim(&mut b.subscriptions.items);
    }

    /// Add `customers` after the last row.
    pub fn push(&mut self, customers: &[Customer]) {
        append(&mut self.all, customers, FieldSet::all());
    }

    /// Add rows `rows` of `other` after the last row.
    pub fn push_rows(&mut self, other: &Columns, rows: Range<usize>) {
        copy_rows(&mut self.all, &other.all, rows, FieldSet::all());
    }

    /// A copy with the rows named in `rows` (ascending positions) replaced, or added
    /// when a position is at or past the end (which must then follow on from it).
    pub fn with_rows<'c>(&self, rows: impl IntoIterator<Item = (usize, &'c Customer)>) -> Columns {
        let mut out = Columns::default();
        self.with_rows_into(rows, &mut out);
        out.trim();
        out
    }

    /// [`with_rows`](Self::with_rows) into `out`, emptied first and its room reused: a
    /// refresh that changes many pages then writes into memory it has, where a fresh
    /// allocation per page is fresh pages the kernel must zero first. A column of
    /// `out` with less room than this page's is allocated afresh, with a sixteenth
    /// more, before the copy: grown as it filled, it would be copied along the way.
    pub fn with_rows_into<'c>(
        &self,
        rows: impl IntoIterator<Item = (usize, &'c Customer)>,
        out: &mut Columns,
    ) {
        room_for(&mut out.all, &self.all);
        let mut next = 0;
        for (at, customer) in rows {
            let kept = next..at.min(self.len());
            if !kept.is_empty() {
                out.push_rows(self, kept);
            }
            out.push(std::slice::from_ref(customer));
            next = at + 1;
        }
        if next < self.len() {
            out.push_rows(self, next..self.len());
        }
    }

    /// Rows `rows` (ascending positions, each under [`len`](Self::len)) replaced in
    /// place; for each, the fields in which the new row differs from the old. A field's
    /// column is written over, and so is a list's column where every replaced row keeps
    /// its length. A list's column whose rows grow or shrink is written again into
    /// `spare`'s, which then takes its place; the old one becomes the spare's, for the
    /// next page. A refresh after 1% of a million customers changed touches every
    /// page, and copying every column of each, where most keep their lengths, was half
    /// of the refresh.
    pub fn replace_rows<'c>(
        &mut self,
        rows: impl IntoIterator<Item = (usize, &'c Customer)>,
        spare: &mut Columns,
    ) -> Vec<FieldSet> {
        let mut at = Vec::new();
        let mut new = Batch::default();
        for (position, customer) in rows {
            at.push(position);
            append(&mut new, std::slice::from_ref(customer), FieldSet::all());
        }
        let mut changed = vec![FieldSet::empty(); at.len()];
        let ch = &mut changed;
        let (b, n, s) = (&mut self.all, &new, &mut spare.all);
        replace_flat(&mut b.country, &n.country, &at, Field::Country, ch);
        let ip = Field::RegistrationIp;
        replace_flat(&mut b.registration_ip, &n.registration_ip, &at, ip, ch);
        replace_flat(&mut b.provider, &n.provider, &at, Field::Provider, ch);
        let status = Field::VerificationStatus;
        replace_flat(
            &mut b.verification_status,
            &n.verification_status,
            &at,
            status,
            ch,
        );
        replace_flat(&mut b.registered, &n.registered, &at, Field::Registered, ch);
        let mut column = Replacing {
            at: &at,
            changed: ch,
        };
        column.ragged(
            Field::RegistrationParams,
            &mut b.registration_params,
            &n.registration_params,
            &mut s.registration_params,
        );
        column.ragged(
            Field::Attributes,
            &mut b.attributes,
            &n.attributes,
            &mut s.attributes,
        );
        column.ragged(
            Field::AuthMethods,
            &mut b.auth_methods,
            &n.auth_methods,
            &mut s.auth_methods,
        );
        column.ragged(
            Field::VerificationMethods,
            &mut b.verification_methods,
            &n.verification_methods,
            &mut s.verification_methods,
        );
        column.ragged(Field::Tags, &mut b.tags, &n.tags, &mut s.tags);
        column.ragged(Field::Payers, &mut b.payers, &n.payers, &mut s.payers);
        column.ragged(
            Field::Subscriptions,
            &mut b.subscriptions,
            &n.subscriptions,
            &mut s.subscriptions,
        );
        changed
    }
}

/// Row `at[k]` of `column` becomes row `k` of `new`; `changed[k]` gains `field` if
/// they differ.
fn replace_flat<T: Clone + PartialEq>(
    column: &mut [T],
    new: &[T],
    at: &[usize],
    field: Field,
    changed: &mut [FieldSet],
) {
    for (k, &a) in at.iter().enumerate() {
        if column[a] != new[k] {
            column[a] = new[k].clone();
            changed[k] = changed[k].with(field);
        }
    }
}

/// The rows a list's column has replaced, and what changed in each.
struct Replacing<'a> {
    at: &'a [usize],
    changed: &'a mut [FieldSet],
}

impl Replacing<'_> {
    /// Row `at[k]` of `column` becomes row `k` of `new`, and `changed[k]` gains `field`
    /// if they differ: in place if every such row keeps its length, else by writing the
    /// column again into `spare` and swapping the two.
    fn ragged<T: Clone + PartialEq>(
        &mut self,
        field: Field,
        column: &mut Ragged<T>,
        new: &Ragged<T>,
        spare: &mut Ragged<T>,
    ) {
        let span = |r: &Ragged<T>, i: usize| r.offsets[i] as usize..r.offsets[i + 1] as usize;
        let mut same_lengths = true;
        for (k, &a) in self.at.iter().enumerate() {
            let (old, now) = (span(column, a), span(new, k));
            if column.items[old.clone()] != new.items[now.clone()] {
                self.changed[k] = self.changed[k].with(field);
                same_lengths &= old.len() == now.len();
            }
        }
        if same_lengths {
            for (k, &a) in self.at.iter().enumerate() {
                if self.changed[k].contains(field) {
                    let to = span(column, a);
                    column.items[to].clone_from_slice(&new.items[span(new, k)]);
                }
            }
            return;
        }
        let rows = column.offsets.len() - 1;
        let removed: usize = self.at.iter().map(|&a| span(column, a).len()).sum();
        room(&mut spare.offsets, column.offsets.len());
        room(
            &mut spare.items,
            column.items.len() + new.items.len() - removed,
        );
        let mut next = 0;
        for (k, &a) in self.at.iter().enumerate() {
            let (o, i) = (&mut spare.offsets, &mut spare.items);
            ragged_rows(o, i, &column.offsets, &column.items, true, &(next..a));
            ragged_rows(o, i, &new.offsets, &new.items, true, &(k..k + 1));
            next = a + 1;
        }
        let (o, i) = (&mut spare.offsets, &mut spare.items);
        ragged_rows(o, i, &column.offsets, &column.items, true, &(next..rows));
        std::mem::swap(column, spare);
    }
}

fn clear(batch: &mut Batch) {
    batch.count = 0;
    batch.country.clear();
    batch.registration_ip.clear();
    batch.provider.clear();
    batch.verification_status.clear();
    batch.registered.clear();
    clear_ragged(
        &mut batch.registration_params.offsets,
        &mut batch.registration_params.items,
    );
    clear_ragged(&mut batch.attributes.offsets, &mut batch.attributes.items);
    clear_ragged(
        &mut batch.auth_methods.offsets,
        &mut batch.auth_methods.items,
    );
    clear_ragged(
        &mut batch.verification_methods.offsets,
        &mut batch.verification_methods.items,
    );
    clear_ragged(&mut batch.tags.offsets, &mut batch.tags.items);
    clear_ragged(&mut batch.payers.offsets, &mut batch.payers.items);
    clear_ragged(
        &mut batch.subscriptions.offsets,
        &mut batch.subscriptions.items,
    );
}

fn clear_ragged<T>(offsets: &mut Vec<u32>, items: &mut Vec<T>) {
    offsets.clear();
    items.clear();
}

/// Empty `batch`, with room in each column for as many items as `like`'s column holds.
fn room_for(batch: &mut Batch, like: &Batch) {
    batch.count = 0;
    room(&mut batch.country, like.country.len());
    room(&mut batch.registration_ip, like.registration_ip.len());
    room(&mut batch.provider, like.provider.len());
    room(
        &mut batch.verification_status,
        like.verification_status.len(),
    );
    room(&mut batch.registered, like.registered.len());
    let (b, l) = (&mut batch.registration_params, &like.registration_params);
    room(&mut b.offsets, l.offsets.len());
    room(&mut b.items, l.items.len());
    let (b, l) = (&mut batch.attributes, &like.attributes);
    room(&mut b.offsets, l.offsets.len());
    room(&mut b.items, l.items.len());
    let (b, l) = (&mut batch.auth_methods, &like.auth_methods);
    room(&mut b.offsets, l.offsets.len());
    room(&mut b.items, l.items.len());
    let (b, l) = (&mut batch.verification_methods, &like.verification_methods);
    room(&mut b.offsets, l.offsets.len());
    room(&mut b.items, l.items.len());
    let (b, l) = (&mut batch.tags, &like.tags);
    room(&mut b.offsets, l.offsets.len());
    room(&mut b.items, l.items.len());
    let (b, l) = (&mut batch.payers, &like.payers);
    room(&mut b.offsets, l.offsets.len());
    room(&mut b.items, l.items.len());
    let (b, l) = (&mut batch.subscriptions, &like.subscriptions);
    room(&mut b.offsets, l.offsets.len());
    room(&mut b.items, l.items.len());
}

/// Empty `column`, with room for `len` items and a few rows grown: the memory it has
/// if that is enough, fresh memory with a sixteenth more otherwise (grown instead, it
/// would first be copied, and what it held is of no use).
fn room<T>(column: &mut Vec<T>, len: usize) {
    column.clear();
    if column.capacity() < len + len / 32 {
        *column = Vec::with_capacity(len + len / 16);
    }
}

/// Leave `column` room for a thirty-second to a sixteenth more items than it holds
/// (see [`Columns::trim`]).
fn trim<T>(column: &mut Vec<T>) {
    let len = column.len();
    if column.capacity() < len + len / 32 {
        column.reserve_exact(len / 16);
    } else {
        column.shrink_to(len + len / 16);
    }
}

/// Add `customers` after the rows `batch` has, in the columns `reads` names.
fn append(batch: &mut Batch, customers: &[Customer], reads: FieldSet) {
    let has = |f| reads.contains(f);
    batch.count = batch
        .count
        .saturating_add(u32::try_from(customers.len()).unwrap_or(u32::MAX));

    column(&mut batch.country, has(Field::Country), customers, |c| {
        c.country.map_or(Symbol::ABSENT, Symbol::as_u32)
    });
    column(
        &mut batch.registration_ip,
        has(Field::RegistrationIp),
        customers,
        |c| c.registration_ip.map(ip),
    );
    column(&mut batch.provider, has(Field::Provider), customers, |c| {
        c.provider.map_or(Symbol::ABSENT, Symbol::as_u32)
    });
    column(
        &mut batch.verification_status,
        has(Field::VerificationStatus),
        customers,
        |c| match c.verification_status {
            VerificationStatus::Unverified => wit::VerificationStatus::Unverified,
            VerificationStatus::Passed => wit::VerificationStatus::Passed,
            VerificationStatus::Failed => wit::VerificationStatus::Failed,
        },
    );

    let r = &mut batch.registration_params;
    ragged(
        &mut r.offsets,
        &mut r.items,
        has(Field::RegistrationParams),
        customers,
        |c| c.registration_params.iter().map(pair),
    );
    let r = &mut batch.attributes;
    ragged(
        &mut r.offsets,
        &mut r.items,
        has(Field::Attributes),
        customers,
        |c| c.attributes.iter().map(attribute),
    );
    column(
        &mut batch.registered,
        has(Field::Registered),
        customers,
        |c| c.registered.unwrap_or(UNREGISTERED),
    );
    let r = &mut batch.auth_methods;
    ragged(
        &mut r.offsets,
        &mut r.items,
        has(Field::AuthMethods),
        customers,
        |c| c.auth_methods.iter().map(|s| s.as_u32()),
    );
    let r = &mut batch.verification_methods;
    ragged(
        &mut r.offsets,
        &mut r.items,
        has(Field::VerificationMethods),
        customers,
        |c| c.verification_methods.iter().map(|s| s.as_u32()),
    );
    let r = &mut batch.tags;
    ragged(
        &mut r.offsets,
        &mut r.items,
        has(Field::Tags),
        customers,
        |c| c.tags.iter().map(|s| s.as_u32()),
    );
    let r = &mut batch.payers;
    ragged(
        &mut r.offsets,
        &mut r.items,
        has(Field::Payers),
        customers,
        |c| {
            c.payers.iter().map(|p| wit::Payer {
                kind: match p.kind {
                    PayerKind::LegalEntity => wit::PayerKind::LegalEntity,
                    PayerKind::Individual => wit::PayerKind::Individual,
                    PayerKind::SoleProprietor => wit::PayerKind::SoleProprietor,
                },
                active: p.active,
            })
        },
    );
    let r = &mut batch.subscriptions;
    ragged(
        &mut r.offsets,
        &mut r.items,
        has(Field::Subscriptions),
        customers,
        |c| {
            c.subscriptions.iter().map(|s| wit::Subscription {
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
        },
    );
}

/// Add rows `rows` of `from` after the rows `to` has, in the columns `reads` names.
fn copy_rows(to: &mut Batch, from: &Batch, rows: Range<usize>, reads: FieldSet) {
    let has = |f| reads.contains(f);
    to.count = to
        .count
        .saturating_add(u32::try_from(rows.len()).unwrap_or(u32::MAX));
    flat_rows(&mut to.country, &from.country, has(Field::Country), &rows);
    flat_rows(
        &mut to.provider,
        &from.provider,
        has(Field::Provider),
        &rows,
    );
    let (t, f) = (&mut to.registration_ip, &from.registration_ip);
    flat_rows(t, f, has(Field::RegistrationIp), &rows);
    let (t, f) = (&mut to.verification_status, &from.verification_status);
    flat_rows(t, f, has(Field::VerificationStatus), &rows);
    let (t, f) = (&mut to.registered, &from.registered);
    flat_rows(t, f, has(Field::Registered), &rows);
    let (t, f) = (&mut to.registration_params, &from.registration_params);
    ragged_rows(
        &mut t.offsets,
        &mut t.items,
        &f.offsets,
        &f.items,
        has(Field::RegistrationParams),
        &rows,
    );
    let (t, f) = (&mut to.attributes, &from.attributes);
    ragged_rows(
        &mut t.offsets,
        &mut t.items,
        &f.offsets,
        &f.items,
        has(Field::Attributes),
        &rows,
    );
    let (t, f) = (&mut to.auth_methods, &from.auth_methods);
    ragged_rows(
        &mut t.offsets,
        &mut t.items,
        &f.offsets,
        &f.items,
        has(Field::AuthMethods),
        &rows,
    );
    let (t, f) = (&mut to.verification_methods, &from.verification_methods);
    ragged_rows(
        &mut t.offsets,
        &mut t.items,
        &f.offsets,
        &f.items,
        has(Field::VerificationMethods),
        &rows,
    );
    let (t, f) = (&mut to.tags, &from.tags);
    ragged_rows(
        &mut t.offsets,
        &mut t.items,
        &f.offsets,
        &f.items,
        has(Field::Tags),
        &rows,
    );
    let (t, f) = (&mut to.payers, &from.payers);
    ragged_rows(
        &mut t.offsets,
        &mut t.items,
        &f.offsets,
        &f.items,
        has(Field::Payers),
        &rows,
    );
    let (t, f) = (&mut to.subscriptions, &from.subscriptions);
    ragged_rows(
        &mut t.offsets,
        &mut t.items,
        &f.offsets,
        &f.items,
        has(Field::Subscriptions),
        &rows,
    );
}

fn column<T>(out: &mut Vec<T>, read: bool, customers: &[Customer], f: impl Fn(&Customer) -> T) {
    if read {
        out.extend(customers.iter().map(f));
    }
}

fn ragged<'c, T, I: Iterator<Item = T>>(
    offsets: &mut Vec<u32>,
    items: &mut Vec<T>,
    read: bool,
    customers: &'c [Customer],
    f: impl Fn(&'c Customer) -> I,
) {
    if !read {
        return;
    }
    if offsets.is_empty() {
        offsets.push(0);
    }
    for c in customers {
        items.extend(f(c));
        offsets.push(offset(items.len()));
    }
}

/// Rows `rows` of one column, after what `to` holds.
fn flat_rows<T: Clone>(to: &mut Vec<T>, from: &[T], read: bool, rows: &Range<usize>) {
    if read {
        to.extend_from_slice(&from[rows.clone()]);
    }
}

/// Rows `rows` of one ragged column, after what `offsets` and `items` hold.
fn ragged_rows<T: Clone>(
    offsets: &mut Vec<u32>,
    items: &mut Vec<T>,
    from_offsets: &[u32],
    from_items: &[T],
    read: bool,
    rows: &Range<usize>,
) {
    if !read {
        return;
    }
    if offsets.is_empty() {
        offsets.push(0);
    }
    let ends = &from_offsets[rows.start..=rows.end];
    let (first, last) = (ends[0] as usize, ends[ends.len() - 1] as usize);
    let base = offset(items.len());
    items.extend_from_slice(&from_items[first..last]);
    offsets.extend(ends[1..].iter().map(|&end| base + (end - ends[0])));
}

/// A batch is bounded by `Limits::max_batch` and the guest's memory cap, and a page of
/// the customer cache by the engine's page size: all far below four billion items.
fn offset(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn pair((k, v): &(Symbol, Symbol)) -> wit::Pair {
    wit::Pair {
        key: k.as_u32(),
        value: v.as_u32(),
    }
}

fn attribute((k, v): &(Symbol, Value)) -> wit::Attribute {
    wit::Attribute {
        key: k.as_u32(),
        value: match *v {
            Value::Text(t) => wit::Value::Text(t.as_u32()),
            Value::Integer(n) => wit::Value::Integer(n),
            Value::Decimal(d) => wit::Value::Decimal(wit::Decimal {
                units: d.units(),
                scale: d.scale(),
            }),
            Value::Timestamp(t) => wit::Value::Timestamp(t),
        },
    }
}

fn ip(ip: IpAddr) -> wit::IpAddress {
    match ip {
        IpAddr::V4(v4) => wit::IpAddress::Ipv4(u32::from(v4)),
        IpAddr::V6(v6) => {
            let n = u128::from(v6);
            wit::IpAddress::Ipv6(((n >> 64) as u64, n as u64))
        }
    }
}

#[cfg(test)]
mod tests;
