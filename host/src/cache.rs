//! The compile cache on disk. One file per plugin and engine, named by the sha256 of
//! the plugin's wasm and the engine's compatibility hash, so that another wasmtime or
//! configuration never reads a file it cannot use. Only a plugin that loaded (passed
//! the contract checks and described itself) is written. Bounded in size: past the
//! bound the least recently written files go.

use std::hash::{Hash, Hasher};
use std::path::Path;
use std::time::{Duration, SystemTime};

use wasmtime::Engine;
use wasmtime::component::Component;

const EXTENSION: &str = "cwasm";

/// A half-written file older than this belongs to a process that died while writing.
const ABANDONED: Duration = Duration::from_secs(600);

/// What pruning the cache did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    pub removed: usize,
    pub freed_bytes: u64,
    pub kept: usize,
    pub kept_bytes: u64,
}

/// The file name of the plugin with `digest` compiled by `engine`.
pub(crate) fn file_name(digest: &[u8; 32], engine: &Engine) -> String {
    format!("{}-{}.{EXTENSION}", hex::encode(digest), engine_tag(engine))
}

fn engine_tag(engine: &Engine) -> String {
    let mut h = std::hash::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    format!("{:016x}", h.finish())
}

/// Write `component` to `path` whole or not at all: another process may be reading
/// the same name, and may be writing it too.
pub(crate) fn write(path: &Path, component: &Component) -> std::io::Result<()> {
    let bytes = component
        .serialize()
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// Keep the cache in `dir` within `max_bytes`, removing the least recently written
/// files first.
pub(crate) fn prune(dir: &Path, max_bytes: u64) -> std::io::Result<Pruned> {
    prune_where(dir, max_bytes, |_| true)
}

/// [`prune`], and remove every file `engine` cannot use and every abandoned
/// half-written one.
pub(crate) fn prune_for(dir: &Path, max_bytes: u64, engine: &Engine) -> std::io::Result<Pruned> {
    let suffix = format!("-{}.{EXTENSION}", engine_tag(engine));
    prune_where(dir, max_bytes, |name| name.ends_with(&suffix))
}

fn prune_where(
    dir: &Path,
    max_bytes: u64,
    usable: impl Fn(&str) -> bool,
) -> std::io::Result<Pruned> {
    let mut pruned = Pruned::default();
    let mut kept: Vec<(SystemTime, u64, std::path::PathBuf)> = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(pruned),
        Err(e) => return Err(e),
    };
    let now = SystemTime::now();
    for entry in entries {
        let entry = entry?;
        let meta = entry.metadata()?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !meta.is_file() {
            continue;
        }
        let written = meta.modified().unwrap_or(now);
        let abandoned =
            name.contains(".tmp") && now.duration_since(written).unwrap_or_default() > ABANDONED;
        let ours = name.ends_with(&format!(".{EXTENSION}"));
        if abandoned || (ours && !usable(&name)) {
            remove(&entry.path(), meta.len(), &mut pruned);
        } else if ours {
            kept.push((written, meta.len(), entry.path()));
        }
    }
    // Newest first: the files kept are the newest that fit.
    kept.sort_by_key(|k| std::cmp::Reverse(k.0));
    for (_, len, path) in kept {
        if pruned.kept_bytes + len <= max_bytes {
            pruned.kept += 1;
            pruned.kept_bytes += len;
        } else {
            remove(&path, len, &mut pruned);
        }
    }
    Ok(pruned)
}

fn remove(path: &Path, len: u64, pruned: &mut Pruned) {
    // Another process may have removed it first; either way it is gone.
    if std::fs::remove_file(path).is_ok() {
        pruned.removed += 1;
        pruned.freed_bytes += len;
    }
}
