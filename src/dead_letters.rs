//! Dead letters: records SATUSEHAT refused for good. An operator lists them, inspects one
//! (the raw record, the Bundle, SATUSEHAT's OperationOutcome, every attempt), replays them
//! after a fix — re-mapped with the *current* mappings and validated again, so a corrected
//! mapping or terminology table takes effect — or discards one with a reason. Every replay
//! and discard is audited.
//!
//! One implementation for the admin API and the CLI. A replayed record keeps its receipt and
//! its deterministic resource identifiers: SATUSEHAT recognises anything it already holds
//! (20002) instead of creating it twice. A replay maps and sends for the facility's
//! organization as registered *now*: an operator who fixed a facility's organization
//! replays its dead letters under the fixed one. A dead cancellation is sent again as it was.

use crate::fhir::Outcome;
use crate::mapping::{Mappings, Sender};
use crate::profile::{Context, Validator};
use crate::store::{
    Attempt, AuditEvent, Payload, Receipt, ReceiptFilter, Status, Store, StoreError,
};
use crate::time::now_millis;
use serde::Serialize;
use thiserror::Error;

/// At most this many dead letters are replayed by one "replay all matching" request.
pub const MAX_BATCH: usize = 10_000;

#[derive(Debug, Error)]
pub enum DeadLetterError {
    #[error("no receipt {0}")]
    NotFound(String),
    #[error("receipt {id} is {status}, not a dead letter; only dead letters can be {verb}")]
    NotDead {
        id: String,
        status: &'static str,
        verb: &'static str,
    },
    #[error(
        "the raw record of receipt {0} was pruned (retention); it cannot be re-mapped — ask the facility to send it again under a new local id"
    )]
    Pruned(String),
    #[error(
        "the facility {0} of this record is no longer registered; register it again (`gerbang facility add`) to replay"
    )]
    UnknownFacility(String),
    #[error("the current mappings still refuse this record ({} error(s)); fix the mapping or the record first", .0.error_count())]
    StillInvalid(Outcome),
    #[error(
        "re-mapping gives local id `{now}` instead of `{before}`; a replay must keep the record's identity"
    )]
    IdentityChanged { before: String, now: String },
    #[error("a discard needs a reason")]
    NoReason,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Everything an operator needs to decide about one record.
#[derive(Debug, Serialize)]
pub struct Inspection {
    pub receipt: Receipt,
    /// None once pruned.
    pub payload: Option<Payload>,
    pub attempts: Vec<Attempt>,
}

/// What "replay all matching" did.
#[derive(Debug, Default, Serialize)]
pub struct BatchReplay {
    pub replayed: Vec<String>,
    pub failed: Vec<FailedReplay>,
}

#[derive(Debug, Serialize)]
pub struct FailedReplay {
    pub receipt: String,
    pub reason: String,
    /// The issues the current mappings or the validator report, when that is why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<serde_json::Value>,
}

pub struct DeadLetters<'a> {
    pub store: &'a Store,
    pub mappings: &'a Mappings,
    pub validator: &'a Validator,
}

