-- 0003 API credentials (sha256 token hashes with roles) and strategy description/tags.

CREATE TABLE IF NOT EXISTS api_credentials (
    id {ID},
    name TEXT NOT NULL UNIQUE,
    token_hash TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    created_ms BIGINT NOT NULL,
    last_used_ms BIGINT,
    revoked_ms BIGINT
);

ALTER TABLE strategies ADD COLUMN description TEXT;
ALTER TABLE strategies ADD COLUMN tags {JSON};
