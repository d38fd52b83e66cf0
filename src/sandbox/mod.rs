//! A SATUSEHAT look-alike for local testing, demos and the test suite — a real HTTP server,
//! not a mock. It speaks SATUSEHAT's shapes (satusehat.md §1): the Apigee-style token
//! endpoint, Patient/Practitioner search by NIK, newborn registration with its non-FHIR
//! answer, transaction Bundles validated by the same profile engine gerbang uses, 20002 for a
//! resource whose identifier it already holds, and OperationOutcomes with
//! `(RuleNumber: NNNNN)`. It records what it accepted so tests can count deliveries by
//! identifier, and it injects faults on request: error rate, latency, 429 with Retry-After,
//! connection resets (before or after the call is processed), short-lived tokens
//! ([`faults`]), and tokens revoked all at once.
//!
//! Admin endpoints (no token needed):
//!
//! | endpoint | does |
//! |---|---|
//! | `GET /sandbox/stats` | counters of what happened ([`Stats`]) |
//! | `GET /sandbox/received` | every resource held, with its identifiers |
//! | `GET`/`PUT /sandbox/faults` | the faults injected from now on ([`Faults`]) |
//! | `POST /sandbox/revoke-tokens` | forget every token issued so far, as SATUSEHAT does after a key rotation or a restart of its gateway: each request still carrying one is answered 401 until its client fetches a new token. Answers `{"revoked": n}` |

pub mod faults;

use crate::fhir::{self, Issue, IssueCode, Outcome};
use crate::profile::{Context, Validator};
use actix_web::{HttpRequest, HttpResponse, web};
use faults::Faults;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A client the sandbox accepts at its token endpoint, and the organization it acts for.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct SandboxClient {
    pub client_id: String,
    pub client_secret: String,
    pub organization_id: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct SandboxConfig {
    pub clients: Vec<SandboxClient>,
    /// Lifetime of issued tokens, in seconds (SATUSEHAT: about an hour).
    pub token_ttl_secs: u64,
    /// NIKs the sandbox pretends not to know (every other well-formed NIK is "registered").
    pub unknown_niks: Vec<String>,
    pub faults: Faults,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            clients: vec![demo_client()],
            token_ttl_secs: 3599,
            unknown_niks: Vec::new(),
            faults: Faults::default(),
        }
    }
}

/// The organization the zero-configuration gateway and sandbox share.
pub const DEMO_ORGANIZATION: &str = "1000000001";

pub fn demo_client() -> SandboxClient {
    SandboxClient {
        client_id: "gerbang-demo".into(),
        client_secret: "gerbang-demo-secret".into(),
        organization_id: DEMO_ORGANIZATION.into(),
    }
}

/// The demo facility's Location in the sandbox.
pub fn demo_location() -> String {
    fhir::uuid5("sandbox/location/posyandu-demo").to_string()
}

struct Stored {
    resource_type: String,
    resource: Value,
}

#[derive(Default)]
struct State {
    tokens: HashMap<String, (String, Instant)>,
    resources: HashMap<String, Stored>,
    /// `(resourceType, system|value)` → id.
    by_identifier: HashMap<(String, String), String>,
    newborns: HashMap<String, String>,
    stats: Stats,
}

/// What happened, for tests and demos (`GET /sandbox/stats`).
#[derive(Debug, Default, Clone, Serialize)]
pub struct Stats {
    pub requests: u64,
    pub tokens_issued: u64,
    /// Tokens forgotten by `POST /sandbox/revoke-tokens`.
    pub tokens_revoked: u64,
    /// Requests answered 401: no token, or one expired, revoked or never issued.
    pub unauthorized: u64,
    pub transactions_accepted: u64,
    pub transactions_rejected: u64,
    pub duplicates: u64,
    /// Every injected 503, 429 and connection reset.
    pub faults_injected: u64,
    /// Injected connection resets, before or after processing (also in `faults_injected`).
    pub resets_injected: u64,
    /// Transaction Bundles the sandbox accepted and stored whose answer a reset then cut
    /// off: the client cannot know they arrived.
    pub responses_lost: u64,
    pub resources_created: u64,
}

