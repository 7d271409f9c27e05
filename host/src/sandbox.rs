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

/// `message` from a plugin, with paths under its view of the data directory shown as
/// the operator's: the operator never sees `/data`, only the directory they granted.
/// Only a path that starts there is rewritten (`/data` alone, or `/data/...`).
pub(crate) fn as_granted(message: &str, data_dir: Option<&Path>) -> String {
    let Some(dir) = data_dir else {
        return message.to_string();
    };
    let dir = dir.display().to_string();
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find(DATA_DIR_GUEST_PATH) {
        let after = &rest[at + DATA_DIR_GUEST_PATH.len()..];
        let starts = at == 0 || !rest[..at].ends_with(|c: char| c.is_alphanumeric() || c == '/');
        let ends =
            after.is_empty() || !after.starts_with(|c: char| c.is_alphanumeric() || c == '_');
        out.push_str(&rest[..at]);
        out.push_str(if starts && ends {
            &dir
        } else {
            DATA_DIR_GUEST_PATH
        });
        rest = after;
    }
    out.push_str(rest);
    out
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sandbox_s_data_path_reads_as_the_operator_s_directory() {
        let dir = Path::new("/srv/geoip");
        assert_eq!(
            as_granted("cannot read `/data/GeoLite2-Country.mmdb`: gone", Some(dir)),
            "cannot read `/srv/geoip/GeoLite2-Country.mmdb`: gone"
        );
        assert_eq!(
            as_granted("`/data` is empty", Some(dir)),
            "`/srv/geoip` is empty"
        );
        assert_eq!(
            as_granted("/database and /srv/data/x and /datasets", Some(dir)),
            "/database and /srv/data/x and /datasets",
            "only a path that starts at the mount point"
        );
        assert_eq!(
            as_granted("`/data/x`", None),
            "`/data/x`",
            "nothing granted"
        );
    }
}
