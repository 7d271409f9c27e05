-- Staged import rows kept in the order they are checked and applied: by group, then
-- customer, then start. The rows are the key itself (no table beside an index), so a
-- staged row is written once, and applying reads them in order without a lookup each;
-- the memberships they add then go into `memberships_by_group` one after another.
-- Whether a row's customer is known is found as the row is staged, while the file is
-- still being read, rather than by a pass of its own afterwards.
CREATE TABLE import_rows_v17 (
    import INTEGER NOT NULL,
    grp TEXT NOT NULL,
    customer TEXT NOT NULL,
    start INTEGER NOT NULL,
    line INTEGER NOT NULL,
    end INTEGER,
    known INTEGER NOT NULL,
    PRIMARY KEY (import, grp, customer, start, line)
) WITHOUT ROWID;
INSERT INTO import_rows_v17 (import, grp, customer, start, line, end, known)
    SELECT import, grp, customer, start, line, end,
           EXISTS (SELECT 1 FROM customers c WHERE c.id = import_rows.customer)
    FROM import_rows;
DROP TABLE import_rows;
ALTER TABLE import_rows_v17 RENAME TO import_rows;
