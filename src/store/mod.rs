//! Durable state, in parts by concern, each statement written once for both databases
//! ([`db`]):
//!
//! | part | holds |
//! |---|---|
//! | [`receipts`] | what facilities sent: one receipt per record, its revisions (raw record and Bundle each), its delivery attempts; corrections and cancellations |
//! | [`outbox`] | the delivery work on those receipts: leases (fenced by a token, on the database's clock), how attempts end, dead letters, the NIK → IHS look-up cache |
//! | [`events`] | what became of each record, as events in commit order, and the facilities' webhooks that receive them |
//! | [`access`] | facilities and their API keys, operators, SMART pull clients and their tokens |
//! | [`export`] | the `_since` feed and Bulk Data export jobs |
//! | [`audit`] | who did what |
//! | [`sessions`] | who is signed in to the web console |
//! | [`overview`] | what the console's overview reads: receipts per organization, deliveries per hour, queue age |
//! | [`retention`] | pruning delivered payloads |
//!
//! One [`Store`], one behaviour on both databases: SQLite ([`sqlite`]) is the embedded
//! default, PostgreSQL ([`postgres`]) serves several gateway instances. Every method that
//! changes state returns only after the change is durable — a facility's record is
//! acknowledged (202) only after [`Store::accept`] returns.

pub mod access;
pub mod audit;
pub mod db;
pub mod events;
pub mod export;
pub mod outbox;
pub mod overview;
pub mod postgres;
pub mod receipts;
pub mod retention;
pub mod sessions;
pub mod sqlite;

pub use access::{
    AccessToken, ApiKeyInfo, EXPIRED_TOKENS_KEPT_MS, Facility, SmartClient, join_scopes,
    split_scopes,
};
pub use audit::{AuditEvent, AuditFilter};
pub use events::{Event, EventKind, Webhook, WebhookFailure, WebhookLease};
pub use export::{
    ExportEnd, ExportJob, ExportProgress, ExportStatus, FeedItem, FeedQuery, NewExportJob,
};
pub use outbox::{Completion, Held, Lease};
pub use overview::{Delivery, OrganizationQueue};
pub use receipts::{
    Accepted, Attempt, Cancelled, Known, NewRecord, Page, Payload, Receipt, ReceiptFilter,
    Revision, Status,
};
pub use sessions::ConsoleSession;

use db::Tx;
use std::pin::Pin;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(String),
    #[error("the store is shutting down")]
    Closed,
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error(
        "the data disk is nearly full: {free_mb} MB free, {keep_mb} MB must stay free (store.min_free_mb); free space on it"
    )]
    DiskNearlyFull { free_mb: u64, keep_mb: u64 },
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// What a store operation returns to the backend that runs it.
pub type BoxFut<'t, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 't>>;

enum Backend {
    Sqlite(sqlite::Sqlite),
    Postgres(postgres::Postgres),
}

/// The durable state of a gateway (or of several, on PostgreSQL).
pub struct Store {
    backend: Backend,
    /// SQLite: the folder of the database file, and how many bytes must stay free on its
    /// disk for new records to be taken ([`Store::check_room`]).
    data_dir: Option<std::path::PathBuf>,
    keep_free: u64,
}

impl Store {
    /// The embedded store: open (creating and migrating if needed) the SQLite file at `path`.
    pub fn sqlite(path: &std::path::Path) -> Result<Store> {
        Ok(Store {
            backend: Backend::Sqlite(sqlite::Sqlite::open(path)?),
            data_dir: path.parent().map(|p| p.to_path_buf()),
            keep_free: 0,
        })
    }

    /// The shared store: connect to PostgreSQL (optionally inside `schema`, created if
    /// missing) and migrate.
    pub async fn postgres(
        url: &str,
        schema: Option<&str>,
        max_connections: usize,
    ) -> Result<Store> {
        Ok(Store {
            backend: Backend::Postgres(
                postgres::Postgres::connect(url, schema, max_connections).await?,
            ),
            data_dir: None,
            keep_free: 0,
        })
    }

    /// Keep `bytes` free on the database's disk (SQLite): below that, new records are refused
    /// ([`Store::check_room`]) while deliveries go on. A database that fills its disk to the
    /// last byte fails every write, its own bookkeeping included; refusing early keeps it able
    /// to deliver and to recover.
    pub fn keep_free(mut self, bytes: u64) -> Store {
        self.keep_free = bytes;
        self
    }

    /// Whether there is room for new records: enough free space on the database's disk.
    /// Always room on PostgreSQL, whose disk is the database server's.
    pub fn check_room(&self) -> Result<()> {
        let (Some(dir), true) = (&self.data_dir, self.keep_free > 0) else {
            return Ok(());
        };
        let free = match rustix::fs::statvfs(dir) {
            Ok(s) => s.f_bavail.saturating_mul(s.f_frsize),
            // Cannot tell: the writes themselves will say.
            Err(_) => return Ok(()),
        };
        if free < self.keep_free {
            return Err(StoreError::DiskNearlyFull {
                free_mb: free / (1024 * 1024),
                keep_mb: self.keep_free / (1024 * 1024),
            });
        }
        Ok(())
    }

    /// Whether one process owns this store (SQLite). Only then may leases be taken back at
    /// start; with several gateways on one database, leases only expire.
    pub fn exclusive(&self) -> bool {
        matches!(self.backend, Backend::Sqlite(_))
    }

    /// Run a store operation in a write transaction; its result once committed.
    pub(crate) async fn write<T, F>(&self, op: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'t> FnOnce(&'t mut dyn Tx) -> BoxFut<'t, T> + Send + 'static,
    {
        match &self.backend {
            Backend::Sqlite(db) => db.write(Box::new(op)).await,
            Backend::Postgres(db) => db.write(Box::new(op)).await,
        }
    }

    /// Run a store operation that only reads.
    pub(crate) async fn read<T, F>(&self, op: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'t> FnOnce(&'t mut dyn Tx) -> BoxFut<'t, T> + Send + 'static,
    {
        match &self.backend {
            Backend::Sqlite(db) => db.read(Box::new(op)).await,
            Backend::Postgres(db) => db.read(Box::new(op)).await,
        }
    }

    /// Give pages freed by a prune back to the file system (SQLite; PostgreSQL's autovacuum
    /// reuses them).
    pub(crate) async fn vacuum(&self) -> Result<()> {
        match &self.backend {
            Backend::Sqlite(db) => db.vacuum().await,
            Backend::Postgres(_) => Ok(()),
        }
    }

    /// Can the store write now? A real write (a row per instance), so a full disk or a
    /// read-only database shows here, not only when the next record is refused.
    pub async fn probe_write(&self, instance: &str) -> Result<()> {
        let instance = instance.to_string();
        self.write(move |tx| {
            Box::pin(async move {
                tx.execute(
                    "INSERT INTO health_probes (instance, at) VALUES ($1, {now}) \
                     ON CONFLICT (instance) DO UPDATE SET at = excluded.at",
                    db::args![instance],
                )
                .await?;
                Ok(())
            })
        })
        .await
    }
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

/// How long a background worker (forwarder, webhook sender) waits after `failures` failed
/// rounds against the store in a row: 0.5 s doubling, at most 30 s. A store that fails now (a
/// full disk, the database away) is not better a millisecond later, and every failure is a
/// log line.
pub fn backoff(failures: u32) -> std::time::Duration {
    std::time::Duration::from_millis(500)
        .saturating_mul(2u32.saturating_pow(failures.saturating_sub(1).min(10)))
        .min(std::time::Duration::from_secs(30))
}

/// A fresh random id for a row (receipts, lease tokens, events).
pub(crate) fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}