pub struct Sandbox {
    config: SandboxConfig,
    faults: Mutex<Faults>,
    validator: Arc<Validator>,
    state: Mutex<State>,
}

impl Sandbox {
    pub fn new(config: SandboxConfig, validator: Arc<Validator>) -> Arc<Sandbox> {
        let faults = Mutex::new(config.faults.clone());
        Arc::new(Sandbox {
            config,
            faults,
            validator,
            state: Mutex::new(State::default()),
        })
    }

    fn client(&self, id: &str, secret: &str) -> Option<&SandboxClient> {
        self.config
            .clients
            .iter()
            .find(|c| c.client_id == id && c.client_secret == secret)
    }

    /// The organization of a valid bearer token.
    fn authorize(&self, req: &HttpRequest) -> Result<String, HttpResponse> {
        let token = req
            .headers()
            .get("Authorization")
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.strip_prefix("Bearer "))
            .unwrap_or("");
        let mut state = self.state.lock().expect("sandbox state");
        match state.tokens.get(token) {
            Some((org, expires)) if Instant::now() < *expires => Ok(org.clone()),
            _ => {
                state.stats.unauthorized += 1;
                Err(HttpResponse::Unauthorized()
                    .content_type("application/json")
                    .json(json!({"fault": {"faultstring": "Invalid access token", "detail": {"errorcode": "oauth.v2.InvalidAccessToken"}}})))
            }
        }
    }

    /// Forget every token issued so far; how many there were.
    pub fn revoke_tokens(&self) -> u64 {
        let mut state = self.state.lock().expect("sandbox state");
        let n = state.tokens.len() as u64;
        state.tokens.clear();
        state.stats.tokens_revoked += n;
        n
    }

    fn nik_known(&self, nik: &str) -> bool {
        fhir::nik::parse(nik).is_ok() && !self.config.unknown_niks.iter().any(|n| n == nik)
    }

    pub fn stats(&self) -> Stats {
        self.state.lock().expect("sandbox state").stats.clone()
    }
}

/// A deterministic IHS-style number: the sandbox "knows" every well-formed NIK.
fn ihs_number(prefix: &str, nik: &str) -> String {
    let h = fhir::uuid5(&format!("sandbox/{prefix}/{nik}")).as_u128();
    format!("{prefix}{:011}", h % 100_000_000_000)
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/oauth2/v1/accesstoken", web::post().to(token))
        .route("/fhir-r4/v1", web::post().to(transaction))
        .route("/fhir-r4/v1/", web::post().to(transaction))
        .route("/fhir-r4/v1/Patient", web::post().to(create_patient))
        .route("/fhir-r4/v1/{rt}", web::get().to(search))
        .route("/fhir-r4/v1/{rt}/{id}", web::get().to(read))
        .route("/sandbox/stats", web::get().to(stats))
        .route("/sandbox/received", web::get().to(received))
        .route("/sandbox/faults", web::get().to(get_faults))
        .route("/sandbox/faults", web::put().to(set_faults))
        .route("/sandbox/revoke-tokens", web::post().to(revoke_tokens))
        .route(
            "/healthz",
            web::get().to(|| async {
                HttpResponse::Ok().json(json!({"status": "ok", "service": "gerbang-sandbox"}))
            }),
        );
}

fn outcome_response(status: actix_web::http::StatusCode, outcome: &Outcome) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("application/fhir+json")
        .json(outcome.to_operation_outcome())
}

/// What every FHIR call goes through before it is processed: the injected latency (the
/// request on its way — a token may expire or be revoked meanwhile, as upstream), the token
/// check (401), then maybe an injected error or reset instead of processing the call
/// (`Err`). `Ok((org, lose))`: process the call for `org`; if `lose`, cut off its answer
/// (pass it through [`answer`]).
async fn admit(sb: &Sandbox, req: &HttpRequest) -> Result<(String, bool), HttpResponse> {
    sb.state.lock().expect("sandbox state").stats.requests += 1;
    let plan = sb.faults.lock().expect("faults").plan();
    if let Some(d) = plan.delay {
        tokio::time::sleep(d).await;
    }
    let org = sb.authorize(req)?;
    if plan.loses_answer() {
        return Ok((org, true));
    }
    let Some(resp) = plan.response() else {
        return Ok((org, false));
    };
    let mut state = sb.state.lock().expect("sandbox state");
    state.stats.faults_injected += 1;
    if plan.resets() {
        state.stats.resets_injected += 1;
    }
    Err(resp)
}

