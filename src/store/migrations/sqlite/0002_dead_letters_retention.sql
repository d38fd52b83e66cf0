-- gerbang SQLite schema, version 2: dead letters can be discarded with a reason, and payloads
-- pruned after delivery (retention) while the receipt stays.
ALTER TABLE receipts ADD COLUMN discard_reason TEXT;
ALTER TABLE receipts ADD COLUMN pruned_at INTEGER;
CREATE INDEX receipts_status_created ON receipts (status, created_at);
CREATE INDEX receipts_prunable ON receipts (status, updated_at) WHERE pruned_at IS NULL;

-- Who did what, and when: pushes, pulls, replays, discards.
CREATE TABLE audit_events (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    at              INTEGER NOT NULL,
    actor           TEXT NOT NULL,
    action          TEXT NOT NULL,
    receipt_id      TEXT,
    organization_id TEXT,
    detail          TEXT
);
CREATE INDEX audit_events_at ON audit_events (at);
