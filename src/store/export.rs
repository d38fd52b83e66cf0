//! What the store keeps for pulling (migration 0006): the feed position of every delivered
//! record, and the Bulk Data export jobs.
//!
//! **The feed order.** Every receipt gets a `feed_seq` when — and in the order in which —
//! its delivery is committed ([`super::Store::complete`] with `Completion::Delivered`).
//! Ordering by a timestamp would not do: a delivery that commits late with an earlier
//! timestamp would land behind a puller's position and never be seen. Numbers are handed out
//! so that a number becomes visible only after every smaller one is (SQLite: the single
//! writer thread; PostgreSQL: an advisory lock held from the assignment to the commit, see
//! `outbox::POSITIONS_LOCK`), so a
//! puller that has read up to `n` never later finds a new record below `n`. `delivered_at`
//! is kept non-decreasing along `feed_seq` (a delivery is never stamped earlier than the one
//! before it), which makes `_since` and an export's `transactionTime` consistent with it.
//!
//! **Export jobs** are rows: a kick-off inserts one `in-progress`; a worker of any instance
//! claims it with a lease it renews while it writes ([`super::Store::claim_export_job`]);
//! every progress and the end are fenced by that lease, so a job whose worker died is taken
//! over (and restarted) by another, and a cancelled job stops at the next page.

use super::db::{Query, Row, args};
use super::{Result, Store};
use serde_json::Value;

