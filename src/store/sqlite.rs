//! The embedded store: SQLite in WAL mode with `synchronous=FULL`, so a commit is on disk
//! before it is acknowledged.
//!
//! All writes go through one writer thread, which groups the writes that arrive together
//! into one transaction (group commit): under load many facilities' records share one fsync,
//! and each write still runs in its own savepoint so one failure does not undo the others.
//! Reads use a small pool of separate connections, which WAL lets run beside the writer.

use super::*;
use rusqlite::{Connection, OptionalExtension, Row, params};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use tokio::sync::oneshot;

/// The feed and the export jobs (migration 0006).
mod pull;

const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("migrations/sqlite/0001_init.sql")),
    (
        2,
        include_str!("migrations/sqlite/0002_dead_letters_retention.sql"),
    ),
    (
        3,
        include_str!("migrations/sqlite/0003_formats_operators.sql"),
    ),
    (4, include_str!("migrations/sqlite/0004_replay_budget.sql")),
    (5, include_str!("migrations/sqlite/0005_access.sql")),
    (6, include_str!("migrations/sqlite/0006_pull.sql")),
];

/// How many queued writes one transaction may take.
const MAX_GROUP: usize = 256;

type Finish = Box<dyn FnOnce(Result<()>) + Send>;
/// A write: run with the connection inside the group's transaction, or with `None` when the
/// transaction could not even begin (the caller then gets the error, nothing runs).
type Job = Box<dyn FnOnce(Option<&Connection>) -> (bool, Finish) + Send>;

pub struct SqliteStore {
    jobs: mpsc::Sender<Job>,
    readers: Arc<Mutex<Vec<Connection>>>,
    path: PathBuf,
}

fn open(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    // Pruned payloads give their pages back to the file system (takes effect on a new
    // database, before the first table exists).
    conn.execute_batch("PRAGMA auto_vacuum=INCREMENTAL;")?;
    conn.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;",
    )?;
    Ok(conn)
}

impl SqliteStore {
    /// Open (creating and migrating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<SqliteStore> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Database(format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        let conn = open(path)?;
        migrate(&conn)?;
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("gerbang-sqlite-writer".into())
            .spawn(move || writer_loop(conn, rx))
            .map_err(|e| StoreError::Database(e.to_string()))?;
        Ok(SqliteStore {
            jobs: tx,
            readers: Arc::new(Mutex::new(Vec::new())),
            path: path.to_path_buf(),
        })
    }

    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let Some(conn) = conn else {
                let _ = tx.send(Err(StoreError::Database(
                    "cannot begin a write transaction".into(),
                )));
                return (false, Box::new(|_| {}) as Finish);
            };
            let result = f(conn);
            let ok = result.is_ok();
            let finish: Finish = Box::new(move |committed| {
                let _ = tx.send(committed.and(result));
            });
            (ok, finish)
        });
        self.jobs.send(job).map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let readers = self.readers.clone();
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let conn = match readers.lock().expect("reader pool").pop() {
                Some(c) => c,
                None => open(&path)?,
            };
            let result = f(&conn);
            let mut pool = readers.lock().expect("reader pool");
            if pool.len() < 8 {
                pool.push(conn);
            }
            result
        })
        .await
        .map_err(|e| StoreError::Database(format!("reader task failed: {e}")))?
    }
}

fn migrate(conn: &Connection) -> Result<()> {
    conn.execute_batch("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)")?;
    let current: i64 = conn.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
        [],
        |r| r.get(0),
    )?;
    for (version, sql) in MIGRATIONS {
        if *version > current {
            let tx = conn.unchecked_transaction()?;
            tx.execute_batch(sql)?;
            tx.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)",
                params![version, crate::time::now_millis()],
            )?;
            tx.commit()?;
        }
    }
    Ok(())
}

