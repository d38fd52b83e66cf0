//! What facilities sent, and where each record is: one receipt per record (facility + record
//! type + local id), its revisions — each with the raw record and the Bundle made of it — and
//! its delivery attempts.
//!
//! **Revisions.** The same local id with new content is a new revision, not a new record.
//! Per record one revision is on its way at a time (`sending_revision`); what SATUSEHAT holds
//! is `delivered_revision`. A new revision arriving
//! - while the previous one waits (queued, retrying) replaces it — the older is *superseded*
//!   and nothing of it is sent;
//! - while the previous one is being delivered waits: the completion of that delivery
//!   ([`super::outbox`]) queues the newest;
//! - after delivery is queued as an update; after a refusal it is delivered afresh and the
//!   dead letter is closed as *corrected*.
//!
//! **Cancellation** of what was never delivered ends at once; of what SATUSEHAT holds, it is
//! queued as work that marks each resource entered-in-error. A cancelled record takes no new
//! revision.

use super::db::{Query, Row, Tx, args};
use super::events::{self, EventKind};
use super::{Result, Store, StoreError, new_id};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Where a record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Accepted (or corrected, or cancelled after delivery), waiting for its next attempt.
    Queued,
    /// Leased by a forwarder; an attempt is under way.
    Delivering,
    /// The last attempt failed in a way worth retrying; see `next_attempt_at`.
    Retrying,
    /// SATUSEHAT holds its newest revision.
    Delivered,
    /// SATUSEHAT refused it for good; the upstream OperationOutcome says why. Replayable, and
    /// a correction from the facility is delivered afresh.
    Dead,
    /// An operator decided a dead letter will not be sent, with a reason.
    Discarded,
    /// The facility cancelled it; what SATUSEHAT held is marked entered-in-error.
    Cancelled,
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
            Status::Cancelled => "cancelled",
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
            "cancelled" => Status::Cancelled,
            other => return Err(StoreError::Corrupt(format!("unknown status `{other}`"))),
        })
    }
    pub const ALL: [Status; 7] = [
        Status::Queued,
        Status::Delivering,
        Status::Retrying,
        Status::Delivered,
        Status::Dead,
        Status::Discarded,
        Status::Cancelled,
    ];
}

/// A record that passed steps 1–3 and is ready to be made durable.
#[derive(Debug, Clone)]
pub struct NewRecord {
    pub facility_id: String,
    /// The facility's SATUSEHAT organization now (a correction takes it over).
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
    /// `If-Match`: accept only if the record is at this revision (a facility system that
    /// must not overwrite a revision it has not seen). None: no condition.
    pub if_match: Option<i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Accepted {
    /// Stored now as revision 1 of a new receipt.
    New { receipt_id: String },
    /// Stored now as a new revision of the record; `status` is the record's now (queued, or
    /// delivering while the revision before finishes).
    Revised {
        receipt_id: String,
        revision: i64,
        status: Status,
    },
    /// The newest revision has this very content: a re-send, nothing stored.
    Existing { receipt_id: String, revision: i64 },
    /// `If-Match` named another revision than the newest (None: there is no such record).
    Stale {
        receipt_id: Option<String>,
        revision: Option<i64>,
    },
    /// The record was cancelled; it takes no new revision.
    Cancelled { receipt_id: String },
}

/// A record the facility sent before, as the ingest path checks it before mapping.
#[derive(Debug, Clone, PartialEq)]
pub struct Known {
    pub receipt_id: String,
    pub content_hash: String,
    pub revision: i64,
    pub cancelled: bool,
}

/// What [`Store::cancel`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct Cancelled {
    pub receipt_id: String,
    /// It was cancelled before: nothing changed now.
    pub already: bool,
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
    /// What SATUSEHAT holds of the record, e.g. `[{"fullUrl": …, "resourceType": "Encounter", "id": "…"}]`.
    pub server_ids: Option<Value>,
    /// SATUSEHAT's OperationOutcome for a dead letter.
    pub upstream_outcome: Option<Value>,
    /// Why an operator discarded it.
    pub discard_reason: Option<String>,
    /// The local format the newest revision arrived in (None: canonical).
    pub format: Option<String>,
    /// The raw records and Bundles were pruned (retention); the receipt itself stays.
    pub pruned: bool,
    /// The newest revision accepted.
    pub revision: i64,
    /// The revision on its way (queued, retrying, being delivered); None when idle or when
    /// the work is a cancellation.
    pub sending_revision: Option<i64>,
    /// The revision SATUSEHAT holds.
    pub delivered_revision: Option<i64>,
    pub cancel_reason: Option<String>,
    pub cancel_requested_at: Option<i64>,
    pub cancelled_at: Option<i64>,
}

