//! The versions of the `cohort:plugin` contract this host runs, and the conversions
//! between their generated types and the model.
//!
//! Each supported version has its own `bindgen!` module. A new version gets a new
//! module beside the old ones; released modules never change, so a plugin built
//! against an older supported version keeps loading.
//!
//! Customers are kept in the newest version's column types ([`Batch`]); a call to a
//! plugin of the newest version moves the columns it reads into the call and back,
//! a call to an older one gets a converted copy.

use std::net::IpAddr;
use std::ops::Range;

use cohort_model::{
    Capability, ConfigError, Customer, Field, FieldSet, PayerKind, PluginInfo, SubscriptionStatus,
    Symbol, Timestamp, Verdicts, VerificationStatus,
};
use wasmtime::Store;
use wasmtime::component::{InstancePre, ResourceAny};

use crate::error::LoadError;
use crate::sandbox::State;

/// Contract versions this host can run, newest first.
pub const SUPPORTED_CONTRACTS: &[&str] = &["0.2.0", "0.1.0"];

const EXPORT_PREFIX: &str = "cohort:plugin/condition@";

pub(crate) mod v0_1 {
    wasmtime::component::bindgen!({
        path: "../wit/0.1.0",
        world: "plugin",
        // `host.intern` stops a call that interns past the limits.
        imports: { default: trappable },
    });
}

pub(crate) mod v0_2 {
    wasmtime::component::bindgen!({
        path: "../wit/0.2.0",
        world: "plugin",
        // `host.intern` stops a call that interns past the limits.
        imports: { default: trappable },
    });
}

use v0_2::cohort::plugin::types as wit;

/// A contract version a loaded plugin was built against.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Version {
    V0_1,
    V0_2,
}

impl Version {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Version::V0_1 => "0.1.0",
            Version::V0_2 => "0.2.0",
        }
    }
}

/// Which contract version the component in `bytes` was built against, from the name
/// of its `cohort:plugin/condition@X.Y.Z` export. Read from the bytes before anything
/// is compiled: a component the host cannot run costs a parse, not a compile (tens of
/// seconds for a large one).
pub(crate) fn detect(bytes: &[u8]) -> Result<Version, LoadError> {
    use wasmparser::{Parser, Payload};
    let invalid = |e: wasmparser::BinaryReaderError| LoadError::Invalid(e.to_string());
    let mut exports: Vec<String> = Vec::new();
    // Nested modules and components have exports of their own; only the outermost
    // component's are the plugin's.
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.map_err(invalid)? {
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentExportSection(section) if depth == 0 => {
                for export in section {
                    exports.push(export.map_err(invalid)?.name.name.to_string());
                }
            }
            _ => {}
        }
    }
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
        (Some(Ok(0)), Some(Ok(2)), Some(Ok(_)), None) => Ok(Version::V0_2),
        _ => Err(LoadError::UnsupportedContract {
            found: found.to_string(),
            supported: SUPPORTED_CONTRACTS.join(", "),
        }),
    }
}

/// Add the host's side of every supported version to `linker`.
pub(crate) fn link(linker: &mut wasmtime::component::Linker<State>) -> wasmtime::Result<()> {
    use wasmtime::component::HasSelf;
    v0_1::Plugin::add_to_linker::<State, HasSelf<State>>(linker, |s| s)?;
    v0_2::Plugin::add_to_linker::<State, HasSelf<State>>(linker, |s| s)
}

/// A plugin compiled and linked, ready to instantiate, in the version it was built
/// against.
pub(crate) enum Pre {
    V0_1(v0_1::PluginPre<State>),
    V0_2(v0_2::PluginPre<State>),
}

/// A running instance's exports.
pub(crate) enum Instance {
    V0_1(v0_1::Plugin),
    V0_2(v0_2::Plugin),
}

/// What a plugin answered for a batch, short of a trap.
pub(crate) enum Answer {
    /// The verdicts were appended.
    Verdicts,
    /// The plugin failed the whole batch, with its message.
    Failed(String),
    /// The answer breaks the contract, as said.
    Broken(String),
}

