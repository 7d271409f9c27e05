//! What a plugin says about itself, and what it answers.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A customer fact a plugin may read; mirrors the contract's `fields` flags.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Field {
    Country,
    RegistrationIp,
    RegistrationParams,
    Payers,
    Provider,
    AuthMethods,
    VerificationStatus,
    VerificationMethods,
    Subscriptions,
    Tags,
    Attributes,
    /// When the platform registered the customer; contract 0.3.0 on.
    Registered,
}

impl Field {
    pub const ALL: [Field; 12] = [
        Field::Country,
        Field::RegistrationIp,
        Field::RegistrationParams,
        Field::Payers,
        Field::Provider,
        Field::AuthMethods,
        Field::VerificationStatus,
        Field::VerificationMethods,
        Field::Subscriptions,
        Field::Tags,
        Field::Attributes,
        Field::Registered,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Field::Country => "country",
            Field::RegistrationIp => "registration-ip",
            Field::RegistrationParams => "registration-params",
            Field::Payers => "payers",
            Field::Provider => "provider",
            Field::AuthMethods => "auth-methods",
            Field::VerificationStatus => "verification-status",
            Field::VerificationMethods => "verification-methods",
            Field::Subscriptions => "subscriptions",
            Field::Tags => "tags",
            Field::Attributes => "attributes",
            Field::Registered => "registered",
        }
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

/// A set of [`Field`]s: the projection of a customer that a plugin receives.
#[derive(Copy, Clone, Default, PartialEq, Eq, Hash)]
pub struct FieldSet(u16);

impl FieldSet {
    pub fn empty() -> Self {
        FieldSet(0)
    }

    pub fn with(self, field: Field) -> Self {
        FieldSet(self.0 | field.bit())
    }

    pub fn contains(self, field: Field) -> bool {
        self.0 & field.bit() != 0
    }

    /// Every field.
    pub fn all() -> Self {
        Field::ALL.into_iter().collect()
    }

    pub fn union(self, other: FieldSet) -> Self {
        FieldSet(self.0 | other.0)
    }

    /// Whether the two share a field.
    pub fn meets(self, other: FieldSet) -> bool {
        self.0 & other.0 != 0
    }

    pub fn iter(self) -> impl Iterator<Item = Field> {
        Field::ALL.into_iter().filter(move |f| self.contains(*f))
    }
}

impl FromIterator<Field> for FieldSet {
    fn from_iter<I: IntoIterator<Item = Field>>(iter: I) -> Self {
        iter.into_iter().fold(FieldSet::empty(), FieldSet::with)
    }
}

impl fmt::Debug for FieldSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter().map(Field::name)).finish()
    }
}

impl Serialize for FieldSet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for FieldSet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Vec::<Field>::deserialize(d)?.into_iter().collect())
    }
}

/// A capability beyond pure computation that a plugin asks for.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Capability {
    /// Read-only access to one directory, seen by the plugin as `/data`.
    DataDir,
}

/// A plugin's description of itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PluginInfo {
    pub id: String,
    pub version: String,
    pub description: String,
    /// A JSON Schema of the configuration document.
    pub config_schema: String,
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Field>))]
    pub reads: FieldSet,
    pub capabilities: Vec<Capability>,
}

/// A problem with a configuration document, pointing at its field.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConfigError {
    /// JSON Pointer to the offending field; empty for the whole document.
    pub path: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "`{}`: {}", self.path, self.message)
        }
    }
}

/// A plugin's answer for one customer.
///
/// `Error` is "no decision": whoever acts on verdicts must leave the customer's
/// membership as it is. It is never a "no".
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "verdict", content = "message")]
pub enum Verdict {
    Match,
    NoMatch,
    Error(String),
}

/// A borrowed [`Verdict`], as read out of [`Verdicts`] without allocating.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum VerdictRef<'a> {
    Match,
    NoMatch,
    Error(&'a str),
}

impl VerdictRef<'_> {
    pub fn to_owned(self) -> Verdict {
        match self {
            VerdictRef::Match => Verdict::Match,
            VerdictRef::NoMatch => Verdict::NoMatch,
            VerdictRef::Error(message) => Verdict::Error(message.to_string()),
        }
    }
}

const NO: u8 = 0;
const YES: u8 = 1;
const UNDECIDED: u8 = 2;

/// The time a verdict that never runs out holds until: the greatest timestamp.
pub const FOREVER: crate::Timestamp = crate::Timestamp::MAX;

