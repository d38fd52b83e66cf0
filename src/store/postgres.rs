//! The store for several gateway instances: PostgreSQL through tokio-postgres and a deadpool
//! connection pool. Every instance leases due receipts with `FOR UPDATE SKIP LOCKED`, so two
//! forwarders never attempt the same record at once, and an instance that dies simply lets
//! its leases expire for the others to take over. Same model, same behaviour as the SQLite
//! store; the shared store test suite runs against both.

use super::*;
use deadpool_postgres::{Config as PoolConfig, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};

/// The feed and the export jobs (migration 0006).
mod pull;

const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("migrations/postgres/0001_init.sql")),
    (
        2,
        include_str!("migrations/postgres/0002_dead_letters_retention.sql"),
    ),
    (
        3,
        include_str!("migrations/postgres/0003_formats_operators.sql"),
    ),
    (
        4,
        include_str!("migrations/postgres/0004_replay_budget.sql"),
    ),
    (5, include_str!("migrations/postgres/0005_access.sql")),
    (6, include_str!("migrations/postgres/0006_pull.sql")),
];

/// Serialises schema migrations of concurrently starting instances.
const MIGRATION_LOCK: i64 = 0x6765_7262_616e_67;

/// Serialises the assignment of feed positions (see `complete`).
const FEED_LOCK: i64 = 0x6765_7262_616e_6601;

pub struct PostgresStore {
    pool: Pool,
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        // tokio-postgres displays a server error as just "db error"; the server's message
        // (which names the constraint, the relation …) is what tells an operator what to do.
        match std::error::Error::source(&e) {
            Some(cause) => StoreError::Database(format!("{e}: {cause}")),
            None => StoreError::Database(e.to_string()),
        }
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        StoreError::Database(format!("no PostgreSQL connection: {e}"))
    }
}

fn corrupt(e: serde_json::Error) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

impl PostgresStore {
    /// Connect (URL such as `postgres://postgres@127.0.0.1/test`), optionally inside a
    /// `schema` (created if missing; tests use one each), and migrate.
    pub async fn connect(
        url: &str,
        schema: Option<&str>,
        max_connections: usize,
    ) -> Result<PostgresStore> {
        let mut cfg = PoolConfig::new();
        cfg.url = Some(url.to_string());
        if let Some(s) = schema {
            if !s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(StoreError::Database(format!("invalid schema name `{s}`")));
            }
            cfg.options = Some(format!("-c search_path={s}"));
        }
        cfg.manager = Some(ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        });
        cfg.pool = Some(deadpool_postgres::PoolConfig::new(max_connections.max(2)));
        let pool = cfg
            .create_pool(Some(Runtime::Tokio1), NoTls)
            .map_err(|e| StoreError::Database(e.to_string()))?;
        let store = PostgresStore { pool };
        store.migrate(schema).await?;
        Ok(store)
    }

    async fn migrate(&self, schema: Option<&str>) -> Result<()> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await?;
        // Under the lock: `CREATE SCHEMA IF NOT EXISTS` is not safe against itself, and
        // instances starting together on a new schema would fail on its unique name.
        if let Some(s) = schema {
            tx.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {s}"))
                .await?;
        }
        tx.batch_execute("CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)").await?;
        let current: i64 = tx
            .query_one(
                "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
                &[],
            )
            .await?
            .get(0);
        for (version, sql) in MIGRATIONS {
            if *version > current {
                tx.batch_execute(sql).await?;
                tx.execute(
                    "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)",
                    &[version, &crate::time::now_millis()],
                )
                .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }
}

const RECEIPT_COLUMNS: &str = "id, facility_id, organization_id, record_type, local_id, status, attempts, created_at, updated_at, \
     next_attempt_at, last_error, delivered_at, server_ids, upstream_outcome, discard_reason, pruned_at, format";

