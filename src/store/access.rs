//! Who may come in: facilities and their API keys (only hashes are stored), operators' keys,
//! SMART Backend Services pull clients with the access tokens gerbang issued them, and the
//! client-assertion `jti`s seen (each is accepted once).

use super::db::{Row, Tx, args};
use super::{Result, Store, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A facility: who may push records, and for which SATUSEHAT organization.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Facility {
    pub id: String,
    pub name: String,
    pub organization_id: String,
    pub location_id: String,
}

/// A facility API key as operators see it: never the key, only its hash and its dates.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApiKeyInfo {
    /// SHA-256 of the key: identifies it (to revoke it) without revealing it.
    pub key_hash: String,
    pub facility_id: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

/// A pull client (SMART Backend Services), registered with `gerbang client add`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SmartClient {
    /// The client_id: `iss` and `sub` of its client assertions.
    pub id: String,
    pub name: String,
    /// Its public keys, a JWK Set `{"keys": [...]}`.
    pub jwks: Value,
    /// The scopes it may be granted (a token gets those of them it asks for).
    pub scopes: Vec<String>,
    /// Restricted to this SATUSEHAT organization; None: every organization.
    pub organization_id: Option<String>,
    pub revoked_at: Option<i64>,
}

/// An access token gerbang issued (as stored: the hash of the token).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccessToken {
    pub token_hash: String,
    pub client_id: String,
    pub scopes: Vec<String>,
    pub organization_id: Option<String>,
    pub issued_at: i64,
    pub expires_at: i64,
}

/// How long an expired access token is kept, to tell "expired" from "unknown" (ms).
pub const EXPIRED_TOKENS_KEPT_MS: i64 = 24 * 3600 * 1000;

/// Scopes as stored: one space-separated text.
pub fn join_scopes(scopes: &[String]) -> String {
    scopes.join(" ")
}

pub fn split_scopes(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_string).collect()
}

fn facility(row: &Row) -> Result<Facility> {
    Ok(Facility {
        id: row.get(0)?,
        name: row.get(1)?,
        organization_id: row.get(2)?,
        location_id: row.get(3)?,
    })
}

async fn one_facility(tx: &mut dyn Tx, sql: &str, key: String) -> Result<Option<Facility>> {
    tx.query_opt(sql, args![key])
        .await?
        .as_ref()
        .map(facility)
        .transpose()
}

impl Store {
    /// The facility a valid (unrevoked) API key belongs to.
    pub async fn facility_by_key_hash(&self, key_hash: &str) -> Result<Option<Facility>> {
        let key = key_hash.to_string();
        self.read(move |tx| {
            Box::pin(one_facility(
                tx,
                "SELECT f.id, f.name, f.organization_id, f.location_id FROM api_keys k JOIN facilities f ON f.id = k.facility_id \
                 WHERE k.key_hash = $1 AND k.revoked_at IS NULL",
                key,
            ))
        })
        .await
    }

    pub async fn facility(&self, facility_id: &str) -> Result<Option<Facility>> {
        let id = facility_id.to_string();
        self.read(move |tx| {
            Box::pin(one_facility(
                tx,
                "SELECT id, name, organization_id, location_id FROM facilities WHERE id = $1",
                id,
            ))
        })
        .await
    }

    /// Every registered facility, by id.
    pub async fn facilities(&self) -> Result<Vec<Facility>> {
        self.read(|tx| {
            Box::pin(async move {
                tx.query(
                    "SELECT id, name, organization_id, location_id FROM facilities ORDER BY id",
                    args![],
                )
                .await?
                .iter()
                .map(facility)
                .collect()
            })
        })
        .await
    }

    /// Create (or update) a facility and add an API key (its hash) for it.
    pub async fn add_facility_key(
        &self,
        facility: &Facility,
        key_hash: &str,
        now: i64,
    ) -> Result<()> {
        let (f, key) = (facility.clone(), key_hash.to_string());
        self.write(move |tx| {
            Box::pin(async move {
                tx.execute(
                    "INSERT INTO facilities (id, name, organization_id, location_id, created_at) VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT (id) DO UPDATE SET name = excluded.name, organization_id = excluded.organization_id, \
                     location_id = excluded.location_id",
                    args![&f.id, &f.name, &f.organization_id, &f.location_id, now],
                )
                .await?;
                tx.execute(
                    "INSERT INTO api_keys (key_hash, facility_id, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                    args![key, &f.id, now],
                )
                .await?;
                Ok(())
            })
        })
        .await
    }

