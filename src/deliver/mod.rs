//! Step 5 of a record's path: the forwarder. It leases due receipts from the store, runs one
//! attempt each ([`attempt`]: a revision delivered, a correction applied, a cancellation),
//! and records how each ended: delivered (with SATUSEHAT's ids), retry later (backoff with
//! jitter, Retry-After honoured), or dead letter (SATUSEHAT's OperationOutcome kept).
//!
//! Nothing is lost if the process dies at any point: a lease only borrows a receipt, and an
//! expired lease makes it due again. Leases are short and renewed by a heartbeat while an
//! attempt runs, so the work of a killed instance moves to another within about one lease.
//! Nothing is created twice upstream: resources carry deterministic identifiers, so a Bundle
//! re-sent after a crash is answered with 20002 (duplicate), and what SATUSEHAT holds is
//! found by identifier.
//!
//! When the store fails (a full disk, a lost database), the forwarder backs off instead of
//! spinning: each failed round waits longer ([`crate::store::backoff`]).

pub mod attempt;
pub mod breaker;
pub mod client;
pub mod plan;
pub mod policy;
pub mod resolve;

use crate::internal_events::{
    BreakerOpened, DeliveryRetried, LeaseLost, QueueDepth, RecordDeadLettered, RecordDelivered,
    StoreTrouble,
};
use crate::store::{Completion, Lease, Store};
use crate::time::now_millis;
use attempt::{Attempt, Done, Failure};
use client::SatusehatClient;
use policy::RetryPolicy;
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, Semaphore, watch};

pub struct Forwarder {
    pub store: Arc<Store>,
    pub client: Arc<SatusehatClient>,
    pub policy: RetryPolicy,
    /// Unique per process: lease owner.
    pub owner: String,
    /// Deliveries in flight at once.
    pub concurrency: usize,
    /// How long a lease is held; longer than the slowest attempt.
    pub lease: Duration,
    /// Woken when a record is accepted, so delivery starts without waiting for a tick.
    pub wake: Arc<Notify>,
    /// Per-organization concurrency cap and circuit breaker.
    /// Shared read-only with the console, which shows each organization's breaker.
    pub flow: Arc<breaker::FlowControl>,
    /// The leases of the attempts under way (receipt → token), renewed by the heartbeat.
    pub in_flight: Mutex<HashMap<String, String>>,
}

/// Removes an attempt's lease from those the heartbeat renews when the attempt ends, however
/// it ends.
struct InFlight<'a> {
    forwarder: &'a Forwarder,
    receipt_id: &'a str,
    token: &'a str,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if let Ok(mut leases) = self.forwarder.in_flight.lock() {
            // Not a newer lease of the same record, taken since.
            if leases.get(self.receipt_id).is_some_and(|t| t == self.token) {
                leases.remove(self.receipt_id);
            }
        }
    }
}

/// How long the forwarder sleeps when nothing is due and nothing wakes it.
const IDLE_POLL: Duration = Duration::from_secs(5);

