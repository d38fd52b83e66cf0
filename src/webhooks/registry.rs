//! Registering a facility's webhook — one implementation for the admin API and the CLI: the
//! URL must be http(s), the secret a Standard Webhooks secret (one is made when none is
//! given, and shown once), the facility must exist. Every change is audited.

use super::signature;
use crate::store::{AuditEvent, Store, StoreError, Webhook};
use crate::time::now_millis;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum WebhookError {
    #[error("no facility {0}; register it first (`gerbang facility add`)")]
    UnknownFacility(String),
    #[error(
        "the webhook URL must be an http:// or https:// URL such as https://simpus.example/gerbang/events, not `{0}`"
    )]
    BadUrl(String),
    #[error("{0}")]
    BadSecret(#[from] signature::SecretError),
    #[error("facility {0} has no webhook")]
    NoWebhook(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A webhook as registered; `secret` is Some only when gerbang made it (shown once).
pub struct Registered {
    pub webhook: Webhook,
    pub new_secret: Option<String>,
}

pub async fn register(
    store: &Store,
    facility_id: &str,
    url: &str,
    secret: Option<&str>,
    actor: &str,
) -> Result<Registered, WebhookError> {
    let url = url.trim();
    let parsed = reqwest::Url::parse(url).map_err(|_| WebhookError::BadUrl(url.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(WebhookError::BadUrl(url.to_string()));
    }
    let facility = store
        .facility(facility_id)
        .await?
        .ok_or_else(|| WebhookError::UnknownFacility(facility_id.to_string()))?;
    let (secret, new_secret) = match secret {
        Some(s) => {
            signature::check_secret(s.trim())?;
            (s.trim().to_string(), None)
        }
        None => {
            let s = signature::new_secret();
            (s.clone(), Some(s))
        }
    };
    let now = now_millis();
    store.set_webhook(facility_id, url, &secret, now).await?;
    store
        .audit(AuditEvent {
            at: now,
            actor: actor.to_string(),
            action: "webhook".into(),
            receipt_id: None,
            organization_id: Some(facility.organization_id),
            detail: Some(format!("facility {facility_id}: {url}")),
        })
        .await?;
    let webhook = store
        .webhook(facility_id)
        .await?
        .ok_or_else(|| WebhookError::NoWebhook(facility_id.to_string()))?;
    Ok(Registered {
        webhook,
        new_secret,
    })
}

pub async fn remove(store: &Store, facility_id: &str, actor: &str) -> Result<(), WebhookError> {
    if !store.remove_webhook(facility_id).await? {
        return Err(WebhookError::NoWebhook(facility_id.to_string()));
    }
    store
        .audit(AuditEvent {
            at: now_millis(),
            actor: actor.to_string(),
            action: "webhook-removed".into(),
            receipt_id: None,
            organization_id: None,
            detail: Some(format!("facility {facility_id}")),
        })
        .await?;
    Ok(())
}

/// A webhook's state as JSON (never its secret).
pub fn view(w: &Webhook) -> serde_json::Value {
    use crate::time::millis_to_utc;
    serde_json::json!({
        "facility_id": w.facility_id,
        "url": w.url,
        "created_at": millis_to_utc(w.created_at),
        "updated_at": millis_to_utc(w.updated_at),
        "sent_seq": w.sent_seq,
        "backlog": w.backlog,
        "attempts": w.attempts,
        "failing_since": w.failing_since.map(millis_to_utc),
        "next_attempt_at": (w.attempts > 0).then(|| millis_to_utc(w.next_attempt_at)),
        "last_error": w.last_error,
        "last_status": w.last_status,
        "last_success_at": w.last_success_at.map(millis_to_utc),
        "given_up": w.given_up,
    })
}
