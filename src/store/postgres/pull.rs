//! The PostgreSQL side of pulling ([`crate::store::pull`]): the feed and the export jobs.
//! Jobs are claimed with `FOR UPDATE SKIP LOCKED`, so with several gateway instances each
//! job runs on one of them at a time.

use super::*;
use crate::store::pull::{JOB_COLUMNS, join_types, split_types};

fn job_from_row(row: &Row) -> Result<ExportJob> {
    Ok(ExportJob {
        id: row.get(0),
        requester: row.get(1),
        organization_id: row.get(2),
        since: row.get(3),
        types: split_types(row.get(4)),
        request: row.get(5),
        status: ExportStatus::parse(row.get(6))?,
        owner: row.get(7),
        lease_until: row.get(8),
        until_seq: row.get(9),
        transaction_time: row.get(10),
        records_done: row.get(11),
        records_total: row.get(12),
        resources_done: row.get(13),
        created_at: row.get(14),
        completed_at: row.get(15),
        expires_at: row.get(16),
        manifest: row
            .get::<_, Option<String>>(17)
            .map(|s| serde_json::from_str(&s))
            .transpose()
            .map_err(corrupt)?,
        error: row.get(18),
    })
}

type Args = Vec<Box<dyn ToSql + Sync + Send>>;

/// The WHERE clause and arguments of a feed query (`$1` … in order).
fn feed_conditions(q: &FeedQuery) -> (String, Args) {
    let mut args: Args = vec![
        Box::new(q.after_seq),
        Box::new(q.until_seq.unwrap_or(i64::MAX)),
    ];
    let mut sql = String::from("r.feed_seq > $1 AND r.feed_seq <= $2");
    if let Some(org) = &q.organization_id {
        args.push(Box::new(org.clone()));
        sql.push_str(&format!(" AND r.organization_id = ${}", args.len()));
    }
    if let Some(since) = q.since {
        args.push(Box::new(since));
        let n = args.len();
        // `delivered_at` never decreases along the feed: start at the first record delivered
        // at `since` (found by its index) instead of walking the whole history.
        sql.push_str(&format!(
            " AND r.delivered_at >= ${n} AND r.feed_seq >= COALESCE((SELECT MIN(feed_seq) FROM receipts \
             WHERE feed_seq IS NOT NULL AND delivered_at >= ${n}), 9223372036854775807)"
        ));
    }
    (sql, args)
}

fn refs(args: &Args) -> Vec<&(dyn ToSql + Sync)> {
    args.iter()
        .map(|a| a.as_ref() as &(dyn ToSql + Sync))
        .collect()
}

impl PostgresStore {
    pub(super) async fn pull_feed(&self, q: &FeedQuery) -> Result<Vec<FeedItem>> {
        let (cond, mut args) = feed_conditions(q);
        args.push(Box::new(q.limit as i64));
        let sql = format!(
            "SELECT r.feed_seq, r.id, r.organization_id, r.record_type, r.delivered_at, p.bundle \
             FROM receipts r JOIN payloads p ON p.receipt_id = r.id \
             WHERE {cond} ORDER BY r.feed_seq LIMIT ${}",
            args.len()
        );
        let client = self.pool.get().await?;
        let rows = client.query(&sql, &refs(&args)).await?;
        rows.iter()
            .map(|r| {
                let receipt_id: String = r.get(1);
                let bundle = serde_json::from_str(r.get::<_, &str>(5))
                    .map_err(|e| StoreError::Corrupt(format!("bundle of {receipt_id}: {e}")))?;
                Ok(FeedItem {
                    seq: r.get(0),
                    receipt_id,
                    organization_id: r.get(2),
                    record_type: r.get(3),
                    delivered_at: r.get(4),
                    bundle,
                })
            })
            .collect()
    }

    pub(super) async fn pull_feed_count(&self, q: &FeedQuery) -> Result<u64> {
        let (cond, args) = feed_conditions(q);
        let sql = format!(
            "SELECT COUNT(*) FROM receipts r JOIN payloads p ON p.receipt_id = r.id WHERE {cond}"
        );
        let client = self.pool.get().await?;
        let n: i64 = client.query_one(&sql, &refs(&args)).await?.get(0);
        Ok(n as u64)
    }

