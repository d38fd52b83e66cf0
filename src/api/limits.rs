//! What a request may cost before any work is done: its URL's length, its rate, and how
//! long its body may take to arrive (the body's size and nesting are [`super::body`]'s).
//!
//! Rates are token buckets (GCRA, the `governor` crate), refused with 429, `Retry-After`
//! and an OperationOutcome (OAuth JSON at the token endpoint):
//!
//! - every credential (facility key, operator key, access token) gets `requests_per_second`
//!   with `burst`, so a misbehaving facility system slows down itself, not the gateway for
//!   the others;
//! - every client address gets `per_address_requests_per_second` with `per_address_burst`
//!   for the requests that carry no credential gerbang has verified: no key at all, the
//!   token endpoint (its credential is in the body), and a key not (yet) recognised. A wrong
//!   key thus costs its sender's address, and guessing keys is as slow as that budget —
//!   while a valid key, once recognised, no longer counts against its address, so facility
//!   systems sharing one NAT address with a misconfigured neighbour keep working.
//!
//! The buckets live in the process: with several gateways behind a load balancer each
//! enforces the limit on its own share of the traffic. The address is the TCP peer's: behind
//! a reverse proxy every request comes from the proxy, so the per-address budget is then the
//! proxy's (`X-Forwarded-For` is not trusted: any client could write it to dodge the limit).

use super::AppState;
use super::error::ApiError;
use crate::fhir::IssueCode;
use crate::store::sha256_hex;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpResponse, ResponseError, web};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// `[limits]` in the configuration.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Deepest JSON nesting accepted in a request body.
    pub max_json_depth: usize,
    /// Sustained requests per second per credential; 0 turns rate limiting off.
    pub requests_per_second: u32,
    /// Requests a credential may send at once above the sustained rate.
    pub burst: u32,
    /// Sustained requests per second per client address without a verified credential
    /// (no key, a wrong key, the token endpoint); 0 turns this limit off.
    pub per_address_requests_per_second: u32,
    /// Such requests an address may send at once above the sustained rate.
    pub per_address_burst: u32,
    /// A request body that stops arriving for this many seconds is refused (408).
    pub body_timeout_secs: u64,
    /// A request body not complete after this many seconds is refused (408), however
    /// steadily it trickles in.
    pub body_deadline_secs: u64,
    /// Longest accepted request target (path and query), in bytes; longer → 414.
    pub max_uri_bytes: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_json_depth: 64,
            requests_per_second: 50,
            burst: 100,
            // Unauthenticated traffic is probes of tokens and the odd metadata read; a
            // burst of 100 lets a whole clinic behind one NAT address start up at once.
            per_address_requests_per_second: 10,
            per_address_burst: 100,
            // Rural links stall for seconds, not for half a minute; a client that sent
            // nothing for 30 s is gone or hostile.
            body_timeout_secs: 30,
            // 1 MiB (the largest body) in 5 minutes is about 28 kbit/s: slower than the
            // slowest link a facility system pushes from.
            body_deadline_secs: 300,
            // What most servers and proxies accept; gerbang's own queries are far shorter.
            max_uri_bytes: 8 * 1024,
        }
    }
}

/// A credential recognised by the store stays "verified" for the address limit this long
/// after it was last seen valid (then its next request counts once against its address).
const VERIFIED_FOR: Duration = Duration::from_secs(3600);

/// Paths never rate-limited: load balancers' and orchestrators' probes and Prometheus come
/// from one address, often quickly after a restart; a throttled probe would take a healthy
/// gateway out of rotation. They are cheap and read-only apart from `/readyz`'s one-row
/// probe write.
const PROBES: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

/// The token endpoint: its errors are OAuth JSON, also those answered here.
pub const TOKEN_PATH: &str = "/auth/token";

pub struct Limits {
    pub max_json_depth: usize,
    pub body_timeout: Duration,
    pub body_deadline: Duration,
    pub max_uri_bytes: usize,
    per_key: Option<DefaultKeyedRateLimiter<String>>,
    per_address: Option<DefaultKeyedRateLimiter<IpAddr>>,
    /// Hashes of credentials the store recognised, and when: these skip the address limit.
    verified: Mutex<HashMap<String, Instant>>,
}

/// Put into a request's extensions by [`super::auth`] when its credential was found valid.
#[derive(Clone, Copy)]
pub struct Verified;

fn limiter<K: std::hash::Hash + Eq + Clone>(
    rate: u32,
    burst: u32,
) -> Option<DefaultKeyedRateLimiter<K>> {
    NonZeroU32::new(rate).map(|r| {
        let burst = NonZeroU32::new(burst.max(rate)).unwrap_or(r);
        RateLimiter::keyed(Quota::per_second(r).allow_burst(burst))
    })
}

