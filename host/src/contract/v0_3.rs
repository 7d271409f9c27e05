//! Contract 0.3.0, frozen: columns as in 0.2.0, typed attributes and the registration
//! time; verdicts with their validity; explanations.

wasmtime::component::bindgen!({
    path: "../wit/0.3.0",
    world: "plugin",
    // `host.intern` stops a call that interns past the limits.
    imports: { default: trappable },
    // A refresh of the customer cache compares a customer's new row with the old, field
    // by field, to tell rescans which fields changed (`Columns::replace_rows`).
    additional_derives: [PartialEq],
});

glue!(wit::Fields::REGISTERED => Field::Registered);

use crate::columns::Batch;

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

impl Batch {
    /// The columns `reads` names, moved out into a 0.3.0 batch, in the order of the
    /// contract's `fields`; [`take_back`](Self::take_back) returns them.
    pub(crate) fn lend(&mut self, reads: FieldSet) -> wit::Customers {
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
                Field::Attributes => C::Attributes(lend_ragged!(RaggedAttributes, self.attributes)),
                Field::Registered => C::Registered(std::mem::take(&mut self.registered)),
            });
        }
        wit::Customers {
            count: self.count,
            columns,
        }
    }

    /// `call` with the columns `reads` names lent to it, taken back afterwards whatever
    /// it returns.
    pub(crate) fn lent<T>(
        &mut self,
        reads: FieldSet,
        call: impl FnOnce(&wit::Customers) -> T,
    ) -> T {
        let sent = self.lend(reads);
        let answer = call(&sent);
        self.take_back(sent);
        answer
    }

    /// Take back the columns [`lend`](Self::lend) moved out, with their capacity.
    pub(crate) fn take_back(&mut self, mut sent: wit::Customers) {
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
                C::Registered(c) => self.registered = c,
            }
        }
        self.lent = sent.columns;
    }
}

/// The verdicts of a batch of `n` customers called as of `as_of`, appended to `out`, or
/// how the plugin broke the contract (and nothing appended).
pub(crate) fn verdicts(
    v: wit::Verdicts,
    as_of: cohort_model::Timestamp,
    n: usize,
    out: &mut Verdicts,
) -> Result<(), String> {
    super::accept(
        &v.matches,
        undecided(v.undecided),
        Some(&v.until),
        as_of,
        n,
        out,
    )
}
