//! A no-op SATUSEHAT upstream for the ingest benchmark (`benches/compare.sh`): it answers
//! what gerbang's forwarder asks — the token, people looked up by NIK, a newborn's
//! registration, transaction Bundles — successfully and with as little work as an answer
//! allows, so the gateway's ingest is measured while its forwarder delivers without the
//! upstream's cost (the built-in sandbox validates every Bundle it receives).
//!
//! Why a Rust bench target and not a Python script: on a two-core machine the upstream shares
//! a core with wrk, and a Python server would take far more of it per delivered record than
//! the gateway's own work, which would lower the figure for the wrong reason. This one parses
//! each transaction Bundle once (a transaction-response needs one location per entry) and
//! does nothing else. It is a bench target, so it builds with the benches and never ships.
//!
//! `noop_upstream --listen 127.0.0.1:0` prints `noop upstream listening on http://ADDR`;
//! `GET /noop/stats` counts what it answered. Without `--listen` (as `cargo bench` runs every
//! bench) it prints how to use it and exits.

use actix_web::{App, HttpResponse, HttpServer, web};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Default)]
struct Counts {
    tokens: AtomicU64,
    searches: AtomicU64,
    transactions: AtomicU64,
    entries: AtomicU64,
    other: AtomicU64,
}

type State = web::Data<Counts>;

async fn token(c: State) -> HttpResponse {
    c.tokens.fetch_add(1, Ordering::Relaxed);
    // SATUSEHAT (Apigee) writes every value as a string.
    HttpResponse::Ok().json(json!({
        "access_token": "noop-token", "expires_in": "3599", "token_type": "BearerToken"
    }))
}

/// A transaction-response with one `201 Created` per entry, the location `{type}/{id}`.
async fn transaction(c: State, body: web::Bytes) -> HttpResponse {
    let Ok(bundle) = serde_json::from_slice::<Value>(&body) else {
        return HttpResponse::BadRequest().json(json!({
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": "structure", "diagnostics": "not JSON"}]
        }));
    };
    let n = c.transactions.fetch_add(1, Ordering::Relaxed);
    let entries = bundle["entry"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    c.entries.fetch_add(entries.len() as u64, Ordering::Relaxed);
    let answers: Vec<Value> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let rt = e["resource"]["resourceType"].as_str().unwrap_or("Resource");
            json!({"response": {"status": "201 Created", "location": format!("{rt}/noop-{n}-{i}/_history/1")}})
        })
        .collect();
    HttpResponse::Ok()
        .content_type("application/fhir+json")
        .json(json!({"resourceType": "Bundle", "type": "transaction-response", "entry": answers}))
}

/// Every identifier search finds one resource (people looked up by NIK are "registered").
async fn search(c: State, path: web::Path<String>) -> HttpResponse {
    c.searches.fetch_add(1, Ordering::Relaxed);
    let rt = path.into_inner();
    HttpResponse::Ok()
        .content_type("application/fhir+json")
        .json(json!({
            "resourceType": "Bundle", "type": "searchset", "total": 1,
            "entry": [{"resource": {"resourceType": rt, "id": format!("noop-{rt}")}}]
        }))
}

/// A newborn's registration, answered as SATUSEHAT does (non-FHIR JSON).
async fn create_patient(c: State) -> HttpResponse {
    let n = c.other.fetch_add(1, Ordering::Relaxed);
    HttpResponse::Created()
        .json(json!({"create_patient": {"data": {"patient_id": format!("P-noop-{n}")}}}))
}

/// PUT and GET of one resource: accepted / an empty resource of that type.
async fn one(c: State, path: web::Path<(String, String)>) -> HttpResponse {
    c.other.fetch_add(1, Ordering::Relaxed);
    let (rt, id) = path.into_inner();
    HttpResponse::Ok()
        .content_type("application/fhir+json")
        .json(json!({"resourceType": rt, "id": id, "meta": {"versionId": "1"}}))
}

async fn stats(c: State) -> HttpResponse {
    let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
    HttpResponse::Ok().json(json!({
        "tokens": get(&c.tokens), "searches": get(&c.searches),
        "transactions": get(&c.transactions), "entries": get(&c.entries), "other": get(&c.other)
    }))
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let Some(listen) = args
        .iter()
        .position(|a| a == "--listen")
        .and_then(|i| args.get(i + 1))
    else {
        println!(
            "noop_upstream: a no-op SATUSEHAT upstream for benches/compare.sh; run it with --listen 127.0.0.1:0"
        );
        return Ok(());
    };
    let listener = std::net::TcpListener::bind(listen)?;
    let addr = listener.local_addr()?;
    let counts = web::Data::new(Counts::default());
    actix_web::rt::System::new().block_on(async move {
        let server = HttpServer::new(move || {
            App::new()
                .app_data(counts.clone())
                .app_data(web::PayloadConfig::new(64 * 1024 * 1024))
                .route("/oauth2/v1/accesstoken", web::post().to(token))
                .route("/fhir-r4/v1", web::post().to(transaction))
                .route("/fhir-r4/v1/", web::post().to(transaction))
                .route("/fhir-r4/v1/Patient", web::post().to(create_patient))
                .route("/fhir-r4/v1/{rt}", web::get().to(search))
                .route("/fhir-r4/v1/{rt}/{id}", web::get().to(one))
                .route("/fhir-r4/v1/{rt}/{id}", web::put().to(one))
                .route("/noop/stats", web::get().to(stats))
        })
        // One worker: it shares a core with wrk, and its work per request is tiny.
        .workers(1)
        .listen(listener)?
        .run();
        println!("noop upstream listening on http://{addr}");
        use std::io::Write;
        std::io::stdout().flush()?;
        server.await
    })
}