    /// Every facility API key (hashes and dates), by facility, oldest first.
    pub async fn facility_keys(&self) -> Result<Vec<ApiKeyInfo>> {
        self.read(|tx| {
            Box::pin(async move {
                tx.query(
                    "SELECT key_hash, facility_id, created_at, revoked_at FROM api_keys ORDER BY facility_id, created_at, key_hash",
                    args![],
                )
                .await?
                .iter()
                .map(|r| {
                    Ok(ApiKeyInfo {
                        key_hash: r.get(0)?,
                        facility_id: r.get(1)?,
                        created_at: r.get(2)?,
                        revoked_at: r.get(3)?,
                    })
                })
                .collect()
            })
        })
        .await
    }

    /// Revoke one facility API key (by its hash). The facility it belonged to, or None if no
    /// valid key has this hash.
    pub async fn revoke_facility_key(&self, key_hash: &str, now: i64) -> Result<Option<String>> {
        let key = key_hash.to_string();
        self.write(move |tx| {
            Box::pin(async move {
                tx.query_opt(
                    "UPDATE api_keys SET revoked_at = $2 WHERE key_hash = $1 AND revoked_at IS NULL RETURNING facility_id",
                    args![key, now],
                )
                .await?
                .map(|r| r.get(0))
                .transpose()
            })
        })
        .await
    }

    /// Revoke every valid key of a facility; how many were revoked.
    pub async fn revoke_facility_keys(&self, facility_id: &str, now: i64) -> Result<u64> {
        let id = facility_id.to_string();
        self.write(move |tx| {
            Box::pin(async move {
                tx.execute(
                    "UPDATE api_keys SET revoked_at = $2 WHERE facility_id = $1 AND revoked_at IS NULL",
                    args![id, now],
                )
                .await
            })
        })
        .await
    }

    /// Add an operator's API key (its hash) for the admin endpoints.
    pub async fn add_operator_key(&self, name: &str, key_hash: &str, now: i64) -> Result<()> {
        let (name, key) = (name.to_string(), key_hash.to_string());
        self.write(move |tx| {
            Box::pin(async move {
                tx.execute(
                    "INSERT INTO operator_keys (key_hash, name, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                    args![key, name, now],
                )
                .await?;
                Ok(())
            })
        })
        .await
    }

    /// The operator a key belongs to, if it is valid.
    pub async fn operator_by_key_hash(&self, key_hash: &str) -> Result<Option<String>> {
        let key = key_hash.to_string();
        self.read(move |tx| {
            Box::pin(async move {
                tx.query_opt(
                    "SELECT name FROM operator_keys WHERE key_hash = $1 AND revoked_at IS NULL",
                    args![key],
                )
                .await?
                .map(|r| r.get(0))
                .transpose()
            })
        })
        .await
    }

    /// Register a SMART Backend Services client, or replace the keys, scopes, name and
    /// organization of one registered before (and lift its revocation).
    pub async fn add_smart_client(&self, client: &SmartClient, now: i64) -> Result<()> {
        let c = client.clone();
        self.write(move |tx| {
            Box::pin(async move {
                tx.execute(
                    "INSERT INTO smart_clients (id, name, jwks, scopes, organization_id, created_at) VALUES ($1, $2, $3, $4, $5, $6) \
                     ON CONFLICT (id) DO UPDATE SET name = excluded.name, jwks = excluded.jwks, scopes = excluded.scopes, \
                     organization_id = excluded.organization_id, revoked_at = NULL",
                    args![&c.id, &c.name, &c.jwks, join_scopes(&c.scopes), &c.organization_id, now],
                )
                .await?;
                Ok(())
            })
        })
        .await
    }

