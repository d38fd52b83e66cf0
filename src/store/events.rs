//! What became of each record, told to its facility: every change of a record's state that
//! a facility system must know of — delivered, refused, corrected, cancelled — is an event,
//! written in the same transaction as the change (a transactional outbox), so none is lost
//! and none is told of a change that did not commit.
//!
//! Events are numbered in commit order (`seq`, like the `_since` feed's positions, under
//! `outbox::POSITIONS_LOCK`): a
//! facility reading `GET /events?since=n` never finds a new event below `n` later. The
//! facility's webhook ([`Webhook`]) is sent the events in that order, one at a time, by one
//! gateway instance at a time (a lease, as for deliveries): in order per record, at least
//! once, each with its stable id.

use super::db::{Row, Tx, args};
use super::receipts::Receipt;
use super::{Result, Store, StoreError};
use serde::Serialize;
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum EventKind {
    /// SATUSEHAT holds the record (its first delivered revision).
    #[serde(rename = "record.delivered")]
    Delivered,
    /// SATUSEHAT refused a revision (or the cancellation); the OperationOutcome says why.
    #[serde(rename = "record.refused")]
    Refused,
    /// SATUSEHAT's copy was updated to a newer revision.
    #[serde(rename = "record.corrected")]
    Corrected,
    /// The record was cancelled: what SATUSEHAT held is entered-in-error, or nothing was sent.
    #[serde(rename = "record.cancelled")]
    Cancelled,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Delivered => "record.delivered",
            EventKind::Refused => "record.refused",
            EventKind::Corrected => "record.corrected",
            EventKind::Cancelled => "record.cancelled",
        }
    }
    pub fn parse(s: &str) -> Result<EventKind> {
        Ok(match s {
            "record.delivered" => EventKind::Delivered,
            "record.refused" => EventKind::Refused,
            "record.corrected" => EventKind::Corrected,
            "record.cancelled" => EventKind::Cancelled,
            other => return Err(StoreError::Corrupt(format!("unknown event type `{other}`"))),
        })
    }
}

/// One event, as stored; its JSON form is built from these fields alone, so every retry
/// sends the same bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Position in commit order; the `GET /events` cursor.
    pub seq: i64,
    /// `msg_…`: the `webhook-id`, the same on every retry.
    pub id: String,
    pub facility_id: String,
    pub receipt_id: String,
    pub record_type: String,
    pub local_id: String,
    pub kind: EventKind,
    /// The revision it concerns (None: the cancellation).
    pub revision: Option<i64>,
    pub at: i64,
    /// What else the event says (upstream ids, the OperationOutcome, the reason).
    pub data: Value,
}

/// A facility's webhook and where its delivery stands.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Webhook {
    pub facility_id: String,
    pub url: String,
    /// `whsec_…`: kept in clear, as signing needs it.
    #[serde(skip_serializing)]
    pub secret: String,
    pub created_at: i64,
    pub updated_at: i64,
    /// Every event of the facility up to this position was acknowledged (or given up).
    pub sent_seq: i64,
    /// Failed attempts at the next event.
    pub attempts: i64,
    pub failing_since: Option<i64>,
    /// When the next attempt is due (database clock, ms).
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
    pub last_status: Option<i64>,
    pub last_success_at: Option<i64>,
    /// Events given up after the retry budget (still in the feed).
    pub given_up: i64,
    /// Events not yet acknowledged.
    pub backlog: i64,
}

/// How an attempt at the event `seq` failed: try again after `delay_ms`, or — `give_up` —
/// move past it (counted as given up; it stays in the feed).
#[derive(Debug, Clone)]
pub struct WebhookFailure {
    pub seq: i64,
    pub error: String,
    pub http_status: Option<u16>,
    pub delay_ms: i64,
    pub give_up: bool,
}

/// A webhook leased for sending its next events.
#[derive(Debug, Clone)]
pub struct WebhookLease {
    pub webhook: Webhook,
    pub token: String,
}

/// Record an event of `r` (its facility, record type and local id) in the transaction. The
/// caller holds [`POSITIONS_LOCK`], so that numbers become visible in order.
pub(crate) async fn record(
    tx: &mut dyn Tx,
    r: &Receipt,
    kind: EventKind,
    revision: Option<i64>,
    data: Value,
    at: i64,
) -> Result<()> {
    tx.execute(
        "INSERT INTO events (seq, id, facility_id, receipt_id, record_type, local_id, type, revision, at, data) \
         VALUES ((SELECT COALESCE(MAX(seq), 0) + 1 FROM events), $1, $2, $3, $4, $5, $6, $7, $8, $9)",
        args![
            format!("msg_{}", uuid::Uuid::new_v4().simple()),
            &r.facility_id,
            &r.id,
            &r.record_type,
            &r.local_id,
            kind.as_str(),
            revision,
            at,
            &data
        ],
    )
    .await?;
    Ok(())
}

const EVENT_COLUMNS: &str =
    "seq, id, facility_id, receipt_id, record_type, local_id, type, revision, at, data";

