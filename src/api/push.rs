//! What every way of pushing shares — a record of a record type, FHIR sent directly, one
//! line of a batch: recognise a re-send before repeating any work, refuse a correction that
//! cannot be taken, build the Bundle, validate it, commit, and only then answer.
//!
//! The answer is an [`Answer`]: a single push turns it into an HTTP response (`202` with the
//! receipt, `200` for a re-send), a batch into one line of its NDJSON answer.

use super::AppState;
use super::error::ApiError;
use crate::fhir::{Issue, IssueCode, Outcome, Severity};
use crate::internal_events::{RecordAccepted, RecordRejected, RecordResent};
use crate::profile::Context;
use crate::store::{Accepted, Facility, Known, NewRecord, Status};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde_json::{Value, json};

/// A record ready to be recognised: who sent it, its identity and what was sent.
pub struct Candidate<'a> {
    pub facility: &'a Facility,
    pub record_type: &'a str,
    pub local_id: String,
    /// SHA-256 of what the facility sent: equal means "the same record again".
    pub content_hash: String,
    /// The local format it arrived in (an adapter), if any.
    pub format: Option<String>,
    pub raw: Value,
    /// `If-Match`: the revision the sender believes is the newest.
    pub if_match: Option<i64>,
}

/// The Bundle a push delivers, and what the sender should know about how it was made (a
/// date-time converted to UTC, …), returned with the receipt.
pub struct Built {
    pub bundle: Value,
    pub notes: Vec<Issue>,
}

/// What became of one push.
#[derive(Debug)]
pub struct Answer {
    /// `202` accepted now, `200` a re-send of what is already held.
    pub status: StatusCode,
    pub body: Value,
    pub receipt_id: String,
    pub revision: i64,
}

impl Answer {
    pub fn into_response(self) -> HttpResponse {
        HttpResponse::build(self.status)
            .insert_header(("Location", format!("/receipts/{}", self.receipt_id)))
            .insert_header(("ETag", etag(self.revision)))
            .json(self.body)
    }
}

/// The `ETag` of a record at `revision`.
pub fn etag(revision: i64) -> String {
    format!("\"{revision}\"")
}

/// Recognise, build (map, or prepare FHIR), validate, commit. `build` runs only for content
/// not held yet.
pub async fn push(
    state: &web::Data<AppState>,
    candidate: Candidate<'_>,
    build: impl FnOnce() -> Result<Built, ApiError>,
) -> Result<Answer, ApiError> {
    let Candidate {
        facility,
        record_type,
        local_id,
        content_hash,
        format,
        raw,
        if_match,
    } = candidate;
    // A re-send is answered before any work is repeated; so is a correction that cannot be
    // taken.
    match state
        .store
        .find_by_local_id(&facility.id, record_type, &local_id)
        .await
    {
        Ok(Some(known)) => {
            if known.content_hash == content_hash {
                return existing(state, record_type, &known.receipt_id).await;
            }
            refuse_correction(record_type, &local_id, Some(&known), if_match)?;
        }
        Ok(None) => refuse_correction(record_type, &local_id, None, if_match)?,
        Err(e) => return Err(ApiError::unavailable(e)),
    }

    let Built { bundle, notes } = build()?;

    // [3] validate
    let ctx = Context {
        organization_id: Some(&facility.organization_id),
        now: chrono::Utc::now(),
    };
    let validation = state.validator.validate(&bundle, &ctx);
    if validation.has_errors() {
        reject(record_type, "validate", &validation);
        return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, validation));
    }

    // [4] commit — only then acknowledge; not when the disk is nearly full
    state.store.check_room().map_err(ApiError::unavailable)?;
    let accepted = state
        .store
        .accept(NewRecord {
            facility_id: facility.id.clone(),
            organization_id: facility.organization_id.clone(),
            record_type: record_type.to_string(),
            local_id: local_id.clone(),
            content_hash,
            format,
            raw,
            bundle,
            received_at: crate::time::now_millis(),
            if_match,
        })
        .await
        .map_err(ApiError::unavailable)?;
    let (receipt_id, revision, status) = match accepted {
        Accepted::New { receipt_id } => (receipt_id, 1, Status::Queued),
        Accepted::Revised {
            receipt_id,
            revision,
            status,
        } => (receipt_id, revision, status),
        // Two identical requests raced; the other one stored it.
        Accepted::Existing { receipt_id, .. } => {
            return existing(state, record_type, &receipt_id).await;
        }
        Accepted::Stale {
            receipt_id,
            revision,
        } => {
            return Err(match (receipt_id, revision) {
                (Some(id), Some(at)) => stale(record_type, &local_id, &id, at, if_match),
                _ => no_such_record(record_type, &local_id, if_match),
            });
        }
        Accepted::Cancelled { receipt_id } => {
            return Err(cancelled(record_type, &local_id, &receipt_id));
        }
    };
    state.wake.notify_one();
    let warnings: Vec<Issue> = validation
        .issues
        .into_iter()
        .filter(|i| i.severity == Severity::Warning)
        .chain(notes)
        .collect();
    RecordAccepted {
        record_type,
        receipt_id: &receipt_id,
        organization_id: &facility.organization_id,
        revision,
        warnings: warnings.len(),
    }
    .emit();
    let mut body = json!({
        "receipt": receipt_id,
        "revision": revision,
        "status": status.as_str(),
        "record_type": record_type,
        "local_id": local_id,
        "links": {"self": format!("/receipts/{receipt_id}")}
    });
    if revision > 1 {
        body["correction"] = json!(true);
    }
    if !warnings.is_empty() {
        body["warnings"] = Outcome::from(warnings).to_operation_outcome();
    }
    Ok(Answer {
        status: StatusCode::ACCEPTED,
        body,
        receipt_id,
        revision,
    })
}

