//! `POST /auth/token`: the SMART Backend Services token endpoint. A registered client
//! (`gerbang client add`) authenticates with a JWT it signed with one of its registered keys
//! (RFC 7523 client assertion) and gets a short-lived bearer token for the scopes it asked
//! for and is registered with. Answers and errors are OAuth 2.0 JSON (RFC 6749 §5), not
//! OperationOutcomes: that is what OAuth client libraries read.
//!
//! The checks, in order: the form (grant type, assertion type, scope) → the algorithm and
//! the client the assertion names → the client is registered and not revoked → the signature
//! with the key its `kid` names → `iss`/`sub`/`aud`/`exp`/`nbf`/`jti` ([`super::smart`]) →
//! the `jti` was never used (kept until the assertion expires) → the scopes → a token.
//!
//! Every answer of this path is OAuth JSON with `Cache-Control: no-store`: also a refusal
//! made before the handler runs (rate, URL length, a stalled body: [`refusal`]) and a wrong
//! method ([`wrong_method`]).

use super::error::ApiError;
use super::smart::{self, ASSERTION_TYPE};
use super::{AppState, auth};
use crate::store::{AccessToken, AuditEvent, sha256_hex};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

#[derive(Debug, Default, Deserialize)]
pub struct TokenRequest {
    grant_type: Option<String>,
    client_assertion_type: Option<String>,
    client_assertion: Option<String>,
    scope: Option<String>,
    /// Optional (RFC 7523 §3); if sent, it must be the assertion's `iss`.
    client_id: Option<String>,
}

/// An RFC 6749 error answer.
struct OAuthError {
    status: StatusCode,
    error: &'static str,
    description: String,
}

impl OAuthError {
    fn request(description: impl Into<String>) -> Self {
        OAuthError {
            status: StatusCode::BAD_REQUEST,
            error: "invalid_request",
            description: description.into(),
        }
    }
    fn client(description: impl Into<String>) -> Self {
        OAuthError {
            status: StatusCode::UNAUTHORIZED,
            error: "invalid_client",
            description: description.into(),
        }
    }
    fn scope(description: impl Into<String>) -> Self {
        OAuthError {
            status: StatusCode::BAD_REQUEST,
            error: "invalid_scope",
            description: description.into(),
        }
    }
    fn response(&self) -> HttpResponse {
        tracing::info!(error = self.error, reason = %self.description, "token request refused");
        HttpResponse::build(self.status)
            .insert_header(("Cache-Control", "no-store"))
            .insert_header(("Pragma", "no-cache"))
            .json(json!({"error": self.error, "error_description": self.description}))
    }
}

/// A refusal made for this path before the handler ran (see [`super::limits`]), as OAuth
/// JSON with the same status, `Retry-After` and text.
///
/// A 429 or 503 is not the client's fault, so none of RFC 6749 §5.2's codes fits it:
/// `invalid_request` would tell a client library its request is malformed (so it would not
/// retry), `invalid_client` that its credentials are wrong (so an operator would rotate
/// keys). `temporarily_unavailable` (RFC 6749 §4.1.2.1, "temporary overloading") says what
/// it is, and is what this endpoint already answers when its store is away; the status
/// and `Retry-After` tell the client when to come back.
pub fn refusal(err: &ApiError) -> HttpResponse {
    let status = err.status;
    let error = match status {
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => {
            "temporarily_unavailable"
        }
        _ => "invalid_request",
    };
    let description = err
        .outcome
        .issues
        .iter()
        .map(|i| i.text.as_str())
        .collect::<Vec<_>>()
        .join("; ");
    let mut resp = OAuthError {
        status,
        error,
        description,
    }
    .response();
    if let Some(secs) = err.retry_after {
        resp.headers_mut().insert(
            actix_web::http::header::RETRY_AFTER,
            actix_web::http::header::HeaderValue::from(secs),
        );
    }
    resp
}

/// `GET /auth/token` and every other method but POST: 405, as OAuth JSON.
pub async fn wrong_method(req: HttpRequest) -> HttpResponse {
    let mut resp = OAuthError {
        status: StatusCode::METHOD_NOT_ALLOWED,
        error: "invalid_request",
        description: format!(
            "{} is not allowed here: POST the token request as application/x-www-form-urlencoded",
            req.method()
        ),
    }
    .response();
    resp.headers_mut().insert(
        actix_web::http::header::ALLOW,
        actix_web::http::header::HeaderValue::from_static("POST"),
    );
    resp
}

pub async fn token(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: Result<web::Form<TokenRequest>, actix_web::Error>,
) -> HttpResponse {
    let form = match form {
        Ok(f) => f.into_inner(),
        // A body that stopped arriving is not a malformed one: the client is told to send
        // it again, with the status that says so.
        Err(e) if super::body::timed_out_error(&e).is_some() => {
            let text = super::body::timed_out_error(&e).unwrap_or_default();
            return OAuthError {
                status: StatusCode::REQUEST_TIMEOUT,
                error: "invalid_request",
                description: format!("{text}; send the token request again"),
            }
            .response();
        }
        Err(e) => {
            return OAuthError::request(format!(
                "the body must be application/x-www-form-urlencoded token request parameters ({e})"
            ))
            .response();
        }
    };
    match issue(&req, &state, form).await {
        Ok(r) => r,
        Err(e) => e.response(),
    }
}

