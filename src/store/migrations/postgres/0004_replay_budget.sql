-- Version 4: a replayed dead letter gets a fresh retry budget. `requeued_at` replaces the
-- acceptance time for the maximum age, and attempts before the replay do not count against
-- the maximum number of attempts (they stay in the attempt log).
ALTER TABLE receipts ADD COLUMN requeued_at BIGINT;
ALTER TABLE receipts ADD COLUMN attempts_before_requeue BIGINT NOT NULL DEFAULT 0;
