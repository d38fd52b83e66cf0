//! What the store keeps for pulling (migration 0006): the feed position of every delivered
//! record, and the Bulk Data export jobs.
//!
//! **The feed order.** Every receipt gets a `feed_seq` when — and in the order in which —
//! its delivery is committed ([`super::Store::complete`] with `Completion::Delivered`).
//! Ordering by a timestamp would not do: a delivery that commits late with an earlier
//! timestamp would land behind a puller's position and never be seen. Numbers are handed out
//! so that a number becomes visible only after every smaller one is (SQLite: the single
//! writer thread; PostgreSQL: an advisory lock held from the assignment to the commit), so a
//! puller that has read up to `n` never later finds a new record below `n`. `delivered_at`
//! is kept non-decreasing along `feed_seq` (a delivery is never stamped earlier than the one
//! before it), which makes `_since` and an export's `transactionTime` consistent with it.
//!
//! **Export jobs** are rows: a kick-off inserts one `in-progress`; a worker of any instance
//! claims it with a lease it renews while it writes ([`super::Store::claim_export_job`]);
//! every progress and the end are fenced by that lease, so a job whose worker died is taken
//! over (and restarted) by another, and a cancelled job stops at the next page.

use serde_json::Value;

/// The columns of `export_jobs` in the order both stores read them into an [`ExportJob`].
pub(crate) const JOB_COLUMNS: &str = "id, requester, organization_id, since, types, request, status, owner, lease_until, until_seq, \
     transaction_time, records_done, records_total, resources_done, created_at, completed_at, expires_at, manifest, error";

/// One page of the feed: delivered records whose payload is still held.
#[derive(Debug, Clone, Default)]
pub struct FeedQuery {
    /// Only records after this position (exclusive); 0 from the start.
    pub after_seq: i64,
    /// Only records up to this position (inclusive): an export's snapshot.
    pub until_seq: Option<i64>,
    /// Only records delivered at or after this time (ms).
    pub since: Option<i64>,
    /// Only this SATUSEHAT organization's records.
    pub organization_id: Option<String>,
    /// At most this many.
    pub limit: usize,
}

/// A delivered record, as the feed and the exports see it.
#[derive(Debug, Clone)]
pub struct FeedItem {
    pub seq: i64,
    pub receipt_id: String,
    pub organization_id: String,
    pub record_type: String,
    pub delivered_at: i64,
    /// The transaction Bundle as it was stored (before NIKs were resolved to IHS numbers).
    pub bundle: Value,
}

/// Where an export job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportStatus {
    InProgress,
    Completed,
    Failed,
    Cancelled,
}

impl ExportStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ExportStatus::InProgress => "in-progress",
            ExportStatus::Completed => "completed",
            ExportStatus::Failed => "failed",
            ExportStatus::Cancelled => "cancelled",
        }
    }
    pub fn parse(s: &str) -> super::Result<ExportStatus> {
        Ok(match s {
            "in-progress" => ExportStatus::InProgress,
            "completed" => ExportStatus::Completed,
            "failed" => ExportStatus::Failed,
            "cancelled" => ExportStatus::Cancelled,
            other => {
                return Err(super::StoreError::Corrupt(format!(
                    "unknown export status `{other}`"
                )));
            }
        })
    }
}

/// A kick-off.
#[derive(Debug, Clone)]
pub struct NewExportJob {
    pub id: String,
    /// Audit actor of the client that asked (`client:<id>`); only it may see the job.
    pub requester: String,
    /// Only this organization's records; None: every organization.
    pub organization_id: Option<String>,
    /// Only records delivered at or after (ms).
    pub since: Option<i64>,
    /// Only these resource types; empty: all.
    pub types: Vec<String>,
    /// The kick-off URL, as the manifest's `request`.
    pub request: String,
    pub created_at: i64,
}

/// An export job as stored.
#[derive(Debug, Clone)]
pub struct ExportJob {
    pub id: String,
    pub requester: String,
    pub organization_id: Option<String>,
    pub since: Option<i64>,
    pub types: Vec<String>,
    pub request: String,
    pub status: ExportStatus,
    /// The worker holding (or that last held) the job: the instance whose disk has the files.
    pub owner: Option<String>,
    pub lease_until: Option<i64>,
    /// The snapshot: records up to this feed position are exported.
    pub until_seq: i64,
    /// The manifest's `transactionTime` (ms): the delivery time of the record at
    /// `until_seq` — every matching record delivered up to it is in the export, and a next
    /// export with `_since` = this time misses nothing.
    pub transaction_time: i64,
    /// Records (Bundles) written so far, and how many the snapshot holds (known once a
    /// worker has started).
    pub records_done: i64,
    pub records_total: Option<i64>,
    pub resources_done: i64,
    pub created_at: i64,
    pub completed_at: Option<i64>,
    /// When the files go (and the status answers 410).
    pub expires_at: Option<i64>,
    pub manifest: Option<Value>,
    pub error: Option<String>,
}

/// Progress of a running job.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExportProgress {
    pub records_done: i64,
    pub records_total: i64,
    pub resources_done: i64,
}

/// How a job ended.
#[derive(Debug, Clone)]
pub enum ExportEnd {
    Completed { manifest: Value },
    Failed { error: String },
}

impl ExportEnd {
    /// The `status`, `manifest` and `error` columns of the finished job.
    pub(crate) fn columns(&self) -> (&'static str, Option<String>, Option<String>) {
        match self {
            ExportEnd::Completed { manifest } => (
                ExportStatus::Completed.as_str(),
                Some(manifest.to_string()),
                None,
            ),
            ExportEnd::Failed { error } => {
                (ExportStatus::Failed.as_str(), None, Some(error.clone()))
            }
        }
    }
}

pub(crate) fn join_types(types: &[String]) -> Option<String> {
    (!types.is_empty()).then(|| types.join(","))
}

pub(crate) fn split_types(text: Option<String>) -> Vec<String> {
    text.map(|t| {
        t.split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    })
    .unwrap_or_default()
}
