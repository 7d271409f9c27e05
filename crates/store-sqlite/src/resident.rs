//! The write-ahead log's file, held mapped so that its pages stay in memory.
//!
//! The log is written over from its start each time it starts over, and a frame (a
//! page and its header) fills pages of the file only in part. A page of the file that
//! the system has dropped from its cache is read back from the disk before a frame is
//! written into it; one past the file's end is allocated and zeroed afresh. Either way
//! a commit pays per page it writes. Systems that reclaim cold memory ahead of need
//! take exactly such pages: file pages that no process maps and nothing touched for a
//! while (Linux's DAMON-based reclaim does: after a minute untouched where this was
//! measured), and a rescan finds the pages of its last rescan's log gone. Held mapped,
//! they are not cold memory of nobody's; reclaim under real memory pressure may still
//! take them, as it may any file page. The cost is the log's size in memory,
//! `WAL_BYTES_LIMIT` at most, which the system's cache would hold anyway where nothing
//! reclaims it.
//!
//! The mapping is never read; it only holds the pages. So the file may shrink under
//! it (SQLite cuts it back, or another connection truncates it) without harm: only a
//! read of a page past the file's end would fault.

use std::path::PathBuf;

/// The log's file, mapped up to `limit` bytes, its pages held as far as it is long.
#[cfg_attr(
    not(target_os = "linux"),
    allow(dead_code, reason = "held only where the kernel is Linux")
)]
pub(crate) struct ResidentLog {
    path: PathBuf,
    limit: usize,
    #[cfg(target_os = "linux")]
    mapped: Option<linux::Mapping>,
}

impl ResidentLog {
    /// The log of the database at `db`: SQLite names it after the database.
    pub(crate) fn new(db: &std::path::Path, limit: u64) -> ResidentLog {
        let mut path = db.as_os_str().to_owned();
        path.push("-wal");
        ResidentLog {
            path: path.into(),
            limit: usize::try_from(limit).unwrap_or(usize::MAX),
            #[cfg(target_os = "linux")]
            mapped: None,
        }
    }

    /// Hold the pages of the file as it is now: those it grew by since the last call are
    /// mapped in (read from the disk where the system no longer holds them). Nothing
    /// fails: without the mapping the log works as before, only slower.
    pub(crate) fn keep(&mut self) {
        #[cfg(target_os = "linux")]
        {
            use std::os::unix::fs::MetadataExt;
            let Ok(meta) = std::fs::metadata(&self.path) else {
                self.mapped = None;
                return;
            };
            let file = (meta.dev(), meta.ino());
            if self.mapped.as_ref().is_none_or(|m| m.file != file) {
                self.mapped = linux::Mapping::new(&self.path, file, self.limit);
            }
            if let Some(mapped) = &mut self.mapped {
                let len = usize::try_from(meta.len()).map_or(self.limit, |l| l.min(self.limit));
                mapped.hold(len);
            }
        }
    }

    /// How many bytes of the log are held.
    #[cfg(test)]
    pub(crate) fn held(&self) -> usize {
        #[cfg(target_os = "linux")]
        return self.mapped.as_ref().map_or(0, |m| m.held);
        #[cfg(not(target_os = "linux"))]
        0
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use std::os::fd::AsRawFd;
    use std::path::Path;

    /// A read-only shared mapping of the first `len` bytes of a file, of which the
    /// first `held` are mapped in.
    pub(super) struct Mapping {
        addr: std::ptr::NonNull<libc::c_void>,
        len: usize,
        pub(super) held: usize,
        /// The file's device and inode, to tell a file made anew under the same name.
        pub(super) file: (u64, u64),
    }

    // SAFETY: the mapping is only an address range that the owner unmaps once; it is
    // never read or written through, so no thread can observe it.
    #[allow(unsafe_code, reason = "a raw mapping has no auto traits; see SAFETY")]
    unsafe impl Send for Mapping {}

    impl Mapping {
        /// Map `len` bytes of the file, past its end if it is shorter: the range is
        /// reserved now and mapped in as the file grows into it.
        pub(super) fn new(path: &Path, file: (u64, u64), len: usize) -> Option<Mapping> {
            let opened = std::fs::File::open(path).ok()?;
            // SAFETY: a new mapping at an address the kernel picks, of a file open for
            // reading; PROT_READ and MAP_SHARED never change the file. The descriptor
            // may close after: the mapping keeps the file.
            #[allow(unsafe_code, reason = "mmap is a C call; see SAFETY")]
            let addr = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    libc::PROT_READ,
                    libc::MAP_SHARED,
                    opened.as_raw_fd(),
                    0,
                )
            };
            if addr == libc::MAP_FAILED {
                return None;
            }
            Some(Mapping {
                addr: std::ptr::NonNull::new(addr)?,
                len,
                held: 0,
                file,
            })
        }

