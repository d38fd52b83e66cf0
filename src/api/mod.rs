//! The HTTP API (actix-web). Handlers stay thin: parse, call the stages, answer. Every error
//! is an OperationOutcome that names what to fix; there is no bare 500.
//!
//! | endpoint | for |
//! |---|---|
//! | `POST /ingest/{record-type}` | facility systems push a record, or a correction of one (API key); NDJSON for a batch |
//! | `POST /fhir`, `POST /fhir/{Type}`, `DELETE /fhir/{Type}?identifier=` | facility systems push SATUSEHAT FHIR they built ([`fhir_push`]) |
//! | `DELETE /ingest/{record-type}/{local-id}` | the facility cancels a record |
//! | `GET /receipts/{id}`, `GET /receipts` | the facility follows its records to SATUSEHAT ([`receipts`]) |
//! | `GET /events` | what became of its records, as a feed |
//! | `POST /fhir/$validate` | any FHIR R4 JSON (resource, Bundle, NDJSON, Parameters) → OperationOutcome |
//! | `GET /healthz`, `GET /readyz` | liveness and readiness |
//! | `GET /fhir/metadata`, `GET /openapi.json`, `GET /metrics` | what the server offers; Prometheus metrics |
//! | `/admin/…` | operators: dead letters, audit, facilities' webhooks ([`admin`]) |
//! | `POST /auth/token` | pull clients get an access token: SMART Backend Services ([`token`], [`auth`]) |
//! | `GET /.well-known/smart-configuration` | where the token endpoint is and what it accepts (also under `/fhir`) |
//! | `GET /fhir/Bundle`, `/fhir/$export`, `/fhir/$export-status/…`, `/fhir/$export-file/…` | pull clients: the `_since` feed and Bulk Data export ([`pull`]) |
//!
//! Before any handler, a request is measured: its URL's length and its rate ([`limits`]),
//! the time its body may take ([`body`]). What actix-http refuses before that — HTTP it
//! cannot parse, a head too large or too slow — gets an OperationOutcome too ([`wire`]).

pub mod admin;
pub mod auth;
pub mod batch;
pub mod body;
pub mod error;
pub mod explain;
pub mod fhir_push;
pub mod health;
pub mod ingest;
pub mod limits;
pub mod metadata;
pub mod pull;
pub mod push;
pub mod receipts;
pub mod request_id;
pub mod smart;
pub mod token;
pub mod validate;
pub mod wire;

use crate::mapping::Mappings;
use crate::profile::Validator;
use crate::store::Store;
use actix_web::web;
use std::sync::Arc;
use tokio::sync::Notify;

/// What handlers share.
pub struct AppState {
    pub mappings: Arc<Mappings>,
    pub validator: Arc<Validator>,
    pub store: Arc<Store>,
    /// Wakes the forwarder when a record is accepted.
    pub wake: Arc<Notify>,
    pub max_body_bytes: usize,
    /// How many records, and how many bytes, one batch request may carry.
    pub batch: batch::BatchLimits,
    /// Access tokens: their lifetime, the token endpoint's URL.
    pub auth: auth::AuthConfig,
    /// JSON depth and per-key rate limits.
    pub limits: Arc<limits::Limits>,
    /// Renders `/metrics`; None when another recorder owns the process (never in `serve`).
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// Bulk Data export: the files' folder, their lifetime, the worker's wake-up.
    pub exports: Arc<crate::pull::export::Exports>,
    /// This process's name (its readiness probe row).
    pub instance: String,
    /// Which fields of refused records produced SATUSEHAT's errors, once found.
    pub explained: explain::Explained,
    /// The web console's own state: sign-in attempts, the breakers it shows.
    pub console: crate::console::ConsoleState,
}

pub fn configure(state: web::Data<AppState>) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        cfg.app_data(state)
            // A malformed query or JSON body is answered like every other error.
            .app_data(web::QueryConfig::default().error_handler(|e, _| {
                error::ApiError::one(
                    actix_web::http::StatusCode::BAD_REQUEST,
                    crate::fhir::IssueCode::Invalid,
                    format!("bad query parameters: {e}"),
                )
                .into()
            }))
            .app_data(web::JsonConfig::default().error_handler(|e, _| {
                if let actix_web::error::JsonPayloadError::Payload(p) = &e
                    && let Some(text) = body::timed_out(p)
                {
                    return body::timeout_error(&text).into();
                }
                error::ApiError::one(
                    actix_web::http::StatusCode::BAD_REQUEST,
                    crate::fhir::IssueCode::Structure,
                    format!("bad JSON body: {e}"),
                )
                .into()
            }))
            .route("/ingest/{record_type}", web::post().to(ingest::ingest))
            .route(
                "/ingest/{record_type}/{local_id}",
                web::delete().to(ingest::cancel),
            )
            .route("/receipts", web::get().to(receipts::list))
            .route("/receipts/{id}", web::get().to(receipts::get))
            .route("/events", web::get().to(receipts::events))
            .route("/fhir/$validate", web::post().to(validate::validate))
            .route(
                "/fhir/{resource_type}/$validate",
                web::post().to(validate::validate_type),
            )
            .route("/fhir", web::post().to(fhir_push::bundle))
            .route("/fhir/{resource_type}", web::post().to(fhir_push::resource))
            .route("/fhir/{resource_type}", web::delete().to(fhir_push::cancel))
            .route("/admin/dead-letters", web::get().to(admin::list))
            .route(
                "/admin/dead-letters/replay",
                web::post().to(admin::replay_matching),
            )
            .route(
                "/admin/dead-letters/{id}/replay",
                web::post().to(admin::replay),
            )
            .route(
                "/admin/dead-letters/{id}/discard",
                web::post().to(admin::discard),
            )
            .route("/admin/receipts/{id}", web::get().to(admin::inspect))
            .route("/admin/audit", web::get().to(admin::audit))
            .route("/admin/webhooks", web::get().to(admin::webhooks))
            .route(
                "/admin/facilities/{id}/webhook",
                web::get().to(admin::get_webhook),
            )
            .route(
                "/admin/facilities/{id}/webhook",
                web::put().to(admin::set_webhook),
            )
            .route(
                "/admin/facilities/{id}/webhook",
                web::delete().to(admin::remove_webhook),
            )
            .route("/fhir/Bundle", web::get().to(pull::feed))
            .route("/fhir/$export", web::get().to(pull::export_system))
            .route(
                "/fhir/Organization/{id}/$export",
                web::get().to(pull::export_organization),
            )
            .route("/fhir/$export-status/{job}", web::get().to(pull::status))
            .route("/fhir/$export-status/{job}", web::delete().to(pull::cancel))
            .route("/fhir/$export-file/{job}/{file}", web::get().to(pull::file))
            .route("/auth/token", web::post().to(token::token))
            // Any other method: 405, in OAuth JSON like every answer of this path.
            .route("/auth/token", web::route().to(token::wrong_method))
            .route(
                "/.well-known/smart-configuration",
                web::get().to(token::smart_configuration),
            )
            .route(
                "/fhir/.well-known/smart-configuration",
                web::get().to(token::smart_configuration),
            )
            .route("/metrics", web::get().to(metadata::metrics))
            .route(
                "/fhir/metadata",
                web::get().to(metadata::capability_statement),
            )
            .route("/openapi.json", web::get().to(metadata::openapi))
            .route("/healthz", web::get().to(health::healthz))
            .route("/readyz", web::get().to(health::readyz))
            .default_service(web::to(error::not_found));
    }
}
