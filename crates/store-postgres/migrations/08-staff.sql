-- The billing staff who sign in to the console: a password digest (argon2id), a role,
-- the groups they may see (JSON, NULL for all), and failed sign-ins with the lock they
-- led to; and their sessions, kept under the digest of the cookie.
CREATE TABLE staff (
    name text PRIMARY KEY,
    role text NOT NULL,
    group_scope text,
    password_hash text NOT NULL,
    created_at bigint NOT NULL,
    password_changed_at bigint NOT NULL,
    failed_sign_ins integer NOT NULL DEFAULT 0,
    locked_until bigint
);
CREATE TABLE staff_sessions (
    digest text PRIMARY KEY,
    staff text NOT NULL REFERENCES staff (name) ON DELETE CASCADE,
    csrf text NOT NULL,
    created_at bigint NOT NULL,
    expires_at bigint NOT NULL
);
CREATE INDEX staff_sessions_by_staff ON staff_sessions (staff);
