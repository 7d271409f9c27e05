use std::time::Duration;

use cohort_model::PluginBudget;

/// Limits on every call into a plugin. The defaults suit a condition written in Rust
/// that looks at a handful of facts per customer. The fuel, memory and deadline below
/// are each plugin's default [`Budget`]: a plugin may declare its own (up to
/// `ceiling`), and an operator may set one per plugin.
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
    /// The most a plugin's own declaration may raise its budget to. A plugin is a
    /// third party's code: what it asks for is granted up to here, and only an
    /// operator's budget for it goes further.
    pub ceiling: Budget,
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
            // Room for a plugin in Python (about 20 times Rust's fuel, an interpreter's
            // memory) with a wide margin, yet a declaration cannot hold a run for
            // minutes or take a large share of the machine's memory.
            ceiling: Budget {
                fuel_per_call: 1_000_000_000,
                fuel_per_customer: 10_000_000,
                fuel_per_prepare: 20_000_000_000,
                memory: 512 << 20,
                deadline: Duration::from_secs(10),
            },
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
    /// The budget of a plugin that declares none.
    pub fn budget(&self) -> Budget {
        Budget {
            fuel_per_call: self.fuel_per_call,
            fuel_per_customer: self.fuel_per_customer,
            fuel_per_prepare: self.fuel_per_prepare,
            memory: self.memory,
            deadline: self.deadline,
        }
    }

    /// The fuel budget of one call over `customers` customers, for a plugin that
    /// declares no budget.
    pub fn fuel_for(&self, customers: usize) -> u64 {
        self.budget().fuel_for(customers)
    }
}

/// What one plugin may spend per call: the per-plugin part of the [`Limits`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    pub fuel_per_call: u64,
    pub fuel_per_customer: u64,
    pub fuel_per_prepare: u64,
    /// In bytes.
    pub memory: usize,
    pub deadline: Duration,
}

impl Budget {
    /// The fuel budget of one call over `customers` customers.
    pub fn fuel_for(&self, customers: usize) -> u64 {
        self.fuel_per_call
            .saturating_add(self.fuel_per_customer.saturating_mul(customers as u64))
    }

    /// This budget with the fields `over` gives replaced.
    pub fn with(self, over: &PluginBudget) -> Budget {
        Budget {
            fuel_per_call: over.fuel_per_call.unwrap_or(self.fuel_per_call),
            fuel_per_customer: over.fuel_per_customer.unwrap_or(self.fuel_per_customer),
            fuel_per_prepare: over.fuel_per_prepare.unwrap_or(self.fuel_per_prepare),
            memory: over.memory_mib.map_or(self.memory, |m| (m as usize) << 20),
            deadline: over
                .deadline_ms
                .map_or(self.deadline, Duration::from_millis),
        }
    }
}

/// A plugin's own declaration with no field above `ceiling`'s. Fields it leaves out
/// stay out: they keep the host's default, whatever the ceiling.
pub(crate) fn within(declared: &PluginBudget, ceiling: &Budget) -> PluginBudget {
    let cap = |value: Option<u64>, ceiling: u64| value.map(|v| v.min(ceiling));
    PluginBudget {
        fuel_per_call: cap(declared.fuel_per_call, ceiling.fuel_per_call),
        fuel_per_customer: cap(declared.fuel_per_customer, ceiling.fuel_per_customer),
        fuel_per_prepare: cap(declared.fuel_per_prepare, ceiling.fuel_per_prepare),
        memory_mib: declared
            .memory_mib
            .map(|m| m.min(u32::try_from(ceiling.memory >> 20).unwrap_or(u32::MAX))),
        deadline_ms: cap(
            declared.deadline_ms,
            u64::try_from(ceiling.deadline.as_millis()).unwrap_or(u64::MAX),
        ),
    }
}
