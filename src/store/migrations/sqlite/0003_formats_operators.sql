-- Version 3: the local format a record arrived in (to re-map it on replay), and operators'
-- API keys for the admin endpoints.
ALTER TABLE receipts ADD COLUMN format TEXT;

CREATE TABLE operator_keys (
    key_hash   TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
