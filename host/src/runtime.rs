//! What every plugin of a host runs on: the wasmtime engine, the linker with WASI and
//! the host's functions of every contract version, the symbol table, the limits, and
//! the epoch ticker that enforces deadlines. Plugins hold it; the host holds it and
//! the plugins it loaded.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use cohort_model::Interner;
use wasmtime::component::Linker;
use wasmtime::{Config, Engine, Store};

use crate::contract;
use crate::error::LoadError;
use crate::limits::Limits;
use crate::sandbox::State;
use crate::symbols::Symbols;

/// How often the epoch advances: the granularity of the wall-clock deadline.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(10);

pub(crate) struct Runtime {
    pub(crate) engine: Engine,
    pub(crate) linker: Linker<State>,
    pub(crate) interner: Arc<Interner>,
    pub(crate) limits: Limits,
    /// Dropping this stops the epoch ticker.
    _ticker: mpsc::Sender<()>,
}

impl Runtime {
    /// An engine with fuel, epochs and `max_stack`, its linker, and a ticker thread.
    pub(crate) fn new(
        limits: Limits,
        max_stack: usize,
        interner: Arc<Interner>,
    ) -> Result<Self, LoadError> {
        let mut cfg = Config::new();
        cfg.wasm_component_model(true)
            .consume_fuel(true)
            .epoch_interruption(true)
            .max_wasm_stack(max_stack);
        let engine = Engine::new(&cfg).map_err(|e| LoadError::Engine(e.to_string()))?;

        let mut linker = Linker::<State>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
            .map_err(|e| LoadError::Engine(e.to_string()))?;
        contract::link(&mut linker).map_err(|e| LoadError::Engine(e.to_string()))?;

        let (tx, rx) = mpsc::channel::<()>();
        let ticking = engine.clone();
        std::thread::Builder::new()
            .name("cohort-epoch".into())
            .spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = rx.recv_timeout(EPOCH_TICK) {
                    ticking.increment_epoch();
                }
            })
            .map_err(|e| LoadError::Engine(format!("cannot start the epoch ticker: {e}")))?;
        Ok(Runtime {
            engine,
            linker,
            interner,
            limits,
            _ticker: tx,
        })
    }

    /// A store for one instance: its own symbols (counting into `interned`, the
    /// plugin's share of the shared table), memory cap (`memory` bytes) and sandbox,
    /// with `data_dir` mounted if granted.
    pub(crate) fn new_store(
        &self,
        interned: &Arc<AtomicUsize>,
        memory: usize,
        data_dir: Option<&Path>,
    ) -> wasmtime::Result<Store<State>> {
        let symbols = Symbols::new(
            Arc::clone(&self.interner),
            Arc::clone(interned),
            &self.limits,
        );
        let state = State::new(symbols, memory, data_dir)?;
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        store.epoch_deadline_trap();
        Ok(store)
    }
}