fn writer_loop(conn: Connection, rx: mpsc::Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let mut finishes = Vec::with_capacity(group.len());
        let begun = conn.execute_batch("BEGIN IMMEDIATE");
        if let Err(e) = begun {
            tracing::error!(error = %e, "sqlite: cannot begin a transaction");
            for job in group {
                let _ = job(None);
            }
            continue;
        }
        for job in group {
            let savepoint = conn.execute_batch("SAVEPOINT job");
            let (ok, finish) = job(Some(&conn));
            if savepoint.is_ok() {
                let _ = if ok {
                    conn.execute_batch("RELEASE job")
                } else {
                    conn.execute_batch("ROLLBACK TO job; RELEASE job")
                };
            }
            finishes.push(finish);
        }
        let committed = conn.execute_batch("COMMIT").map_err(StoreError::from);
        if committed.is_err() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        for finish in finishes {
            finish(match &committed {
                Ok(()) => Ok(()),
                Err(e) => Err(StoreError::Database(format!("commit failed: {e}"))),
            });
        }
    }
}

fn json_col(row: &Row, idx: usize) -> rusqlite::Result<Option<Value>> {
    let s: Option<String> = row.get(idx)?;
    Ok(s.and_then(|s| serde_json::from_str(&s).ok()))
}

const RECEIPT_COLUMNS: &str = "id, facility_id, organization_id, record_type, local_id, status, attempts, created_at, updated_at, \
     next_attempt_at, last_error, delivered_at, server_ids, upstream_outcome, discard_reason, pruned_at, format";

fn receipt_from_row(row: &Row) -> rusqlite::Result<(Receipt, String)> {
    let status: String = row.get(5)?;
    Ok((
        Receipt {
            id: row.get(0)?,
            facility_id: row.get(1)?,
            organization_id: row.get(2)?,
            record_type: row.get(3)?,
            local_id: row.get(4)?,
            status: Status::Queued,
            attempts: row.get(6)?,
            created_at: row.get(7)?,
            updated_at: row.get(8)?,
            next_attempt_at: row.get(9)?,
            last_error: row.get(10)?,
            delivered_at: row.get(11)?,
            server_ids: json_col(row, 12)?,
            upstream_outcome: json_col(row, 13)?,
            discard_reason: row.get(14)?,
            pruned: row.get::<_, Option<i64>>(15)?.is_some(),
            format: row.get(16)?,
        },
        status,
    ))
}

fn receipts_from(
    stmt: &mut rusqlite::Statement,
    params: &[&dyn rusqlite::ToSql],
) -> Result<Vec<Receipt>> {
    let rows: Vec<(Receipt, String)> = stmt
        .query_map(params, receipt_from_row)?
        .collect::<rusqlite::Result<_>>()?;
    rows.into_iter()
        .map(|(mut r, s)| {
            r.status = Status::parse(&s)?;
            Ok(r)
        })
        .collect()
}

