-- The entries of memberships added together are one row: a run's additions were
-- two rows of three that a full scan wrote, each repeating what its membership
-- says (customer, group, source, actor, reason; a membership never changes them)
-- and its run's time, trigger and run. A row with a `count` stands for the entries
-- numbered up to its id, of the memberships numbered up to its `membership`, one for
-- one, and says nothing else. `audit_by_membership` keeps only entries told in
-- full (removals, updates, and everything written before); `audit_stretches`
-- finds the row of a membership added, one index entry per row.
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
