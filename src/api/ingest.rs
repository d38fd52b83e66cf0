//! `POST /ingest/{record-type}`: a facility pushes one record; `DELETE
//! /ingest/{record-type}/{local-id}` cancels one.
//!
//! A push goes through steps 1–4 of its path (input check, map, validate, commit); the answer
//! is `202` with a receipt only once the record is durable. The same record sent again gets
//! its existing receipt (`200`). A changed record under a local id already used is a
//! correction: a new *revision* of the same receipt (`202`, `"revision": n`), delivered
//! after the ones before it. `If-Match: "n"` makes the push conditional on the record being
//! at revision n (`412` otherwise): a facility system that must not overwrite a revision it
//! has not seen. Every answer about a record carries its revision as the `ETag`.
//!
//! A cancellation needs a reason (`?reason=` or a JSON body `{"reason": …}`); a cancelled
//! record takes no correction (`409`).

use super::error::{ApiError, fhir_json};
use super::{AppState, auth};
use crate::fhir::{Issue, IssueCode, Outcome, Severity};
use crate::internal_events::{RecordAccepted, RecordRejected, RecordResent};
use crate::mapping::Sender;
use crate::profile::Context;
use crate::store::{Accepted, Known, NewRecord, Receipt, Status, sha256_hex};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

pub async fn ingest(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<IngestQuery>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let record_type = path.into_inner();
    let IngestQuery {
        format,
        organization,
    } = query.into_inner();
    let facility = auth::facility(&req, &state).await?;
    auth::named_organization(&req, organization.as_deref(), &facility)?;
    let if_match = if_match(&req)?;
    let body = super::body::read(payload, &state).await?;

    let Some(rt) = state.mappings.get(&record_type) else {
        let known: Vec<&str> = state.mappings.record_types().map(|r| r.name()).collect();
        return Err(ApiError::one(
            StatusCode::NOT_FOUND,
            IssueCode::NotSupported,
            format!(
                "unknown record type `{record_type}`; this gateway accepts: {}",
                known.join(", ")
            ),
        ));
    };
    let record: Value = serde_json::from_slice(&body).map_err(|e| {
        let outcome = Outcome::one(Issue::error(
            IssueCode::Structure,
            format!("the body is not JSON: {e}"),
        ));
        reject(&record_type, "parse", &outcome);
        ApiError::new(StatusCode::BAD_REQUEST, outcome)
    })?;

    let sender = Sender {
        organization_id: &facility.organization_id,
        location_id: &facility.location_id,
    };

    // [1] input check — of the local format and its adapter first, if the facility sent one
    let canonical = state
        .mappings
        .to_canonical(&record_type, format.as_deref(), &record, &sender)
        .map_err(|outcome| {
            reject(&record_type, "adapt", &outcome);
            let status = if outcome
                .issues
                .iter()
                .any(|i| i.code == IssueCode::NotSupported)
            {
                StatusCode::NOT_FOUND
            } else {
                StatusCode::UNPROCESSABLE_ENTITY
            };
            ApiError::new(status, outcome)
        })?;
    let checked = rt.check_input(&canonical, Some(chrono::Utc::now()));
    if checked.has_errors() {
        reject(&record_type, "input", &checked);
        return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, checked));
    }
    let local_id = rt
        .local_id(&canonical)
        .map_err(|i| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, Outcome::one(i)))?;
    // What the facility sent, byte for byte as parsed, decides "the same record again".
    let content_hash = sha256_hex(record.to_string().as_bytes());

    // A re-send is answered before any work is repeated; so is a correction that cannot be
    // taken.
    match state
        .store
        .find_by_local_id(&facility.id, &record_type, &local_id)
        .await
    {
        Ok(Some(known)) => {
            if known.content_hash == content_hash {
                return existing(&state, &record_type, &known.receipt_id).await;
            }
            refuse_correction(&record_type, &local_id, Some(&known), if_match)?;
        }
        Ok(None) => refuse_correction(&record_type, &local_id, None, if_match)?,
        Err(e) => return Err(ApiError::unavailable(e)),
    }

    // [2] map
    let mapped = state
        .mappings
        .map_record(&record_type, &canonical, &sender)
        .map_err(|outcome| {
            reject(&record_type, "map", &outcome);
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, outcome)
        })?;

    // [3] validate
    let ctx = Context {
        organization_id: Some(&facility.organization_id),
        now: chrono::Utc::now(),
    };
    let validation = state.validator.validate(&mapped.bundle, &ctx);
    if validation.has_errors() {
        reject(&record_type, "validate", &validation);
        return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, validation));
    }

    // [4] commit — only then acknowledge; not when the disk is nearly full
    state.store.check_room().map_err(ApiError::unavailable)?;
    let accepted = state
        .store
        .accept(NewRecord {
            facility_id: facility.id.clone(),
            organization_id: facility.organization_id.clone(),
            record_type: record_type.clone(),
            local_id: mapped.local_id.clone(),
            content_hash,
            format: format.clone(),
            raw: record,
            bundle: mapped.bundle,
            received_at: crate::time::now_millis(),
            if_match,
        })
        .await
        .map_err(ApiError::unavailable)?;
    let warnings: Vec<Issue> = validation
        .issues
        .into_iter()
        .filter(|i| i.severity == Severity::Warning)
        .collect();
    let (receipt_id, revision, status) = match accepted {
        Accepted::New { receipt_id } => (receipt_id, 1, Status::Queued),
        Accepted::Revised {
            receipt_id,
            revision,
            status,
        } => (receipt_id, revision, status),
        // Two identical requests raced; the other one stored it.
        Accepted::Existing { receipt_id, .. } => {
            return existing(&state, &record_type, &receipt_id).await;
        }
        Accepted::Stale {
            receipt_id,
            revision,
        } => {
            return Err(match (receipt_id, revision) {
                (Some(id), Some(at)) => stale(&record_type, &mapped.local_id, &id, at, if_match),
                _ => no_such_record(&record_type, &mapped.local_id, if_match),
            });
        }
        Accepted::Cancelled { receipt_id } => {
            return Err(cancelled(&record_type, &mapped.local_id, &receipt_id));
        }
    };
    state.wake.notify_one();
    RecordAccepted {
        record_type: &record_type,
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
        "local_id": mapped.local_id,
        "links": {"self": format!("/receipts/{receipt_id}")}
    });
    if revision > 1 {
        body["correction"] = json!(true);
    }
    if !warnings.is_empty() {
        body["warnings"] = Outcome::from(warnings).to_operation_outcome();
    }
    Ok(HttpResponse::Accepted()
        .insert_header(("Location", format!("/receipts/{receipt_id}")))
        .insert_header(("ETag", etag(revision)))
        .json(body))
}