/// The verdicts of many customers, compactly: a byte per customer and the messages of
/// the rare undecided ones. Scans over millions of customers keep this, not a
/// `Vec<Verdict>` of 24 bytes a customer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verdicts {
    codes: Vec<u8>,
    /// Sorted by index.
    errors: Vec<(u32, String)>,
    /// Until when each verdict holds (exclusive), or empty while every verdict so far
    /// holds forever: most plugins do not read the time, and their verdicts then cost
    /// nothing here.
    until: Vec<crate::Timestamp>,
}

impl Verdicts {
    pub fn with_capacity(n: usize) -> Self {
        Verdicts {
            codes: Vec::with_capacity(n),
            errors: Vec::new(),
            until: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.codes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.codes.is_empty()
    }

    /// Add a verdict that holds forever (or, for an error, says nothing of time).
    pub fn push(&mut self, verdict: VerdictRef<'_>) {
        if !self.until.is_empty() {
            self.until.push(FOREVER);
        }
        match verdict {
            VerdictRef::Match => self.codes.push(YES),
            VerdictRef::NoMatch => self.codes.push(NO),
            VerdictRef::Error(message) => self.push_error(message.to_string()),
        }
    }

    pub fn push_error(&mut self, message: String) {
        if !self.until.is_empty() {
            self.until.push(FOREVER);
        }
        self.errors.push((self.index(self.codes.len()), message));
        self.codes.push(UNDECIDED);
    }

    /// Append a batch in the wire form of the plugin contract: a byte per customer
    /// (1 a match, 0 not) and the undecided ones by their index in the batch, whose
    /// bytes are ignored. The caller has checked the bytes, and that the indices are
    /// in range, sorted and distinct. `until` is empty when every verdict holds
    /// forever, or has one time per customer.
    pub fn extend_batch(
        &mut self,
        matches: &[u8],
        undecided: Vec<(u32, String)>,
        until: &[crate::Timestamp],
    ) {
        let start = self.codes.len();
        match (self.until.is_empty(), until.is_empty()) {
            (_, false) => {
                self.until.resize(start, FOREVER);
                self.until.extend_from_slice(until);
            }
            (false, true) => self.until.resize(start + matches.len(), FOREVER),
            (true, true) => {}
        }
        self.codes
            .extend(matches.iter().map(|&m| if m == NO { NO } else { YES }));
        for (i, message) in undecided {
            let at = start + i as usize;
            self.codes[at] = UNDECIDED;
            self.errors.push((self.index(at), message));
        }
    }

    fn index(&self, i: usize) -> u32 {
        // Verdicts index customers of one evaluation, bounded far below u32::MAX by
        // memory long before this could saturate.
        u32::try_from(i).unwrap_or(u32::MAX)
    }

    /// The verdict of customer `i`, if there is one.
    pub fn get(&self, i: usize) -> Option<VerdictRef<'_>> {
        Some(match *self.codes.get(i)? {
            NO => VerdictRef::NoMatch,
            YES => VerdictRef::Match,
            _ => {
                let found = self
                    .errors
                    .binary_search_by_key(&self.index(i), |(j, _)| *j)
                    .ok()?;
                VerdictRef::Error(&self.errors[found].1)
            }
        })
    }

    /// Whether every verdict holds forever (no plugin said otherwise).
    pub fn hold_forever(&self) -> bool {
        self.until.is_empty()
    }

    /// Until when the verdict of customer `i` holds, if its facts do not change:
    /// [`FOREVER`] for one that does not depend on the time.
    pub fn until(&self, i: usize) -> crate::Timestamp {
        self.until.get(i).copied().unwrap_or(FOREVER)
    }