impl Pre {
    pub(crate) fn new(version: Version, pre: InstancePre<State>) -> Result<Pre, LoadError> {
        let contract = |e: wasmtime::Error| LoadError::Contract {
            version: version.as_str(),
            message: format!("{e:#}"),
        };
        Ok(match version {
            Version::V0_1 => Pre::V0_1(v0_1::PluginPre::new(pre).map_err(contract)?),
            Version::V0_2 => Pre::V0_2(v0_2::PluginPre::new(pre).map_err(contract)?),
        })
    }

    pub(crate) fn version(&self) -> Version {
        match self {
            Pre::V0_1(_) => Version::V0_1,
            Pre::V0_2(_) => Version::V0_2,
        }
    }

    pub(crate) fn instantiate(&self, store: &mut Store<State>) -> wasmtime::Result<Instance> {
        Ok(match self {
            Pre::V0_1(pre) => Instance::V0_1(pre.instantiate(store)?),
            Pre::V0_2(pre) => Instance::V0_2(pre.instantiate(store)?),
        })
    }
}

impl Instance {
    /// The plugin's description, or what is wrong with it.
    pub(crate) fn describe(
        &self,
        store: &mut Store<State>,
    ) -> wasmtime::Result<Result<PluginInfo, LoadError>> {
        Ok(match self {
            Instance::V0_1(b) => glue_v0_1::info(b.cohort_plugin_condition().call_describe(store)?),
            Instance::V0_2(b) => glue_v0_2::info(b.cohort_plugin_condition().call_describe(store)?),
        })
    }

    /// A prepared evaluator, or every problem with `config`.
    pub(crate) fn prepare(
        &self,
        store: &mut Store<State>,
        config: &str,
    ) -> wasmtime::Result<Result<ResourceAny, Vec<ConfigError>>> {
        Ok(match self {
            Instance::V0_1(b) => b
                .cohort_plugin_condition()
                .call_prepare(store, config)?
                .map_err(glue_v0_1::config_errors),
            Instance::V0_2(b) => b
                .cohort_plugin_condition()
                .call_prepare(store, config)?
                .map_err(glue_v0_2::config_errors),
        })
    }

    /// Evaluate the customers of `batch` (filled for `reads`), appending their verdicts
    /// to `out`. `batch` is as it was when this returns.
    pub(crate) fn evaluate(
        &self,
        store: &mut Store<State>,
        evaluator: ResourceAny,
        as_of: Timestamp,
        batch: &mut Batch,
        reads: FieldSet,
        out: &mut Verdicts,
    ) -> wasmtime::Result<Answer> {
        let n = batch.count as usize;
        let answer = match self {
            Instance::V0_1(b) => b
                .cohort_plugin_condition()
                .evaluator()
                .call_evaluate(store, evaluator, as_of, &batch.to_v0_1())?
                .map(|v| glue_v0_1::verdicts(v, n, out)),
            Instance::V0_2(b) => {
                let sent = batch.lend(reads);
                let answer = b
                    .cohort_plugin_condition()
                    .evaluator()
                    .call_evaluate(store, evaluator, as_of, &sent);
                batch.take_back(sent);
                answer?.map(|v| glue_v0_2::verdicts(v, n, out))
            }
        };
        Ok(match answer {
            Ok(Ok(())) => Answer::Verdicts,
            Ok(Err(broken)) => Answer::Broken(broken),
            Err(message) => Answer::Failed(message),
        })
    }
}

