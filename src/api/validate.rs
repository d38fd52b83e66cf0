//! `POST /fhir/$validate` (and `/fhir/{type}/$validate`): validate any FHIR R4 JSON an
//! integrator has — a resource, a Bundle, NDJSON, or a `Parameters` with a `resource` (and
//! optionally a `profile`) as the FHIR operation defines it. The answer is always `200` with
//! an OperationOutcome; the outcome says whether the content is valid. NDJSON is validated as
//! it arrives, one line held at a time, and answered with a tally (profile::ndjson).

use super::error::{ApiError, fhir_json};
use super::{AppState, auth, body};
use crate::fhir::{self, IssueCode};
use crate::profile::Context;
use crate::profile::ndjson::{Limits, Read, Reader, TooLarge};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
pub struct ValidateQuery {
    profile: Option<String>,
}

pub async fn validate(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<ValidateQuery>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    run(req, state, query.into_inner().profile, None, payload).await
}

pub async fn validate_type(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<ValidateQuery>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    run(
        req,
        state,
        query.into_inner().profile,
        Some(path.into_inner()),
        payload,
    )
    .await
}

async fn run(
    req: HttpRequest,
    state: web::Data<AppState>,
    profile: Option<String>,
    resource_type: Option<String>,
    mut payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    use futures_util::StreamExt;
    // The sender's organization decides which identifier systems are its own.
    let facility = auth::facility(&req, &state).await?;
    let ctx = Context {
        organization_id: Some(&facility.organization_id),
        now: chrono::Utc::now(),
    };

    // Read as it arrives: NDJSON (said by its Content-Type, or seen in its first lines) is
    // validated line by line and never held whole; one document is held, within the body
    // limit, and validated as before.
    let limits = Limits {
        whole: Some(state.max_body_bytes),
        line: state.max_body_bytes,
        total: Some(state.batch.max_bytes),
        depth: Some(state.limits.max_json_depth),
        line_setting: "ingest.max_body_bytes",
    };
    let said_ndjson = body::kind(&req, &[body::Kind::Ndjson]).is_ok();
    let mut reader = if said_ndjson {
        Reader::ndjson(&state.validator, ctx, profile.as_deref(), limits)
    } else {
        Reader::new(&state.validator, ctx, profile.as_deref(), limits)
    };
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(body::payload_error)?;
        reader.push(&chunk).map_err(|e| match e {
            TooLarge::Whole(limit) => body::too_large_error(body::body_too_large(limit)),
            TooLarge::Total(limit) => body::too_large_error(format!(
                "the NDJSON is larger than {limit} bytes (ingest.max_batch_bytes); validate it in parts"
            )),
        })?;
        // Validating a piece takes a while (a few milliseconds per 64 KiB of NDJSON): let
        // the other requests of this worker go on between pieces.
        tokio::task::yield_now().await;
    }
    let body = match reader.finish() {
        Read::Ndjson(outcome) => {
            return Ok(fhir_json(StatusCode::OK, &outcome.to_operation_outcome()));
        }
        Read::Whole(body) => body,
    };
    body::check_depth(&body, state.limits.max_json_depth)?;
    let text = std::str::from_utf8(&body).map_err(|_| {
        ApiError::one(
            StatusCode::BAD_REQUEST,
            IssueCode::Structure,
            "the body is not UTF-8 text",
        )
    })?;

    // A Parameters resource carries the resource (and profile) to validate.
    let parsed: Option<Value> = serde_json::from_str(text).ok();
    let (content, profile) = match parsed
        .as_ref()
        .filter(|v| fhir::resource_type(v) == Some("Parameters"))
    {
        Some(params) => {
            let param = |name: &str| {
                params["parameter"]
                    .as_array()
                    .and_then(|ps| ps.iter().find(|p| p["name"] == name))
                    .cloned()
            };
            let resource = param("resource")
                .and_then(|p| p.get("resource").cloned())
                .ok_or_else(|| {
                    ApiError::one(
                        StatusCode::BAD_REQUEST,
                        IssueCode::Required,
                        "Parameters needs a parameter `resource` holding the resource to validate",
                    )
                })?;
            let profile = profile.or_else(|| {
                param("profile").and_then(|p| {
                    p.get("valueCanonical")
                        .or_else(|| p.get("valueUri"))
                        .and_then(Value::as_str)
                        .map(str::to_string)
                })
            });
            (resource.to_string(), profile)
        }
        None => (text.to_string(), profile),
    };
    if let (Some(expected), Some(v)) =
        (&resource_type, serde_json::from_str::<Value>(&content).ok())
    {
        let actual = fhir::resource_type(&v).unwrap_or("");
        if actual != expected {
            return Err(ApiError::one(
                StatusCode::BAD_REQUEST,
                IssueCode::Invalid,
                format!("this is /fhir/{expected}/$validate but the content is a {actual}"),
            ));
        }
    }
    let outcome = state
        .validator
        .validate_text(&content, &ctx, profile.as_deref());
    Ok(fhir_json(StatusCode::OK, &outcome.to_operation_outcome()))
}
