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
//! FHIR endpoints (bearer token; every one goes through the injected faults):
//!
//! | endpoint | does |
//! |---|---|
//! | `POST /fhir-r4/v1` | a transaction Bundle: validated, references checked, 20002 on a known identifier, stored as version 1 |
//! | `GET /fhir-r4/v1/{Type}?identifier=system\|value` | search: Patient/Practitioner by NIK (every well-formed NIK is "registered"), any stored type by identifier — lagging writes by `search_delay_ms` |
//! | `POST /fhir-r4/v1/Patient` | newborn registration by `nik-ibu` (non-FHIR answer) |
//! | `GET /fhir-r4/v1/{Type}/{id}` | read the current version (no lag) |
//! | `PUT /fhir-r4/v1/{Type}/{id}` | update, `id` also in the body: validated like a Bundle entry, 404 (20007) for an unknown id, 20002 for another resource's identifier; stores the next version |
//! | `GET /fhir-r4/v1/{Type}/{id}/_history` | every version, newest first (a `history` Bundle) |
//! | `GET /fhir-r4/v1/{Type}/{id}/_history/{vid}` | one version |
//!
//! Two faults mimic how SATUSEHAT keeps data rather than how it answers: identifier search
//! lags writes while 20002 does not (`search_delay_ms`), and a refused transaction may leave
//! its first entry stored (`keep_first_entry_on_refusal`) — see [`faults`] and [`store`].
//!
//! Admin endpoints (no token needed):
//!
//! | endpoint | does |
//! |---|---|
//! | `GET /sandbox/stats` | counters of what happened ([`Stats`]) |
//! | `GET /sandbox/received` | every resource held: `resourceType`, `id`, `identifiers` (`system\|value`), `versionId` (current), `versions` (how many are held) and the current `resource`, sorted by id |
//! | `GET`/`PUT /sandbox/faults` | the faults injected from now on ([`Faults`]) |
//! | `POST /sandbox/revoke-tokens` | forget every token issued so far, as SATUSEHAT does after a key rotation or a restart of its gateway: each request still carrying one is answered 401 until its client fetches a new token. Answers `{"revoked": n}` (the tokens not yet expired) |
//!
//! Nothing it keeps grows with the requests it serves, so that the zero-configuration
//! gateway, whose upstream it is, runs for months in bounded memory: resources and their
//! versions up to [`SandboxConfig::max_versions`], the resource written longest ago forgotten
//! first ([`store`]); tokens until they expire, and at most [`TOKENS_HELD`]; newborn
//! registrations, at most [`NEWBORNS_HELD`]. Only the counters of [`Stats`] go on counting.

pub mod faults;
pub mod store;

use crate::fhir::{self, Issue, IssueCode, Outcome};
use crate::profile::{Context, Validator};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use faults::Faults;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet, VecDeque};
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
    /// The most resource versions held (every create and every update is one; 0: no limit).
    /// Past it, the resource written longest ago is forgotten with all its versions and
    /// identifiers — see [`store`] for what that means to a client.
    pub max_versions: usize,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            clients: vec![demo_client()],
            token_ttl_secs: 3599,
            unknown_niks: Vec::new(),
            faults: Faults::default(),
            max_versions: 10_000,
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

/// The most tokens held: far more than there are clients (each holds one, renewed hourly),
/// so that a client fetching a token per request cannot grow the map without end.
pub const TOKENS_HELD: usize = 1_000;

/// The most newborn registrations held: a newborn registered again within the last this many
/// gets the same IHS number, as upstream; after that, a new one.
pub const NEWBORNS_HELD: usize = 10_000;

struct State {
    /// Token → (organization, expiry). Expired tokens are dropped whenever one is issued.
    tokens: HashMap<String, (String, Instant)>,
    resources: store::Resources,
    /// `nik-ibu|birthDate|multipleBirthInteger` → the newborn's IHS number, and those keys
    /// in the order registered (the oldest forgotten first past [`NEWBORNS_HELD`]).
    newborns: HashMap<String, String>,
    newborn_order: VecDeque<String>,
    /// Newborns registered so far: numbers each one, so that ids stay unique once old
    /// registrations are forgotten.
    newborns_registered: u64,
    stats: Stats,
}