/// A list per customer, flattened: customer `i` owns `items[offsets[i] .. offsets[i + 1]]`.
/// The contract's `ragged-*` records, by item type.
#[derive(Clone, Debug)]
pub(crate) struct Ragged<T> {
    offsets: Vec<u32>,
    items: Vec<T>,
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
    count: u32,
    country: Vec<u32>,
    registration_ip: Vec<Option<wit::IpAddress>>,
    registration_params: Ragged<wit::Pair>,
    payers: Ragged<wit::Payer>,
    provider: Vec<u32>,
    auth_methods: Ragged<u32>,
    verification_status: Vec<wit::VerificationStatus>,
    verification_methods: Ragged<u32>,
    subscriptions: Ragged<wit::Subscription>,
    tags: Ragged<u32>,
    attributes: Ragged<wit::Pair>,
    /// The list the columns are lent in, kept empty between calls so that a call
    /// allocates nothing for it (a registration makes a hundred single-customer calls).
    lent: Vec<wit::Column>,
}

/// Move a ragged column into the contract's record of it, leaving it empty.
macro_rules! lend_ragged {
    ($record:ident, $from:expr) => {
        wit::$record {
            offsets: std::mem::take(&mut $from.offsets),
            items: std::mem::take(&mut $from.items),
        }
    };
}

/// Put a ragged column back from the contract's record of it.
macro_rules! take_ragged {
    ($to:expr, $record:expr) => {{
        let r = $record;
        $to.offsets = r.offsets;
        $to.items = r.items;
    }};
}

/// A ragged column of 0.2.0 as 0.1.0's record of it; `$item` converts an item.
macro_rules! ragged_v0_1 {
    ($record:ident, $from:expr, $item:expr) => {
        v0_1::cohort::plugin::types::$record {
            offsets: $from.offsets.clone(),
            items: $from.items.iter().map($item).collect(),
        }
    };
}

impl Batch {
    /// The columns `reads` names, moved out into a 0.2.0 batch, in the order of the
    /// contract's `fields`; [`take_back`](Self::take_back) returns them.
    fn lend(&mut self, reads: FieldSet) -> wit::Customers {
        use wit::Column as C;
        let mut columns = std::mem::take(&mut self.lent);
        for field in reads.iter() {
            columns.push(match field {
                Field::Country => C::Country(std::mem::take(&mut self.country)),
                Field::RegistrationIp => {
                    C::RegistrationIp(std::mem::take(&mut self.registration_ip))
                }
                Field::RegistrationParams => {
                    C::RegistrationParams(lend_ragged!(RaggedPairs, self.registration_params))
                }
                Field::Payers => C::Payers(lend_ragged!(RaggedPayers, self.payers)),
                Field::Provider => C::Provider(std::mem::take(&mut self.provider)),
                Field::AuthMethods => {
                    C::AuthMethods(lend_ragged!(RaggedSymbols, self.auth_methods))
                }
                Field::VerificationStatus => {
                    C::VerificationStatus(std::mem::take(&mut self.verification_status))
                }
                Field::VerificationMethods => {
                    C::VerificationMethods(lend_ragged!(RaggedSymbols, self.verification_methods))
                }
                Field::Subscriptions => {
                    C::Subscriptions(lend_ragged!(RaggedSubscriptions, self.subscriptions))
                }
                Field::Tags => C::Tags(lend_ragged!(RaggedSymbols, self.tags)),
                Field::Attributes => C::Attributes(lend_ragged!(RaggedPairs, self.attributes)),
            });
        }
        wit::Customers {
            count: self.count,
            columns,
        }
    }

    /// Take back the columns [`lend`](Self::lend) moved out, with their capacity.
    fn take_back(&mut self, mut sent: wit::Customers) {
        use wit::Column as C;
        for column in sent.columns.drain(..) {
            match column {
                C::Country(c) => self.country = c,
                C::RegistrationIp(c) => self.registration_ip = c,
                C::RegistrationParams(c) => take_ragged!(self.registration_params, c),
                C::Payers(c) => take_ragged!(self.payers, c),
                C::Provider(c) => self.provider = c,
                C::AuthMethods(c) => take_ragged!(self.auth_methods, c),
                C::VerificationStatus(c) => self.verification_status = c,
                C::VerificationMethods(c) => take_ragged!(self.verification_methods, c),
                C::Subscriptions(c) => take_ragged!(self.subscriptions, c),
                C::Tags(c) => take_ragged!(self.tags, c),
                C::Attributes(c) => take_ragged!(self.attributes, c),
            }
        }
        self.lent = sent.columns;
    }

