//! The delivery work on receipts: the outbox is every receipt queued, retrying or being
//! delivered. A forwarder leases due receipts for one attempt each; the lease runs on the
//! database's clock (several hosts' clocks never disagree about it), is renewed by the
//! forwarder's heartbeat while the attempt runs, and is fenced by a token: only the holder
//! of the current lease can record how the attempt ended, so a forwarder whose lease expired
//! and was taken over cannot overwrite the new holder's result.
//!
//! The completion of an attempt also moves the record's life on ([`super::receipts`]): the
//! next revision that waited, or the cancellation requested meanwhile, is queued at once; the
//! facility's event is written in the same transaction ([`super::events`]).

use super::db::{Row, Tx, args};
use super::events::{self, EventKind};
use super::receipts::{self, Status};
use super::{Result, Store, StoreError};
use serde_json::{Value, json};

/// Serialises the assignment of positions in commit order — the `_since` feed's `feed_seq`
/// and the events' `seq` — on PostgreSQL (see [`super::db::Tx::serialize`]).
pub(crate) const POSITIONS_LOCK: i64 = 0x6765_7262_616e_6601;

/// A receipt leased for one attempt.
#[derive(Debug, Clone)]
pub struct Lease {
    pub receipt_id: String,
    pub organization_id: String,
    pub record_type: String,
    /// Fences the result: [`Store::complete`] with an older token changes nothing.
    pub token: String,
    /// Attempts since the work entered the queue (accepted, corrected, cancelled or
    /// replayed), including the one now starting: the retry budget.
    pub attempts: i64,
    /// When the work entered the queue: the age budget.
    pub created_at: i64,
    /// The revision to deliver; None: the work is the record's cancellation.
    pub revision: Option<i64>,
    /// That revision's Bundle.
    pub bundle: Option<Value>,
    /// What SATUSEHAT holds of the record, if anything.
    pub held: Option<Held>,
}

/// What SATUSEHAT holds of a record: a delivered revision.
#[derive(Debug, Clone)]
pub struct Held {
    pub revision: i64,
    /// Its Bundle as delivered (None once pruned).
    pub bundle: Option<Value>,
    /// `[{"fullUrl", "resourceType", "id"}]` of every resource upstream.
    pub server_ids: Value,
}

/// How an attempt ended.
#[derive(Debug, Clone)]
pub enum Completion {
    /// SATUSEHAT holds the work's result: the revision, or the cancellation.
    Delivered {
        server_ids: Value,
        duplicate: bool,
        /// What it did: `{"created": n, "updated": n, "retired": n, "unchanged": n}`.
        changes: Option<Value>,
    },
    Retry {
        /// From now, on the database's clock.
        delay_ms: i64,
        error: String,
        http_status: Option<u16>,
    },
    Dead {
        error: String,
        outcome: Value,
        http_status: Option<u16>,
    },
}

/// What the record does after an attempt ended.
enum Next {
    /// Stays as the completion left it.
    Stay,
    /// Deliver this revision (a correction that waited).
    Revision(i64),
    /// Cancel what SATUSEHAT holds.
    Cancel,
    /// Cancelled, nothing (more) to send.
    Cancelled,
}

async fn lease_due(
    tx: &mut dyn Tx,
    owner: String,
    organization: String,
    lease_ms: i64,
    limit: usize,
    now: i64,
) -> Result<Vec<Lease>> {
    // The token names the lease: owner and attempt number, which only ever grows.
    let rows = tx
        .query(
            "UPDATE receipts SET status = 'delivering', lease_owner = $1, \
             lease_token = $1 || '/' || CAST(attempts + 1 AS TEXT), lease_until = {now} + $2, \
             attempts = attempts + 1, updated_at = $3 \
             WHERE id IN (SELECT id FROM receipts \
                          WHERE organization_id = $4 AND ((status IN ('queued', 'retrying') AND next_attempt_at <= {now}) \
                             OR (status = 'delivering' AND lease_until < {now})) \
                          ORDER BY next_attempt_at LIMIT $5 {skip_locked}) \
             RETURNING id, organization_id, record_type, lease_token, attempts - attempts_before_requeue, \
             COALESCE(requeued_at, created_at), sending_revision, delivered_revision, server_ids",
            args![&owner, lease_ms, now, &organization, limit as i64],
        )
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let receipt_id: String = row.get(0)?;
        let revision: Option<i64> = row.get(6)?;
        let delivered: Option<i64> = row.get(7)?;
        let bundle = match revision {
            Some(n) => Some(revision_bundle(tx, &receipt_id, n).await?.ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "revision {n} of {receipt_id} to deliver has no Bundle"
                ))
            })?),
            None => None,
        };
        let held = match delivered {
            Some(d) => Some(Held {
                revision: d,
                bundle: revision_bundle(tx, &receipt_id, d).await?,
                server_ids: row.json_opt(8)?.unwrap_or_else(|| json!([])),
            }),
            None => None,
        };
        out.push(Lease {
            receipt_id,
            organization_id: row.get(1)?,
            record_type: row.get(2)?,
            token: row.get(3)?,
            attempts: row.get(4)?,
            created_at: row.get(5)?,
            revision,
            bundle,
            held,
        });
    }
    Ok(out)
}