/// The answer of a processed call, cut off by a connection reset if `lose`.
async fn answer(sb: &Sandbox, lose: bool, resp: HttpResponse) -> HttpResponse {
    if !lose {
        return resp;
    }
    {
        let mut state = sb.state.lock().expect("sandbox state");
        state.stats.faults_injected += 1;
        state.stats.resets_injected += 1;
    }
    faults::lose(resp).await
}

#[derive(Deserialize)]
struct TokenForm {
    client_id: Option<String>,
    client_secret: Option<String>,
}

async fn token(
    sb: web::Data<Arc<Sandbox>>,
    query: web::Query<HashMap<String, String>>,
    form: web::Form<TokenForm>,
) -> HttpResponse {
    if query.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return HttpResponse::BadRequest().json(json!({"error": "unsupported_grant_type"}));
    }
    let (Some(id), Some(secret)) = (form.client_id.as_deref(), form.client_secret.as_deref())
    else {
        return HttpResponse::BadRequest().json(json!({"error": "invalid_request", "error_description": "Please provide Client ID (RuleNumber: 20009)"}));
    };
    let Some(client) = sb.client(id, secret) else {
        return HttpResponse::Unauthorized().json(
            json!({"error": "invalid_client", "error_description": "Invalid client credentials"}),
        );
    };
    let ttl = sb
        .faults
        .lock()
        .expect("faults")
        .token_ttl_secs
        .unwrap_or(sb.config.token_ttl_secs);
    let access_token = uuid::Uuid::new_v4().simple().to_string();
    {
        let mut state = sb.state.lock().expect("sandbox state");
        state.tokens.insert(
            access_token.clone(),
            (
                client.organization_id.clone(),
                Instant::now() + Duration::from_secs(ttl),
            ),
        );
        state.stats.tokens_issued += 1;
    }
    // Apigee writes every value as a string.
    HttpResponse::Ok().json(json!({
        "refresh_token_expires_in": "0",
        "api_product_list": "[api-dev]",
        "api_product_list_json": ["api-dev"],
        "organization_name": "gerbang-sandbox",
        "developer.email": "sandbox@gerbang.invalid",
        "token_type": "BearerToken",
        "issued_at": crate::time::now_millis().to_string(),
        "client_id": client.client_id,
        "access_token": access_token,
        "application_name": "gerbang-sandbox",
        "scope": "",
        "expires_in": ttl.to_string(),
        "refresh_count": "0",
        "status": "approved"
    }))
}

async fn search(
    sb: web::Data<Arc<Sandbox>>,
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<HashMap<String, String>>,
) -> HttpResponse {
    let lose = match admit(&sb, &req).await {
        Ok((_, lose)) => lose,
        Err(r) => return r,
    };
    let rt = path.into_inner();
    let Some((system, value)) = query.get("identifier").and_then(|i| i.split_once('|')) else {
        let resp = outcome_response(
            actix_web::http::StatusCode::BAD_REQUEST,
            &Outcome::one(Issue::error(
                IssueCode::NotSupported,
                "the sandbox searches by identifier=system|value only",
            )),
        );
        return answer(&sb, lose, resp).await;
    };
    let mut found = Vec::new();
    match (rt.as_str(), system) {
        ("Patient", fhir::system::NIK) if sb.nik_known(value) => {
            let id = ihs_number("P", value);
            found.push(json!({"resourceType": "Patient", "id": id, "identifier": [
                {"system": fhir::system::IHS_PATIENT, "value": id}, {"system": fhir::system::NIK, "value": value}],
                "meta": {"profile": ["https://fhir.kemkes.go.id/r4/StructureDefinition/Patient|4.0.1"]}}));
        }
        ("Practitioner", fhir::system::NIK) if sb.nik_known(value) => {
            let id = ihs_number("1", value);
            found.push(json!({"resourceType": "Practitioner", "id": id, "identifier": [
                {"system": fhir::system::IHS_PRACTITIONER, "value": id}, {"system": fhir::system::NIK, "value": value}]}));
        }
        _ => {
            let state = sb.state.lock().expect("sandbox state");
            if let Some(id) = state
                .by_identifier
                .get(&(rt.clone(), format!("{system}|{value}")))
            {
                if let Some(s) = state.resources.get(id) {
                    found.push(s.resource.clone());
                }
            }
        }
    }
    let entries: Vec<Value> = found
        .into_iter()
        .map(|r| json!({"fullUrl": format!("{}/{}", rt, r["id"].as_str().unwrap_or("")), "resource": r, "search": {"mode": "match"}}))
        .collect();
    let resp = HttpResponse::Ok()
        .content_type("application/fhir+json")
        .json(json!({"resourceType": "Bundle", "type": "searchset", "total": entries.len(), "entry": entries}));
    answer(&sb, lose, resp).await
}

