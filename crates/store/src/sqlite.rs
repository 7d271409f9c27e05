//! The embedded default backend: one SQLite file, WAL, schema migrations on open.

use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};

use cohort_model::{CustomerRecord, Group, Held, Membership, Source, State, Timestamp};
use cohort_planner::Change;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::{
    Applied, AuditEntry, Cause, IDEMPOTENCY_KEY_LIFETIME, ImportProblem, ImportRecord, Listing,
    OutboxEvent, Remembered, Result, Role, RunRecord, StagedRow, Store, StoreError, StoredPlugin,
    TokenRecord, Webhook,
};

mod journal;
mod owner;
use journal::{Action, Event, Journal, NewMembership};
use owner::Owner;

/// Each entry migrates the schema from version `i` to `i + 1`; released entries never
/// change.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE plugins (
    id TEXT NOT NULL,
    version TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    wasm BLOB NOT NULL,
    data_dir TEXT,
    added_at INTEGER NOT NULL,
    PRIMARY KEY (id, version)
);
CREATE TABLE customers (
    id TEXT PRIMARY KEY,
    record TEXT NOT NULL,
    registered_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE groups (
    id TEXT PRIMARY KEY,
    definition TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    last_periodic_run INTEGER
);
CREATE TABLE memberships (
    id INTEGER PRIMARY KEY,
    customer TEXT NOT NULL,
    grp TEXT NOT NULL,
    source TEXT NOT NULL,
    actor TEXT NOT NULL,
    reason TEXT NOT NULL,
    start INTEGER NOT NULL,
    end INTEGER
);
CREATE INDEX memberships_by_group ON memberships (grp, customer);
CREATE INDEX memberships_by_customer ON memberships (customer);
CREATE TABLE exclusions (
    customer TEXT NOT NULL,
    grp TEXT NOT NULL,
    actor TEXT NOT NULL,
    reason TEXT NOT NULL,
    at INTEGER NOT NULL,
    PRIMARY KEY (customer, grp)
);
CREATE TABLE audit (
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    customer TEXT NOT NULL,
    grp TEXT NOT NULL,
    action TEXT NOT NULL,
    source TEXT,
    actor TEXT NOT NULL,
    trigger TEXT NOT NULL,
    run INTEGER,
    reason TEXT NOT NULL,
    membership INTEGER
);
CREATE INDEX audit_by_customer ON audit (customer, id);
CREATE INDEX audit_by_group ON audit (grp, id);
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    kind TEXT NOT NULL,
    customer TEXT NOT NULL,
    grp TEXT NOT NULL,
    membership INTEGER NOT NULL,
    payload TEXT NOT NULL,
    delivered_at INTEGER
);
CREATE TABLE runs (
    id INTEGER PRIMARY KEY,
    grp TEXT NOT NULL,
    trigger TEXT NOT NULL,
    dry_run INTEGER NOT NULL,
    actor TEXT NOT NULL,
    as_of INTEGER NOT NULL,
    started_at INTEGER NOT NULL,
    finished_at INTEGER,
    status TEXT NOT NULL,
    customers INTEGER NOT NULL DEFAULT 0,
    matched INTEGER NOT NULL DEFAULT 0,
    added INTEGER NOT NULL DEFAULT 0,
    removed INTEGER NOT NULL DEFAULT 0,
    undecided INTEGER NOT NULL DEFAULT 0,
    failures TEXT NOT NULL DEFAULT '[]'
);
"#,
    r#"
CREATE TABLE group_uses (
    grp TEXT NOT NULL,
    kind TEXT NOT NULL,
    entity TEXT NOT NULL,
    PRIMARY KEY (grp, kind, entity)
);
"#,
    r#"
CREATE TABLE imports (
    id INTEGER PRIMARY KEY,
    actor TEXT NOT NULL,
    file_name TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    finished_at INTEGER,
    status TEXT NOT NULL,
    dry_run INTEGER NOT NULL,
    partial INTEGER NOT NULL,
    rows INTEGER NOT NULL DEFAULT 0,
    added INTEGER NOT NULL DEFAULT 0,
    updated INTEGER NOT NULL DEFAULT 0,
    unchanged INTEGER NOT NULL DEFAULT 0,
    rejected INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE import_errors (
    import INTEGER NOT NULL,
    line INTEGER NOT NULL,
    col TEXT,
    message TEXT NOT NULL
);
CREATE INDEX import_errors_by_import ON import_errors (import, line);
CREATE TABLE import_rows (
    import INTEGER NOT NULL,
    line INTEGER NOT NULL,
    customer TEXT NOT NULL,
    grp TEXT NOT NULL,
    start INTEGER NOT NULL,
    end INTEGER
);
CREATE INDEX import_rows_by_key ON import_rows (import, customer, grp, start);
CREATE INDEX memberships_by_key ON memberships (customer, grp, start);
"#,
    // The HTTP API: tokens, webhooks and their delivery positions, idempotent requests,
    // and the last state announced for each membership, so that one becoming active or
    // expiring by the clock is announced exactly once.
    r#"
ALTER TABLE memberships ADD COLUMN announced TEXT NOT NULL DEFAULT 'active';
UPDATE memberships SET announced = CASE
    WHEN end IS NOT NULL AND end <= CAST(strftime('%s', 'now') AS INTEGER) THEN 'expired'
    WHEN start > CAST(strftime('%s', 'now') AS INTEGER) THEN 'pending'
    ELSE 'active' END;
CREATE INDEX memberships_pending ON memberships (start) WHERE announced = 'pending';
CREATE INDEX memberships_ending ON memberships (end)
    WHERE announced = 'active' AND end IS NOT NULL;
CREATE TABLE tokens (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE UNIQUE INDEX tokens_live_name ON tokens (name) WHERE revoked_at IS NULL;
CREATE TABLE webhooks (
    id INTEGER PRIMARY KEY,
    url TEXT NOT NULL,
    secret TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    position INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    last_delivered_at INTEGER
);
CREATE TABLE idempotency (
    token TEXT NOT NULL,
    key TEXT NOT NULL,
    request TEXT NOT NULL,
    status INTEGER NOT NULL,
    body TEXT NOT NULL,
    at INTEGER NOT NULL,
    PRIMARY KEY (token, key)
);
"#,
    // Every write of a customer takes the next number, so a reader that keeps facts in
    // memory can fetch only what changed since it last looked, whoever wrote it.
    r#"
ALTER TABLE customers ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
CREATE INDEX customers_by_seq ON customers (seq);
-- memberships_by_key (customer, grp, start) serves every lookup by customer; one
-- index fewer to update for each membership a run adds.
DROP INDEX memberships_by_customer;
-- Bumped by every change to a group's definition, so that readers may keep the parsed
-- groups until it moves.
CREATE TABLE stamps (name TEXT PRIMARY KEY, n INTEGER NOT NULL);
INSERT INTO stamps (name, n) VALUES ('groups', 0);
CREATE TRIGGER groups_added AFTER INSERT ON groups
    BEGIN UPDATE stamps SET n = n + 1 WHERE name = 'groups'; END;
CREATE TRIGGER groups_changed AFTER UPDATE OF definition ON groups
    BEGIN UPDATE stamps SET n = n + 1 WHERE name = 'groups'; END;
CREATE TRIGGER groups_deleted AFTER DELETE ON groups
    BEGIN UPDATE stamps SET n = n + 1 WHERE name = 'groups'; END;
"#,
    // An event written with a change points at the change's audit entry instead of
    // carrying a JSON copy of it: the payload was the largest part of every change a run
    // wrote. Events of the clock have no audit entry; everything about them is in their
    // own columns. Rows written before keep their payload and are read from it.
    r#"
CREATE TABLE outbox_v6 (
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    kind TEXT NOT NULL,
    customer TEXT NOT NULL,
    grp TEXT NOT NULL,
    membership INTEGER NOT NULL,
    audit INTEGER,
    payload TEXT
);
INSERT INTO outbox_v6 (id, at, kind, customer, grp, membership, payload)
    SELECT id, at, kind, customer, grp, membership, payload FROM outbox;
DROP TABLE outbox;
ALTER TABLE outbox_v6 RENAME TO outbox;
"#,
    // Indexes a run appends to instead of inserting all over: a run walks one group's
    // customers in order, so an index led by the group grows at one end, while one led
    // by the customer gets an entry on every leaf page, and every such page goes to the
    // write-ahead log again at each commit (most of a full scan's time at a million
    // customers). A customer's memberships are found by seeking each group in the
    // group-led index; a customer's history through their memberships, or, for entries
    // that belong to no membership (pins), through a small partial index.
    r#"
DROP INDEX memberships_by_group;
DROP INDEX memberships_by_key;
CREATE INDEX memberships_by_group ON memberships (grp, customer, start);
DROP INDEX audit_by_customer;
CREATE INDEX audit_by_membership ON audit (membership, id);
CREATE INDEX audit_unattached_by_customer ON audit (customer, id) WHERE membership IS NULL;
"#,
    // An event of a change is its audit entry's id and nothing else: the time, kind,
    // customer, group and membership it repeated were a third of what a full scan wrote
    // per change. Events of the clock (no audit entry) keep those columns, rows written
    // before keep what they had.
    r#"
CREATE TABLE outbox_v8 (
    id INTEGER PRIMARY KEY,
    audit INTEGER,
    at INTEGER,
    kind TEXT,
    customer TEXT,
    grp TEXT,
    membership INTEGER,
    payload TEXT
);
INSERT INTO outbox_v8 (id, audit, at, kind, customer, grp, membership, payload)
    SELECT id, audit, at, kind, customer, grp, membership, payload FROM outbox;
DROP TABLE outbox;
ALTER TABLE outbox_v8 RENAME TO outbox;
"#,
    // The history query's group filter is `(?2 IS NULL OR grp = ?2)`, which SQLite
    // cannot answer from an index: it walks the log newest first and never read this
    // one. Keeping it up to date was a sixth of what a full scan's writes cost, and a
    // page per group a registration joins.
    r#"
DROP INDEX audit_by_group;
"#,
    // One write numbers all its customers alike, so `ORDER BY seq, id` had SQLite copy
    // every record of a write into a sorter before handing back the first: a tenth of
    // loading the customer cache (300,000 customers). Led by both, the index hands them
    // over in order.
    r#"
DROP INDEX customers_by_seq;
CREATE INDEX customers_by_seq ON customers (seq, id);
"#,
    // Why a run failed: a failed run used to stay `running` until the next open.
    r#"
ALTER TABLE runs ADD COLUMN error TEXT;
"#,
    // The entries of memberships added together are one row: a run's additions were
    // two rows of three that a full scan wrote, each repeating what its membership
    // says (customer, group, source, actor, reason; a membership never changes them)
    // and its run's time, trigger and run. A row with a `count` stands for the entries
    // numbered up to its id, of the memberships numbered up to its `membership`, one for
    // one, and says nothing else. `audit_by_membership` keeps only entries told in
    // full (removals, updates, and everything written before); `audit_stretches`
    // finds the row of a membership added, one index entry per row.
    r#"
CREATE TABLE audit_v12 (
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    customer TEXT,
    grp TEXT,
    action TEXT NOT NULL,
    source TEXT,
    actor TEXT,
    trigger TEXT NOT NULL,
    run INTEGER,
    reason TEXT,
    membership INTEGER,
    count INTEGER
);
INSERT INTO audit_v12 (id, at, customer, grp, action, source, actor, trigger, run, reason,
                       membership)
    SELECT id, at, customer, grp, action, source, actor, trigger, run, reason, membership
    FROM audit ORDER BY id;
DROP TABLE audit;
ALTER TABLE audit_v12 RENAME TO audit;
CREATE INDEX audit_by_membership ON audit (membership, id) WHERE count IS NULL;
CREATE INDEX audit_stretches ON audit (membership) WHERE count IS NOT NULL;
CREATE INDEX audit_unattached_by_customer ON audit (customer, id) WHERE membership IS NULL;
"#,
    // What a full scan writes per membership added, slimmer.
    //
    // The events of one write are one row: after migration 12, an event per change was
    // a third of the rows a full scan wrote. A row with a `count` stands for the events
    // numbered up to its id, of the audit entries numbered up to its `audit`, one for
    // one, so an event keeps its number and a webhook its position.
    //
    // A membership its group's rule added says neither who nor why: a missing actor is
    // the group's rule (`rule:` and the group's id), a missing reason the rule's words.
    // They were a third of the bytes of every membership a run added.
    r#"
ALTER TABLE outbox ADD COLUMN count INTEGER;
CREATE TABLE memberships_v13 (
    id INTEGER PRIMARY KEY,
    customer TEXT NOT NULL,
    grp TEXT NOT NULL,
    source TEXT NOT NULL,
    actor TEXT,
    reason TEXT,
    start INTEGER NOT NULL,
    end INTEGER,
    announced TEXT NOT NULL DEFAULT 'active'
);
INSERT INTO memberships_v13 (id, customer, grp, source, actor, reason, start, end, announced)
    SELECT id, customer, grp, source, nullif(actor, 'rule:' || grp),
           nullif(reason, 'the rule matches'), start, end, announced
    FROM memberships ORDER BY id;
DROP TABLE memberships;
ALTER TABLE memberships_v13 RENAME TO memberships;
CREATE INDEX memberships_by_group ON memberships (grp, customer, start);
CREATE INDEX memberships_pending ON memberships (start) WHERE announced = 'pending';
CREATE INDEX memberships_ending ON memberships (end)
    WHERE announced = 'active' AND end IS NOT NULL;
"#,
    // A run names the store that started it (`sqlite/owner.rs`), so that another
    // process marks it interrupted only when that store is gone. A webhook's id is
    // never handed out again: a worker that still served a deleted webhook would
    // otherwise deliver a new one's events to the old URL, with the old secret.
    // Idempotency keys belong to a token's id and expire.
    r#"
ALTER TABLE runs ADD COLUMN owner TEXT;
CREATE TABLE webhooks_v14 (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    url TEXT NOT NULL,
    secret TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    position INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    last_delivered_at INTEGER
);
INSERT INTO webhooks_v14 SELECT id, url, secret, created_at, position, attempts, last_error,
    last_delivered_at FROM webhooks ORDER BY id;
DROP TABLE webhooks;
ALTER TABLE webhooks_v14 RENAME TO webhooks;
-- Idempotency keys are kept by the token's id, not its name, which a new token may
-- take after the old one is revoked; and they expire. Keys kept by name are dropped.
DELETE FROM idempotency;
CREATE INDEX idempotency_by_at ON idempotency (at);
"#,
];

/// The state to announce for a membership written at `at`: a window starting later is
/// announced again when it becomes active.
fn announced(start: Timestamp, end: Option<Timestamp>, at: Timestamp) -> &'static str {
    if end.is_some_and(|e| e <= at) {
        "expired"
    } else if start > at {
        "pending"
    } else {
        "active"
    }
}

/// The embedded store. Safe to share between threads; SQLite serialises the writers.
pub struct SqliteStore {
    conn: Mutex<Connection>,
    /// A second connection, for the reads a run makes before it writes: with one
    /// connection, a run of one group could not even read its definition while another
    /// group's run held the connection to write, so no run evaluated while another
    /// wrote. `None` for a store in memory, which only one connection can see.
    reader: Option<Mutex<Connection>>,
    /// Tells the checkpointer thread, if there is one, to stop.
    stop: Option<std::sync::mpsc::Sender<()>>,
    /// The token this store's runs carry while they run; `None` in memory, where no
    /// other process can look.
    owner: Option<Owner>,
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        if let Some(stop) = &self.stop {
            let _ = stop.send(());
        }
    }
}

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
const WAL_BYTES_LIMIT: i64 = 512 << 20;

/// How long the checkpointer waits for the write lock before it tries again next time.
const RESTART_WAIT: std::time::Duration = std::time::Duration::from_millis(50);