#[async_trait]
impl Store for SqliteStore {
    async fn accept(&self, r: NewRecord) -> Result<Accepted> {
        self.write(move |conn| {
            let existing: Option<(String, String)> = conn
                .query_row(
                    "SELECT id, content_hash FROM receipts WHERE facility_id = ?1 AND record_type = ?2 AND local_id = ?3",
                    params![r.facility_id, r.record_type, r.local_id],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()?;
            if let Some((receipt_id, hash)) = existing {
                return Ok(Accepted::Existing { receipt_id, same_content: hash == r.content_hash });
            }
            let receipt_id = uuid::Uuid::new_v4().to_string();
            conn.execute(
                "INSERT INTO receipts (id, facility_id, organization_id, record_type, local_id, content_hash, status, \
                 attempts, next_attempt_at, created_at, updated_at, format) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'queued', 0, ?7, ?7, ?7, ?8)",
                params![receipt_id, r.facility_id, r.organization_id, r.record_type, r.local_id, r.content_hash, r.received_at, r.format],
            )?;
            conn.execute(
                "INSERT INTO payloads (receipt_id, raw, bundle) VALUES (?1, ?2, ?3)",
                params![receipt_id, r.raw.to_string(), r.bundle.to_string()],
            )?;
            // The push is audited in the same transaction: no record without its audit entry.
            conn.execute(
                "INSERT INTO audit_events (at, actor, action, receipt_id, organization_id, detail) VALUES (?1, ?2, 'push', ?3, ?4, ?5)",
                params![r.received_at, format!("facility:{}", r.facility_id), receipt_id, r.organization_id, r.record_type],
            )?;
            Ok(Accepted::New { receipt_id })
        })
        .await
    }

    async fn find_by_local_id(
        &self,
        facility_id: &str,
        record_type: &str,
        local_id: &str,
    ) -> Result<Option<(String, String)>> {
        let (f, t, l) = (
            facility_id.to_string(),
            record_type.to_string(),
            local_id.to_string(),
        );
        self.read(move |conn| {
            Ok(conn
                .query_row(
                    "SELECT id, content_hash FROM receipts WHERE facility_id = ?1 AND record_type = ?2 AND local_id = ?3",
                    params![f, t, l],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()?)
        })
        .await
    }

    async fn receipt(&self, receipt_id: &str) -> Result<Option<Receipt>> {
        let id = receipt_id.to_string();
        self.read(move |conn| {
            let row = conn
                .query_row(
                    &format!("SELECT {RECEIPT_COLUMNS} FROM receipts WHERE id = ?1"),
                    params![id],
                    receipt_from_row,
                )
                .optional()?;
            match row {
                None => Ok(None),
                Some((mut r, status)) => {
                    r.status = Status::parse(&status)?;
                    Ok(Some(r))
                }
            }
        })
        .await
    }

    async fn due_organizations(&self, now: i64) -> Result<Vec<String>> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT DISTINCT organization_id FROM receipts \
                 WHERE (status IN ('queued', 'retrying') AND next_attempt_at <= ?1) OR (status = 'delivering' AND lease_until < ?1)",
            )?;
            let orgs = stmt.query_map(params![now], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?;
            Ok(orgs)
        })
        .await
    }

    async fn lease_due(
        &self,
        owner: &str,
        organization: &str,
        now: i64,
        lease_ms: i64,
        limit: usize,
    ) -> Result<Vec<Lease>> {
        let owner = owner.to_string();
        let org = organization.to_string();
        self.write(move |conn| {
            let mut stmt = conn.prepare_cached(
                "UPDATE receipts SET status = 'delivering', lease_owner = ?1, lease_until = ?2, attempts = attempts + 1, updated_at = ?3 \
                 WHERE id IN (SELECT id FROM receipts \
                              WHERE organization_id = ?5 AND ((status IN ('queued', 'retrying') AND next_attempt_at <= ?3) \
                                 OR (status = 'delivering' AND lease_until < ?3)) \
                              ORDER BY next_attempt_at LIMIT ?4) \
                 RETURNING id, organization_id, record_type, attempts - attempts_before_requeue, COALESCE(requeued_at, created_at)",
            )?;
            let leased: Vec<(String, String, String, i64, i64)> = stmt
                .query_map(params![owner, now + lease_ms, now, limit as i64, org], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                })?
                .collect::<rusqlite::Result<_>>()?;
            let mut out = Vec::with_capacity(leased.len());
            let mut bundle_stmt = conn.prepare_cached("SELECT bundle FROM payloads WHERE receipt_id = ?1")?;
            for (receipt_id, organization_id, record_type, attempts, created_at) in leased {
                let text: String = bundle_stmt.query_row(params![receipt_id], |r| r.get(0))?;
                let bundle = serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(format!("bundle of {receipt_id}: {e}")))?;
                out.push(Lease { receipt_id, organization_id, record_type, attempts, created_at, bundle });
            }
            Ok(out)
        })
        .await
    }

    async fn complete(
        &self,
        receipt_id: &str,
        owner: &str,
        started_at: i64,
        now: i64,
        completion: Completion,
    ) -> Result<bool> {
        let (id, owner) = (receipt_id.to_string(), owner.to_string());
        self.write(move |conn| {
            let (changed, result, http_status, detail) = match &completion {
                Completion::Delivered { server_ids, duplicate } => {
                    // The next feed position (`store::pull`): the single writer commits
                    // deliveries one after the other, so MAX + 1 here is the commit order. The
                    // delivery time never goes back along the feed (`_since` relies on it).
                    let n = conn.execute(
                        "UPDATE receipts SET status = 'delivered', server_ids = ?3, updated_at = ?4, \
                         delivered_at = MAX(?4, COALESCE((SELECT delivered_at FROM receipts WHERE feed_seq IS NOT NULL \
                                                          ORDER BY feed_seq DESC LIMIT 1), ?4)), \
                         feed_seq = COALESCE(feed_seq, (SELECT COALESCE(MAX(feed_seq), 0) + 1 FROM receipts)), \
                         lease_owner = NULL, lease_until = NULL, next_attempt_at = NULL, last_error = NULL \
                         WHERE id = ?1 AND lease_owner = ?2 AND status = 'delivering'",
                        params![id, owner, server_ids.to_string(), now],
                    )?;
                    (n, if *duplicate { "duplicate" } else { "delivered" }, None, None)
                }
                Completion::Retry { next_attempt_at, error, http_status } => {
                    let n = conn.execute(
                        "UPDATE receipts SET status = 'retrying', next_attempt_at = ?3, last_error = ?4, updated_at = ?5, \
                         lease_owner = NULL, lease_until = NULL \
                         WHERE id = ?1 AND lease_owner = ?2 AND status = 'delivering'",
                        params![id, owner, next_attempt_at, error, now],
                    )?;
                    (n, "retry", *http_status, Some(error.clone()))
                }
                Completion::Dead { error, outcome, http_status } => {
                    let n = conn.execute(
                        "UPDATE receipts SET status = 'dead', upstream_outcome = ?3, last_error = ?4, updated_at = ?5, \
                         lease_owner = NULL, lease_until = NULL, next_attempt_at = NULL \
                         WHERE id = ?1 AND lease_owner = ?2 AND status = 'delivering'",
                        params![id, owner, outcome.to_string(), error, now],
                    )?;
                    (n, "dead", *http_status, Some(error.clone()))
                }
            };
            if changed == 0 {
                return Ok(false);
            }
            conn.execute(
                "INSERT OR REPLACE INTO delivery_attempts (receipt_id, attempt, started_at, finished_at, result, http_status, detail) \
                 SELECT id, attempts, ?2, ?3, ?4, ?5, ?6 FROM receipts WHERE id = ?1",
                params![id, started_at, now, result, http_status, detail],
            )?;
            Ok(true)
        })
        .await
    }

    async fn release_all_leases(&self) -> Result<u64> {
        self.write(|conn| {
            let n = conn.execute(
                "UPDATE receipts SET status = 'retrying', lease_owner = NULL, lease_until = NULL, \
                 next_attempt_at = COALESCE(next_attempt_at, created_at) WHERE status = 'delivering'",
                [],
            )?;
            Ok(n as u64)
        })
        .await
    }

    async fn next_due_at(&self) -> Result<Option<i64>> {
        self.read(|conn| {
            Ok(conn.query_row(
                "SELECT MIN(t) FROM (SELECT MIN(next_attempt_at) AS t FROM receipts WHERE status IN ('queued', 'retrying') \
                 UNION ALL SELECT MIN(lease_until) FROM receipts WHERE status = 'delivering')",
                [],
                |r| r.get(0),
            )?)
        })
        .await
    }

    async fn counts(&self) -> Result<Vec<(Status, u64)>> {
        self.read(|conn| {
            let mut stmt =
                conn.prepare_cached("SELECT status, COUNT(*) FROM receipts GROUP BY status")?;
            let rows: Vec<(String, i64)> = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?;
            let mut out: Vec<(Status, u64)> = Status::ALL.iter().map(|s| (*s, 0)).collect();
            for (s, n) in rows {
                let s = Status::parse(&s)?;
                if let Some(slot) = out.iter_mut().find(|(x, _)| *x == s) {
                    slot.1 = n as u64;
                }
            }
            Ok(out)
        })
        .await
    }

    async fn cached_lookup(&self, kind: &str, key_hash: &str, now: i64) -> Result<Option<String>> {
        let (kind, key) = (kind.to_string(), key_hash.to_string());
        self.read(move |conn| {
            Ok(conn
                .query_row(
                    "SELECT value FROM lookup_cache WHERE kind = ?1 AND key_hash = ?2 AND expires_at > ?3",
                    params![kind, key, now],
                    |r| r.get(0),
                )
                .optional()?)
        })
        .await
    }

    async fn cache_lookup(
        &self,
        kind: &str,
        key_hash: &str,
        value: &str,
        expires_at: i64,
    ) -> Result<()> {
        let (kind, key, value) = (kind.to_string(), key_hash.to_string(), value.to_string());
        self.write(move |conn| {
            conn.execute(
                "INSERT INTO lookup_cache (kind, key_hash, value, expires_at) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (kind, key_hash) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at",
                params![kind, key, value, expires_at],
            )?;
            Ok(())
        })
        .await
    }

    async fn facility_by_key_hash(&self, key_hash: &str) -> Result<Option<Facility>> {
        let key = key_hash.to_string();
        self.read(move |conn| {
            Ok(conn
                .query_row(
                    "SELECT f.id, f.name, f.organization_id, f.location_id FROM api_keys k JOIN facilities f ON f.id = k.facility_id \
                     WHERE k.key_hash = ?1 AND k.revoked_at IS NULL",
                    params![key],
                    |r| Ok(Facility { id: r.get(0)?, name: r.get(1)?, organization_id: r.get(2)?, location_id: r.get(3)? }),
                )
                .optional()?)
        })
        .await
    }

    async fn add_facility_key(&self, facility: &Facility, key_hash: &str, now: i64) -> Result<()> {
        let (f, key) = (facility.clone(), key_hash.to_string());
        self.write(move |conn| {
            conn.execute(
                "INSERT INTO facilities (id, name, organization_id, location_id, created_at) VALUES (?1, ?2, ?3, ?4, ?5) \
                 ON CONFLICT (id) DO UPDATE SET name = excluded.name, organization_id = excluded.organization_id, \
                 location_id = excluded.location_id",
                params![f.id, f.name, f.organization_id, f.location_id, now],
            )?;
            conn.execute(
                "INSERT OR IGNORE INTO api_keys (key_hash, facility_id, created_at) VALUES (?1, ?2, ?3)",
                params![key, f.id, now],
            )?;
            Ok(())
        })
        .await
    }

    fn exclusive(&self) -> bool {
        true
    }

    async fn list_receipts(&self, filter: &ReceiptFilter, limit: usize) -> Result<Vec<Receipt>> {
        let f = filter.clone();
        self.read(move |conn| {
            let mut sql = format!("SELECT {RECEIPT_COLUMNS} FROM receipts WHERE 1 = 1");
            let mut args: Vec<Box<dyn rusqlite::ToSql>> = Vec::new();
            if let Some(s) = f.status {
                sql.push_str(" AND status = ?");
                args.push(Box::new(s.as_str()));
            }
            for (col, v) in [
                ("record_type", &f.record_type),
                ("organization_id", &f.organization_id),
                ("facility_id", &f.facility_id),
            ] {
                if let Some(v) = v {
                    sql.push_str(&format!(" AND {col} = ?"));
                    args.push(Box::new(v.clone()));
                }
            }
            if let Some(rule) = f.rule {
                sql.push_str(" AND upstream_outcome LIKE ?");
                args.push(Box::new(format!("%(RuleNumber: {rule})%")));
            }
            if let Some(t) = f.since {
                sql.push_str(" AND created_at >= ?");
                args.push(Box::new(t));
            }
            if let Some(t) = f.until {
                sql.push_str(" AND created_at < ?");
                args.push(Box::new(t));
            }
            sql.push_str(" ORDER BY created_at DESC, id LIMIT ?");
            args.push(Box::new(limit as i64));
            let mut stmt = conn.prepare(&sql)?;
            let refs: Vec<&dyn rusqlite::ToSql> = args.iter().map(|a| a.as_ref()).collect();
            receipts_from(&mut stmt, &refs)
        })
        .await
    }

    async fn payload(&self, receipt_id: &str) -> Result<Option<Payload>> {
        let id = receipt_id.to_string();
        self.read(move |conn| {
            let row: Option<(String, String)> = conn
                .query_row(
                    "SELECT raw, bundle FROM payloads WHERE receipt_id = ?1",
                    params![id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            row.map(|(raw, bundle)| {
                Ok(Payload {
                    raw: serde_json::from_str(&raw)
                        .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                    bundle: serde_json::from_str(&bundle)
                        .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                })
            })
            .transpose()
        })
        .await
    }

    async fn attempts(&self, receipt_id: &str) -> Result<Vec<Attempt>> {
        let id = receipt_id.to_string();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT attempt, started_at, finished_at, result, http_status, detail FROM delivery_attempts WHERE receipt_id = ?1 ORDER BY started_at, attempt",
            )?;
            let rows = stmt
                .query_map(params![id], |r| {
                    Ok(Attempt { attempt: r.get(0)?, started_at: r.get(1)?, finished_at: r.get(2)?, result: r.get(3)?, http_status: r.get(4)?, detail: r.get(5)? })
                })?
                .collect::<rusqlite::Result<_>>()?;
            Ok(rows)
        })
        .await
    }

    async fn requeue(&self, receipt_id: &str, bundle: &Value, now: i64) -> Result<bool> {
        let (id, bundle) = (receipt_id.to_string(), bundle.to_string());
        self.write(move |conn| {
            let n = conn.execute(
                "UPDATE receipts SET status = 'queued', next_attempt_at = ?2, updated_at = ?2, last_error = NULL, \
                 requeued_at = ?2, attempts_before_requeue = attempts \
                 WHERE id = ?1 AND status = 'dead' AND pruned_at IS NULL",
                params![id, now],
            )?;
            if n == 0 {
                return Ok(false);
            }
            conn.execute("UPDATE payloads SET bundle = ?2 WHERE receipt_id = ?1", params![id, bundle])?;
            Ok(true)
        })
        .await
    }

    async fn discard(&self, receipt_id: &str, reason: &str, now: i64) -> Result<bool> {
        let (id, reason) = (receipt_id.to_string(), reason.to_string());
        self.write(move |conn| {
            let n = conn.execute(
                "UPDATE receipts SET status = 'discarded', discard_reason = ?2, updated_at = ?3 WHERE id = ?1 AND status = 'dead'",
                params![id, reason, now],
            )?;
            Ok(n > 0)
        })
        .await
    }

    async fn prune_payloads(&self, before: i64) -> Result<u64> {
        let pruned = self
            .write(move |conn| {
                let n = conn.execute(
                    "DELETE FROM payloads WHERE receipt_id IN (SELECT id FROM receipts \
                     WHERE status IN ('delivered', 'discarded') AND updated_at < ?1 AND pruned_at IS NULL)",
                    params![before],
                )?;
                conn.execute(
                    "UPDATE receipts SET pruned_at = ?2 WHERE status IN ('delivered', 'discarded') AND updated_at < ?1 AND pruned_at IS NULL",
                    params![before, crate::time::now_millis()],
                )?;
                Ok(n as u64)
            })
            .await?;
        if pruned > 0 {
            // Give the freed pages back (outside the group transaction).
            let path = self.path.clone();
            tokio::task::spawn_blocking(move || {
                open(&path).and_then(|c| Ok(c.execute_batch("PRAGMA incremental_vacuum;")?))
            })
            .await
            .map_err(|e| StoreError::Database(e.to_string()))??;
        }
        Ok(pruned)
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

    async fn audit(&self, event: AuditEvent) -> Result<()> {
        self.write(move |conn| {
            conn.execute(
                "INSERT INTO audit_events (at, actor, action, receipt_id, organization_id, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![event.at, event.actor, event.action, event.receipt_id, event.organization_id, event.detail],
            )?;
            Ok(())
        })
        .await
    }

    async fn audit_events(&self, filter: &AuditFilter, limit: usize) -> Result<Vec<AuditEvent>> {
        let f = filter.clone();
        self.read(move |conn| {
            let mut sql = "SELECT at, actor, action, receipt_id, organization_id, detail FROM audit_events WHERE 1 = 1".to_string();
            let mut args: Vec<Box<dyn rusqlite::ToSql>> = Vec::new();
            for (col, v) in [("actor", &f.actor), ("action", &f.action), ("receipt_id", &f.receipt_id), ("organization_id", &f.organization_id)] {
                if let Some(v) = v {
                    sql.push_str(&format!(" AND {col} = ?"));
                    args.push(Box::new(v.clone()));
                }
            }
            if let Some(t) = f.since {
                sql.push_str(" AND at >= ?");
                args.push(Box::new(t));
            }
            sql.push_str(" ORDER BY id DESC LIMIT ?");
            args.push(Box::new(limit as i64));
            let mut stmt = conn.prepare(&sql)?;
            let refs: Vec<&dyn rusqlite::ToSql> = args.iter().map(|a| a.as_ref()).collect();
            let rows = stmt
                .query_map(refs.as_slice(), |r| {
                    Ok(AuditEvent { at: r.get(0)?, actor: r.get(1)?, action: r.get(2)?, receipt_id: r.get(3)?, organization_id: r.get(4)?, detail: r.get(5)? })
                })?
                .collect::<rusqlite::Result<_>>()?;
            Ok(rows)
        })
        .await
    }

    async fn facility(&self, facility_id: &str) -> Result<Option<Facility>> {
        let id = facility_id.to_string();
        self.read(move |conn| {
            Ok(conn
                .query_row(
                    "SELECT id, name, organization_id, location_id FROM facilities WHERE id = ?1",
                    params![id],
                    |r| {
                        Ok(Facility {
                            id: r.get(0)?,
                            name: r.get(1)?,
                            organization_id: r.get(2)?,
                            location_id: r.get(3)?,
                        })
                    },
                )
                .optional()?)
        })
        .await
    }

    async fn add_operator_key(&self, name: &str, key_hash: &str, now: i64) -> Result<()> {
        let (name, key) = (name.to_string(), key_hash.to_string());
        self.write(move |conn| {
            conn.execute("INSERT OR IGNORE INTO operator_keys (key_hash, name, created_at) VALUES (?1, ?2, ?3)", params![key, name, now])?;
            Ok(())
        })
        .await
    }

    async fn operator_by_key_hash(&self, key_hash: &str) -> Result<Option<String>> {
        let key = key_hash.to_string();
        self.read(move |conn| {
            Ok(conn
                .query_row(
                    "SELECT name FROM operator_keys WHERE key_hash = ?1 AND revoked_at IS NULL",
                    params![key],
                    |r| r.get(0),
                )
                .optional()?)
        })
        .await
    }

    async fn revoke_facility_key(&self, key_hash: &str, now: i64) -> Result<Option<String>> {
        let key = key_hash.to_string();
        self.write(move |conn| {
            Ok(conn
                .query_row(
                    "UPDATE api_keys SET revoked_at = ?2 WHERE key_hash = ?1 AND revoked_at IS NULL RETURNING facility_id",
                    params![key, now],
                    |r| r.get(0),
                )
                .optional()?)
        })
        .await
    }

    async fn revoke_facility_keys(&self, facility_id: &str, now: i64) -> Result<u64> {
        let id = facility_id.to_string();
        self.write(move |conn| {
            let n = conn.execute(
                "UPDATE api_keys SET revoked_at = ?2 WHERE facility_id = ?1 AND revoked_at IS NULL",
                params![id, now],
            )?;
            Ok(n as u64)
        })
        .await
    }

    async fn add_smart_client(&self, client: &SmartClient, now: i64) -> Result<()> {
        let c = client.clone();
        self.write(move |conn| {
            conn.execute(
                "INSERT INTO smart_clients (id, name, jwks, scopes, organization_id, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
                 ON CONFLICT (id) DO UPDATE SET name = excluded.name, jwks = excluded.jwks, scopes = excluded.scopes, \
                 organization_id = excluded.organization_id, revoked_at = NULL",
                params![c.id, c.name, c.jwks.to_string(), join_scopes(&c.scopes), c.organization_id, now],
            )?;
            Ok(())
        })
        .await
    }

    async fn smart_client(&self, client_id: &str) -> Result<Option<SmartClient>> {
        let id = client_id.to_string();
        self.read(move |conn| {
            let row: Option<(String, String, String, String, Option<String>, Option<i64>)> = conn
                .query_row(
                    "SELECT id, name, jwks, scopes, organization_id, revoked_at FROM smart_clients WHERE id = ?1",
                    params![id],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
                )
                .optional()?;
            row.map(|(id, name, jwks, scopes, organization_id, revoked_at)| {
                Ok(SmartClient {
                    jwks: serde_json::from_str(&jwks).map_err(|e| StoreError::Corrupt(format!("JWKS of client {id}: {e}")))?,
                    scopes: split_scopes(&scopes),
                    id,
                    name,
                    organization_id,
                    revoked_at,
                })
            })
            .transpose()
        })
        .await
    }

    async fn revoke_smart_client(&self, client_id: &str, now: i64) -> Result<bool> {
        let id = client_id.to_string();
        self.write(move |conn| {
            let n = conn.execute(
                "UPDATE smart_clients SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
                params![id, now],
            )?;
            conn.execute(
                "DELETE FROM access_tokens WHERE client_id = ?1",
                params![id],
            )?;
            Ok(n > 0)
        })
        .await
    }

    async fn use_assertion_jti(
        &self,
        client_id: &str,
        jti: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<bool> {
        let (client, jti) = (client_id.to_string(), jti.to_string());
        self.write(move |conn| {
            conn.execute("DELETE FROM assertion_jtis WHERE expires_at < ?1", params![now])?;
            let n = conn.execute(
                "INSERT OR IGNORE INTO assertion_jtis (client_id, jti, expires_at) VALUES (?1, ?2, ?3)",
                params![client, jti, expires_at],
            )?;
            Ok(n == 1)
        })
        .await
    }

    async fn add_access_token(&self, t: &AccessToken, now: i64) -> Result<()> {
        let t = t.clone();
        self.write(move |conn| {
            conn.execute("DELETE FROM access_tokens WHERE expires_at < ?1", params![now - EXPIRED_TOKENS_KEPT_MS])?;
            conn.execute(
                "INSERT INTO access_tokens (token_hash, client_id, scopes, organization_id, issued_at, expires_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![t.token_hash, t.client_id, join_scopes(&t.scopes), t.organization_id, t.issued_at, t.expires_at],
            )?;
            Ok(())
        })
        .await
    }

    async fn access_token(&self, token_hash: &str) -> Result<Option<AccessToken>> {
        let hash = token_hash.to_string();
        self.read(move |conn| {
            Ok(conn
                .query_row(
                    "SELECT t.token_hash, t.client_id, t.scopes, t.organization_id, t.issued_at, t.expires_at \
                     FROM access_tokens t JOIN smart_clients c ON c.id = t.client_id \
                     WHERE t.token_hash = ?1 AND c.revoked_at IS NULL",
                    params![hash],
                    |r| {
                        Ok(AccessToken {
                            token_hash: r.get(0)?,
                            client_id: r.get(1)?,
                            scopes: split_scopes(&r.get::<_, String>(2)?),
                            organization_id: r.get(3)?,
                            issued_at: r.get(4)?,
                            expires_at: r.get(5)?,
                        })
                    },
                )
                .optional()?)
        })
        .await
    }
}
