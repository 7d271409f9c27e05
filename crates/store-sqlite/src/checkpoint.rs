//! Copying the write-ahead log back into the database file, off the writers' path.

use std::path::Path;

use cohort_store::StoreError;
use rusqlite::Connection;

use crate::Result;
use crate::resident::ResidentLog;

/// How often the write-ahead log is copied back into the database file.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

/// Frames (pages) past which the write-ahead log is made to start over: 64 MiB.
const WAL_FRAMES_LIMIT: i64 = 16_384;

/// The size the log's file is cut back to when the log starts over. Below it, the file
/// is written over from its start, and the checkpointer holds its pages mapped (see
/// `resident`), so that they stay in memory between commits, however far apart.
///
/// Sized for a rescan, which does not let the log start over while it writes: after 1%
/// of a million customers changed, the log grew past 150 MB over the customers' update,
/// the rescan's 8,000 changes and the first registrations after (a change lands on a
/// random leaf page of a table or index that the full scan packed full, so it splits
/// it, in one of 24 groups' commits). Past the limit, a commit writes to blocks the file
/// system allocates and zeroes afresh: with 64 MiB, that zeroing was still 55% of the
/// rescan writer's samples; with 256 MiB, it was gone, and the writer's samples halved.
///
/// Two other ways were tried before. Kept at 512 MiB but not held, the file's pages
/// were dropped from the system's cache once cold, and a frame (a page and a header)
/// fills them only in part: the system read each back from the disk before writing
/// into it (2 to 4 MB in one group's commit). Cut back to nothing, every page was
/// allocated and zeroed afresh: 44% of the writer's samples.
pub(crate) const WAL_BYTES_LIMIT: i64 = 256 << 20;

/// Copy the write-ahead log into the database file from a connection of its own, off
/// the writers' path: with SQLite's automatic checkpoints, whichever commit crosses the
/// threshold pays for copying the whole log (the slowest registration of a hundred, say).
///
/// A round waits while the writer's connection is in use (`writer_uses` moves), up to
/// `WAITS_MOST` rounds in a row: the copy's sync sends the pages it copied to the disk,
/// thousands of writes at once, and the reads of a writer that finds a page out of the
/// system's cache queue behind them.
pub(crate) fn checkpointer(
    path: &Path,
    writer_uses: std::sync::Arc<std::sync::atomic::AtomicU64>,
) -> Result<std::sync::mpsc::Sender<()>> {
    let conn = Connection::open(path)?;
    // Never wait for a lock: a restart that waited for the write lock or for readers
    // would hold up the writers meanwhile (see `checkpoint`). Busy, it is tried again in
    // the next round.
    conn.busy_timeout(std::time::Duration::ZERO)?;
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let db = path.to_path_buf();
    std::thread::Builder::new()
        .name("sqlite-checkpoint".into())
        .spawn(move || {
            let mut log = ResidentLog::new(&db, WAL_BYTES_LIMIT.unsigned_abs());
            let mut pauses = Pauses::default();
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                stopped.recv_timeout(CHECKPOINT_EVERY)
            {
                if !pauses.copies(writer_uses.load(std::sync::atomic::Ordering::Relaxed)) {
                    continue;
                }
                // A failed checkpoint loses nothing: what it did not copy stays in the
                // log for the next one.
                let _ = checkpoint(&conn, WAL_FRAMES_LIMIT, RESTART_MOST);
                log.keep();
            }
        })
        .map_err(|e| StoreError::Open {
            path: path.display().to_string(),
            problem: format!("cannot start the checkpointer: {e}"),
        })?;
    Ok(stop)
}

/// Rounds in a row that wait for the writer to pause, before one copies regardless.
const WAITS_MOST: u32 = 3;

/// Whether the checkpointer's rounds copy: a round copies when the writer's connection
/// was not taken since the round before, or when `WAITS_MOST` rounds in a row waited.
#[derive(Default)]
struct Pauses {
    /// The count of takings the last round saw.
    seen: u64,
    /// Rounds in a row that waited.
    waited: u32,
}

