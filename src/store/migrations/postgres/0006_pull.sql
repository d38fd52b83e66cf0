-- Version 6: pulling (see the SQLite migration of the same number). `feed_seq` is assigned
-- under an advisory lock held until the delivery commits (see `PostgresStore::complete`), so
-- positions become visible in order even with several gateway instances.
ALTER TABLE receipts ADD COLUMN feed_seq BIGINT;
UPDATE receipts r SET feed_seq = n.seq
FROM (SELECT id, row_number() OVER (ORDER BY delivered_at, id) AS seq
      FROM receipts WHERE status = 'delivered') n
WHERE r.id = n.id;
CREATE UNIQUE INDEX receipts_feed ON receipts (feed_seq);
CREATE INDEX receipts_feed_org ON receipts (organization_id, feed_seq) WHERE feed_seq IS NOT NULL;
CREATE INDEX receipts_feed_time ON receipts (delivered_at) WHERE feed_seq IS NOT NULL;

CREATE TABLE export_jobs (
    id               TEXT PRIMARY KEY,
    requester        TEXT NOT NULL,
    organization_id  TEXT,
    since            BIGINT,
    types            TEXT,
    request          TEXT NOT NULL,
    status           TEXT NOT NULL,
    owner            TEXT,
    lease_until      BIGINT,
    until_seq        BIGINT NOT NULL,
    transaction_time BIGINT NOT NULL,
    records_done     BIGINT NOT NULL DEFAULT 0,
    records_total    BIGINT,
    resources_done   BIGINT NOT NULL DEFAULT 0,
    created_at       BIGINT NOT NULL,
    completed_at     BIGINT,
    expires_at       BIGINT,
    manifest         TEXT,
    error            TEXT
);
CREATE INDEX export_jobs_claim ON export_jobs (status, lease_until);
CREATE INDEX export_jobs_expiry ON export_jobs (expires_at);
