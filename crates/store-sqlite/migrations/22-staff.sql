-- The billing staff who sign in to the console: a password digest (argon2id), a role,
-- the groups they may see (JSON, NULL for all), and failed sign-ins with the lock they
-- led to; and their sessions, kept under the digest of the cookie.
CREATE TABLE staff (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    group_scope TEXT,
    password_hash TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    password_changed_at INTEGER NOT NULL,
    failed_sign_ins INTEGER NOT NULL DEFAULT 0,
    locked_until INTEGER
);
CREATE TABLE staff_sessions (
    digest TEXT PRIMARY KEY,
    staff TEXT NOT NULL REFERENCES staff (name) ON DELETE CASCADE,
    csrf TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX staff_sessions_by_staff ON staff_sessions (staff);
