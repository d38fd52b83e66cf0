//! The SQLite side of pulling ([`crate::store::pull`]): the feed and the export jobs. Writes go
//! through the single writer thread like every other write, which is what orders `feed_seq`
//! (see `complete`) and makes a job claim atomic.

use super::*;
use crate::store::pull::{JOB_COLUMNS, join_types, split_types};

/// A job row; a status it does not know is the inner error.
fn job_from_row(row: &Row) -> rusqlite::Result<Result<ExportJob>> {
    let status = match ExportStatus::parse(&row.get::<_, String>(6)?) {
        Ok(s) => s,
        Err(e) => return Ok(Err(e)),
    };
    Ok(Ok(ExportJob {
        id: row.get(0)?,
        requester: row.get(1)?,
        organization_id: row.get(2)?,
        since: row.get(3)?,
        types: split_types(row.get(4)?),
        request: row.get(5)?,
        status,
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
        manifest: json_col(row, 17)?,
        error: row.get(18)?,
    }))
}

/// The WHERE clause and arguments of a feed query, from the first position to consider.
fn feed_conditions(q: &FeedQuery, after: i64) -> (String, Vec<Box<dyn rusqlite::ToSql + Send>>) {
    let mut sql = String::from("r.feed_seq > ? AND r.feed_seq <= ?");
    let mut args: Vec<Box<dyn rusqlite::ToSql + Send>> =
        vec![Box::new(after), Box::new(q.until_seq.unwrap_or(i64::MAX))];
    if let Some(org) = &q.organization_id {
        sql.push_str(" AND r.organization_id = ?");
        args.push(Box::new(org.clone()));
    }
    if let Some(since) = q.since {
        sql.push_str(" AND r.delivered_at >= ?");
        args.push(Box::new(since));
    }
    (sql, args)
}

/// Where to start: after `q.after_seq`, and — since `delivered_at` never decreases along the
/// feed — not before the first record delivered at `q.since` (found by its index, so that a
/// recent `_since` does not walk the whole history).
fn start_after(conn: &Connection, q: &FeedQuery) -> Result<i64> {
    let Some(since) = q.since else {
        return Ok(q.after_seq);
    };
    let first: Option<i64> = conn.query_row(
        "SELECT MIN(feed_seq) FROM receipts WHERE feed_seq IS NOT NULL AND delivered_at >= ?1",
        params![since],
        |r| r.get(0),
    )?;
    Ok(match first {
        Some(first) => q.after_seq.max(first - 1),
        // Nothing delivered since then: an empty page.
        None => i64::MAX,
    })
}