async fn revision_bundle(
    tx: &mut dyn Tx,
    receipt_id: &str,
    revision: i64,
) -> Result<Option<Value>> {
    match tx
        .query_opt(
            "SELECT bundle FROM revisions WHERE receipt_id = $1 AND revision = $2",
            args![receipt_id, revision],
        )
        .await?
    {
        Some(row) => row.json_opt(0),
        None => Ok(None),
    }
}

async fn complete(
    tx: &mut dyn Tx,
    receipt_id: String,
    token: String,
    started_at: i64,
    now: i64,
    completion: Completion,
) -> Result<bool> {
    let Some(r) = receipts::lock_leased(tx, &receipt_id, &token).await? else {
        return Ok(false);
    };
    let work = r.sending_revision;
    let cancelling = r.cancel_requested_at.is_some();
    let newer = |rev: i64| r.revision > rev;
    // What needs a position in commit order; assigned last, so that the lock that orders
    // positions (PostgreSQL) is held for as short a time as possible.
    let mut positions = Positions::default();
    let (result, http_status, detail, next) = match &completion {
        Completion::Delivered {
            server_ids,
            duplicate,
            changes,
        } => {
            let result = if *duplicate { "duplicate" } else { "delivered" };
            match work {
                Some(rev) => {
                    tx.execute(
                        "UPDATE receipts SET status = 'delivered', delivered_revision = $4, server_ids = $2, updated_at = $3, \
                         lease_owner = NULL, lease_token = NULL, lease_until = NULL, next_attempt_at = NULL, last_error = NULL, \
                         upstream_outcome = NULL WHERE id = $1",
                        args![&receipt_id, server_ids, now, rev],
                    )
                    .await?;
                    tx.execute(
                        "UPDATE revisions SET outcome = 'delivered', outcome_at = $3, changes = $4 WHERE receipt_id = $1 AND revision = $2",
                        args![&receipt_id, rev, now, changes.as_ref()],
                    )
                    .await?;
                    // A new position in the feed: pullers see what SATUSEHAT now holds.
                    positions.feed = true;
                    let kind = if r.delivered_revision.is_none() {
                        EventKind::Delivered
                    } else {
                        EventKind::Corrected
                    };
                    let data = json!({"upstream_ids": server_ids, "changes": changes});
                    positions.events.push((kind, Some(rev), data));
                    let next = if cancelling {
                        Next::Cancel
                    } else if newer(rev) {
                        Next::Revision(r.revision)
                    } else {
                        Next::Stay
                    };
                    (result, None, None, next)
                }
                // The cancellation reached SATUSEHAT.
                None => {
                    tx.execute(
                        "UPDATE receipts SET server_ids = $2 WHERE id = $1",
                        args![&receipt_id, server_ids],
                    )
                    .await?;
                    (result, None, None, Next::Cancelled)
                }
            }
        }
        Completion::Retry {
            delay_ms,
            error,
            http_status,
        } => {
            let next = match work {
                Some(rev) if cancelling => {
                    receipts::settle_revision(tx, &receipt_id, rev, "cancelled", now).await?;
                    if r.delivered_revision.is_some() {
                        Next::Cancel
                    } else {
                        Next::Cancelled
                    }
                }
                Some(rev) if newer(rev) => {
                    receipts::settle_revision(tx, &receipt_id, rev, "superseded", now).await?;
                    Next::Revision(r.revision)
                }
                _ => {
                    tx.execute(
                        "UPDATE receipts SET status = 'retrying', next_attempt_at = {now} + $2, last_error = $3, updated_at = $4, \
                         lease_owner = NULL, lease_token = NULL, lease_until = NULL WHERE id = $1",
                        args![&receipt_id, *delay_ms, error, now],
                    )
                    .await?;
                    Next::Stay
                }
            };
            ("retry", *http_status, Some(error.clone()), next)
        }
        Completion::Dead {
            error,
            outcome,
            http_status,
        } => {
            if let Some(rev) = work {
                tx.execute(
                    "UPDATE revisions SET outcome = 'refused', outcome_at = $3, upstream_outcome = $4 WHERE receipt_id = $1 AND revision = $2",
                    args![&receipt_id, rev, now, outcome],
                )
                .await?;
            }
            positions
                .events
                .push((EventKind::Refused, work, json!({"outcome": outcome})));
            let next = match work {
                Some(rev) if cancelling => {
                    receipts::close_refused(tx, &receipt_id, Some(rev), "cancelled").await?;
                    if r.delivered_revision.is_some() {
                        Next::Cancel
                    } else {
                        Next::Cancelled
                    }
                }
                Some(rev) if newer(rev) => {
                    receipts::close_refused(tx, &receipt_id, Some(rev), "corrected").await?;
                    Next::Revision(r.revision)
                }
                _ => {
                    tx.execute(
                        "UPDATE receipts SET status = 'dead', upstream_outcome = $2, last_error = $3, updated_at = $4, \
                         lease_owner = NULL, lease_token = NULL, lease_until = NULL, next_attempt_at = NULL WHERE id = $1",
                        args![&receipt_id, outcome, error, now],
                    )
                    .await?;
                    Next::Stay
                }
            };
            ("dead", *http_status, Some(error.clone()), next)
        }
    };
    tx.execute(
        "INSERT INTO delivery_attempts (receipt_id, attempt, revision, started_at, finished_at, result, http_status, detail) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (receipt_id, attempt) DO UPDATE SET finished_at = excluded.finished_at, result = excluded.result, \
         http_status = excluded.http_status, detail = excluded.detail",
        args![&receipt_id, r.attempts, work, started_at, now, result, http_status.map(i64::from), detail],
    )
    .await?;
    match next {
        Next::Stay => {}
        Next::Revision(n) => receipts::queue_work(tx, &receipt_id, Some(n), now).await?,
        Next::Cancel => receipts::queue_work(tx, &receipt_id, None, now).await?,
        Next::Cancelled => {
            receipts::mark_cancelled(tx, &receipt_id, now).await?;
            positions.events.push((
                EventKind::Cancelled,
                None,
                json!({"reason": r.cancel_reason}),
            ));
            // Pullers see it again, as cancelled.
            positions.feed |= r.delivered_revision.is_some();
        }
    }
    if positions.feed || !positions.events.is_empty() {
        tx.serialize(POSITIONS_LOCK).await?;
        if positions.feed {
            new_feed_position(tx, &receipt_id, now).await?;
        }
        for (kind, revision, data) in positions.events {
            events::record(tx, &r, kind, revision, data, now).await?;
        }
    }
    Ok(true)
}

