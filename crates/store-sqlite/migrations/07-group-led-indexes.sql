-- Indexes a run appends to instead of inserting all over: a run walks one group's
-- customers in order, so an index led by the group grows at one end, while one led
-- by the customer gets an entry on every leaf page, and every such page goes to the
-- write-ahead log again at each commit (most of a full scan's time at a million
-- customers). A customer's memberships are found by seeking each group in the
-- group-led index; a customer's history through their memberships, or, for entries
-- that belong to no membership (pins), through a small partial index.
DROP INDEX memberships_by_group;
DROP INDEX memberships_by_key;
CREATE INDEX memberships_by_group ON memberships (grp, customer, start);
DROP INDEX audit_by_customer;
CREATE INDEX audit_by_membership ON audit (membership, id);
CREATE INDEX audit_unattached_by_customer ON audit (customer, id) WHERE membership IS NULL;
