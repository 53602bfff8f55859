-- 0005 API auth: bearer tokens arb_<token_id>_<secret>, roles read/admin, scrypt-hashed secrets.
-- The row is found by token_id; the secret is checked against secret_hash = scrypt(secret, salt,
-- n=kdf_n, r=kdf_r, p=kdf_p), so each row carries its own KDF parameters and a later cost increase
-- needs no migration. Rows of 0003 (unsalted sha256 of the whole token) cannot be verified under
-- this scheme: they are kept as revoked history with kdf 'sha256' (viewer -> read, others -> admin).
-- A name is unique among active credentials only, so a revoked name can be issued again.

ALTER TABLE api_credentials RENAME TO api_credentials_0003;

CREATE TABLE IF NOT EXISTS api_credentials (
    id {ID},
    token_id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('read', 'admin')),
    kdf TEXT NOT NULL,
    kdf_n INTEGER NOT NULL,
    kdf_r INTEGER NOT NULL,
    kdf_p INTEGER NOT NULL,
    salt TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    last_used_ms BIGINT,
    revoked_ms BIGINT
);

INSERT INTO api_credentials (token_id, name, role, kdf, kdf_n, kdf_r, kdf_p, salt, secret_hash, created_ms,
                             last_used_ms, revoked_ms)
SELECT 'legacy' || CAST(id AS TEXT), name, CASE WHEN role = 'viewer' THEN 'read' ELSE 'admin' END, 'sha256', 0, 0,
       0, '', token_hash, created_ms, last_used_ms, COALESCE(revoked_ms, created_ms)
FROM api_credentials_0003;

DROP TABLE api_credentials_0003;
CREATE UNIQUE INDEX IF NOT EXISTS ux_api_credentials_active_name ON api_credentials (name) WHERE revoked_ms IS NULL;
