//! The compile cache on disk. One file per plugin and engine, named by the sha256 of
//! the plugin's wasm and the engine's compatibility hash, so that another wasmtime or
//! configuration never reads a file it cannot use. Only a plugin that loaded (passed
//! the contract checks and described itself) is written. Bounded in size: past the
//! bound the least recently written files go.
//!
//! A file is machine code that runs as it is. wasmtime checks only its header, so a
//! changed byte of code, or a file cut short, would run or crash. Each file carries an
//! HMAC-SHA256 of its bytes under the cache's own key (`key`, made once, readable by
//! its owner only): a file that does not match, written by anyone without the key, is
//! removed and the plugin compiled again.

use std::hash::{Hash, Hasher};
use std::path::Path;
use std::time::{Duration, SystemTime};

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use wasmtime::Engine;
use wasmtime::component::Component;

const EXTENSION: &str = "cwasm";

/// The start of a file in this cache's format: the format, then the MAC of the rest.
const MAGIC: &[u8; 8] = b"cohortc1";
const MAC_LEN: usize = 32;
/// The file holding the cache's key.
const KEY_FILE: &str = "key";

/// The key that signs the cache's files.
pub(crate) type Key = [u8; 32];

/// The cache's key in `dir`, made if there is none. Two processes making it at once
/// agree: each writes its own and links it into place, and the one that finds a key
/// there already takes that one.
pub(crate) fn key(dir: &Path) -> std::io::Result<Key> {
    let path = dir.join(KEY_FILE);
    if let Ok(key) = read_key(&path) {
        return Ok(key);
    }
    std::fs::create_dir_all(dir)?;
    let mut key: Key = [0; 32];
    getrandom::fill(&mut key).map_err(|e| std::io::Error::other(e.to_string()))?;
    let tmp = dir.join(format!("{KEY_FILE}.tmp{}", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    {
        let mut file = options.open(&tmp)?;
        std::io::Write::write_all(&mut file, &key)?;
        file.sync_all()?;
    }
    let linked = std::fs::hard_link(&tmp, &path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(key),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read_key(&path),
        Err(e) => Err(e),
    }
}

fn read_key(path: &Path) -> std::io::Result<Key> {
    std::fs::read(path)?
        .try_into()
        .map_err(|_| std::io::Error::other(format!("{} is not a cache key", path.display())))
}

fn mac(key: &Key, bytes: &[u8]) -> [u8; MAC_LEN] {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key");
    mac.update(bytes);
    mac.finalize().into_bytes().into()
}

/// The compiled bytes kept at `path`, if the file is whole and was written with `key`.
/// A file that is not is removed: it will be written again.
pub(crate) fn read(path: &Path, key: &Key) -> Option<Vec<u8>> {
    let file = std::fs::read(path).ok()?;
    let verified = file.len() > MAGIC.len() + MAC_LEN && file.starts_with(MAGIC) && {
        let (tag, bytes) = file[MAGIC.len()..].split_at(MAC_LEN);
        let mut check = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key");
        check.update(bytes);
        // Compared in constant time.
        check.verify_slice(tag).is_ok()
    };
    if !verified {
        let _ = std::fs::remove_file(path);
        return None;
    }
    Some(file[MAGIC.len() + MAC_LEN..].to_vec())
}

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
pub(crate) fn write(path: &Path, component: &Component, key: &Key) -> std::io::Result<()> {
    let bytes = component
        .serialize()
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = Vec::with_capacity(MAGIC.len() + MAC_LEN + bytes.len());
    file.extend_from_slice(MAGIC);
    file.extend_from_slice(&mac(key, &bytes));
    file.extend_from_slice(&bytes);
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, file)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_made_once_for_its_owner_and_a_damaged_one_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = key(dir.path()).expect("made");
        assert_eq!(key(dir.path()).expect("read"), first, "made once");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(KEY_FILE))
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "its owner's only");
        }
        std::fs::write(dir.path().join(KEY_FILE), b"short").expect("damage");
        assert!(key(dir.path()).is_err());
        // Nothing verifies under another key.
        let other: Key = [7; 32];
        let path = dir.path().join("x.cwasm");
        let mut file = MAGIC.to_vec();
        file.extend_from_slice(&mac(&first, b"code"));
        file.extend_from_slice(b"code");
        std::fs::write(&path, &file).expect("write");
        assert_eq!(read(&path, &first), Some(b"code".to_vec()));
        assert_eq!(read(&path, &other), None);
        assert!(!path.exists(), "a file that does not verify is removed");
    }
}