impl DeadLetters<'_> {
    /// Dead letters matching `filter` (its status is ignored), newest first.
    pub async fn list(
        &self,
        filter: &ReceiptFilter,
        limit: usize,
    ) -> Result<Vec<Receipt>, StoreError> {
        let filter = ReceiptFilter {
            status: Some(Status::Dead),
            ..filter.clone()
        };
        self.store.list_receipts(&filter, limit).await
    }

    /// Any receipt with its payload and attempts (dead letters, and the records around them).
    pub async fn inspect(&self, receipt_id: &str) -> Result<Inspection, DeadLetterError> {
        let receipt = self
            .store
            .receipt(receipt_id)
            .await?
            .ok_or_else(|| DeadLetterError::NotFound(receipt_id.to_string()))?;
        let payload = self.store.payload(receipt_id).await?;
        let attempts = self.store.attempts(receipt_id).await?;
        Ok(Inspection {
            receipt,
            payload,
            attempts,
        })
    }

    /// Re-map a dead letter with the current mappings, validate it, and queue it again.
    pub async fn replay(&self, receipt_id: &str, actor: &str) -> Result<Receipt, DeadLetterError> {
        let receipt = self.dead(receipt_id, "replayed").await?;
        self.replay_dead(receipt, actor).await
    }

    /// [`Self::replay`] of a receipt already read as dead (should it no longer be, the store
    /// refuses the requeue and the error says what it is now).
    async fn replay_dead(&self, receipt: Receipt, actor: &str) -> Result<Receipt, DeadLetterError> {
        let receipt_id = receipt.id.as_str();
        let facility = self
            .store
            .facility(&receipt.facility_id)
            .await?
            .ok_or_else(|| DeadLetterError::UnknownFacility(receipt.facility_id.clone()))?;
        // A cancellation that SATUSEHAT refused has nothing to re-map.
        let bundle = match receipt.sending_revision {
            Some(_) => Some(self.remap(&receipt, &facility).await?),
            None => None,
        };
        let now = now_millis();
        if !self
            .store
            .requeue(receipt_id, bundle.as_ref(), &facility.organization_id, now)
            .await?
        {
            // Replayed or discarded by someone else meanwhile.
            return Err(self.not_dead(receipt_id, "replayed").await);
        }
        self.store
            .audit(AuditEvent {
                at: now,
                actor: actor.to_string(),
                action: "replay".into(),
                receipt_id: Some(receipt_id.to_string()),
                organization_id: Some(facility.organization_id.clone()),
                detail: (facility.organization_id != receipt.organization_id).then(|| {
                    format!(
                        "organization {} (was {})",
                        facility.organization_id, receipt.organization_id
                    )
                }),
            })
            .await?;
        self.store
            .receipt(receipt_id)
            .await?
            .ok_or_else(|| DeadLetterError::NotFound(receipt_id.to_string()))
    }

    /// The newest revision mapped again with the current mappings, for the facility as it is
    /// registered now, and validated.
    async fn remap(
        &self,
        receipt: &Receipt,
        facility: &crate::store::Facility,
    ) -> Result<serde_json::Value, DeadLetterError> {
        let payload = self
            .store
            .payload(&receipt.id)
            .await?
            .ok_or_else(|| DeadLetterError::Pruned(receipt.id.clone()))?;
        let sender = Sender {
            organization_id: &facility.organization_id,
            location_id: &facility.location_id,
        };
        let mapped = if receipt.record_type == crate::fhir_in::RECORD_TYPE {
            // FHIR the facility built itself: prepared again, as it came in.
            crate::fhir_in::prepare(&payload.raw, &facility.organization_id)
                .map(|p| crate::mapping::Mapped {
                    local_id: p.local_id,
                    bundle: p.bundle,
                })
                .map_err(|r| DeadLetterError::StillInvalid(r.into_outcome()))?
        } else {
            self.mappings
                .map_record_as(
                    &receipt.record_type,
                    receipt.format.as_deref(),
                    &payload.raw,
                    &sender,
                )
                .map_err(DeadLetterError::StillInvalid)?
        };
        if mapped.local_id != receipt.local_id {
            return Err(DeadLetterError::IdentityChanged {
                before: receipt.local_id.clone(),
                now: mapped.local_id,
            });
        }
        let validation = self.validator.validate(
            &mapped.bundle,
            &Context {
                organization_id: Some(&facility.organization_id),
                now: chrono::Utc::now(),
            },
        );
        if validation.has_errors() {
            return Err(DeadLetterError::StillInvalid(validation));
        }
        Ok(mapped.bundle)
    }

    /// Replay every dead letter matching `filter`; one that still fails does not stop the rest.
    pub async fn replay_matching(
        &self,
        filter: &ReceiptFilter,
        actor: &str,
    ) -> Result<BatchReplay, StoreError> {
        let mut out = BatchReplay::default();
        for r in self.list(filter, MAX_BATCH).await? {
            let id = r.id.clone();
            match self.replay_dead(r, actor).await {
                Ok(_) => out.replayed.push(id),
                Err(DeadLetterError::Store(e)) => return Err(e),
                Err(e) => out.failed.push(FailedReplay {
                    receipt: id,
                    reason: e.to_string(),
                    outcome: match &e {
                        DeadLetterError::StillInvalid(o) => Some(o.to_operation_outcome()),
                        _ => None,
                    },
                }),
            }
        }
        Ok(out)
    }

    /// Give up on a dead letter for good, with the operator's reason.
    pub async fn discard(
        &self,
        receipt_id: &str,
        reason: &str,
        actor: &str,
    ) -> Result<Receipt, DeadLetterError> {
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(DeadLetterError::NoReason);
        }
        let receipt = self.dead(receipt_id, "discarded").await?;
        let now = now_millis();
        if !self.store.discard(receipt_id, reason, now).await? {
            return Err(self.not_dead(receipt_id, "discarded").await);
        }
        self.store
            .audit(AuditEvent {
                at: now,
                actor: actor.to_string(),
                action: "discard".into(),
                receipt_id: Some(receipt_id.to_string()),
                organization_id: Some(receipt.organization_id),
                detail: Some(reason.to_string()),
            })
            .await?;
        self.store
            .receipt(receipt_id)
            .await?
            .ok_or_else(|| DeadLetterError::NotFound(receipt_id.to_string()))
    }

    async fn dead(&self, receipt_id: &str, verb: &'static str) -> Result<Receipt, DeadLetterError> {
        match self.store.receipt(receipt_id).await? {
            None => Err(DeadLetterError::NotFound(receipt_id.to_string())),
            Some(r) if r.status == Status::Dead => Ok(r),
            Some(r) => Err(DeadLetterError::NotDead {
                id: receipt_id.to_string(),
                status: r.status.as_str(),
                verb,
            }),
        }
    }

    async fn not_dead(&self, receipt_id: &str, verb: &'static str) -> DeadLetterError {
        match self.dead(receipt_id, verb).await {
            Err(e) => e,
            // Still dead, yet the store refused: its payload was pruned in between.
            Ok(_) => DeadLetterError::Pruned(receipt_id.to_string()),
        }
    }
}
