-- The shape of the embedded store at its version 15, for PostgreSQL, with what many
-- servers on one database need besides:
-- * a customer's row names the transaction that wrote it last (`written`), so that a
--   reader of what changed since can tell which writes may still be in flight;
-- * events are numbered from one counter (`feed_head`) that each writer takes last in
--   its transaction and holds until it commits, so that positions commit in order
--   and a reader of the feed can never pass a position that commits later;
-- * runs carry the store that started them (`owner`, a random number), alive while its
--   session holds an advisory lock on that number;
-- * a webhook is delivered by the server holding its lease.
-- Times are Unix seconds. Rows are told in full: no reader restores left-out words.
CREATE TABLE plugins (
    id text NOT NULL,
    version text NOT NULL,
    sha256 text NOT NULL,
    wasm bytea NOT NULL,
    data_dir text,
    data_dir_as_given text,
    added_at bigint NOT NULL,
    PRIMARY KEY (id, version)
);

CREATE TABLE customers (
    id text PRIMARY KEY,
    record text NOT NULL,
    registered_at bigint NOT NULL,
    updated_at bigint NOT NULL,
    written xid8 NOT NULL DEFAULT pg_current_xact_id()
);
CREATE INDEX customers_by_write ON customers (written);

CREATE TABLE groups (
    id text PRIMARY KEY,
    definition text NOT NULL,
    updated_at bigint NOT NULL,
    last_periodic_run bigint
);
CREATE TABLE group_uses (
    grp text NOT NULL,
    kind text NOT NULL,
    entity text NOT NULL,
    PRIMARY KEY (grp, kind, entity)
);

-- Counters a reader compares to know whether its copy is stale: `groups`, and
-- `memberships:<group>` for each group.
CREATE TABLE stamps (
    name text PRIMARY KEY,
    n bigint NOT NULL
);
INSERT INTO stamps (name, n) VALUES ('groups', 0);

CREATE SEQUENCE membership_ids;
CREATE TABLE memberships (
    id bigint PRIMARY KEY,
    customer text NOT NULL,
    grp text NOT NULL,
    source text NOT NULL,
    actor text NOT NULL,
    reason text NOT NULL,
    starts bigint NOT NULL,
    ends bigint,
    -- The last state announced in the feed: `pending`, `active` or `expired`.
    announced text NOT NULL
);
CREATE INDEX memberships_by_group ON memberships (grp, customer, starts);
CREATE INDEX memberships_by_customer ON memberships (customer);
CREATE INDEX memberships_pending ON memberships (starts) WHERE announced = 'pending';
CREATE INDEX memberships_ending ON memberships (ends)
    WHERE announced = 'active' AND ends IS NOT NULL;

CREATE TABLE exclusions (
    customer text NOT NULL,
    grp text NOT NULL,
    actor text NOT NULL,
    reason text NOT NULL,
    at bigint NOT NULL,
    PRIMARY KEY (customer, grp)
);
CREATE INDEX exclusions_by_group ON exclusions (grp);

CREATE SEQUENCE audit_ids;
CREATE TABLE audit (
    id bigint PRIMARY KEY,
    at bigint NOT NULL,
    customer text NOT NULL,
    grp text NOT NULL,
    action text NOT NULL,
    source text,
    actor text NOT NULL,
    trigger text NOT NULL,
    run bigint,
    reason text NOT NULL,
    membership bigint
);
CREATE INDEX audit_by_customer ON audit (customer, id);
CREATE INDEX audit_by_group ON audit (grp, id);
CREATE INDEX audit_removals ON audit (membership) WHERE action = 'removed';

CREATE TABLE feed_head (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    position bigint NOT NULL
);
INSERT INTO feed_head (one, position) VALUES (true, 0);
CREATE TABLE outbox (
    id bigint PRIMARY KEY,
    at bigint NOT NULL,
    kind text NOT NULL,
    customer text NOT NULL,
    grp text NOT NULL,
    membership bigint NOT NULL,
    trigger text NOT NULL,
    actor text NOT NULL,
    reason text NOT NULL
);

CREATE TABLE runs (
    id bigserial PRIMARY KEY,
    grp text NOT NULL,
    trigger text NOT NULL,
    dry_run boolean NOT NULL,
    actor text NOT NULL,
    as_of bigint NOT NULL,
    started_at bigint NOT NULL,
    finished_at bigint,
    status text NOT NULL,
    customers bigint NOT NULL DEFAULT 0,
    matched bigint NOT NULL DEFAULT 0,
    added bigint NOT NULL DEFAULT 0,
    removed bigint NOT NULL DEFAULT 0,
    undecided bigint NOT NULL DEFAULT 0,
    failures text NOT NULL DEFAULT '[]',
    error text,
    owner bigint
);
CREATE INDEX runs_by_group ON runs (grp, id);
CREATE INDEX runs_running ON runs (owner) WHERE status = 'running';

CREATE TABLE imports (
    id bigserial PRIMARY KEY,
    actor text NOT NULL,
    file_name text NOT NULL,
    sha256 text NOT NULL,
    started_at bigint NOT NULL,
    finished_at bigint,
    status text NOT NULL,
    dry_run boolean NOT NULL,
    partial boolean NOT NULL,
    rows bigint NOT NULL DEFAULT 0,
    added bigint NOT NULL DEFAULT 0,
    updated bigint NOT NULL DEFAULT 0,
    unchanged bigint NOT NULL DEFAULT 0,
    rejected bigint NOT NULL DEFAULT 0
);
CREATE TABLE import_rows (
    import bigint NOT NULL,
    line bigint NOT NULL,
    customer text NOT NULL,
    grp text NOT NULL,
    starts bigint NOT NULL,
    ends bigint
);
CREATE INDEX import_rows_by_key ON import_rows (import, customer, grp);
CREATE TABLE import_errors (
    seq bigserial PRIMARY KEY,
    import bigint NOT NULL,
    line bigint NOT NULL,
    col text,
    message text NOT NULL
);
CREATE INDEX import_errors_by_line ON import_errors (import, line, seq);

CREATE TABLE tokens (
    id bigserial PRIMARY KEY,
    name text NOT NULL,
    role text NOT NULL,
    hash text NOT NULL UNIQUE,
    created_at bigint NOT NULL,
    revoked_at bigint
);
CREATE UNIQUE INDEX tokens_live_name ON tokens (name) WHERE revoked_at IS NULL;
CREATE TABLE webhooks (
    id bigserial PRIMARY KEY,
    url text NOT NULL,
    secret text NOT NULL,
    created_at bigint NOT NULL,
    position bigint NOT NULL,
    attempts integer NOT NULL DEFAULT 0,
    last_error text,
    last_delivered_at bigint,
    -- The server delivering it, until when: one at a time, another after it dies.
    lease_holder text,
    lease_until bigint
);
CREATE TABLE idempotency (
    token bigint NOT NULL,
    key text NOT NULL,
    request text NOT NULL,
    status integer NOT NULL,
    body text NOT NULL,
    at bigint NOT NULL,
    PRIMARY KEY (token, key)
);
