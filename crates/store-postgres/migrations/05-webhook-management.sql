-- Webhooks choose the kinds of event they receive (every kind if NULL), may be
-- paused, rotate their secret with an overlap during which the one it replaced still
-- signs, and keep a log of their latest delivery attempts. Each change moves
-- `generation` on: a delivery made under an earlier one is not recorded.
ALTER TABLE webhooks ADD COLUMN events text[];
ALTER TABLE webhooks ADD COLUMN paused boolean NOT NULL DEFAULT false;
ALTER TABLE webhooks ADD COLUMN previous_secret text;
ALTER TABLE webhooks ADD COLUMN previous_secret_until bigint;
ALTER TABLE webhooks ADD COLUMN generation bigint NOT NULL DEFAULT 0;
CREATE TABLE webhook_deliveries (
    id bigserial PRIMARY KEY,
    webhook bigint NOT NULL,
    at bigint NOT NULL,
    after bigint NOT NULL,
    last bigint NOT NULL,
    events integer NOT NULL,
    ping boolean NOT NULL,
    status integer,
    latency_ms bigint NOT NULL,
    error text
);
CREATE INDEX webhook_deliveries_by_webhook ON webhook_deliveries (webhook, id);
