//! `POST /ingest/{record-type}`: a facility pushes one record, or a day's batch of them
//! (`Content-Type: application/x-ndjson`, one record per line — see [`super::batch`]);
//! `DELETE /ingest/{record-type}/{local-id}` cancels one.
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

use super::body::Kind;
use super::error::ApiError;
use super::push::{self, Answer, Built, Candidate, etag, reject};
use super::{AppState, auth, batch};
use crate::fhir::{Issue, IssueCode, Outcome};
use crate::mapping::Sender;
use crate::store::{Facility, Receipt, sha256_hex};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::FutureExt;
use serde_json::Value;

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
    let kind = super::body::kind(&req, &[Kind::Json, Kind::Ndjson])?;
    let if_match = if_match(&req)?;
    if state.mappings.get(&record_type).is_none() {
        let known: Vec<&str> = state.mappings.record_types().map(|r| r.name()).collect();
        return Err(ApiError::one(
            StatusCode::NOT_FOUND,
            IssueCode::NotSupported,
            format!(
                "unknown record type `{record_type}`; this gateway accepts: {}",
                known.join(", ")
            ),
        ));
    }
    if kind == Kind::Ndjson {
        if if_match.is_some() {
            return Err(ApiError::one(
                StatusCode::BAD_REQUEST,
                IssueCode::NotSupported,
                "If-Match names the revision of one record; send a conditional correction as a single record (Content-Type: application/json), not in a batch",
            ));
        }
        let body = super::body::read_batch(payload, &state).await?;
        let lines = batch::ndjson_lines(&body, state.batch)?;
        // Lines about the same record go one after another: the local id is read from the
        // line itself when it is the canonical record; for a local format every line waits
        // for the one before it.
        let local_id = state
            .mappings
            .get(&record_type)
            .map(|rt| rt.meta.local_id.clone())
            .unwrap_or_default();
        let canonical = format.is_none();
        let key = move |(_, line): &(usize, web::Bytes)| {
            let record: Value = serde_json::from_slice(line).ok()?;
            Some(if canonical {
                match record.pointer(&local_id) {
                    Some(Value::String(s)) => s.clone(),
                    Some(other) => other.to_string(),
                    None => String::new(),
                }
            } else {
                String::new()
            })
        };
        return Ok(batch::stream_results(
            "application/x-ndjson",
            lines,
            key,
            "",
            "\n",
            "\n",
            move |(n, line)| {
                let (state, facility, record_type, format) = (
                    state.clone(),
                    facility.clone(),
                    record_type.clone(),
                    format.clone(),
                );
                async move {
                    let pushed = match parse(&record_type, &line) {
                        Ok(record) => {
                            push_record(&state, &facility, &record_type, format, record, None).await
                        }
                        Err(e) => Err(e),
                    };
                    batch::result_line(n, pushed)
                }
                .boxed_local()
            },
        ));
    }
    let body = super::body::read(payload, &state).await?;
    let record = parse(&record_type, &body)?;
    push_record(&state, &facility, &record_type, format, record, if_match)
        .await
        .map(Answer::into_response)
}

/// The body (or one line of a batch) as JSON.
fn parse(record_type: &str, bytes: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        let outcome = Outcome::one(Issue::error(
            IssueCode::Structure,
            format!("the record is not JSON: {e}"),
        ));
        reject(record_type, "parse", &outcome);
        ApiError::new(StatusCode::BAD_REQUEST, outcome)
    })
}

/// One record of a record type, through steps 1–4 of its path.
async fn push_record(
    state: &web::Data<AppState>,
    facility: &Facility,
    record_type: &str,
    format: Option<String>,
    record: Value,
    if_match: Option<i64>,
) -> Result<Answer, ApiError> {
    let rt = state.mappings.get(record_type).ok_or_else(|| {
        ApiError::one(
            StatusCode::NOT_FOUND,
            IssueCode::NotSupported,
            format!("unknown record type `{record_type}`"),
        )
    })?;
    let sender = Sender {
        organization_id: &facility.organization_id,
        location_id: &facility.location_id,
    };

    // [1] input check — of the local format and its adapter first, if the facility sent one
    let canonical = state
        .mappings
        .to_canonical(record_type, format.as_deref(), &record, &sender)
        .map_err(|outcome| {
            reject(record_type, "adapt", &outcome);
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
        reject(record_type, "input", &checked);
        return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, checked));
    }
    let local_id = rt
        .local_id(&canonical)
        .map_err(|i| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, Outcome::one(i)))?;
    // What the facility sent, byte for byte as parsed, decides "the same record again".
    let content_hash = sha256_hex(record.to_string().as_bytes());
    let candidate = Candidate {
        facility,
        record_type,
        local_id: local_id.clone(),
        content_hash,
        format,
        raw: record,
        if_match,
    };
    push::push(state, candidate, || {
        // [2] map — the input was checked above, with the clock
        let mapped = state
            .mappings
            .map_checked(rt, &canonical, local_id, &sender)
            .map_err(|outcome| {
                reject(record_type, "map", &outcome);
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, outcome)
            })?;
        Ok(Built {
            bundle: mapped.bundle,
            notes: Vec::new(),
        })
    })
    .await
}

#[derive(serde::Deserialize)]
pub struct IngestQuery {
    /// A local format with an adapter (e.g. `sikda-generik`); absent for the canonical record.
    format: Option<String>,
    /// The organization the facility system says it pushes for (or `X-Organization-Id`);
    /// another than its key's is refused.
    organization: Option<String>,
}

/// The revision an `If-Match` header names (`"3"`, `W/"3"` or `3`); None without the header.
pub fn if_match(req: &HttpRequest) -> Result<Option<i64>, ApiError> {
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
    let reason = cancel_reason(query.into_inner().reason, payload, &state).await?;
    if state.mappings.get(&record_type).is_none() {
        return Err(ApiError::one(
            StatusCode::NOT_FOUND,
            IssueCode::NotSupported,
            format!("unknown record type `{record_type}`"),
        ));
    }
    cancel_record(&state, &facility, &record_type, &local_id, &reason).await
}

/// The reason of a cancellation: a JSON body `{"reason": …}`, else `?reason=`; required.
pub async fn cancel_reason(
    in_query: Option<String>,
    payload: web::Payload,
    state: &AppState,
) -> Result<String, ApiError> {
    let body = super::body::read(payload, state).await?;
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
    from_body
        .or(in_query)
        .map(|r| r.trim().to_string())
        .filter(|r| !r.is_empty())
        .ok_or_else(|| {
            ApiError::one(
                StatusCode::BAD_REQUEST,
                IssueCode::Required,
                "a cancellation needs a reason: ?reason=… or a JSON body {\"reason\": \"…\"} (e.g. \"kunjungan salah anak\")",
            )
        })
}

/// Cancel the facility's record `local_id` of `record_type`, and answer its receipt.
pub async fn cancel_record(
    state: &web::Data<AppState>,
    facility: &Facility,
    record_type: &str,
    local_id: &str,
    reason: &str,
) -> Result<HttpResponse, ApiError> {
    let now = crate::time::now_millis();
    let cancelled = state
        .store
        .cancel(
            &facility.id,
            record_type,
            local_id,
            reason,
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
        record_type,
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