    /// A copy in 0.1.0's form, where every column is a field and unread ones are
    /// empty. Only plugins built against 0.1.0 pay for it.
    fn to_v0_1(&self) -> v0_1::cohort::plugin::types::Customers {
        use v0_1::cohort::plugin::types as old;
        let pair = |p: &wit::Pair| old::Pair {
            key: p.key,
            value: p.value,
        };
        old::Customers {
            count: self.count,
            country: self.country.clone(),
            registration_ip: self
                .registration_ip
                .iter()
                .map(|ip| {
                    ip.map(|ip| match ip {
                        wit::IpAddress::Ipv4(a) => old::IpAddress::Ipv4(a),
                        wit::IpAddress::Ipv6(a) => old::IpAddress::Ipv6(a),
                    })
                })
                .collect(),
            registration_params: ragged_v0_1!(RaggedPairs, self.registration_params, pair),
            payers: ragged_v0_1!(RaggedPayers, self.payers, |p| old::Payer {
                kind: match p.kind {
                    wit::PayerKind::LegalEntity => old::PayerKind::LegalEntity,
                    wit::PayerKind::Individual => old::PayerKind::Individual,
                    wit::PayerKind::SoleProprietor => old::PayerKind::SoleProprietor,
                },
                active: p.active,
            }),
            provider: self.provider.clone(),
            auth_methods: ragged_v0_1!(RaggedSymbols, self.auth_methods, |s| *s),
            verification_status: self
                .verification_status
                .iter()
                .map(|s| match s {
                    wit::VerificationStatus::Unverified => old::VerificationStatus::Unverified,
                    wit::VerificationStatus::Passed => old::VerificationStatus::Passed,
                    wit::VerificationStatus::Failed => old::VerificationStatus::Failed,
                })
                .collect(),
            verification_methods: ragged_v0_1!(RaggedSymbols, self.verification_methods, |s| *s),
            subscriptions: ragged_v0_1!(RaggedSubscriptions, self.subscriptions, |s| {
                old::Subscription {
                    product: s.product,
                    status: match s.status {
                        wit::SubscriptionStatus::Active => old::SubscriptionStatus::Active,
                        wit::SubscriptionStatus::Suspended => old::SubscriptionStatus::Suspended,
                        wit::SubscriptionStatus::Cancelled => old::SubscriptionStatus::Cancelled,
                        wit::SubscriptionStatus::Pending => old::SubscriptionStatus::Pending,
                    },
                    start: s.start,
                    end: s.end,
                }
            }),
            tags: ragged_v0_1!(RaggedSymbols, self.tags, |s| *s),
            attributes: ragged_v0_1!(RaggedPairs, self.attributes, pair),
        }
    }
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

    /// Give back the room the columns grew into: a page is written once and then read
    /// by every run.
    pub fn shrink_to_fit(&mut self) {
        let b = &mut self.all;
        b.country.shrink_to_fit();
        b.registration_ip.shrink_to_fit();
        b.provider.shrink_to_fit();
        b.verification_status.shrink_to_fit();
        b.registration_params.offsets.shrink_to_fit();
        b.registration_params.items.shrink_to_fit();
        b.attributes.offsets.shrink_to_fit();
        b.attributes.items.shrink_to_fit();
        b.auth_methods.offsets.shrink_to_fit();
        b.auth_methods.items.shrink_to_fit();
        b.verification_methods.offsets.shrink_to_fit();
        b.verification_methods.items.shrink_to_fit();
        b.tags.offsets.shrink_to_fit();
        b.tags.items.shrink_to_fit();
        b.payers.offsets.shrink_to_fit();
        b.payers.items.shrink_to_fit();
        b.subscriptions.offsets.shrink_to_fit();
        b.subscriptions.items.shrink_to_fit();
    }

