//! Retention: a background task that deletes the payloads (raw records and Bundles of every
//! revision) of records delivered, discarded or cancelled longer ago than
//! `[store] retention_secs`, every
//! `[store] prune_interval_secs`. The receipt, its delivery attempts and the audit stay, so a
//! facility can still ask where a record went; only the clinical content goes (it lives on in
//! SATUSEHAT). Records not yet delivered — queued, retrying, dead letters — are never pruned.
//! A correction that arrives after its record was pruned is still delivered: what SATUSEHAT
//! holds is then read back from SATUSEHAT instead of from the pruned Bundle.
//!
//! Space: on PostgreSQL, deleted rows are reclaimed by autovacuum and their space reused by
//! new payloads, so the tables stay the size of one retention window. On SQLite the database
//! is created with `auto_vacuum = INCREMENTAL` and every prune that deletes something runs
//! `PRAGMA incremental_vacuum` (see [`Store::prune_payloads`]), which hands the freed
//! pages back to the file system: the file shrinks after a prune instead of only stopping to
//! grow. (A database created before that setting keeps `auto_vacuum = NONE`; there the freed
//! pages go to SQLite's free list and are reused by the next payloads, which also keeps the
//! file bounded, at its high-water mark.) The WAL file is reused from its start after each
//! checkpoint, so it stays bounded by the checkpoint size and the largest group commit.
//!
//! With several gateways on one PostgreSQL database each runs this task; a prune is one
//! idempotent statement, so running it from several instances is harmless.

use super::db::args;
use super::{Result, Store};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// What to prune, and how often.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// Payloads of records delivered or discarded longer ago than this are pruned.
    pub keep: Duration,
    /// Time between two prunes.
    pub every: Duration,
}

impl Retention {
    /// From `[store] retention_secs` and `prune_interval_secs`; `None` when payloads are kept
    /// forever (`retention_secs = 0`).
    pub fn from_secs(retention_secs: u64, prune_interval_secs: u64) -> Option<Retention> {
        (retention_secs > 0).then(|| Retention {
            keep: Duration::from_secs(retention_secs),
            every: Duration::from_secs(prune_interval_secs.max(1)),
        })
    }

    /// Prune now, then every `every`, until `shutdown` turns true (or its sender is gone).
    /// A failed prune is logged and tried again at the next tick.
    pub async fn run(self, store: Arc<Store>, mut shutdown: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(self.every);
        // After a long stall (e.g. the database was away) prune once, not once per missed tick.
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        break;
                    }
                    continue;
                }
            }
            if *shutdown.borrow() {
                break;
            }
            self.prune_once(store.as_ref()).await;
        }
    }

    /// One prune: payloads delivered or discarded before `now - keep`.
    pub async fn prune_once(&self, store: &Store) -> Option<u64> {
        let before = crate::time::now_millis() - self.keep.as_millis() as i64;
        let started = std::time::Instant::now();
        match store.prune_payloads(before).await {
            Ok(pruned) => {
                crate::internal_events::PayloadsPruned {
                    pruned,
                    older_than_secs: self.keep.as_secs(),
                    took_ms: started.elapsed().as_millis() as u64,
                }
                .emit();
                Some(pruned)
            }
            Err(e) => {
                crate::internal_events::PruneFailed {
                    error: &e.to_string(),
                }
                .emit();
                None
            }
        }
    }
}

impl Store {
    /// Delete the payloads (raw records and Bundles, every revision) of receipts delivered,
    /// discarded or cancelled before `before`; the receipts stay. How many receipts were
    /// pruned.
    pub async fn prune_payloads(&self, before: i64) -> Result<u64> {
        let pruned = self
            .write(move |tx| {
                Box::pin(async move {
                    tx.execute(
                        "UPDATE revisions SET raw = NULL, bundle = NULL WHERE raw IS NOT NULL AND receipt_id IN \
                         (SELECT id FROM receipts WHERE status IN ('delivered', 'discarded', 'cancelled') \
                          AND updated_at < $1 AND pruned_at IS NULL)",
                        args![before],
                    )
                    .await?;
                    tx.execute(
                        "UPDATE receipts SET pruned_at = $2 WHERE status IN ('delivered', 'discarded', 'cancelled') \
                         AND updated_at < $1 AND pruned_at IS NULL",
                        args![before, crate::time::now_millis()],
                    )
                    .await
                })
            })
            .await?;
        if pruned > 0 {
            self.vacuum().await?;
        }
        Ok(pruned)
    }
}
