use std::time::Duration;

/// Limits on every call into a plugin. The defaults suit a condition that looks at a
/// handful of facts per customer; raise them per host for heavier plugins.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Fuel (roughly, wasm instructions) for one call, before the per-customer share.
    pub fuel_per_call: u64,
    /// Fuel for describing a plugin or preparing a configuration: done once per rule,
    /// and may load and verify a data file.
    pub fuel_per_prepare: u64,
    /// Fuel added to a call's budget for each customer in its batch.
    pub fuel_per_customer: u64,
    /// Wall-clock backstop for one call, for time that fuel does not count (host
    /// calls, memory growth).
    pub deadline: Duration,
    /// Largest linear memory one plugin instance may grow to, in bytes.
    pub memory: usize,
    /// Customers per call. Bigger batches amortise the call; smaller ones bound the
    /// work a single trap throws away.
    pub max_batch: usize,
    /// An instance is replaced by a fresh one after this many calls, so that a plugin
    /// that leaks cannot grow without end.
    pub recycle_after_calls: u64,
    /// Time one prepared condition (one run's, say) may lose to calls that fail; past
    /// it, or past `failed_calls`, its remaining customers get no decision at once.
    /// Without it a plugin that hits the deadline on every batch would cost a
    /// deadline per batch, and more while a trap is pinned on its customer.
    pub failure_time: Duration,
    /// Calls one prepared condition may fail; see `failure_time`.
    pub failed_calls: u32,
    /// Bytes of strings the host does not know yet that one call may intern.
    pub interned_bytes_per_call: usize,
    /// Strings the host does not know yet that one call may intern.
    pub interned_strings_per_call: u32,
    /// Bytes one plugin may add to the host's shared table of strings over the
    /// process's life, by describing and preparing (an evaluation's own strings are
    /// forgotten when its call ends).
    pub interned_bytes_per_plugin: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            fuel_per_call: 10_000_000,
            fuel_per_prepare: 2_000_000_000,
            fuel_per_customer: 100_000,
            deadline: Duration::from_secs(2),
            memory: 64 << 20,
            max_batch: 1024,
            recycle_after_calls: 10_000,
            // Three deadlines: enough to pin a trap on a customer or two, and a
            // plugin that always runs out of time adds a few seconds to a run of
            // any size.
            failure_time: Duration::from_secs(6),
            failed_calls: 256,
            // A configuration of ten thousand products is about 200 KiB.
            interned_bytes_per_call: 1 << 20,
            interned_strings_per_call: 1 << 16,
            interned_bytes_per_plugin: 16 << 20,
        }
    }
}

impl Limits {
    /// The fuel budget of one call over `customers` customers.
    pub fn fuel_for(&self, customers: usize) -> u64 {
        self.fuel_per_call
            .saturating_add(self.fuel_per_customer.saturating_mul(customers as u64))
    }
}
