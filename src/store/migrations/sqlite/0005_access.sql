-- Version 5: access. Pull clients registered for SMART Backend Services (their public keys,
-- the scopes they may be granted, optionally one organization), the access tokens gerbang
-- issued to them (only a SHA-256 of each token is stored), and the `jti` of every client
-- assertion seen, kept until the assertion expires so that none is accepted twice.

CREATE TABLE smart_clients (
    id              TEXT PRIMARY KEY,       -- the client_id: `iss` and `sub` of its assertions
    name            TEXT NOT NULL,
    jwks            TEXT NOT NULL,          -- JSON {"keys": [...]}: public keys only
    scopes          TEXT NOT NULL,          -- space separated, the most it may be granted
    organization_id TEXT,                   -- NULL: every organization
    created_at      INTEGER NOT NULL,
    revoked_at      INTEGER
);

CREATE TABLE access_tokens (
    token_hash      TEXT PRIMARY KEY,       -- SHA-256 of the token; the token itself is never stored
    client_id       TEXT NOT NULL REFERENCES smart_clients(id),
    scopes          TEXT NOT NULL,          -- space separated, as granted
    organization_id TEXT,
    issued_at       INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL
);
CREATE INDEX access_tokens_expiry ON access_tokens (expires_at);

CREATE TABLE assertion_jtis (
    client_id  TEXT NOT NULL,
    jti        TEXT NOT NULL,
    expires_at INTEGER NOT NULL,            -- the assertion's `exp`: after it, the row may go
    PRIMARY KEY (client_id, jti)
);
CREATE INDEX assertion_jtis_expiry ON assertion_jtis (expires_at);