/// One revision of a record and what became of it.
#[derive(Debug, Clone, Serialize)]
pub struct Revision {
    pub revision: i64,
    pub received_at: i64,
    pub format: Option<String>,
    /// pending | delivered | superseded | refused | cancelled
    pub outcome: String,
    pub outcome_at: Option<i64>,
    /// SATUSEHAT's OperationOutcome, when refused.
    pub upstream_outcome: Option<Value>,
    /// How a refused revision was closed: corrected | discarded | cancelled.
    pub closed: Option<String>,
    /// What its delivery did upstream: `{"created": n, "updated": n, "retired": n, "unchanged": n}`.
    pub changes: Option<Value>,
    /// Its raw record and Bundle were pruned.
    pub pruned: bool,
}

/// What a facility sent and what gerbang made of it (one revision).
#[derive(Debug, Clone, Serialize)]
pub struct Payload {
    pub revision: i64,
    pub raw: Value,
    pub bundle: Value,
}

/// One delivery attempt, for the audit of a receipt.
#[derive(Debug, Clone, Serialize)]
pub struct Attempt {
    pub attempt: i64,
    /// The revision it carried; None for a cancellation.
    pub revision: Option<i64>,
    pub started_at: i64,
    pub finished_at: i64,
    /// delivered | duplicate | retry | dead
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

/// One page of a facility's receipts, newest change first.
#[derive(Debug, Clone)]
pub struct Page {
    pub receipts: Vec<Receipt>,
    /// Where the next page starts (`updated_at`, id of the last receipt), if there is one.
    pub next: Option<(i64, String)>,
}

const RECEIPT_COLUMNS: &str = "id, facility_id, organization_id, record_type, local_id, status, attempts, created_at, \
     updated_at, next_attempt_at, last_error, delivered_at, server_ids, upstream_outcome, discard_reason, pruned_at, \
     format, revision, sending_revision, delivered_revision, cancel_reason, cancel_requested_at, cancelled_at";

fn receipt(row: &Row) -> Result<Receipt> {
    Ok(Receipt {
        id: row.get(0)?,
        facility_id: row.get(1)?,
        organization_id: row.get(2)?,
        record_type: row.get(3)?,
        local_id: row.get(4)?,
        status: Status::parse(&row.get::<String>(5)?)?,
        attempts: row.get(6)?,
        created_at: row.get(7)?,
        updated_at: row.get(8)?,
        next_attempt_at: row.get(9)?,
        last_error: row.get(10)?,
        delivered_at: row.get(11)?,
        server_ids: row.json_opt(12)?,
        upstream_outcome: row.json_opt(13)?,
        discard_reason: row.get(14)?,
        pruned: row.get::<Option<i64>>(15)?.is_some(),
        format: row.get(16)?,
        revision: row.get(17)?,
        sending_revision: row.get(18)?,
        delivered_revision: row.get(19)?,
        cancel_reason: row.get(20)?,
        cancel_requested_at: row.get(21)?,
        cancelled_at: row.get(22)?,
    })
}

pub(crate) async fn read_receipt(tx: &mut dyn Tx, id: &str) -> Result<Option<Receipt>> {
    tx.query_opt(
        &format!("SELECT {RECEIPT_COLUMNS} FROM receipts WHERE id = $1"),
        args![id],
    )
    .await?
    .as_ref()
    .map(receipt)
    .transpose()
}

/// The receipt whose lease `token` is current, locked until the transaction ends (None: the
/// lease expired and was taken over, or the attempt was already recorded).
pub(crate) async fn lock_leased(tx: &mut dyn Tx, id: &str, token: &str) -> Result<Option<Receipt>> {
    tx.query_opt(
        &format!(
            "SELECT {RECEIPT_COLUMNS} FROM receipts WHERE id = $1 AND lease_token = $2 AND status = 'delivering' {{for_update}}"
        ),
        args![id, token],
    )
    .await?
    .as_ref()
    .map(receipt)
    .transpose()
}

/// Set `revision`'s outcome (a pending revision only; an outcome once given stays).
pub(crate) async fn settle_revision(
    tx: &mut dyn Tx,
    receipt_id: &str,
    revision: i64,
    outcome: &str,
    at: i64,
) -> Result<()> {
    tx.execute(
        "UPDATE revisions SET outcome = $3, outcome_at = $4 WHERE receipt_id = $1 AND revision = $2 AND outcome = 'pending'",
        args![receipt_id, revision, outcome, at],
    )
    .await?;
    Ok(())
}

/// Close a refused revision: the facility corrected it, an operator discarded it, or the
/// record was cancelled.
pub(crate) async fn close_refused(
    tx: &mut dyn Tx,
    receipt_id: &str,
    revision: Option<i64>,
    how: &str,
) -> Result<()> {
    if let Some(revision) = revision {
        tx.execute(
            "UPDATE revisions SET closed = $3 WHERE receipt_id = $1 AND revision = $2 AND outcome = 'refused' AND closed IS NULL",
            args![receipt_id, revision, how],
        )
        .await?;
    }
    Ok(())
}

/// Queue the receipt's next work — deliver `revision`, or (None) cancel — due at once, with a
/// fresh retry budget.
pub(crate) async fn queue_work(
    tx: &mut dyn Tx,
    receipt_id: &str,
    revision: Option<i64>,
    now: i64,
) -> Result<()> {
    tx.execute(
        "UPDATE receipts SET status = 'queued', sending_revision = $2, next_attempt_at = {now}, updated_at = $3, \
         requeued_at = $3, attempts_before_requeue = attempts, last_error = NULL, upstream_outcome = NULL, \
         discard_reason = NULL, lease_owner = NULL, lease_token = NULL, lease_until = NULL WHERE id = $1",
        args![receipt_id, revision, now],
    )
    .await?;
    Ok(())
}

/// The record is cancelled now: nothing more to send.
pub(crate) async fn mark_cancelled(tx: &mut dyn Tx, receipt_id: &str, now: i64) -> Result<()> {
    tx.execute(
        "UPDATE receipts SET status = 'cancelled', cancelled_at = $2, updated_at = $2, sending_revision = NULL, \
         next_attempt_at = NULL, lease_owner = NULL, lease_token = NULL, lease_until = NULL WHERE id = $1",
        args![receipt_id, now],
    )
    .await?;
    Ok(())
}

/// End a record that SATUSEHAT holds nothing of as cancelled, with its event.
async fn end_cancelled(tx: &mut dyn Tx, r: &Receipt, now: i64) -> Result<()> {
    mark_cancelled(tx, &r.id, now).await?;
    tx.serialize(super::outbox::POSITIONS_LOCK).await?;
    events::record(
        tx,
        r,
        EventKind::Cancelled,
        None,
        json!({"reason": r.cancel_reason}),
        now,
    )
    .await
}

async fn accept(tx: &mut dyn Tx, r: NewRecord) -> Result<Accepted> {
    // Twice at most: a first push that races another for the same new record finds it
    // stored on the second pass.
    for _ in 0..2 {
        let existing = tx
            .query_opt(
                "SELECT id, content_hash, revision, status, cancel_requested_at, sending_revision FROM receipts \
                 WHERE facility_id = $1 AND record_type = $2 AND local_id = $3 {for_update}",
                args![&r.facility_id, &r.record_type, &r.local_id],
            )
            .await?;
        let Some(row) = existing else {
            if r.if_match.is_some() {
                return Ok(Accepted::Stale {
                    receipt_id: None,
                    revision: None,
                });
            }
            let receipt_id = new_id();
            let inserted = tx
                .execute(
                    "INSERT INTO receipts (id, facility_id, organization_id, record_type, local_id, content_hash, status, \
                     attempts, next_attempt_at, created_at, updated_at, format, revision, sending_revision) \
                     VALUES ($1, $2, $3, $4, $5, $6, 'queued', 0, {now}, $7, $7, $8, 1, 1) \
                     ON CONFLICT (facility_id, record_type, local_id) DO NOTHING",
                    args![&receipt_id, &r.facility_id, &r.organization_id, &r.record_type, &r.local_id, &r.content_hash, r.received_at, &r.format],
                )
                .await?;
            if inserted == 0 {
                continue;
            }
            insert_revision(tx, &receipt_id, 1, &r).await?;
            // The push is audited in the same transaction: no record without its audit entry.
            super::audit::insert(
                tx,
                r.received_at,
                &format!("facility:{}", r.facility_id),
                "push",
                Some(&receipt_id),
                Some(&r.organization_id),
                Some(&r.record_type),
            )
            .await?;
            return Ok(Accepted::New { receipt_id });
        };
        let receipt_id: String = row.get(0)?;
        let hash: String = row.get(1)?;
        let revision: i64 = row.get(2)?;
        let status = Status::parse(&row.get::<String>(3)?)?;
        let cancel_requested = row.get::<Option<i64>>(4)?.is_some();
        let sending: Option<i64> = row.get(5)?;
        if hash == r.content_hash {
            return Ok(Accepted::Existing {
                receipt_id,
                revision,
            });
        }
        if r.if_match.is_some_and(|m| m != revision) {
            return Ok(Accepted::Stale {
                receipt_id: Some(receipt_id),
                revision: Some(revision),
            });
        }
        if cancel_requested {
            return Ok(Accepted::Cancelled { receipt_id });
        }
        let next = revision + 1;
        insert_revision(tx, &receipt_id, next, &r).await?;
        match status {
            // Waiting: the newest replaces it; nothing of the older is sent.
            Status::Queued | Status::Retrying => {
                if let Some(s) = sending {
                    settle_revision(tx, &receipt_id, s, "superseded", r.received_at).await?;
                }
                queue_work(tx, &receipt_id, Some(next), r.received_at).await?;
            }
            // The delivery under way finishes first; its completion queues this revision.
            Status::Delivering => {}
            Status::Delivered => queue_work(tx, &receipt_id, Some(next), r.received_at).await?,
            Status::Dead | Status::Discarded => {
                close_refused(tx, &receipt_id, sending, "corrected").await?;
                queue_work(tx, &receipt_id, Some(next), r.received_at).await?;
            }
            Status::Cancelled => return Ok(Accepted::Cancelled { receipt_id }),
        }
        tx.execute(
            "UPDATE receipts SET revision = $2, content_hash = $3, format = $4, organization_id = $5, updated_at = $6 WHERE id = $1",
            args![&receipt_id, next, &r.content_hash, &r.format, &r.organization_id, r.received_at],
        )
        .await?;
        super::audit::insert(
            tx,
            r.received_at,
            &format!("facility:{}", r.facility_id),
            "correct",
            Some(&receipt_id),
            Some(&r.organization_id),
            Some(&format!("{} revision {next}", r.record_type)),
        )
        .await?;
        return Ok(Accepted::Revised {
            receipt_id,
            revision: next,
            status: if status == Status::Delivering {
                Status::Delivering
            } else {
                Status::Queued
            },
        });
    }
    Err(StoreError::Database(
        "a record was stored and then not found in the same transaction".into(),
    ))
}

async fn insert_revision(
    tx: &mut dyn Tx,
    receipt_id: &str,
    revision: i64,
    r: &NewRecord,
) -> Result<()> {
    tx.execute(
        "INSERT INTO revisions (receipt_id, revision, content_hash, format, received_at, raw, bundle, outcome) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending')",
        args![receipt_id, revision, &r.content_hash, &r.format, r.received_at, &r.raw, &r.bundle],
    )
    .await?;
    Ok(())
}

async fn cancel(
    tx: &mut dyn Tx,
    facility_id: String,
    record_type: String,
    local_id: String,
    reason: String,
    actor: String,
    now: i64,
) -> Result<Option<Cancelled>> {
    let Some(row) = tx
        .query_opt(
            &format!("SELECT {RECEIPT_COLUMNS} FROM receipts WHERE facility_id = $1 AND record_type = $2 AND local_id = $3 {{for_update}}"),
            args![&facility_id, &record_type, &local_id],
        )
        .await?
    else {
        return Ok(None);
    };
    let mut r = receipt(&row)?;
    if r.cancel_requested_at.is_some() {
        return Ok(Some(Cancelled {
            receipt_id: r.id,
            already: true,
        }));
    }
    tx.execute(
        "UPDATE receipts SET cancel_reason = $2, cancel_requested_at = $3, updated_at = $3 WHERE id = $1",
        args![&r.id, &reason, now],
    )
    .await?;
    r.cancel_reason = Some(reason.clone());
    r.cancel_requested_at = Some(now);
    let held = r.delivered_revision.is_some();
    match r.status {
        Status::Queued | Status::Retrying => {
            if let Some(s) = r.sending_revision {
                settle_revision(tx, &r.id, s, "cancelled", now).await?;
            }
            if held {
                queue_work(tx, &r.id, None, now).await?;
            } else {
                end_cancelled(tx, &r, now).await?;
            }
        }
        Status::Dead | Status::Discarded => {
            close_refused(tx, &r.id, r.sending_revision, "cancelled").await?;
            if held {
                queue_work(tx, &r.id, None, now).await?;
            } else {
                end_cancelled(tx, &r, now).await?;
            }
        }
        // The delivery under way ends first; its completion goes on with the cancellation.
        Status::Delivering => {}
        Status::Delivered => queue_work(tx, &r.id, None, now).await?,
        Status::Cancelled => {}
    }
    super::audit::insert(
        tx,
        now,
        &actor,
        "cancel",
        Some(&r.id),
        Some(&r.organization_id),
        Some(&reason),
    )
    .await?;
    Ok(Some(Cancelled {
        receipt_id: r.id,
        already: false,
    }))
}

fn revision(row: &Row) -> Result<Revision> {
    Ok(Revision {
        revision: row.get(0)?,
        received_at: row.get(1)?,
        format: row.get(2)?,
        outcome: row.get(3)?,
        outcome_at: row.get(4)?,
        upstream_outcome: row.json_opt(5)?,
        closed: row.get(6)?,
        changes: row.json_opt(7)?,
        pruned: row.get(8)?,
    })
}

impl Store {
    /// Make a record durable — a new receipt, or a new revision of the facility's record
    /// under the same local id — in one transaction with its audit entry; or recognise it as
    /// sent before.
    pub async fn accept(&self, record: NewRecord) -> Result<Accepted> {
        self.write(move |tx| Box::pin(accept(tx, record))).await
    }