/// What a completion numbers in commit order: a new feed position, events.
#[derive(Default)]
struct Positions {
    feed: bool,
    events: Vec<(EventKind, Option<i64>, serde_json::Value)>,
}

/// The next position in the `_since` feed (the caller holds [`POSITIONS_LOCK`]). The delivery time
/// never goes back along the feed: `_since` relies on it.
async fn new_feed_position(tx: &mut dyn Tx, receipt_id: &str, now: i64) -> Result<()> {
    tx.execute(
        "UPDATE receipts SET feed_seq = (SELECT COALESCE(MAX(feed_seq), 0) + 1 FROM receipts), \
         delivered_at = COALESCE((SELECT CASE WHEN delivered_at > $2 THEN delivered_at ELSE $2 END FROM receipts \
                                  WHERE feed_seq IS NOT NULL ORDER BY feed_seq DESC LIMIT 1), $2) WHERE id = $1",
        args![receipt_id, now],
    )
    .await?;
    Ok(())
}

async fn requeue(
    tx: &mut dyn Tx,
    receipt_id: String,
    bundle: Option<Value>,
    organization_id: String,
    now: i64,
) -> Result<bool> {
    let Some(r) = receipts::read_receipt(tx, &receipt_id).await? else {
        return Ok(false);
    };
    if r.status != Status::Dead {
        return Ok(false);
    }
    if let (Some(rev), Some(bundle)) = (r.sending_revision, &bundle) {
        let n = tx
            .execute(
                "UPDATE revisions SET bundle = $3, outcome = 'pending', outcome_at = NULL \
                 WHERE receipt_id = $1 AND revision = $2 AND bundle IS NOT NULL",
                args![&receipt_id, rev, bundle],
            )
            .await?;
        if n == 0 {
            // Pruned: there is nothing to send again.
            return Ok(false);
        }
    }
    receipts::queue_work(tx, &receipt_id, r.sending_revision, now).await?;
    tx.execute(
        "UPDATE receipts SET organization_id = $2 WHERE id = $1",
        args![&receipt_id, &organization_id],
    )
    .await?;
    Ok(true)
}