/// Copy the write-ahead log into the database file from a connection of its own, off
/// the writers' path: with SQLite's automatic checkpoints, whichever commit crosses the
/// threshold pays for copying the whole log (the slowest registration of a hundred, say).
fn checkpointer(path: &Path) -> Result<std::sync::mpsc::Sender<()>> {
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

/// SQLite counts every allocation under a process-wide mutex unless told not to, and a
/// run's writer allocates for every value it binds; the store never reads the counts.
/// The setting only takes before SQLite initialises, i.e. before the process's first
/// connection: if something else opened one first, SQLite refuses it, which costs speed
/// and nothing else.
fn configure_sqlite() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: SQLITE_CONFIG_MEMSTATUS takes one int; SQLite checks that it is not
        // yet initialised and returns an error instead of changing anything if it is.
        #[allow(unsafe_code)]
        unsafe {
            rusqlite::ffi::sqlite3_config(rusqlite::ffi::SQLITE_CONFIG_MEMSTATUS, 0);
        }
    });
}

impl SqliteStore {
    /// Open (creating if needed) the store at `path` and bring its schema up to date.
    /// Runs whose process is gone (a crash) are marked `interrupted`; those of a store
    /// still open, in this process or another, keep running.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let open_error = |problem: String| StoreError::Open {
            path: path.display().to_string(),
            problem,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| open_error(e.to_string()))?;
        }
        configure_sqlite();
        let conn = Connection::open(path).map_err(|e| open_error(e.to_string()))?;
        let owner = Owner::claim(path)
            .map_err(|e| open_error(format!("cannot keep the token of the runs it starts: {e}")))?;
        let mut store = Self::setup(conn, Some(path))?;
        store.owner = Some(owner);
        store.reader = Some(Mutex::new(Self::reader_at(path)?));
        store.stop = Some(checkpointer(path)?);
        Ok(store)
    }

    /// A store that lives in memory only, for tests and dry experiments.
    pub fn in_memory() -> Result<Self> {
        configure_sqlite();
        Self::setup(Connection::open_in_memory()?, None)
    }

    /// The settings the store gives its connection, for another connection that must
    /// write as the store does (the benchmark's floor, say).
    pub fn configure(conn: &Connection) -> rusqlite::Result<()> {
        // WAL lets readers go on while a run writes; NORMAL sync is durable at every
        // checkpoint and safe against corruption on power loss.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // A multi-row insert keeps a statement journal (to undo itself alone on error);
        // in a file it costs a write per page it touches.
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        // 64 MiB of page cache where SQLite's default is 2: a run that adds a group's
        // memberships dirties more pages than 2 MiB hold, and each page pushed out
        // mid-transaction is written to the log, then again when it is dirtied again.
        conn.pragma_update(None, "cache_size", -65_536)?;
        // The checkpointer thread copies the log (see `checkpointer`); no commit does.
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        // The log is reused from its start once copied (see `checkpoint`); a run's
        // large transactions may have grown the file far past what is needed since,
        // and SQLite cuts it back to this when the log starts over.
        conn.pragma_update(None, "journal_size_limit", WAL_BYTES_LIMIT)
    }

    /// Configure and migrate the store, and mark interrupted the runs whose store is
    /// gone (every run, for a store in memory: nothing else can have one open).
    fn setup(mut conn: Connection, path: Option<&Path>) -> Result<Self> {
        Self::configure(&conn)?;
        // rusqlite keeps 16 prepared statements by default; a registration uses about as
        // many, runs and the API more, and every statement evicted is parsed and planned
        // again on its next use.
        conn.set_prepared_statement_cache_capacity(128);
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        // Every transaction of this connection writes, and most read first: the next
        // write number, whether a customer exists, the last row ids the journal numbers
        // its rows from. Each takes the write lock at its start, so that what it read
        // holds until it writes. One that took the lock only at its first write would,
        // if another connection held it just then (the checkpointer starting the log
        // over, a second process), fail at once with "database is locked": SQLite does
        // not wait for the lock on behalf of a transaction that has read, since what it
        // read may be stale.
        conn.set_transaction_behavior(TransactionBehavior::Immediate);
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        let tx = conn.transaction()?;
        for (i, migration) in MIGRATIONS.iter().enumerate().skip(version.max(0) as usize) {
            tx.execute_batch(migration)?;
            tx.pragma_update(None, "user_version", i as i64 + 1)?;
        }
        let owners: Vec<Option<String>> = tx
            .prepare("SELECT DISTINCT owner FROM runs WHERE status = 'running'")?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        for owner in owners {
            if path.is_some_and(|p| Owner::alive(p, owner.as_deref())) {
                continue;
            }
            tx.execute(
                "UPDATE runs SET status = 'interrupted' WHERE status = 'running' AND owner IS ?1",
                [owner],
            )?;
        }
        tx.commit()?;
        Ok(SqliteStore {
            conn: Mutex::new(conn),
            reader: None,
            stop: None,
            owner: None,
        })
    }

    /// The read-only connection beside the writer's (see `SqliteStore::reader`).
    fn reader_at(path: &Path) -> Result<Connection> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "query_only", true)?;
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        conn.set_prepared_statement_cache_capacity(64);
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        Ok(conn)
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // SQLite keeps its own consistency; a panic while holding the lock cannot leave
        // the connection half-used outside a transaction that SQLite rolls back.
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The connection for a read that must not wait for a writer: it sees what was
    /// committed when it starts. The reads of a registration stay on the writer's
    /// connection, whose page cache holds what they and the write that follows touch:
    /// every commit empties the reader's cache, and reading there made a registration
    /// a fifth slower.
    fn reader(&self) -> MutexGuard<'_, Connection> {
        match &self.reader {
            Some(reader) => reader.lock().unwrap_or_else(PoisonError::into_inner),
            None => self.conn(),
        }
    }
}

fn corrupt(what: &'static str, id: &str, problem: impl ToString) -> StoreError {
    StoreError::Corrupt {
        what,
        id: id.to_string(),
        problem: problem.to_string(),
    }
}

fn membership_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<(Membership, String)> {
    let source: String = row.get(3)?;
    Ok((
        Membership {
            id: row.get(0)?,
            customer: row.get(1)?,
            group: row.get(2)?,
            source: Source::Manual,
            actor: row.get(4)?,
            reason: row.get(5)?,
            start: row.get(6)?,
            end: row.get(7)?,
        },
        source,
    ))
}

fn memberships(conn: &Connection, sql: &str, key: &str) -> Result<Vec<Membership>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map([key], membership_row)?;
    with_sources(rows)
}

/// Memberships from rows of [`membership_row`], their stored sources checked.
fn with_sources(
    rows: impl Iterator<Item = rusqlite::Result<(Membership, String)>>,
) -> Result<Vec<Membership>> {
    let mut out = Vec::new();
    for row in rows {
        let (mut m, source) = row?;
        m.source = Source::parse(&source).ok_or_else(|| {
            corrupt(
                "membership",
                &m.id.to_string(),
                format!("source `{source}`"),
            )
        })?;
        out.push(m);
    }
    Ok(out)
}

/// Who announces a window that opens or closes by the clock, and why.
const CLOCK_TRIGGER: &str = "clock";
const CLOCK_ACTOR: &str = "cohort";
fn clock_reason(kind: &str) -> &'static str {
    if kind == "membership.activated" {
        "the membership's window opened"
    } else {
        "the membership's window closed"
    }
}

fn token_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(TokenRecord, String)> {
    Ok((
        TokenRecord {
            id: r.get(0)?,
            name: r.get(1)?,
            role: Role::ReadOnly,
            created_at: r.get(3)?,
            revoked_at: r.get(4)?,
        },
        r.get(2)?,
    ))
}

fn with_role((mut token, role): (TokenRecord, String)) -> Result<TokenRecord> {
    token.role = Role::parse(&role).ok_or_else(|| corrupt("token", &token.name, "role"))?;
    Ok(token)
}

fn webhook_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Webhook> {
    Ok(Webhook {
        id: r.get(0)?,
        url: r.get(1)?,
        secret: r.get(2)?,
        created_at: r.get(3)?,
        position: r.get(4)?,
        attempts: r.get(5)?,
        last_error: r.get(6)?,
        last_delivered_at: r.get(7)?,
    })
}

const WEBHOOK_COLUMNS: &str =
    "id, url, secret, created_at, position, attempts, last_error, last_delivered_at";

/// Rows of customer records read together: their ids and texts in one buffer.
#[derive(Default)]
struct Chunk {
    text: String,
    /// Where each row's id ends and its record ends, in `text`.
    ends: Vec<(usize, usize)>,
}

impl Chunk {
    /// The next `size` rows (or fewer, at the end) of a [`CUSTOMERS_SINCE`] query, in
    /// `chunk`'s buffers (emptied first), raising `last` to the latest write number
    /// among them.
    fn read(
        mut chunk: Chunk,
        rows: &mut rusqlite::Rows<'_>,
        size: usize,
        last: &mut i64,
    ) -> Result<Chunk> {
        chunk.text.clear();
        chunk.ends.clear();
        while chunk.ends.len() < size {
            let Some(row) = rows.next()? else { break };
            let text = |i| -> rusqlite::Result<&str> { Ok(row.get_ref(i)?.as_str()?) };
            chunk.text.push_str(text(0)?);
            let id_end = chunk.text.len();
            chunk.text.push_str(text(1)?);
            chunk.ends.push((id_end, chunk.text.len()));
            *last = (*last).max(row.get(2)?);
        }
        Ok(chunk)
    }

    /// Hand the chunk's records to `each` as they parse; a record that does not parse
    /// ends them, and is named in the error.
    fn parse(
        &self,
        number: usize,
        each: &(dyn Fn(usize, &mut dyn Iterator<Item = CustomerRecord>) + Sync),
    ) -> Result<()> {
        let mut records = Records {
            chunk: self,
            next: 0,
            error: None,
        };
        each(number, &mut records);
        records.error.map_or(Ok(()), Err)
    }
}

/// The records of one [`Chunk`], parsed one at a time as they are asked for.
struct Records<'c> {
    chunk: &'c Chunk,
    next: usize,
    error: Option<StoreError>,
}

impl Iterator for Records<'_> {
    type Item = CustomerRecord;

    fn next(&mut self) -> Option<CustomerRecord> {
        let &(id_end, end) = self.chunk.ends.get(self.next)?;
        let start = match self.next {
            0 => 0,
            n => self.chunk.ends[n - 1].1,
        };
        let (id, json) = (
            &self.chunk.text[start..id_end],
            &self.chunk.text[id_end..end],
        );
        match serde_json::from_str(json) {
            Ok(record) => {
                self.next += 1;
                Some(record)
            }
            Err(e) => {
                self.error = Some(corrupt("customer", id, e));
                self.next = self.chunk.ends.len();
                None
            }
        }
    }
}

/// Customers written after a write number, in write order.
const CUSTOMERS_SINCE: &str =
    "SELECT id, record, seq FROM customers WHERE seq > ?1 ORDER BY seq, id";

const UPSERT_CUSTOMER: &str = "INSERT INTO customers (id, record, registered_at, updated_at, seq)
     VALUES (?1, ?2, ?3, ?3, ?4)
     ON CONFLICT (id) DO UPDATE SET record = excluded.record, updated_at = excluded.updated_at,
        seq = excluded.seq";

/// The number the next write of customers takes.
fn next_seq(conn: &Connection) -> Result<i64> {
    Ok(conn
        .prepare_cached("SELECT coalesce(max(seq), 0) + 1 FROM customers")?
        .query_row([], |r| r.get(0))?)
}

fn customer_exists_in(conn: &Connection, id: &str) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM customers WHERE id = ?1")?
        .exists([id])?)
}

/// Write one customer's record as write number `seq`; `true` when it is new.
fn upsert_customer_in(
    conn: &Connection,
    record: &CustomerRecord,
    now: Timestamp,
    seq: i64,
) -> Result<bool> {
    let json = serde_json::to_string(record).map_err(|e| corrupt("customer", &record.id, e))?;
    let existed = customer_exists_in(conn, &record.id)?;
    conn.prepare_cached(UPSERT_CUSTOMER)?
        .execute(params![record.id, json, now, seq])?;
    Ok(!existed)
}

/// A membership as told: its actor and reason, when left out, are its group's rule and
/// the rule's words (see migration 13; every reader of the two columns says so).
const MEMBERSHIP_COLUMNS: &str = "id, customer, grp, source,
    coalesce(actor, 'rule:' || grp) AS actor, coalesce(reason, 'the rule matches') AS reason,
    start, end";

const AUDIT_COLUMNS: &str = "id, at, customer, grp, action, source, actor, trigger, run, reason";

/// A `WITH` clause defining `mine`, the memberships of customer `?1`, found by seeking
/// each group in `memberships_by_group` (the store keeps no index led by the customer:
/// see migration 7). `groups` cannot list the groups, as memberships outlive a deleted
/// group; the index itself can, one seek per group.
const CUSTOMER_MEMBERSHIPS: &str = "WITH RECURSIVE
    grps(grp) AS (
        SELECT min(grp) FROM memberships
        UNION ALL
        SELECT (SELECT min(grp) FROM memberships WHERE grp > grps.grp) FROM grps
        WHERE grps.grp IS NOT NULL
    ),
    mine AS (
        SELECT m.* FROM grps JOIN memberships m ON m.grp = grps.grp AND m.customer = ?1
    )";

/// After [`CUSTOMER_MEMBERSHIPS`], `entries`: the audit entries of customer `?1`, whole
/// ([`AUDIT_COLUMNS`]): each membership's addition, read from the row of additions
/// that holds it (see migration 12: the first such row up to a membership at or past
/// it) and the membership; those told in full about a membership; those about a pin,
/// which belong to no membership.
const CUSTOMER_ENTRIES: &str = "entries AS (
        SELECT a.id - (a.membership - mine.id) AS id, a.at, mine.customer, mine.grp,
               a.action, mine.source, coalesce(mine.actor, 'rule:' || mine.grp) AS actor,
               a.trigger, a.run, coalesce(mine.reason, 'the rule matches') AS reason
        FROM mine JOIN audit a ON a.id = (
            SELECT id FROM audit WHERE count IS NOT NULL AND membership >= mine.id
            ORDER BY membership LIMIT 1)
        WHERE a.membership - a.count < mine.id
        UNION ALL
        SELECT a.id, a.at, a.customer, a.grp, a.action, a.source, a.actor, a.trigger, a.run,
               a.reason
        FROM mine JOIN audit a ON a.membership = mine.id AND a.count IS NULL
        UNION ALL
        SELECT id, at, customer, grp, action, source, actor, trigger, run, reason
        FROM audit WHERE membership IS NULL AND customer = ?1
    )";