    /// The facility's record under this local id, if it sent one.
    pub async fn find_by_local_id(
        &self,
        facility_id: &str,
        record_type: &str,
        local_id: &str,
    ) -> Result<Option<Known>> {
        let (f, t, l) = (
            facility_id.to_string(),
            record_type.to_string(),
            local_id.to_string(),
        );
        self.read(move |tx| {
            Box::pin(async move {
                tx.query_opt(
                    "SELECT id, content_hash, revision, cancel_requested_at FROM receipts \
                     WHERE facility_id = $1 AND record_type = $2 AND local_id = $3",
                    args![f, t, l],
                )
                .await?
                .map(|row| {
                    Ok(Known {
                        receipt_id: row.get(0)?,
                        content_hash: row.get(1)?,
                        revision: row.get(2)?,
                        cancelled: row.get::<Option<i64>>(3)?.is_some(),
                    })
                })
                .transpose()
            })
        })
        .await
    }

    /// Cancel the facility's record (`actor` for the audit). None if there is no such record.
    pub async fn cancel(
        &self,
        facility_id: &str,
        record_type: &str,
        local_id: &str,
        reason: &str,
        actor: &str,
        now: i64,
    ) -> Result<Option<Cancelled>> {
        let (f, t, l, why, who) = (
            facility_id.to_string(),
            record_type.to_string(),
            local_id.to_string(),
            reason.to_string(),
            actor.to_string(),
        );
        self.write(move |tx| Box::pin(cancel(tx, f, t, l, why, who, now)))
            .await
    }

