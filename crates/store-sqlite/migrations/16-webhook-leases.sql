-- Servers sharing a store take turns delivering a webhook: the one holding its lease
-- (until a time) delivers; when it dies, the lease runs out and another resumes.
ALTER TABLE webhooks ADD COLUMN lease_holder TEXT;
ALTER TABLE webhooks ADD COLUMN lease_until INTEGER;