/// The columns of `export_jobs` in the order they are read into an [`ExportJob`].
const JOB_COLUMNS: &str = "id, requester, organization_id, since, types, request, status, owner, lease_until, until_seq, \
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
    /// The transaction Bundle of the delivered revision as it was stored (before NIKs were
    /// resolved to IHS numbers).
    pub bundle: Value,
    /// The record was cancelled: SATUSEHAT holds its resources as entered-in-error.
    pub cancelled: bool,
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
    pub fn parse(s: &str) -> Result<ExportStatus> {
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
    fn columns(&self) -> (&'static str, Option<String>, Option<String>) {
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

fn join_types(types: &[String]) -> Option<String> {
    (!types.is_empty()).then(|| types.join(","))
}

fn split_types(text: Option<String>) -> Vec<String> {
    text.map(|t| {
        t.split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    })
    .unwrap_or_default()
}

fn job(row: &Row) -> Result<ExportJob> {
    Ok(ExportJob {
        id: row.get(0)?,
        requester: row.get(1)?,
        organization_id: row.get(2)?,
        since: row.get(3)?,
        types: split_types(row.get(4)?),
        request: row.get(5)?,
        status: ExportStatus::parse(&row.get::<String>(6)?)?,
        owner: row.get(7)?,
        lease_until: row.get(8)?,
        until_seq: row.get(9)?,
        transaction_time: row.get(10)?,
        records_done: row.get(11)?,
        records_total: row.get(12)?,
        resources_done: row.get(13)?,
        created_at: row.get(14)?,
        completed_at: row.get(15)?,
        expires_at: row.get(16)?,
        manifest: row.json_opt(17)?,
        error: row.get(18)?,
    })
}

/// The FROM and WHERE of a feed query: delivered records whose Bundle is still held.
fn feed_query(select: &str, q: &FeedQuery) -> Query {
    let mut query = Query::new(format!(
        "SELECT {select} FROM receipts r JOIN revisions v ON v.receipt_id = r.id AND v.revision = r.delivered_revision \
         WHERE v.bundle IS NOT NULL"
    ));
    let (after, until) = (
        query.bind(q.after_seq),
        query.bind(q.until_seq.unwrap_or(i64::MAX)),
    );
    query.push(&format!(
        " AND r.feed_seq > {after} AND r.feed_seq <= {until}"
    ));
    query.and_eq("r.organization_id", q.organization_id.as_deref());
    if let Some(since) = q.since {
        let p = query.bind(since);
        // `delivered_at` never decreases along the feed: start at the first record delivered
        // at `since` (found by its index) instead of walking the whole history.
        query.push(&format!(
            " AND r.delivered_at >= {p} AND r.feed_seq >= COALESCE((SELECT MIN(feed_seq) FROM receipts \
             WHERE feed_seq IS NOT NULL AND delivered_at >= {p}), 9223372036854775807)"
        ));
    }
    query
}

impl Store {
    /// Delivered records whose Bundle is still held, in feed order (`feed_seq`), at most
    /// `query.limit` of them.
    pub async fn feed(&self, query: &FeedQuery) -> Result<Vec<FeedItem>> {
        let q = query.clone();
        self.read(move |tx| {
            Box::pin(async move {
                let mut query = feed_query(
                    "r.feed_seq, r.id, r.organization_id, r.record_type, r.delivered_at, v.bundle, r.status",
                    &q,
                );
                let p = query.bind(q.limit as i64);
                query.push(&format!(" ORDER BY r.feed_seq LIMIT {p}"));
                tx.query(&query.sql, &query.args)
                    .await?
                    .iter()
                    .map(|r| {
                        Ok(FeedItem {
                            seq: r.get(0)?,
                            receipt_id: r.get(1)?,
                            organization_id: r.get(2)?,
                            record_type: r.get(3)?,
                            delivered_at: r.get(4)?,
                            bundle: r.json(5)?,
                            cancelled: r.get::<String>(6)? == "cancelled",
                        })
                    })
                    .collect()
            })
        })
        .await
    }

    /// How many records [`Store::feed`] would return without its limit.
    pub async fn feed_count(&self, query: &FeedQuery) -> Result<u64> {
        let q = query.clone();
        self.read(move |tx| {
            Box::pin(async move {
                let query = feed_query("COUNT(*)", &q);
                Ok(tx.query_one(&query.sql, &query.args).await?.get::<i64>(0)? as u64)
            })
        })
        .await
    }

    /// Insert an export job, `in-progress`; its snapshot (`until_seq`, `transaction_time`) is
    /// the feed as committed now.
    pub async fn create_export_job(&self, new: &NewExportJob) -> Result<ExportJob> {
        let j = new.clone();
        self.write(move |tx| {
            Box::pin(async move {
                // One statement, one snapshot: every feed position up to the last one it sees
                // is committed (they become visible in order), so the snapshot has no holes.
                // Its time is the delivery time of its last record.
                let row = tx
                    .query_one(
                        &format!(
                            "INSERT INTO export_jobs (id, requester, organization_id, since, types, request, status, until_seq, \
                             transaction_time, created_at) \
                             SELECT $1, $2, $3, $4, $5, $6, 'in-progress', COALESCE(last.feed_seq, 0), COALESCE(last.delivered_at, $7), $7 \
                             FROM (SELECT 1 AS one) one LEFT JOIN (SELECT feed_seq, delivered_at FROM receipts WHERE feed_seq IS NOT NULL \
                                                            ORDER BY feed_seq DESC LIMIT 1) last ON TRUE \
                             RETURNING {JOB_COLUMNS}"
                        ),
                        args![&j.id, &j.requester, &j.organization_id, j.since, join_types(&j.types), &j.request, j.created_at],
                    )
                    .await?;
                job(&row)
            })
        })
        .await
    }

    pub async fn export_job(&self, id: &str) -> Result<Option<ExportJob>> {
        let id = id.to_string();
        self.read(move |tx| {
            Box::pin(async move {
                tx.query_opt(
                    &format!("SELECT {JOB_COLUMNS} FROM export_jobs WHERE id = $1"),
                    args![id],
                )
                .await?
                .as_ref()
                .map(job)
                .transpose()
            })
        })
        .await
    }

    /// Claim the oldest in-progress job that nobody holds (or whose holder's lease ran out)
    /// for `owner` until `now + lease_ms`. Its progress restarts from zero: the files of a
    /// worker that died are on its own disk.
    pub async fn claim_export_job(
        &self,
        owner: &str,
        now: i64,
        lease_ms: i64,
    ) -> Result<Option<ExportJob>> {
        let owner = owner.to_string();
        self.write(move |tx| {
            Box::pin(async move {
                // SKIP LOCKED (PostgreSQL): instances claiming at once take different jobs (or
                // none), never the same one; the condition is checked again on the locked row.
                tx.query_opt(
                    &format!(
                        "UPDATE export_jobs SET owner = $1, lease_until = $2, records_done = 0, resources_done = 0, \
                         records_total = NULL \
                         WHERE id = (SELECT id FROM export_jobs WHERE status = 'in-progress' \
                                     AND (lease_until IS NULL OR lease_until < $3) ORDER BY created_at LIMIT 1 {{skip_locked}}) \
                         RETURNING {JOB_COLUMNS}"
                    ),
                    args![owner, now + lease_ms, now],
                )
                .await?
                .as_ref()
                .map(job)
                .transpose()
            })
        })
        .await
    }

    /// Record progress and renew the lease. `false` if `owner` no longer holds the job (it
    /// was cancelled, or taken over after the lease ran out): the worker stops.
    pub async fn export_progress(
        &self,
        id: &str,
        owner: &str,
        p: ExportProgress,
        lease_until: i64,
    ) -> Result<bool> {
        let (id, owner) = (id.to_string(), owner.to_string());
        self.write(move |tx| {
            Box::pin(async move {
                Ok(tx
                    .execute(
                        "UPDATE export_jobs SET records_done = $3, records_total = $4, resources_done = $5, lease_until = $6 \
                         WHERE id = $1 AND owner = $2 AND status = 'in-progress'",
                        args![id, owner, p.records_done, p.records_total, p.resources_done, lease_until],
                    )
                    .await?
                    > 0)
            })
        })
        .await
    }

    /// End a job `owner` holds; its files (and then the row's answers) expire at
    /// `expires_at`. `false` if `owner` no longer holds it.
    pub async fn finish_export_job(
        &self,
        id: &str,
        owner: &str,
        end: &ExportEnd,
        now: i64,
        expires_at: i64,
    ) -> Result<bool> {
        let (id, owner) = (id.to_string(), owner.to_string());
        let (status, manifest, error) = end.columns();
        self.write(move |tx| {
            Box::pin(async move {
                Ok(tx
                    .execute(
                        "UPDATE export_jobs SET status = $3, manifest = $4, error = $5, completed_at = $6, expires_at = $7, \
                         lease_until = NULL WHERE id = $1 AND owner = $2 AND status = 'in-progress'",
                        args![id, owner, status, manifest, error, now, expires_at],
                    )
                    .await?
                    > 0)
            })
        })
        .await
    }

    /// Cancel a job, whatever its status (`DELETE` of its status URL). `false` if there is no
    /// such job or it was cancelled before.
    pub async fn cancel_export_job(&self, id: &str, now: i64) -> Result<bool> {
        let id = id.to_string();
        self.write(move |tx| {
            Box::pin(async move {
                Ok(tx
                    .execute(
                        "UPDATE export_jobs SET status = 'cancelled', expires_at = $2, lease_until = NULL \
                         WHERE id = $1 AND status <> 'cancelled'",
                        args![id, now],
                    )
                    .await?
                    > 0)
            })
        })
        .await
    }

    /// Forget the jobs that expired before `before`; how many.
    pub async fn purge_export_jobs(&self, before: i64) -> Result<u64> {
        self.write(move |tx| {
            Box::pin(async move {
                tx.execute(
                    "DELETE FROM export_jobs WHERE expires_at < $1",
                    args![before],
                )
                .await
            })
        })
        .await
    }
}