async fn read(
    sb: web::Data<Arc<Sandbox>>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    if let Err(r) = sb.authorize(&req) {
        return r;
    }
    let (rt, id) = path.into_inner();
    let state = sb.state.lock().expect("sandbox state");
    match state.resources.get(&id) {
        Some(s) if s.resource_type == rt => HttpResponse::Ok()
            .content_type("application/fhir+json")
            .json(&s.resource),
        _ => outcome_response(
            actix_web::http::StatusCode::NOT_FOUND,
            &Outcome::one(
                Issue::error(IssueCode::NotFound, format!("Resource not found {rt}/{id}"))
                    .rule(20007),
            ),
        ),
    }
}

/// Newborn registration by the mother's NIK; answers SATUSEHAT's non-FHIR JSON.
async fn create_patient(
    sb: web::Data<Arc<Sandbox>>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let lose = match admit(&sb, &req).await {
        Ok((_, lose)) => lose,
        Err(r) => return r,
    };
    let resp = register_newborn(&sb, &body);
    answer(&sb, lose, resp).await
}

fn register_newborn(sb: &Sandbox, body: &[u8]) -> HttpResponse {
    let Ok(patient) = serde_json::from_slice::<Value>(body) else {
        return outcome_response(
            actix_web::http::StatusCode::BAD_REQUEST,
            &Outcome::one(
                Issue::error(IssueCode::Structure, "Invalid JSON Payload Format").rule(20006),
            ),
        );
    };
    let Some(mother) = fhir::identifier_value(&patient, fhir::system::NIK_IBU) else {
        return outcome_response(
            actix_web::http::StatusCode::BAD_REQUEST,
            &Outcome::one(
                Issue::error(
                    IssueCode::BusinessRule,
                    "the sandbox registers newborns by nik-ibu only",
                )
                .at("Patient.identifier"),
            ),
        );
    };
    let key = format!(
        "{mother}|{}|{}",
        patient["birthDate"], patient["multipleBirthInteger"]
    );
    let mut state = sb.state.lock().expect("sandbox state");
    let next = state.newborns.len();
    let id = state
        .newborns
        .entry(key)
        .or_insert_with(|| ihs_number("P", &format!("newborn-{mother}-{next}")))
        .clone();
    HttpResponse::Created()
        .json(json!({"create_patient": {"success": true, "data": {"patient_id": id}}}))
}

async fn transaction(
    sb: web::Data<Arc<Sandbox>>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let (org, lose) = match admit(&sb, &req).await {
        Ok(admitted) => admitted,
        Err(r) => return r,
    };
    let resp = process_transaction(&sb, &org, &body);
    if lose && resp.status().is_success() {
        // Stored, and the client will never hear of it.
        sb.state.lock().expect("sandbox state").stats.responses_lost += 1;
    }
    answer(&sb, lose, resp).await
}

