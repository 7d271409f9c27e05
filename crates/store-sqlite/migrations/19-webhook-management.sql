-- Webhooks choose the kinds of event they receive (a JSON array; every kind if
-- NULL), may be paused, rotate their secret with an overlap during which the one it
-- replaced still signs, and keep a log of their latest delivery attempts. Each change
-- moves `generation` on: a delivery made under an earlier one is not recorded.
ALTER TABLE webhooks ADD COLUMN events TEXT;
ALTER TABLE webhooks ADD COLUMN paused INTEGER NOT NULL DEFAULT 0;
ALTER TABLE webhooks ADD COLUMN previous_secret TEXT;
ALTER TABLE webhooks ADD COLUMN previous_secret_until INTEGER;
ALTER TABLE webhooks ADD COLUMN generation INTEGER NOT NULL DEFAULT 0;
CREATE TABLE webhook_deliveries (
    id INTEGER PRIMARY KEY,
    webhook INTEGER NOT NULL,
    at INTEGER NOT NULL,
    after INTEGER NOT NULL,
    last INTEGER NOT NULL,
    events INTEGER NOT NULL,
    ping INTEGER NOT NULL,
    status INTEGER,
    latency_ms INTEGER NOT NULL,
    error TEXT
);
CREATE INDEX webhook_deliveries_by_webhook ON webhook_deliveries (webhook, id);
