-- The HTTP API: tokens, webhooks and their delivery positions, idempotent requests,
-- and the last state announced for each membership, so that one becoming active or
-- expiring by the clock is announced exactly once.
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