impl Forwarder {
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let slots = Arc::new(Semaphore::new(self.concurrency));
        let heartbeat = tokio::spawn(self.clone().heartbeat(shutdown.clone()));
        let mut last_gauge = std::time::Instant::now() - Duration::from_secs(60);
        let mut store_failures = 0u32;
        loop {
            if *shutdown.borrow() {
                break;
            }
            if last_gauge.elapsed() > Duration::from_secs(5) {
                self.report_depth().await;
                last_gauge = std::time::Instant::now();
            }
            let (leased, blocked_until) = match self.lease_round(slots.available_permits()).await {
                Ok(round) => {
                    store_failures = 0;
                    round
                }
                Err(e) => {
                    // Back off: a store that fails now (full disk, database away) will not
                    // be better in a millisecond, and every failure would be a log line.
                    store_failures += 1;
                    let wait = crate::store::backoff(store_failures);
                    StoreTrouble {
                        stage: "lease",
                        error: &e.to_string(),
                        failures: store_failures,
                        retry_in: wait,
                    }
                    .emit();
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = shutdown.changed() => {}
                    }
                    continue;
                }
            };
            let got_any = !leased.is_empty();
            for lease in leased {
                let permit = slots
                    .clone()
                    .acquire_owned()
                    .await
                    .expect("semaphore is never closed");
                let me = self.clone();
                self.flow.started(&lease.organization_id);
                self.in_flight
                    .lock()
                    .expect("in-flight leases")
                    .insert(lease.receipt_id.clone(), lease.token.clone());
                tokio::spawn(async move {
                    me.deliver(lease).await;
                    drop(permit);
                });
            }
            if got_any && slots.available_permits() > 0 {
                continue;
            }
            let sleep = match blocked_until {
                // Records are due but their organizations are held back (breaker open or at
                // their cap): wait for the breaker, or for a delivery to finish.
                Some(until) => until
                    .saturating_duration_since(std::time::Instant::now())
                    .clamp(Duration::from_millis(10), IDLE_POLL),
                None => self.idle_for().await,
            };
            tokio::select! {
                _ = tokio::time::sleep(sleep) => {}
                _ = self.wake.notified() => {}
                _ = shutdown.changed() => {}
                // A finished delivery frees a slot.
                _ = slots.clone().acquire_owned(), if slots.available_permits() < self.concurrency => {}
            }
        }
        heartbeat.abort();
    }

    /// Renew the leases of the attempts under way every third of a lease, so that a slow
    /// attempt keeps its record and a killed instance's records move after one lease.
    async fn heartbeat(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let every = self.lease / 3;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = shutdown.changed() => return,
            }
            let leases: Vec<(String, String)> = self
                .in_flight
                .lock()
                .expect("in-flight leases")
                .iter()
                .map(|(r, t)| (r.clone(), t.clone()))
                .collect();
            if leases.is_empty() {
                continue;
            }
            if let Err(e) = self
                .store
                .renew_leases(leases, self.lease.as_millis() as i64)
                .await
            {
                StoreTrouble {
                    stage: "heartbeat",
                    error: &e.to_string(),
                    failures: 1,
                    retry_in: every,
                }
                .emit();
            }
        }
    }

    /// Lease what may be sent now, organization by organization, within `free` global slots.
    /// Also returns when the earliest held-back organization may send again.
    async fn lease_round(
        &self,
        mut free: usize,
    ) -> crate::store::Result<(Vec<Lease>, Option<std::time::Instant>)> {
        let mut leased = Vec::new();
        let mut blocked_until: Option<std::time::Instant> = None;
        if free == 0 {
            return Ok((leased, None));
        }
        let mut orgs = self.store.due_organizations().await?;
        // No organization always goes first.
        fastrand::shuffle(&mut orgs);
        for org in orgs {
            if free == 0 {
                break;
            }
            let n = match self.flow.allowance(&org, std::time::Instant::now()) {
                breaker::Allowance::Send(n) => n.min(free),
                breaker::Allowance::WaitUntil(t) => {
                    blocked_until = Some(blocked_until.map_or(t, |b| b.min(t)));
                    continue;
                }
            };
            if n == 0 {
                blocked_until =
                    Some(blocked_until.unwrap_or_else(|| std::time::Instant::now() + IDLE_POLL));
                continue;
            }
            let l = self
                .store
                .lease_due(
                    &self.owner,
                    &org,
                    self.lease.as_millis() as i64,
                    n,
                    now_millis(),
                )
                .await?;
            free -= l.len();
            leased.extend(l);
        }
        Ok((leased, blocked_until))
    }

    async fn idle_for(&self) -> Duration {
        match self.store.next_due_in().await {
            Ok(Some(ms)) => {
                Duration::from_millis(ms.clamp(10, IDLE_POLL.as_millis() as i64) as u64)
            }
            _ => IDLE_POLL,
        }
    }

    async fn report_depth(&self) {
        if let Ok(counts) = self.store.counts().await {
            for (status, count) in counts {
                QueueDepth {
                    status: status.as_str(),
                    count,
                }
                .emit();
            }
        }
    }

    /// One attempt for one leased receipt, start to finish.
    pub async fn deliver(&self, lease: Lease) {
        let started = now_millis();
        let org = lease.organization_id.clone();
        // Whatever happens to this attempt — even a panic — the heartbeat stops renewing its
        // lease, so a stuck attempt can never hold its record for ever.
        let _release = InFlight {
            forwarder: self,
            receipt_id: &lease.receipt_id,
            token: &lease.token,
        };
        // An attempt is bounded by its lease (which outlasts every call it makes, each under
        // the upstream timeout): one that takes longer is abandoned and tried again.
        let attempt = Attempt {
            client: &self.client,
            store: &self.store,
        };
        let result = match tokio::time::timeout(self.lease, attempt.run(&lease)).await {
            Ok(result) => result,
            Err(_) => Err(Failure::Retry {
                error: format!(
                    "the attempt took longer than its lease ({} s) and was abandoned",
                    self.lease.as_secs()
                ),
                http_status: None,
                retry_after: None,
            }),
        };
        let health = match &result {
            Err(Failure::Retry { .. }) => breaker::Health::Failing,
            _ => breaker::Health::Up,
        };
        if let Some(open_for) = self.flow.finished(&org, health, std::time::Instant::now()) {
            BreakerOpened {
                organization_id: &org,
                open_secs: open_for.as_secs_f64(),
            }
            .emit();
        }
        let completion = match result {
            Ok(Done {
                server_ids,
                duplicate,
                changes,
            }) => Completion::Delivered {
                server_ids: json!(server_ids),
                duplicate,
                changes,
            },
            Err(Failure::Retry {
                error,
                http_status,
                retry_after,
            }) => {
                if self
                    .policy
                    .exhausted(lease.attempts, lease.created_at, now_millis())
                {
                    let text = format!("gave up after {} attempts: {error}", lease.attempts);
                    let outcome = crate::fhir::Outcome::one(crate::fhir::Issue::error(
                        crate::fhir::IssueCode::Transient,
                        text.clone(),
                    ))
                    .to_operation_outcome();
                    Completion::Dead {
                        error: text,
                        outcome,
                        http_status,
                    }
                } else {
                    let delay = self.policy.delay(lease.attempts, retry_after);
                    Completion::Retry {
                        delay_ms: delay.as_millis() as i64,
                        error,
                        http_status,
                    }
                }
            }
            Err(Failure::Dead {
                error,
                outcome,
                http_status,
            }) => Completion::Dead {
                error,
                outcome,
                http_status,
            },
        };
        if !matches!(completion, Completion::Retry { .. }) {
            self.client.found.forget(&format!(
                "{}#{}",
                lease.receipt_id,
                lease
                    .revision
                    .map_or("cancel".to_string(), |r| r.to_string())
            ));
        }
        let now = now_millis();
        let held = self
            .store
            .complete(
                &lease.receipt_id,
                &lease.token,
                started,
                now,
                completion.clone(),
            )
            .await;
        // From here the heartbeat must not keep the lease: if the result was not recorded,
        // the lease expires and the record is attempted again (upstream de-duplication
        // makes that safe).
        self.in_flight
            .lock()
            .expect("in-flight leases")
            .remove(&lease.receipt_id);
        let held = match held {
            Ok(held) => held,
            Err(e) => {
                StoreTrouble {
                    stage: "complete",
                    error: &e.to_string(),
                    failures: 1,
                    retry_in: self.lease,
                }
                .emit();
                return;
            }
        };
        if !held {
            LeaseLost {
                receipt_id: &lease.receipt_id,
            }
            .emit();
            return;
        }
        match &completion {
            Completion::Delivered { duplicate, .. } => RecordDelivered {
                receipt_id: &lease.receipt_id,
                organization_id: &org,
                attempts: lease.attempts,
                duplicate: *duplicate,
                latency_ms: now - lease.created_at,
            }
            .emit(),
            Completion::Retry {
                delay_ms,
                error,
                http_status,
            } => DeliveryRetried {
                receipt_id: &lease.receipt_id,
                organization_id: &org,
                attempts: lease.attempts,
                http_status: *http_status,
                retry_in_ms: *delay_ms,
                error,
            }
            .emit(),
            Completion::Dead {
                error,
                outcome,
                http_status,
            } => {
                let rules = crate::fhir::Outcome::from_operation_outcome(outcome).rule_numbers();
                RecordDeadLettered {
                    receipt_id: &lease.receipt_id,
                    organization_id: &org,
                    attempts: lease.attempts,
                    http_status: *http_status,
                    rules: &rules,
                    error,
                }
                .emit()
            }
        }
    }
}