    pub async fn receipt(&self, receipt_id: &str) -> Result<Option<Receipt>> {
        let id = receipt_id.to_string();
        self.read(move |tx| Box::pin(async move { read_receipt(tx, &id).await }))
            .await
    }

    /// A receipt only if `facility_id` sent it: what a facility may see is chosen here, in
    /// the query, not by whoever shows it.
    pub async fn facility_receipt(
        &self,
        facility_id: &str,
        receipt_id: &str,
    ) -> Result<Option<Receipt>> {
        let (f, id) = (facility_id.to_string(), receipt_id.to_string());
        self.read(move |tx| {
            Box::pin(async move {
                tx.query_opt(
                    &format!(
                        "SELECT {RECEIPT_COLUMNS} FROM receipts WHERE id = $1 AND facility_id = $2"
                    ),
                    args![id, f],
                )
                .await?
                .as_ref()
                .map(receipt)
                .transpose()
            })
        })
        .await
    }

    /// Receipts matching `filter`, newest first (by when they were received).
    pub async fn list_receipts(
        &self,
        filter: &ReceiptFilter,
        limit: usize,
    ) -> Result<Vec<Receipt>> {
        let f = filter.clone();
        self.read(move |tx| {
            Box::pin(async move {
                let mut q = Query::new(format!(
                    "SELECT {RECEIPT_COLUMNS} FROM receipts WHERE 1 = 1"
                ));
                filter_conditions(&mut q, &f);
                if let Some(t) = f.since {
                    let p = q.bind(t);
                    q.push(&format!(" AND created_at >= {p}"));
                }
                if let Some(t) = f.until {
                    let p = q.bind(t);
                    q.push(&format!(" AND created_at < {p}"));
                }
                let p = q.bind(limit as i64);
                q.push(&format!(" ORDER BY created_at DESC, id LIMIT {p}"));
                tx.query(&q.sql, &q.args)
                    .await?
                    .iter()
                    .map(receipt)
                    .collect()
            })
        })
        .await
    }

