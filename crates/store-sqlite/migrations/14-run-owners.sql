-- A run names the store that started it (`src/owner.rs`), so that another
-- process marks it interrupted only when that store is gone. A webhook's id is
-- never handed out again: a worker that still served a deleted webhook would
-- otherwise deliver a new one's events to the old URL, with the old secret.
-- Idempotency keys belong to a token's id and expire.
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
