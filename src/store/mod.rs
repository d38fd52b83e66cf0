//! Durable state: receipts (one per accepted record, carrying its delivery state — the
//! outbox is the receipts not yet delivered), payloads (raw record and Bundle, prunable),
//! the delivery attempt log, the NIK → IHS look-up cache, and facilities with their API
//! keys.
//!
//! One [`Store`] trait, one behaviour: the SQLite backend ([`sqlite`]) is the embedded
//! default. Every method that changes state returns only after the change is durable — a
//! facility's record is acknowledged (202) only after [`Store::accept`] returns.

pub mod postgres;
pub mod pull;
pub mod retention;
pub mod sqlite;

pub use pull::{
    ExportEnd, ExportJob, ExportProgress, ExportStatus, FeedItem, FeedQuery, NewExportJob,
};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(String),
    #[error("the store is shutting down")]
    Closed,
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Database(e.to_string())
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// Where a record is on its way to SATUSEHAT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Accepted, waiting for its first delivery attempt.
    Queued,
    /// Leased by a forwarder; an attempt is under way.
    Delivering,
    /// The last attempt failed in a way worth retrying; see `next_attempt_at`.
    Retrying,
    /// SATUSEHAT has it (created, or recognised as a duplicate).
    Delivered,
    /// SATUSEHAT refused it for good; the upstream OperationOutcome says why. Replayable.
    Dead,
    /// An operator decided a dead letter will not be sent, with a reason. Kept for the audit.
    Discarded,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Delivering => "delivering",
            Status::Retrying => "retrying",
            Status::Delivered => "delivered",
            Status::Dead => "dead",
            Status::Discarded => "discarded",
        }
    }
    pub fn parse(s: &str) -> Result<Status> {
        Ok(match s {
            "queued" => Status::Queued,
            "delivering" => Status::Delivering,
            "retrying" => Status::Retrying,
            "delivered" => Status::Delivered,
            "dead" => Status::Dead,
            "discarded" => Status::Discarded,
            other => return Err(StoreError::Corrupt(format!("unknown status `{other}`"))),
        })
    }
    pub const ALL: [Status; 6] = [
        Status::Queued,
        Status::Delivering,
        Status::Retrying,
        Status::Delivered,
        Status::Dead,
        Status::Discarded,
    ];
}

/// A record that passed steps 1–3 and is ready to be made durable.
#[derive(Debug, Clone)]
pub struct NewRecord {
    pub facility_id: String,
    pub organization_id: String,
    pub record_type: String,
    pub local_id: String,
    /// SHA-256 of the raw record, to tell a re-send from a changed record under the same id.
    pub content_hash: String,
    /// The local format it arrived in (an adapter), or None for the canonical record.
    pub format: Option<String>,
    pub raw: Value,
    pub bundle: Value,
    pub received_at: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Accepted {
    /// Stored now; the receipt is new.
    New { receipt_id: String },
    /// The facility sent this local id before. `same_content` tells a re-send (answer with
    /// the same receipt) from a different record under the same id.
    Existing {
        receipt_id: String,
        same_content: bool,
    },
}

/// A receipt as the facility (and operators) see it.
#[derive(Debug, Clone, Serialize)]
pub struct Receipt {
    pub id: String,
    pub facility_id: String,
    pub organization_id: String,
    pub record_type: String,
    pub local_id: String,
    pub status: Status,
    pub attempts: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub next_attempt_at: Option<i64>,
    pub last_error: Option<String>,
    pub delivered_at: Option<i64>,
    /// What SATUSEHAT created, e.g. `[{"resourceType": "Encounter", "id": "…"}]`.
    pub server_ids: Option<Value>,
    /// SATUSEHAT's OperationOutcome for a dead letter.
    pub upstream_outcome: Option<Value>,
    /// Why an operator discarded it.
    pub discard_reason: Option<String>,
    /// The local format the record arrived in (None: canonical).
    pub format: Option<String>,
    /// The raw record and Bundle were pruned (retention); the receipt itself stays.
    pub pruned: bool,
}

/// What a facility sent and what gerbang made of it.
#[derive(Debug, Clone, Serialize)]
pub struct Payload {
    pub raw: Value,
    pub bundle: Value,
}

/// One delivery attempt, for the audit of a receipt.
#[derive(Debug, Clone, Serialize)]
pub struct Attempt {
    pub attempt: i64,
    pub started_at: i64,
    pub finished_at: i64,
    /// delivered | duplicate | retry | dead | replayed | discarded
    pub result: String,
    pub http_status: Option<i64>,
    pub detail: Option<String>,
}

/// Which receipts to list (all conditions must hold).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ReceiptFilter {
    pub status: Option<Status>,
    pub record_type: Option<String>,
    pub organization_id: Option<String>,
    pub facility_id: Option<String>,
    /// A SATUSEHAT rule number in the upstream OperationOutcome.
    pub rule: Option<u32>,
    /// Received at or after (ms).
    pub since: Option<i64>,
    /// Received before (ms).
    pub until: Option<i64>,
}

