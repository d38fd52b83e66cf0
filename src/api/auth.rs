//! Who may call what.
//!
//! - **Facility systems** push records with an API key in `Authorization: Bearer <key>` (or
//!   `X-API-Key`), checked by its SHA-256 against the store ([`facility`]). The key decides
//!   the facility, and the facility decides the SATUSEHAT organization a record is sent for —
//!   a client cannot choose it; naming another one is refused ([`named_organization`]).
//! - **Pull clients** (SMART Backend Services) get short-lived bearer tokens at
//!   `POST /auth/token` ([`super::token`]) and present them here ([`client`]); a token carries
//!   the scopes it was granted and, optionally, the one organization its client is limited to.
//! - **Operators** use the `/admin` endpoints with an operator key, or with a token carrying
//!   the scope [`ADMIN_SCOPE`] ([`operator`]).

use super::AppState;
use super::error::ApiError;
pub use super::smart::ADMIN_SCOPE;
use crate::fhir::IssueCode;
use crate::store::{AccessToken, Facility, sha256_hex};
use actix_web::http::StatusCode;
use actix_web::http::header::HeaderMap;
use actix_web::{HttpRequest, web};
use serde::{Deserialize, Serialize};

/// `[auth]` in the configuration.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Lifetime of the access tokens gerbang issues, in seconds.
    pub token_ttl_secs: u64,
    /// The URL clients reach gerbang at, e.g. `https://gerbang.dinkes.example` (behind a
    /// proxy: the proxy's). Client assertions must name `{public_url}/auth/token` as their
    /// `aud`. Unset, the URL the request itself was sent to is expected (scheme and `Host`,
    /// or `Forwarded` / `X-Forwarded-*`): convenient locally, but set it in production —
    /// otherwise an assertion made for another server could be replayed here with a forged
    /// `Host`.
    pub public_url: Option<String>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            token_ttl_secs: 300,
            public_url: None,
        }
    }
}

impl AuthConfig {
    /// Where clients reach gerbang: `public_url`, or else the scheme and host the request
    /// came in on. Links in answers and the token URL are built on it.
    pub fn base_url(&self, req: &HttpRequest) -> String {
        match &self.public_url {
            Some(base) => base.trim_end_matches('/').to_string(),
            None => {
                let info = req.connection_info();
                format!("{}://{}", info.scheme(), info.host())
            }
        }
    }

    /// The URL of the token endpoint: the `aud` client assertions must carry.
    pub fn token_url(&self, req: &HttpRequest) -> String {
        format!("{}/auth/token", self.base_url(req))
    }
}

pub async fn facility(
    req: &HttpRequest,
    state: &web::Data<AppState>,
) -> Result<Facility, ApiError> {
    let key = bearer(req, "facility")?;
    match state
        .store
        .facility_by_key_hash(&sha256_hex(key.as_bytes()))
        .await
    {
        Ok(Some(f)) => {
            verified(req);
            Ok(f)
        }
        Ok(None) => Err(ApiError::one(
            StatusCode::UNAUTHORIZED,
            IssueCode::Login,
            "this API key is not valid (unknown or revoked)",
        )),
        Err(e) => Err(ApiError::unavailable(e)),
    }
}

/// A facility system may name the organization it pushes for (`X-Organization-Id`, or
/// `?organization=`): another organization than its key's is refused with 403. Records are
/// always sent under the key's organization; this catches a system configured with the
/// wrong key (or the wrong organization) before anything is stored.
pub fn named_organization(
    req: &HttpRequest,
    in_query: Option<&str>,
    facility: &Facility,
) -> Result<(), ApiError> {
    let in_header = req
        .headers()
        .get("X-Organization-Id")
        .map(|h| h.to_str().unwrap_or("(not text)").trim());
    for named in [in_header, in_query.map(str::trim)].into_iter().flatten() {
        if named != facility.organization_id {
            return Err(ApiError::one(
                StatusCode::FORBIDDEN,
                IssueCode::Forbidden,
                format!(
                    "this API key belongs to facility {} of organization {}; it may not push records for organization {named}",
                    facility.id, facility.organization_id
                ),
            ));
        }
    }
    Ok(())
}

/// A pull client, as its access token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub client_id: String,
    /// The only organization whose data it may see; None: every organization.
    pub organization_id: Option<String>,
    /// The scopes its token was granted.
    pub scopes: Vec<String>,
}

impl Principal {
    /// Whether one of its scopes allows `scope` (see [`super::smart::allows`]).
    pub fn allows(&self, scope: &str) -> bool {
        self.scopes.iter().any(|g| super::smart::allows(g, scope))
    }
    /// How the audit names it: `client:<id>`.
    pub fn actor(&self) -> String {
        format!("client:{}", self.client_id)
    }
}

/// A pull client with an access token from `POST /auth/token` that allows `scope` (e.g.
/// `system/Bundle.read`; granted by the same scope, `system/*.read`, `system/*.*` or
/// `system/Bundle.*`). No, unknown, revoked or expired token → 401 with
/// `WWW-Authenticate: Bearer`; a valid token without the scope → 403 naming it.
pub async fn client(
    req: &HttpRequest,
    state: &web::Data<AppState>,
    scope: &str,
) -> Result<Principal, ApiError> {
    let token = access_token_of(req)?;
    let principal = match token_principal(state, &sha256_hex(token.as_bytes())).await? {
        Some(p) => {
            verified(req);
            p
        }
        None => {
            return Err(invalid_token(
                "this access token is not valid (unknown, or its client was revoked); get a new one at POST /auth/token",
            ));
        }
    };
    if principal.allows(scope) {
        Ok(principal)
    } else {
        Err(insufficient_scope(&principal, scope))
    }
}