impl Store {
    /// Organizations with receipts due now (or whose lease expired).
    pub async fn due_organizations(&self) -> Result<Vec<String>> {
        self.read(|tx| {
            Box::pin(async move {
                tx.query(
                    "SELECT DISTINCT organization_id FROM receipts \
                     WHERE (status IN ('queued', 'retrying') AND next_attempt_at <= {now}) \
                        OR (status = 'delivering' AND lease_until < {now})",
                    args![],
                )
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect()
            })
        })
        .await
    }

    /// Lease up to `limit` receipts of `organization` that are due (or whose lease expired)
    /// for one attempt each, for `lease_ms` on the database's clock unless renewed
    /// ([`Store::renew_leases`]) or completed. `now` stamps the receipts' last change.
    pub async fn lease_due(
        &self,
        owner: &str,
        organization: &str,
        lease_ms: i64,
        limit: usize,
        now: i64,
    ) -> Result<Vec<Lease>> {
        let (owner, org) = (owner.to_string(), organization.to_string());
        self.write(move |tx| Box::pin(lease_due(tx, owner, org, lease_ms, limit, now)))
            .await
    }

    /// Extend the leases `(receipt id, token)` still held by `lease_ms` from now; which of
    /// them are still held, in order.
    pub async fn renew_leases(
        &self,
        leases: Vec<(String, String)>,
        lease_ms: i64,
    ) -> Result<Vec<bool>> {
        self.write(move |tx| {
            Box::pin(async move {
                let mut held = Vec::with_capacity(leases.len());
                for (id, token) in &leases {
                    let n = tx
                        .execute(
                            "UPDATE receipts SET lease_until = {now} + $3 WHERE id = $1 AND lease_token = $2 AND status = 'delivering'",
                            args![id, token, lease_ms],
                        )
                        .await?;
                    held.push(n > 0);
                }
                Ok(held)
            })
        })
        .await
    }

    /// Record how an attempt ended, and move the record on. `false` if the lease `token` is
    /// no longer the receipt's (it expired and another forwarder took the receipt over):
    /// nothing is changed then.
    pub async fn complete(
        &self,
        receipt_id: &str,
        token: &str,
        started_at: i64,
        now: i64,
        completion: Completion,
    ) -> Result<bool> {
        let (id, token) = (receipt_id.to_string(), token.to_string());
        self.write(move |tx| Box::pin(complete(tx, id, token, started_at, now, completion)))
            .await
    }

    /// Release every lease, at start of a single-instance gateway: no other process can hold
    /// one, so deliveries interrupted by a crash resume at once instead of after the lease.
    pub async fn release_all_leases(&self) -> Result<u64> {
        self.write(|tx| {
            Box::pin(async move {
                tx.execute(
                    "UPDATE receipts SET status = 'retrying', lease_owner = NULL, lease_token = NULL, lease_until = NULL, \
                     next_attempt_at = COALESCE(next_attempt_at, {now}) WHERE status = 'delivering'",
                    args![],
                )
                .await
            })
        })
        .await
    }