/// The log's entries numbered below `before`, newest first, of `group` if given, at
/// most `limit`: rows told in full as they are, a row of additions (see migration 12)
/// unfolded from its memberships. No index serves a group's entries (see migration 9):
/// this walks the log until it has enough.
fn log_newest_first(
    conn: &Connection,
    group: Option<&str>,
    before: i64,
    limit: usize,
) -> Result<Vec<AuditEntry>> {
    let mut out = Vec::new();
    if limit == 0 {
        return Ok(out);
    }
    // From the row holding entry `before - 1`, which may number entries past it.
    let mut rows = conn.prepare_cached(
        "SELECT id, at, customer, grp, action, source, actor, trigger, run, reason,
                membership, count
         FROM audit
         WHERE id <= coalesce((SELECT min(id) FROM audit WHERE id >= ?1 - 1), ?1 - 1)
         ORDER BY id DESC",
    )?;
    let mut added = conn.prepare_cached(
        "SELECT id, customer, grp, source, coalesce(actor, 'rule:' || grp),
                coalesce(reason, 'the rule matches')
         FROM memberships WHERE id BETWEEN ?1 AND ?2 AND (?3 IS NULL OR grp = ?3)
         ORDER BY id DESC",
    )?;
    let source = |s: Option<String>| s.and_then(|s| Source::parse(&s));
    let mut rows = rows.query([before])?;
    while let Some(r) = rows.next()? {
        let (id, at, action, trigger, run): (i64, Timestamp, String, String, Option<i64>) =
            (r.get(0)?, r.get(1)?, r.get(4)?, r.get(7)?, r.get(8)?);
        let Some(count) = r.get::<_, Option<i64>>(11)? else {
            let grp: String = r.get(3)?;
            if id < before && group.is_none_or(|g| g == grp) {
                out.push(AuditEntry {
                    id,
                    at,
                    customer: r.get(2)?,
                    group: grp,
                    action,
                    source: source(r.get(5)?),
                    actor: r.get(6)?,
                    trigger,
                    run,
                    reason: r.get(9)?,
                });
            }
            if out.len() == limit {
                return Ok(out);
            }
            continue;
        };
        // Entry `id - k` is that of membership `last - k`; those from `before` on are
        // not asked for.
        let last: i64 = r.get(10)?;
        let skip = (id - before + 1).max(0);
        let memberships = added.query_map(params![last - count + 1, last - skip, group], |m| {
            let membership: i64 = m.get(0)?;
            Ok(AuditEntry {
                id: id - (last - membership),
                at,
                customer: m.get(1)?,
                group: m.get(2)?,
                action: action.clone(),
                source: source(m.get(3)?),
                actor: m.get(4)?,
                trigger: trigger.clone(),
                run,
                reason: m.get(5)?,
            })
        })?;
        for entry in memberships {
            out.push(entry?);
            if out.len() == limit {
                return Ok(out);
            }
        }
    }
    Ok(out)
}

/// Up to `?2` rows of the outbox holding events after event `?1`, each with the number
/// of events it holds and the audit entry of its last (see migration 13); the clock's
/// have none.
const EVENT_ROWS: &str = "SELECT id, coalesce(count, 1), audit FROM outbox
    WHERE id > ?1 ORDER BY id LIMIT ?2";

/// The event of outbox row `?1` whose audit entry is `?2` (none for the clock's), with
/// the audit row that holds the entry and, for a row of additions (see migration 12),
/// the entry's membership. What the outbox row says itself comes first: rows written
/// before version 8 repeat their entry.
const EVENT: &str = "
    SELECT coalesce(o.at, a.at), coalesce(o.kind, 'membership.' || a.action),
           coalesce(o.customer, a.customer, m.customer), coalesce(o.grp, a.grp, m.grp),
           coalesce(o.membership, m.id, a.membership), o.payload,
           a.trigger, coalesce(a.actor, m.actor, 'rule:' || m.grp),
           coalesce(a.reason, m.reason, CASE WHEN m.id IS NOT NULL THEN 'the rule matches' END)
    FROM outbox o
    LEFT JOIN audit a ON a.id = (SELECT min(id) FROM audit WHERE id >= ?2)
    LEFT JOIN memberships m ON a.count IS NOT NULL AND m.id = a.membership - (a.id - ?2)
    WHERE o.id = ?1";