    /// Add `customers` after the last row.
    pub fn push(&mut self, customers: &[Customer]) {
        append(&mut self.all, customers, every_field());
    }

    /// Add rows `rows` of `other` after the last row.
    pub fn push_rows(&mut self, other: &Columns, rows: Range<usize>) {
        copy_rows(&mut self.all, &other.all, rows, every_field());
    }

    /// A copy with the rows named in `rows` (ascending positions) replaced, or added
    /// when a position is at or past the end (which must then follow on from it).
    pub fn with_rows<'c>(&self, rows: impl IntoIterator<Item = (usize, &'c Customer)>) -> Columns {
        let mut out = Columns::default();
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
        out.shrink_to_fit();
        out
    }
}

fn every_field() -> FieldSet {
    Field::ALL.into_iter().collect()
}

fn clear(batch: &mut Batch) {
    batch.count = 0;
    batch.country.clear();
    batch.registration_ip.clear();
    batch.provider.clear();
    batch.verification_status.clear();
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
        |c| c.attributes.iter().map(pair),
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

fn ip(ip: IpAddr) -> wit::IpAddress {
    match ip {
        IpAddr::V4(v4) => wit::IpAddress::Ipv4(u32::from(v4)),
        IpAddr::V6(v6) => {
            let n = u128::from(v6);
            wit::IpAddress::Ipv6(((n >> 64) as u64, n as u64))
        }
    }
}

/// What every version needs besides the batch: the host functions, and the plugin's
/// description, configuration errors and verdicts in the model's terms. The generated
/// types of each version have the same names, so the code is the same.
macro_rules! glue {
    ($module:ident, $version:ident) => {
        pub(crate) mod $module {
            use super::$version::cohort::plugin::types as wit;
            use super::*;

            impl super::$version::cohort::plugin::types::Host for State {}

            impl super::$version::cohort::plugin::host::Host for State {
                fn intern(&mut self, text: String) -> wasmtime::Result<u32> {
                    self.symbols.intern(&text).map_err(wasmtime::Error::msg)
                }

                fn symbol_text(&mut self, symbol: u32) -> wasmtime::Result<Option<String>> {
                    Ok(self.symbols.text(symbol).map(|s| s.to_string()))
                }
            }

            pub(crate) fn info(info: wit::PluginInfo) -> Result<PluginInfo, LoadError> {
                if !cohort_model::is_slug(&info.id) {
                    return Err(LoadError::Description(format!(
                        "id `{}` must be 1-64 lower-case letters, digits and `-`, \
                         not starting with `-`",
                        info.id
                    )));
                }
                // Groups pick a plugin by a version requirement (`^0.1`), which only a
                // semantic version can meet.
                if let Err(e) = semver::Version::parse(&info.version) {
                    return Err(LoadError::Description(format!(
                        "plugin `{}` gives version `{}`, which is not a semantic version \
                         (MAJOR.MINOR.PATCH, such as `1.4.0`): {e}",
                        info.id, info.version
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

            /// Append the verdicts of a batch of `n` customers to `out`, or say how the
            /// plugin broke the contract (and append nothing).
            pub(crate) fn verdicts(
                v: wit::Verdicts,
                n: usize,
                out: &mut Verdicts,
            ) -> Result<(), String> {
                if v.matches.len() != n {
                    return Err(format!(
                        "returned {} verdicts for {} customers",
                        v.matches.len(),
                        n
                    ));
                }
                let mut undecided: Vec<(u32, String)> = v
                    .undecided
                    .into_iter()
                    .map(|u| (u.index, u.message))
                    .collect();
                undecided.sort_unstable_by_key(|(i, _)| *i);
                if let Some((i, _)) = undecided.last()
                    && *i as usize >= n
                {
                    return Err(format!("called customer {i} undecided in a batch of {n}"));
                }
                if let Some(w) = undecided.windows(2).find(|w| w[0].0 == w[1].0) {
                    return Err(format!("called customer {} undecided twice", w[0].0));
                }
                // The byte of an undecided customer is ignored; every other must be 0 or
                // 1, or a plugin's garbage would count as a match.
                let is_undecided = |i: usize| {
                    undecided
                        .binary_search_by_key(&i, |(u, _)| *u as usize)
                        .is_ok()
                };
                if let Some((i, b)) = v
                    .matches
                    .iter()
                    .enumerate()
                    .find(|&(i, &b)| b > 1 && !is_undecided(i))
                {
                    return Err(format!(
                        "gave customer {i} the verdict byte {b}, which is neither 0 (no match) \
                         nor 1 (match)"
                    ));
                }
                out.extend_batch(&v.matches, undecided);
                Ok(())
            }
        }
    };
}

glue!(glue_v0_1, v0_1);
glue!(glue_v0_2, v0_2);

#[cfg(test)]
mod tests {
    use super::glue_v0_2::verdicts;
    use super::*;
    use cohort_model::{CustomerRecord, Interner, Verdict};

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

    fn filled(customers: &[Customer], reads: FieldSet) -> Batch {
        let mut batch = Batch::default();
        fill(&mut batch, customers, reads);
        batch
    }

    #[test]
    fn unread_columns_are_left_empty() {
        let interner = Interner::new();
        let c = full_customer(&interner);
        let b = filled(&[c.clone(), c], FieldSet::empty().with(Field::Country));
        assert_eq!(b.count, 2);
        let de = interner.lookup("DE").map(|s| s.as_u32()).expect("interned");
        assert_eq!(b.country, vec![de, de]);
        assert!(b.registration_ip.is_empty());
        assert!(b.registration_params.offsets.is_empty() && b.registration_params.items.is_empty());
        assert!(b.payers.offsets.is_empty());
        assert!(b.provider.is_empty());
        assert!(b.auth_methods.offsets.is_empty());
        assert!(b.verification_status.is_empty());
        assert!(b.verification_methods.offsets.is_empty());
        assert!(b.subscriptions.offsets.is_empty());
        assert!(b.tags.offsets.is_empty());
        assert!(b.attributes.offsets.is_empty());
    }

    /// Customers with lists of different lengths, empty ones among them.
    fn assorted(interner: &Interner) -> Vec<Customer> {
        let parse = |json: &str| {
            serde_json::from_str::<CustomerRecord>(json)
                .expect("parses")
                .intern(interner)
                .expect("valid")
        };
        vec![
            full_customer(interner),
            parse(r#"{"id":"2","tags":["a","b","c"],"country":"FR"}"#),
            parse(r#"{"id":"3"}"#),
            parse(
                r#"{"id":"4","payers":[{"kind":"legal_entity"},{"kind":"individual","active":false}],
                    "subscriptions":[{"product":"p1","start":"2026-01-01T00:00:00Z"},
                                     {"product":"p2","status":"suspended","start":"2026-02-01T00:00:00Z",
                                      "end":"2026-03-01T00:00:00Z"}],
                    "registration_ip":"192.0.2.7"}"#,
            ),
            full_customer(interner),
        ]
    }

    fn shown(batch: &Batch) -> String {
        format!("{batch:?}")
    }

    #[test]
    fn a_batch_copied_from_columns_is_the_batch_filled_from_records() {
        let interner = Interner::new();
        let customers = assorted(&interner);
        let page = Columns::new(&customers);
        assert_eq!(page.len(), customers.len());
        let reads: Vec<FieldSet> = vec![
            Field::ALL.into_iter().collect(),
            FieldSet::empty().with(Field::Tags).with(Field::Country),
            FieldSet::empty().with(Field::Subscriptions),
        ];
        for reads in reads {
            for start in 0..customers.len() {
                for end in start..=customers.len() {
                    let mut copied = Batch::default();
                    fill_from(&mut copied, &page, start..end, reads);
                    let filled = filled(&customers[start..end], reads);
                    assert_eq!(shown(&copied), shown(&filled), "rows {start}..{end}");
                }
            }
        }
    }

    #[test]
    fn rows_replaced_and_added_to_columns_read_as_new_columns() {
        let interner = Interner::new();
        let customers = assorted(&interner);
        let page = Columns::new(&customers[..3]);
        let changed = page.with_rows([(1, &customers[3]), (3, &customers[4]), (4, &customers[1])]);
        let expected = [
            customers[0].clone(),
            customers[3].clone(),
            customers[2].clone(),
            customers[4].clone(),
            customers[1].clone(),
        ];
        let all: FieldSet = Field::ALL.into_iter().collect();
        let mut copied = Batch::default();
        fill_from(&mut copied, &changed, 0..changed.len(), all);
        assert_eq!(shown(&copied), shown(&filled(&expected, all)));
        assert_eq!(page.len(), 3, "the original is left as it was");
    }

    #[test]
    fn ragged_columns_give_each_customer_its_slice() {
        let interner = Interner::new();
        let parse = |json: &str| {
            serde_json::from_str::<CustomerRecord>(json)
                .expect("parses")
                .intern(&interner)
                .expect("valid")
        };
        let customers = [
            parse(r#"{"id":"1","tags":["a","b"]}"#),
            parse(r#"{"id":"2"}"#),
            parse(r#"{"id":"3","tags":["c"]}"#),
        ];
        let b = filled(&customers, FieldSet::empty().with(Field::Tags));
        assert_eq!(b.tags.offsets, vec![0, 2, 2, 3]);
        let sym = |t: &str| interner.lookup(t).map(|s| s.as_u32()).expect("interned");
        assert_eq!(b.tags.items, vec![sym("a"), sym("b"), sym("c")]);
    }

    #[test]
    fn read_columns_are_all_carried() {
        let interner = Interner::new();
        let c = full_customer(&interner);
        let all: FieldSet = Field::ALL.into_iter().collect();
        let b = filled(&[c], all);
        assert!(matches!(
            b.registration_ip[..],
            [Some(wit::IpAddress::Ipv6((0x2001_0db8_0000_0000, 1)))]
        ));
        assert_eq!(b.registration_params.offsets, vec![0, 1]);
        assert_eq!(b.payers.offsets, vec![0, 1]);
        assert_eq!(
            b.provider,
            vec![
                interner
                    .lookup("main")
                    .map(|s| s.as_u32())
                    .expect("interned")
            ]
        );
        assert_eq!(b.auth_methods.offsets, vec![0, 1]);
        assert!(matches!(
            b.verification_status[..],
            [wit::VerificationStatus::Passed]
        ));
        assert_eq!(b.verification_methods.offsets, vec![0, 1]);
        assert_eq!(b.subscriptions.items[0].start, 1_767_225_600);
        assert_eq!(b.tags.offsets, vec![0, 1]);
        assert_eq!(b.attributes.offsets, vec![0, 1]);
    }

    #[test]
    fn a_call_is_lent_the_read_columns_in_field_order_and_gives_them_back() {
        let interner = Interner::new();
        let customers = assorted(&interner);
        let reads = FieldSet::empty()
            .with(Field::Tags)
            .with(Field::Country)
            .with(Field::Subscriptions);
        let mut batch = filled(&customers, reads);
        let before = shown(&batch);
        let capacity = batch.tags.items.capacity();
        let sent = batch.lend(reads);
        assert_eq!(sent.count, 5);
        assert!(
            matches!(
                &sent.columns[..],
                [
                    wit::Column::Country(c),
                    wit::Column::Subscriptions(s),
                    wit::Column::Tags(t),
                ] if c.len() == 5 && s.offsets.len() == 6 && t.items.len() == 5
            ),
            "{:?}",
            sent.columns
        );
        assert!(batch.tags.items.is_empty(), "moved, not copied");
        batch.take_back(sent);
        assert_eq!(shown(&batch), before);
        assert_eq!(
            batch.tags.items.capacity(),
            capacity,
            "room kept for the next call"
        );
        assert!(batch.lent.is_empty() && batch.lent.capacity() >= 3);
        let list = batch.lent.as_ptr();
        let again = batch.lend(reads);
        assert_eq!(
            again.columns.as_ptr(),
            list,
            "the list is reused, not allocated"
        );
        batch.take_back(again);
        assert_eq!(shown(&batch), before);
    }

    #[test]
    fn verdicts_are_placed_by_index_and_undecided_wins() {
        let mut out = Verdicts::default();
        out.push(cohort_model::VerdictRef::NoMatch);
        let v = wit::Verdicts {
            matches: vec![1, 0, 1],
            undecided: vec![wit::Undecided {
                index: 2,
                message: "db unreadable".into(),
            }],
        };
        verdicts(v, 3, &mut out).expect("well-formed");
        // An undecided customer's byte is ignored, whatever it is.
        let ignored = wit::Verdicts {
            matches: vec![9],
            undecided: vec![wit::Undecided {
                index: 0,
                message: "no data".into(),
            }],
        };
        verdicts(ignored, 1, &mut out).expect("an undecided byte is ignored");
        assert_eq!(
            out.to_vec(),
            vec![
                Verdict::NoMatch,
                Verdict::Match,
                Verdict::NoMatch,
                Verdict::Error("db unreadable".into()),
                Verdict::Error("no data".into()),
            ]
        );
    }

    #[test]
    fn malformed_verdicts_break_the_contract() {
        let mut out = Verdicts::default();
        let short = wit::Verdicts {
            matches: vec![1],
            undecided: Vec::new(),
        };
        assert_eq!(
            verdicts(short, 2, &mut out).expect_err("too few"),
            "returned 1 verdicts for 2 customers"
        );
        let outside = wit::Verdicts {
            matches: vec![1, 1],
            undecided: vec![wit::Undecided {
                index: 5,
                message: String::new(),
            }],
        };
        assert!(verdicts(outside, 2, &mut out).is_err());
        let garbage = wit::Verdicts {
            matches: vec![1, 7, 0],
            undecided: Vec::new(),
        };
        assert_eq!(
            verdicts(garbage, 3, &mut out).expect_err("a byte of 7"),
            "gave customer 1 the verdict byte 7, which is neither 0 (no match) nor 1 (match)"
        );
        let twice = wit::Verdicts {
            matches: vec![1, 1],
            undecided: vec![
                wit::Undecided {
                    index: 1,
                    message: "a".into(),
                },
                wit::Undecided {
                    index: 1,
                    message: "b".into(),
                },
            ],
        };
        assert_eq!(
            verdicts(twice, 2, &mut out).expect_err("twice"),
            "called customer 1 undecided twice"
        );
        assert!(
            out.is_empty(),
            "nothing is appended from a malformed answer"
        );
    }

    #[test]
    fn a_plugin_version_must_be_semantic() {
        let info = |version: &str| {
            super::glue_v0_2::info(wit::PluginInfo {
                id: "p".into(),
                version: version.into(),
                description: String::new(),
                config_schema: "{}".into(),
                reads: wit::Fields::empty(),
                capabilities: Vec::new(),
            })
        };
        assert!(info("1.4.0").is_ok());
        assert!(info("0.1.0-beta.2").is_ok());
        for bad in ["not-a-version", "1.4", ""] {
            let err = info(bad).expect_err("refused");
            assert!(
                err.to_string().contains(&format!(
                    "plugin `p` gives version `{bad}`, which is not a semantic version"
                )),
                "{err}"
            );
        }
    }

    #[test]
    fn ipv4_is_big_endian() {
        let addr: IpAddr = "81.2.69.142".parse().expect("ip");
        assert!(matches!(ip(addr), wit::IpAddress::Ipv4(0x5102_458e)));
    }
}
