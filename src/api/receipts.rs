//! `GET /receipts/{id}`: where a record is. Only the facility that sent it may look.

use super::error::ApiError;
use super::{AppState, auth};
use crate::fhir::IssueCode;
use crate::store::{Receipt, Status};
use crate::time::millis_to_utc;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

pub async fn get(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let facility = auth::facility(&req, &state).await?;
    let id = path.into_inner();
    let receipt = state
        .store
        .receipt(&id)
        .await
        .map_err(ApiError::unavailable)?;
    match receipt {
        // Another facility's receipt is as invisible as a missing one.
        Some(r) if r.facility_id == facility.id => Ok(HttpResponse::Ok().json(view(&r))),
        _ => Err(ApiError::one(
            StatusCode::NOT_FOUND,
            IssueCode::NotFound,
            format!("no receipt {id} for this facility"),
        )),
    }
}

/// A receipt as JSON: status plus what matters in that status.
pub fn view(r: &Receipt) -> Value {
    let mut v = json!({
        "receipt": r.id,
        "status": r.status.as_str(),
        "record_type": r.record_type,
        "local_id": r.local_id,
        "organization_id": r.organization_id,
        "attempts": r.attempts,
        "received_at": millis_to_utc(r.created_at),
        "updated_at": millis_to_utc(r.updated_at),
        "links": {"self": format!("/receipts/{}", r.id)}
    });
    match r.status {
        Status::Retrying => {
            v["next_attempt_at"] = json!(r.next_attempt_at.map(millis_to_utc));
            v["last_error"] = json!(r.last_error);
        }
        Status::Delivered => {
            v["delivered_at"] = json!(r.delivered_at.map(millis_to_utc));
            v["upstream_ids"] = r.server_ids.clone().unwrap_or(json!([]));
        }
        Status::Dead | Status::Discarded => {
            v["last_error"] = json!(r.last_error);
            v["upstream_outcome"] = r.upstream_outcome.clone().unwrap_or(Value::Null);
            let rules =
                crate::fhir::Outcome::from_operation_outcome(&v["upstream_outcome"]).rule_numbers();
            if !rules.is_empty() {
                v["upstream_rules"] = json!(rules);
            }
            if let Some(reason) = &r.discard_reason {
                v["discard_reason"] = json!(reason);
            }
        }
        Status::Queued | Status::Delivering => {}
    }
    if r.pruned {
        v["payload_pruned"] = json!(true);
    }
    v
}