/// Refuse a changed record that cannot be taken as a correction: its record was cancelled,
/// or `If-Match` names another revision than the newest (or a record that does not exist).
fn refuse_correction(
    record_type: &str,
    local_id: &str,
    known: Option<&Known>,
    if_match: Option<i64>,
) -> Result<(), ApiError> {
    match (known, if_match) {
        (Some(k), _) if k.cancelled => Err(cancelled(record_type, local_id, &k.receipt_id)),
        (Some(k), Some(_)) if if_match != Some(k.revision) => Err(stale(
            record_type,
            local_id,
            &k.receipt_id,
            k.revision,
            if_match,
        )),
        (None, Some(_)) => Err(no_such_record(record_type, local_id, if_match)),
        _ => Ok(()),
    }
}

fn cancelled(record_type: &str, local_id: &str, receipt_id: &str) -> ApiError {
    reject(record_type, "cancelled", &Outcome::new());
    ApiError::one(
        StatusCode::CONFLICT,
        IssueCode::Conflict,
        format!(
            "record `{local_id}` was cancelled (receipt {receipt_id}); a cancelled record takes no correction — send the record under a new local id"
        ),
    )
}

fn stale(
    record_type: &str,
    local_id: &str,
    receipt_id: &str,
    at: i64,
    if_match: Option<i64>,
) -> ApiError {
    reject(record_type, "stale", &Outcome::new());
    let asked = if_match.map_or_else(String::new, |m| m.to_string());
    ApiError::one(
        StatusCode::PRECONDITION_FAILED,
        IssueCode::Conflict,
        format!(
            "record `{local_id}` is at revision {at}, not {asked} (If-Match): it was corrected meanwhile; \
             read it (GET /receipts/{receipt_id}), then send your correction with If-Match: \"{at}\""
        ),
    )
}

fn no_such_record(record_type: &str, local_id: &str, if_match: Option<i64>) -> ApiError {
    reject(record_type, "stale", &Outcome::new());
    let asked = if_match.map_or_else(String::new, |m| m.to_string());
    ApiError::one(
        StatusCode::PRECONDITION_FAILED,
        IssueCode::NotFound,
        format!(
            "If-Match: \"{asked}\" but this facility has no record `{local_id}` of type {record_type}; send it without If-Match to create it"
        ),
    )
}

/// The answer to a re-send: the receipt as it stands.
async fn existing(
    state: &web::Data<AppState>,
    record_type: &str,
    receipt_id: &str,
) -> Result<Answer, ApiError> {
    RecordResent {
        record_type,
        receipt_id,
    }
    .emit();
    let receipt = state
        .store
        .receipt(receipt_id)
        .await
        .map_err(ApiError::unavailable)?;
    Ok(match receipt {
        Some(r) => Answer {
            status: StatusCode::OK,
            body: super::receipts::view(&r),
            receipt_id: receipt_id.to_string(),
            revision: r.revision,
        },
        None => Answer {
            status: StatusCode::OK,
            body: json!({"receipt": receipt_id}),
            receipt_id: receipt_id.to_string(),
            revision: 1,
        },
    })
}

/// Log a refused push (no content: stage, counts and rule numbers only).
pub fn reject(record_type: &str, stage: &'static str, outcome: &Outcome) {
    RecordRejected {
        record_type,
        stage,
        errors: outcome.error_count(),
        rules: &outcome.rule_numbers(),
    }
    .emit();
}