    pub(super) async fn pull_create_export_job(&self, j: &NewExportJob) -> Result<ExportJob> {
        // One statement, one snapshot: every feed position up to the last one it sees is
        // committed (they become visible in order, see `complete`), so the job's snapshot has
        // no holes. Its time is the delivery time of its last record.
        let client = self.pool.get().await?;
        let row = client
            .query_one(
                &format!(
                    "INSERT INTO export_jobs (id, requester, organization_id, since, types, request, status, until_seq, \
                     transaction_time, created_at) \
                     SELECT $1, $2, $3, $4, $5, $6, 'in-progress', COALESCE(last.feed_seq, 0), COALESCE(last.delivered_at, $7), $7 \
                     FROM (SELECT 1) one LEFT JOIN (SELECT feed_seq, delivered_at FROM receipts WHERE feed_seq IS NOT NULL \
                                                    ORDER BY feed_seq DESC LIMIT 1) last ON TRUE \
                     RETURNING {JOB_COLUMNS}"
                ),
                &[
                    &j.id,
                    &j.requester,
                    &j.organization_id,
                    &j.since,
                    &join_types(&j.types),
                    &j.request,
                    &j.created_at,
                ],
            )
            .await?;
        job_from_row(&row)
    }

    pub(super) async fn pull_export_job(&self, id: &str) -> Result<Option<ExportJob>> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                &format!("SELECT {JOB_COLUMNS} FROM export_jobs WHERE id = $1"),
                &[&id],
            )
            .await?;
        row.as_ref().map(job_from_row).transpose()
    }

    pub(super) async fn pull_claim_export_job(
        &self,
        owner: &str,
        now: i64,
        lease_ms: i64,
    ) -> Result<Option<ExportJob>> {
        // SKIP LOCKED: instances claiming at once take different jobs (or none), never the
        // same one; the condition is checked again on the locked row.
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                &format!(
                    "UPDATE export_jobs SET owner = $1, lease_until = $2, records_done = 0, resources_done = 0, \
                     records_total = NULL \
                     WHERE id = (SELECT id FROM export_jobs WHERE status = 'in-progress' \
                                 AND (lease_until IS NULL OR lease_until < $3) ORDER BY created_at LIMIT 1 \
                                 FOR UPDATE SKIP LOCKED) \
                     RETURNING {JOB_COLUMNS}"
                ),
                &[&owner, &(now + lease_ms), &now],
            )
            .await?;
        row.as_ref().map(job_from_row).transpose()
    }

    pub(super) async fn pull_export_progress(
        &self,
        id: &str,
        owner: &str,
        p: ExportProgress,
        lease_until: i64,
    ) -> Result<bool> {
        let client = self.pool.get().await?;
        let n = client
            .execute(
                "UPDATE export_jobs SET records_done = $3, records_total = $4, resources_done = $5, lease_until = $6 \
                 WHERE id = $1 AND owner = $2 AND status = 'in-progress'",
                &[
                    &id,
                    &owner,
                    &p.records_done,
                    &p.records_total,
                    &p.resources_done,
                    &lease_until,
                ],
            )
            .await?;
        Ok(n > 0)
    }

    pub(super) async fn pull_finish_export_job(
        &self,
        id: &str,
        owner: &str,
        end: &ExportEnd,
        now: i64,
        expires_at: i64,
    ) -> Result<bool> {
        let (status, manifest, error) = end.columns();
        let client = self.pool.get().await?;
        let n = client
            .execute(
                "UPDATE export_jobs SET status = $3, manifest = $4, error = $5, completed_at = $6, expires_at = $7, \
                 lease_until = NULL WHERE id = $1 AND owner = $2 AND status = 'in-progress'",
                &[&id, &owner, &status, &manifest, &error, &now, &expires_at],
            )
            .await?;
        Ok(n > 0)
    }

    pub(super) async fn pull_cancel_export_job(&self, id: &str, now: i64) -> Result<bool> {
        let client = self.pool.get().await?;
        let n = client
            .execute(
                "UPDATE export_jobs SET status = 'cancelled', expires_at = $2, lease_until = NULL \
                 WHERE id = $1 AND status <> 'cancelled'",
                &[&id, &now],
            )
            .await?;
        Ok(n > 0)
    }

    pub(super) async fn pull_purge_export_jobs(&self, before: i64) -> Result<u64> {
        let client = self.pool.get().await?;
        Ok(client
            .execute("DELETE FROM export_jobs WHERE expires_at < $1", &[&before])
            .await?)
    }
}
