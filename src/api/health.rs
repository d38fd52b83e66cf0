//! Liveness (the process answers) and readiness (the store can take records: the data disk is
//! not nearly full, and a real write per probe succeeds, so a full disk or a read-only
//! database shows as not ready, with `Retry-After`).

use super::AppState;
use super::error::STORE_RETRY_AFTER_SECS;
use actix_web::{HttpResponse, web};
use serde_json::json;

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let unavailable = |what: &str, e: &dyn std::fmt::Display| {
        tracing::warn!(error = %e, "not ready: the store cannot {what}");
        HttpResponse::ServiceUnavailable()
            .insert_header(("Retry-After", STORE_RETRY_AFTER_SECS.to_string()))
            .json(json!({"status": format!("store cannot {what}"), "error": e.to_string()}))
    };
    if let Err(e) = state.store.check_room() {
        return unavailable("take new records", &e);
    }
    if let Err(e) = state.store.probe_write(&state.instance).await {
        return unavailable("write", &e);
    }
    match state.store.counts().await {
        Ok(counts) => {
            let queue: serde_json::Map<String, serde_json::Value> = counts
                .into_iter()
                .map(|(s, n)| (s.as_str().to_string(), json!(n)))
                .collect();
            HttpResponse::Ok().json(json!({"status": "ready", "receipts": queue}))
        }
        Err(e) => unavailable("read", &e),
    }
}
