-- Plugins may be signed: who vouched for each (a trusted key's name, `standard` for a
-- plugin built with Cohort) and with which key; the keys the operator trusts; and
-- whether the store requires a signature (a row of `settings`).
ALTER TABLE plugins ADD COLUMN signer TEXT;
ALTER TABLE plugins ADD COLUMN signer_key TEXT;
CREATE TABLE trusted_keys (
    name TEXT PRIMARY KEY,
    public_key TEXT NOT NULL,
    added_at INTEGER NOT NULL
);
CREATE TABLE settings (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
