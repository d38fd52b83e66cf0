//! Every observable event of a record's path, as a small type whose `emit` writes both the
//! log line and the metric (the Vector pattern). Keeping them here keeps logging consistent
//! and PII-free in one place: an event carries ids, counts, rule numbers and record types —
//! never a NIK, a name, an address, a phone number or a payload.

use metrics::{counter, gauge, histogram};
use tracing::{debug, info, warn};

pub struct RecordAccepted<'a> {
    pub record_type: &'a str,
    pub receipt_id: &'a str,
    pub organization_id: &'a str,
    /// 1 for a new record; more for a correction.
    pub revision: i64,
    pub warnings: usize,
}

impl RecordAccepted<'_> {
    pub fn emit(self) {
        let result = if self.revision > 1 {
            "corrected"
        } else {
            "accepted"
        };
        info!(
            record_type = self.record_type,
            receipt = self.receipt_id,
            organization = self.organization_id,
            revision = self.revision,
            warnings = self.warnings,
            "record {result}"
        );
        counter!("gerbang_ingest_total", "record_type" => self.record_type.to_string(), "result" => result).increment(1);
    }
}

/// A facility cancelled a record (`again`: it was cancelled before; nothing changed).
pub struct RecordCancelled<'a> {
    pub record_type: &'a str,
    pub receipt_id: &'a str,
    pub again: bool,
}

impl RecordCancelled<'_> {
    pub fn emit(self) {
        info!(
            record_type = self.record_type,
            receipt = self.receipt_id,
            again = self.again,
            "record cancelled"
        );
        if !self.again {
            counter!("gerbang_cancelled_total", "record_type" => self.record_type.to_string())
                .increment(1);
        }
    }
}

pub struct RecordResent<'a> {
    pub record_type: &'a str,
    pub receipt_id: &'a str,
}

impl RecordResent<'_> {
    pub fn emit(self) {
        info!(
            record_type = self.record_type,
            receipt = self.receipt_id,
            "record sent again; answered with its existing receipt"
        );
        counter!("gerbang_ingest_total", "record_type" => self.record_type.to_string(), "result" => "duplicate").increment(1);
    }
}

/// A record refused at the door (schema, mapping or validation). Only the number of issues
/// and the rule numbers are logged: issue texts may quote the record.
pub struct RecordRejected<'a> {
    pub record_type: &'a str,
    pub stage: &'static str,
    pub errors: usize,
    pub rules: &'a [u32],
}

impl RecordRejected<'_> {
    pub fn emit(self) {
        info!(record_type = self.record_type, stage = self.stage, errors = self.errors, rules = ?self.rules, "record rejected");
        counter!("gerbang_ingest_total", "record_type" => self.record_type.to_string(), "result" => format!("rejected_{}", self.stage)).increment(1);
    }
}

pub struct RecordDelivered<'a> {
    pub receipt_id: &'a str,
    pub organization_id: &'a str,
    pub attempts: i64,
    pub duplicate: bool,
    pub latency_ms: i64,
}

impl RecordDelivered<'_> {
    pub fn emit(self) {
        info!(
            receipt = self.receipt_id,
            organization = self.organization_id,
            attempts = self.attempts,
            duplicate = self.duplicate,
            "record delivered"
        );
        counter!("gerbang_delivered_total", "duplicate" => self.duplicate.to_string()).increment(1);
        histogram!("gerbang_delivery_latency_seconds").record(self.latency_ms as f64 / 1000.0);
    }
}

pub struct DeliveryRetried<'a> {
    pub receipt_id: &'a str,
    pub organization_id: &'a str,
    pub attempts: i64,
    pub http_status: Option<u16>,
    pub retry_in_ms: i64,
    pub error: &'a str,
}

impl DeliveryRetried<'_> {
    pub fn emit(self) {
        warn!(
            receipt = self.receipt_id,
            organization = self.organization_id,
            attempts = self.attempts,
            http_status = self.http_status.unwrap_or(0),
            retry_in_ms = self.retry_in_ms,
            error = self.error,
            "delivery failed; will retry"
        );
        counter!("gerbang_delivery_retries_total").increment(1);
    }
}

pub struct RecordDeadLettered<'a> {
    pub receipt_id: &'a str,
    pub organization_id: &'a str,
    pub attempts: i64,
    pub http_status: Option<u16>,
    pub rules: &'a [u32],
    pub error: &'a str,
}

