-- gerbang PostgreSQL schema, version 2: discarded dead letters, payload retention, audit.
ALTER TABLE receipts ADD COLUMN discard_reason TEXT;
ALTER TABLE receipts ADD COLUMN pruned_at BIGINT;
CREATE INDEX receipts_status_created ON receipts (status, created_at);
CREATE INDEX receipts_prunable ON receipts (status, updated_at) WHERE pruned_at IS NULL;

CREATE TABLE audit_events (
    id              BIGSERIAL PRIMARY KEY,
    at              BIGINT NOT NULL,
    actor           TEXT NOT NULL,
    action          TEXT NOT NULL,
    receipt_id      TEXT,
    organization_id TEXT,
    detail          TEXT
);
CREATE INDEX audit_events_at ON audit_events (at);
