//! Liveness (the process answers) and readiness (the store answers).

use super::AppState;
use actix_web::{HttpResponse, web};
use serde_json::json;

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    match state.store.counts().await {
        Ok(counts) => {
            let queue: serde_json::Map<String, serde_json::Value> = counts
                .into_iter()
                .map(|(s, n)| (s.as_str().to_string(), json!(n)))
                .collect();
            HttpResponse::Ok().json(json!({"status": "ready", "receipts": queue}))
        }
        Err(_) => HttpResponse::ServiceUnavailable().json(json!({"status": "store unavailable"})),
    }
}