impl RecordDeadLettered<'_> {
    pub fn emit(self) {
        warn!(receipt = self.receipt_id, organization = self.organization_id, attempts = self.attempts, http_status = self.http_status.unwrap_or(0), rules = ?self.rules, error = self.error, "record dead-lettered");
        counter!("gerbang_dead_letters_total").increment(1);
    }
}

pub struct LeaseLost<'a> {
    pub receipt_id: &'a str,
}

impl LeaseLost<'_> {
    pub fn emit(self) {
        warn!(
            receipt = self.receipt_id,
            "lease expired before the attempt finished; another forwarder owns the record now"
        );
        counter!("gerbang_leases_lost_total").increment(1);
    }
}

/// The store failed under the forwarder (a full disk, the database away); it waits
/// `retry_in` before it tries again.
pub struct StoreTrouble<'a> {
    /// lease | heartbeat | complete | webhooks
    pub stage: &'static str,
    pub error: &'a str,
    /// Failed rounds in a row.
    pub failures: u32,
    pub retry_in: std::time::Duration,
}

impl StoreTrouble<'_> {
    pub fn emit(self) {
        tracing::error!(
            stage = self.stage,
            error = self.error,
            failures = self.failures,
            retry_in_ms = self.retry_in.as_millis() as u64,
            "the store failed; backing off"
        );
        counter!("gerbang_store_failures_total", "stage" => self.stage).increment(1);
    }
}

pub struct QueueDepth {
    pub status: &'static str,
    pub count: u64,
}

impl QueueDepth {
    pub fn emit(self) {
        gauge!("gerbang_receipts", "status" => self.status).set(self.count as f64);
    }
}

/// SATUSEHAT kept failing for an organization: deliveries for it pause.
pub struct BreakerOpened<'a> {
    pub organization_id: &'a str,
    pub open_secs: f64,
}

impl BreakerOpened<'_> {
    pub fn emit(self) {
        warn!(
            organization = self.organization_id,
            open_secs = self.open_secs,
            "upstream keeps failing; pausing deliveries for this organization"
        );
        counter!("gerbang_breaker_opened_total").increment(1);
    }
}

/// A credential sent more requests than its rate limit allows; answered 429.
pub struct RequestThrottled<'a> {
    pub path: &'a str,
}

impl RequestThrottled<'_> {
    pub fn emit(self) {
        warn!(path = self.path, "rate limit reached; answered 429");
        counter!("gerbang_throttled_total").increment(1);
    }
}

/// Someone signed in to the web console (`operator` or `facility`; never who, never the key).
pub struct ConsoleSignedIn {
    pub kind: &'static str,
}

impl ConsoleSignedIn {
    pub fn emit(self) {
        info!(kind = self.kind, "console sign-in");
        counter!("gerbang_console_sign_ins_total", "kind" => self.kind).increment(1);
    }
}

/// A console sign-in with a key gerbang does not know (or one revoked).
pub struct ConsoleSignInRefused;

impl ConsoleSignInRefused {
    pub fn emit(self) {
        warn!("console sign-in refused: unknown or revoked key");
        counter!("gerbang_console_sign_ins_refused_total").increment(1);
    }
}

/// A console form without the session's CSRF token, or posted from another host.
pub struct ConsoleFormRefused;

impl ConsoleFormRefused {
    pub fn emit(self) {
        warn!("console form refused: missing or wrong CSRF token, or another origin");
        counter!("gerbang_console_forms_refused_total").increment(1);
    }
}

/// The store failed while serving a console page; the page asks to try again (503).
pub struct ConsoleStoreFailed<'a> {
    pub error: &'a str,
}

impl ConsoleStoreFailed<'_> {
    pub fn emit(self) {
        tracing::error!(
            error = self.error,
            "store unavailable; console page answered 503"
        );
        counter!("gerbang_store_failures_total", "stage" => "console").increment(1);
    }
}

/// A retention prune ended (see `store::retention`). Counts and durations only: never an id
/// of a patient, never content.
pub struct PayloadsPruned {
    pub pruned: u64,
    pub older_than_secs: u64,
    pub took_ms: u64,
}

impl PayloadsPruned {
    pub fn emit(self) {
        if self.pruned > 0 {
            info!(
                pruned = self.pruned,
                older_than_secs = self.older_than_secs,
                took_ms = self.took_ms,
                "payloads pruned"
            );
        } else {
            debug!(older_than_secs = self.older_than_secs, "nothing to prune");
        }
        counter!("gerbang_payloads_pruned_total").increment(self.pruned);
    }
}

