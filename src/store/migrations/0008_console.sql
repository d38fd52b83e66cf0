-- Written once for both databases (BIGINT is an integer column in SQLite too).
-- Version 8: the web console (`/console`). A signed-in person has a server-side session:
-- only the SHA-256 of its random token is stored (the token itself lives in the browser's
-- cookie), with who signed in, the hash of the key they signed in with (revoking that key
-- ends the session), the CSRF token its forms carry, and its clock: it ends after 8 hours
-- without a request (idle) and 24 hours after sign-in (absolute, `expires_at`).
CREATE TABLE console_sessions (
    token_hash     TEXT PRIMARY KEY,
    principal_kind TEXT NOT NULL,          -- operator | facility
    principal_id   TEXT NOT NULL,          -- the operator's name, or the facility's id
    key_hash       TEXT NOT NULL,
    csrf_token     TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    last_seen_at   BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL
);
CREATE INDEX console_sessions_expiry ON console_sessions (expires_at);

-- The overview charts deliveries of the last hours: revisions by when they were delivered.
CREATE INDEX revisions_outcome_at ON revisions (outcome_at);
