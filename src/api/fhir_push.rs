//! FHIR pushed directly by facility systems that build SATUSEHAT FHIR themselves:
//!
//! | endpoint | for |
//! |---|---|
//! | `POST /fhir` | a `transaction` Bundle — or a `batch` Bundle whose entries are transaction Bundles |
//! | `POST /fhir/{Type}` | one resource |
//! | `DELETE /fhir/{Type}?identifier=<system>\|<value>&reason=…` | cancel the record that resource began |
//!
//! Prepared by [`crate::fhir_in`] (identity, organization, people by NIK, UTC), then the same
//! path as a mapped record ([`super::push`]): validated, committed, `202` with a receipt,
//! delivered, corrected by sending again, cancelled, pulled. The receipt's record type is
//! `fhir`, its local id `<Type>/<identifier value>` of the first resource.

use super::body::Kind;
use super::error::ApiError;
use super::push::{self, Answer, Built, Candidate, reject};
use super::{AppState, auth, batch};
use crate::fhir::{Issue, IssueCode, Outcome};
use crate::fhir_in::{self, RECORD_TYPE, Refused};
use crate::store::{Facility, sha256_hex};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::FutureExt;
use serde_json::{Value, json};

/// `POST /fhir`: a transaction Bundle, or a batch of them.
pub async fn bundle(
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let facility = auth::facility(&req, &state).await?;
    auth::named_organization(&req, None, &facility)?;
    super::body::kind(&req, &[Kind::Json])?;
    let if_match = super::ingest::if_match(&req)?;
    let body = super::body::read_batch(payload, &state).await?;
    let sent = parse(&body)?;
    if sent.get("type").and_then(Value::as_str) == Some("batch") {
        if if_match.is_some() {
            return Err(ApiError::one(
                StatusCode::BAD_REQUEST,
                IssueCode::NotSupported,
                "If-Match names the revision of one record; send a conditional correction as one transaction Bundle, not in a batch",
            ));
        }
        return batch_of_transactions(state, facility, sent);
    }
    if body.len() > state.max_body_bytes {
        return Err(ApiError::one(
            StatusCode::PAYLOAD_TOO_LARGE,
            IssueCode::TooLong,
            format!(
                "a transaction Bundle is larger than {} bytes (ingest.max_body_bytes); send a day's Bundles as a `batch` Bundle of transaction Bundles",
                state.max_body_bytes
            ),
        ));
    }
    push_fhir(&state, &facility, sent, None, if_match)
        .await
        .map(Answer::into_response)
}

/// `POST /fhir/{Type}`: one resource.
pub async fn resource(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let resource_type = path.into_inner();
    let facility = auth::facility(&req, &state).await?;
    auth::named_organization(&req, None, &facility)?;
    super::body::kind(&req, &[Kind::Json])?;
    let if_match = super::ingest::if_match(&req)?;
    let body = super::body::read(payload, &state).await?;
    let sent = parse(&body)?;
    push_fhir(&state, &facility, sent, Some(&resource_type), if_match)
        .await
        .map(Answer::into_response)
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CancelQuery {
    identifier: Option<String>,
    reason: Option<String>,
}

/// `DELETE /fhir/{Type}?identifier=<system>|<value>`: cancel the record whose first resource
/// carries that identifier.
pub async fn cancel(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<CancelQuery>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let resource_type = path.into_inner();
    let facility = auth::facility(&req, &state).await?;
    let CancelQuery { identifier, reason } = query.into_inner();
    let reason = super::ingest::cancel_reason(reason, payload, &state).await?;
    let local_id = fhir_in::local_id_of(
        &resource_type,
        identifier.as_deref().unwrap_or(""),
        &facility.organization_id,
    )
    .map_err(refusal)?;
    super::ingest::cancel_record(&state, &facility, RECORD_TYPE, &local_id, &reason).await
}

fn parse(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        let outcome = Outcome::one(Issue::error(
            IssueCode::Structure,
            format!("the body is not JSON: {e}"),
        ));
        reject(RECORD_TYPE, "parse", &outcome);
        ApiError::new(StatusCode::BAD_REQUEST, outcome)
    })
}

fn refusal(r: Refused) -> ApiError {
    let (status, outcome) = match r {
        Refused::Forbidden(o) => (StatusCode::FORBIDDEN, o),
        Refused::Invalid(o) => (StatusCode::UNPROCESSABLE_ENTITY, o),
    };
    reject(RECORD_TYPE, "prepare", &outcome);
    ApiError::new(status, outcome)
}

