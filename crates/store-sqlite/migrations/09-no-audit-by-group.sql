-- The history query's group filter is `(?2 IS NULL OR grp = ?2)`, which SQLite
-- cannot answer from an index: it walks the log newest first and never read this
-- one. Keeping it up to date was a sixth of what a full scan's writes cost, and a
-- page per group a registration joins.
DROP INDEX audit_by_group;