#[derive(serde::Deserialize)]
pub struct IngestQuery {
    /// A local format with an adapter (e.g. `sikda-generik`); absent for the canonical record.
    format: Option<String>,
    /// The organization the facility system says it pushes for (or `X-Organization-Id`);
    /// another than its key's is refused.
    organization: Option<String>,
}

/// The `ETag` of a record at `revision`.
pub fn etag(revision: i64) -> String {
    format!("\"{revision}\"")
}

/// The revision an `If-Match` header names (`"3"`, `W/"3"` or `3`); None without the header.
fn if_match(req: &HttpRequest) -> Result<Option<i64>, ApiError> {
    let Some(value) = req.headers().get("If-Match") else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or("").trim();
    let bare = text.trim_start_matches("W/").trim_matches('"');
    bare.parse::<i64>().map(Some).map_err(|_| {
        ApiError::one(
            StatusCode::BAD_REQUEST,
            IssueCode::Value,
            format!(
                "If-Match must name a revision of the record, as its ETag does: If-Match: \"2\" (got `{text}`)"
            ),
        )
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

async fn existing(
    state: &web::Data<AppState>,
    record_type: &str,
    receipt_id: &str,
) -> Result<HttpResponse, ApiError> {
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
    match receipt {
        Some(r) => Ok(HttpResponse::Ok()
            .insert_header(("Location", format!("/receipts/{receipt_id}")))
            .insert_header(("ETag", etag(r.revision)))
            .json(super::receipts::view(&r))),
        None => Ok(fhir_json(StatusCode::OK, &json!({"receipt": receipt_id}))),
    }
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CancelQuery {
    reason: Option<String>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CancelBody {
    reason: String,
}

/// `DELETE /ingest/{record-type}/{local-id}`: cancel a record. Answers the receipt: `200`
/// when the cancellation is complete (nothing had reached SATUSEHAT, or it was cancelled
/// before), `202` while what SATUSEHAT holds is still being marked entered-in-error.
pub async fn cancel(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    query: web::Query<CancelQuery>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (record_type, local_id) = path.into_inner();
    let facility = auth::facility(&req, &state).await?;
    let body = super::body::read(payload, &state).await?;
    let from_body = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        let parsed: CancelBody = serde_json::from_slice(&body).map_err(|e| {
            ApiError::one(
                StatusCode::BAD_REQUEST,
                IssueCode::Structure,
                format!("the body must be {{\"reason\": \"…\"}}: {e}"),
            )
        })?;
        Some(parsed.reason)
    };
    let reason = from_body
        .or_else(|| query.into_inner().reason)
        .map(|r| r.trim().to_string())
        .filter(|r| !r.is_empty())
        .ok_or_else(|| {
            ApiError::one(
                StatusCode::BAD_REQUEST,
                IssueCode::Required,
                "a cancellation needs a reason: ?reason=… or a JSON body {\"reason\": \"…\"} (e.g. \"kunjungan salah anak\")",
            )
        })?;
    if state.mappings.get(&record_type).is_none() {
        return Err(ApiError::one(
            StatusCode::NOT_FOUND,
            IssueCode::NotSupported,
            format!("unknown record type `{record_type}`"),
        ));
    }
    let now = crate::time::now_millis();
    let cancelled = state
        .store
        .cancel(
            &facility.id,
            &record_type,
            &local_id,
            &reason,
            &format!("facility:{}", facility.id),
            now,
        )
        .await
        .map_err(ApiError::unavailable)?
        .ok_or_else(|| {
            ApiError::one(
                StatusCode::NOT_FOUND,
                IssueCode::NotFound,
                format!("this facility has no record `{local_id}` of type {record_type}"),
            )
        })?;
    state.wake.notify_one();
    let receipt: Receipt = state
        .store
        .receipt(&cancelled.receipt_id)
        .await
        .map_err(ApiError::unavailable)?
        .ok_or_else(|| ApiError::unavailable("the cancelled receipt vanished"))?;
    crate::internal_events::RecordCancelled {
        record_type: &record_type,
        receipt_id: &receipt.id,
        again: cancelled.already,
    }
    .emit();
    let mut answer = if receipt.status == crate::store::Status::Cancelled {
        HttpResponse::Ok()
    } else {
        HttpResponse::Accepted()
    };
    Ok(answer
        .insert_header(("Location", format!("/receipts/{}", receipt.id)))
        .insert_header(("ETag", etag(receipt.revision)))
        .json(super::receipts::view(&receipt)))
}

fn reject(record_type: &str, stage: &'static str, outcome: &Outcome) {
    RecordRejected {
        record_type,
        stage,
        errors: outcome.error_count(),
        rules: &outcome.rule_numbers(),
    }
    .emit();
}