    /// A page of receipts matching `filter` (`since` bounds the last change), newest change
    /// first, starting after `after` (the `next` of the page before).
    pub async fn receipts_page(
        &self,
        filter: &ReceiptFilter,
        after: Option<(i64, String)>,
        limit: usize,
    ) -> Result<Page> {
        let f = filter.clone();
        self.read(move |tx| {
            Box::pin(async move {
                let mut q = Query::new(format!(
                    "SELECT {RECEIPT_COLUMNS} FROM receipts WHERE 1 = 1"
                ));
                filter_conditions(&mut q, &f);
                if let Some(t) = f.since {
                    let p = q.bind(t);
                    q.push(&format!(" AND updated_at >= {p}"));
                }
                if let Some((at, id)) = after {
                    let (pa, pi) = (q.bind(at), q.bind(id));
                    q.push(&format!(
                        " AND (updated_at < {pa} OR (updated_at = {pa} AND id < {pi}))"
                    ));
                }
                let p = q.bind(limit as i64 + 1);
                q.push(&format!(" ORDER BY updated_at DESC, id DESC LIMIT {p}"));
                let mut receipts = tx
                    .query(&q.sql, &q.args)
                    .await?
                    .iter()
                    .map(receipt)
                    .collect::<Result<Vec<_>>>()?;
                let next = if receipts.len() > limit {
                    receipts.truncate(limit);
                    receipts.last().map(|r| (r.updated_at, r.id.clone()))
                } else {
                    None
                };
                Ok(Page { receipts, next })
            })
        })
        .await
    }

