//! Copying the write-ahead log back into the database file, off the writers' path.

use std::path::Path;

use cohort_store::StoreError;
use rusqlite::Connection;

use crate::Result;

/// How often the write-ahead log is copied back into the database file.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

/// Frames (pages) past which the write-ahead log is made to start over: 64 MiB.
const WAL_FRAMES_LIMIT: i64 = 16_384;

/// The size the log's file is cut back to when the log starts over: 512 MiB. A file
/// cut back further grows again at the next bulk write (a full scan of a million
/// customers writes 300 MB to the log before it can start over), and each new block of
/// it is allocated by the file system and zeroed around every frame written into it
/// (frames are not aligned to pages): a twentieth of such a scan's time. Kept, the
/// blocks are written over where they are.
pub(crate) const WAL_BYTES_LIMIT: i64 = 512 << 20;

/// How long the checkpointer waits for the write lock before it tries again next time.
const RESTART_WAIT: std::time::Duration = std::time::Duration::from_millis(50);

/// Copy the write-ahead log into the database file from a connection of its own, off
/// the writers' path: with SQLite's automatic checkpoints, whichever commit crosses the
/// threshold pays for copying the whole log (the slowest registration of a hundred, say).
pub(crate) fn checkpointer(path: &Path) -> Result<std::sync::mpsc::Sender<()>> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(RESTART_WAIT)?;
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("sqlite-checkpoint".into())
        .spawn(move || {
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                stopped.recv_timeout(CHECKPOINT_EVERY)
            {
                // A failed checkpoint loses nothing: what it did not copy stays in the
                // log for the next one.
                let _ = checkpoint(&conn, WAL_FRAMES_LIMIT, RESTART_MOST);
            }
        })
        .map_err(|e| StoreError::Open {
            path: path.display().to_string(),
            problem: format!("cannot start the checkpointer: {e}"),
        })?;
    Ok(stop)
}

/// Frames past which a `RESTART` waits for a later round: it holds the write lock while
/// it copies what is left, and a writer gives up after its busy timeout.
const RESTART_MOST: i64 = 2_048;

