//! Step 5 of a record's path: the forwarder. It leases due receipts from the store, resolves
//! patients and health workers to SATUSEHAT ids, posts the transaction Bundle, and records
//! how each attempt ended: delivered (with SATUSEHAT's ids), retry later (backoff with
//! jitter, Retry-After honoured), or dead letter (SATUSEHAT's OperationOutcome kept).
//!
//! Nothing is lost if the process dies at any point: a lease only borrows a receipt, and an
//! expired lease makes it due again. Nothing is created twice upstream: resources carry
//! deterministic identifiers, so a Bundle re-sent after a crash is answered with 20002
//! (duplicate), which counts as delivered.

pub mod breaker;
pub mod client;
pub mod plan;
pub mod policy;
pub mod resolve;

use crate::internal_events::{
    BreakerOpened, DeliveryRetried, LeaseLost, QueueDepth, RecordDeadLettered, RecordDelivered,
};
use crate::store::{Completion, Lease, Store};
use crate::time::now_millis;
use client::{CallError, SatusehatClient, ServerId};
use policy::RetryPolicy;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, Semaphore, watch};

pub struct Forwarder {
    pub store: Arc<dyn Store>,
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
    pub flow: breaker::FlowControl,
}

/// How long the forwarder sleeps when nothing is due and nothing wakes it.
const IDLE_POLL: Duration = Duration::from_secs(5);

impl Forwarder {
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let slots = Arc::new(Semaphore::new(self.concurrency));
        let mut last_gauge = std::time::Instant::now() - Duration::from_secs(60);
        loop {
            if *shutdown.borrow() {
                break;
            }
            if last_gauge.elapsed() > Duration::from_secs(5) {
                self.report_depth().await;
                last_gauge = std::time::Instant::now();
            }
            let (leased, blocked_until) = self.lease_round(slots.available_permits()).await;
            let got_any = !leased.is_empty();
            for lease in leased {
                let permit = slots
                    .clone()
                    .acquire_owned()
                    .await
                    .expect("semaphore is never closed");
                let me = self.clone();
                self.flow.started(&lease.organization_id);
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
    }

    /// Lease what may be sent now, organization by organization, within `free` global slots.
    /// Also returns when the earliest held-back organization may send again.
    async fn lease_round(&self, mut free: usize) -> (Vec<Lease>, Option<std::time::Instant>) {
        let mut leased = Vec::new();
        let mut blocked_until: Option<std::time::Instant> = None;
        if free == 0 {
            return (leased, None);
        }
        let now = now_millis();
        let mut orgs = match self.store.due_organizations(now).await {
            Ok(o) => o,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the queue");
                return (leased, None);
            }
        };
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
                blocked_until = Some(
                    blocked_until.map_or_else(|| std::time::Instant::now() + IDLE_POLL, |b| b),
                );
                continue;
            }
            match self
                .store
                .lease_due(&self.owner, &org, now, self.lease.as_millis() as i64, n)
                .await
            {
                Ok(l) => {
                    free -= l.len();
                    leased.extend(l);
                }
                Err(e) => tracing::error!(error = %e, "cannot lease from the store"),
            }
        }
        (leased, blocked_until)
    }

    async fn idle_for(&self) -> Duration {
        match self.store.next_due_at().await {
            Ok(Some(t)) => Duration::from_millis(
                (t - now_millis()).clamp(10, IDLE_POLL.as_millis() as i64) as u64,
            ),
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
        let result = self.attempt(&lease).await;
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
            Ok((ids, duplicate)) => Completion::Delivered {
                server_ids: json!(ids),
                duplicate,
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
                        next_attempt_at: now_millis() + delay.as_millis() as i64,
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
            self.client.found.forget(&lease.receipt_id);
        }
        let now = now_millis();
        let held = match self
            .store
            .complete(
                &lease.receipt_id,
                &self.owner,
                started,
                now,
                completion.clone(),
            )
            .await
        {
            Ok(held) => held,
            Err(e) => {
                // The lease will expire and the record will be attempted again; upstream
                // de-duplication makes that safe.
                tracing::error!(receipt = %lease.receipt_id, error = %e, "cannot record the delivery result");
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
                next_attempt_at,
                error,
                http_status,
            } => DeliveryRetried {
                receipt_id: &lease.receipt_id,
                organization_id: &org,
                attempts: lease.attempts,
                http_status: *http_status,
                retry_in_ms: next_attempt_at - now,
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

    async fn attempt(&self, lease: &Lease) -> Result<(Vec<ServerId>, bool), Failure> {
        let org = &lease.organization_id;
        let upstream = resolve::resolve(
            &lease.bundle,
            org,
            &self.client,
            self.store.as_ref(),
            now_millis(),
        )
        .await
        .map_err(|e| match e {
            resolve::ResolveError::Call(c) => Failure::from(c),
            resolve::ResolveError::Unknown { message, outcome } => Failure::Dead {
                error: message,
                outcome,
                http_status: None,
            },
        })?;
        let mut found = match self.client.found.recall(&lease.receipt_id) {
            // An earlier attempt met 20002 and did not finish resolving it: carry on.
            Some(found) => found,
            None => match self.client.post_transaction(org, &upstream).await {
                Ok(ids) => return Ok((ids, false)),
                // Some or all of it was sent before (e.g. just before a crash, or another
                // record created a shared resource).
                Err(CallError::Rejected { outcome, .. }) if client::is_duplicate(&outcome) => {
                    Vec::new()
                }
                Err(e) => return Err(Failure::from(e)),
            },
        };
        // Find what SATUSEHAT has by identifier; if anything is missing, send only that,
        // pointing at what exists. A look-up that failed (timeout, reset, 5xx) is no answer:
        // try again later, rather than re-send what may exist and take its 20002 as a
        // refusal — but remember what the other look-ups found, so the next attempt looks up
        // only the rest.
        let pending = resolve::without_known(&upstream, &known(&found));
        let (more, failure) = resolve::by_identifier(&self.client, org, &pending).await;
        self.client.found.remember(&lease.receipt_id, &more);
        if let Some(e) = failure {
            return Err(Failure::from(e));
        }
        found.extend(more);
        let rest = resolve::without_known(&upstream, &known(&found));
        if crate::fhir::entries(&rest).next().is_none() {
            return Ok((found, true));
        }
        // If this answer is lost, the next attempt finds what it created by look-up.
        let mut ids = self
            .client
            .post_transaction(org, &rest)
            .await
            .map_err(Failure::from)?;
        ids.extend(found);
        Ok((ids, true))
    }
}

/// fullUrl → `Type/id` of resources SATUSEHAT holds.
fn known(found: &[ServerId]) -> std::collections::HashMap<String, String> {
    found
        .iter()
        .filter_map(|s| Some((s.full_url.clone()?, format!("{}/{}", s.resource_type, s.id))))
        .collect()
}

enum Failure {
    Retry {
        error: String,
        http_status: Option<u16>,
        retry_after: Option<Duration>,
    },
    Dead {
        error: String,
        outcome: Value,
        http_status: Option<u16>,
    },
}

impl From<CallError> for Failure {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Transient {
                message,
                http_status,
                retry_after,
            } => Failure::Retry {
                error: message,
                http_status,
                retry_after,
            },
            CallError::Rejected {
                message,
                http_status,
                outcome,
            } => Failure::Dead {
                error: message,
                outcome,
                http_status: Some(http_status),
            },
            // Missing credentials are the operator's to fix; the record waits.
            CallError::Config(message) => Failure::Retry {
                error: message,
                http_status: None,
                retry_after: Some(Duration::from_secs(300)),
            },
        }
    }
}
