//! The facility's own view of its records. Only the facility that sent a record may see it.
//!
//! | endpoint | does |
//! |---|---|
//! | `GET /receipts/{id}` | one record: status, its revisions and what became of each, SATUSEHAT's ids, its errors |
//! | `GET /receipts?status=&record_type=&since=&_count=&cursor=` | the facility's records, newest change first; `next` carries a cursor |
//! | `GET /events?since=&_count=` | what became of its records, as events in commit order (the webhook's events, for systems that cannot receive HTTP) |
//!
//! A refused record carries SATUSEHAT's errors one by one: rule number, text, the element,
//! and — where it can be found — the field of the facility's own record that produced the
//! element ([`crate::mapping::provenance`]).

use super::error::ApiError;
use super::{AppState, auth};
use crate::fhir::{IssueCode, Outcome};
use crate::store::{Receipt, ReceiptFilter, Revision, Status};
use crate::time::millis_to_utc;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};

const DEFAULT_COUNT: usize = 50;
const MAX_COUNT: usize = 500;

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
        Some(r) if r.facility_id == facility.id => {
            let revisions = state
                .store
                .revisions(&r.id)
                .await
                .map_err(ApiError::unavailable)?;
            let mut v = view(&r);
            v["revisions"] = json!(revisions.iter().map(revision_view).collect::<Vec<_>>());
            if let Some(errors) = super::explain::errors(&state, &r).await? {
                v["errors"] = errors;
            }
            Ok(HttpResponse::Ok()
                .insert_header(("ETag", super::push::etag(r.revision)))
                .json(v))
        }
        _ => Err(ApiError::one(
            StatusCode::NOT_FOUND,
            IssueCode::NotFound,
            format!("no receipt {id} for this facility"),
        )),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    status: Option<String>,
    record_type: Option<String>,
    /// Changed at or after (RFC 3339).
    since: Option<String>,
    #[serde(rename = "_count")]
    count: Option<usize>,
    /// From the `next` link of the page before.
    cursor: Option<String>,
}

/// `GET /receipts`: the facility's records, newest change first.
pub async fn list(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let facility = auth::facility(&req, &state).await?;
    let q = query.into_inner();
    let status = q
        .status
        .as_deref()
        .map(|s| {
            Status::parse(s).map_err(|_| {
                let known: Vec<&str> = Status::ALL.iter().map(|s| s.as_str()).collect();
                bad(format!(
                    "`status` must be one of {}, not `{s}`",
                    known.join(", ")
                ))
            })
        })
        .transpose()?;
    let since = q
        .since
        .as_deref()
        .map(|t| {
            crate::time::parse_instant(t).map_err(|e| {
                bad(format!(
                    "`since` must be an RFC 3339 time such as 2026-11-03T00:00:00%2B07:00, not `{t}` ({e})"
                ))
            })
        })
        .transpose()?;
    let count = q.count.unwrap_or(DEFAULT_COUNT).clamp(1, MAX_COUNT);
    let after = q.cursor.as_deref().map(parse_cursor).transpose()?;
    let filter = ReceiptFilter {
        status,
        record_type: q.record_type.clone(),
        facility_id: Some(facility.id.clone()),
        since,
        ..Default::default()
    };
    let page = state
        .store
        .receipts_page(&filter, after, count)
        .await
        .map_err(ApiError::unavailable)?;
    let mut items = Vec::with_capacity(page.receipts.len());
    for r in &page.receipts {
        let mut v = view(r);
        if let Some(errors) = super::explain::errors(&state, r).await? {
            v["errors"] = errors;
        }
        items.push(v);
    }
    let mut body = json!({"count": items.len(), "receipts": items});
    if let Some((at, id)) = page.next {
        let mut next: Vec<(&str, String)> = Vec::new();
        if let Some(s) = &q.status {
            next.push(("status", s.clone()));
        }
        if let Some(t) = &q.record_type {
            next.push(("record_type", t.clone()));
        }
        if let Some(t) = &q.since {
            next.push(("since", t.clone()));
        }
        next.push(("_count", count.to_string()));
        next.push(("cursor", format!("{at}.{id}")));
        body["next"] = json!(format!("/receipts?{}", query_string(&next)));
    }
    Ok(HttpResponse::Ok().json(body))
}