impl SqliteStore {
    pub(super) async fn pull_feed(&self, q: &FeedQuery) -> Result<Vec<FeedItem>> {
        let q = q.clone();
        self.read(move |conn| {
            let after = start_after(conn, &q)?;
            let (cond, mut args) = feed_conditions(&q, after);
            args.push(Box::new(q.limit as i64));
            let sql = format!(
                "SELECT r.feed_seq, r.id, r.organization_id, r.record_type, r.delivered_at, p.bundle \
                 FROM receipts r JOIN payloads p ON p.receipt_id = r.id \
                 WHERE {cond} ORDER BY r.feed_seq LIMIT ?"
            );
            let mut stmt = conn.prepare_cached(&sql)?;
            let refs: Vec<&dyn rusqlite::ToSql> =
                args.iter().map(|a| a.as_ref() as &dyn rusqlite::ToSql).collect();
            let rows: Vec<(i64, String, String, String, i64, String)> = stmt
                .query_map(refs.as_slice(), |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
                })?
                .collect::<rusqlite::Result<_>>()?;
            rows.into_iter()
                .map(|(seq, receipt_id, organization_id, record_type, delivered_at, bundle)| {
                    let bundle = serde_json::from_str(&bundle).map_err(|e| {
                        StoreError::Corrupt(format!("bundle of {receipt_id}: {e}"))
                    })?;
                    Ok(FeedItem { seq, receipt_id, organization_id, record_type, delivered_at, bundle })
                })
                .collect()
        })
        .await
    }

    pub(super) async fn pull_feed_count(&self, q: &FeedQuery) -> Result<u64> {
        let q = q.clone();
        self.read(move |conn| {
            let after = start_after(conn, &q)?;
            let (cond, args) = feed_conditions(&q, after);
            let sql = format!(
                "SELECT COUNT(*) FROM receipts r JOIN payloads p ON p.receipt_id = r.id WHERE {cond}"
            );
            let refs: Vec<&dyn rusqlite::ToSql> =
                args.iter().map(|a| a.as_ref() as &dyn rusqlite::ToSql).collect();
            let n: i64 = conn.query_row(&sql, refs.as_slice(), |r| r.get(0))?;
            Ok(n as u64)
        })
        .await
    }

    pub(super) async fn pull_create_export_job(&self, job: &NewExportJob) -> Result<ExportJob> {
        let j = job.clone();
        let id = job.id.clone();
        self.write(move |conn| {
            // In the writer: no delivery commits between reading the end of the feed and
            // inserting the job. The snapshot's time is the delivery time of its last record.
            conn.execute(
                "INSERT INTO export_jobs (id, requester, organization_id, since, types, request, status, until_seq, \
                 transaction_time, created_at) \
                 SELECT ?1, ?2, ?3, ?4, ?5, ?6, 'in-progress', COALESCE(last.feed_seq, 0), COALESCE(last.delivered_at, ?7), ?7 \
                 FROM (SELECT 1) LEFT JOIN (SELECT feed_seq, delivered_at FROM receipts WHERE feed_seq IS NOT NULL \
                                            ORDER BY feed_seq DESC LIMIT 1) last",
                params![j.id, j.requester, j.organization_id, j.since, join_types(&j.types), j.request, j.created_at],
            )?;
            Ok(())
        })
        .await?;
        self.pull_export_job(&id)
            .await?
            .ok_or_else(|| StoreError::Database(format!("export job {id} vanished")))
    }

    pub(super) async fn pull_export_job(&self, id: &str) -> Result<Option<ExportJob>> {
        let id = id.to_string();
        self.read(move |conn| {
            conn.query_row(
                &format!("SELECT {JOB_COLUMNS} FROM export_jobs WHERE id = ?1"),
                params![id],
                job_from_row,
            )
            .optional()?
            .transpose()
        })
        .await
    }

    pub(super) async fn pull_claim_export_job(
        &self,
        owner: &str,
        now: i64,
        lease_ms: i64,
    ) -> Result<Option<ExportJob>> {
        let owner = owner.to_string();
        self.write(move |conn| {
            conn.query_row(
                &format!(
                    "UPDATE export_jobs SET owner = ?1, lease_until = ?2, records_done = 0, resources_done = 0, \
                     records_total = NULL \
                     WHERE id = (SELECT id FROM export_jobs WHERE status = 'in-progress' \
                                 AND (lease_until IS NULL OR lease_until < ?3) ORDER BY created_at LIMIT 1) \
                     RETURNING {JOB_COLUMNS}"
                ),
                params![owner, now + lease_ms, now],
                job_from_row,
            )
            .optional()?
            .transpose()
        })
        .await
    }

    pub(super) async fn pull_export_progress(
        &self,
        id: &str,
        owner: &str,
        p: ExportProgress,
        lease_until: i64,
    ) -> Result<bool> {
        let (id, owner) = (id.to_string(), owner.to_string());
        self.write(move |conn| {
            let n = conn.execute(
                "UPDATE export_jobs SET records_done = ?3, records_total = ?4, resources_done = ?5, lease_until = ?6 \
                 WHERE id = ?1 AND owner = ?2 AND status = 'in-progress'",
                params![id, owner, p.records_done, p.records_total, p.resources_done, lease_until],
            )?;
            Ok(n > 0)
        })
        .await
    }

    pub(super) async fn pull_finish_export_job(
        &self,
        id: &str,
        owner: &str,
        end: &ExportEnd,
        now: i64,
        expires_at: i64,
    ) -> Result<bool> {
        let (id, owner) = (id.to_string(), owner.to_string());
        let (status, manifest, error) = end.columns();
        self.write(move |conn| {
            let n = conn.execute(
                "UPDATE export_jobs SET status = ?3, manifest = ?4, error = ?5, completed_at = ?6, expires_at = ?7, \
                 lease_until = NULL WHERE id = ?1 AND owner = ?2 AND status = 'in-progress'",
                params![id, owner, status, manifest, error, now, expires_at],
            )?;
            Ok(n > 0)
        })
        .await
    }

    pub(super) async fn pull_cancel_export_job(&self, id: &str, now: i64) -> Result<bool> {
        let id = id.to_string();
        self.write(move |conn| {
            let n = conn.execute(
                "UPDATE export_jobs SET status = 'cancelled', expires_at = ?2, lease_until = NULL \
                 WHERE id = ?1 AND status <> 'cancelled'",
                params![id, now],
            )?;
            Ok(n > 0)
        })
        .await
    }

    pub(super) async fn pull_purge_export_jobs(&self, before: i64) -> Result<u64> {
        self.write(move |conn| {
            let n = conn.execute(
                "DELETE FROM export_jobs WHERE expires_at < ?1",
                params![before],
            )?;
            Ok(n as u64)
        })
        .await
    }
}
