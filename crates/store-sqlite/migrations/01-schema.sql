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
