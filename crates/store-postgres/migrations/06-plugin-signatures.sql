-- Plugins may be signed: who vouched for each (a trusted key's name, `standard` for a
-- plugin built with Cohort) and with which key; the keys the operator trusts; and
-- whether the store requires a signature (a row of `settings`).
ALTER TABLE plugins ADD COLUMN signer text;
ALTER TABLE plugins ADD COLUMN signer_key text;
CREATE TABLE trusted_keys (
    name text PRIMARY KEY,
    public_key text NOT NULL,
    added_at bigint NOT NULL
);
CREATE TABLE settings (
    name text PRIMARY KEY,
    value text NOT NULL
);