/// Event `id`, from a row of [`EVENT`].
fn event_row(id: i64, r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<OutboxEvent>> {
    // Written before events referred to their audit entry.
    if let Some(payload) = r.get::<_, Option<String>>(5)? {
        return Ok(serde_json::from_str(&payload)
            .map(|event| OutboxEvent { id, ..event })
            .map_err(|e| corrupt("event", &id.to_string(), e)));
    }
    let kind: String = r.get(1)?;
    let (trigger, actor, reason) = match r.get::<_, Option<String>>(6)? {
        Some(trigger) => (trigger, r.get(7)?, r.get(8)?),
        None => (
            CLOCK_TRIGGER.to_string(),
            CLOCK_ACTOR.to_string(),
            clock_reason(&kind).to_string(),
        ),
    };
    Ok(Ok(OutboxEvent {
        id,
        event: kind,
        at: r.get(0)?,
        customer: r.get(2)?,
        group: r.get(3)?,
        membership: r.get(4)?,
        trigger,
        actor,
        reason,
    }))
}

/// A customer's (`?1`) memberships in the groups of the JSON array `?2`, after
/// `SELECT {MEMBERSHIP_COLUMNS}`: a seek per group, where [`CUSTOMER_MEMBERSHIPS`]
/// first seeks out every group that has members (72 against 45 µs per read, measured
/// on a reference store of 300,000 customers).
const GROUPS_MEMBERSHIPS: &str = "FROM memberships
    WHERE grp IN (SELECT value FROM json_each(?2)) AND customer = ?1
    ORDER BY grp, id";

/// Write one batch of changes with their audit entries and events in the caller's
/// transaction.
/// Apply each batch of changes for its cause, in one journal (see `Journal::switch`).
fn apply_all(
    tx: &rusqlite::Transaction<'_>,
    batches: &[(&[Change], Cause<'_>)],
    at: Timestamp,
) -> Result<Vec<Applied>> {
    let Some((_, first)) = batches.first() else {
        return Ok(Vec::new());
    };
    let mut journal = Journal::open(tx, at, first)?;
    let mut applied = Vec::with_capacity(batches.len());
    for (changes, cause) in batches {
        journal.switch(tx, cause)?;
        applied.push(apply_in(tx, &mut journal, changes, at)?);
    }
    journal.finish(tx)?;
    Ok(applied)
}

fn apply_in<'a>(
    tx: &rusqlite::Transaction<'_>,
    journal: &mut Journal<'a>,
    changes: &'a [Change],
    at: Timestamp,
) -> Result<Applied> {
    let mut applied = Applied::default();
    // The `removed` event announces the end; the clock must not announce it again.
    let mut end = tx.prepare_cached(
        "UPDATE memberships SET end = ?2,
                announced = CASE WHEN ?2 <= ?3 THEN 'expired' ELSE announced END
             WHERE id = ?1 AND (end IS NULL OR end > ?2)",
    )?;
    for change in changes {
        let event = match change {
            Change::Add {
                customer,
                group,
                source,
                reason,
                start,
                end,
            } => {
                applied.added += 1;
                let membership = journal.added(NewMembership {
                    customer: (**customer).into(),
                    group: (**group).into(),
                    source: *source,
                    reason: reason.as_ref().into(),
                    start: *start,
                    end: *end,
                    announced: announced(*start, *end, at),
                });
                applied.ids.push(membership);
                journal.spill(tx)?;
                continue;
            }
            Change::End {
                membership,
                customer,
                group,
                at: end_at,
                reason,
            } => {
                journal.write_through(tx, *membership)?;
                if end.execute(params![membership, end_at, at])? == 0 {
                    // Already ended (a concurrent manual removal): nothing to record.
                    continue;
                }
                applied.removed += 1;
                Event {
                    kind: Action::Removed,
                    customer: (**customer).into(),
                    group: (**group).into(),
                    membership: *membership,
                    source: None,
                    reason: reason.as_ref().into(),
                }
            }
        };
        journal.record(event);
        journal.spill(tx)?;
    }
    let mut groups: Vec<&str> = changes
        .iter()
        .map(|c| match c {
            Change::Add { group, .. } | Change::End { group, .. } => &**group,
        })
        .collect();
    groups.sort_unstable();
    groups.dedup();
    applied.stamps = bump_membership_stamps(tx, &groups)?;
    Ok(applied)
}

/// The `stamps` row counting a group's membership writes.
const MEMBERSHIP_STAMP: &str = "'memberships:' || ?1";

/// Count a write to the memberships of each of `groups`; returns their stamps after.
/// Every statement that changes a membership's group, source or window comes with this
/// in its transaction, so that a reader's copy of a group is stale exactly when the
/// stamp has moved.
fn bump_membership_stamps(
    tx: &rusqlite::Transaction<'_>,
    groups: &[&str],
) -> Result<Vec<(String, i64)>> {
    let mut bump = tx.prepare_cached(&format!(
        "INSERT INTO stamps (name, n) VALUES ({MEMBERSHIP_STAMP}, 1)
         ON CONFLICT (name) DO UPDATE SET n = n + 1 RETURNING n"
    ))?;
    groups
        .iter()
        .map(|g| Ok((g.to_string(), bump.query_row([g], |r| r.get(0))?)))
        .collect()
}

impl Store for SqliteStore {
    fn put_plugin(&self, p: &StoredPlugin, wasm: &[u8]) -> Result<()> {
        self.conn().execute(
            "INSERT INTO plugins (id, version, sha256, wasm, data_dir, added_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (id, version) DO UPDATE SET
                sha256 = excluded.sha256, wasm = excluded.wasm,
                data_dir = excluded.data_dir, added_at = excluded.added_at",
            params![p.id, p.version, p.sha256, wasm, p.data_dir, p.added_at],
        )?;
        Ok(())
    }

    fn plugins(&self) -> Result<Vec<StoredPlugin>> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(
            "SELECT id, version, sha256, data_dir, added_at FROM plugins ORDER BY id, version",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(StoredPlugin {
                id: r.get(0)?,
                version: r.get(1)?,
                sha256: r.get(2)?,
                data_dir: r.get(3)?,
                added_at: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn plugin_wasm(&self, id: &str, version: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .reader()
            .query_row(
                "SELECT wasm FROM plugins WHERE id = ?1 AND version = ?2",
                [id, version],
                |r| r.get(0),
            )
            .optional()?)
    }

    fn upsert_customer(&self, record: &CustomerRecord, now: Timestamp) -> Result<bool> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let new = upsert_customer_in(&tx, record, now, next_seq(&tx)?)?;
        tx.commit()?;
        Ok(new)
    }

    fn register(
        &self,
        record: &CustomerRecord,
        now: Timestamp,
        batches: &[(&[Change], Cause<'_>)],
    ) -> Result<Option<Vec<Applied>>> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let applied = if upsert_customer_in(&tx, record, now, next_seq(&tx)?)? {
            Some(apply_all(&tx, batches, now)?)
        } else {
            None
        };
        tx.commit()?;
        Ok(applied)
    }

    fn customer_exists(&self, id: &str) -> Result<bool> {
        customer_exists_in(&self.conn(), id)
    }

    fn upsert_customers(&self, records: &[CustomerRecord], now: Timestamp) -> Result<u64> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let seq = next_seq(&tx)?;
        let mut new = 0;
        for record in records {
            new += u64::from(upsert_customer_in(&tx, record, now, seq)?);
        }
        tx.commit()?;
        Ok(new)
    }

    fn customer(&self, id: &str) -> Result<Option<CustomerRecord>> {
        let json: Option<String> = self
            .reader()
            .prepare_cached("SELECT record FROM customers WHERE id = ?1")?
            .query_row([id], |r| r.get(0))
            .optional()?;
        json.map(|j| serde_json::from_str(&j).map_err(|e| corrupt("customer", id, e)))
            .transpose()
    }

    fn customers_after(&self, after: Option<&str>, limit: usize) -> Result<Vec<CustomerRecord>> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(
            "SELECT id, record FROM customers WHERE id > ?1 ORDER BY id LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![after.unwrap_or(""), limit as i64], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?;
        let mut out = Vec::with_capacity(limit.min(100_000));
        for row in rows {
            let (id, json) = row?;
            out.push(serde_json::from_str(&json).map_err(|e| corrupt("customer", &id, e))?);
        }
        Ok(out)
    }

    fn customers_since(
        &self,
        seq: Option<i64>,
        batch: usize,
        each: &(dyn Fn(usize, &mut dyn Iterator<Item = CustomerRecord>) + Sync),
    ) -> Result<i64> {
        let batch = batch.max(1);
        let conn = self.reader();
        let since = seq.unwrap_or(-1);
        // In write order, so that the index on `seq` answers "nothing changed" without
        // reading the table.
        let mut stmt = conn.prepare_cached(CUSTOMERS_SINCE)?;
        let mut rows = stmt.query([since])?;
        let mut last = since.max(0);
        let first = Chunk::read(Chunk::default(), &mut rows, batch, &mut last)?;
        if first.ends.len() < batch {
            first.parse(0, each)?;
            return Ok(last);
        }
        // Many customers (a first load): this thread, which holds the connection, reads
        // while one thread per core parses and hands records to `each`; parsing is most
        // of the work, and a run can do nothing until the load is done. Rows cross
        // in chunks with one buffer for all their text, so what one thread allocates and
        // another frees is a few buffers per chunk, not every field of every record.
        let parsers = std::thread::available_parallelism().map_or(2, usize::from);
        let (send, receive) = std::sync::mpsc::sync_channel::<(usize, Chunk)>(parsers);
        let receive = Mutex::new(receive);
        // The earliest chunk that held a record that does not parse, and why: the
        // error a reader that parsed in order would have met first.
        let broken: Mutex<Option<(usize, StoreError)>> = Mutex::new(None);
        let failed = std::sync::atomic::AtomicBool::new(false);
        // Parsed chunks go back to the reader to be filled again: a chunk's text is
        // megabytes, and a new one each time is memory the system must hand over and
        // zero afresh (the first load of a million customers read 700 MB that way).
        let (done, to_refill) = std::sync::mpsc::channel::<Chunk>();
        let parse = || loop {
            let next = receive
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .recv();
            let Ok((number, chunk)) = next else { return };
            if let Err(e) = chunk.parse(number, each) {
                failed.store(true, std::sync::atomic::Ordering::Relaxed);
                let mut broken = broken.lock().unwrap_or_else(PoisonError::into_inner);
                if broken.as_ref().is_none_or(|(at, _)| number < *at) {
                    *broken = Some((number, e));
                }
            }
            // The reader may be done already; the chunk is then simply let go.
            let _ = done.send(chunk);
        };
        let read = std::thread::scope(|scope| {
            for _ in 0..parsers {
                scope.spawn(parse);
            }
            let mut chunk = first;
            let mut number = 0;
            // A record that does not parse fails the load: nothing more to read then.
            while !chunk.ends.is_empty() && !failed.load(std::sync::atomic::Ordering::Relaxed) {
                if send.send((number, chunk)).is_err() {
                    break;
                }
                number += 1;
                let refill = to_refill.try_recv().unwrap_or_default();
                chunk = Chunk::read(refill, &mut rows, batch, &mut last)?;
            }
            drop(send);
            Ok::<_, StoreError>(())
        });
        if let Some((_, e)) = broken.into_inner().unwrap_or_else(PoisonError::into_inner) {
            return Err(e);
        }
        read?;
        Ok(last)
    }

    fn count_customers(&self) -> Result<u64> {
        let n: i64 = self
            .reader()
            .query_row("SELECT count(*) FROM customers", [], |r| r.get(0))?;
        Ok(n as u64)
    }

    fn put_group(&self, group: &Group, now: Timestamp) -> Result<()> {
        let json = serde_json::to_string(group).map_err(|e| corrupt("group", &group.id, e))?;
        self.conn().execute(
            "INSERT INTO groups (id, definition, updated_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (id) DO UPDATE SET definition = excluded.definition,
                updated_at = excluded.updated_at",
            params![group.id, json, now],
        )?;
        Ok(())
    }

    fn group(&self, id: &str) -> Result<Option<Group>> {
        let json: Option<String> = self
            .reader()
            .query_row("SELECT definition FROM groups WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()?;
        json.map(|j| serde_json::from_str(&j).map_err(|e| corrupt("group", id, e)))
            .transpose()
    }

    fn groups(&self) -> Result<Vec<Group>> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT id, definition FROM groups ORDER BY id")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        let mut out = Vec::new();
        for row in rows {
            let (id, json) = row?;
            out.push(serde_json::from_str(&json).map_err(|e| corrupt("group", &id, e))?);
        }
        Ok(out)
    }

    fn groups_stamp(&self) -> Result<i64> {
        Ok(self
            .conn()
            .prepare_cached("SELECT n FROM stamps WHERE name = 'groups'")?
            .query_row([], |r| r.get(0))?)
    }

    fn delete_group(&self, id: &str) -> Result<()> {
        let n = self
            .conn()
            .execute("DELETE FROM groups WHERE id = ?1", [id])?;
        if n == 0 {
            return Err(StoreError::NotFound {
                what: "group",
                id: id.to_string(),
            });
        }
        Ok(())
    }

    fn set_use(&self, group: &str, kind: &str, entity: &str, used: bool) -> Result<()> {
        if used {
            self.conn().execute(
                "INSERT OR IGNORE INTO group_uses (grp, kind, entity) VALUES (?1, ?2, ?3)",
                params![group, kind, entity],
            )?;
        } else {
            self.conn().execute(
                "DELETE FROM group_uses WHERE grp = ?1 AND kind = ?2 AND entity = ?3",
                params![group, kind, entity],
            )?;
        }
        Ok(())
    }

    fn uses(&self, group: &str) -> Result<Vec<(String, String)>> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(
            "SELECT kind, entity FROM group_uses WHERE grp = ?1 ORDER BY kind, entity",
        )?;
        let rows = stmt.query_map([group], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn last_periodic_run(&self, group: &str) -> Result<Option<Timestamp>> {
        Ok(self
            .reader()
            .query_row(
                "SELECT COALESCE(last_periodic_run, updated_at) FROM groups WHERE id = ?1",
                [group],
                |r| r.get(0),
            )
            .optional()?
            .flatten())
    }

    fn group_memberships(&self, group: &str) -> Result<Vec<Membership>> {
        memberships(
            &self.reader(),
            &format!(
                "SELECT {MEMBERSHIP_COLUMNS} FROM memberships WHERE grp = ?1 ORDER BY customer, id"
            ),
            group,
        )
    }

    fn group_holdings(&self, group: &str, each: &mut dyn FnMut(&str, Held)) -> Result<()> {
        let conn = self.reader();
        // In the order of `memberships_by_group`, so that nothing is sorted.
        let mut stmt = conn.prepare_cached(
            "SELECT customer, id, source, start, end FROM memberships
             WHERE grp = ?1 ORDER BY grp, customer, start",
        )?;
        let mut rows = stmt.query([group])?;
        while let Some(r) = rows.next()? {
            let id: i64 = r.get(1)?;
            let text = |i: usize| {
                r.get_ref(i)?
                    .as_str()
                    .map_err(|e| corrupt("membership", &id.to_string(), e))
            };
            let source = text(2)?;
            let source = Source::parse(source).ok_or_else(|| {
                corrupt("membership", &id.to_string(), format!("source `{source}`"))
            })?;
            each(
                text(0)?,
                Held {
                    id,
                    source,
                    start: r.get(3)?,
                    end: r.get(4)?,
                },
            );
        }
        Ok(())
    }

    fn membership_stamp(&self, group: &str) -> Result<i64> {
        Ok(self
            .reader()
            .prepare_cached(&format!(
                "SELECT n FROM stamps WHERE name = {MEMBERSHIP_STAMP}"
            ))?
            .query_row([group], |r| r.get(0))
            .optional()?
            .unwrap_or(0))
    }

    fn customer_memberships(&self, customer: &str) -> Result<Vec<Membership>> {
        memberships(
            &self.reader(),
            &format!(
                "{CUSTOMER_MEMBERSHIPS} SELECT {MEMBERSHIP_COLUMNS} FROM mine ORDER BY grp, id"
            ),
            customer,
        )
    }

    fn customer_memberships_in(&self, customer: &str, groups: &[&str]) -> Result<Vec<Membership>> {
        let groups = serde_json::Value::from(groups).to_string();
        let conn = self.conn();
        let mut stmt =
            conn.prepare_cached(&format!("SELECT {MEMBERSHIP_COLUMNS} {GROUPS_MEMBERSHIPS}"))?;
        with_sources(stmt.query_map(params![customer, groups], membership_row)?)
    }

    fn exclusions(&self, group: &str) -> Result<Vec<String>> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached("SELECT customer FROM exclusions WHERE grp = ?1")?;
        let rows = stmt.query_map([group], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn excluded_from(&self, customer: &str) -> Result<Vec<String>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached("SELECT grp FROM exclusions WHERE customer = ?1")?;
        let rows = stmt.query_map([customer], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn count_active(&self, group: &str, at: Timestamp) -> Result<u64> {
        // The same rule as `cohort_model::state`: an empty window is never active.
        let n: i64 = self.reader().query_row(
            "SELECT count(*) FROM memberships WHERE grp = ?1 AND start <= ?2
               AND (end IS NULL OR (end > ?2 AND end > start))",
            params![group, at],
            |r| r.get(0),
        )?;
        Ok(n as u64)
    }

    fn set_exclusion(
        &self,
        customer: &str,
        group: &str,
        pinned: bool,
        actor: &str,
        reason: &str,
        at: Timestamp,
    ) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let changed = if pinned {
            tx.execute(
                "INSERT OR IGNORE INTO exclusions (customer, grp, actor, reason, at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![customer, group, actor, reason, at],
            )?
        } else {
            tx.execute(
                "DELETE FROM exclusions WHERE customer = ?1 AND grp = ?2",
                params![customer, group],
            )?
        };
        if changed > 0 {
            tx.execute(
                "INSERT INTO audit (at, customer, grp, action, source, actor, trigger, run, reason)
                 VALUES (?1, ?2, ?3, ?4, 'manual', ?5, 'manual', NULL, ?6)",
                params![
                    at,
                    customer,
                    group,
                    if pinned { "excluded" } else { "unexcluded" },
                    actor,
                    reason
                ],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    fn apply(&self, changes: &[Change], cause: &Cause<'_>, at: Timestamp) -> Result<Applied> {
        let mut applied = self.apply_batches(&[(changes, cause.clone())], at)?;
        Ok(applied.remove(0))
    }

    fn apply_batches(
        &self,
        batches: &[(&[Change], Cause<'_>)],
        at: Timestamp,
    ) -> Result<Vec<Applied>> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let counts = apply_all(&tx, batches, at)?;
        tx.commit()?;
        Ok(counts)
    }

    fn start_runs(&self, runs: &[RunRecord]) -> Result<Vec<i64>> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let ids = {
            let mut insert = tx.prepare_cached(
                "INSERT INTO runs (grp, trigger, dry_run, actor, as_of, started_at, status, owner)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'running', ?7) RETURNING id",
            )?;
            let owner = self.owner.as_ref().map(|o| o.token.as_str());
            runs.iter()
                .map(|run| {
                    insert.query_row(
                        params![
                            run.group,
                            run.trigger,
                            run.dry_run,
                            run.actor,
                            run.as_of,
                            run.started_at,
                            owner
                        ],
                        |r| r.get(0),
                    )
                })
                .collect::<rusqlite::Result<Vec<i64>>>()?
        };
        tx.commit()?;
        Ok(ids)
    }

    fn finish_run(
        &self,
        run: &RunRecord,
        changes: &[Change],
        cause: &Cause<'_>,
        at: Timestamp,
    ) -> Result<Applied> {
        let failures = serde_json::to_string(&run.failures)
            .map_err(|e| corrupt("run", &run.id.to_string(), e))?;
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let (applied, counts) = if changes.is_empty() {
            (Applied::default(), (run.added, run.removed))
        } else {
            let applied = apply_all(&tx, &[(changes, cause.clone())], at)?.remove(0);
            let counts = applied.counts();
            (applied, counts)
        };
        tx.execute(
            "UPDATE runs SET finished_at = ?2, status = ?3, customers = ?4, matched = ?5,
                added = ?6, removed = ?7, undecided = ?8, failures = ?9, error = ?10
             WHERE id = ?1",
            params![
                run.id,
                run.finished_at,
                run.status,
                run.customers as i64,
                run.matched as i64,
                counts.0 as i64,
                counts.1 as i64,
                run.undecided as i64,
                failures,
                run.error
            ],
        )?;
        if run.trigger == "periodic" && !run.dry_run {
            tx.execute(
                "UPDATE groups SET last_periodic_run = ?2 WHERE id = ?1",
                params![run.group, run.started_at],
            )?;
        }
        tx.commit()?;
        Ok(applied)
    }

    fn runs(
        &self,
        group: Option<&str>,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<RunRecord>> {
        let conn = self.reader();
        let mut stmt = conn.prepare(
            "SELECT id, grp, trigger, dry_run, actor, as_of, started_at, finished_at, status,
                    customers, matched, added, removed, undecided, failures, error
             FROM runs WHERE (?1 IS NULL OR grp = ?1) AND id < ?3 ORDER BY id DESC LIMIT ?2",
        )?;
        let before = before.unwrap_or(i64::MAX);
        let rows = stmt.query_map(params![group, limit as i64, before], |r| {
            Ok((
                RunRecord {
                    id: r.get(0)?,
                    group: r.get(1)?,
                    trigger: r.get(2)?,
                    dry_run: r.get(3)?,
                    actor: r.get(4)?,
                    as_of: r.get(5)?,
                    started_at: r.get(6)?,
                    finished_at: r.get(7)?,
                    status: r.get(8)?,
                    customers: r.get::<_, i64>(9)? as u64,
                    matched: r.get::<_, i64>(10)? as u64,
                    added: r.get::<_, i64>(11)? as u64,
                    removed: r.get::<_, i64>(12)? as u64,
                    undecided: r.get::<_, i64>(13)? as u64,
                    failures: Vec::new(),
                    error: r.get(15)?,
                },
                r.get::<_, String>(14)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (mut run, failures) = row?;
            run.failures = serde_json::from_str(&failures)
                .map_err(|e| corrupt("run", &run.id.to_string(), e))?;
            out.push(run);
        }
        Ok(out)
    }

    fn history(
        &self,
        customer: Option<&str>,
        group: Option<&str>,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>> {
        let before = before.unwrap_or(i64::MAX);
        let conn = self.reader();
        let Some(customer) = customer else {
            return log_newest_first(&conn, group, before, limit);
        };
        // A customer's entries are those of their memberships and their pins (see
        // migration 7).
        let mut stmt = conn.prepare_cached(&format!(
            "{CUSTOMER_MEMBERSHIPS}, {CUSTOMER_ENTRIES} SELECT {AUDIT_COLUMNS} FROM entries
             WHERE (?2 IS NULL OR grp = ?2) AND id < ?4 ORDER BY id DESC LIMIT ?3"
        ))?;
        let rows = stmt.query_map(params![customer, group, limit as i64, before], |r| {
            Ok(AuditEntry {
                id: r.get(0)?,
                at: r.get(1)?,
                customer: r.get(2)?,
                group: r.get(3)?,
                action: r.get(4)?,
                source: r
                    .get::<_, Option<String>>(5)?
                    .and_then(|s| Source::parse(&s)),
                actor: r.get(6)?,
                trigger: r.get(7)?,
                run: r.get(8)?,
                reason: r.get(9)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn outbox_len(&self) -> Result<u64> {
        // Events are kept after delivery (they are the change feed); what waits is what
        // lies beyond the slowest webhook's position.
        let n: i64 = self.reader().query_row(
            "SELECT coalesce(sum(min(coalesce(count, 1), id - w.position)), 0)
             FROM outbox, (SELECT min(position) AS position FROM webhooks) w
             WHERE id > w.position",
            [],
            |r| r.get(0),
        )?;
        Ok(n as u64)
    }

    fn events_after(&self, after: i64, limit: usize) -> Result<Vec<OutboxEvent>> {
        let conn = self.reader();
        let mut rows = conn.prepare_cached(EVENT_ROWS)?;
        let mut event = conn.prepare_cached(EVENT)?;
        let mut out = Vec::new();
        // The rows and the events read from them are of one read transaction: the first
        // statement stays open until the last event is read.
        let mut held = rows.query(params![after, limit as i64])?;
        while let Some(r) = held.next()? {
            let (row, count, last_entry): (i64, i64, Option<i64>) =
                (r.get(0)?, r.get(1)?, r.get(2)?);
            for id in (row - count + 1).max(after + 1)..=row {
                let entry = last_entry.map(|last| last - (row - id));
                out.push(event.query_row(params![row, entry], |r| event_row(id, r))??);
                if out.len() == limit {
                    return Ok(out);
                }
            }
        }
        Ok(out)
    }

    fn announce(&self, now: Timestamp) -> Result<u64> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let mut events = Vec::new();
        {
            let mut opened = tx.prepare_cached(
                "SELECT id, customer, grp, start, end FROM memberships
                 WHERE announced = 'pending' AND start <= ?1",
            )?;
            let rows = opened.query_map([now], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, Option<i64>>(4)?,
                ))
            })?;
            for row in rows {
                let (id, customer, group, start, end) = row?;
                events.push((
                    id,
                    customer.clone(),
                    group.clone(),
                    Action::Activated,
                    start,
                ));
                if let Some(end) = end.filter(|&e| e <= now) {
                    events.push((id, customer, group, Action::Expired, end));
                }
            }
            let mut closed = tx.prepare_cached(
                "SELECT id, customer, grp, end FROM memberships
                 WHERE announced = 'active' AND end IS NOT NULL AND end <= ?1",
            )?;
            let rows = closed.query_map([now], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, Action::Expired, r.get(3)?))
            })?;
            for row in rows {
                events.push(row?);
            }
        }
        // In time order, so that a customer's events follow one another as they happened.
        events.sort_by_key(|e| (e.4, e.0, e.3));
        {
            let mut mark =
                tx.prepare_cached("UPDATE memberships SET announced = ?2 WHERE id = ?1")?;
            let mut publish = tx.prepare_cached(
                "INSERT INTO outbox (at, kind, customer, grp, membership)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for (id, customer, group, kind, at) in &events {
                publish.execute(params![at, kind.event(), customer, group, id])?;
                let state = if *kind == Action::Activated {
                    "active"
                } else {
                    "expired"
                };
                mark.execute(params![id, state])?;
            }
        }
        tx.commit()?;
        Ok(events.len() as u64)
    }

    fn group_memberships_page(
        &self,
        group: &str,
        listing: Listing,
        at: Timestamp,
        after: i64,
        limit: usize,
    ) -> Result<Vec<Membership>> {
        let filter = match listing {
            Listing::All => "1",
            Listing::Only(State::Pending) => "start > ?3",
            Listing::Only(State::Active) => "start <= ?3 AND (end IS NULL OR end > ?3)",
            Listing::Only(State::Expired) => "end IS NOT NULL AND end <= ?3",
        };
        let sql = format!(
            "SELECT {MEMBERSHIP_COLUMNS} FROM memberships
             WHERE grp = ?1 AND id > ?2 AND ({filter}) ORDER BY id LIMIT ?4"
        );
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(params![group, after, at, limit as i64], membership_row)?;
        with_sources(rows)
    }

    fn create_token(&self, name: &str, role: Role, hash: &str, at: Timestamp) -> Result<i64> {
        let conn = self.conn();
        conn.execute(
            "INSERT INTO tokens (name, role, hash, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![name, role.as_str(), hash, at],
        )?;
        Ok(conn.last_insert_rowid())
    }

    fn tokens(&self) -> Result<Vec<TokenRecord>> {
        let conn = self.reader();
        let mut stmt =
            conn.prepare("SELECT id, name, role, created_at, revoked_at FROM tokens ORDER BY id")?;
        let rows = stmt.query_map([], token_row)?;
        rows.map(|r| with_role(r?)).collect()
    }

    fn revoke_token(&self, name: &str, at: Timestamp) -> Result<bool> {
        let n = self.conn().execute(
            "UPDATE tokens SET revoked_at = ?2 WHERE name = ?1 AND revoked_at IS NULL",
            params![name, at],
        )?;
        Ok(n > 0)
    }

    fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRecord>> {
        let conn = self.reader();
        let row = conn
            .prepare_cached(
                "SELECT id, name, role, created_at, revoked_at FROM tokens
                 WHERE hash = ?1 AND revoked_at IS NULL",
            )?
            .query_row([hash], token_row)
            .optional()?;
        row.map(with_role).transpose()
    }

    fn add_webhook(&self, url: &str, secret: &str, at: Timestamp) -> Result<Webhook> {
        let conn = self.conn();
        conn.execute(
            "INSERT INTO webhooks (url, secret, created_at, position)
             VALUES (?1, ?2, ?3, (SELECT coalesce(max(id), 0) FROM outbox))",
            params![url, secret, at],
        )?;
        let id = conn.last_insert_rowid();
        Ok(conn.query_row(
            &format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE id = ?1"),
            [id],
            webhook_row,
        )?)
    }

    fn webhooks(&self) -> Result<Vec<Webhook>> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {WEBHOOK_COLUMNS} FROM webhooks ORDER BY id"
        ))?;
        let rows = stmt.query_map([], webhook_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn remove_webhook(&self, id: i64) -> Result<bool> {
        Ok(self
            .conn()
            .execute("DELETE FROM webhooks WHERE id = ?1", [id])?
            > 0)
    }

    fn webhook_delivered(&self, id: i64, position: i64, at: Timestamp) -> Result<()> {
        self.conn().execute(
            "UPDATE webhooks SET position = max(position, ?2), attempts = 0, last_error = NULL,
                last_delivered_at = ?3 WHERE id = ?1",
            params![id, position, at],
        )?;
        Ok(())
    }

    fn webhook_failed(&self, id: i64, error: &str) -> Result<()> {
        self.conn().execute(
            "UPDATE webhooks SET attempts = attempts + 1, last_error = ?2 WHERE id = ?1",
            params![id, error],
        )?;
        Ok(())
    }

    fn recall(&self, token: i64, key: &str, since: Timestamp) -> Result<Option<Remembered>> {
        let conn = self.reader();
        Ok(conn
            .prepare_cached(
                "SELECT request, status, body FROM idempotency
                 WHERE token = ?1 AND key = ?2 AND at >= ?3",
            )?
            .query_row(params![token.to_string(), key, since], |r| {
                Ok(Remembered {
                    request: r.get(0)?,
                    status: r.get(1)?,
                    body: r.get(2)?,
                })
            })
            .optional()?)
    }

    fn remember(&self, token: i64, key: &str, response: &Remembered, at: Timestamp) -> Result<()> {
        // An expired key of the same name is replaced; a live one stays as it was.
        self.conn().execute(
            "INSERT INTO idempotency (token, key, request, status, body, at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (token, key) DO UPDATE SET request = excluded.request,
                 status = excluded.status, body = excluded.body, at = excluded.at
             WHERE at < excluded.at - ?7",
            params![
                token.to_string(),
                key,
                response.request,
                response.status,
                response.body,
                at,
                IDEMPOTENCY_KEY_LIFETIME
            ],
        )?;
        Ok(())
    }

    fn forget_responses(&self, before: Timestamp) -> Result<usize> {
        Ok(self
            .conn()
            .execute("DELETE FROM idempotency WHERE at < ?1", [before])?)
    }

    fn begin_import(&self, r: &ImportRecord) -> Result<i64> {
        let conn = self.conn();
        conn.execute(
            "INSERT INTO imports (actor, file_name, sha256, started_at, status, dry_run, partial)
             VALUES (?1, ?2, ?3, ?4, 'validating', ?5, ?6)",
            params![
                r.actor,
                r.file_name,
                r.sha256,
                r.started_at,
                r.dry_run,
                r.partial
            ],
        )?;
        Ok(conn.last_insert_rowid())
    }

    fn stage_import(&self, import: i64, rows: &[StagedRow]) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO import_rows (import, line, customer, grp, start, end)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for r in rows {
                insert.execute(params![
                    import,
                    r.line as i64,
                    r.customer,
                    r.group,
                    r.start,
                    r.end
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn add_import_problems(&self, import: i64, problems: &[ImportProblem]) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO import_errors (import, line, col, message) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for p in problems {
                insert.execute(params![import, p.line as i64, p.column, p.message])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn check_import(&self, import: i64) -> Result<u64> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let unknown = tx.execute(
            "INSERT INTO import_errors (import, line, col, message)
             SELECT r.import, r.line, 'customer', 'unknown customer `' || r.customer || '`'
             FROM import_rows r WHERE r.import = ?1
               AND NOT EXISTS (SELECT 1 FROM customers c WHERE c.id = r.customer)",
            [import],
        )?;
        // Each pair is reported on its later line, naming the earlier one.
        let clashes = tx.execute(
            "INSERT INTO import_errors (import, line, col, message)
             SELECT b.import, b.line, NULL,
                    CASE WHEN a.start = b.start AND a.end IS b.end
                         THEN 'duplicates line ' || a.line || ' (`' || b.customer || '` in `' || b.grp || '`)'
                         ELSE 'overlaps line ' || a.line || ': both put `' || b.customer || '` in `' || b.grp || '` at the same time'
                    END
             FROM import_rows a JOIN import_rows b
               ON a.import = b.import AND a.customer = b.customer AND a.grp = b.grp
              AND a.line < b.line
              AND a.start < COALESCE(b.end, 9223372036854775807)
              AND b.start < COALESCE(a.end, 9223372036854775807)
             WHERE a.import = ?1",
            [import],
        )?;
        tx.commit()?;
        Ok((unknown + clashes) as u64)
    }

    fn apply_import(
        &self,
        import: i64,
        cause: &Cause<'_>,
        dry_run: bool,
        at: Timestamp,
    ) -> Result<(u64, u64, u64)> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let (mut added, mut updated, mut unchanged) = (0, 0, 0);
        {
            let mut rows = tx.prepare(
                "SELECT line, customer, grp, start, end FROM import_rows
                 WHERE import = ?1
                   AND line NOT IN (SELECT line FROM import_errors WHERE import = ?1)
                 ORDER BY line",
            )?;
            let mut existing = tx.prepare_cached(
                "SELECT id, end FROM memberships
                 WHERE customer = ?1 AND grp = ?2 AND start = ?3 AND source = 'import'",
            )?;
            let mut set_end =
                tx.prepare_cached("UPDATE memberships SET end = ?2, announced = ?3 WHERE id = ?1")?;
            let mut journal = Journal::open(&tx, at, cause)?;
            let mut touched = std::collections::BTreeSet::new();
            let reason = format!("import #{import}");
            let mut cursor = rows.query([import])?;
            while let Some(row) = cursor.next()? {
                let line: i64 = row.get(0)?;
                let customer: String = row.get(1)?;
                let group: String = row.get(2)?;
                let start: i64 = row.get(3)?;
                let end: Option<i64> = row.get(4)?;
                let found: Option<(i64, Option<i64>)> = existing
                    .query_row(params![customer, group, start], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })
                    .optional()?;
                let (kind, membership) = match found {
                    Some((_, old_end)) if old_end == end => {
                        unchanged += 1;
                        continue;
                    }
                    Some((id, _)) => {
                        updated += 1;
                        if dry_run {
                            continue;
                        }
                        set_end.execute(params![id, end, announced(start, end, at)])?;
                        (Action::Updated, id)
                    }
                    None => {
                        added += 1;
                        if dry_run {
                            continue;
                        }
                        // A file's keys are distinct (a repeated one is an error of
                        // its line), so no later lookup looks for a queued row.
                        let id = journal.add(NewMembership {
                            customer: customer.clone().into(),
                            group: group.clone().into(),
                            source: Source::Import,
                            reason: reason.clone().into(),
                            start,
                            end,
                            announced: announced(start, end, at),
                        });
                        (Action::Added, id)
                    }
                };
                touched.insert(group.clone());
                journal.record(Event {
                    kind,
                    customer: customer.into(),
                    group: group.into(),
                    membership,
                    source: Some(Source::Import),
                    reason: format!("{reason}, line {line}").into(),
                });
                journal.spill(&tx)?;
            }
            journal.finish(&tx)?;
            let touched: Vec<&str> = touched.iter().map(String::as_str).collect();
            bump_membership_stamps(&tx, &touched)?;
        }
        if dry_run {
            // Nothing was written; the transaction only gave the reads one snapshot.
            tx.rollback()?;
        } else {
            tx.commit()?;
        }
        Ok((added, updated, unchanged))
    }

    fn finish_import(&self, r: &ImportRecord) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute(
            "UPDATE imports SET finished_at = ?2, status = ?3, rows = ?4, added = ?5,
                updated = ?6, unchanged = ?7, rejected = ?8 WHERE id = ?1",
            params![
                r.id,
                r.finished_at,
                r.status,
                r.rows as i64,
                r.added as i64,
                r.updated as i64,
                r.unchanged as i64,
                r.rejected as i64
            ],
        )?;
        tx.execute("DELETE FROM import_rows WHERE import = ?1", [r.id])?;
        tx.commit()?;
        Ok(())
    }

    fn imports(&self, before: Option<i64>, limit: usize) -> Result<Vec<ImportRecord>> {
        let conn = self.reader();
        let mut stmt = conn.prepare(
            "SELECT id, actor, file_name, sha256, started_at, finished_at, status, dry_run,
                    partial, rows, added, updated, unchanged, rejected
             FROM imports WHERE id < ?2 ORDER BY id DESC LIMIT ?1",
        )?;
        let rows = stmt.query_map(params![limit as i64, before.unwrap_or(i64::MAX)], |r| {
            Ok(ImportRecord {
                id: r.get(0)?,
                actor: r.get(1)?,
                file_name: r.get(2)?,
                sha256: r.get(3)?,
                started_at: r.get(4)?,
                finished_at: r.get(5)?,
                status: r.get(6)?,
                dry_run: r.get(7)?,
                partial: r.get(8)?,
                rows: r.get::<_, i64>(9)? as u64,
                added: r.get::<_, i64>(10)? as u64,
                updated: r.get::<_, i64>(11)? as u64,
                unchanged: r.get::<_, i64>(12)? as u64,
                rejected: r.get::<_, i64>(13)? as u64,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn import_problems(&self, import: i64, limit: usize) -> Result<(Vec<ImportProblem>, u64)> {
        let conn = self.reader();
        let lines: i64 = conn.query_row(
            "SELECT count(DISTINCT line) FROM import_errors WHERE import = ?1",
            [import],
            |r| r.get(0),
        )?;
        let mut stmt = conn.prepare(
            "SELECT line, col, message FROM import_errors WHERE import = ?1
             ORDER BY line, rowid LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![import, limit as i64], |r| {
            Ok(ImportProblem {
                line: r.get::<_, i64>(0)? as u64,
                column: r.get(1)?,
                message: r.get(2)?,
            })
        })?;
        Ok((rows.collect::<rusqlite::Result<_>>()?, lines as u64))
    }

    fn import_problems_page(
        &self,
        import: i64,
        after: Option<(u64, i64)>,
        limit: usize,
    ) -> Result<Vec<((u64, i64), ImportProblem)>> {
        let (line, seq) = after.map_or((-1, -1), |(l, s)| (l as i64, s));
        let conn = self.reader();
        let mut stmt = conn.prepare(
            "SELECT line, rowid, col, message FROM import_errors
             WHERE import = ?1 AND (line, rowid) > (?2, ?3)
             ORDER BY line, rowid LIMIT ?4",
        )?;
        let rows = stmt.query_map(params![import, line, seq, limit as i64], |r| {
            let line = r.get::<_, i64>(0)? as u64;
            Ok((
                (line, r.get(1)?),
                ImportProblem {
                    line,
                    column: r.get(2)?,
                    message: r.get(3)?,
                },
            ))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn add(customer: &str, group: &str) -> Change {
        Change::Add {
            customer: customer.into(),
            group: group.into(),
            source: Source::Rule,
            reason: "the rule matches".into(),
            start: 10,
            end: None,
        }
    }

    const CAUSE: Cause<'static> = Cause {
        trigger: "manual",
        actor: "rule:g",
        run: Some(1),
    };

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

    /// The journal's inserts keep no statement journal (`OR FAIL`): a row refused in the
    /// middle of a statement leaves the rows before it, and only the transaction's
    /// rollback takes them away. A trigger refuses one customer of a run's additions.
    #[test]
    fn a_write_refused_midway_leaves_nothing_of_itself() {
        let store = SqliteStore::in_memory().expect("store");
        store
            .apply(&[add("c-first", "g")], &CAUSE, 5)
            .expect("first apply");
        let counts = || -> [i64; 3] {
            ["memberships", "audit", "outbox"].map(|table| {
                store
                    .conn()
                    .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
                    .expect("count")
            })
        };
        let before = counts();
        store
            .conn()
            .execute_batch(
                "CREATE TRIGGER refuse BEFORE INSERT ON memberships WHEN NEW.customer = 'c40'
                 BEGIN SELECT RAISE(FAIL, 'refused'); END;",
            )
            .expect("trigger");
        let adds: Vec<Change> = (0..64).map(|i| add(&format!("c{i}"), "g")).collect();
        let refused = store.apply(&adds, &CAUSE, 10);
        assert!(refused.is_err(), "{refused:?}");
        assert_eq!(counts(), before);
        assert_eq!(store.membership_stamp("g").expect("stamp"), 1);
    }

    #[test]
    fn apply_writes_memberships_audit_and_outbox_together() {
        let store = SqliteStore::in_memory().expect("store");
        assert_eq!(store.membership_stamp("g").expect("stamp"), 0);
        let applied = store
            .apply(&[add("c1", "g"), add("c2", "g")], &CAUSE, 10)
            .expect("apply");
        let ms = store.group_memberships("g").expect("memberships");
        assert_eq!(
            applied,
            Applied {
                added: 2,
                removed: 0,
                ids: ms.iter().map(|m| m.id).collect(),
                stamps: vec![("g".into(), 1)],
            }
        );
        assert_eq!(store.membership_stamp("g").expect("stamp"), 1);
        let mut held = Vec::new();
        store
            .group_holdings("g", &mut |c, h| held.push((c.to_string(), h)))
            .expect("holdings");
        let expected: Vec<_> = ms.iter().map(|m| (m.customer.clone(), m.held())).collect();
        assert_eq!(held, expected);
        let end = Change::End {
            membership: ms[0].id,
            customer: "c1".into(),
            group: "g".into(),
            at: 20,
            reason: "the rule no longer matches".into(),
        };
        assert_eq!(
            store
                .apply(std::slice::from_ref(&end), &CAUSE, 20)
                .expect("apply")
                .counts(),
            (0, 1)
        );
        assert_eq!(store.membership_stamp("g").expect("stamp"), 2);
        assert_eq!(
            store.apply(&[end], &CAUSE, 21).expect("apply").counts(),
            (0, 0),
            "ending twice is a no-op"
        );
        assert_eq!(store.membership_stamp("other").expect("stamp"), 0);
        let history = store.history(Some("c1"), None, None, 10).expect("history");
        assert_eq!(history.len(), 2);
        assert_eq!(history[0].action, "removed");
        assert_eq!(history[1].action, "added");
        assert_eq!(history[1].run, Some(1));
        let events = store.events_after(0, 10).expect("events");
        let kinds: Vec<_> = events.iter().map(|e| (e.event.as_str(), e.id)).collect();
        assert_eq!(
            kinds,
            [
                ("membership.added", 1),
                ("membership.added", 2),
                ("membership.removed", 3)
            ]
        );
        assert_eq!(events[2].customer, "c1");
        assert_eq!(events[2].actor, "rule:g");
        assert_eq!(events[2].reason, "the rule no longer matches");
        assert_eq!(events[0].trigger, CAUSE.trigger);
        assert_eq!(store.events_after(2, 10).expect("events").len(), 1);
        let c1 = store.customer_memberships("c1").expect("memberships");
        assert_eq!(c1[0].end, Some(20), "the row stays as history");
    }

    #[test]
    fn a_registration_stores_the_customer_and_its_memberships_once() {
        let store = SqliteStore::in_memory().expect("store");
        let record = CustomerRecord {
            id: "c1".into(),
            ..CustomerRecord::default()
        };
        let changes = [add("c1", "g"), add("c1", "h")];
        let batches = [(&changes[..], CAUSE)];
        let applied = store.register(&record, 10, &batches).expect("register");
        assert_eq!(applied.map(|a| a[0].counts()), Some((2, 0)));
        assert!(store.customer_exists("c1").expect("exists"));
        // Registered meanwhile by another writer: an update, and no second memberships.
        assert_eq!(store.register(&record, 11, &batches).expect("again"), None);
        assert_eq!(store.customer_memberships("c1").expect("m").len(), 2);
        assert_eq!(store.events_after(0, 10).expect("events").len(), 2);
    }

    #[test]
    fn a_batch_longer_than_a_statement_keeps_its_order_and_references() {
        let store = SqliteStore::in_memory().expect("store");
        store.apply(&[add("first", "g")], &CAUSE, 5).expect("apply");
        let first = store.customer_memberships("first").expect("m")[0].id;
        // Enough rows for whole multi-row statements and a remainder, with ends in the
        // middle: one of a membership stored before, one of a membership this batch
        // queued (`a00`, numbered right after `first`), which must be written first.
        let mut changes: Vec<Change> = (0..40).map(|i| add(&format!("a{i:02}"), "g")).collect();
        for (membership, customer) in [(first, "first"), (first + 1, "a00")] {
            changes.push(Change::End {
                membership,
                customer: customer.into(),
                group: "g".into(),
                at: 10,
                reason: "gone".into(),
            });
        }
        changes.extend((0..40).map(|i| add(&format!("b{i:02}"), "g")));
        let applied = store.apply(&changes, &CAUSE, 10).expect("apply");
        assert_eq!(applied.counts(), (80, 2));
        assert_eq!(applied.ids[0], first + 1);
        let a00 = store.customer_memberships("a00").expect("m");
        assert_eq!(a00[0].end, Some(10), "the queued membership was ended");

        let events = store.events_after(1, 100).expect("events");
        assert_eq!(events.len(), 82);
        let members = store.group_memberships("g").expect("memberships");
        for (change, event) in changes.iter().zip(&events) {
            let (kind, customer) = match change {
                Change::Add { customer, .. } => ("membership.added", &**customer),
                Change::End { customer, .. } => ("membership.removed", &**customer),
            };
            assert_eq!(
                (event.event.as_str(), event.customer.as_str()),
                (kind, customer)
            );
            let m = members
                .iter()
                .find(|m| m.id == event.membership)
                .expect("the event's membership exists");
            assert_eq!(
                m.customer, customer,
                "event {} names its membership",
                event.id
            );
        }
        let history = store.history(Some("b39"), None, None, 10).expect("history");
        assert_eq!(history.len(), 1);
        assert_eq!(
            (history[0].action.as_str(), history[0].run),
            ("added", Some(1))
        );
    }

    #[test]
    fn a_customer_is_found_without_an_index_led_by_customers() {
        let store = SqliteStore::in_memory().expect("store");
        for g in ["a", "b", "c"] {
            store
                .apply(&[add("c1", g), add("c2", g)], &CAUSE, 10)
                .expect("apply");
        }
        store
            .set_exclusion("c1", "d", true, "ops", "asked", 11)
            .expect("pin");
        let mine: Vec<String> = store
            .customer_memberships("c1")
            .expect("memberships")
            .into_iter()
            .map(|m| format!("{}:{}", m.customer, m.group))
            .collect();
        assert_eq!(mine, ["c1:a", "c1:b", "c1:c"]);
        let some: Vec<String> = store
            .customer_memberships_in("c1", &["c", "a", "gone"])
            .expect("memberships")
            .into_iter()
            .map(|m| format!("{}:{}", m.customer, m.group))
            .collect();
        assert_eq!(some, ["c1:a", "c1:c"]);
        let history: Vec<(String, String)> = store
            .history(Some("c1"), None, None, 10)
            .expect("history")
            .into_iter()
            .map(|e| (e.group, e.action))
            .collect();
        let expected = [
            ("d", "excluded"),
            ("c", "added"),
            ("b", "added"),
            ("a", "added"),
        ];
        assert_eq!(
            history,
            expected.map(|(g, a)| (g.to_string(), a.to_string()))
        );
        let b = store.history(Some("c1"), Some("b"), None, 10).expect("h");
        assert_eq!(b.len(), 1);

        // Each lookup seeks; none reads a whole table.
        let conn = store.conn();
        for sql in [
            format!("{CUSTOMER_MEMBERSHIPS} SELECT {MEMBERSHIP_COLUMNS} FROM mine"),
            format!("{CUSTOMER_MEMBERSHIPS}, {CUSTOMER_ENTRIES} SELECT * FROM entries"),
            // The rows of the events after one, and an event's entry and membership,
            // by their ids.
            EVENT_ROWS.replace("?2", "5"),
            EVENT.replace("?2", "5"),
        ] {
            let mut stmt = conn
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .expect("plan");
            let plan: Vec<String> = stmt
                .query_map(["c1"], |r| r.get(3))
                .expect("plan")
                .collect::<rusqlite::Result<_>>()
                .expect("plan");
            for step in &plan {
                assert!(
                    ![
                        "SCAN memberships",
                        "SCAN audit",
                        "SCAN a",
                        "SCAN m",
                        "SCAN outbox",
                        "SCAN o",
                    ]
                    .iter()
                    .any(|scan| step == scan || step.starts_with(&format!("{scan} "))),
                    "{step} in {plan:?}"
                );
            }
        }
        // Given the groups, one seek per group and nothing else in memberships.
        let plan: Vec<String> = conn
            .prepare(&format!(
                "EXPLAIN QUERY PLAN SELECT {MEMBERSHIP_COLUMNS} {GROUPS_MEMBERSHIPS}"
            ))
            .expect("plan")
            .query_map(["c1", r#"["a","c"]"#], |r| r.get(3))
            .expect("plan")
            .collect::<rusqlite::Result<_>>()
            .expect("plan");
        let on_memberships: Vec<&String> =
            plan.iter().filter(|s| s.contains("memberships")).collect();
        assert_eq!(
            on_memberships,
            ["SEARCH memberships USING INDEX memberships_by_group (grp=? AND customer=?)"],
            "{plan:?}"
        );
    }

    /// A batch mixing long stretches of alike memberships (written with their shared
    /// values bound once, their entries read back from them) with memberships unlike
    /// their neighbours and a removal between: every row is as written one by one.
    #[test]
    fn a_mixed_batch_writes_every_membership_entry_and_event_as_told() {
        let store = SqliteStore::in_memory().expect("store");
        let first = store
            .apply(&[add("old", "b")], &CAUSE, 5)
            .expect("apply")
            .ids[0];
        // Stretches of 32 alike (as `add` makes them), each ended by one that differs
        // from them in one thing.
        let to_a = |i: usize, source, reason: &'static str, start, end| Change::Add {
            customer: format!("a{i}").into(),
            group: "a".into(),
            source,
            reason: reason.into(),
            start,
            end,
        };
        let mut changes = Vec::new();
        for (k, odd) in [
            to_a(1000, Source::Rule, "another reason", 10, None),
            to_a(1001, Source::Rule, "the rule matches", 9, None),
            to_a(1002, Source::Rule, "the rule matches", 10, Some(50)),
            to_a(1003, Source::Manual, "the rule matches", 10, None),
        ]
        .into_iter()
        .enumerate()
        {
            changes.extend((0..32).map(|i| add(&format!("a{k}-{i}"), "a")));
            changes.push(odd);
        }
        for (i, group) in ["x", "y", "x"].iter().enumerate() {
            changes.push(Change::Add {
                customer: format!("m{i}").into(),
                group: (*group).into(),
                source: Source::Manual,
                reason: format!("reason {i}").into(),
                start: 10 + i as Timestamp,
                end: Some(100),
            });
        }
        changes.push(Change::End {
            membership: first,
            customer: "old".into(),
            group: "b".into(),
            at: 10,
            reason: "the rule no longer matches".into(),
        });
        changes.extend((0..35).map(|i| add(&format!("b{i}"), "b")));
        store.apply(&changes, &CAUSE, 10).expect("apply");

        let mut expected = Vec::new();
        for c in &changes {
            match c {
                Change::Add {
                    customer,
                    group,
                    source,
                    reason,
                    start,
                    end,
                } => expected.push((
                    "membership.added".to_string(),
                    customer.to_string(),
                    group.to_string(),
                    source.as_str().to_string(),
                    reason.to_string(),
                    *start,
                    *end,
                )),
                Change::End {
                    customer,
                    group,
                    reason,
                    ..
                } => expected.push((
                    "membership.removed".to_string(),
                    customer.to_string(),
                    group.to_string(),
                    "rule".to_string(),
                    reason.to_string(),
                    10,
                    Some(10),
                )),
            }
        }
        let events = store.events_after(1, 1000).expect("events");
        let mut found = Vec::new();
        for e in &events {
            let m = store
                .customer_memberships(&e.customer)
                .expect("memberships")
                .into_iter()
                .find(|m| m.id == e.membership)
                .expect("the event's membership");
            assert_eq!((&m.customer, &m.group), (&e.customer, &e.group));
            let reason = if e.event == "membership.added" {
                assert_eq!(
                    m.reason, e.reason,
                    "an addition's reason is its membership's"
                );
                m.reason.clone()
            } else {
                e.reason.clone()
            };
            assert_eq!(
                (e.at, e.actor.as_str(), e.trigger.as_str()),
                (10, "rule:g", "manual")
            );
            found.push((
                e.event.clone(),
                m.customer,
                m.group,
                m.source.as_str().to_string(),
                reason,
                m.start,
                m.end,
            ));
        }
        assert_eq!(found, expected);
        let ids: Vec<i64> = events.iter().map(|e| e.id).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
        let history = store.history(Some("m1"), None, None, 10).expect("history");
        assert_eq!(history.len(), 1);
        assert_eq!(
            (
                history[0].action.as_str(),
                history[0].run,
                history[0].reason.as_str()
            ),
            ("added", Some(1), "reason 1")
        );
    }

    /// A registration's groups share one journal: each change is still written under
    /// its own group's cause, and every one of them has its event, in order.
    #[test]
    fn batches_for_several_causes_keep_each_cause_and_every_event() {
        let store = SqliteStore::in_memory().expect("store");
        let causes = ["rule:a", "rule:b", "rule:c"].map(|actor| Cause {
            trigger: "on-registration",
            actor,
            run: None,
        });
        let changes = [
            vec![add("c1", "a")],
            vec![add("c1", "b"), add("c2", "b")],
            vec![add("c1", "c")],
        ];
        let batches: Vec<(&[Change], Cause<'_>)> = changes
            .iter()
            .map(Vec::as_slice)
            .zip(causes.iter().cloned())
            .collect();
        let applied = store.apply_batches(&batches, 10).expect("apply");
        assert_eq!(
            applied.iter().map(Applied::counts).collect::<Vec<_>>(),
            [(1, 0), (2, 0), (1, 0)]
        );
        let events: Vec<(String, String, String)> = store
            .events_after(0, 10)
            .expect("events")
            .into_iter()
            .map(|e| (e.customer, e.group, e.actor))
            .collect();
        let expected = [
            ("c1", "a", "rule:a"),
            ("c1", "b", "rule:b"),
            ("c2", "b", "rule:b"),
            ("c1", "c", "rule:c"),
        ]
        .map(|(c, g, a)| (c.to_string(), g.to_string(), a.to_string()));
        assert_eq!(events, expected);
        let actors: Vec<String> = store
            .customer_memberships("c1")
            .expect("memberships")
            .into_iter()
            .map(|m| m.actor)
            .collect();
        assert_eq!(actors, ["rule:a", "rule:b", "rule:c"]);
    }

    #[test]
    fn a_groups_history_is_its_entries_newest_first_page_by_page() {
        let store = SqliteStore::in_memory().expect("store");
        for (at, group) in [(10, "a"), (11, "b"), (12, "a"), (13, "b"), (14, "a")] {
            store
                .apply(&[add(&format!("c{at}"), group)], &CAUSE, at)
                .expect("apply");
        }
        let page = |before: Option<i64>| -> Vec<(String, String, Timestamp)> {
            store
                .history(None, Some("a"), before, 2)
                .expect("history")
                .into_iter()
                .map(|e| (e.customer, e.group, e.at))
                .collect()
        };
        let entry = |c: &str, at| (c.to_string(), "a".to_string(), at);
        assert_eq!(page(None), [entry("c14", 14), entry("c12", 12)]);
        let last = store.history(None, Some("a"), None, 2).expect("history")[1].id;
        assert_eq!(page(Some(last)), [entry("c10", 10)]);
    }

    /// Additions written together are one audit row (migration 12); every reader
    /// unfolds it into the entries it stands for, one per membership.
    #[test]
    fn a_stretch_of_additions_reads_entry_by_entry() {
        let store = SqliteStore::in_memory().expect("store");
        store.apply(&[add("c0", "a")], &CAUSE, 5).expect("apply");
        let batch: Vec<Change> = [("c1", "a"), ("c2", "b"), ("c3", "a"), ("c4", "a")]
            .iter()
            .map(|(c, g)| add(c, g))
            .collect();
        store.apply(&batch, &CAUSE, 10).expect("apply");
        let rows: i64 = store
            .conn()
            .query_row("SELECT count(*) FROM audit", [], |r| r.get(0))
            .expect("count");
        assert_eq!(rows, 2, "one row per apply");
        let page = |group: Option<&str>, before: Option<i64>, limit| -> Vec<(i64, String)> {
            store
                .history(None, group, before, limit)
                .expect("history")
                .into_iter()
                .map(|e| (e.id, format!("{}:{}@{}", e.customer, e.group, e.at)))
                .collect()
        };
        let entry = |id, what: &str| (id, what.to_string());
        assert_eq!(
            page(None, None, 10),
            [
                entry(5, "c4:a@10"),
                entry(4, "c3:a@10"),
                entry(3, "c2:b@10"),
                entry(2, "c1:a@10"),
                entry(1, "c0:a@5"),
            ]
        );
        // Pages start inside the row and end inside it.
        assert_eq!(
            page(Some("a"), Some(5), 2),
            [entry(4, "c3:a@10"), entry(2, "c1:a@10")]
        );
        assert_eq!(page(Some("a"), Some(2), 2), [entry(1, "c0:a@5")]);
        assert_eq!(page(Some("b"), None, 10), [entry(3, "c2:b@10")]);
        let c3 = store.history(Some("c3"), None, None, 10).expect("history");
        assert_eq!(
            c3.iter()
                .map(|e| (e.id, e.action.as_str(), e.actor.as_str(), e.run))
                .collect::<Vec<_>>(),
            [(4, "added", "rule:g", Some(1))]
        );
        let events: Vec<(i64, String)> = store
            .events_after(1, 10)
            .expect("events")
            .into_iter()
            .map(|e| {
                (
                    e.id,
                    format!("{}:{}@{} {}", e.customer, e.group, e.at, e.membership),
                )
            })
            .collect();
        assert_eq!(
            events,
            [
                (2, "c1:a@10 2".to_string()),
                (3, "c2:b@10 3".to_string()),
                (4, "c3:a@10 4".to_string()),
                (5, "c4:a@10 5".to_string()),
            ]
        );
        let outbox: i64 = store
            .conn()
            .query_row("SELECT count(*) FROM outbox", [], |r| r.get(0))
            .expect("count");
        assert_eq!(outbox, 2, "one row of events per apply");
        // A page of the feed that starts and ends inside a row of events, then one that
        // goes on past it to events of the clock.
        let page = |after, limit| -> Vec<(i64, String)> {
            store
                .events_after(after, limit)
                .expect("events")
                .into_iter()
                .map(|e| (e.id, format!("{} {}", e.event, e.customer)))
                .collect()
        };
        let event = |id, what: &str| (id, what.to_string());
        assert_eq!(
            page(2, 2),
            [
                event(3, "membership.added c2"),
                event(4, "membership.added c3")
            ]
        );
        store
            .apply(&[window("c9", 20, None)], &CAUSE, 10)
            .expect("apply");
        store.announce(20).expect("announce");
        assert_eq!(
            page(4, 10),
            [
                event(5, "membership.added c4"),
                event(6, "membership.added c9"),
                // c0 was added at 5 to start at 10.
                event(7, "membership.activated c0"),
                event(8, "membership.activated c9"),
            ]
        );
    }

    fn window(customer: &str, start: Timestamp, end: Option<Timestamp>) -> Change {
        Change::Add {
            customer: customer.into(),
            group: "g".into(),
            source: Source::Import,
            reason: "imported".into(),
            start,
            end,
        }
    }

    fn events(store: &SqliteStore, after: i64) -> Vec<(String, String, Timestamp)> {
        store
            .events_after(after, 100)
            .expect("events")
            .into_iter()
            .map(|e| (e.customer, e.event, e.at))
            .collect()
    }

    #[test]
    fn events_written_with_a_json_payload_before_version_6_read_as_they_were() {
        let store = SqliteStore::in_memory().expect("store");
        store.apply(&[add("c1", "g")], &CAUSE, 10).expect("apply");
        let old = OutboxEvent {
            id: 0,
            event: "membership.removed".into(),
            at: 5,
            customer: "c0".into(),
            group: "g".into(),
            membership: 9,
            trigger: "manual".into(),
            actor: "ops".into(),
            reason: "by hand".into(),
        };
        store
            .conn()
            .execute(
                "INSERT INTO outbox (at, kind, customer, grp, membership, payload)
                 VALUES (5, 'membership.removed', 'c0', 'g', 9, ?1)",
                [serde_json::to_string(&old).expect("json")],
            )
            .expect("an old row");
        let events = store.events_after(0, 10).expect("events");
        assert_eq!(events.len(), 2);
        assert_eq!((events[0].actor.as_str(), events[0].id), ("rule:g", 1));
        assert_eq!(events[1], OutboxEvent { id: 2, ..old });
    }

    #[test]
    fn plugins_are_listed_without_their_bytes_and_replaced_by_id_and_version() {
        let store = SqliteStore::in_memory().expect("store");
        let plugin = |sha256: &str| StoredPlugin {
            id: "country".into(),
            version: "1.0.0".into(),
            sha256: sha256.into(),
            data_dir: None,
            added_at: 1,
        };
        store.put_plugin(&plugin("aa"), b"first").expect("put");
        store.put_plugin(&plugin("bb"), b"second").expect("replace");
        let listed = store.plugins().expect("list");
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].sha256, "bb");
        assert_eq!(
            store.plugin_wasm("country", "1.0.0").expect("read"),
            Some(b"second".to_vec())
        );
        assert_eq!(store.plugin_wasm("country", "2.0.0").expect("read"), None);
    }

    /// A store at `path` as version `version` of the schema left it.
    fn store_at_version(path: &Path, version: usize) -> Connection {
        let conn = Connection::open(path).expect("open");
        for migration in &MIGRATIONS[..version] {
            conn.execute_batch(migration).expect("migrate");
        }
        conn.pragma_update(None, "user_version", version as i64)
            .expect("version");
        conn
    }

    #[test]
    fn events_written_before_version_8_read_the_same_after_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("cohort.db");
        {
            let conn = store_at_version(&path, 7);
            // A removal as version 7 wrote it (the event repeating its audit entry),
            // and an activation by the clock (no audit entry).
            conn.execute_batch(
                "INSERT INTO audit (id, at, customer, grp, action, source, actor, trigger,
                                    run, reason, membership)
                     VALUES (1, 30, 'c1', 'g', 'removed', NULL, 'ops', 'manual', NULL,
                             'by hand', 4);
                 INSERT INTO outbox (id, at, kind, customer, grp, membership, audit)
                     VALUES (1, 30, 'membership.removed', 'c1', 'g', 4, 1),
                            (2, 40, 'membership.activated', 'c2', 'g', 5, NULL);",
            )
            .expect("version 7 rows");
        }
        let store = SqliteStore::open(&path).expect("reopen");
        store.apply(&[add("c3", "g")], &CAUSE, 50).expect("apply");
        let events = store.events_after(0, 10).expect("events");
        let seen: Vec<_> = events
            .iter()
            .map(|e| {
                let who = (e.customer.as_str(), e.group.as_str(), e.membership);
                (e.id, e.event.as_str(), e.at, who, e.actor.as_str())
            })
            .collect();
        assert_eq!(
            seen,
            [
                (1, "membership.removed", 30, ("c1", "g", 4), "ops"),
                (2, "membership.activated", 40, ("c2", "g", 5), CLOCK_ACTOR),
                (3, "membership.added", 50, ("c3", "g", 1), "rule:g"),
            ]
        );
    }

    #[test]
    fn entries_read_the_same_across_version_12_and_new_additions_read_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("cohort.db");
        let entry = |e: &AuditEntry| {
            let source = e.source.map(|s| s.as_str());
            let who = (e.customer.clone(), e.group.clone(), e.actor.clone());
            (
                e.id,
                e.action.clone(),
                source,
                who,
                e.trigger.clone(),
                e.reason.clone(),
            )
        };
        let before = {
            let conn = store_at_version(&path, 11);
            // Entries as version 11 wrote them: two additions, one whose reason is not
            // its membership's, and a removal without a source.
            conn.execute_batch(
                "INSERT INTO memberships (id, customer, grp, source, actor, reason, start)
                     VALUES (1, 'c1', 'g', 'rule', 'rule:g', 'matches', 10),
                            (2, 'c2', 'g', 'import', 'ops', 'line 2', 10);
                 INSERT INTO audit (id, at, customer, grp, action, source, actor, trigger,
                                    run, reason, membership)
                     VALUES (1, 10, 'c1', 'g', 'added', 'rule', 'rule:g', 'manual', 7,
                             'matches', 1),
                            (2, 10, 'c2', 'g', 'added', 'import', 'ops', 'import', NULL,
                             'imported', 2),
                            (3, 20, 'c1', 'g', 'removed', NULL, 'ops', 'manual', NULL,
                             'by hand', 1);",
            )
            .expect("version 11 rows");
            // Version 11 read its entries as they were, newest first.
            conn.prepare(
                "SELECT id, action, source, customer, grp, actor, trigger, reason
                 FROM audit ORDER BY id DESC",
            )
            .expect("query")
            .query_map([], |r| {
                let source: Option<String> = r.get(2)?;
                let source = source.and_then(|s| Source::parse(&s)).map(|s| s.as_str());
                let who = (r.get(3)?, r.get(4)?, r.get(5)?);
                Ok((r.get(0)?, r.get(1)?, source, who, r.get(6)?, r.get(7)?))
            })
            .expect("rows")
            .collect::<rusqlite::Result<Vec<_>>>()
            .expect("rows")
        };
        let store = SqliteStore::open(&path).expect("reopen");
        let history = |customer| -> Vec<_> {
            store
                .history(customer, None, None, 10)
                .expect("history")
                .iter()
                .map(entry)
                .collect()
        };
        assert_eq!(history(None), before);
        // An addition now leaves out what its membership says, and is read whole.
        store.apply(&[add("c1", "h")], &CAUSE, 30).expect("apply");
        let added = (
            4,
            "added".to_string(),
            Some("rule"),
            ("c1".to_string(), "h".to_string(), "rule:g".to_string()),
            "manual".to_string(),
            "the rule matches".to_string(),
        );
        let mut all = vec![added.clone()];
        all.extend(before.iter().cloned());
        assert_eq!(history(None), all);
        assert_eq!(
            history(Some("c1")),
            [added, before[0].clone(), before[2].clone()],
            "c1's, newest first"
        );
        let compact: Vec<i64> = store
            .conn()
            .prepare("SELECT id FROM audit WHERE count IS NOT NULL")
            .expect("query")
            .query_map([], |r| r.get(0))
            .expect("rows")
            .collect::<rusqlite::Result<_>>()
            .expect("rows");
        assert_eq!(compact, [4], "entries written before stay as they were");
    }

    #[test]
    fn memberships_read_the_same_across_version_13_which_leaves_out_a_rule_s_own_words() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("cohort.db");
        {
            let conn = store_at_version(&path, 12);
            // Memberships as version 12 wrote them: one by its group's rule, one by
            // hand, one whose actor is another group's rule; the first one's entry is a
            // row of additions, with its event.
            conn.execute_batch(
                "INSERT INTO memberships (id, customer, grp, source, actor, reason, start)
                     VALUES (1, 'c1', 'g', 'rule', 'rule:g', 'the rule matches', 10),
                            (2, 'c2', 'g', 'manual', 'ops', 'by hand', 10),
                            (3, 'c3', 'g', 'rule', 'rule:h', 'the rule matches', 10);
                 INSERT INTO audit (id, at, action, trigger, run, membership, count)
                     VALUES (1, 10, 'added', 'manual', 7, 1, 1);
                 INSERT INTO outbox (id, audit) VALUES (1, 1);",
            )
            .expect("version 12 rows");
        }
        let store = SqliteStore::open(&path).expect("reopen");
        let stored = || -> Vec<(i64, Option<String>, Option<String>)> {
            store
                .conn()
                .prepare("SELECT id, actor, reason FROM memberships ORDER BY id")
                .expect("query")
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .expect("rows")
                .collect::<rusqlite::Result<_>>()
                .expect("rows")
        };
        let some = |s: &str| Some(s.to_string());
        assert_eq!(
            stored(),
            [
                (1, None, None),
                (2, some("ops"), some("by hand")),
                (3, some("rule:h"), None)
            ]
        );
        let told = || -> Vec<(String, String, String)> {
            store
                .group_memberships_page("g", Listing::All, 10, 0, 10)
                .expect("memberships")
                .into_iter()
                .map(|m| (m.customer, m.actor, m.reason))
                .collect()
        };
        let told_as = |c: &str, actor: &str, reason: &str| {
            (c.to_string(), actor.to_string(), reason.to_string())
        };
        assert_eq!(
            told(),
            [
                told_as("c1", "rule:g", "the rule matches"),
                told_as("c2", "ops", "by hand"),
                told_as("c3", "rule:h", "the rule matches"),
            ]
        );
        // A new addition by the group's rule is written without them, and read whole
        // by the history and the feed as well.
        store.apply(&[add("c4", "g")], &CAUSE, 20).expect("apply");
        assert_eq!(stored()[3], (4, None, None));
        assert_eq!(told()[3], told_as("c4", "rule:g", "the rule matches"));
        for customer in ["c1", "c4"] {
            let history = store.history(Some(customer), None, None, 10).expect("h");
            assert_eq!(
                (history[0].actor.as_str(), history[0].reason.as_str()),
                ("rule:g", "the rule matches"),
                "{customer}"
            );
        }
        let log = store.history(None, None, None, 10).expect("log");
        assert_eq!(
            log.iter()
                .map(|e| (e.customer.as_str(), e.actor.as_str(), e.reason.as_str()))
                .collect::<Vec<_>>(),
            [
                ("c4", "rule:g", "the rule matches"),
                ("c1", "rule:g", "the rule matches")
            ]
        );
        let events = store.events_after(0, 10).expect("events");
        assert_eq!(
            events
                .iter()
                .map(|e| (e.id, e.actor.as_str(), e.reason.as_str()))
                .collect::<Vec<_>>(),
            [
                (1, "rule:g", "the rule matches"),
                (2, "rule:g", "the rule matches")
            ]
        );
    }

    #[test]
    fn windows_opening_and_closing_by_the_clock_are_announced_once() {
        let store = SqliteStore::in_memory().expect("store");
        let changes = [
            window("later", 100, None),
            window("brief", 100, Some(150)),
            window("now", 0, Some(120)),
            window("forever", 0, None),
        ];
        store.apply(&changes, &CAUSE, 50).expect("apply");
        assert_eq!(
            store.announce(60).expect("announce"),
            0,
            "nothing changed yet"
        );
        assert_eq!(store.announce(130).expect("announce"), 3);
        let e = events(&store, 4);
        assert_eq!(
            e,
            [
                ("later".into(), "membership.activated".into(), 100),
                ("brief".into(), "membership.activated".into(), 100),
                ("now".into(), "membership.expired".into(), 120),
            ]
        );
        let clock = &store.events_after(4, 1).expect("events")[0];
        assert_eq!(
            (
                clock.trigger.as_str(),
                clock.actor.as_str(),
                clock.reason.as_str()
            ),
            ("clock", "cohort", "the membership's window opened")
        );
        assert_eq!(store.announce(130).expect("announce"), 0, "announced once");
        assert_eq!(store.announce(200).expect("announce"), 1);
        assert_eq!(
            events(&store, 7),
            [("brief".into(), "membership.expired".into(), 150)]
        );
        // A window ended by a removal is announced by its `removed` event only.
        let forever = store.customer_memberships("forever").expect("m")[0].id;
        let end = Change::End {
            membership: forever,
            customer: "forever".into(),
            group: "g".into(),
            at: 300,
            reason: "removed".into(),
        };
        store.apply(&[end], &CAUSE, 300).expect("apply");
        assert_eq!(store.announce(400).expect("announce"), 0);
    }

    #[test]
    fn membership_pages_follow_ids_and_filter_by_state() {
        let store = SqliteStore::in_memory().expect("store");
        let changes = [
            window("a", 0, None),
            window("b", 100, None),
            window("c", 0, Some(10)),
            window("d", 0, None),
        ];
        store.apply(&changes, &CAUSE, 50).expect("apply");
        let page = |listing, after, limit| -> Vec<String> {
            store
                .group_memberships_page("g", listing, 50, after, limit)
                .expect("page")
                .into_iter()
                .map(|m| m.customer)
                .collect()
        };
        assert_eq!(page(Listing::Only(State::Active), 0, 10), ["a", "d"]);
        assert_eq!(page(Listing::Only(State::Pending), 0, 10), ["b"]);
        assert_eq!(page(Listing::Only(State::Expired), 0, 10), ["c"]);
        assert_eq!(page(Listing::All, 0, 2), ["a", "b"]);
        assert_eq!(page(Listing::All, 2, 2), ["c", "d"]);
        assert!(page(Listing::All, 4, 2).is_empty());
    }

    #[test]
    fn the_groups_stamp_moves_with_definitions_only() {
        let store = SqliteStore::in_memory().expect("store");
        let group: Group =
            serde_json::from_value(serde_json::json!({"id": "g", "name": "G"})).expect("group");
        let s0 = store.groups_stamp().expect("stamp");
        store.put_group(&group, 1).expect("put");
        let s1 = store.groups_stamp().expect("stamp");
        assert_ne!(s0, s1);
        let periodic = RunRecord {
            group: "g".into(),
            trigger: "periodic".into(),
            started_at: 2,
            ..RunRecord::default()
        };
        let id = store
            .start_runs(std::slice::from_ref(&periodic))
            .expect("run")[0];
        let finished = RunRecord {
            id,
            status: "finished".into(),
            ..periodic
        };
        store
            .finish_run(&finished, &[], &CAUSE, 2)
            .expect("periodic run");
        assert_eq!(store.last_periodic_run("g").expect("last"), Some(2));
        assert_eq!(store.groups_stamp().expect("stamp"), s1, "not a definition");
        store.put_group(&group, 3).expect("put");
        let s2 = store.groups_stamp().expect("stamp");
        assert_ne!(s1, s2);
        store.delete_group("g").expect("delete");
        assert_ne!(store.groups_stamp().expect("stamp"), s2);
    }

    #[test]
    fn tokens_are_found_by_digest_until_revoked_and_names_are_reusable_after() {
        let store = SqliteStore::in_memory().expect("store");
        store
            .create_token("billing", Role::Operator, "h1", 1)
            .expect("create");
        assert!(
            store.create_token("billing", Role::Admin, "h2", 2).is_err(),
            "a live name is unique"
        );
        let t = store.token_by_hash("h1").expect("find").expect("live");
        assert_eq!((t.name.as_str(), t.role), ("billing", Role::Operator));
        assert!(store.revoke_token("billing", 3).expect("revoke"));
        assert!(!store.revoke_token("billing", 4).expect("revoke"));
        assert!(store.token_by_hash("h1").expect("find").is_none());
        store
            .create_token("billing", Role::ReadOnly, "h3", 5)
            .expect("a revoked name may be used again");
        assert_eq!(store.tokens().expect("tokens").len(), 2);
    }

    #[test]
    fn a_webhook_starts_at_the_newest_event_and_lags_until_delivered() {
        let store = SqliteStore::in_memory().expect("store");
        store.apply(&[add("c1", "g")], &CAUSE, 10).expect("apply");
        assert_eq!(store.outbox_len().expect("lag"), 0, "no webhook, no lag");
        let hook = store.add_webhook("http://x", "s", 11).expect("hook");
        assert_eq!(hook.position, 1, "earlier events are in the feed, not sent");
        store.apply(&[add("c2", "g")], &CAUSE, 12).expect("apply");
        assert_eq!(store.outbox_len().expect("lag"), 1);
        store.webhook_failed(hook.id, "503").expect("fail");
        let failed = &store.webhooks().expect("hooks")[0];
        assert_eq!(
            (failed.attempts, failed.last_error.as_deref()),
            (1, Some("503"))
        );
        store.webhook_delivered(hook.id, 2, 13).expect("delivered");
        let done = &store.webhooks().expect("hooks")[0];
        assert_eq!(
            (done.position, done.attempts, done.last_error.as_deref()),
            (2, 0, None)
        );
        assert_eq!(store.outbox_len().expect("lag"), 0);
        // Three events in one row (migration 13), delivered up to the middle one.
        let three: Vec<Change> = ["c3", "c4", "c5"].iter().map(|c| add(c, "g")).collect();
        store.apply(&three, &CAUSE, 14).expect("apply");
        assert_eq!(store.outbox_len().expect("lag"), 3);
        store.webhook_delivered(hook.id, 4, 15).expect("delivered");
        assert_eq!(store.outbox_len().expect("lag"), 1);
        let next = store.add_webhook("http://y", "s", 16).expect("hook");
        assert_eq!(next.position, 5, "the newest event, not the newest row");
    }

    #[test]
    fn the_schema_survives_reopening_and_interrupted_runs_are_marked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("cohort.db");
        {
            let store = SqliteStore::open(&path).expect("open");
            store
                .start_runs(&[RunRecord {
                    group: "g".into(),
                    trigger: "manual".into(),
                    actor: "op".into(),
                    ..RunRecord::default()
                }])
                .expect("run");
            store.apply(&[add("c1", "g")], &CAUSE, 10).expect("apply");
        }
        let store = SqliteStore::open(&path).expect("reopen");
        assert_eq!(store.group_memberships("g").expect("memberships").len(), 1);
        assert_eq!(
            store.runs(None, None, 10).expect("runs")[0].status,
            "interrupted"
        );
    }

    #[test]
    fn a_run_whose_store_is_still_open_is_not_interrupted_by_another_opening() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("cohort.db");
        let running = SqliteStore::open(&path).expect("open");
        let run = RunRecord {
            group: "g".into(),
            trigger: "manual".into(),
            actor: "op".into(),
            ..RunRecord::default()
        };
        running.start_runs(&[run]).expect("run");
        let status =
            |store: &SqliteStore| store.runs(None, None, 10).expect("runs")[0].status.clone();
        let reader = SqliteStore::open(&path).expect("open beside it");
        assert_eq!(status(&reader), "running", "its owner is alive");
        drop(reader);
        assert_eq!(status(&running), "running");
        drop(running);
        let after = SqliteStore::open(&path).expect("reopen");
        assert_eq!(status(&after), "interrupted", "its owner is gone");
    }

    #[test]
    fn idempotency_keys_belong_to_a_token_and_expire() {
        let store = SqliteStore::in_memory().expect("store");
        let response = |body: &str| Remembered {
            request: "r".into(),
            status: 201,
            body: body.into(),
        };
        store
            .remember(1, "k", &response("first"), 100)
            .expect("kept");
        store
            .remember(1, "k", &response("second"), 101)
            .expect("kept");
        let recalled = store.recall(1, "k", 0).expect("recall").expect("kept");
        assert_eq!(recalled.body, "first", "a live key stays as it was");
        assert!(
            store.recall(2, "k", 0).expect("recall").is_none(),
            "another token's"
        );
        assert!(
            store.recall(1, "k", 101).expect("recall").is_none(),
            "too old"
        );
        let later = 100 + IDEMPOTENCY_KEY_LIFETIME + 1;
        store
            .remember(1, "k", &response("again"), later)
            .expect("kept");
        let recalled = store.recall(1, "k", later).expect("recall").expect("kept");
        assert_eq!(recalled.body, "again", "an expired key may be used again");
        assert_eq!(store.forget_responses(later + 1).expect("forget"), 1);
        assert!(store.recall(1, "k", 0).expect("recall").is_none());
    }

    #[test]
    fn a_webhook_id_is_never_handed_out_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("cohort.db");
        let store = SqliteStore::open(&path).expect("open");
        let first = store.add_webhook("http://a", "s1", 1).expect("hook");
        assert!(store.remove_webhook(first.id).expect("removed"));
        let second = store.add_webhook("http://b", "s2", 2).expect("hook");
        assert_ne!(second.id, first.id);
        drop(store);
        let store = SqliteStore::open(&path).expect("reopen");
        assert!(store.remove_webhook(second.id).expect("removed"));
        let third = store.add_webhook("http://c", "s3", 3).expect("hook");
        assert!(third.id > second.id, "not even after a restart");
    }

    /// A run's record says `finished` exactly when its changes are in the store: both
    /// are written in one transaction, or neither is.
    #[test]
    fn a_run_ends_in_the_transaction_of_its_changes() {
        let store = SqliteStore::in_memory().expect("store");
        let group: Group =
            serde_json::from_value(serde_json::json!({"id": "h", "name": "H"})).expect("group");
        store.put_group(&group, 1).expect("put");
        let started = |group: &str, trigger: &str| {
            let run = RunRecord {
                group: group.into(),
                trigger: trigger.into(),
                actor: "op".into(),
                started_at: 7,
                status: "running".into(),
                ..RunRecord::default()
            };
            let id = store.start_runs(std::slice::from_ref(&run)).expect("start")[0];
            RunRecord { id, ..run }
        };
        let finish = |run: &RunRecord, status: &str, error: Option<String>, changes: &[Change]| {
            let ended = RunRecord {
                status: status.into(),
                finished_at: Some(8),
                error,
                ..run.clone()
            };
            let cause = Cause {
                run: Some(run.id),
                ..CAUSE
            };
            store.finish_run(&ended, changes, &cause, 8)
        };
        let status = |id: i64| {
            let runs = store.runs(None, None, 10).expect("runs");
            let run = runs.into_iter().find(|r| r.id == id).expect("recorded");
            (run.status, run.added, run.error)
        };

        let run = started("g", "manual");
        let applied =
            finish(&run, "finished", None, &[add("c1", "g"), add("c2", "g")]).expect("finish");
        assert_eq!(applied.counts(), (2, 0));
        assert_eq!(status(run.id), ("finished".into(), 2, None));
        let history = store.history(None, None, None, 10).expect("history");
        assert_eq!(history.len(), 2);
        assert!(history.iter().all(|e| e.run == Some(run.id)));

        // A write that fails midway takes the run's end down with it.
        let run = started("h", "periodic");
        store
            .conn()
            .execute_batch(
                "CREATE TEMP TRIGGER full BEFORE INSERT ON memberships
                 WHEN NEW.customer = 'c4' BEGIN SELECT RAISE(ABORT, 'disk full'); END;",
            )
            .expect("trigger");
        let err = finish(&run, "finished", None, &[add("c3", "h"), add("c4", "h")])
            .expect_err("the write fails");
        assert!(err.to_string().contains("disk full"), "{err}");
        assert_eq!(status(run.id).0, "running");
        assert!(store.group_memberships("h").expect("read").is_empty());
        assert_eq!(
            store.last_periodic_run("h").expect("last"),
            Some(1),
            "still the group's own time, not the run's"
        );

        finish(&run, "failed", Some(err.to_string()), &[]).expect("record the failure");
        let (state, added, error) = status(run.id);
        assert_eq!((state.as_str(), added), ("failed", 0));
        assert!(error.is_some_and(|e| e.contains("disk full")));
        assert_eq!(
            store.last_periodic_run("h").expect("last"),
            Some(7),
            "a failed periodic run is the last one too: the schedule waits for its next time"
        );
    }

    /// A run holds the writer's connection for its whole transaction (seconds, at a
    /// million customers): meanwhile, every read must still be answered, from what was
    /// committed before it.
    #[test]
    fn reads_are_answered_while_a_writer_holds_its_connection() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(dir.path().join("cohort.db")).expect("open");
        store.apply(&[add("c1", "g")], &CAUSE, 10).expect("apply");
        store
            .create_token("ops", Role::Admin, "digest", 10)
            .expect("token");

        let writer = store.conn();
        writer
            .execute_batch("BEGIN IMMEDIATE; DELETE FROM memberships;")
            .expect("an open write, not yet committed");
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::scope(|scope| {
            scope.spawn(|| {
                let memberships = store.group_memberships("g").map(|m| m.len());
                let token = store.token_by_hash("digest").map(|t| t.map(|t| t.name));
                let history = store.history(None, None, None, 10).map(|h| h.len());
                let _ = done.send((memberships, token, history));
            });
            let answered = finished.recv_timeout(std::time::Duration::from_secs(10));
            writer.execute_batch("ROLLBACK").expect("rollback");
            // Let a read stuck behind the writer finish, so that the test fails, not hangs.
            drop(writer);
            let (memberships, token, history) = answered.expect("the reads did not wait");
            assert_eq!(memberships.expect("memberships"), 1, "the committed state");
            assert_eq!(token.expect("token").as_deref(), Some("ops"));
            assert_eq!(history.expect("history"), 1);
        });
    }

    #[test]
    fn active_counts_and_exclusions_agree_with_the_model() {
        let store = SqliteStore::in_memory().expect("store");
        let windows = [
            (0, None),
            (50, Some(200)),
            (150, None),
            (0, Some(80)),
            (120, Some(120)),
        ];
        let changes: Vec<Change> = windows
            .iter()
            .enumerate()
            .map(|(i, (start, end))| Change::Add {
                customer: format!("c{i}").into(),
                group: "g".into(),
                source: Source::Import,
                reason: "".into(),
                start: *start,
                end: *end,
            })
            .collect();
        store.apply(&changes, &CAUSE, 0).expect("apply");
        for at in [0, 79, 80, 100, 120, 150, 200] {
            let model = store
                .group_memberships("g")
                .expect("memberships")
                .iter()
                .filter(|m| m.is_active(at))
                .count() as u64;
            assert_eq!(
                store.count_active("g", at).expect("count"),
                model,
                "at {at}"
            );
        }
        store
            .set_exclusion("c1", "g", true, "op", "never", 5)
            .expect("pin");
        assert_eq!(store.excluded_from("c1").expect("query"), ["g"]);
        assert!(store.excluded_from("c2").expect("query").is_empty());
    }

    /// Every batch's records, by the batch's number, and whether the read succeeded.
    fn read_since(
        store: &SqliteStore,
        since: Option<i64>,
        batch: usize,
    ) -> (BTreeMap<usize, Vec<String>>, Result<i64>) {
        let batches = Mutex::new(BTreeMap::new());
        let seq = store.customers_since(since, batch, &|number, records| {
            let ids: Vec<String> = records.map(|c| c.id).collect();
            let old = batches.lock().expect("batches").insert(number, ids);
            assert!(old.is_none(), "batch {number} handed over twice");
        });
        (batches.into_inner().expect("batches"), seq)
    }

    /// What a cache of customers relies on: every record once, in write order (batches
    /// numbered in that order, however many threads hand them over), then only what
    /// was written since; and a record that does not parse fails the load with an
    /// error naming it.
    #[test]
    fn customers_since_hands_every_record_in_write_order_then_only_what_changed() {
        let store = SqliteStore::in_memory().expect("store");
        let record = |i: usize| CustomerRecord {
            id: format!("c{i:05}"),
            ..CustomerRecord::default()
        };
        let first: Vec<CustomerRecord> = (0..2_055).rev().map(record).collect();
        store.upsert_customers(&first, 0).expect("load");
        store.upsert_customers(&[record(3)], 1).expect("update");
        // One write numbers all its customers alike; they come in id order.
        let mut expected: Vec<String> = (0..2_055)
            .filter(|&i| i != 3)
            .map(|i| record(i).id)
            .collect();
        expected.push(record(3).id);
        for batch in [100, 5_000] {
            let (batches, seq) = read_since(&store, None, batch);
            let seq = seq.expect("read");
            assert_eq!(batches.len(), 2_055usize.div_ceil(batch));
            assert!(batches.values().all(|ids| ids.len() <= batch));
            assert_eq!(
                batches.into_values().flatten().collect::<Vec<_>>(),
                expected
            );
            let (batches, again) = read_since(&store, Some(seq), batch);
            assert_eq!(again.expect("read"), seq);
            assert!(batches.values().all(Vec::is_empty), "{batches:?}");
        }
        // Handed over as the index walks, not after sorting every record.
        let plan: Vec<String> = store
            .conn()
            .prepare(&format!("EXPLAIN QUERY PLAN {CUSTOMERS_SINCE}"))
            .expect("plan")
            .query_map([-1], |r| r.get(3))
            .expect("plan")
            .collect::<rusqlite::Result<_>>()
            .expect("plan");
        assert_eq!(
            plan,
            ["SEARCH customers USING INDEX customers_by_seq (seq>?)"]
        );

        let seq = read_since(&store, None, 100).1.expect("read");
        store
            .conn()
            .execute(
                "UPDATE customers SET record = '{', seq = 100 WHERE id = 'c00005'",
                [],
            )
            .expect("break a record");
        match read_since(&store, Some(seq), 100).1 {
            Err(StoreError::Corrupt { what, id, .. }) => {
                assert_eq!((what, id.as_str()), ("customer", "c00005"));
            }
            other => panic!("expected the broken record named, got {other:?}"),
        }
        // A whole load is parsed on several threads, batch by batch: a broken record
        // deep in it is named too, the first in write order when two are broken, and
        // every record before it was handed over.
        for id in ["c01500", "c01990"] {
            store
                .conn()
                .execute("UPDATE customers SET record = '[' WHERE id = ?1", [id])
                .expect("break a record");
        }
        let (batches, read) = read_since(&store, None, 100);
        match read {
            Err(StoreError::Corrupt { what, id, .. }) => {
                assert_eq!((what, id.as_str()), ("customer", "c01500"));
            }
            other => panic!("expected the first broken record named, got {other:?}"),
        }
        // c00000 to c01499, but for c00003 and c00005, written again since.
        let before: Vec<String> = batches.into_values().flatten().take(1_498).collect();
        let written_before: Vec<String> = (0..1_500)
            .filter(|&i| i != 3 && i != 5)
            .map(|i| record(i).id)
            .collect();
        assert_eq!(before, written_before);
    }

    #[test]
    fn customers_page_in_id_order() {
        let store = SqliteStore::in_memory().expect("store");
        for id in ["b", "a", "c"] {
            let record = CustomerRecord {
                id: id.into(),
                ..CustomerRecord::default()
            };
            assert!(store.upsert_customer(&record, 0).expect("upsert"));
        }
        assert!(
            !store
                .upsert_customer(
                    &CustomerRecord {
                        id: "a".into(),
                        ..CustomerRecord::default()
                    },
                    1
                )
                .expect("upsert")
        );
        let page = store.customers_after(Some("a"), 10).expect("page");
        assert_eq!(
            page.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
            ["b", "c"]
        );
        assert_eq!(store.count_customers().expect("count"), 3);
    }
}
