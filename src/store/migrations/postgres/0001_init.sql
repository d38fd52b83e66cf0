-- gerbang PostgreSQL schema, version 1 (same model as SQLite's). Times are milliseconds since
-- the Unix epoch (UTC). Payloads are TEXT, not JSONB: JSONB reorders keys, and what a facility
-- sent is kept exactly.

CREATE TABLE facilities (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    organization_id TEXT NOT NULL,
    location_id     TEXT NOT NULL,
    created_at      BIGINT NOT NULL
);

CREATE TABLE api_keys (
    key_hash    TEXT PRIMARY KEY,
    facility_id TEXT NOT NULL REFERENCES facilities(id),
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);

CREATE TABLE receipts (
    id               TEXT PRIMARY KEY,
    facility_id      TEXT NOT NULL,
    organization_id  TEXT NOT NULL,
    record_type      TEXT NOT NULL,
    local_id         TEXT NOT NULL,
    content_hash     TEXT NOT NULL,
    status           TEXT NOT NULL,
    attempts         BIGINT NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT,
    lease_owner      TEXT,
    lease_until      BIGINT,
    last_error       TEXT,
    upstream_outcome TEXT,
    server_ids       TEXT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    delivered_at     BIGINT,
    UNIQUE (facility_id, record_type, local_id)
);
CREATE INDEX receipts_due ON receipts (status, next_attempt_at);
CREATE INDEX receipts_lease ON receipts (status, lease_until);

CREATE TABLE payloads (
    receipt_id TEXT PRIMARY KEY REFERENCES receipts(id),
    raw        TEXT NOT NULL,
    bundle     TEXT NOT NULL
);

CREATE TABLE delivery_attempts (
    receipt_id  TEXT NOT NULL REFERENCES receipts(id),
    attempt     BIGINT NOT NULL,
    started_at  BIGINT NOT NULL,
    finished_at BIGINT NOT NULL,
    result      TEXT NOT NULL,
    http_status INTEGER,
    detail      TEXT,
    PRIMARY KEY (receipt_id, attempt)
);

CREATE TABLE lookup_cache (
    kind       TEXT NOT NULL,
    key_hash   TEXT NOT NULL,
    value      TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (kind, key_hash)
);
