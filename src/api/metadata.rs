//! What the server offers: the FHIR `CapabilityStatement` (`GET /fhir/metadata`) for the
//! FHIR endpoints, an OpenAPI document (`GET /openapi.json`) for the others, and Prometheus
//! metrics (`GET /metrics`). Tests hold both documents to the routes that really exist.

use super::AppState;
use super::error::fhir_json;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

/// The OpenAPI 3 document of the non-FHIR endpoints (ingest, receipts, admin, token,
/// operations). Kept as a file so it reads like the API reference it is.
const OPENAPI: &str = include_str!("openapi.json");

pub async fn capability_statement(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let base = state.auth.base_url(&req);
    let record_types: Vec<&str> = state.mappings.record_types().map(|r| r.name()).collect();
    fhir_json(
        StatusCode::OK,
        &capability(&base, &state.auth.token_url(&req), &record_types),
    )
}

/// Resource types facility systems push one at a time (`POST /fhir/{Type}`) — those that
/// carry a SATUSEHAT identifier of their organization. Any other type is taken the same way.
const PUSHED: &[&str] = &[
    "AllergyIntolerance",
    "CarePlan",
    "ClinicalImpression",
    "Composition",
    "Condition",
    "DiagnosticReport",
    "Encounter",
    "EpisodeOfCare",
    "Immunization",
    "MedicationDispense",
    "MedicationRequest",
    "Observation",
    "Procedure",
    "ServiceRequest",
    "Specimen",
];

/// The CapabilityStatement for a server reachable at `base`, whose token endpoint is
/// `token_url` (the `aud` client assertions must name: [`super::auth::AuthConfig::token_url`],
/// the same URL `/.well-known/smart-configuration` gives).
pub fn capability(base: &str, token_url: &str, record_types: &[&str]) -> Value {
    let fhir_base = format!("{base}/fhir");
    let validate = json!({
        "name": "validate",
        "definition": "http://hl7.org/fhir/OperationDefinition/Resource-validate",
        "documentation": "Offline validation against FHIR R4, the SATUSEHAT profiles and SATUSEHAT's rules (rule numbers in the OperationOutcome). Accepts a resource, a Bundle, NDJSON or a Parameters; needs a facility key."
    });
    let export = json!({
        "name": "export",
        "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export",
        "documentation": "Bulk Data $export (async): _since, _type; NDJSON per resource type. Needs a token with system/*.read."
    });
    let mut resources = vec![
        json!({
            "type": "Bundle",
            "interaction": [{"code": "search-type", "documentation": "The feed of delivered Bundles, oldest first, with next links."}],
            "searchParam": [
                {"name": "_since", "type": "date", "documentation": "Delivered at or after this instant."},
                {"name": "_count", "type": "number", "documentation": "Page size (default 50, at most 500)."},
                {"name": "_cursor", "type": "string", "documentation": "Opaque position in delivery-commit order; follow the `next` link rather than building it."}
            ]
        }),
        json!({
            "type": "Organization",
            "operation": [export]
        }),
    ];
    let pushed = PUSHED.iter().map(|t| {
        json!({
            "type": t,
            "interaction": [{"code": "create", "documentation": "A facility system pushes one resource it built (facility key): validated, queued and delivered to SATUSEHAT; sent again changed, a correction."}]
        })
    });
    resources.extend(pushed);
    json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": crate::time::millis_to_utc(crate::time::now_millis()),
        "publisher": "gerbang",
        "kind": "instance",
        "software": {"name": "gerbang", "version": env!("CARGO_PKG_VERSION")},
        "implementation": {
            "description": format!(
                "gerbang: ILP primary-care records to SATUSEHAT. Record types pushed at {base}/ingest/{{type}} (see {base}/openapi.json): {}",
                record_types.join(", ")
            ),
            "url": fhir_base
        },
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "instantiates": ["http://hl7.org/fhir/uv/bulkdata/CapabilityStatement/bulk-data"],
        "rest": [{
            "mode": "server",
            "security": {
                "service": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/restful-security-service", "code": "SMART-on-FHIR"}]}],
                "description": "Pull clients: SMART Backend Services (signed JWT client assertion, private_key_jwt) at the token endpoint; facility systems: API keys.",
                "extension": [{
                    "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                    "extension": [{"url": "token", "valueUri": token_url}]
                }]
            },
            "resource": resources,
            "interaction": [
                {"code": "transaction", "documentation": "POST /fhir: a facility system's transaction Bundle (facility key): validated, committed (202 with a receipt), delivered to SATUSEHAT."},
                {"code": "batch", "documentation": "POST /fhir with a batch Bundle whose entries are transaction Bundles: each pushed on its own; a batch-response, entry by entry."}
            ],
            "operation": [validate, export]
        }]
    })
}

pub async fn openapi() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(OPENAPI)
}

pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    match &state.metrics {
        Some(handle) => HttpResponse::Ok()
            .content_type("text/plain; version=0.0.4")
            .body(handle.render()),
        None => HttpResponse::NotFound().finish(),
    }
}