/// One round of the checkpointer. A `PASSIVE` checkpoint never waits for writers, so it
/// does the copying and the database file's sync while they go on. But the log only
/// starts over from its beginning when a writer finds it wholly copied, and under a
/// steady stream of small writes some commit always lands while the copy runs: the log
/// then grows without end, and every commit appends to new blocks of the file, which the
/// file system must allocate and zero (at 2,000 registrations in a row, 200 MB and a
/// tenth of each registration's time). So once the log is past `frames_limit`, a
/// `RESTART` checkpoint follows: it takes the write lock (giving up after the
/// connection's busy timeout, if a long write holds it), copies the few frames committed
/// since, and leaves the log to be reused from its start. Only a few: during a bulk
/// write, hundreds of megabytes land while the passive copy runs, and copying them under
/// the write lock kept a writer waiting past its own timeout ("database is locked") on
/// a slow disk; such a log starts over once the writes pause.
fn checkpoint(conn: &Connection, frames_limit: i64, restart_most: i64) -> rusqlite::Result<()> {
    let (log, copied) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
        Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
    })?;
    if log > frames_limit && log - copied <= restart_most {
        conn.query_row("PRAGMA wal_checkpoint(RESTART)", [], |_| Ok(()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SqliteStore;
    use cohort_model::CustomerRecord;
    use cohort_store::prelude::*;

    /// A write-ahead log in a directory of its own, for the checkpointer's tests.
    struct Log {
        _dir: tempfile::TempDir,
        path: std::path::PathBuf,
        writer: Connection,
    }

    impl Log {
        fn new() -> Log {
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("wal.db");
            let writer = Connection::open(&path).expect("open");
            writer
                .execute_batch(
                    "PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0;
                     CREATE TABLE t (x BLOB);",
                )
                .expect("setup");
            Log {
                _dir: dir,
                path,
                writer,
            }
        }

        fn connect(&self) -> Connection {
            Connection::open(&self.path).expect("connect")
        }

        /// `n` commits of about a page each.
        fn write(&self, n: usize) {
            for _ in 0..n {
                self.writer
                    .execute("INSERT INTO t (x) VALUES (zeroblob(3000))", [])
                    .expect("write");
            }
        }

        /// A round of the checkpointer (restarting past 16 frames, with at most 8 left),
        /// then a write: the log must have started over, so the write is at its start.
        fn assert_starts_over(&self, checkpointer: &Connection) {
            checkpoint(checkpointer, 16, 8).expect("checkpoint");
            self.write(1);
            let frames: i64 = checkpointer
                .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get(1))
                .expect("log size");
            assert!(
                frames < 16,
                "the log holds {frames} frames after a checkpoint and one write: it did not start over"
            );
        }

        /// A reader that holds the snapshot of now until it is dropped.
        fn reader(&self) -> Connection {
            let reader = self.connect();
            reader
                .execute_batch("BEGIN; SELECT count(*) FROM t;")
                .expect("read");
            reader
        }
    }

    thread_local! {
        /// The reader `log_starts_over_under_a_steady_stream_of_writes` ends from inside
        /// the checkpointer's wait, i.e. only if the checkpointer waits for it.
        static READER: std::cell::RefCell<Option<Connection>> = const { std::cell::RefCell::new(None) };
    }

    /// What keeps a write-ahead log from starting over in a store that is never idle:
    /// a commit landing while a checkpoint copies, which leaves the log not wholly
    /// copied when the next writer looks. A reader on an older snapshot stands in for
    /// that commit here, so that the test does not depend on timing.
    #[test]
    fn log_starts_over_under_a_steady_stream_of_writes() {
        let log = Log::new();
        log.write(40);
        READER.with(|r| *r.borrow_mut() = Some(log.reader()));
        log.write(1);

        let checkpointer = log.connect();
        checkpointer
            .busy_handler(Some(|_| {
                READER.with(|r| r.borrow_mut().take());
                true
            }))
            .expect("busy handler");
        log.assert_starts_over(&checkpointer);
        assert!(READER.with(|r| r.borrow().is_none()));
    }

    /// A log with many frames committed while the passive copy ran is left to a later
    /// round: copying them under the write lock would keep the writer waiting. A reader
    /// on an older snapshot stands in for those commits.
    #[test]
    fn log_does_not_start_over_while_much_of_it_is_left_to_copy() {
        let log = Log::new();
        log.write(40);
        let reader = log.reader();
        log.write(40);
        let checkpointer = log.connect();
        // Only this test's checkpointer has this handler.
        static WAITED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        checkpointer
            .busy_handler(Some(|_| {
                WAITED.store(true, std::sync::atomic::Ordering::Relaxed);
                false
            }))
            .expect("busy handler");
        checkpoint(&checkpointer, 16, 8).expect("checkpoint");
        assert!(
            !WAITED.load(std::sync::atomic::Ordering::Relaxed),
            "a restart was tried with dozens of frames left to copy"
        );
        // Once the reader is done, the next round copies the rest and starts over.
        drop(reader);
        log.assert_starts_over(&checkpointer);
    }

    /// A write that reads first (the next write number, whether a customer exists) must
    /// hold the write lock from its start. A transaction that has read and then finds
    /// the lock held at its first write is refused at once, without the busy wait:
    /// "database is locked" in a load of a million customers, when the store's own
    /// checkpointer held the lock to start the log over. Here another connection starts
    /// the log over as fast as it can.
    #[test]
    fn writes_that_read_first_survive_the_log_starting_over() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("store.db");
        let store = SqliteStore::open(&path).expect("store");
        let stop = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|scope| {
            scope.spawn(|| {
                let checkpointer = Connection::open(&path).expect("connect");
                checkpointer
                    .busy_timeout(std::time::Duration::from_millis(1))
                    .expect("busy timeout");
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    // Busy while the store writes: that is the point.
                    let _ =
                        checkpointer.query_row("PRAGMA wal_checkpoint(RESTART)", [], |_| Ok(()));
                }
            });
            let written = (0..2_000).try_for_each(|i| {
                let record = CustomerRecord {
                    id: format!("c{i}"),
                    ..CustomerRecord::default()
                };
                store.upsert_customers(&[record], i).map(drop)
            });
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            written.expect("every write waits for the checkpoint instead of failing");
        });
        assert_eq!(store.count_customers().expect("count"), 2_000);
    }
}