/// Validate and store a transaction Bundle, or say why not.
fn process_transaction(sb: &Sandbox, org: &str, body: &[u8]) -> HttpResponse {
    use actix_web::http::StatusCode;
    let reject = |sb: &Sandbox, status: StatusCode, outcome: Outcome| {
        sb.state
            .lock()
            .expect("sandbox state")
            .stats
            .transactions_rejected += 1;
        outcome_response(status, &outcome)
    };
    let bundle: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(_) => {
            return reject(
                sb,
                StatusCode::BAD_REQUEST,
                Outcome::one(
                    Issue::error(IssueCode::Structure, "Invalid JSON Payload Format").rule(20006),
                ),
            );
        }
    };
    if fhir::resource_type(&bundle) != Some("Bundle") || bundle["type"] != "transaction" {
        return reject(
            sb,
            StatusCode::BAD_REQUEST,
            Outcome::one(Issue::error(
                IssueCode::Invalid,
                "POST to the base URL takes a transaction Bundle",
            )),
        );
    }
    // An injected poison record: upstream fails on it every time, and only on it.
    let poison = sb.faults.lock().expect("faults").poison_identifiers.clone();
    if !poison.is_empty()
        && fhir::entries(&bundle).any(|e| {
            e.resource.is_some_and(|r| {
                r["identifier"].as_array().is_some_and(|ids| {
                    ids.iter().any(|i| {
                        i["value"]
                            .as_str()
                            .is_some_and(|v| poison.iter().any(|p| p == v))
                    })
                })
            })
        })
    {
        sb.state
            .lock()
            .expect("sandbox state")
            .stats
            .faults_injected += 1;
        return outcome_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            &Outcome::one(Issue::error(
                IssueCode::Exception,
                "sandbox: injected internal error for this record (poison)",
            )),
        );
    }
    // The same profile engine as the gateway: what passes locally passes here.
    let ctx = Context {
        organization_id: Some(org),
        now: chrono::Utc::now(),
    };
    let mut outcome = sb.validator.validate(&bundle, &ctx);
    outcome.issues.retain(|i| i.is_error());
    if outcome.has_errors() {
        return reject(sb, StatusCode::BAD_REQUEST, outcome);
    }

    let mut state = sb.state.lock().expect("sandbox state");
    // References to people must name ones SATUSEHAT knows.
    let mut missing = Outcome::new();
    let full_urls: HashSet<&str> = fhir::entries(&bundle).filter_map(|e| e.full_url).collect();
    for e in fhir::entries(&bundle) {
        let Some(resource) = e.resource else { continue };
        for (path, reference) in fhir::references(resource) {
            if full_urls.contains(reference) {
                continue;
            }
            // People are "registered" by NIK (see `ihs_number`); their ids have the IHS shape.
            let digits = |s: &str| s.len() == 11 && s.bytes().all(|b| b.is_ascii_digit());
            let known = match reference.split_once('/') {
                Some(("Patient", id)) => id.strip_prefix('P').is_some_and(digits),
                Some(("Practitioner", id)) => id.strip_prefix('1').is_some_and(digits),
                Some(("Organization", id)) => id == org,
                Some(("Location", _)) => true,
                Some((_, id)) => state.resources.contains_key(id),
                None => true,
            };
            if !known {
                missing.push(
                    Issue::error(
                        IssueCode::NotFound,
                        format!("Resource not found {reference}"),
                    )
                    .at(format!("Bundle.entry[{}].resource.{path}", e.index))
                    .rule(20007),
                );
            }
        }
    }
    if !missing.is_empty() {
        drop(state);
        return reject(sb, StatusCode::BAD_REQUEST, missing);
    }
    // Duplicates by identifier (20002): the whole transaction fails, as it would upstream.
    let mut duplicates = Outcome::new();
    for e in fhir::entries(&bundle) {
        let (Some(resource), Some(rt)) = (e.resource, e.resource_type()) else {
            continue;
        };
        if fhir::identifier_keys(resource).iter().any(|k| {
            state
                .by_identifier
                .contains_key(&(rt.to_string(), k.clone()))
        }) {
            duplicates.push(
                Issue::error(
                    IssueCode::Duplicate,
                    format!("Found duplicate resource: {rt}"),
                )
                .at(format!("Bundle.entry[{}].resource.identifier", e.index))
                .rule(20002),
            );
        }
    }
    if !duplicates.is_empty() {
        state.stats.duplicates += 1;
        state.stats.transactions_rejected += 1;
        return outcome_response(StatusCode::BAD_REQUEST, &duplicates);
    }
    // Create: server ids, references rewritten from urn:uuid to Type/id.
    let mut ids: HashMap<String, String> = HashMap::new();
    let mut locations = Vec::new();
    for e in fhir::entries(&bundle) {
        let id = uuid::Uuid::new_v4().to_string();
        if let (Some(url), Some(rt)) = (e.full_url, e.resource_type()) {
            ids.insert(url.to_string(), format!("{rt}/{id}"));
        }
        locations.push((id, e.resource_type().unwrap_or("").to_string()));
    }
    let now = crate::time::format_utc(chrono::Utc::now());
    for (e, (id, rt)) in fhir::entries(&bundle).zip(&locations) {
        let Some(resource) = e.resource else { continue };
        let mut stored = resource.clone();
        fhir::rewrite_references(&mut stored, &mut |r| ids.get(r).cloned());
        stored["id"] = json!(id);
        stored["meta"] = json!({"versionId": "1", "lastUpdated": now});
        for key in fhir::identifier_keys(&stored) {
            state.by_identifier.insert((rt.clone(), key), id.clone());
        }
        state.resources.insert(
            id.clone(),
            Stored {
                resource_type: rt.clone(),
                resource: stored,
            },
        );
        state.stats.resources_created += 1;
    }
    state.stats.transactions_accepted += 1;
    let locations: Vec<String> = locations
        .iter()
        .map(|(id, rt)| format!("{rt}/{id}/_history/1"))
        .collect();
    HttpResponse::Ok()
        .content_type("application/fhir+json")
        .json(fhir::typed::transaction_response(&locations))
}

