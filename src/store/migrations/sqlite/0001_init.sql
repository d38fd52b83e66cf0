-- gerbang SQLite schema, version 1. Times are milliseconds since the Unix epoch (UTC).

CREATE TABLE facilities (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    organization_id TEXT NOT NULL,
    location_id     TEXT NOT NULL,
    created_at      INTEGER NOT NULL
);

CREATE TABLE api_keys (
    key_hash    TEXT PRIMARY KEY,           -- SHA-256 of the key; the key itself is never stored
    facility_id TEXT NOT NULL REFERENCES facilities(id),
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);

-- One receipt per accepted record. The outbox is the receipts not yet delivered or dead.
CREATE TABLE receipts (
    id               TEXT PRIMARY KEY,
    facility_id      TEXT NOT NULL,
    organization_id  TEXT NOT NULL,
    record_type      TEXT NOT NULL,
    local_id         TEXT NOT NULL,
    content_hash     TEXT NOT NULL,
    status           TEXT NOT NULL,         -- queued | delivering | retrying | delivered | dead
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER,
    lease_owner      TEXT,
    lease_until      INTEGER,
    last_error       TEXT,
    upstream_outcome TEXT,                  -- JSON OperationOutcome of a dead letter
    server_ids       TEXT,                  -- JSON: what SATUSEHAT created
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    delivered_at     INTEGER,
    UNIQUE (facility_id, record_type, local_id)
);
CREATE INDEX receipts_due ON receipts (status, next_attempt_at);
CREATE INDEX receipts_lease ON receipts (status, lease_until);

-- Payloads are kept apart from receipts so that they can be pruned after delivery while
-- the receipt (the audit of what happened) stays.
CREATE TABLE payloads (
    receipt_id TEXT PRIMARY KEY REFERENCES receipts(id),
    raw        TEXT NOT NULL,               -- the facility's record as received
    bundle     TEXT NOT NULL                -- the mapped, validated transaction Bundle
);

-- Every delivery attempt, for operators: when, how it ended, and why.
CREATE TABLE delivery_attempts (
    receipt_id  TEXT NOT NULL REFERENCES receipts(id),
    attempt     INTEGER NOT NULL,
    started_at  INTEGER NOT NULL,
    finished_at INTEGER NOT NULL,
    result      TEXT NOT NULL,              -- delivered | duplicate | retry | dead
    http_status INTEGER,
    detail      TEXT,
    PRIMARY KEY (receipt_id, attempt)
);

-- NIK → IHS number look-ups. The key is a SHA-256 of the NIK.
CREATE TABLE lookup_cache (
    kind       TEXT NOT NULL,
    key_hash   TEXT NOT NULL,
    value      TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (kind, key_hash)
);
