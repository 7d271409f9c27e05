-- Every write of a customer takes the next number, so a reader that keeps facts in
-- memory can fetch only what changed since it last looked, whoever wrote it.
ALTER TABLE customers ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
CREATE INDEX customers_by_seq ON customers (seq);
-- memberships_by_key (customer, grp, start) serves every lookup by customer; one
-- index fewer to update for each membership a run adds.
DROP INDEX memberships_by_customer;
-- Bumped by every change to a group's definition, so that readers may keep the parsed
-- groups until it moves.
CREATE TABLE stamps (name TEXT PRIMARY KEY, n INTEGER NOT NULL);
INSERT INTO stamps (name, n) VALUES ('groups', 0);
CREATE TRIGGER groups_added AFTER INSERT ON groups
    BEGIN UPDATE stamps SET n = n + 1 WHERE name = 'groups'; END;
CREATE TRIGGER groups_changed AFTER UPDATE OF definition ON groups
    BEGIN UPDATE stamps SET n = n + 1 WHERE name = 'groups'; END;
CREATE TRIGGER groups_deleted AFTER DELETE ON groups
    BEGIN UPDATE stamps SET n = n + 1 WHERE name = 'groups'; END;
