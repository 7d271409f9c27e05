-- An event written with a change points at the change's audit entry instead of
-- carrying a JSON copy of it: the payload was the largest part of every change a run
-- wrote. Events of the clock have no audit entry; everything about them is in their
-- own columns. Rows written before keep their payload and are read from it.
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