fn wait_of<K: std::hash::Hash + Eq + Clone>(
    limiter: &Option<DefaultKeyedRateLimiter<K>>,
    key: &K,
) -> Result<(), Duration> {
    let Some(limiter) = limiter else {
        return Ok(());
    };
    limiter
        .check_key(key)
        .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
}

impl Limits {
    pub fn new(cfg: &LimitsConfig) -> Limits {
        Limits {
            max_json_depth: cfg.max_json_depth.max(1),
            body_timeout: Duration::from_secs(cfg.body_timeout_secs.max(1)),
            body_deadline: Duration::from_secs(cfg.body_deadline_secs.max(1)),
            max_uri_bytes: cfg.max_uri_bytes.max(64),
            per_key: limiter(cfg.requests_per_second, cfg.burst),
            per_address: limiter(cfg.per_address_requests_per_second, cfg.per_address_burst),
            verified: Mutex::new(HashMap::new()),
        }
    }

    fn is_verified(&self, hash: &str) -> bool {
        let verified = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        verified
            .get(hash)
            .is_some_and(|at| at.elapsed() < VERIFIED_FOR)
    }

    fn set_verified(&self, hash: &str, valid: bool) {
        let mut verified = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        if valid {
            verified.insert(hash.to_string(), Instant::now());
        } else {
            verified.remove(hash);
        }
    }

    /// Forget buckets that are full again and credentials not seen valid for long (called
    /// now and then, so the maps stay small).
    pub fn forget_idle(&self) {
        if let Some(l) = &self.per_key {
            l.retain_recent();
        }
        if let Some(l) = &self.per_address {
            l.retain_recent();
        }
        self.verified
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, at| at.elapsed() < VERIFIED_FOR);
    }
}

/// The request's URL length, its credential's rate, its address's rate — in that order,
/// each refused before the request is handled.
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return Ok(next.call(req).await?.map_into_left_body());
    };
    let limits = &state.limits;

    // A request target that long is a mistake or an attack; no gerbang query needs it.
    let uri_len = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    if uri_len > limits.max_uri_bytes {
        let err = ApiError::one(
            StatusCode::URI_TOO_LONG,
            IssueCode::TooLong,
            format!(
                "the URL is {uri_len} bytes long; at most {} are accepted. Send fewer or shorter query parameters — nothing of this request was stored",
                limits.max_uri_bytes
            ),
        );
        let resp = refusal(&req, err);
        return Ok(req.into_response(resp).map_into_right_body());
    }

    if PROBES.contains(&req.path()) {
        return Ok(next.call(req).await?.map_into_left_body());
    }
    let key_hash = super::auth::presented_key(req.headers()).map(|k| sha256_hex(k.as_bytes()));
    let mut wait = key_hash
        .as_ref()
        .and_then(|h| wait_of(&limits.per_key, h).err())
        .map(|w| (w, "too many requests with this key"));
    if wait.is_none() && !key_hash.as_ref().is_some_and(|h| limits.is_verified(h)) {
        wait = req
            .peer_addr()
            .and_then(|a| wait_of(&limits.per_address, &a.ip()).err())
            .map(|w| {
                (
                    w,
                    "too many requests from this address without a valid API key or access token",
                )
            });
    }
    if let Some((wait, what)) = wait {
        let secs = (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1);
        crate::internal_events::RequestThrottled { path: req.path() }.emit();
        let mut err = ApiError::one(
            StatusCode::TOO_MANY_REQUESTS,
            IssueCode::Throttled,
            format!(
                "{what}; wait {secs} s (see Retry-After) and send again — nothing of this request was stored"
            ),
        );
        err.retry_after = Some(secs);
        let resp = refusal(&req, err);
        return Ok(req.into_response(resp).map_into_right_body());
    }

    let res = next.call(req).await?;
    // What the handler found out about the credential decides whether its next requests
    // still count against the address.
    if let Some(hash) = &key_hash {
        if res.request().extensions().contains::<Verified>() {
            limits.set_verified(hash, true);
        } else if res.status() == StatusCode::UNAUTHORIZED {
            limits.set_verified(hash, false);
        }
    }
    Ok(res.map_into_left_body())
}

/// A refusal answered before the handler: an OperationOutcome, or OAuth JSON at the token
/// endpoint (whose clients read nothing else).
pub fn refusal(req: &ServiceRequest, err: ApiError) -> HttpResponse {
    if req.path() == TOKEN_PATH {
        super::token::refusal(&err)
    } else {
        err.error_response()
    }
}
