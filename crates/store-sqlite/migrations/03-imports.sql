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
