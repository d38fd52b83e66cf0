//! `POST /fhir/$validate` (and `/fhir/{type}/$validate`): validate any FHIR R4 JSON an
//! integrator has — a resource, a Bundle, NDJSON, or a `Parameters` with a `resource` (and
//! optionally a `profile`) as the FHIR operation defines it. The answer is always `200` with
//! an OperationOutcome; the outcome says whether the content is valid.

use super::error::{ApiError, fhir_json};
use super::{AppState, auth};
use crate::fhir::{self, IssueCode};
use crate::profile::Context;
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
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    // The sender's organization decides which identifier systems are its own.
    let facility = auth::facility(&req, &state).await?;
    let body = super::body::read(payload, &state).await?;
    let text = std::str::from_utf8(&body).map_err(|_| {
        ApiError::one(
            StatusCode::BAD_REQUEST,
            IssueCode::Structure,
            "the body is not UTF-8 text",
        )
    })?;
    let ctx = Context {
        organization_id: Some(&facility.organization_id),
        now: chrono::Utc::now(),
    };

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