impl Pauses {
    /// Whether this round copies, given the count of takings now.
    fn copies(&mut self, now: u64) -> bool {
        let wait = now != self.seen && self.waited < WAITS_MOST;
        self.seen = now;
        self.waited = if wait { self.waited + 1 } else { 0 };
        !wait
    }
}

/// Frames past which a `RESTART` waits for a later round: it copies what is left while
/// it holds the write lock.
const RESTART_MOST: i64 = 256;

/// Passive copies in a round at most, before a restart is left to the next round.
const ROUNDS: usize = 4;

/// One round of the checkpointer. A `PASSIVE` checkpoint never waits for writers, so it
/// does the copying and the database file's sync while they go on. But the log only
/// starts over from its beginning when a writer finds it wholly copied, and under a
/// steady stream of small writes some commit always lands while the copy runs: the log
/// then grows without end, and every commit appends to new blocks of the file, which the
/// file system must allocate and zero (at 2,000 registrations in a row, 200 MB and a
/// tenth of each registration's time). So once the log is past `frames_limit`, a
/// `RESTART` checkpoint follows: it takes the write lock, copies the frames committed
/// since, syncs, and leaves the log to be reused from its start.
///
/// Writers wait for all of that, so it must find next to nothing to copy. The counts a
/// passive copy returns are those it started from: what was committed while it copied
/// and synced is not among them, and during a bulk write that is thousands of frames
/// (a rescan's writer once waited 180 ms for a restart that copied 4,800). So the
/// restart follows only a passive copy that itself copied at most `restart_most`
/// frames, which was short enough that little can have landed meanwhile; copies go on
/// until one is that short, `ROUNDS` at most. Nor does the restart wait for the lock
/// or for readers (the connection's busy handler decides): while it waited, it would
/// hold the writers up.
fn checkpoint(conn: &Connection, frames_limit: i64, restart_most: i64) -> rusqlite::Result<()> {
    rounds(
        || {
            conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                Ok((r.get(1)?, r.get(2)?))
            })
        },
        || conn.query_row("PRAGMA wal_checkpoint(RESTART)", [], |_| Ok(())),
        frames_limit,
        restart_most,
    )
}