    /// How long until the next receipt becomes due, in ms on the database's clock (≤ 0: due
    /// now); None when nothing waits.
    pub async fn next_due_in(&self) -> Result<Option<i64>> {
        self.read(|tx| {
            Box::pin(async move {
                tx.query_one(
                    "SELECT MIN(t) - {now} FROM (SELECT MIN(next_attempt_at) AS t FROM receipts WHERE status IN ('queued', 'retrying') \
                     UNION ALL SELECT MIN(lease_until) FROM receipts WHERE status = 'delivering') due",
                    args![],
                )
                .await?
                .get(0)
            })
        })
        .await
    }

    /// Number of receipts per status.
    pub async fn counts(&self) -> Result<Vec<(Status, u64)>> {
        self.read(|tx| {
            Box::pin(async move {
                let rows = tx
                    .query(
                        "SELECT status, COUNT(*) FROM receipts GROUP BY status",
                        args![],
                    )
                    .await?;
                let mut out: Vec<(Status, u64)> = Status::ALL.iter().map(|s| (*s, 0)).collect();
                for row in rows {
                    let s = Status::parse(&row.get::<String>(0)?)?;
                    let n: i64 = row.get(1)?;
                    if let Some(slot) = out.iter_mut().find(|(x, _)| *x == s) {
                        slot.1 = n as u64;
                    }
                }
                Ok(out)
            })
        })
        .await
    }

    /// Put a dead letter back in the queue, due now, for the facility's current
    /// `organization_id`: a revision with `bundle` (the record re-mapped with the current
    /// mappings), a cancellation as it was. `false` if it is not a dead letter (any more),
    /// or its payload was pruned.
    pub async fn requeue(
        &self,
        receipt_id: &str,
        bundle: Option<&Value>,
        organization_id: &str,
        now: i64,
    ) -> Result<bool> {
        let (id, bundle, org) = (
            receipt_id.to_string(),
            bundle.cloned(),
            organization_id.to_string(),
        );
        self.write(move |tx| Box::pin(requeue(tx, id, bundle, org, now)))
            .await
    }

    /// Give up on a dead letter for good, with the operator's reason. `false` if it is not a
    /// dead letter.
    pub async fn discard(&self, receipt_id: &str, reason: &str, now: i64) -> Result<bool> {
        let (id, reason) = (receipt_id.to_string(), reason.to_string());
        self.write(move |tx| {
            Box::pin(async move {
                let Some(r) = receipts::read_receipt(tx, &id).await? else {
                    return Ok(false);
                };
                let n = tx
                    .execute(
                        "UPDATE receipts SET status = 'discarded', discard_reason = $2, updated_at = $3 WHERE id = $1 AND status = 'dead'",
                        args![&id, &reason, now],
                    )
                    .await?;
                if n > 0 {
                    receipts::close_refused(tx, &id, r.sending_revision, "discarded").await?;
                }
                Ok(n > 0)
            })
        })
        .await
    }

    /// The cached value of a look-up (`kind` e.g. "Patient|…nik", `key_hash` a SHA-256 of the
    /// NIK), if not expired.
    pub async fn cached_lookup(
        &self,
        kind: &str,
        key_hash: &str,
        now: i64,
    ) -> Result<Option<String>> {
        let (kind, key) = (kind.to_string(), key_hash.to_string());
        self.read(move |tx| {
            Box::pin(async move {
                tx.query_opt(
                    "SELECT value FROM lookup_cache WHERE kind = $1 AND key_hash = $2 AND expires_at > $3",
                    args![kind, key, now],
                )
                .await?
                .map(|r: Row| r.get(0))
                .transpose()
            })
        })
        .await
    }

    pub async fn cache_lookup(
        &self,
        kind: &str,
        key_hash: &str,
        value: &str,
        expires_at: i64,
    ) -> Result<()> {
        let (kind, key, value) = (kind.to_string(), key_hash.to_string(), value.to_string());
        self.write(move |tx| {
            Box::pin(async move {
                tx.execute(
                    "INSERT INTO lookup_cache (kind, key_hash, value, expires_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (kind, key_hash) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at",
                    args![kind, key, value, expires_at],
                )
                .await?;
                Ok(())
            })
        })
        .await
    }
}