impl State {
    fn new(max_versions: usize) -> State {
        State {
            tokens: HashMap::new(),
            resources: store::Resources::new(max_versions),
            newborns: HashMap::new(),
            newborn_order: VecDeque::new(),
            newborns_registered: 0,
            stats: Stats::default(),
        }
    }

    /// Hold `token` for `org` for `ttl`. Expired tokens are answered 401 like unknown ones,
    /// so they are forgotten here; and since a client fetching a token per request would
    /// still fill the map within one lifetime, past [`TOKENS_HELD`] the one expiring first
    /// goes too (its client meets a 401 and fetches a new one, as after a revocation).
    fn issue_token(&mut self, token: String, org: String, ttl: Duration) {
        let now = Instant::now();
        self.tokens.retain(|_, (_, expires)| now < *expires);
        if self.tokens.len() >= TOKENS_HELD
            && let Some(first) = self
                .tokens
                .iter()
                .min_by_key(|(_, (_, expires))| *expires)
                .map(|(t, _)| t.clone())
        {
            self.tokens.remove(&first);
        }
        self.tokens.insert(token, (org, now + ttl));
        self.stats.tokens_issued += 1;
    }

    /// The IHS number of the newborn registered under `key` (of `mother`'s NIK): the one
    /// given before if it is still held, else a new one.
    fn newborn(&mut self, key: String, mother: &str) -> String {
        if let Some(id) = self.newborns.get(&key) {
            return id.clone();
        }
        let id = ihs_number(
            "P",
            &format!("newborn-{mother}-{}", self.newborns_registered),
        );
        self.newborns_registered += 1;
        if self.newborn_order.len() >= NEWBORNS_HELD
            && let Some(oldest) = self.newborn_order.pop_front()
        {
            self.newborns.remove(&oldest);
        }
        self.newborn_order.push_back(key.clone());
        self.newborns.insert(key, id.clone());
        id
    }
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
    /// Writes refused with 20002 (transactions and updates).
    pub duplicates: u64,
    /// Every injected 503, 429 and connection reset.
    pub faults_injected: u64,
    /// Injected connection resets, before or after processing (also in `faults_injected`).
    pub resets_injected: u64,
    /// Writes (transaction Bundles, updates) the sandbox accepted and stored whose answer a
    /// reset then cut off: the client cannot know they arrived.
    pub responses_lost: u64,
    /// Resources stored as version 1, including those of [`Stats::partial_stores`].
    pub resources_created: u64,
    /// Updates (`PUT`) stored as a new version.
    pub updates_applied: u64,
    /// Updates refused (400 or 404).
    pub updates_rejected: u64,
    /// Refused transactions whose first entry was stored nevertheless
    /// (`keep_first_entry_on_refusal`).
    pub partial_stores: u64,
    /// Resources forgotten, all their versions, to hold at most `max_versions`.
    pub resources_forgotten: u64,
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
        let state = Mutex::new(State::new(config.max_versions));
        Arc::new(Sandbox {
            config,
            faults,
            validator,
            state,
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

    /// Forget every token issued so far; how many of them had not expired yet.
    pub fn revoke_tokens(&self) -> u64 {
        let mut state = self.state.lock().expect("sandbox state");
        let now = Instant::now();
        let n = state.tokens.values().filter(|(_, exp)| now < *exp).count() as u64;
        state.tokens.clear();
        state.stats.tokens_revoked += n;
        n
    }

    fn nik_known(&self, nik: &str) -> bool {
        fhir::nik::parse(nik).is_ok() && !self.config.unknown_niks.iter().any(|n| n == nik)
    }

    pub fn stats(&self) -> Stats {
        let state = self.state.lock().expect("sandbox state");
        Stats {
            resources_forgotten: state.resources.forgotten,
            ..state.stats.clone()
        }
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
        .route("/fhir-r4/v1/{rt}/{id}", web::put().to(update))
        .route("/fhir-r4/v1/{rt}/{id}/_history", web::get().to(history))
        .route("/fhir-r4/v1/{rt}/{id}/_history/{vid}", web::get().to(vread))
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

fn outcome_response(status: StatusCode, outcome: &Outcome) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("application/fhir+json")
        .json(outcome.to_operation_outcome())
}

/// SATUSEHAT's words for an unknown `Type/id` (or one of its versions).
fn not_found_outcome(what: &str) -> Outcome {
    Outcome::one(
        Issue::error(IssueCode::NotFound, format!("Resource not found {what}")).rule(20007),
    )
}

/// 404 for `what`, see [`not_found_outcome`].
fn not_found(what: &str) -> HttpResponse {
    outcome_response(StatusCode::NOT_FOUND, &not_found_outcome(what))
}

/// One stored version (number `vid`, its JSON text as stored), with its version as a weak
/// ETag, as FHIR servers answer reads and updates.
fn resource_response(vid: usize, text: String) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/fhir+json")
        .insert_header(("ETag", format!("W/\"{vid}\"")))
        .body(text)
}

/// The server's time as SATUSEHAT writes it (UTC, `+00:00`).
fn now_utc() -> String {
    crate::time::format_utc(chrono::Utc::now())
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
    sb.state.lock().expect("sandbox state").issue_token(
        access_token.clone(),
        client.organization_id.clone(),
        Duration::from_secs(ttl),
    );
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
            StatusCode::BAD_REQUEST,
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
            // SATUSEHAT's search index lags its writes; the delay in force now decides.
            let delay = Duration::from_millis(sb.faults.lock().expect("faults").search_delay_ms);
            let state = sb.state.lock().expect("sandbox state");
            if let Some(r) = state
                .resources
                .find(&rt, &format!("{system}|{value}"), delay)
            {
                found.push(r);
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

/// Read by id: the current version. Reads do not lag writes (only search does).
async fn read(
    sb: web::Data<Arc<Sandbox>>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    let lose = match admit(&sb, &req).await {
        Ok((_, lose)) => lose,
        Err(r) => return r,
    };
    let (rt, id) = path.into_inner();
    let resp = match sb
        .state
        .lock()
        .expect("sandbox state")
        .resources
        .get(&rt, &id)
    {
        Some(s) => resource_response(s.version_id(), s.current_text().to_string()),
        None => not_found(&format!("{rt}/{id}")),
    };
    answer(&sb, lose, resp).await
}

/// `_history`: every version of one resource, newest first, as a `history` Bundle.
async fn history(
    sb: web::Data<Arc<Sandbox>>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    let lose = match admit(&sb, &req).await {
        Ok((_, lose)) => lose,
        Err(r) => return r,
    };
    let (rt, id) = path.into_inner();
    let resp = match sb
        .state
        .lock()
        .expect("sandbox state")
        .resources
        .get(&rt, &id)
    {
        Some(s) => {
            let entries: Vec<Value> = s
                .versions()
                .rev()
                .map(|v| {
                    let vid = v
                        .pointer("/meta/versionId")
                        .and_then(Value::as_str)
                        .unwrap_or("");
                    // Version 1 came from a create (a transaction entry), the rest from PUTs.
                    let (method, url, status) = if vid == "1" {
                        ("POST", rt.clone(), "201 Created")
                    } else {
                        ("PUT", format!("{rt}/{id}"), "200 OK")
                    };
                    json!({
                        "fullUrl": format!("{rt}/{id}"),
                        "resource": v,
                        "request": {"method": method, "url": url},
                        "response": {
                            "status": status,
                            "etag": format!("W/\"{vid}\""),
                            "lastModified": v.pointer("/meta/lastUpdated"),
                        },
                    })
                })
                .collect();
            HttpResponse::Ok()
                .content_type("application/fhir+json")
                .json(json!({"resourceType": "Bundle", "type": "history", "total": entries.len(), "entry": entries}))
        }
        None => not_found(&format!("{rt}/{id}")),
    };
    answer(&sb, lose, resp).await
}

/// `_history/{vid}`: one version of one resource.
async fn vread(
    sb: web::Data<Arc<Sandbox>>,
    req: HttpRequest,
    path: web::Path<(String, String, String)>,
) -> HttpResponse {
    let lose = match admit(&sb, &req).await {
        Ok((_, lose)) => lose,
        Err(r) => return r,
    };
    let (rt, id, vid) = path.into_inner();
    let resp = match sb
        .state
        .lock()
        .expect("sandbox state")
        .resources
        .get(&rt, &id)
        .and_then(|s| Some((vid.parse().ok()?, s.version(&vid)?.to_string())))
    {
        Some((n, v)) => resource_response(n, v),
        None => not_found(&format!("{rt}/{id}/_history/{vid}")),
    };
    answer(&sb, lose, resp).await
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
            StatusCode::BAD_REQUEST,
            &Outcome::one(
                Issue::error(IssueCode::Structure, "Invalid JSON Payload Format").rule(20006),
            ),
        );
    };
    let Some(mother) = fhir::identifier_value(&patient, fhir::system::NIK_IBU) else {
        return outcome_response(
            StatusCode::BAD_REQUEST,
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
    let id = sb.state.lock().expect("sandbox state").newborn(key, mother);
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
    let bundle: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(_) => {
            return refuse(
                sb,
                org,
                None,
                Outcome::one(
                    Issue::error(IssueCode::Structure, "Invalid JSON Payload Format").rule(20006),
                ),
            );
        }
    };
    if fhir::resource_type(&bundle) != Some("Bundle") || bundle["type"] != "transaction" {
        return refuse(
            sb,
            org,
            None,
            Outcome::one(Issue::error(
                IssueCode::Invalid,
                "POST to the base URL takes a transaction Bundle",
            )),
        );
    }
    let (poison, refused) = {
        let f = sb.faults.lock().expect("faults");
        (f.poison_identifiers.clone(), f.refuse_identifiers.clone())
    };
    // An injected poison record: upstream fails on it every time, and only on it.
    if holding(&bundle, &poison).is_some() {
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
    // An injected refusal: the record is refused for good, like an unknown code upstream.
    if let Some(index) = holding(&bundle, &refused) {
        sb.state
            .lock()
            .expect("sandbox state")
            .stats
            .faults_injected += 1;
        let outcome = Outcome::one(
            Issue::error(
                IssueCode::CodeInvalid,
                "Code not found in system http://sys-ids.kemkes.go.id/kfa (sandbox: injected refusal)",
            )
            .at(format!("Bundle.entry[{index}].resource.identifier"))
            .rule(10103),
        );
        return refuse(sb, org, Some(&bundle), outcome);
    }
    match store_transaction(sb, org, &bundle) {
        Ok(locations) => HttpResponse::Ok()
            .content_type("application/fhir+json")
            .json(fhir::typed::transaction_response(&locations)),
        Err(outcome) => refuse(sb, org, Some(&bundle), outcome),
    }
}

/// The index of the first entry whose resource has an identifier value in `values`.
fn holding(bundle: &Value, values: &[String]) -> Option<usize> {
    if values.is_empty() {
        return None;
    }
    fhir::entries(bundle)
        .find(|e| {
            e.resource.is_some_and(|r| {
                r["identifier"].as_array().is_some_and(|ids| {
                    ids.iter().any(|i| {
                        i["value"]
                            .as_str()
                            .is_some_and(|v| values.iter().any(|p| p == v))
                    })
                })
            })
        })
        .map(|e| e.index)
}

/// Check a transaction Bundle and store it whole: the `Type/id/_history/1` of each entry, or
/// why the whole Bundle is refused (nothing stored).
fn store_transaction(sb: &Sandbox, org: &str, bundle: &Value) -> Result<Vec<String>, Outcome> {
    // The same profile engine as the gateway: what passes locally passes here.
    let ctx = Context {
        organization_id: Some(org),
        now: chrono::Utc::now(),
    };
    let mut outcome = sb.validator.validate(bundle, &ctx);
    outcome.issues.retain(|i| i.is_error());
    if outcome.has_errors() {
        return Err(outcome);
    }

    let mut state = sb.state.lock().expect("sandbox state");
    // References must name what SATUSEHAT knows, or another entry of this Bundle.
    let full_urls: HashSet<&str> = fhir::entries(bundle).filter_map(|e| e.full_url).collect();
    let mut missing = Outcome::new();
    for e in fhir::entries(bundle) {
        let Some(resource) = e.resource else { continue };
        missing.extend(store::unknown_references(
            &state.resources,
            org,
            resource,
            &format!("Bundle.entry[{}].resource", e.index),
            &|r| full_urls.contains(r),
        ));
    }
    if !missing.is_empty() {
        return Err(missing);
    }
    // Duplicates by identifier (20002): the whole transaction fails, as it would upstream.
    let mut duplicates = Outcome::new();
    for e in fhir::entries(bundle) {
        let (Some(resource), Some(rt)) = (e.resource, e.resource_type()) else {
            continue;
        };
        if fhir::identifier_keys(resource)
            .iter()
            .any(|k| state.resources.holder(rt, k).is_some())
        {
            duplicates.push(duplicate(
                rt,
                format!("Bundle.entry[{}].resource.identifier", e.index),
            ));
        }
    }
    if !duplicates.is_empty() {
        state.stats.duplicates += 1;
        return Err(duplicates);
    }
    // Create: server ids, references rewritten from urn:uuid to Type/id.
    let mut ids: HashMap<String, String> = HashMap::new();
    let mut locations = Vec::new();
    for e in fhir::entries(bundle) {
        let id = uuid::Uuid::new_v4().to_string();
        if let (Some(url), Some(rt)) = (e.full_url, e.resource_type()) {
            ids.insert(url.to_string(), format!("{rt}/{id}"));
        }
        locations.push((id, e.resource_type().unwrap_or("").to_string()));
    }
    let now = now_utc();
    for (e, (id, rt)) in fhir::entries(bundle).zip(&locations) {
        let Some(resource) = e.resource else { continue };
        let mut stored = resource.clone();
        fhir::rewrite_references(&mut stored, &mut |r| ids.get(r).cloned());
        state.resources.create(rt, id, stored, &now);
        state.stats.resources_created += 1;
    }
    state.stats.transactions_accepted += 1;
    Ok(locations
        .iter()
        .map(|(id, rt)| format!("{rt}/{id}/_history/1"))
        .collect())
}

/// SATUSEHAT's 20002 for a resource of type `rt` whose identifier (at `at`) is taken.
fn duplicate(rt: &str, at: String) -> Issue {
    Issue::error(
        IssueCode::Duplicate,
        format!("Found duplicate resource: {rt}"),
    )
    .at(at)
    .rule(20002)
}

/// Answer a refused transaction (400). With `keep_first_entry_on_refusal`, a refused
/// transaction Bundle still leaves its first entry stored, as SATUSEHAT was seen not to roll
/// back (see [`keep_first_entry`]); the answer stays the same.
fn refuse(sb: &Sandbox, org: &str, bundle: Option<&Value>, outcome: Outcome) -> HttpResponse {
    let keep = bundle.is_some()
        && sb
            .faults
            .lock()
            .expect("faults")
            .keep_first_entry_on_refusal;
    let mut state = sb.state.lock().expect("sandbox state");
    state.stats.transactions_rejected += 1;
    if let Some(bundle) = bundle.filter(|_| keep)
        && keep_first_entry(&mut state, org, bundle, &outcome)
    {
        state.stats.partial_stores += 1;
        state.stats.resources_created += 1;
    }
    drop(state);
    outcome_response(StatusCode::BAD_REQUEST, &outcome)
}

/// Store the first entry of a refused Bundle, if that entry is fine on its own: no error of
/// the refusal points into it, its references name what the sandbox knows (another entry of
/// the Bundle counts: the stored copy keeps that `urn:uuid:`, dangling, as upstream), and its
/// identifiers are free (a 20002 on the first entry stores nothing — the resource is already
/// there). Whether it was stored.
fn keep_first_entry(state: &mut State, org: &str, bundle: &Value, refusal: &Outcome) -> bool {
    let Some(first) = fhir::entries(bundle).next() else {
        return false;
    };
    let (Some(resource), Some(rt)) = (first.resource, first.resource_type()) else {
        return false;
    };
    let at = "Bundle.entry[0]";
    let own = |e: &str| e == at || e.strip_prefix(at).is_some_and(|rest| rest.starts_with('.'));
    if rt == "Bundle"
        || refusal
            .issues
            .iter()
            .any(|i| i.is_error() && i.expression.as_deref().is_some_and(own))
    {
        return false;
    }
    let full_urls: HashSet<&str> = fhir::entries(bundle).filter_map(|e| e.full_url).collect();
    let dangling = store::unknown_references(
        &state.resources,
        org,
        resource,
        "Bundle.entry[0].resource",
        &|r| full_urls.contains(r),
    );
    if dangling.has_errors()
        || fhir::identifier_keys(resource)
            .iter()
            .any(|k| state.resources.holder(rt, k).is_some())
    {
        return false;
    }
    let id = uuid::Uuid::new_v4().to_string();
    state
        .resources
        .create(rt, &id, resource.clone(), &now_utc());
    true
}

async fn update(
    sb: web::Data<Arc<Sandbox>>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> HttpResponse {
    let (org, lose) = match admit(&sb, &req).await {
        Ok(admitted) => admitted,
        Err(r) => return r,
    };
    let (rt, id) = path.into_inner();
    let resp = match store_update(&sb, &org, &rt, &id, &body) {
        Ok((vid, stored)) => resource_response(vid, stored),
        Err((status, outcome)) => {
            sb.state
                .lock()
                .expect("sandbox state")
                .stats
                .updates_rejected += 1;
            outcome_response(status, &outcome)
        }
    };
    if lose && resp.status().is_success() {
        // Stored, and the client will never hear of it.
        sb.state.lock().expect("sandbox state").stats.responses_lost += 1;
    }
    answer(&sb, lose, resp).await
}

/// Check an update of `rt/id` and store it as the next version; the stored version, or the
/// status and outcome of the refusal.
fn store_update(
    sb: &Sandbox,
    org: &str,
    rt: &str,
    id: &str,
    body: &[u8],
) -> Result<(usize, String), (StatusCode, Outcome)> {
    let bad = |outcome: Outcome| (StatusCode::BAD_REQUEST, outcome);
    let gone = || {
        (
            StatusCode::NOT_FOUND,
            not_found_outcome(&format!("{rt}/{id}")),
        )
    };
    let resource: Value = serde_json::from_slice(body).map_err(|_| {
        bad(Outcome::one(
            Issue::error(IssueCode::Structure, "Invalid JSON Payload Format").rule(20006),
        ))
    })?;
    // 20008 is SATUSEHAT's "valid JSON, but not the FHIR structure expected" [inferred for a
    // body of another type]; for an id that differs from the URL no rule number is known.
    let body_type = fhir::resource_type(&resource);
    if !resource.is_object() || body_type != Some(rt) {
        return Err(bad(Outcome::one(
            Issue::error(
                IssueCode::Invalid,
                format!(
                    "PUT {rt}/{id} takes a {rt} resource; the body is {}",
                    body_type.map_or("not a FHIR resource".to_string(), |t| format!("a {t}"))
                ),
            )
            .at(rt)
            .rule(20008),
        )));
    }
    if resource["id"].as_str() != Some(id) {
        return Err(bad(Outcome::one(
            Issue::error(
                IssueCode::Invalid,
                format!(
                    "the body's id ({}) must be the id in the URL ({id}): an update names its resource twice",
                    resource["id"].as_str().unwrap_or("missing")
                ),
            )
            .at(format!("{rt}.id")),
        )));
    }
    if sb
        .state
        .lock()
        .expect("sandbox state")
        .resources
        .get(rt, id)
        .is_none()
    {
        return Err(gone());
    }
    // The same profile engine as for a Bundle entry.
    let ctx = Context {
        organization_id: Some(org),
        now: chrono::Utc::now(),
    };
    let mut outcome = sb.validator.validate(&resource, &ctx);
    outcome.issues.retain(|i| i.is_error());
    if outcome.has_errors() {
        return Err(bad(outcome));
    }
    let mut state = sb.state.lock().expect("sandbox state");
    // Nothing in a PUT resolves a `urn:uuid:`: every reference must name a known thing.
    let missing = store::unknown_references(&state.resources, org, &resource, rt, &|_| false);
    if missing.has_errors() {
        return Err(bad(missing));
    }
    // Its own identifiers stay its own; another resource's are a duplicate. No lag here.
    if fhir::identifier_keys(&resource).iter().any(|k| {
        state
            .resources
            .holder(rt, k)
            .is_some_and(|holder| holder != id)
    }) {
        state.stats.duplicates += 1;
        return Err(bad(Outcome::one(duplicate(rt, format!("{rt}.identifier")))));
    }
    let stored = state
        .resources
        .update(rt, id, resource, &now_utc())
        // Checked above under another lock: forgotten meanwhile (`max_versions`), it is as
        // unknown as if it had never been there.
        .ok_or_else(gone)?;
    state.stats.updates_applied += 1;
    Ok(stored)
}

async fn stats(sb: web::Data<Arc<Sandbox>>) -> HttpResponse {
    HttpResponse::Ok().json(sb.stats())
}

/// Every resource the sandbox holds, as `{resourceType, id, identifiers, versionId, versions,
/// resource}` (the current version), sorted by id — what tests count and inspect.
async fn received(sb: web::Data<Arc<Sandbox>>) -> HttpResponse {
    let state = sb.state.lock().expect("sandbox state");
    let mut items: Vec<Value> = state
        .resources
        .iter()
        .map(|(id, s)| {
            let current = s.current();
            json!({
                "resourceType": s.resource_type,
                "id": id,
                "identifiers": s.identifiers,
                "versionId": current.pointer("/meta/versionId"),
                "versions": s.held(),
                "resource": current,
            })
        })
        .collect();
    drop(state);
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
            StatusCode::UNPROCESSABLE_ENTITY,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_held_are_bounded_and_expired_ones_forgotten() {
        let mut state = State::new(0);
        let hour = Duration::from_secs(3600);
        state.issue_token("expired".into(), "o".into(), Duration::ZERO);
        state.issue_token("t0".into(), "o".into(), hour);
        assert!(!state.tokens.contains_key("expired"));
        for n in 1..TOKENS_HELD + 5 {
            state.issue_token(format!("t{n}"), "o".into(), hour);
            assert!(state.tokens.len() <= TOKENS_HELD);
        }
        assert_eq!(state.tokens.len(), TOKENS_HELD);
        // The ones expiring first went; the newest is held.
        assert!(!state.tokens.contains_key("t0"));
        assert!(state.tokens.contains_key(&format!("t{}", TOKENS_HELD + 4)));
        assert_eq!(state.stats.tokens_issued, TOKENS_HELD as u64 + 6);
    }

    #[test]
    fn newborns_held_are_bounded_and_ids_stay_unique() {
        let mut state = State::new(0);
        let first = state.newborn("ibu-0|d|1".into(), "ibu-0");
        assert_eq!(
            state.newborn("ibu-0|d|1".into(), "ibu-0"),
            first,
            "the same newborn"
        );
        for n in 1..=NEWBORNS_HELD {
            state.newborn(format!("ibu-{n}|d|1"), &format!("ibu-{n}"));
        }
        assert_eq!(state.newborns.len(), NEWBORNS_HELD);
        assert_eq!(state.newborn_order.len(), NEWBORNS_HELD);
        // The first registration was forgotten: registered again, it gets a new number.
        let again = state.newborn("ibu-0|d|1".into(), "ibu-0");
        assert_ne!(again, first);
        assert_eq!(state.newborns.len(), NEWBORNS_HELD);
    }
}