/// The rounds of `checkpoint`, given its passive copy (which returns the log's frames
/// and how many of them are copied, as of its start) and its restart.
fn rounds(
    mut copy: impl FnMut() -> rusqlite::Result<(i64, i64)>,
    restart: impl FnOnce() -> rusqlite::Result<()>,
    frames_limit: i64,
    restart_most: i64,
) -> rusqlite::Result<()> {
    let mut copied_before = None;
    for _ in 0..ROUNDS {
        let (log, copied) = copy()?;
        // Much left uncopied means readers on older snapshots: a later round.
        if log <= frames_limit || log - copied > restart_most {
            return Ok(());
        }
        if copied_before.is_some_and(|before| copied - before <= restart_most) {
            return restart();
        }
        copied_before = Some(copied);
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
    /// Once the log starts over, its file is written over from the start, as long as
    /// it is no longer than `WAL_BYTES_LIMIT`: cut back, each commit's pages of the file
    /// are allocated and zeroed afresh.
    #[test]
    fn the_log_file_is_kept_when_the_log_starts_over() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("store.db");
        let store = SqliteStore::open(&path).expect("store");
        let customer = |i: usize| CustomerRecord {
            id: format!("c{i}"),
            ..CustomerRecord::default()
        };
        let many: Vec<CustomerRecord> = (0..5_000).map(customer).collect();
        store.upsert_customers(&many, 0).expect("load");
        let wal = dir.path().join("store.db-wal");
        let size = || std::fs::metadata(&wal).expect("log file").len();
        let grown = size();
        assert!(grown < WAL_BYTES_LIMIT.unsigned_abs(), "{grown} bytes");
        let checkpointer = Connection::open(&path).expect("connect");
        let frames = |conn: &Connection| -> i64 {
            conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get(1))
                .expect("frames")
        };
        let before = frames(&checkpointer);
        // The store's own checkpointer may be copying at the same moment: a round that
        // finds it so does nothing, and the next is tried.
        let mut started_over = false;
        for i in 0..100 {
            checkpoint(&checkpointer, 0, 8).expect("checkpoint");
            store.upsert_customers(&[customer(i)], 1).expect("write");
            if frames(&checkpointer) < before / 8 {
                started_over = true;
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(started_over, "the log never started over");
        assert_eq!(size(), grown, "the file is written over, not cut back");
    }

    /// The checkpointer holds the log's file mapped, every page of it in memory (see
    /// `resident`).
    #[cfg(target_os = "linux")]
    #[test]
    fn the_checkpointer_holds_the_log_mapped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("store.db");
        let store = SqliteStore::open(&path).expect("store");
        let many: Vec<CustomerRecord> = (0..5_000)
            .map(|i| CustomerRecord {
                id: format!("c{i}"),
                ..CustomerRecord::default()
            })
            .collect();
        store.upsert_customers(&many, 0).expect("load");
        let wal = dir.path().join("store.db-wal");
        let kib = std::fs::metadata(&wal)
            .expect("log file")
            .len()
            .div_ceil(1024);
        let mut mapped = (0, 0);
        for _ in 0..200 {
            mapped = crate::resident::mapped_kib(&wal);
            if mapped.1 >= kib {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        assert!(
            mapped.0 >= kib && mapped.1 >= kib,
            "{mapped:?} KiB mapped and in memory of a log of {kib} KiB"
        );
    }

    /// A round waits while the writer is busy, but never more than `WAITS_MOST` in a
    /// row: under a steady stream of writes the log is still copied.
    #[test]
    fn a_round_waits_for_the_writer_to_pause_but_not_for_long() {
        let mut pauses = Pauses::default();
        let copies: Vec<bool> = [0, 1, 2, 2, 3, 4, 5, 6, 7, 7]
            .into_iter()
            .map(|now| pauses.copies(now))
            .collect();
        assert_eq!(
            copies,
            [
                true, false, false, true, false, false, false, true, false, true
            ]
        );
    }

    /// The copies a round makes before it restarts the log, given what each copy finds
    /// (the log's frames and how many are copied); `None` if it does not restart.
    fn restarts_after(copies: &[(i64, i64)]) -> Option<usize> {
        let made = std::cell::Cell::new(0);
        let mut restarted = None;
        rounds(
            || {
                made.set(made.get() + 1);
                Ok(copies[made.get() - 1])
            },
            || {
                restarted = Some(made.get());
                Ok(())
            },
            16,
            8,
        )
        .expect("round");
        restarted
    }

    /// A restart copies under the write lock what was committed since the copy before
    /// it, which that copy's counts do not show: so it follows only a copy short enough
    /// that little can have been committed meanwhile.
    #[test]
    fn a_restart_follows_only_a_copy_that_found_little_to_do() {
        // The first copy took all of a long log: during a bulk write, thousands of
        // frames land meanwhile. The second takes those; the third finds next to nothing.
        assert_eq!(
            restarts_after(&[(100, 100), (140, 140), (143, 143)]),
            Some(3)
        );
        // A quiet log is restarted after a second look finds it as it was.
        assert_eq!(restarts_after(&[(40, 40), (40, 40)]), Some(2));
        // A log under the limit, or held by readers on older snapshots, is left as it is.
        assert_eq!(restarts_after(&[(10, 10)]), None);
        assert_eq!(restarts_after(&[(40, 20)]), None);
        // Writes that outrun the copies leave the restart to a later round.
        assert_eq!(
            restarts_after(&[(100, 100), (140, 140), (180, 180), (220, 220)]),
            None
        );
    }
}
