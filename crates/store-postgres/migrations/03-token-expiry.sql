-- A token may expire: past this time it is refused as a revoked one is.
ALTER TABLE tokens ADD COLUMN expires_at BIGINT;
