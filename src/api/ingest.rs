//! `POST /ingest/{record-type}`: a facility pushes one record. The record goes through
//! steps 1–4 of its path (input check, map, validate, commit); the answer is `202` with a
//! receipt only once the record is durable. The same record sent again gets its existing
//! receipt (`200`); a different record under an id already used is a conflict (`409`).

use super::error::{ApiError, fhir_json};
use super::{AppState, auth};
use crate::fhir::{Issue, IssueCode, Outcome, Severity};
use crate::internal_events::{RecordAccepted, RecordRejected, RecordResent};
use crate::mapping::Sender;
use crate::profile::Context;
use crate::store::{Accepted, NewRecord, sha256_hex};
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
    let checked = rt.check_input(&canonical);
    if checked.has_errors() {
        reject(&record_type, "input", &checked);
        return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, checked));
    }
    let local_id = rt
        .local_id(&canonical)
        .map_err(|i| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, Outcome::one(i)))?;
    // What the facility sent, byte for byte as parsed, decides "the same record again".
    let content_hash = sha256_hex(record.to_string().as_bytes());

    // A re-send is answered before any work is repeated.
    match state
        .store
        .find_by_local_id(&facility.id, &record_type, &local_id)
        .await
    {
        Ok(Some((receipt_id, hash))) => {
            return existing(&state, &record_type, &receipt_id, hash == content_hash).await;
        }
        Ok(None) => {}
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

    // [4] commit — only then acknowledge
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
        })
        .await
        .map_err(ApiError::unavailable)?;
    match accepted {
        Accepted::New { receipt_id } => {
            state.wake.notify_one();
            let warnings: Vec<Issue> = validation
                .issues
                .into_iter()
                .filter(|i| i.severity == Severity::Warning)
                .collect();
            RecordAccepted {
                record_type: &record_type,
                receipt_id: &receipt_id,
                organization_id: &facility.organization_id,
                warnings: warnings.len(),
            }
            .emit();
            let mut body = json!({
                "receipt": receipt_id,
                "status": "queued",
                "record_type": record_type,
                "local_id": mapped.local_id,
                "links": {"self": format!("/receipts/{receipt_id}")}
            });
            if !warnings.is_empty() {
                body["warnings"] = Outcome::from(warnings).to_operation_outcome();
            }
            Ok(HttpResponse::Accepted()
                .insert_header(("Location", format!("/receipts/{receipt_id}")))
                .json(body))
        }
        // Two identical requests raced; the other one stored it.
        Accepted::Existing {
            receipt_id,
            same_content,
        } => existing(&state, &record_type, &receipt_id, same_content).await,
    }
}

#[derive(serde::Deserialize)]
pub struct IngestQuery {
    /// A local format with an adapter (e.g. `sikda-generik`); absent for the canonical record.
    format: Option<String>,
    /// The organization the facility system says it pushes for (or `X-Organization-Id`);
    /// another than its key's is refused.
    organization: Option<String>,
}

async fn existing(
    state: &web::Data<AppState>,
    record_type: &str,
    receipt_id: &str,
    same_content: bool,
) -> Result<HttpResponse, ApiError> {
    if !same_content {
        reject(record_type, "conflict", &Outcome::new());
        return Err(ApiError::one(
            StatusCode::CONFLICT,
            IssueCode::Conflict,
            format!(
                "a different record with this local id was already accepted (receipt {receipt_id}); \
                 corrections are not sent as new records — give a new record its own id"
            ),
        ));
    }
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
            .json(super::receipts::view(&r))),
        None => Ok(fhir_json(StatusCode::OK, &json!({"receipt": receipt_id}))),
    }
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
