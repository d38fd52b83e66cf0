-- Version 6: pulling. Every delivered receipt gets a position in the feed, `feed_seq`,
-- assigned in the order deliveries are committed (the single writer makes MAX + 1 inside the
-- completing transaction ordered); `_since` feeds and Bulk Data exports page by it, so a
-- puller never misses or repeats a record. Receipts delivered before this version are
-- numbered in the order of their delivery time.
ALTER TABLE receipts ADD COLUMN feed_seq INTEGER;
WITH numbered AS (
    SELECT id, ROW_NUMBER() OVER (ORDER BY delivered_at, id) AS seq
    FROM receipts WHERE status = 'delivered'
)
UPDATE receipts SET feed_seq = numbered.seq FROM numbered WHERE numbered.id = receipts.id;
CREATE UNIQUE INDEX receipts_feed ON receipts (feed_seq);
CREATE INDEX receipts_feed_org ON receipts (organization_id, feed_seq) WHERE feed_seq IS NOT NULL;
CREATE INDEX receipts_feed_time ON receipts (delivered_at) WHERE feed_seq IS NOT NULL;

-- Bulk Data $export jobs. The files are on the disk of the instance that wrote them
-- (`owner`), under <data_dir>/exports/<id>/.
CREATE TABLE export_jobs (
    id               TEXT PRIMARY KEY,
    requester        TEXT NOT NULL,         -- client:<id>; only it may see the job
    organization_id  TEXT,                  -- NULL: every organization
    since            INTEGER,               -- _since (ms)
    types            TEXT,                  -- _type, comma separated; NULL: every type
    request          TEXT NOT NULL,         -- the kick-off URL
    status           TEXT NOT NULL,         -- in-progress | completed | failed | cancelled
    owner            TEXT,                  -- the worker holding (or that held) the job
    lease_until      INTEGER,
    until_seq        INTEGER NOT NULL,      -- the snapshot: feed positions up to this one
    transaction_time INTEGER NOT NULL,
    records_done     INTEGER NOT NULL DEFAULT 0,
    records_total    INTEGER,
    resources_done   INTEGER NOT NULL DEFAULT 0,
    created_at       INTEGER NOT NULL,
    completed_at     INTEGER,
    expires_at       INTEGER,
    manifest         TEXT,                  -- JSON, once completed
    error            TEXT
);
CREATE INDEX export_jobs_claim ON export_jobs (status, lease_until);
CREATE INDEX export_jobs_expiry ON export_jobs (expires_at);