async fn issue(
    req: &HttpRequest,
    state: &web::Data<AppState>,
    form: TokenRequest,
) -> Result<HttpResponse, OAuthError> {
    // The form.
    match form.grant_type.as_deref() {
        Some("client_credentials") => {}
        Some(other) => {
            return Err(OAuthError {
                status: StatusCode::BAD_REQUEST,
                error: "unsupported_grant_type",
                description: format!(
                    "grant_type `{other}` is not supported; use client_credentials"
                ),
            });
        }
        None => {
            return Err(OAuthError::request(
                "grant_type is required (client_credentials)",
            ));
        }
    }
    match form.client_assertion_type.as_deref() {
        Some(ASSERTION_TYPE) => {}
        Some(other) => {
            return Err(OAuthError::client(format!(
                "client_assertion_type `{other}` is not supported; use {ASSERTION_TYPE}"
            )));
        }
        None => {
            return Err(OAuthError::client(format!(
                "client_assertion_type is required ({ASSERTION_TYPE})"
            )));
        }
    }
    let assertion = form
        .client_assertion
        .as_deref()
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .ok_or_else(|| {
            OAuthError::client(
                "client_assertion is required: a JWT signed with one of your registered keys",
            )
        })?;
    let requested = smart::parse_scope_list(form.scope.as_deref().unwrap_or(""));
    if requested.is_empty() {
        return Err(OAuthError::scope(
            "scope is required: the space-separated scopes you need, e.g. system/Bundle.read",
        ));
    }

    // Which client, and is it one we know?
    let client_id =
        smart::claimed_client(assertion).map_err(|e| OAuthError::client(e.to_string()))?;
    if let Some(cid) = &form.client_id
        && cid != &client_id
    {
        return Err(OAuthError::client(format!(
            "client_id `{cid}` differs from the assertion's iss `{client_id}`"
        )));
    }
    let client = state
        .store
        .smart_client(&client_id)
        .await
        .map_err(store_error)?
        .ok_or_else(|| {
            OAuthError::client(format!(
                "unknown client `{client_id}`: it is not registered (`gerbang client add`)"
            ))
        })?;
    if client.revoked_at.is_some() {
        return Err(OAuthError::client(format!(
            "client `{client_id}` was revoked"
        )));
    }
    // Checked when registered (`smart::check_jwks`): unreadable now means the stored copy is
    // damaged, which waiting does not mend — the operator must register the keys again.
    let jwks: jsonwebtoken::jwk::JwkSet =
        serde_json::from_value(client.jwks.clone()).map_err(|e| {
            tracing::error!(client = %client_id, error = %e, "registered JWKS unreadable");
            OAuthError::client(format!(
                "the keys registered for client `{client_id}` cannot be read; ask the gateway's operator to register them again (`gerbang client add`)"
            ))
        })?;

    // The signature and the claims.
    let now_ms = crate::time::now_millis();
    let token_url = state.auth.token_url(req);
    let verified = smart::verify(
        assertion,
        &jwks,
        &client_id,
        &token_url,
        now_ms.div_euclid(1000),
    )
    .map_err(|e| OAuthError::client(e.to_string()))?;
    let fresh = state
        .store
        .use_assertion_jti(&client_id, &verified.jti, verified.exp * 1000, now_ms)
        .await
        .map_err(store_error)?;
    if !fresh {
        return Err(OAuthError::client(format!(
            "replayed jti `{}`: this assertion was used before; sign a new one with a new jti",
            verified.jti
        )));
    }

    // The scopes.
    let granted = smart::grant(&requested, &client.scopes);
    if granted.is_empty() {
        return Err(OAuthError::scope(format!(
            "none of the requested scopes ({}) is granted to client `{client_id}`; it is registered for: {}",
            requested.join(" "),
            client.scopes.join(" ")
        )));
    }

    // The token: only its hash is kept.
    let token = auth::new_access_token();
    let ttl = state.auth.token_ttl_secs.max(1);
    state
        .store
        .add_access_token(
            &AccessToken {
                token_hash: sha256_hex(token.as_bytes()),
                client_id: client_id.clone(),
                scopes: granted.clone(),
                organization_id: client.organization_id.clone(),
                issued_at: now_ms,
                expires_at: now_ms + (ttl as i64) * 1000,
            },
            now_ms,
        )
        .await
        .map_err(store_error)?;
    let scope = granted.join(" ");
    // Every token is audited; one that cannot be is not handed out.
    state
        .store
        .audit(AuditEvent {
            at: now_ms,
            actor: format!("client:{client_id}"),
            action: "token".into(),
            receipt_id: None,
            organization_id: client.organization_id.clone(),
            detail: Some(format!("scope: {scope}; expires in {ttl} s")),
        })
        .await
        .map_err(store_error)?;
    tracing::info!(client = %client_id, scope = %scope, "access token issued");
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .insert_header(("Pragma", "no-cache"))
        .json(json!({
            "access_token": token,
            "token_type": "bearer",
            "expires_in": ttl,
            "scope": scope,
        })))
}

/// `GET /.well-known/smart-configuration` (also under `/fhir`): how clients find the token
/// endpoint and what it accepts (SMART App Launch 2, §Conformance).
pub async fn smart_configuration(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "token_endpoint": state.auth.token_url(&req),
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported":
            smart::ALGORITHMS.iter().map(|a| format!("{a:?}")).collect::<Vec<_>>(),
        "scopes_supported": ["system/*.read", "system/Bundle.read", smart::ADMIN_SCOPE],
        "capabilities": ["client-confidential-asymmetric"],
    }))
}

fn store_error(e: impl std::fmt::Display) -> OAuthError {
    tracing::error!(error = %e, "store unavailable");
    OAuthError {
        status: StatusCode::SERVICE_UNAVAILABLE,
        error: "temporarily_unavailable",
        description: "gerbang cannot reach its store; try again later".into(),
    }
}