    /// The newest revision's raw record and Bundle (None once pruned).
    pub async fn payload(&self, receipt_id: &str) -> Result<Option<Payload>> {
        let id = receipt_id.to_string();
        self.read(move |tx| {
            Box::pin(async move {
                let Some(row) = tx
                    .query_opt(
                        "SELECT v.revision, v.raw, v.bundle FROM revisions v JOIN receipts r ON r.id = v.receipt_id \
                         WHERE v.receipt_id = $1 AND v.revision = r.revision AND v.raw IS NOT NULL AND v.bundle IS NOT NULL",
                        args![id],
                    )
                    .await?
                else {
                    return Ok(None);
                };
                Ok(Some(Payload {
                    revision: row.get(0)?,
                    raw: row.json(1)?,
                    bundle: row.json(2)?,
                }))
            })
        })
        .await
    }

    /// Every revision of a receipt, oldest first.
    pub async fn revisions(&self, receipt_id: &str) -> Result<Vec<Revision>> {
        let id = receipt_id.to_string();
        self.read(move |tx| {
            Box::pin(async move {
                tx.query(
                    "SELECT revision, received_at, format, outcome, outcome_at, upstream_outcome, closed, changes, \
                     CASE WHEN raw IS NULL THEN 1 ELSE 0 END FROM revisions WHERE receipt_id = $1 ORDER BY revision",
                    args![id],
                )
                .await?
                .iter()
                .map(revision)
                .collect()
            })
        })
        .await
    }

