//! Admin endpoints, for operators (an operator key from `gerbang operator add`):
//!
//! | endpoint | does |
//! |---|---|
//! | `GET /admin/dead-letters?record_type=&organization_id=&facility_id=&rule=&since=&until=&limit=` | list dead letters, newest first |
//! | `GET /admin/receipts/{id}` | inspect any receipt: raw record, Bundle, upstream OperationOutcome, attempts |
//! | `POST /admin/dead-letters/{id}/replay` | re-map with the current mappings, validate, queue again |
//! | `POST /admin/dead-letters/replay` | the same for every dead letter matching a JSON filter body |
//! | `POST /admin/dead-letters/{id}/discard` | give up on one, `{"reason": "…"}` required |
//! | `GET /admin/audit?actor=&action=&receipt_id=&organization_id=&since=&until=&limit=` | who did what |
//! | `PUT /admin/facilities/{id}/webhook` | register or change a facility's webhook `{"url", "secret"?}` |
//! | `GET`, `DELETE /admin/facilities/{id}/webhook` | its delivery state; remove it |
//! | `GET /admin/webhooks` | every webhook and its delivery state |

use super::error::ApiError;
use super::{AppState, auth, receipts};
use crate::dead_letters::{DeadLetterError, DeadLetters, Inspection};
use crate::fhir::{IssueCode, Outcome};
use crate::store::{AuditFilter, Receipt, ReceiptFilter};
use crate::time::millis_to_utc;
use crate::webhooks::registry::{self, WebhookError};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};

const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;

/// Which dead letters: the query of the list, or the body of a batch replay. Times are
/// RFC 3339 (`2026-11-03T00:00:00+07:00`) and bound when the record was received.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Selection {
    record_type: Option<String>,
    organization_id: Option<String>,
    facility_id: Option<String>,
    /// A SATUSEHAT rule number in the upstream OperationOutcome.
    rule: Option<u32>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<usize>,
}

impl Selection {
    fn filter(&self) -> Result<ReceiptFilter, ApiError> {
        Ok(ReceiptFilter {
            status: None,
            record_type: self.record_type.clone(),
            organization_id: self.organization_id.clone(),
            facility_id: self.facility_id.clone(),
            rule: self.rule,
            since: self
                .since
                .as_deref()
                .map(|t| parse_time("since", t))
                .transpose()?,
            until: self
                .until
                .as_deref()
                .map(|t| parse_time("until", t))
                .transpose()?,
        })
    }
}

fn parse_time(name: &str, text: &str) -> Result<i64, ApiError> {
    crate::time::parse_instant(text).map_err(|e| {
            // In a query, an unencoded `+` of the offset arrives as a space.
            let hint = if text.contains(' ') {
                "; in a URL, write the `+` of the offset as %2B"
            } else {
                ""
            };
            ApiError::one(
                StatusCode::BAD_REQUEST,
                IssueCode::Value,
                format!(
                    "`{name}` must be an RFC 3339 time such as 2026-11-03T00:00:00+07:00, not `{text}` ({e}){hint}"
                ),
            )
        })
}

/// How many items a list answers with: [`DEFAULT_LIMIT`] unless asked, at most [`MAX_LIMIT`].
fn limit(asked: Option<usize>) -> usize {
    asked.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT)
}

/// The dead-letter service over the app's store, mappings and validator (the console uses it
/// too).
pub fn dead_letters(state: &AppState) -> DeadLetters<'_> {
    DeadLetters {
        store: state.store.as_ref(),
        mappings: &state.mappings,
        validator: &state.validator,
    }
}

pub async fn list(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<Selection>,
) -> Result<HttpResponse, ApiError> {
    auth::operator(&req, &state).await?;
    let limit = limit(query.limit);
    let found = dead_letters(&state)
        .list(&query.filter()?, limit)
        .await
        .map_err(ApiError::unavailable)?;
    let items: Vec<Value> = found.iter().map(summary).collect();
    Ok(HttpResponse::Ok()
        .json(json!({"count": items.len(), "limit": limit, "dead_letters": items})))
}

pub async fn inspect(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    auth::operator(&req, &state).await?;
    let Inspection {
        receipt,
        payload,
        attempts,
    } = dead_letters(&state).inspect(&path).await.map_err(error)?;
    let mut v = summary(&receipt);
    v["facility_id"] = json!(receipt.facility_id);
    v["format"] = json!(receipt.format);
    match payload {
        Some(p) => {
            v["record"] = p.raw;
            v["bundle"] = p.bundle;
        }
        None => v["payload_pruned"] = json!(true),
    }
    v["attempts_log"] = json!(
        attempts
            .iter()
            .map(|a| json!({
                "attempt": a.attempt,
                "started_at": millis_to_utc(a.started_at),
                "finished_at": millis_to_utc(a.finished_at),
                "result": a.result,
                "http_status": a.http_status,
                "detail": a.detail,
            }))
            .collect::<Vec<_>>()
    );
    Ok(HttpResponse::Ok().json(v))
}

pub async fn replay(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let actor = auth::operator(&req, &state).await?;
    let receipt = dead_letters(&state)
        .replay(&path, &actor)
        .await
        .map_err(error)?;
    state.wake.notify_one();
    Ok(HttpResponse::Accepted().json(summary(&receipt)))
}

