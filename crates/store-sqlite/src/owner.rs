//! Which process owns a running run, and whether it is still alive.
//!
//! A run is `interrupted` only when the process that started it is gone. Each store
//! opened on a file holds an exclusive lock on a file of its own in `<db>-owners/`,
//! named by a token that its runs carry; the operating system lets go of the lock when
//! the process ends, however it ends. Another process that opens the store tries the
//! lock of each running run's owner: if it can take it, the owner is gone.

use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};

/// This store's claim to the runs it starts.
pub(crate) struct Owner {
    pub(crate) token: String,
    path: PathBuf,
    /// Held for the store's life; the lock goes with the file descriptor.
    _lock: File,
}

impl Owner {
    /// Take a token of our own for the store at `db`.
    pub(crate) fn claim(db: &Path) -> std::io::Result<Owner> {
        let dir = dir(db);
        std::fs::create_dir_all(&dir)?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        // The process id and the time tell apart every store opened on one machine;
        // a counter, the stores one process opens in the same nanosecond.
        static OPENED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = OPENED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let token = format!("{}-{nanos:x}-{n}", std::process::id());
        let path = dir.join(&token);
        let lock = File::create(&path)?;
        lock.lock()?;
        Ok(Owner {
            token,
            path,
            _lock: lock,
        })
    }

    /// Whether the store that took `token` for `db` is still open somewhere. `None`
    /// (a run from before owners were kept) counts as gone.
    pub(crate) fn alive(db: &Path, token: Option<&str>) -> bool {
        let Some(token) = token else { return false };
        // A token is a file name we made; anything else was not written by us.
        if token.contains(['/', '\\']) || token.starts_with('.') {
            return false;
        }
        let path = dir(db).join(token);
        let Ok(file) = File::open(&path) else {
            return false;
        };
        match file.try_lock() {
            Ok(()) => {
                // Its owner died without cleaning up: tidy after it.
                let _ = std::fs::remove_file(&path);
                false
            }
            Err(TryLockError::WouldBlock) => true,
            // A file system without locks: the old rule, a run whose process cannot be
            // asked is taken to be gone.
            Err(TryLockError::Error(_)) => false,
        }
    }
}

impl Drop for Owner {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn dir(db: &Path) -> PathBuf {
    let mut name = db.file_name().unwrap_or_default().to_os_string();
    name.push("-owners");
    db.with_file_name(name)
}
