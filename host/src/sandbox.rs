//! The per-store state of a plugin instance and the WASI context that denies it
//! everything but an optional read-only data directory.

use std::path::Path;
use std::time::Duration;

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{
    Deterministic, FsPerms, HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxView, WasiView,
};

use crate::symbols::Symbols;

/// Where a granted data directory appears inside the plugin.
pub(crate) const DATA_DIR_GUEST_PATH: &str = "/data";

/// How much of an instance's stderr is kept: enough for a few panic messages; an
/// instance is replaced after any trap, so this is per trap in practice.
const STDERR_CAPACITY: usize = 64 << 10;

pub(crate) struct State {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limiter: MemoryLimiter,
    pub(crate) symbols: Symbols,
    stderr: MemoryOutputPipe,
    stderr_read: usize,
}

impl State {
    pub(crate) fn new(
        symbols: Symbols,
        memory_cap: usize,
        data_dir: Option<&Path>,
    ) -> wasmtime::Result<Self> {
        let stderr = MemoryOutputPipe::new(STDERR_CAPACITY);
        let mut builder = WasiCtx::builder();
        // No clock and no randomness: a verdict may depend only on the facts and the
        // as-of time the host passes in. std still asks for random bytes (HashMap
        // seeds) and must get some, so it gets a fixed sequence.
        builder
            .wall_clock(FrozenClock)
            .monotonic_clock(FrozenClock)
            .secure_random(Deterministic::new(vec![0x5a]))
            .insecure_random(Deterministic::new(vec![0xa5]))
            .insecure_random_seed(0)
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .stderr(stderr.clone());
        if let Some(dir) = data_dir {
            builder.preopened_dir(dir, DATA_DIR_GUEST_PATH, FsPerms::ReadOnly)?;
        }
        Ok(State {
            wasi: builder.build(),
            table: ResourceTable::new(),
            limiter: MemoryLimiter {
                cap: memory_cap,
                peak: 0,
                hit_cap: false,
            },
            symbols,
            stderr,
            stderr_read: 0,
        })
    }

    /// What the plugin wrote to stderr since the last call, lossily decoded. The pipe
    /// cannot be cleared, so this remembers how far it has read.
    pub(crate) fn take_stderr(&mut self) -> String {
        let bytes = self.stderr.contents();
        let new = bytes.get(self.stderr_read..).unwrap_or_default();
        self.stderr_read = bytes.len();
        String::from_utf8_lossy(new).trim().to_string()
    }
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Caps linear memory growth and remembers whether the cap was what stopped a plugin,
/// so that the resulting trap can be reported as "memory cap" rather than a bare
/// `unreachable`.
pub(crate) struct MemoryLimiter {
    cap: usize,
    pub(crate) peak: usize,
    pub(crate) hit_cap: bool,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.cap {
            self.hit_cap = true;
            return Ok(false);
        }
        self.peak = self.peak.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Tables hold function references; no honest condition needs a million.
        Ok(desired <= 1 << 20)
    }
}

/// A clock that always reads zero.
struct FrozenClock;

impl HostWallClock for FrozenClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }

    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl HostMonotonicClock for FrozenClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }

    fn now(&self) -> u64 {
        0
    }
}