fn receipt_from_row(row: &Row) -> Result<Receipt> {
    let json = |i: usize| -> Result<Option<Value>> {
        row.get::<_, Option<String>>(i)
            .map(|s| serde_json::from_str(&s))
            .transpose()
            .map_err(corrupt)
    };
    Ok(Receipt {
        id: row.get(0),
        facility_id: row.get(1),
        organization_id: row.get(2),
        record_type: row.get(3),
        local_id: row.get(4),
        status: Status::parse(row.get(5))?,
        attempts: row.get(6),
        created_at: row.get(7),
        updated_at: row.get(8),
        next_attempt_at: row.get(9),
        last_error: row.get(10),
        delivered_at: row.get(11),
        server_ids: json(12)?,
        upstream_outcome: json(13)?,
        discard_reason: row.get(14),
        pruned: row.get::<_, Option<i64>>(15).is_some(),
        format: row.get(16),
    })
}

#[async_trait]
impl Store for PostgresStore {
    async fn accept(&self, r: NewRecord) -> Result<Accepted> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let receipt_id = uuid::Uuid::new_v4().to_string();
        let inserted = tx
            .execute(
                "INSERT INTO receipts (id, facility_id, organization_id, record_type, local_id, content_hash, status, attempts, \
                 next_attempt_at, created_at, updated_at, format) VALUES ($1, $2, $3, $4, $5, $6, 'queued', 0, $7, $7, $7, $8) \
                 ON CONFLICT (facility_id, record_type, local_id) DO NOTHING",
                &[&receipt_id, &r.facility_id, &r.organization_id, &r.record_type, &r.local_id, &r.content_hash, &r.received_at, &r.format],
            )
            .await?;
        if inserted == 0 {
            let row = tx
                .query_one(
                    "SELECT id, content_hash FROM receipts WHERE facility_id = $1 AND record_type = $2 AND local_id = $3",
                    &[&r.facility_id, &r.record_type, &r.local_id],
                )
                .await?;
            let hash: String = row.get(1);
            return Ok(Accepted::Existing {
                receipt_id: row.get(0),
                same_content: hash == r.content_hash,
            });
        }
        tx.execute(
            "INSERT INTO payloads (receipt_id, raw, bundle) VALUES ($1, $2, $3)",
            &[&receipt_id, &r.raw.to_string(), &r.bundle.to_string()],
        )
        .await?;
        // The push is audited in the same transaction: no record without its audit entry.
        tx.execute(
            "INSERT INTO audit_events (at, actor, action, receipt_id, organization_id, detail) VALUES ($1, $2, 'push', $3, $4, $5)",
            &[&r.received_at, &format!("facility:{}", r.facility_id), &receipt_id, &r.organization_id, &r.record_type],
        )
        .await?;
        tx.commit().await?;
        Ok(Accepted::New { receipt_id })
    }

    async fn find_by_local_id(
        &self,
        facility_id: &str,
        record_type: &str,
        local_id: &str,
    ) -> Result<Option<(String, String)>> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                "SELECT id, content_hash FROM receipts WHERE facility_id = $1 AND record_type = $2 AND local_id = $3",
                &[&facility_id, &record_type, &local_id],
            )
            .await?;
        Ok(row.map(|r| (r.get(0), r.get(1))))
    }

    async fn receipt(&self, receipt_id: &str) -> Result<Option<Receipt>> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                &format!("SELECT {RECEIPT_COLUMNS} FROM receipts WHERE id = $1"),
                &[&receipt_id],
            )
            .await?;
        row.as_ref().map(receipt_from_row).transpose()
    }

    async fn due_organizations(&self, now: i64) -> Result<Vec<String>> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT DISTINCT organization_id FROM receipts \
                 WHERE (status IN ('queued', 'retrying') AND next_attempt_at <= $1) OR (status = 'delivering' AND lease_until < $1)",
                &[&now],
            )
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    async fn lease_due(
        &self,
        owner: &str,
        organization: &str,
        now: i64,
        lease_ms: i64,
        limit: usize,
    ) -> Result<Vec<Lease>> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let rows = tx
            .query(
                "UPDATE receipts SET status = 'delivering', lease_owner = $1, lease_until = $2, attempts = attempts + 1, updated_at = $3 \
                 WHERE id IN (SELECT id FROM receipts \
                              WHERE organization_id = $5 AND ((status IN ('queued', 'retrying') AND next_attempt_at <= $3) \
                                 OR (status = 'delivering' AND lease_until < $3)) \
                              ORDER BY next_attempt_at LIMIT $4 FOR UPDATE SKIP LOCKED) \
                 RETURNING id, organization_id, record_type, attempts - attempts_before_requeue, COALESCE(requeued_at, created_at)",
                &[&owner, &(now + lease_ms), &now, &(limit as i64), &organization],
            )
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let receipt_id: String = row.get(0);
            let text: String = tx
                .query_one(
                    "SELECT bundle FROM payloads WHERE receipt_id = $1",
                    &[&receipt_id],
                )
                .await?
                .get(0);
            let bundle = serde_json::from_str(&text).map_err(corrupt)?;
            out.push(Lease {
                receipt_id,
                organization_id: row.get(1),
                record_type: row.get(2),
                attempts: row.get(3),
                created_at: row.get(4),
                bundle,
            });
        }
        tx.commit().await?;
        Ok(out)
    }

    async fn complete(
        &self,
        receipt_id: &str,
        owner: &str,
        started_at: i64,
        now: i64,
        completion: Completion,
    ) -> Result<bool> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let (changed, result, http_status, detail) = match &completion {
            Completion::Delivered {
                server_ids,
                duplicate,
            } => {
                // The next feed position (`store::pull`). Several instances commit deliveries
                // concurrently; with a plain sequence, number 8 could commit before number 7,
                // and a puller that read 8 would never see 7. The advisory lock is taken here
                // and held until this transaction ends, and PostgreSQL makes a commit visible
                // before it releases the transaction's locks: the next delivery reads MAX
                // (in the next statement, so with a snapshot taken after the lock) only once
                // this one is visible, and numbers become visible strictly in order. It
                // serialises the commits of deliveries (not the deliveries), a few ms each.
                tx.execute("SELECT pg_advisory_xact_lock($1)", &[&FEED_LOCK])
                    .await?;
                let n = tx
                    .execute(
                        "UPDATE receipts SET status = 'delivered', server_ids = $3, updated_at = $4, \
                         delivered_at = GREATEST($4, (SELECT delivered_at FROM receipts WHERE feed_seq IS NOT NULL \
                                                      ORDER BY feed_seq DESC LIMIT 1)), \
                         feed_seq = COALESCE(feed_seq, (SELECT COALESCE(MAX(feed_seq), 0) + 1 FROM receipts)), \
                         lease_owner = NULL, lease_until = NULL, next_attempt_at = NULL, last_error = NULL \
                         WHERE id = $1 AND lease_owner = $2 AND status = 'delivering'",
                        &[&receipt_id, &owner, &server_ids.to_string(), &now],
                    )
                    .await?;
                (
                    n,
                    if *duplicate { "duplicate" } else { "delivered" },
                    None,
                    None,
                )
            }
            Completion::Retry {
                next_attempt_at,
                error,
                http_status,
            } => {
                let n = tx
                    .execute(
                        "UPDATE receipts SET status = 'retrying', next_attempt_at = $3, last_error = $4, updated_at = $5, \
                         lease_owner = NULL, lease_until = NULL WHERE id = $1 AND lease_owner = $2 AND status = 'delivering'",
                        &[&receipt_id, &owner, next_attempt_at, error, &now],
                    )
                    .await?;
                (n, "retry", *http_status, Some(error.clone()))
            }
            Completion::Dead {
                error,
                outcome,
                http_status,
            } => {
                let n = tx
                    .execute(
                        "UPDATE receipts SET status = 'dead', upstream_outcome = $3, last_error = $4, updated_at = $5, \
                         lease_owner = NULL, lease_until = NULL, next_attempt_at = NULL \
                         WHERE id = $1 AND lease_owner = $2 AND status = 'delivering'",
                        &[&receipt_id, &owner, &outcome.to_string(), error, &now],
                    )
                    .await?;
                (n, "dead", *http_status, Some(error.clone()))
            }
        };
        if changed == 0 {
            return Ok(false);
        }
        let status: Option<i32> = http_status.map(i32::from);
        tx.execute(
            "INSERT INTO delivery_attempts (receipt_id, attempt, started_at, finished_at, result, http_status, detail) \
             SELECT id, attempts, $2, $3, $4, $5, $6 FROM receipts WHERE id = $1 \
             ON CONFLICT (receipt_id, attempt) DO UPDATE SET finished_at = excluded.finished_at, result = excluded.result, \
             http_status = excluded.http_status, detail = excluded.detail",
            &[&receipt_id, &started_at, &now, &result, &status, &detail],
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn release_all_leases(&self) -> Result<u64> {
        // Other instances may hold leases: never take them back, let them expire.
        Ok(0)
    }

    async fn next_due_at(&self) -> Result<Option<i64>> {
        let client = self.pool.get().await?;
        let row = client
            .query_one(
                "SELECT LEAST((SELECT MIN(next_attempt_at) FROM receipts WHERE status IN ('queued', 'retrying')), \
                              (SELECT MIN(lease_until) FROM receipts WHERE status = 'delivering'))",
                &[],
            )
            .await?;
        Ok(row.get(0))
    }

    async fn counts(&self) -> Result<Vec<(Status, u64)>> {
        let client = self.pool.get().await?;
        let rows = client
            .query("SELECT status, COUNT(*) FROM receipts GROUP BY status", &[])
            .await?;
        let mut out: Vec<(Status, u64)> = Status::ALL.iter().map(|s| (*s, 0)).collect();
        for row in rows {
            let s = Status::parse(row.get(0))?;
            let n: i64 = row.get(1);
            if let Some(slot) = out.iter_mut().find(|(x, _)| *x == s) {
                slot.1 = n as u64;
            }
        }
        Ok(out)
    }

    async fn cached_lookup(&self, kind: &str, key_hash: &str, now: i64) -> Result<Option<String>> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt("SELECT value FROM lookup_cache WHERE kind = $1 AND key_hash = $2 AND expires_at > $3", &[&kind, &key_hash, &now])
            .await?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn cache_lookup(
        &self,
        kind: &str,
        key_hash: &str,
        value: &str,
        expires_at: i64,
    ) -> Result<()> {
        let client = self.pool.get().await?;
        client
            .execute(
                "INSERT INTO lookup_cache (kind, key_hash, value, expires_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (kind, key_hash) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at",
                &[&kind, &key_hash, &value, &expires_at],
            )
            .await?;
        Ok(())
    }

    async fn facility_by_key_hash(&self, key_hash: &str) -> Result<Option<Facility>> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                "SELECT f.id, f.name, f.organization_id, f.location_id FROM api_keys k JOIN facilities f ON f.id = k.facility_id \
                 WHERE k.key_hash = $1 AND k.revoked_at IS NULL",
                &[&key_hash],
            )
            .await?;
        Ok(row.map(|r| Facility {
            id: r.get(0),
            name: r.get(1),
            organization_id: r.get(2),
            location_id: r.get(3),
        }))
    }

    async fn add_facility_key(&self, f: &Facility, key_hash: &str, now: i64) -> Result<()> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        tx.execute(
            "INSERT INTO facilities (id, name, organization_id, location_id, created_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (id) DO UPDATE SET name = excluded.name, organization_id = excluded.organization_id, location_id = excluded.location_id",
            &[&f.id, &f.name, &f.organization_id, &f.location_id, &now],
        )
        .await?;
        tx.execute("INSERT INTO api_keys (key_hash, facility_id, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING", &[&key_hash, &f.id, &now])
            .await?;
        tx.commit().await?;
        Ok(())
    }

    fn exclusive(&self) -> bool {
        false
    }

    async fn list_receipts(&self, f: &ReceiptFilter, limit: usize) -> Result<Vec<Receipt>> {
        let mut sql = format!("SELECT {RECEIPT_COLUMNS} FROM receipts WHERE TRUE");
        let mut args: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
        let mut arg = |sql: &mut String, cond: &str, v: Box<dyn ToSql + Sync + Send>| {
            args.push(v);
            sql.push_str(&format!(" AND {cond} ${}", args.len()));
        };
        if let Some(s) = f.status {
            arg(&mut sql, "status =", Box::new(s.as_str().to_string()));
        }
        if let Some(v) = &f.record_type {
            arg(&mut sql, "record_type =", Box::new(v.clone()));
        }
        if let Some(v) = &f.organization_id {
            arg(&mut sql, "organization_id =", Box::new(v.clone()));
        }
        if let Some(v) = &f.facility_id {
            arg(&mut sql, "facility_id =", Box::new(v.clone()));
        }
        if let Some(rule) = f.rule {
            arg(
                &mut sql,
                "upstream_outcome LIKE",
                Box::new(format!("%(RuleNumber: {rule})%")),
            );
        }
        if let Some(t) = f.since {
            arg(&mut sql, "created_at >=", Box::new(t));
        }
        if let Some(t) = f.until {
            arg(&mut sql, "created_at <", Box::new(t));
        }
        args.push(Box::new(limit as i64));
        sql.push_str(&format!(
            " ORDER BY created_at DESC, id LIMIT ${}",
            args.len()
        ));
        let client = self.pool.get().await?;
        let refs: Vec<&(dyn ToSql + Sync)> = args
            .iter()
            .map(|a| a.as_ref() as &(dyn ToSql + Sync))
            .collect();
        let rows = client.query(&sql, &refs).await?;
        rows.iter().map(receipt_from_row).collect()
    }

    async fn payload(&self, receipt_id: &str) -> Result<Option<Payload>> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                "SELECT raw, bundle FROM payloads WHERE receipt_id = $1",
                &[&receipt_id],
            )
            .await?;
        row.map(|r| {
            Ok(Payload {
                raw: serde_json::from_str(r.get::<_, &str>(0)).map_err(corrupt)?,
                bundle: serde_json::from_str(r.get::<_, &str>(1)).map_err(corrupt)?,
            })
        })
        .transpose()
    }

    async fn attempts(&self, receipt_id: &str) -> Result<Vec<Attempt>> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT attempt, started_at, finished_at, result, http_status, detail FROM delivery_attempts WHERE receipt_id = $1 ORDER BY started_at, attempt",
                &[&receipt_id],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| Attempt {
                attempt: r.get(0),
                started_at: r.get(1),
                finished_at: r.get(2),
                result: r.get(3),
                http_status: r.get::<_, Option<i32>>(4).map(i64::from),
                detail: r.get(5),
            })
            .collect())
    }

    async fn requeue(&self, receipt_id: &str, bundle: &Value, now: i64) -> Result<bool> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let n = tx
            .execute(
                "UPDATE receipts SET status = 'queued', next_attempt_at = $2, updated_at = $2, last_error = NULL, \
                 requeued_at = $2, attempts_before_requeue = attempts \
                 WHERE id = $1 AND status = 'dead' AND pruned_at IS NULL",
                &[&receipt_id, &now],
            )
            .await?;
        if n == 0 {
            return Ok(false);
        }
        tx.execute(
            "UPDATE payloads SET bundle = $2 WHERE receipt_id = $1",
            &[&receipt_id, &bundle.to_string()],
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn discard(&self, receipt_id: &str, reason: &str, now: i64) -> Result<bool> {
        let client = self.pool.get().await?;
        let n = client
            .execute(
                "UPDATE receipts SET status = 'discarded', discard_reason = $2, updated_at = $3 WHERE id = $1 AND status = 'dead'",
                &[&receipt_id, &reason, &now],
            )
            .await?;
        Ok(n > 0)
    }

    async fn prune_payloads(&self, before: i64) -> Result<u64> {
        // One statement, so the receipts marked pruned are exactly those whose payloads are
        // deleted. (With a DELETE then an UPDATE under READ COMMITTED, a receipt delivered
        // between the two would be marked pruned with its payload kept — and never pruned
        // again.) Instances pruning at once skip each other's rows: `pruned_at IS NULL` is
        // re-checked after the row lock.
        let client = self.pool.get().await?;
        let n = client
            .execute(
                "WITH pruned AS (UPDATE receipts SET pruned_at = $2 \
                   WHERE status IN ('delivered', 'discarded') AND updated_at < $1 AND pruned_at IS NULL RETURNING id) \
                 DELETE FROM payloads WHERE receipt_id IN (SELECT id FROM pruned)",
                &[&before, &crate::time::now_millis()],
            )
            .await?;
        Ok(n)
    }

    async fn feed(&self, query: &FeedQuery) -> Result<Vec<FeedItem>> {
        self.pull_feed(query).await
    }

    async fn feed_count(&self, query: &FeedQuery) -> Result<u64> {
        self.pull_feed_count(query).await
    }

    async fn create_export_job(&self, job: &NewExportJob) -> Result<ExportJob> {
        self.pull_create_export_job(job).await
    }

    async fn export_job(&self, id: &str) -> Result<Option<ExportJob>> {
        self.pull_export_job(id).await
    }

    async fn claim_export_job(
        &self,
        owner: &str,
        now: i64,
        lease_ms: i64,
    ) -> Result<Option<ExportJob>> {
        self.pull_claim_export_job(owner, now, lease_ms).await
    }

    async fn export_progress(
        &self,
        id: &str,
        owner: &str,
        progress: ExportProgress,
        lease_until: i64,
    ) -> Result<bool> {
        self.pull_export_progress(id, owner, progress, lease_until)
            .await
    }

    async fn finish_export_job(
        &self,
        id: &str,
        owner: &str,
        end: &ExportEnd,
        now: i64,
        expires_at: i64,
    ) -> Result<bool> {
        self.pull_finish_export_job(id, owner, end, now, expires_at)
            .await
    }

    async fn cancel_export_job(&self, id: &str, now: i64) -> Result<bool> {
        self.pull_cancel_export_job(id, now).await
    }

    async fn purge_export_jobs(&self, before: i64) -> Result<u64> {
        self.pull_purge_export_jobs(before).await
    }

    async fn audit(&self, e: AuditEvent) -> Result<()> {
        let client = self.pool.get().await?;
        client
            .execute(
                "INSERT INTO audit_events (at, actor, action, receipt_id, organization_id, detail) VALUES ($1, $2, $3, $4, $5, $6)",
                &[&e.at, &e.actor, &e.action, &e.receipt_id, &e.organization_id, &e.detail],
            )
            .await?;
        Ok(())
    }

    async fn audit_events(&self, f: &AuditFilter, limit: usize) -> Result<Vec<AuditEvent>> {
        let mut sql = "SELECT at, actor, action, receipt_id, organization_id, detail FROM audit_events WHERE TRUE".to_string();
        let mut args: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
        for (col, v) in [
            ("actor", &f.actor),
            ("action", &f.action),
            ("receipt_id", &f.receipt_id),
            ("organization_id", &f.organization_id),
        ] {
            if let Some(v) = v {
                args.push(Box::new(v.clone()));
                sql.push_str(&format!(" AND {col} = ${}", args.len()));
            }
        }
        if let Some(t) = f.since {
            args.push(Box::new(t));
            sql.push_str(&format!(" AND at >= ${}", args.len()));
        }
        args.push(Box::new(limit as i64));
        sql.push_str(&format!(" ORDER BY id DESC LIMIT ${}", args.len()));
        let client = self.pool.get().await?;
        let refs: Vec<&(dyn ToSql + Sync)> = args
            .iter()
            .map(|a| a.as_ref() as &(dyn ToSql + Sync))
            .collect();
        let rows = client.query(&sql, &refs).await?;
        Ok(rows
            .iter()
            .map(|r| AuditEvent {
                at: r.get(0),
                actor: r.get(1),
                action: r.get(2),
                receipt_id: r.get(3),
                organization_id: r.get(4),
                detail: r.get(5),
            })
            .collect())
    }

    async fn facility(&self, facility_id: &str) -> Result<Option<Facility>> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                "SELECT id, name, organization_id, location_id FROM facilities WHERE id = $1",
                &[&facility_id],
            )
            .await?;
        Ok(row.map(|r| Facility {
            id: r.get(0),
            name: r.get(1),
            organization_id: r.get(2),
            location_id: r.get(3),
        }))
    }

    async fn add_operator_key(&self, name: &str, key_hash: &str, now: i64) -> Result<()> {
        let client = self.pool.get().await?;
        client
            .execute("INSERT INTO operator_keys (key_hash, name, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING", &[&key_hash, &name, &now])
            .await?;
        Ok(())
    }

    async fn operator_by_key_hash(&self, key_hash: &str) -> Result<Option<String>> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                "SELECT name FROM operator_keys WHERE key_hash = $1 AND revoked_at IS NULL",
                &[&key_hash],
            )
            .await?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn revoke_facility_key(&self, key_hash: &str, now: i64) -> Result<Option<String>> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                "UPDATE api_keys SET revoked_at = $2 WHERE key_hash = $1 AND revoked_at IS NULL RETURNING facility_id",
                &[&key_hash, &now],
            )
            .await?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn revoke_facility_keys(&self, facility_id: &str, now: i64) -> Result<u64> {
        let client = self.pool.get().await?;
        Ok(client
            .execute(
                "UPDATE api_keys SET revoked_at = $2 WHERE facility_id = $1 AND revoked_at IS NULL",
                &[&facility_id, &now],
            )
            .await?)
    }

    async fn add_smart_client(&self, c: &SmartClient, now: i64) -> Result<()> {
        let client = self.pool.get().await?;
        client
            .execute(
                "INSERT INTO smart_clients (id, name, jwks, scopes, organization_id, created_at) VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (id) DO UPDATE SET name = excluded.name, jwks = excluded.jwks, scopes = excluded.scopes, \
                 organization_id = excluded.organization_id, revoked_at = NULL",
                &[&c.id, &c.name, &c.jwks.to_string(), &join_scopes(&c.scopes), &c.organization_id, &now],
            )
            .await?;
        Ok(())
    }

    async fn smart_client(&self, client_id: &str) -> Result<Option<SmartClient>> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                "SELECT id, name, jwks, scopes, organization_id, revoked_at FROM smart_clients WHERE id = $1",
                &[&client_id],
            )
            .await?;
        row.map(|r| {
            Ok(SmartClient {
                id: r.get(0),
                name: r.get(1),
                jwks: serde_json::from_str(r.get::<_, &str>(2)).map_err(corrupt)?,
                scopes: split_scopes(r.get(3)),
                organization_id: r.get(4),
                revoked_at: r.get(5),
            })
        })
        .transpose()
    }

    async fn revoke_smart_client(&self, client_id: &str, now: i64) -> Result<bool> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let n = tx
            .execute(
                "UPDATE smart_clients SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
                &[&client_id, &now],
            )
            .await?;
        tx.execute(
            "DELETE FROM access_tokens WHERE client_id = $1",
            &[&client_id],
        )
        .await?;
        tx.commit().await?;
        Ok(n > 0)
    }

    async fn use_assertion_jti(
        &self,
        client_id: &str,
        jti: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<bool> {
        let client = self.pool.get().await?;
        client
            .execute("DELETE FROM assertion_jtis WHERE expires_at < $1", &[&now])
            .await?;
        // The primary key decides between two instances that see the same assertion at once.
        let n = client
            .execute(
                "INSERT INTO assertion_jtis (client_id, jti, expires_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                &[&client_id, &jti, &expires_at],
            )
            .await?;
        Ok(n == 1)
    }

    async fn add_access_token(&self, t: &AccessToken, now: i64) -> Result<()> {
        let client = self.pool.get().await?;
        client
            .execute(
                "DELETE FROM access_tokens WHERE expires_at < $1",
                &[&(now - EXPIRED_TOKENS_KEPT_MS)],
            )
            .await?;
        client
            .execute(
                "INSERT INTO access_tokens (token_hash, client_id, scopes, organization_id, issued_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[&t.token_hash, &t.client_id, &join_scopes(&t.scopes), &t.organization_id, &t.issued_at, &t.expires_at],
            )
            .await?;
        Ok(())
    }

    async fn access_token(&self, token_hash: &str) -> Result<Option<AccessToken>> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                "SELECT t.token_hash, t.client_id, t.scopes, t.organization_id, t.issued_at, t.expires_at \
                 FROM access_tokens t JOIN smart_clients c ON c.id = t.client_id \
                 WHERE t.token_hash = $1 AND c.revoked_at IS NULL",
                &[&token_hash],
            )
            .await?;
        Ok(row.map(|r| AccessToken {
            token_hash: r.get(0),
            client_id: r.get(1),
            scopes: split_scopes(r.get(2)),
            organization_id: r.get(3),
            issued_at: r.get(4),
            expires_at: r.get(5),
        }))
    }
}