        /// Hold the first `len` bytes: map in the pages past those held already. A file
        /// cut back has lost the pages past its end from every mapping.
        pub(super) fn hold(&mut self, len: usize) {
            let len = len.min(self.len);
            if len <= self.held {
                self.held = len & !(page_size() - 1);
                return;
            }
            // SAFETY: the range lies within the mapping (`held` is a whole number of
            // pages, `len` at most the mapping's length). MADV_POPULATE_READ faults the
            // pages in as reads would, and returns an error where a page is past the
            // file's end (the file cut back meanwhile) instead of raising a signal.
            #[allow(unsafe_code, reason = "madvise is a C call; see SAFETY")]
            let populated = unsafe {
                libc::madvise(
                    self.addr.as_ptr().cast::<u8>().add(self.held).cast(),
                    len - self.held,
                    libc::MADV_POPULATE_READ,
                )
            };
            if populated == 0 {
                self.held = len & !(page_size() - 1);
            }
        }
    }

    fn page_size() -> usize {
        // SAFETY: sysconf only reads a system setting.
        #[allow(unsafe_code, reason = "sysconf is a C call; see SAFETY")]
        let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        usize::try_from(size).unwrap_or(4096)
    }

    impl Drop for Mapping {
        fn drop(&mut self) {
            // SAFETY: the range is the one `mmap` returned, unmapped once, here; nothing
            // holds a reference into it.
            #[allow(unsafe_code, reason = "munmap is a C call; see SAFETY")]
            unsafe {
                libc::munmap(self.addr.as_ptr(), self.len);
            }
        }
    }
}

/// The size and resident size, in KiB, of this process's mappings of the file at
/// `path`, from `/proc/self/smaps`.
#[cfg(all(test, target_os = "linux"))]
pub(crate) fn mapped_kib(path: &std::path::Path) -> (u64, u64) {
    let smaps = std::fs::read_to_string("/proc/self/smaps").expect("smaps");
    let name = path.to_str().expect("a UTF-8 path");
    let (mut size, mut rss, mut ours) = (0, 0, false);
    for line in smaps.lines() {
        let mut fields = line.split_whitespace();
        match (fields.next(), fields.next()) {
            (Some("Size:"), Some(kib)) if ours => size += kib.parse::<u64>().expect("kB"),
            (Some("Rss:"), Some(kib)) if ours => rss += kib.parse::<u64>().expect("kB"),
            // A mapping's first line: its range, then five fields and the file's name.
            (Some(range), _) if range.contains('-') && !range.ends_with(':') => {
                ours = line.split_whitespace().nth(5) == Some(name);
            }
            _ => {}
        }
    }
    (size, rss)
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn the_log_is_held_mapped_as_it_grows_shrinks_and_goes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("store.db");
        let wal = dir.path().join("store.db-wal");
        let mut log = ResidentLog::new(&db, 128 << 10);
        let resize = |len: u64| {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&wal)
                .expect("log");
            file.set_len(len).expect("resize");
        };
        log.keep();
        assert_eq!(log.held(), 0, "no log yet");

        resize(64 << 10);
        log.keep();
        assert_eq!(log.held(), 64 << 10);
        assert_eq!(
            mapped_kib(&wal),
            (128, 64),
            "its pages mapped in, the rest reserved"
        );

        resize(256 << 10);
        log.keep();
        assert_eq!(log.held(), 128 << 10, "no more than the limit");
        assert_eq!(mapped_kib(&wal), (128, 128));

        // Cut back (another connection truncating the log): the pages past its end are
        // gone from the mapping, and those it grows by again are mapped in.
        resize(0);
        log.keep();
        assert_eq!((log.held(), mapped_kib(&wal)), (0, (128, 0)));
        resize(8 << 10);
        log.keep();
        assert_eq!((log.held(), mapped_kib(&wal)), (8 << 10, (128, 8)));

        // Made anew under the same name: the old file is let go.
        std::fs::remove_file(&wal).expect("remove");
        resize(4 << 10);
        log.keep();
        assert_eq!(mapped_kib(&wal), (128, 4), "the old file's mapping is gone");
        std::fs::remove_file(&wal).expect("remove");
        log.keep();
        assert_eq!((log.held(), mapped_kib(&wal)), (0, (0, 0)));
    }
}
