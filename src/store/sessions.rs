//! Web console sessions (migration 0008): who is signed in to `/console`. Only the SHA-256
//! of a session's random token is kept — a copy of the database lets no one take over a
//! session — with the principal, the hash of the key used to sign in, the CSRF token of its
//! forms and its times. Whether a session is still live (idle and absolute expiry) is the
//! console's rule ([`crate::console::session`]); the store keeps and forgets rows.

use super::db::{Row, args};
use super::{Result, Store};

/// A console session as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleSession {
    /// SHA-256 (hex) of the session token in the cookie.
    pub token_hash: String,
    /// `operator` or `facility`.
    pub principal_kind: String,
    /// The operator's name, or the facility's id.
    pub principal_id: String,
    /// SHA-256 of the key signed in with: a session lives only as long as its key.
    pub key_hash: String,
    /// What every state-changing form of the session must carry.
    pub csrf_token: String,
    pub created_at: i64,
    pub last_seen_at: i64,
    /// The absolute end, whatever the activity.
    pub expires_at: i64,
}

fn session(r: &Row) -> Result<ConsoleSession> {
    Ok(ConsoleSession {
        token_hash: r.get(0)?,
        principal_kind: r.get(1)?,
        principal_id: r.get(2)?,
        key_hash: r.get(3)?,
        csrf_token: r.get(4)?,
        created_at: r.get(5)?,
        last_seen_at: r.get(6)?,
        expires_at: r.get(7)?,
    })
}

impl Store {
    /// Keep a new session, and forget those that ended: past their absolute expiry, or idle
    /// since before `idle_before`.
    pub async fn create_console_session(&self, s: &ConsoleSession, idle_before: i64) -> Result<()> {
        let s = s.clone();
        self.write(move |tx| {
            Box::pin(async move {
                tx.execute(
                    "DELETE FROM console_sessions WHERE expires_at <= $1 OR last_seen_at < $2",
                    args![s.created_at, idle_before],
                )
                .await?;
                tx.execute(
                    "INSERT INTO console_sessions (token_hash, principal_kind, principal_id, key_hash, csrf_token, \
                     created_at, last_seen_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    args![
                        &s.token_hash,
                        &s.principal_kind,
                        &s.principal_id,
                        &s.key_hash,
                        &s.csrf_token,
                        s.created_at,
                        s.last_seen_at,
                        s.expires_at
                    ],
                )
                .await?;
                Ok(())
            })
        })
        .await
    }

    /// The session with this token hash, live or not (the caller decides).
    pub async fn console_session(&self, token_hash: &str) -> Result<Option<ConsoleSession>> {
        let hash = token_hash.to_string();
        self.read(move |tx| {
            Box::pin(async move {
                tx.query_opt(
                    "SELECT token_hash, principal_kind, principal_id, key_hash, csrf_token, created_at, last_seen_at, \
                     expires_at FROM console_sessions WHERE token_hash = $1",
                    args![hash],
                )
                .await?
                .as_ref()
                .map(session)
                .transpose()
            })
        })
        .await
    }

    /// The session was used at `now` (its idle clock starts again).
    pub async fn touch_console_session(&self, token_hash: &str, now: i64) -> Result<()> {
        let hash = token_hash.to_string();
        self.write(move |tx| {
            Box::pin(async move {
                tx.execute(
                    "UPDATE console_sessions SET last_seen_at = $2 WHERE token_hash = $1 AND last_seen_at < $2",
                    args![hash, now],
                )
                .await?;
                Ok(())
            })
        })
        .await
    }

    /// End a session (sign-out, expiry, a revoked key). `false` if there was none.
    pub async fn delete_console_session(&self, token_hash: &str) -> Result<bool> {
        let hash = token_hash.to_string();
        self.write(move |tx| {
            Box::pin(async move {
                Ok(tx
                    .execute(
                        "DELETE FROM console_sessions WHERE token_hash = $1",
                        args![hash],
                    )
                    .await?
                    > 0)
            })
        })
        .await
    }
}