/// The admin endpoints need an operator's key (`gerbang operator add`), or an access token
/// with the scope [`ADMIN_SCOPE`]; a facility key, or a token without the scope, is refused
/// with 403. Returns the audit actor: `operator:<name>` or `client:<id>`.
pub async fn operator(req: &HttpRequest, state: &web::Data<AppState>) -> Result<String, ApiError> {
    let key = bearer(req, "operator")?;
    let hash = sha256_hex(key.as_bytes());
    match state.store.operator_by_key_hash(&hash).await {
        Ok(Some(name)) => {
            verified(req);
            return Ok(format!("operator:{name}"));
        }
        Ok(None) => {}
        Err(e) => return Err(ApiError::unavailable(e)),
    }
    if let Some(principal) = token_principal(state, &hash).await? {
        verified(req);
        return if principal.allows(ADMIN_SCOPE) {
            Ok(principal.actor())
        } else {
            Err(insufficient_scope(&principal, ADMIN_SCOPE))
        };
    }
    match state.store.facility_by_key_hash(&hash).await {
        Ok(Some(_)) => {
            verified(req);
            Err(ApiError::one(
                StatusCode::FORBIDDEN,
                IssueCode::Forbidden,
                "this is a facility key; the admin endpoints need an operator key (`gerbang operator add`)",
            ))
        }
        Ok(None) => Err(invalid_token(
            "this key or token is not valid (unknown, expired long ago, or revoked)",
        )),
        Err(e) => Err(ApiError::unavailable(e)),
    }
}

/// The client behind an access token (by the token's SHA-256), if gerbang issued it and its
/// client is not revoked; an expired token is an error of its own (401).
async fn token_principal(
    state: &web::Data<AppState>,
    token_hash: &str,
) -> Result<Option<Principal>, ApiError> {
    let found: Option<AccessToken> = state
        .store
        .access_token(token_hash)
        .await
        .map_err(ApiError::unavailable)?;
    let Some(t) = found else {
        return Ok(None);
    };
    if t.expires_at <= crate::time::now_millis() {
        return Err(invalid_token(&format!(
            "this access token expired at {}; get a new one at POST /auth/token",
            crate::time::millis_to_utc(t.expires_at)
        )));
    }
    Ok(Some(Principal {
        client_id: t.client_id,
        organization_id: t.organization_id,
        scopes: t.scopes,
    }))
}

/// RFC 6750 challenges. The description goes in the OperationOutcome; the header stays
/// plain ASCII.
fn invalid_token(text: &str) -> ApiError {
    ApiError::one(StatusCode::UNAUTHORIZED, IssueCode::Login, text)
        .with_challenge(r#"Bearer realm="gerbang", error="invalid_token""#)
}

fn insufficient_scope(principal: &Principal, scope: &str) -> ApiError {
    ApiError::one(
        StatusCode::FORBIDDEN,
        IssueCode::Forbidden,
        format!(
            "the scope {scope} is needed; this token of client {} was granted: {}",
            principal.client_id,
            if principal.scopes.is_empty() {
                "nothing".to_string()
            } else {
                principal.scopes.join(" ")
            }
        ),
    )
    .with_challenge(format!(
        r#"Bearer realm="gerbang", error="insufficient_scope", scope="{scope}""#
    ))
}

/// The request's credential is one the store knows (whatever it may do with it): its next
/// requests no longer count against its address's rate ([`super::limits`]).
fn verified(req: &HttpRequest) {
    use actix_web::HttpMessage;
    req.extensions_mut().insert(super::limits::Verified);
}

/// The token in `Authorization: Bearer <token>`.
fn access_token_of(req: &HttpRequest) -> Result<&str, ApiError> {
    bearer_token(req.headers()).ok_or_else(|| {
        ApiError::one(
            StatusCode::UNAUTHORIZED,
            IssueCode::Login,
            "an access token is required: send `Authorization: Bearer <token>` (get one at POST /auth/token)",
        )
        .with_challenge(r#"Bearer realm="gerbang""#)
    })
}

/// The key in `Authorization: Bearer <key>` (or `X-API-Key`).
fn bearer<'r>(req: &'r HttpRequest, whose: &str) -> Result<&'r str, ApiError> {
    presented_key(req.headers()).ok_or_else(|| {
        ApiError::one(
            StatusCode::UNAUTHORIZED,
            IssueCode::Login,
            format!("an API key is required: send `Authorization: Bearer <{whose} key>`"),
        )
    })
}

/// The credential a request carries: `Authorization: Bearer <key or token>`, else
/// `X-API-Key`. The one reading of credentials, for the handlers and the rate limiter alike,
/// so that whatever authenticates a request is also what its rate is counted by.
pub(super) fn presented_key(headers: &HeaderMap) -> Option<&str> {
    bearer_token(headers).or_else(|| {
        headers
            .get("X-API-Key")
            .and_then(|h| h.to_str().ok())
            .map(str::trim)
            .filter(|k| !k.is_empty())
    })
}

/// `Authorization: Bearer <token>` (the scheme as `Bearer` or `bearer`).
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("Authorization")
        .and_then(|h| h.to_str().ok())
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// A new random facility API key: 32 bytes of randomness, prefixed so it is recognisable in
/// configuration and secret scanners.
pub fn new_api_key() -> String {
    random_secret("gk_")
}

/// A new access token: as random as an API key, with its own prefix.
pub fn new_access_token() -> String {
    random_secret("gt_")
}

/// `prefix` and two random v4 UUIDs in hex.
fn random_secret(prefix: &str) -> String {
    let a = uuid::Uuid::new_v4().simple().to_string();
    let b = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}{a}{b}")
}
