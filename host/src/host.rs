//! The host: loads plugins (checked, compiled or taken from the disk cache, described)
//! onto one runtime, once per digest of their bytes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use cohort_model::Interner;
use sha2::{Digest, Sha256};
use wasmtime::component::Component;

use crate::cache;
use crate::contract::{self, Pre};
use crate::error::LoadError;
use crate::limits::Limits;
use crate::plugin::{Compiled, Plugin};
use crate::runtime::Runtime;

/// How a host is set up.
#[derive(Clone, Debug)]
pub struct HostConfig {
    pub limits: Limits,
    /// Largest wasm call stack, in bytes. Engine-wide, unlike the other limits.
    pub max_stack: usize,
    /// Where compiled plugins are kept between runs; `None` keeps them in memory only.
    pub cache_dir: Option<PathBuf>,
    /// The most the disk cache may hold; past it the least recently written entries
    /// go.
    pub cache_max_bytes: u64,
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            limits: Limits::default(),
            max_stack: 512 << 10,
            cache_dir: None,
            // A Python plugin compiles to about 60 MiB; a Rust one to about 1.
            cache_max_bytes: 2 << 30,
        }
    }
}

struct Shared {
    runtime: Arc<Runtime>,
    cache_dir: Option<PathBuf>,
    /// The key of the disk cache's files; none if it cannot be had (a directory that
    /// cannot be written), and then the cache is not used.
    cache_key: Option<cache::Key>,
    cache_max_bytes: u64,
    /// Loaded plugins by the sha256 of their bytes: loading the same wasm twice
    /// compiles and describes it once.
    loaded: Mutex<HashMap<[u8; 32], Arc<Plugin>>>,
}

/// Loads and runs condition plugins. Cheap to clone; clones share the engine, the
/// compile cache and the symbol table.
#[derive(Clone)]
pub struct Host {
    shared: Arc<Shared>,
}

impl Host {
    /// A host whose plugins intern into `interner`: the same table the customer facts
    /// were interned into.
    pub fn new(config: HostConfig, interner: Arc<Interner>) -> Result<Self, LoadError> {
        let runtime = Runtime::new(config.limits, config.max_stack, interner)?;
        let cache_key = config
            .cache_dir
            .as_deref()
            .and_then(|dir| cache::key(dir).ok());
        Ok(Host {
            shared: Arc::new(Shared {
                runtime: Arc::new(runtime),
                cache_key,
                cache_dir: config.cache_dir,
                cache_max_bytes: config.cache_max_bytes,
                loaded: Mutex::new(HashMap::new()),
            }),
        })
    }

    pub fn interner(&self) -> &Arc<Interner> {
        &self.shared.runtime.interner
    }

    /// Load a plugin from a file.
    pub fn load_file(&self, path: impl AsRef<Path>) -> Result<Arc<Plugin>, LoadError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
            path: path.display().to_string(),
            source,
        })?;
        self.load(&bytes)
    }

    /// Load a plugin from its bytes: check that it is a component built against a
    /// supported contract version (from its export names, before compiling), compile
    /// it (or take it from the cache), pre-instantiate it and ask it to describe
    /// itself. Only a plugin that got that far is written to the disk cache.
    pub fn load(&self, bytes: &[u8]) -> Result<Arc<Plugin>, LoadError> {
        let digest: [u8; 32] = Sha256::digest(bytes).into();
        if let Some(plugin) = self.lock_loaded().get(&digest) {
            return Ok(Arc::clone(plugin));
        }
        check_header(bytes)?;
        let header = contract::detect(bytes)?;
        let cached = self.cache_path(&digest);
        let (component, compiled) = self.compile(bytes, cached.as_deref())?;
        let pre = self
            .shared
            .runtime
            .linker
            .instantiate_pre(&component)
            .map_err(|e| LoadError::Imports(format!("{e:#}")))?;
        let pre = Pre::new(header.version, pre)?;
        let plugin = Arc::new(Plugin::describe(
            Arc::clone(&self.shared.runtime),
            pre,
            hex::encode(digest),
            compiled,
            header.budget,
        )?);
        if let (Some(path), Some(key), Compiled::Fresh) =
            (&cached, &self.shared.cache_key, compiled)
        {
            // A cache that cannot be written only costs the next run a compile.
            let _ = cache::write(path, &component, key);
            if let Some(dir) = &self.shared.cache_dir {
                let _ = cache::prune(dir, self.shared.cache_max_bytes);
            }
        }
        self.lock_loaded().insert(digest, Arc::clone(&plugin));
        Ok(plugin)
    }

    fn lock_loaded(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Arc<Plugin>>> {
        // The map is only ever inserted into whole; a panic elsewhere cannot leave it
        // half-written.
        self.shared
            .loaded
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Where the compiled form of the wasm with `digest` is kept, for this engine.
    fn cache_path(&self, digest: &[u8; 32]) -> Option<PathBuf> {
        let dir = self.shared.cache_dir.as_ref()?;
        Some(dir.join(cache::file_name(digest, &self.shared.runtime.engine)))
    }

    fn compile(
        &self,
        bytes: &[u8],
        cached: Option<&Path>,
    ) -> Result<(Component, Compiled), LoadError> {
        let engine = &self.shared.runtime.engine;
        if let (Some(path), Some(key)) = (cached, &self.shared.cache_key)
            && let Some(verified) = cache::read(path, key)
        {
            // SAFETY: the bytes are those `Component::serialize` gave an engine with
            // the same compatibility hash (it is in the file name): the file carries
            // their HMAC under the cache's key, checked just now. wasmtime still checks
            // the header and refuses an incompatible artifact; on any error we
            // recompile.
            #[allow(unsafe_code, reason = "deserializing machine code; see SAFETY")]
            let loaded = unsafe { Component::deserialize(engine, &verified) };
            if let Ok(component) = loaded {
                return Ok((component, Compiled::FromDiskCache));
            }
        }
        let component =
            Component::new(engine, bytes).map_err(|e| LoadError::Invalid(format!("{e:#}")))?;
        Ok((component, Compiled::Fresh))
    }

    /// Remove from the disk cache what this engine cannot use (another wasmtime or
    /// configuration) and, oldest first, what is past the cache's size bound.
    pub fn prune_cache(&self) -> std::io::Result<cache::Pruned> {
        match &self.shared.cache_dir {
            Some(dir) => cache::prune_for(
                dir,
                self.shared.cache_max_bytes,
                &self.shared.runtime.engine,
            ),
            None => Ok(cache::Pruned::default()),
        }
    }
}

/// Tell a non-wasm file and a core module from a component before the parser does, so
/// that the error says what to do.
fn check_header(bytes: &[u8]) -> Result<(), LoadError> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(LoadError::NotWasm);
    }
    // Bytes 4..8 are a version and a layer: 1 0 0 0 is a core module; components use
    // layer 1.
    if bytes[4..8] == [1, 0, 0, 0] {
        return Err(LoadError::CoreModule);
    }
    Ok(())
}
