-- Written once for both databases (BIGINT is an integer column in SQLite too).
-- Version 7: a record's whole life. A record has revisions (the same local id with new
-- content); one revision is on its way at a time (`sending_revision`), and SATUSEHAT holds
-- `delivered_revision`. A cancellation is work of its own (`sending_revision` NULL with
-- `cancel_requested_at` set). Leases are fenced by a token. Events tell each facility what
-- became of its records, in commit order, and its webhook is sent them.
ALTER TABLE receipts ADD COLUMN revision BIGINT NOT NULL DEFAULT 1;
ALTER TABLE receipts ADD COLUMN sending_revision BIGINT;
ALTER TABLE receipts ADD COLUMN delivered_revision BIGINT;
ALTER TABLE receipts ADD COLUMN cancel_reason TEXT;
ALTER TABLE receipts ADD COLUMN cancel_requested_at BIGINT;
ALTER TABLE receipts ADD COLUMN cancelled_at BIGINT;
ALTER TABLE receipts ADD COLUMN lease_token TEXT;
UPDATE receipts SET sending_revision = 1 WHERE status IN ('queued', 'delivering', 'retrying', 'dead', 'discarded');
UPDATE receipts SET delivered_revision = 1 WHERE status = 'delivered';
-- A facility's own view lists its records by their last change.
CREATE INDEX receipts_facility_changed ON receipts (facility_id, updated_at, id);

ALTER TABLE delivery_attempts ADD COLUMN revision BIGINT;

-- Every revision of a record: what was sent (raw record and Bundle, NULL once pruned) and
-- what became of it.
CREATE TABLE revisions (
    receipt_id       TEXT NOT NULL REFERENCES receipts(id),
    revision         BIGINT NOT NULL,
    content_hash     TEXT NOT NULL,
    format           TEXT,
    received_at      BIGINT NOT NULL,
    raw              TEXT,
    bundle           TEXT,
    outcome          TEXT NOT NULL,         -- pending | delivered | superseded | refused | cancelled
    outcome_at       BIGINT,
    upstream_outcome TEXT,                  -- JSON OperationOutcome when refused
    closed           TEXT,                  -- a refused revision: corrected | discarded | cancelled
    changes          TEXT,                  -- JSON: what its delivery created, updated, retired
    PRIMARY KEY (receipt_id, revision)
);
INSERT INTO revisions (receipt_id, revision, content_hash, format, received_at, raw, bundle, outcome, outcome_at,
                       upstream_outcome, closed)
SELECT r.id, 1, r.content_hash, r.format, r.created_at, p.raw, p.bundle,
       CASE r.status WHEN 'delivered' THEN 'delivered' WHEN 'dead' THEN 'refused' WHEN 'discarded' THEN 'refused'
                     ELSE 'pending' END,
       CASE WHEN r.status IN ('delivered', 'dead', 'discarded') THEN r.updated_at END,
       r.upstream_outcome,
       CASE r.status WHEN 'discarded' THEN 'discarded' END
FROM receipts r LEFT JOIN payloads p ON p.receipt_id = r.id;
DROP TABLE payloads;

-- Events, numbered in commit order: MAX + 1, assigned by the single writer (SQLite) or under an
-- advisory lock held until commit (PostgreSQL).
CREATE TABLE events (
    seq         BIGINT PRIMARY KEY,
    id          TEXT NOT NULL UNIQUE,       -- msg_…: the webhook-id, the same on every retry
    facility_id TEXT NOT NULL,
    receipt_id  TEXT NOT NULL,
    record_type TEXT NOT NULL,
    local_id    TEXT NOT NULL,
    type        TEXT NOT NULL,              -- record.delivered | record.refused | record.corrected | record.cancelled
    revision    BIGINT,
    at          BIGINT NOT NULL,
    data        TEXT NOT NULL               -- JSON
);
CREATE INDEX events_facility ON events (facility_id, seq);
CREATE INDEX events_receipt ON events (receipt_id, seq);

-- One webhook per facility, and where sending its events stands.
CREATE TABLE webhooks (
    facility_id     TEXT PRIMARY KEY REFERENCES facilities(id),
    url             TEXT NOT NULL,
    secret          TEXT NOT NULL,          -- whsec_…: signing needs it in clear
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    sent_seq        BIGINT NOT NULL,       -- every event of the facility up to here is acknowledged or given up
    attempts        BIGINT NOT NULL DEFAULT 0,
    failing_since   BIGINT,
    next_attempt_at BIGINT NOT NULL,
    last_error      TEXT,
    last_status     BIGINT,
    last_success_at BIGINT,
    given_up        BIGINT NOT NULL DEFAULT 0,
    lease_token     TEXT,
    lease_until     BIGINT
);

-- Readiness writes a row here: a full disk shows as not ready.
CREATE TABLE health_probes (
    instance TEXT PRIMARY KEY,
    at       BIGINT NOT NULL
);