    /// The delivery attempts of a receipt, oldest first.
    pub async fn attempts(&self, receipt_id: &str) -> Result<Vec<Attempt>> {
        let id = receipt_id.to_string();
        self.read(move |tx| {
            Box::pin(async move {
                tx.query(
                    "SELECT attempt, revision, started_at, finished_at, result, http_status, detail FROM delivery_attempts \
                     WHERE receipt_id = $1 ORDER BY started_at, attempt",
                    args![id],
                )
                .await?
                .iter()
                .map(|r| {
                    Ok(Attempt {
                        attempt: r.get(0)?,
                        revision: r.get(1)?,
                        started_at: r.get(2)?,
                        finished_at: r.get(3)?,
                        result: r.get(4)?,
                        http_status: r.get(5)?,
                        detail: r.get(6)?,
                    })
                })
                .collect()
            })
        })
        .await
    }
}

/// The conditions of a [`ReceiptFilter`] but its times.
fn filter_conditions(q: &mut Query, f: &ReceiptFilter) {
    q.and_eq("status", f.status.map(Status::as_str))
        .and_eq("record_type", f.record_type.as_deref())
        .and_eq("organization_id", f.organization_id.as_deref())
        .and_eq("facility_id", f.facility_id.as_deref());
    if let Some(rule) = f.rule {
        let p = q.bind(format!("%(RuleNumber: {rule})%"));
        q.push(&format!(" AND upstream_outcome LIKE {p}"));
    }
}