/// A retention prune failed; the task tries again at its next interval.
pub struct PruneFailed<'a> {
    pub error: &'a str,
}

impl PruneFailed<'_> {
    pub fn emit(self) {
        warn!(
            error = self.error,
            "cannot prune payloads; trying again at the next interval"
        );
    }
}

/// A facility's webhook acknowledged an event.
pub struct WebhookSent<'a> {
    pub facility_id: &'a str,
    pub event_type: &'a str,
    pub took_ms: u64,
}

impl WebhookSent<'_> {
    pub fn emit(self) {
        debug!(
            facility = self.facility_id,
            event = self.event_type,
            took_ms = self.took_ms,
            "webhook event sent"
        );
        counter!("gerbang_webhook_events_total", "result" => "sent").increment(1);
    }
}

/// A facility's webhook did not acknowledge an event; it is sent again after `retry_in`.
pub struct WebhookFailed<'a> {
    pub facility_id: &'a str,
    pub http_status: Option<u16>,
    pub attempts: i64,
    pub retry_in: std::time::Duration,
    pub error: &'a str,
}

impl WebhookFailed<'_> {
    pub fn emit(self) {
        warn!(
            facility = self.facility_id,
            http_status = self.http_status.unwrap_or(0),
            attempts = self.attempts,
            retry_in_ms = self.retry_in.as_millis() as u64,
            error = self.error,
            "webhook failed; will retry"
        );
        counter!("gerbang_webhook_events_total", "result" => "retry").increment(1);
    }
}

/// An event failed at a facility's webhook for longer than the retry budget: given up (it
/// stays in `GET /events`).
pub struct WebhookGaveUp<'a> {
    pub facility_id: &'a str,
    pub event_type: &'a str,
    pub error: &'a str,
}

impl WebhookGaveUp<'_> {
    pub fn emit(self) {
        warn!(
            facility = self.facility_id,
            event = self.event_type,
            error = self.error,
            "webhook event given up after its retry budget"
        );
        counter!("gerbang_webhook_events_total", "result" => "given_up").increment(1);
    }
}

/// A Bulk Data export job wrote all its files.
pub struct ExportCompleted<'a> {
    pub job: &'a str,
    pub records: i64,
    pub resources: u64,
    pub took_ms: u64,
}

impl ExportCompleted<'_> {
    pub fn emit(self) {
        info!(
            job = self.job,
            records = self.records,
            resources = self.resources,
            took_ms = self.took_ms,
            "export completed"
        );
        counter!("gerbang_exports_total", "result" => "completed").increment(1);
    }
}

/// An export job failed for good (its files could not be written).
pub struct ExportFailed<'a> {
    pub job: &'a str,
    pub error: &'a str,
}

impl ExportFailed<'_> {
    pub fn emit(self) {
        tracing::error!(
            job = self.job,
            error = self.error,
            "export failed: cannot write its files"
        );
        counter!("gerbang_exports_total", "result" => "failed").increment(1);
    }
}

/// An export job stopped because the store failed; it starts again when its lease runs out.
pub struct ExportInterrupted<'a> {
    pub job: &'a str,
    pub error: &'a str,
}

impl ExportInterrupted<'_> {
    pub fn emit(self) {
        warn!(
            job = self.job,
            error = self.error,
            "export interrupted; it starts again when its lease runs out"
        );
    }
}

/// The export worker could not do part of its housekeeping; it tries again later.
pub struct ExportTrouble<'a> {
    pub what: &'static str,
    pub job: Option<&'a str>,
    pub error: &'a str,
}

impl ExportTrouble<'_> {
    pub fn emit(self) {
        warn!(
            job = self.job.unwrap_or(""),
            error = self.error,
            "export: {}",
            self.what
        );
    }
}

/// The files of an expired, cancelled or unknown export job were deleted.
pub struct ExportFilesDeleted<'a> {
    pub job: &'a str,
}

impl ExportFilesDeleted<'_> {
    pub fn emit(self) {
        info!(job = self.job, "export files deleted");
    }
}

/// Export jobs expired long ago were forgotten.
pub struct ExportJobsForgotten {
    pub n: u64,
}

impl ExportJobsForgotten {
    pub fn emit(self) {
        if self.n > 0 {
            debug!(forgotten = self.n, "old export jobs forgotten");
        }
    }
}
