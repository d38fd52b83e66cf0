//! Fault injection for the sandbox: how a misbehaving SATUSEHAT looks to the forwarder.
//!
//! Each FHIR call (searches, reads, history, updates, newborn registration, transaction
//! Bundles; not the token endpoint) draws one fault: first the added latency, then at most one of an error (503),
//! a rate limit (429 with `Retry-After`) or a connection reset, in that order of the rates.
//! The bearer token is checked after the latency and before the error: a token that expires
//! (`token_ttl_secs`) or is revoked (`POST /sandbox/revoke-tokens`) while a request is on its
//! way is answered 401, as upstream.
//!
//! A **connection reset** gives the client no HTTP answer at all. Half of the resets (drawn
//! per call) happen *before* the call is processed: the connection is closed without a
//! byte written, and nothing happened upstream. The other half happen *after*: the sandbox
//! did the work — a transaction Bundle is validated and stored — and then the answer is cut
//! off after its status line, headers and part of the body (a `Content-Length` never
//! fulfilled). That is the classic "did it arrive?" case: the gateway cannot know, re-sends,
//! and must take SATUSEHAT's 20002 (duplicate) as delivered. (actix-web logs each cut-off
//! answer as "Response payload stream error": that is the injected reset, not a bug.)
//!
//! Two faults are not drawn per call but change how the sandbox keeps what it is sent, as
//! SATUSEHAT was seen to (satusehat-server-behaviour.md, "Search and duplicates"):
//! `search_delay_ms` makes identifier search lag writes while the 20002 duplicate check does
//! not, and `keep_first_entry_on_refusal` stores the first entry of a refused transaction —
//! no rollback — so that every re-send meets 20002.

use actix_web::HttpResponse;
use actix_web::body::{BodySize, MessageBody};
use actix_web::web::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Share of FHIR calls answered 503 (0.0–1.0).
    pub error_rate: f64,
    /// Share of FHIR calls answered 429 with `Retry-After: retry_after_secs`.
    pub rate_limit_rate: f64,
    pub retry_after_secs: u64,
    /// Share of FHIR calls whose connection is dropped without a complete answer (0.0–1.0):
    /// half before the call is processed, half after (see the module documentation).
    pub reset_rate: f64,
    /// Added latency per FHIR call: uniform in [latency_min_ms, latency_max_ms].
    pub latency_min_ms: u64,
    pub latency_max_ms: u64,
    /// Lifetime of newly issued tokens, overriding the configured one (token-expiry tests).
    pub token_ttl_secs: Option<u64>,
    /// Transaction Bundles holding a resource with one of these identifier values are always
    /// answered 500: a "poison" record that upstream chokes on, while every other goes through.
    pub poison_identifiers: Vec<String>,
    /// Transaction Bundles holding a resource with one of these identifier values are refused
    /// for good (400, a "code not found" rule 10103 at that resource), as SATUSEHAT refuses a
    /// code it does not know: a record only a correction can get through.
    pub refuse_identifiers: Vec<String>,
    /// Identifier search finds a created or updated resource only this long after it was
    /// written (ms; 0: at once). Taken at search time, so setting it back to 0 makes
    /// everything findable. The 20002 check and reads by id do not lag.
    pub search_delay_ms: u64,
    /// A transaction refused with 400 (validation, unknown references, 20002) still stores
    /// its first entry when that entry is itself fine: id, version 1, identifiers indexed,
    /// references to the other entries left as `urn:uuid:`.
    pub keep_first_entry_on_refusal: bool,
}

/// The longest search delay accepted: a week. More is a unit mistake (seconds for ms, a
/// timestamp), not a lag anyone wants to simulate.
pub const MAX_SEARCH_DELAY_MS: u64 = 7 * 24 * 3600 * 1000;

/// What one call will suffer.
pub struct Plan {
    pub delay: Option<Duration>,
    kind: Option<Kind>,
}

enum Kind {
    ServerError,
    RateLimited(u64),
    /// Drop the connection; `after` = once the call has been processed.
    Reset {
        after: bool,
    },
}

impl Faults {
    pub fn check(&self) -> Result<(), String> {
        for (name, r) in [
            ("error_rate", self.error_rate),
            ("rate_limit_rate", self.rate_limit_rate),
            ("reset_rate", self.reset_rate),
        ] {
            if !(0.0..=1.0).contains(&r) {
                return Err(format!("{name} must be between 0 and 1"));
            }
        }
        if self.latency_min_ms > self.latency_max_ms && self.latency_max_ms != 0 {
            return Err("latency_min_ms must not exceed latency_max_ms".into());
        }
        if self.search_delay_ms > MAX_SEARCH_DELAY_MS {
            return Err(format!(
                "search_delay_ms must not exceed {MAX_SEARCH_DELAY_MS} (a week, in milliseconds)"
            ));
        }
        Ok(())
    }