    pub fn iter(&self) -> impl Iterator<Item = VerdictRef<'_>> {
        (0..self.codes.len()).filter_map(|i| self.get(i))
    }

    pub fn matches(&self) -> usize {
        self.codes.iter().filter(|&&c| c == YES).count()
    }

    /// The undecided customers by index, with their messages.
    pub fn errors(&self) -> &[(u32, String)] {
        &self.errors
    }

    pub fn to_vec(&self) -> Vec<Verdict> {
        self.iter().map(VerdictRef::to_owned).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_set_keeps_exactly_what_was_added() {
        let set: FieldSet = [Field::Country, Field::Subscriptions].into_iter().collect();
        assert!(set.contains(Field::Country));
        assert!(set.contains(Field::Subscriptions));
        assert!(!set.contains(Field::Payers));
        assert_eq!(
            serde_json::to_string(&set).expect("serializes"),
            r#"["country","subscriptions"]"#
        );
    }

    #[test]
    fn verdicts_round_trip_and_errors_win() {
        let mut v = Verdicts::default();
        v.push(VerdictRef::Match);
        v.extend_batch(
            &[0, 7, 1],
            vec![(0, "first".into()), (2, "late".into())],
            &[],
        );
        v.push_error("own".into());
        assert_eq!(
            v.to_vec(),
            vec![
                Verdict::Match,
                Verdict::Error("first".into()),
                Verdict::Match,
                Verdict::Error("late".into()),
                Verdict::Error("own".into()),
            ]
        );
        assert_eq!(v.matches(), 2);
        assert_eq!(v.errors().len(), 3);
        assert_eq!(v.get(5), None);
    }

    #[test]
    fn validity_is_kept_only_once_a_verdict_runs_out() {
        let mut v = Verdicts::default();
        v.extend_batch(&[1, 0], Vec::new(), &[]);
        assert!(v.until.is_empty(), "nothing kept while all hold forever");
        v.extend_batch(&[1, 1], Vec::new(), &[50, FOREVER]);
        v.push(VerdictRef::NoMatch);
        v.extend_batch(&[0], Vec::new(), &[]);
        let until: Vec<_> = (0..v.len()).map(|i| v.until(i)).collect();
        assert_eq!(until, [FOREVER, FOREVER, 50, FOREVER, FOREVER, FOREVER]);
        assert_eq!(v.until(99), FOREVER);
    }

    #[test]
    fn config_error_names_its_field() {
        let e = ConfigError {
            path: "/countries/2".into(),
            message: "`XX` is not an ISO 3166-1 alpha-2 code".into(),
        };
        assert_eq!(
            e.to_string(),
            "`/countries/2`: `XX` is not an ISO 3166-1 alpha-2 code"
        );
    }
}

/// What one plugin may spend per call, as a plugin declares it for itself (in the
/// `cohort:budget` section of its component) or as an operator sets it for a plugin.
/// A field left out keeps the value below it: the host's default, then the plugin's
/// declaration, then the operator's word.
///
/// Python needs about eighty times the fuel of Rust for the same condition, and a
/// budget sized for one language either kills the other's plugins or lets a runaway
/// one run long: so the budget belongs to the plugin, not to the host.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PluginBudget {
    /// Fuel (about one unit per wasm instruction) for one call, before the
    /// per-customer share.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fuel_per_call: Option<u64>,
    /// Fuel added to a call's budget for each customer in its batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fuel_per_customer: Option<u64>,
    /// Fuel for describing the plugin or preparing a configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fuel_per_prepare: Option<u64>,
    /// The largest linear memory one instance may grow to, in MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mib: Option<u32>,
    /// The wall-clock deadline of one call, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline_ms: Option<u64>,
}

impl PluginBudget {
    /// Every problem of a budget: a limit of zero lets nothing run, and a memory past
    /// 4 GiB is more than a 32-bit wasm memory can hold.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for (name, value) in [
            ("fuel_per_call", self.fuel_per_call),
            ("fuel_per_customer", self.fuel_per_customer),
            ("fuel_per_prepare", self.fuel_per_prepare),
            ("memory_mib", self.memory_mib.map(u64::from)),
            ("deadline_ms", self.deadline_ms),
        ] {
            if value == Some(0) {
                problems.push(format!("`{name}` must be more than 0"));
            }
        }
        if self.memory_mib.is_some_and(|m| m > 4096) {
            problems.push("`memory_mib` must be at most 4096 (4 GiB)".into());
        }
        problems
    }

    pub fn is_empty(&self) -> bool {
        *self == PluginBudget::default()
    }

    /// The fields this budget gives, and `base`'s for the others.
    pub fn over(self, base: PluginBudget) -> PluginBudget {
        PluginBudget {
            fuel_per_call: self.fuel_per_call.or(base.fuel_per_call),
            fuel_per_customer: self.fuel_per_customer.or(base.fuel_per_customer),
            fuel_per_prepare: self.fuel_per_prepare.or(base.fuel_per_prepare),
            memory_mib: self.memory_mib.or(base.memory_mib),
            deadline_ms: self.deadline_ms.or(base.deadline_ms),
        }
    }
}
