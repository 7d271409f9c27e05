-- Scans shared by workers. A scan's runs are cut into ranges of customer ids; a worker
-- claims an open range for a lease (by the database's clock, the one clock every
-- machine shares) and commits the range's changes with its completion.
--
-- Customer ids compare byte by byte ("C"), as the workers compare them: a range's
-- bounds then mean the same to the database and to every worker, whatever the
-- database's locale; and the indexes serve a range's reads.
ALTER TABLE customers ALTER COLUMN id TYPE text COLLATE "C";
ALTER TABLE memberships ALTER COLUMN customer TYPE text COLLATE "C";
ALTER TABLE exclusions ALTER COLUMN customer TYPE text COLLATE "C";

CREATE TABLE scans (
    id bigserial PRIMARY KEY,
    started_at bigint NOT NULL,
    finished_at bigint,
    -- `running`, `finished` or `failed`.
    status text NOT NULL,
    error text,
    ranges integer NOT NULL,
    done integer NOT NULL DEFAULT 0
);

-- A scan's runs, a job to a number, each job's runs decided in `step` order.
CREATE TABLE scan_runs (
    scan bigint NOT NULL,
    run bigint NOT NULL UNIQUE,
    job integer NOT NULL,
    step integer NOT NULL,
    PRIMARY KEY (scan, job, step)
);

CREATE TABLE scan_ranges (
    scan bigint NOT NULL,
    range integer NOT NULL,
    -- The first id in the range and the first past it; none for the ends.
    from_id text COLLATE "C",
    to_id text COLLATE "C",
    -- `open`, `done`, or `failed`; `given-up` when the scan failed first.
    status text NOT NULL DEFAULT 'open',
    worker text,
    lease_until timestamptz,
    attempts integer NOT NULL DEFAULT 0,
    PRIMARY KEY (scan, range)
);
CREATE INDEX scan_ranges_open ON scan_ranges (scan, range) WHERE status = 'open';