/// `a=1&b=2`, each value percent-encoded but for the characters URLs leave alone.
pub fn query_string(pairs: &[(&str, String)]) -> String {
    let encode = |v: &str| {
        let mut out = String::with_capacity(v.len());
        for b in v.bytes() {
            if b.is_ascii_alphanumeric() || b"-._~:".contains(&b) {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        out
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// A cursor is `<updated_at ms>.<receipt id>` of the last receipt of the page before.
fn parse_cursor(text: &str) -> Result<(i64, String), ApiError> {
    text.split_once('.')
        .and_then(|(at, id)| Some((at.parse().ok()?, id.to_string())))
        .filter(|(_, id)| !id.is_empty())
        .ok_or_else(|| {
            bad(format!(
                "`cursor` `{text}` is not one gerbang gave: use the `next` link as it is"
            ))
        })
}

fn bad(text: String) -> ApiError {
    ApiError::one(StatusCode::BAD_REQUEST, IssueCode::Value, text)
}

/// A receipt as JSON: status plus what matters in that status.
pub fn view(r: &Receipt) -> Value {
    let mut v = json!({
        "receipt": r.id,
        "status": r.status.as_str(),
        "record_type": r.record_type,
        "local_id": r.local_id,
        "organization_id": r.organization_id,
        "revision": r.revision,
        "attempts": r.attempts,
        "received_at": millis_to_utc(r.created_at),
        "updated_at": millis_to_utc(r.updated_at),
        "links": {"self": format!("/receipts/{}", r.id)}
    });
    if let Some(d) = r.delivered_revision {
        // SATUSEHAT holds this revision (it may be older than the newest, on its way).
        v["delivered_revision"] = json!(d);
        v["delivered_at"] = json!(r.delivered_at.map(millis_to_utc));
        v["upstream_ids"] = r.server_ids.clone().unwrap_or(json!([]));
    }
    if let Some(s) = r.sending_revision.filter(|_| {
        matches!(
            r.status,
            Status::Queued | Status::Delivering | Status::Retrying
        )
    }) {
        v["sending_revision"] = json!(s);
    }
    match r.status {
        Status::Retrying => {
            v["next_attempt_at"] = json!(r.next_attempt_at.map(millis_to_utc));
            v["last_error"] = json!(r.last_error);
        }
        Status::Dead | Status::Discarded => {
            v["last_error"] = json!(r.last_error);
            v["upstream_outcome"] = r.upstream_outcome.clone().unwrap_or(Value::Null);
            let rules = Outcome::from_operation_outcome(&v["upstream_outcome"]).rule_numbers();
            if !rules.is_empty() {
                v["upstream_rules"] = json!(rules);
            }
            if let Some(reason) = &r.discard_reason {
                v["discard_reason"] = json!(reason);
            }
        }
        Status::Queued | Status::Delivering | Status::Delivered | Status::Cancelled => {}
    }
    if r.cancel_requested_at.is_some() {
        v["cancellation"] = json!({
            "reason": r.cancel_reason,
            "requested_at": r.cancel_requested_at.map(millis_to_utc),
            "completed_at": r.cancelled_at.map(millis_to_utc),
        });
    }
    if r.pruned {
        v["payload_pruned"] = json!(true);
    }
    v
}

/// One revision as JSON.
pub fn revision_view(r: &Revision) -> Value {
    let mut v = json!({
        "revision": r.revision,
        "received_at": millis_to_utc(r.received_at),
        "outcome": r.outcome,
    });
    if let Some(t) = r.outcome_at {
        v["outcome_at"] = json!(millis_to_utc(t));
    }
    if let Some(f) = &r.format {
        v["format"] = json!(f);
    }
    if let Some(c) = &r.changes {
        v["changes"] = c.clone();
    }
    if let Some(o) = &r.upstream_outcome {
        let rules = Outcome::from_operation_outcome(o).rule_numbers();
        v["upstream_rules"] = json!(rules);
    }
    if let Some(c) = &r.closed {
        v["closed"] = json!(c);
    }
    v
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// The `seq` of the last event already read (0 from the start).
    since: Option<i64>,
    #[serde(rename = "_count")]
    count: Option<usize>,
}

/// `GET /events?since=`: the facility's events after `since`, oldest first. `next` is the
/// query for the following page; an empty page means "caught up": poll `next` later.
pub async fn events(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<EventsQuery>,
) -> Result<HttpResponse, ApiError> {
    let facility = auth::facility(&req, &state).await?;
    let since = query.since.unwrap_or(0);
    if since < 0 {
        return Err(bad(format!(
            "`since` is the seq of the last event read (0 from the start), not {since}"
        )));
    }
    let count = query.count.unwrap_or(DEFAULT_COUNT).clamp(1, MAX_COUNT);
    let events = state
        .store
        .events_after(&facility.id, since, count)
        .await
        .map_err(ApiError::unavailable)?;
    let last = events.last().map_or(since, |e| e.seq);
    let items: Vec<Value> = events
        .iter()
        .map(crate::webhooks::payload::event_json)
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "count": items.len(),
        "events": items,
        "next": format!("/events?since={last}&_count={count}"),
    })))
}