fn event(row: &Row) -> Result<Event> {
    Ok(Event {
        seq: row.get(0)?,
        id: row.get(1)?,
        facility_id: row.get(2)?,
        receipt_id: row.get(3)?,
        record_type: row.get(4)?,
        local_id: row.get(5)?,
        kind: EventKind::parse(&row.get::<String>(6)?)?,
        revision: row.get(7)?,
        at: row.get(8)?,
        data: row.json(9)?,
    })
}

const WEBHOOK_COLUMNS: &str = "w.facility_id, w.url, w.secret, w.created_at, w.updated_at, w.sent_seq, w.attempts, \
     w.failing_since, w.next_attempt_at, w.last_error, w.last_status, w.last_success_at, w.given_up, \
     (SELECT COUNT(*) FROM events e WHERE e.facility_id = w.facility_id AND e.seq > w.sent_seq)";

fn webhook(row: &Row) -> Result<Webhook> {
    Ok(Webhook {
        facility_id: row.get(0)?,
        url: row.get(1)?,
        secret: row.get(2)?,
        created_at: row.get(3)?,
        updated_at: row.get(4)?,
        sent_seq: row.get(5)?,
        attempts: row.get(6)?,
        failing_since: row.get(7)?,
        next_attempt_at: row.get(8)?,
        last_error: row.get(9)?,
        last_status: row.get(10)?,
        last_success_at: row.get(11)?,
        given_up: row.get(12)?,
        backlog: row.get(13)?,
    })
}

impl Store {
    /// The facility's events after position `after`, oldest first, at most `limit`.
    pub async fn events_after(
        &self,
        facility_id: &str,
        after: i64,
        limit: usize,
    ) -> Result<Vec<Event>> {
        let f = facility_id.to_string();
        self.read(move |tx| {
            Box::pin(async move {
                tx.query(
                    &format!("SELECT {EVENT_COLUMNS} FROM events WHERE facility_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"),
                    args![f, after, limit as i64],
                )
                .await?
                .iter()
                .map(event)
                .collect()
            })
        })
        .await
    }

    /// Every event of one receipt, oldest first.
    pub async fn receipt_events(&self, receipt_id: &str) -> Result<Vec<Event>> {
        let id = receipt_id.to_string();
        self.read(move |tx| {
            Box::pin(async move {
                tx.query(
                    &format!(
                        "SELECT {EVENT_COLUMNS} FROM events WHERE receipt_id = $1 ORDER BY seq"
                    ),
                    args![id],
                )
                .await?
                .iter()
                .map(event)
                .collect()
            })
        })
        .await
    }

    /// Register (or change the URL and secret of) a facility's webhook. A new webhook starts
    /// after the facility's last event: the history is in the feed.
    pub async fn set_webhook(
        &self,
        facility_id: &str,
        url: &str,
        secret: &str,
        now: i64,
    ) -> Result<()> {
        let (f, url, secret) = (facility_id.to_string(), url.to_string(), secret.to_string());
        self.write(move |tx| {
            Box::pin(async move {
                tx.execute(
                    "INSERT INTO webhooks (facility_id, url, secret, created_at, updated_at, sent_seq, next_attempt_at) \
                     VALUES ($1, $2, $3, $4, $4, (SELECT COALESCE(MAX(seq), 0) FROM events WHERE facility_id = $1), {now}) \
                     ON CONFLICT (facility_id) DO UPDATE SET url = excluded.url, secret = excluded.secret, \
                     updated_at = excluded.updated_at, attempts = 0, failing_since = NULL, next_attempt_at = excluded.next_attempt_at",
                    args![f, url, secret, now],
                )
                .await?;
                Ok(())
            })
        })
        .await
    }

    /// Remove a facility's webhook; `false` if it had none.
    pub async fn remove_webhook(&self, facility_id: &str) -> Result<bool> {
        let f = facility_id.to_string();
        self.write(move |tx| {
            Box::pin(async move {
                Ok(tx
                    .execute("DELETE FROM webhooks WHERE facility_id = $1", args![f])
                    .await?
                    > 0)
            })
        })
        .await
    }

    pub async fn webhook(&self, facility_id: &str) -> Result<Option<Webhook>> {
        let f = facility_id.to_string();
        self.read(move |tx| {
            Box::pin(async move {
                tx.query_opt(
                    &format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks w WHERE w.facility_id = $1"),
                    args![f],
                )
                .await?
                .as_ref()
                .map(webhook)
                .transpose()
            })
        })
        .await
    }

    pub async fn webhooks(&self) -> Result<Vec<Webhook>> {
        self.read(|tx| {
            Box::pin(async move {
                tx.query(
                    &format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks w ORDER BY w.facility_id"),
                    args![],
                )
                .await?
                .iter()
                .map(webhook)
                .collect()
            })
        })
        .await
    }