/// The content guards every pushed document passes (control characters, text length,
/// numbers a server can store) — except the length of what FHIR holds as a document rather
/// than as a field: base64 `data` of an attachment and the narrative's `div`.
fn guard(sent: &Value, root: &str) -> Result<(), ApiError> {
    let issues: Vec<Issue> = crate::mapping::guard::check_values_at(sent, root)
        .into_iter()
        .filter(|i| {
            !(i.code == IssueCode::TooLong
                && i.expression
                    .as_deref()
                    .is_some_and(|e| e.ends_with(".data") || e.ends_with(".div")))
        })
        .collect();
    if issues.is_empty() {
        return Ok(());
    }
    let outcome = Outcome::from(issues);
    reject(RECORD_TYPE, "input", &outcome);
    Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, outcome))
}

/// One Bundle (or one resource, when `resource_type` is given) through the path.
async fn push_fhir(
    state: &web::Data<AppState>,
    facility: &Facility,
    sent: Value,
    resource_type: Option<&str>,
    if_match: Option<i64>,
) -> Result<Answer, ApiError> {
    guard(&sent, resource_type.unwrap_or("Bundle"))?;
    let org = &facility.organization_id;
    let prepared = match resource_type {
        Some(t) => fhir_in::prepare_resource(&sent, t, org),
        None => fhir_in::prepare_bundle(&sent, org),
    }
    .map_err(refusal)?;
    let content_hash = sha256_hex(sent.to_string().as_bytes());
    let candidate = Candidate {
        facility,
        record_type: RECORD_TYPE,
        local_id: prepared.local_id,
        content_hash,
        format: None,
        raw: sent,
        if_match,
    };
    let (bundle, notes) = (prepared.bundle, prepared.notes);
    push::push(state, candidate, || Ok(Built { bundle, notes }))
        .await
        .map_err(|mut e| {
            // Name places in the resource sent, not in the Bundle made around it.
            if let Some(t) = resource_type {
                e.outcome = fhir_in::as_sent(e.outcome, t);
            }
            e
        })
}

/// A `batch` Bundle whose entries are transaction Bundles: each pushed on its own, in order;
/// the answer is a `batch-response` Bundle streamed entry by entry, each written after its
/// commit.
fn batch_of_transactions(
    state: web::Data<AppState>,
    facility: Facility,
    sent: Value,
) -> Result<HttpResponse, ApiError> {
    let Some(Value::Array(entries)) = sent.get("entry").cloned() else {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            Outcome::one(
                Issue::error(IssueCode::Required, "the batch has no entries: put each visit's transaction Bundle in an entry's resource")
                    .at("Bundle.entry"),
            ),
        ));
    };
    batch::too_many(entries.len(), state.batch)?;
    let items: Vec<(usize, Value)> = entries.into_iter().enumerate().collect();
    Ok(batch::stream_results(
        "application/fhir+json",
        items,
        // A Bundle's record is named by its first resource; it is not known before the
        // Bundle is prepared, so the visits of a FHIR batch go one after another.
        |_| Some(String::new()),
        r#"{"resourceType":"Bundle","type":"batch-response","entry":["#,
        ",",
        "]}",
        move |(i, entry)| {
            let (state, facility) = (state.clone(), facility.clone());
            async move {
                let pushed = match entry.get("resource") {
                    Some(b) if b.get("type").and_then(Value::as_str) == Some("transaction") => {
                        push_fhir(&state, &facility, b.clone(), None, None).await
                    }
                    _ => Err(ApiError::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        Outcome::one(
                            Issue::error(
                                IssueCode::Invalid,
                                "each entry of a batch carries one transaction Bundle (a visit) as its resource",
                            )
                            .at(format!("Bundle.entry[{i}].resource")),
                        ),
                    )),
                };
                response_entry(i, pushed)
            }
            .boxed_local()
        },
    ))
}

/// One entry of a `batch-response`: the status a single push would have got, the receipt as
/// its location and the revision as its etag, and the OperationOutcome (warnings, or why the
/// Bundle was refused).
fn response_entry(i: usize, pushed: Result<Answer, ApiError>) -> Value {
    match pushed {
        Ok(a) => {
            let mut response = json!({
                "status": format!("{} {}", a.status.as_u16(), a.status.canonical_reason().unwrap_or("")),
                "location": format!("/receipts/{}", a.receipt_id),
                "etag": push::etag(a.revision),
            });
            if let Some(w) = a.body.get("warnings") {
                response["outcome"] = w.clone();
            }
            json!({"response": response})
        }
        Err(e) => {
            let mut outcome = e.outcome;
            for issue in &mut outcome.issues {
                issue.text = format!("entry {i}: {}", issue.text);
                if let Some(x) = &issue.expression {
                    let inner = x.strip_prefix("Bundle.").unwrap_or(x);
                    issue.expression = Some(format!("Bundle.entry[{i}].resource.{inner}"));
                }
            }
            json!({"response": {
                "status": format!("{} {}", e.status.as_u16(), e.status.canonical_reason().unwrap_or("")),
                "outcome": outcome.to_operation_outcome(),
            }})
        }
    }
}