async fn stats(sb: web::Data<Arc<Sandbox>>) -> HttpResponse {
    HttpResponse::Ok().json(sb.stats())
}

/// Every resource the sandbox holds, as `{resourceType, id, identifiers}` — what tests count.
async fn received(sb: web::Data<Arc<Sandbox>>) -> HttpResponse {
    let state = sb.state.lock().expect("sandbox state");
    let mut items: Vec<Value> = state
        .resources
        .iter()
        .map(|(id, s)| json!({"resourceType": s.resource_type, "id": id, "identifiers": fhir::identifier_keys(&s.resource)}))
        .collect();
    items.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    HttpResponse::Ok().json(json!({"resources": items}))
}

async fn revoke_tokens(sb: web::Data<Arc<Sandbox>>) -> HttpResponse {
    HttpResponse::Ok().json(json!({"revoked": sb.revoke_tokens()}))
}

async fn get_faults(sb: web::Data<Arc<Sandbox>>) -> HttpResponse {
    HttpResponse::Ok().json(&*sb.faults.lock().expect("faults"))
}

async fn set_faults(sb: web::Data<Arc<Sandbox>>, body: web::Json<Faults>) -> HttpResponse {
    let new = body.into_inner();
    if let Err(e) = new.check() {
        return outcome_response(
            actix_web::http::StatusCode::UNPROCESSABLE_ENTITY,
            &Outcome::one(Issue::error(IssueCode::Value, e)),
        );
    }
    *sb.faults.lock().expect("faults") = new.clone();
    HttpResponse::Ok().json(new)
}

/// Run the sandbox on an already bound listener until the server is stopped.
pub fn server(
    sandbox: Arc<Sandbox>,
    listener: std::net::TcpListener,
) -> std::io::Result<actix_web::dev::Server> {
    let data = web::Data::new(sandbox);
    Ok(actix_web::HttpServer::new(move || {
        actix_web::App::new()
            .app_data(data.clone())
            .app_data(web::PayloadConfig::new(16 * 1024 * 1024))
            .configure(configure)
    })
    .workers(2)
    .disable_signals()
    .listen(listener)?
    .run())
}