    /// Whether any webhook has events to send and is due: a read, so that an idle gateway
    /// polling for webhook work does not write.
    pub async fn webhooks_due(&self) -> Result<bool> {
        self.read(|tx| {
            Box::pin(async move {
                Ok(tx
                    .query_opt(
                        "SELECT 1 FROM webhooks w WHERE w.next_attempt_at <= {now} \
                         AND (w.lease_until IS NULL OR w.lease_until < {now}) \
                         AND EXISTS (SELECT 1 FROM events e WHERE e.facility_id = w.facility_id AND e.seq > w.sent_seq) \
                         LIMIT 1",
                        args![],
                    )
                    .await?
                    .is_some())
            })
        })
        .await
    }

    /// Lease up to `limit` webhooks that have events to send and are due, for `lease_ms`
    /// (database clock).
    pub async fn lease_webhooks(
        &self,
        owner: &str,
        lease_ms: i64,
        limit: usize,
    ) -> Result<Vec<WebhookLease>> {
        let owner = owner.to_string();
        self.write(move |tx| {
            Box::pin(async move {
                let token = format!("{owner}/{}", uuid::Uuid::new_v4().simple());
                let ids = tx
                    .query(
                        "UPDATE webhooks SET lease_token = $1, lease_until = {now} + $2 \
                         WHERE facility_id IN (SELECT w.facility_id FROM webhooks w \
                             WHERE w.next_attempt_at <= {now} AND (w.lease_until IS NULL OR w.lease_until < {now}) \
                               AND EXISTS (SELECT 1 FROM events e WHERE e.facility_id = w.facility_id AND e.seq > w.sent_seq) \
                             ORDER BY w.next_attempt_at LIMIT $3 {skip_locked}) \
                         RETURNING facility_id",
                        args![&token, lease_ms, limit as i64],
                    )
                    .await?;
                let mut out = Vec::with_capacity(ids.len());
                for row in ids {
                    let f: String = row.get(0)?;
                    let w = tx
                        .query_one(
                            &format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks w WHERE w.facility_id = $1"),
                            args![f],
                        )
                        .await?;
                    out.push(WebhookLease {
                        webhook: webhook(&w)?,
                        token: token.clone(),
                    });
                }
                Ok(out)
            })
        })
        .await
    }

    /// The receiver acknowledged the event at `seq`: move the cursor past it and extend the
    /// lease. `false` if the lease is lost (another instance sends now).
    pub async fn webhook_sent(
        &self,
        facility_id: &str,
        token: &str,
        seq: i64,
        lease_ms: i64,
        now: i64,
    ) -> Result<bool> {
        let (f, t) = (facility_id.to_string(), token.to_string());
        self.write(move |tx| {
            Box::pin(async move {
                Ok(tx
                    .execute(
                        "UPDATE webhooks SET sent_seq = $3, attempts = 0, failing_since = NULL, last_error = NULL, \
                         last_status = NULL, last_success_at = $5, lease_until = {now} + $4 \
                         WHERE facility_id = $1 AND lease_token = $2 AND sent_seq < $3",
                        args![f, t, seq, lease_ms, now],
                    )
                    .await?
                    > 0)
            })
        })
        .await
    }

    /// An attempt at an event failed ([`WebhookFailure`]); releases the lease.
    pub async fn webhook_failed(
        &self,
        facility_id: &str,
        token: &str,
        f: WebhookFailure,
        now: i64,
    ) -> Result<bool> {
        let (id, t) = (facility_id.to_string(), token.to_string());
        self.write(move |tx| {
            Box::pin(async move {
                let status = f.http_status.map(i64::from);
                let n = if f.give_up {
                    tx.execute(
                        "UPDATE webhooks SET sent_seq = $3, attempts = 0, failing_since = NULL, given_up = given_up + 1, \
                         last_error = $4, last_status = $5, next_attempt_at = {now}, lease_token = NULL, lease_until = NULL \
                         WHERE facility_id = $1 AND lease_token = $2 AND sent_seq < $3",
                        args![id, t, f.seq, &f.error, status],
                    )
                    .await?
                } else {
                    tx.execute(
                        "UPDATE webhooks SET attempts = attempts + 1, failing_since = COALESCE(failing_since, $5), \
                         last_error = $3, last_status = $4, next_attempt_at = {now} + $6, lease_token = NULL, lease_until = NULL \
                         WHERE facility_id = $1 AND lease_token = $2",
                        args![id, t, &f.error, status, now, f.delay_ms],
                    )
                    .await?
                };
                Ok(n > 0)
            })
        })
        .await
    }

    /// Give the lease back without a result (nothing left to send, or shutting down).
    pub async fn release_webhook(&self, facility_id: &str, token: &str) -> Result<()> {
        let (f, t) = (facility_id.to_string(), token.to_string());
        self.write(move |tx| {
            Box::pin(async move {
                tx.execute(
                    "UPDATE webhooks SET lease_token = NULL, lease_until = NULL WHERE facility_id = $1 AND lease_token = $2",
                    args![f, t],
                )
                .await?;
                Ok(())
            })
        })
        .await
    }
}
