-- A customer may be erased: their `erased` audit entry and `customer.erased` event
-- belong to no group and no membership.
ALTER TABLE audit ALTER COLUMN grp DROP NOT NULL;
ALTER TABLE outbox ALTER COLUMN grp DROP NOT NULL;
ALTER TABLE outbox ALTER COLUMN membership DROP NOT NULL;
