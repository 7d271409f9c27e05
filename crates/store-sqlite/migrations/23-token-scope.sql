-- The groups an API token is limited to (JSON, NULL for every group), as a staff
-- member's are.
ALTER TABLE tokens ADD COLUMN group_scope TEXT;