    /// A registered client, revoked or not (see `revoked_at`).
    pub async fn smart_client(&self, client_id: &str) -> Result<Option<SmartClient>> {
        let id = client_id.to_string();
        self.read(move |tx| {
            Box::pin(async move {
                let Some(r) = tx
                    .query_opt(
                        "SELECT id, name, jwks, scopes, organization_id, revoked_at FROM smart_clients WHERE id = $1",
                        args![id],
                    )
                    .await?
                else {
                    return Ok(None);
                };
                let id: String = r.get(0)?;
                let jwks = r
                    .json(2)
                    .map_err(|e| StoreError::Corrupt(format!("JWKS of client {id}: {e}")))?;
                Ok(Some(SmartClient {
                    name: r.get(1)?,
                    jwks,
                    scopes: split_scopes(&r.get::<String>(3)?),
                    organization_id: r.get(4)?,
                    revoked_at: r.get(5)?,
                    id,
                }))
            })
        })
        .await
    }

    /// Revoke a client: its assertions are refused and its access tokens stop working at
    /// once. `false` if there is no such (valid) client.
    pub async fn revoke_smart_client(&self, client_id: &str, now: i64) -> Result<bool> {
        let id = client_id.to_string();
        self.write(move |tx| {
            Box::pin(async move {
                let n = tx
                    .execute(
                        "UPDATE smart_clients SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
                        args![&id, now],
                    )
                    .await?;
                tx.execute("DELETE FROM access_tokens WHERE client_id = $1", args![&id])
                    .await?;
                Ok(n > 0)
            })
        })
        .await
    }

    /// Record the `jti` of a client assertion that is valid until `expires_at`. `false` if
    /// the same client used this `jti` before (a replay). Forgets the expired ones.
    pub async fn use_assertion_jti(
        &self,
        client_id: &str,
        jti: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<bool> {
        let (client, jti) = (client_id.to_string(), jti.to_string());
        self.write(move |tx| {
            Box::pin(async move {
                tx.execute("DELETE FROM assertion_jtis WHERE expires_at < $1", args![now])
                    .await?;
                let n = tx
                    .execute(
                        "INSERT INTO assertion_jtis (client_id, jti, expires_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                        args![client, jti, expires_at],
                    )
                    .await?;
                Ok(n == 1)
            })
        })
        .await
    }

    /// Store an access token issued to a client (its hash, never the token).
    pub async fn add_access_token(&self, token: &AccessToken, now: i64) -> Result<()> {
        let t = token.clone();
        self.write(move |tx| {
            Box::pin(async move {
                tx.execute(
                    "DELETE FROM access_tokens WHERE expires_at < $1",
                    args![now - EXPIRED_TOKENS_KEPT_MS],
                )
                .await?;
                tx.execute(
                    "INSERT INTO access_tokens (token_hash, client_id, scopes, organization_id, issued_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                    args![&t.token_hash, &t.client_id, join_scopes(&t.scopes), &t.organization_id, t.issued_at, t.expires_at],
                )
                .await?;
                Ok(())
            })
        })
        .await
    }

    /// The access token with this hash, if its client is still registered and not revoked
    /// (expired tokens are returned too, for a precise answer; the caller checks
    /// `expires_at`).
    pub async fn access_token(&self, token_hash: &str) -> Result<Option<AccessToken>> {
        let hash = token_hash.to_string();
        self.read(move |tx| {
            Box::pin(async move {
                let Some(r) = tx
                    .query_opt(
                        "SELECT t.token_hash, t.client_id, t.scopes, t.organization_id, t.issued_at, t.expires_at \
                         FROM access_tokens t JOIN smart_clients c ON c.id = t.client_id \
                         WHERE t.token_hash = $1 AND c.revoked_at IS NULL",
                        args![hash],
                    )
                    .await?
                else {
                    return Ok(None);
                };
                Ok(Some(AccessToken {
                    token_hash: r.get(0)?,
                    client_id: r.get(1)?,
                    scopes: split_scopes(&r.get::<String>(2)?),
                    organization_id: r.get(3)?,
                    issued_at: r.get(4)?,
                    expires_at: r.get(5)?,
                }))
            })
        })
        .await
    }
}