/// A receipt leased for one delivery attempt.
#[derive(Debug, Clone)]
pub struct Lease {
    pub receipt_id: String,
    pub organization_id: String,
    pub record_type: String,
    /// Attempts since the record entered the queue (accepted, or replayed), including the
    /// one now starting: the retry budget.
    pub attempts: i64,
    /// When the record entered the queue (accepted, or replayed): the age budget.
    pub created_at: i64,
    pub bundle: Value,
}

/// How a delivery attempt ended.
#[derive(Debug, Clone)]
pub enum Completion {
    Delivered {
        server_ids: Value,
        duplicate: bool,
    },
    Retry {
        next_attempt_at: i64,
        error: String,
        http_status: Option<u16>,
    },
    Dead {
        error: String,
        outcome: Value,
        http_status: Option<u16>,
    },
}

/// A facility: who may push records, and for which SATUSEHAT organization.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Facility {
    pub id: String,
    pub name: String,
    pub organization_id: String,
    pub location_id: String,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Make a record durable with its receipt and outbox entry, in one transaction — or
    /// recognise it as sent before.
    async fn accept(&self, record: NewRecord) -> Result<Accepted>;

    /// The receipt of a facility's record, if it was accepted before: `(receipt id,
    /// content hash)`.
    async fn find_by_local_id(
        &self,
        facility_id: &str,
        record_type: &str,
        local_id: &str,
    ) -> Result<Option<(String, String)>>;

    async fn receipt(&self, receipt_id: &str) -> Result<Option<Receipt>>;

    /// Organizations with receipts due now (or whose lease expired).
    async fn due_organizations(&self, now: i64) -> Result<Vec<String>>;

    /// Lease up to `limit` receipts of `organization` that are due (or whose lease expired)
    /// for one attempt each. The lease is held until `now + lease_ms` unless completed earlier.
    async fn lease_due(
        &self,
        owner: &str,
        organization: &str,
        now: i64,
        lease_ms: i64,
        limit: usize,
    ) -> Result<Vec<Lease>>;

    /// Record how an attempt ended. `false` if the lease was no longer held by `owner`
    /// (it expired and another forwarder took the receipt over): nothing is changed then.
    async fn complete(
        &self,
        receipt_id: &str,
        owner: &str,
        started_at: i64,
        now: i64,
        completion: Completion,
    ) -> Result<bool>;

    /// Release every lease, at start of a single-instance gateway: no other process can hold
    /// one, so deliveries interrupted by a crash resume at once instead of after the lease.
    async fn release_all_leases(&self) -> Result<u64>;

    /// When the next receipt becomes due (for the forwarder to sleep exactly that long).
    async fn next_due_at(&self) -> Result<Option<i64>>;

    /// Number of receipts per status.
    async fn counts(&self) -> Result<Vec<(Status, u64)>>;

    /// The cached value of a look-up (`kind` e.g. "patient-nik", `key_hash` a SHA-256 of the
    /// NIK), if not expired.
    async fn cached_lookup(&self, kind: &str, key_hash: &str, now: i64) -> Result<Option<String>>;
    async fn cache_lookup(
        &self,
        kind: &str,
        key_hash: &str,
        value: &str,
        expires_at: i64,
    ) -> Result<()>;

    async fn facility_by_key_hash(&self, key_hash: &str) -> Result<Option<Facility>>;
    /// Create (or update) a facility and add an API key (its hash) for it.
    async fn add_facility_key(&self, facility: &Facility, key_hash: &str, now: i64) -> Result<()>;

    async fn facility(&self, facility_id: &str) -> Result<Option<Facility>>;

    /// Add an operator's API key (its hash) for the admin endpoints.
    async fn add_operator_key(&self, name: &str, key_hash: &str, now: i64) -> Result<()>;
    /// The operator a key belongs to, if it is valid.
    async fn operator_by_key_hash(&self, key_hash: &str) -> Result<Option<String>>;

    /// Whether one process owns this store (SQLite). Only then may leases be taken back at
    /// start; with several gateways on one database, leases only expire.
    fn exclusive(&self) -> bool;

    /// Receipts matching `filter`, newest first.
    async fn list_receipts(&self, filter: &ReceiptFilter, limit: usize) -> Result<Vec<Receipt>>;

    /// The raw record and the Bundle of a receipt (None once pruned).
    async fn payload(&self, receipt_id: &str) -> Result<Option<Payload>>;

    /// The delivery attempts of a receipt, oldest first.
    async fn attempts(&self, receipt_id: &str) -> Result<Vec<Attempt>>;

    /// Put a dead letter back in the queue with `bundle` (the record re-mapped with the
    /// current mappings), due now. `false` if it is not a dead letter (any more).
    async fn requeue(&self, receipt_id: &str, bundle: &Value, now: i64) -> Result<bool>;

    /// Give up on a dead letter for good, with the operator's reason. `false` if it is not a
    /// dead letter.
    async fn discard(&self, receipt_id: &str, reason: &str, now: i64) -> Result<bool>;

    /// Delete the payloads (raw record and Bundle) of receipts delivered or discarded before
    /// `before`; the receipts stay. Returns how many were pruned.
    async fn prune_payloads(&self, before: i64) -> Result<u64>;

    // ---- pulling (migration 0006): the `_since` feed and Bulk Data export jobs ([`pull`])

    /// Delivered records whose payload is still held, in feed order (`feed_seq`), at most
    /// `query.limit` of them.
    async fn feed(&self, query: &FeedQuery) -> Result<Vec<FeedItem>>;
    /// How many records [`Store::feed`] would return without its limit.
    async fn feed_count(&self, query: &FeedQuery) -> Result<u64>;
    /// Insert an export job, `in-progress`; its snapshot (`until_seq`, `transaction_time`) is
    /// the feed as committed now.
    async fn create_export_job(&self, job: &NewExportJob) -> Result<ExportJob>;
    async fn export_job(&self, id: &str) -> Result<Option<ExportJob>>;
    /// Claim the oldest in-progress job that nobody holds (or whose holder's lease ran out)
    /// for `owner` until `now + lease_ms`. Its progress restarts from zero: the files of a
    /// worker that died are on its own disk.
    async fn claim_export_job(
        &self,
        owner: &str,
        now: i64,
        lease_ms: i64,
    ) -> Result<Option<ExportJob>>;
    /// Record progress and renew the lease. `false` if `owner` no longer holds the job (it
    /// was cancelled, or taken over after the lease ran out): the worker stops.
    async fn export_progress(
        &self,
        id: &str,
        owner: &str,
        progress: ExportProgress,
        lease_until: i64,
    ) -> Result<bool>;
    /// End a job `owner` holds; its files (and then the row's answers) expire at
    /// `expires_at`. `false` if `owner` no longer holds it.
    async fn finish_export_job(
        &self,
        id: &str,
        owner: &str,
        end: &ExportEnd,
        now: i64,
        expires_at: i64,
    ) -> Result<bool>;
    /// Cancel a job, whatever its status (`DELETE` of its status URL). `false` if there is no
    /// such job or it was cancelled before.
    async fn cancel_export_job(&self, id: &str, now: i64) -> Result<bool>;
    /// Forget the jobs that expired before `before`; how many.
    async fn purge_export_jobs(&self, before: i64) -> Result<u64>;

    /// Record who did what (pushed, pulled, replayed, discarded …).
    async fn audit(&self, event: AuditEvent) -> Result<()>;

    /// Audit events matching `filter`, newest first.
    async fn audit_events(&self, filter: &AuditFilter, limit: usize) -> Result<Vec<AuditEvent>>;

    // ---- access (migration 0005): facility key revocation, SMART clients and their tokens

    /// Revoke one facility API key (by its hash). The facility it belonged to, or None if no
    /// valid key has this hash.
    async fn revoke_facility_key(&self, key_hash: &str, now: i64) -> Result<Option<String>>;
    /// Revoke every valid key of a facility; how many were revoked.
    async fn revoke_facility_keys(&self, facility_id: &str, now: i64) -> Result<u64>;

    /// Register a SMART Backend Services client, or replace the keys, scopes, name and
    /// organization of one registered before (and lift its revocation).
    async fn add_smart_client(&self, client: &SmartClient, now: i64) -> Result<()>;
    /// A registered client, revoked or not (see `revoked_at`).
    async fn smart_client(&self, client_id: &str) -> Result<Option<SmartClient>>;
    /// Revoke a client: its assertions are refused and its access tokens stop working at
    /// once. `false` if there is no such (valid) client.
    async fn revoke_smart_client(&self, client_id: &str, now: i64) -> Result<bool>;

    /// Record the `jti` of a client assertion that is valid until `expires_at`. `false` if
    /// the same client used this `jti` before (a replay). Forgets the expired ones.
    async fn use_assertion_jti(
        &self,
        client_id: &str,
        jti: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<bool>;
    /// Store an access token issued to a client (its hash, never the token).
    async fn add_access_token(&self, token: &AccessToken, now: i64) -> Result<()>;
    /// The access token with this hash, if its client is still registered and not revoked
    /// (expired tokens are returned too, for a precise answer; the caller checks
    /// `expires_at`).
    async fn access_token(&self, token_hash: &str) -> Result<Option<AccessToken>>;
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

/// Who did what to which record, and when. Never carries a NIK or a name.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AuditEvent {
    pub at: i64,
    /// `facility:<id>`, `client:<id>`, `operator:<name>` …
    pub actor: String,
    /// push | pull | replay | discard | …
    pub action: String,
    pub receipt_id: Option<String>,
    pub organization_id: Option<String>,
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub receipt_id: Option<String>,
    pub organization_id: Option<String>,
    pub since: Option<i64>,
}

/// SHA-256, hex — for API keys, record contents and look-up keys (a NIK is never stored as a
/// cache key in clear).
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(data);
    let mut s = String::with_capacity(64);
    for b in digest {
        s.push_str(&format!("{b:02x}"));
    }
    s
}
