//! Sending each facility's events to its webhook: in commit order, one at a time, one gateway
//! instance at a time per facility (a lease on the webhook row), each event signed and
//! carrying its stable `webhook-id`. A `2xx` answer moves the facility's cursor past the
//! event; anything else is retried with exponential backoff and jitter, capped at
//! [`WebhookPolicy::cap`], so a facility system that was down for a day gets every event
//! within minutes of coming back. An event that keeps failing for [`WebhookPolicy::max_age`]
//! is given up (counted, and still in the `GET /events` feed) so that one event the receiver
//! cannot take does not hold back the rest forever.

use super::{payload, signature};
use crate::internal_events::{StoreTrouble, WebhookFailed, WebhookGaveUp, WebhookSent};
use crate::store::{Store, WebhookFailure, WebhookLease};
use crate::time::now_millis;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How webhooks are retried. Configured under `[webhooks]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookPolicy {
    /// The first retry waits about this long (seconds), doubling per failure.
    pub base_secs: f64,
    /// The longest wait between two attempts (seconds).
    pub cap_secs: f64,
    /// An event still refused after this long (seconds) is given up.
    pub max_age_secs: u64,
    /// How long one request may take (seconds).
    pub timeout_secs: u64,
}

impl Default for WebhookPolicy {
    fn default() -> Self {
        WebhookPolicy {
            base_secs: 5.0,
            cap_secs: 600.0,
            max_age_secs: 3 * 24 * 3600,
            timeout_secs: 10,
        }
    }
}

impl WebhookPolicy {
    pub fn cap(&self) -> Duration {
        Duration::from_secs_f64(self.cap_secs.max(0.1))
    }
    pub fn max_age(&self) -> Duration {
        Duration::from_secs(self.max_age_secs)
    }
    /// The wait after `attempts` failures: full jitter in `[base·2^(n−1)/2, base·2^(n−1)]`,
    /// capped.
    fn delay(&self, attempts: i64) -> Duration {
        let exp = attempts.clamp(1, 30) as i32 - 1;
        let ceiling = (self.base_secs.max(0.05) * 2f64.powi(exp)).min(self.cap_secs.max(0.1));
        Duration::from_secs_f64(ceiling * (0.5 + fastrand::f64() / 2.0))
    }
}

/// How many events one lease sends at most before it lets another facility's turn come.
const EVENTS_PER_LEASE: usize = 100;
/// How long a lease on a webhook lasts; renewed by every acknowledged event.
const LEASE: Duration = Duration::from_secs(60);
/// How often the dispatcher looks for due webhooks (a read); an event waits at most this
/// long before it is sent.
const POLL: Duration = Duration::from_millis(500);
/// Webhooks served at once.
const AT_ONCE: usize = 8;

pub struct Dispatcher {
    pub store: Arc<Store>,
    pub http: reqwest::Client,
    pub policy: WebhookPolicy,
    /// Unique per process: lease owner.
    pub owner: String,
}

impl Dispatcher {
    pub fn new(
        store: Arc<Store>,
        policy: WebhookPolicy,
        owner: String,
    ) -> anyhow::Result<Dispatcher> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(policy.timeout_secs.max(1)))
            .connect_timeout(Duration::from_secs(policy.timeout_secs.clamp(1, 10)))
            .user_agent(concat!(
                "gerbang/",
                env!("CARGO_PKG_VERSION"),
                " (webhooks)"
            ))
            .build()?;
        Ok(Dispatcher {
            store,
            http,
            policy,
            owner,
        })
    }

    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut failures = 0u32;
        loop {
            if *shutdown.borrow() {
                break;
            }
            // Read first: an idle gateway must not write (and fsync) on every poll.
            let leased = match self.store.webhooks_due().await {
                Ok(false) => Ok(Vec::new()),
                Ok(true) => {
                    self.store
                        .lease_webhooks(&self.owner, LEASE.as_millis() as i64, AT_ONCE)
                        .await
                }
                Err(e) => Err(e),
            };
            match leased {
                Ok(leases) => {
                    failures = 0;
                    let sends: Vec<_> = leases.into_iter().map(|l| self.send_backlog(l)).collect();
                    futures_util::future::join_all(sends).await;
                }
                Err(e) => {
                    failures += 1;
                    let wait = crate::store::backoff(failures);
                    StoreTrouble {
                        stage: "webhooks",
                        error: &e.to_string(),
                        failures,
                        retry_in: wait,
                    }
                    .emit();
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = shutdown.changed() => {}
                    }
                    continue;
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    /// Send a leased webhook's events in order until one fails or none is left.
    async fn send_backlog(&self, lease: WebhookLease) {
        let w = &lease.webhook;
        let events = match self
            .store
            .events_after(&w.facility_id, w.sent_seq, EVENTS_PER_LEASE)
            .await
        {
            Ok(e) => e,
            Err(e) => {
                store_trouble(&e);
                return;
            }
        };
        for (i, event) in events.iter().enumerate() {
            // The webhook's failure count and time belong to the first event of the backlog;
            // an event reached after an acknowledged one starts afresh.
            let (attempts, failing_since) = if i == 0 {
                (w.attempts, w.failing_since)
            } else {
                (0, None)
            };
            let body = payload::event_json(event).to_string();
            let started = std::time::Instant::now();
            let answer = self.send(w, &event.id, body.as_bytes()).await;
            let now = now_millis();
            match answer {
                Ok(()) => {
                    WebhookSent {
                        facility_id: &w.facility_id,
                        event_type: event.kind.as_str(),
                        took_ms: started.elapsed().as_millis() as u64,
                    }
                    .emit();
                    match self
                        .store
                        .webhook_sent(
                            &w.facility_id,
                            &lease.token,
                            event.seq,
                            LEASE.as_millis() as i64,
                            now,
                        )
                        .await
                    {
                        Ok(true) => continue,
                        // The lease was lost (taken over): stop; the new holder goes on.
                        Ok(false) => return,
                        Err(e) => {
                            store_trouble(&e);
                            return;
                        }
                    }
                }
                Err((error, status)) => {
                    // Once an event has failed for `max_age`, it is given up.
                    let give_up = failing_since
                        .is_some_and(|t| now - t >= self.policy.max_age().as_millis() as i64);
                    let delay = self.policy.delay(attempts + 1);
                    if give_up {
                        WebhookGaveUp {
                            facility_id: &w.facility_id,
                            event_type: event.kind.as_str(),
                            error: &error,
                        }
                        .emit();
                    } else {
                        WebhookFailed {
                            facility_id: &w.facility_id,
                            http_status: status,
                            attempts: attempts + 1,
                            retry_in: delay,
                            error: &error,
                        }
                        .emit();
                    }
                    if let Err(e) = self
                        .store
                        .webhook_failed(
                            &w.facility_id,
                            &lease.token,
                            WebhookFailure {
                                seq: event.seq,
                                error: error.clone(),
                                http_status: status,
                                delay_ms: delay.as_millis() as i64,
                                give_up,
                            },
                            now,
                        )
                        .await
                    {
                        store_trouble(&e);
                    }
                    return;
                }
            }
        }
        let _ = self
            .store
            .release_webhook(&w.facility_id, &lease.token)
            .await;
    }

    /// One signed POST; Ok on a 2xx answer.
    async fn send(
        &self,
        w: &crate::store::Webhook,
        msg_id: &str,
        body: &[u8],
    ) -> Result<(), (String, Option<u16>)> {
        let timestamp = now_millis() / 1000;
        let signature = signature::sign(&w.secret, msg_id, timestamp, body)
            .map_err(|e| (format!("cannot sign: {e}"), None))?;
        let resp = self
            .http
            .post(&w.url)
            .header("Content-Type", "application/json")
            .header("webhook-id", msg_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body.to_vec())
            .send()
            .await
            .map_err(|e| {
                let kind = if e.is_timeout() {
                    "timed out"
                } else if e.is_connect() {
                    "could not connect"
                } else {
                    "failed"
                };
                (format!("webhook request {kind}"), None)
            })?;
        let status = resp.status();
        if status.is_success() {
            Ok(())
        } else {
            Err((
                format!("webhook answered HTTP {}", status.as_u16()),
                Some(status.as_u16()),
            ))
        }
    }
}

/// The store failed while sending: the lease runs out and the webhook is taken up again.
fn store_trouble(e: &crate::store::StoreError) {
    StoreTrouble {
        stage: "webhooks",
        error: &e.to_string(),
        failures: 1,
        retry_in: LEASE,
    }
    .emit();
}
