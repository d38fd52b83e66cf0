//! Errors as HTTP answers: always an OperationOutcome, with a status that tells the client
//! whether to fix the record (4xx) or try again later (503).

use crate::fhir::{Issue, IssueCode, Outcome};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use std::fmt;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub outcome: Outcome,
    /// A `WWW-Authenticate` challenge to send with the answer (401/403 on bearer tokens).
    pub www_authenticate: Option<String>,
    /// `Retry-After` (seconds), for an answer that asks the client to come back later.
    pub retry_after: Option<u64>,
}

/// What a client is asked to wait after a 503 from a failing store.
pub const STORE_RETRY_AFTER_SECS: u64 = 30;

impl ApiError {
    pub fn new(status: StatusCode, outcome: Outcome) -> Self {
        ApiError {
            status,
            outcome,
            www_authenticate: None,
            retry_after: None,
        }
    }
    pub fn one(status: StatusCode, code: IssueCode, text: impl Into<String>) -> Self {
        ApiError {
            status,
            outcome: Outcome::one(Issue::error(code, text)),
            www_authenticate: None,
            retry_after: None,
        }
    }
    /// The same answer with a `WWW-Authenticate` challenge (RFC 6750).
    pub fn with_challenge(mut self, challenge: impl Into<String>) -> Self {
        self.www_authenticate = Some(challenge.into());
        self
    }
    /// The store failed. Every endpoint answers with this — reads, key checks and admin
    /// actions as well as pushes — so the text must hold for all of them; for a push it
    /// says what matters: the record is not acknowledged, the client keeps it and sends again.
    pub fn unavailable(e: impl fmt::Display) -> Self {
        tracing::error!(error = %e, "store unavailable");
        let mut err = Self::one(
            StatusCode::SERVICE_UNAVAILABLE,
            IssueCode::Transient,
            format!(
                "gerbang cannot use its store right now (a full disk, or the database away), so this request was not completed; \
                 a pushed record was NOT accepted. Send the request again in {STORE_RETRY_AFTER_SECS} seconds."
            ),
        );
        err.retry_after = Some(STORE_RETRY_AFTER_SECS);
        err
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "HTTP {} with {} issue(s)",
            self.status.as_u16(),
            self.outcome.issues.len()
        )
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }
    fn error_response(&self) -> HttpResponse {
        let mut response = fhir_json(self.status, &self.outcome.to_operation_outcome());
        if let Some(challenge) = &self.www_authenticate
            && let Ok(value) = actix_web::http::header::HeaderValue::from_str(challenge)
        {
            response
                .headers_mut()
                .insert(actix_web::http::header::WWW_AUTHENTICATE, value);
        }
        if let Some(secs) = self.retry_after {
            response.headers_mut().insert(
                actix_web::http::header::RETRY_AFTER,
                actix_web::http::header::HeaderValue::from(secs),
            );
        }
        response
    }
}

pub fn fhir_json(status: StatusCode, body: &serde_json::Value) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("application/fhir+json")
        .json(body)
}

pub async fn not_found(req: actix_web::HttpRequest) -> HttpResponse {
    let outcome = Outcome::one(Issue::error(
        IssueCode::NotFound,
        format!(
            "no endpoint {} {}; see the README for the API",
            req.method(),
            req.path()
        ),
    ));
    fhir_json(StatusCode::NOT_FOUND, &outcome.to_operation_outcome())
}