    pub fn plan(&self) -> Plan {
        let delay = if self.latency_max_ms > 0 {
            Some(Duration::from_millis(fastrand::u64(
                self.latency_min_ms..=self.latency_max_ms,
            )))
        } else {
            None
        };
        let roll = fastrand::f64();
        let kind = if roll < self.error_rate {
            Some(Kind::ServerError)
        } else if roll < self.error_rate + self.rate_limit_rate {
            Some(Kind::RateLimited(self.retry_after_secs.max(1)))
        } else if roll < self.error_rate + self.rate_limit_rate + self.reset_rate {
            Some(Kind::Reset {
                after: fastrand::bool(),
            })
        } else {
            None
        };
        Plan { delay, kind }
    }
}

impl Plan {
    /// The answer that replaces processing the call, if this call fails before it is
    /// processed.
    pub fn response(&self) -> Option<HttpResponse> {
        Some(match self.kind.as_ref()? {
            Kind::ServerError => HttpResponse::ServiceUnavailable()
                .json(json!({"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "transient", "details": {"text": "sandbox: injected failure"}}]})),
            Kind::RateLimited(secs) => HttpResponse::TooManyRequests()
                .insert_header(("Retry-After", secs.to_string()))
                .json(json!({"fault": {"faultstring": "Rate limit quota violation", "detail": {"errorcode": "policies.ratelimit.QuotaViolation"}}})),
            Kind::Reset { after: false } => reset(),
            Kind::Reset { after: true } => return None,
        })
    }

    /// Whether this call's connection is reset (before or after processing).
    pub fn resets(&self) -> bool {
        matches!(self.kind, Some(Kind::Reset { .. }))
    }

    /// Whether the answer of the processed call is to be lost (see [`lose`]).
    pub fn loses_answer(&self) -> bool {
        matches!(self.kind, Some(Kind::Reset { after: true }))
    }
}

/// A response that makes the server drop the connection before writing anything: the
/// client sees the connection closed with no answer.
pub fn reset() -> HttpResponse {
    HttpResponse::Ok().body(Broken {
        size: 1,
        head: None,
        state: 0,
    })
}

/// `resp` cut short: its status line, headers and the first half of its body reach the
/// client, then the connection is dropped, short of the announced `Content-Length`.
pub async fn lose(resp: HttpResponse) -> HttpResponse {
    let (head, body) = resp.into_parts();
    let bytes = actix_web::body::to_bytes(body).await.unwrap_or_default();
    let size = (bytes.len() as u64).max(1);
    let head_part = bytes.slice(..bytes.len() / 2);
    head.set_body(Broken {
        size,
        head: (!head_part.is_empty()).then_some(head_part),
        state: 0,
    })
    .map_into_boxed_body()
}

/// A body that announces `size` bytes, yields `head` (if any), gives the server a chance to
/// flush it, then fails — which makes actix-web close the connection.
struct Broken {
    size: u64,
    head: Option<Bytes>,
    state: u8,
}

impl MessageBody for Broken {
    type Error = std::io::Error;

    fn size(&self) -> BodySize {
        BodySize::Sized(self.size)
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let this = self.get_mut();
        if let Some(head) = this.head.take() {
            return Poll::Ready(Some(Ok(head)));
        }
        if this.state == 0 && this.size > 1 {
            // Pending once, so what was written so far is flushed to the socket.
            this.state = 1;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        Poll::Ready(Some(Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "sandbox: injected connection reset",
        ))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_new_faults_default_off_and_are_checked() {
        let f: Faults = serde_json::from_str("{}").unwrap();
        assert_eq!(f.search_delay_ms, 0);
        assert!(!f.keep_first_entry_on_refusal);
        let f: Faults = serde_json::from_str(
            r#"{"search_delay_ms": 3600000, "keep_first_entry_on_refusal": true}"#,
        )
        .unwrap();
        assert!(f.check().is_ok());
        let too_long = Faults {
            search_delay_ms: MAX_SEARCH_DELAY_MS + 1,
            ..Faults::default()
        };
        assert!(too_long.check().unwrap_err().contains("search_delay_ms"));
        assert!(serde_json::from_str::<Faults>(r#"{"search_delay": 1}"#).is_err());
    }
}