pub async fn replay_matching(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<Selection>,
) -> Result<HttpResponse, ApiError> {
    let actor = auth::operator(&req, &state).await?;
    let done = dead_letters(&state)
        .replay_matching(&body.filter()?, &actor)
        .await
        .map_err(ApiError::unavailable)?;
    if !done.replayed.is_empty() {
        state.wake.notify_one();
    }
    Ok(HttpResponse::Ok().json(json!({
        "replayed": done.replayed.len(),
        "failed": done.failed.len(),
        "receipts": done.replayed,
        "failures": done.failed,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscardBody {
    reason: String,
}

pub async fn discard(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Json<DiscardBody>,
) -> Result<HttpResponse, ApiError> {
    let actor = auth::operator(&req, &state).await?;
    let receipt = dead_letters(&state)
        .discard(&path, &body.reason, &actor)
        .await
        .map_err(error)?;
    Ok(HttpResponse::Ok().json(summary(&receipt)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    actor: Option<String>,
    action: Option<String>,
    receipt_id: Option<String>,
    organization_id: Option<String>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<usize>,
}

pub async fn audit(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<AuditQuery>,
) -> Result<HttpResponse, ApiError> {
    auth::operator(&req, &state).await?;
    let q = query.into_inner();
    let filter = AuditFilter {
        actor: q.actor,
        action: q.action,
        receipt_id: q.receipt_id,
        organization_id: q.organization_id,
        since: q
            .since
            .as_deref()
            .map(|t| parse_time("since", t))
            .transpose()?,
        until: q
            .until
            .as_deref()
            .map(|t| parse_time("until", t))
            .transpose()?,
    };
    let limit = limit(q.limit);
    let events = state
        .store
        .audit_events(&filter, limit)
        .await
        .map_err(ApiError::unavailable)?;
    let items: Vec<Value> = events
        .into_iter()
        .map(|e| {
            json!({
                "at": millis_to_utc(e.at),
                "actor": e.actor,
                "action": e.action,
                "receipt": e.receipt_id,
                "organization_id": e.organization_id,
                "detail": e.detail,
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({"count": items.len(), "events": items})))
}

/// A receipt for operators: the facility's view plus where to inspect it.
fn summary(r: &Receipt) -> Value {
    let mut v = receipts::view(r);
    v["links"] = json!({
        "self": format!("/admin/receipts/{}", r.id),
        "replay": format!("/admin/dead-letters/{}/replay", r.id),
        "discard": format!("/admin/dead-letters/{}/discard", r.id),
    });
    v
}

fn error(e: DeadLetterError) -> ApiError {
    let (status, code) = match &e {
        DeadLetterError::NotFound(_) => (StatusCode::NOT_FOUND, IssueCode::NotFound),
        DeadLetterError::NotDead { .. } => (StatusCode::CONFLICT, IssueCode::Conflict),
        DeadLetterError::Pruned(_) => (StatusCode::GONE, IssueCode::NotFound),
        DeadLetterError::UnknownFacility(_) | DeadLetterError::IdentityChanged { .. } => {
            (StatusCode::CONFLICT, IssueCode::BusinessRule)
        }
        DeadLetterError::NoReason => (StatusCode::BAD_REQUEST, IssueCode::Required),
        DeadLetterError::StillInvalid(outcome) => {
            // The issues themselves, after one line that says what they mean.
            let mut out = Outcome::one(crate::fhir::Issue::error(
                IssueCode::Processing,
                e.to_string(),
            ));
            out.extend(outcome.clone());
            return ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, out);
        }
        DeadLetterError::Store(err) => return ApiError::unavailable(err),
    };
    ApiError::one(status, code, e.to_string())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookBody {
    url: String,
    /// A Standard Webhooks secret (`whsec_…`); gerbang makes one when absent.
    secret: Option<String>,
}

fn webhook_error(e: WebhookError) -> ApiError {
    let status = match &e {
        WebhookError::UnknownFacility(_) | WebhookError::NoWebhook(_) => StatusCode::NOT_FOUND,
        WebhookError::BadUrl(_) | WebhookError::BadSecret(_) => StatusCode::UNPROCESSABLE_ENTITY,
        WebhookError::Store(err) => return ApiError::unavailable(err),
    };
    ApiError::one(status, IssueCode::Value, e.to_string())
}

/// `PUT /admin/facilities/{id}/webhook` `{"url": …, "secret"?: …}`: register or change a
/// facility's webhook. A secret gerbang made is in the answer, once.
pub async fn set_webhook(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Json<WebhookBody>,
) -> Result<HttpResponse, ApiError> {
    let actor = auth::operator(&req, &state).await?;
    let done = registry::register(
        &state.store,
        &path,
        &body.url,
        body.secret.as_deref(),
        &actor,
    )
    .await
    .map_err(webhook_error)?;
    let mut v = registry::view(&done.webhook);
    if let Some(secret) = done.new_secret {
        v["secret"] = json!(secret);
    }
    Ok(HttpResponse::Ok().json(v))
}

pub async fn get_webhook(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    auth::operator(&req, &state).await?;
    let w = state
        .store
        .webhook(&path)
        .await
        .map_err(ApiError::unavailable)?
        .ok_or_else(|| webhook_error(WebhookError::NoWebhook(path.to_string())))?;
    Ok(HttpResponse::Ok().json(registry::view(&w)))
}

pub async fn remove_webhook(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let actor = auth::operator(&req, &state).await?;
    registry::remove(&state.store, &path, &actor)
        .await
        .map_err(webhook_error)?;
    Ok(HttpResponse::NoContent().finish())
}

/// `GET /admin/webhooks`: every facility's webhook and where its delivery stands.
pub async fn webhooks(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    auth::operator(&req, &state).await?;
    let all = state
        .store
        .webhooks()
        .await
        .map_err(ApiError::unavailable)?;
    let items: Vec<Value> = all.iter().map(registry::view).collect();
    Ok(HttpResponse::Ok().json(json!({"count": items.len(), "webhooks": items})))
}
