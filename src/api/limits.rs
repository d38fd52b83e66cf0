//! Per-key rate limiting: every credential (facility key, operator key, access token — and,
//! at the token endpoint, the client's address) gets a
//! token bucket (GCRA, the `governor` crate) of `requests_per_second` with `burst`; past it
//! the answer is 429 with `Retry-After` and an OperationOutcome, before any work is done. A
//! misbehaving facility system then slows down itself, not the gateway for the others.
//!
//! The buckets live in the process: with several gateways behind a load balancer each
//! enforces the limit on its own share of the traffic.

use super::AppState;
use super::error::ApiError;
use crate::fhir::IssueCode;
use crate::store::sha256_hex;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderValue, RETRY_AFTER};
use actix_web::middleware::Next;
use actix_web::{ResponseError, web};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde::{Deserialize, Serialize};
use std::num::NonZeroU32;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Deepest JSON nesting accepted in a request body.
    pub max_json_depth: usize,
    /// Sustained requests per second per credential; 0 turns rate limiting off.
    pub requests_per_second: u32,
    /// Requests a credential may send at once above the sustained rate.
    pub burst: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_json_depth: 64,
            requests_per_second: 50,
            burst: 100,
        }
    }
}

pub struct Limits {
    pub max_json_depth: usize,
    per_key: Option<DefaultKeyedRateLimiter<String>>,
}

impl Limits {
    pub fn new(cfg: &LimitsConfig) -> Limits {
        let per_key = NonZeroU32::new(cfg.requests_per_second).map(|rate| {
            let burst = NonZeroU32::new(cfg.burst.max(cfg.requests_per_second)).unwrap_or(rate);
            RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
        });
        Limits {
            max_json_depth: cfg.max_json_depth.max(1),
            per_key,
        }
    }

    /// `Ok` if the credential may make one more request now, else how long to wait.
    fn check(&self, credential: &str) -> Result<(), std::time::Duration> {
        let Some(limiter) = &self.per_key else {
            return Ok(());
        };
        // Keyed by a hash: the bucket map never holds a credential in clear.
        limiter
            .check_key(&sha256_hex(credential.as_bytes()))
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }

    /// Forget buckets that are full again (called now and then, so the map stays small).
    pub fn forget_idle(&self) {
        if let Some(l) = &self.per_key {
            l.retain_recent();
        }
    }
}

pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    // The token endpoint carries its credential in the body (a signed assertion): guessing
    // there is limited per client address instead.
    let peer = (req.path() == "/auth/token")
        .then(|| req.peer_addr().map(|a| format!("peer:{}", a.ip())))
        .flatten();
    let key = super::auth::presented_key(req.headers()).or(peer.as_deref());
    let wait = match (req.app_data::<web::Data<AppState>>(), key) {
        (Some(state), Some(key)) => state.limits.check(key).err(),
        _ => None,
    };
    if let Some(wait) = wait {
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        crate::internal_events::RequestThrottled { path: req.path() }.emit();
        let mut resp = ApiError::one(
            StatusCode::TOO_MANY_REQUESTS,
            IssueCode::Throttled,
            format!(
                "too many requests with this key; wait {secs} s (see Retry-After) and send again — nothing of this request was stored"
            ),
        )
        .error_response();
        resp.headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(secs.max(1)));
        return Ok(req.into_response(resp).map_into_right_body());
    }
    Ok(next.call(req).await?.map_into_left_body())
}
