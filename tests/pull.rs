//! Pulling end to end, against the real binary and a standalone sandbox: records of two
//! organizations are pushed and delivered; pull clients with SMART Backend Services tokens
//! (from the real token endpoint) read them back through the `_since` feed — every Bundle
//! exactly once, deliveries arriving while paging included — and through Bulk Data
//! `$export`: kick-off, progress, manifest, NDJSON files per type, cancellation and expiry.

mod common;

use common::*;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const OTHER_ORG: &str = "1000099999";

/// The sandbox knows one SATUSEHAT client per organization.
const SANDBOX: &str = r#"
[sandbox]
[[sandbox.clients]]
client_id = "gerbang-demo"
client_secret = "gerbang-demo-secret"
organization_id = "1000000001"
[[sandbox.clients]]
client_id = "dinkes-b"
client_secret = "dinkes-b-secret"
organization_id = "1000099999"
"#;

/// A gateway config delivering both organizations to the sandbox at `sandbox_url`.
fn config(dir: &Path, sandbox_url: &str, extra: &str) -> PathBuf {
    let other = format!(
        "[organizations.\"{OTHER_ORG}\"]\nclient_id = \"dinkes-b\"\nclient_secret = \"dinkes-b-secret\"\n{extra}"
    );
    write_config(dir, sandbox_url, &other)
}

fn gerbang(config: &Path, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "gerbang {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

// ------------------------------------------------------------------ tokens (SMART)

fn signing_key() -> EncodingKey {
    let pem = std::fs::read(manifest_dir().join("tests/fixtures/smart/rsa-test-only.pem")).unwrap();
    EncodingKey::from_rsa_pem(&pem).unwrap()
}

/// Register a pull client (`gerbang client add`) with the test key.
fn add_client(config: &Path, dir: &Path, id: &str, scope: &str, org: Option<&str>) {
    let jwks = dir.join("pull.jwks.json");
    if !jwks.exists() {
        let mut jwk = Jwk::from_encoding_key(&signing_key(), Algorithm::RS384).unwrap();
        jwk.common.key_id = Some("rsa-1".into());
        let set = JwkSet { keys: vec![jwk] };
        std::fs::write(&jwks, serde_json::to_string(&set).unwrap()).unwrap();
    }
    let mut args = vec![
        "client",
        "add",
        "--id",
        id,
        "--name",
        id,
        "--jwks",
        jwks.to_str().unwrap(),
        "--scope",
        scope,
    ];
    if let Some(o) = org {
        args.extend(["--org", o]);
    }
    gerbang(config, &args);
}

/// An access token from the real token endpoint.
async fn token(url: &str, client_id: &str, scope: &str) -> String {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 240;
    let claims = json!({
        "iss": client_id, "sub": client_id, "aud": format!("{url}/auth/token"),
        "exp": exp, "jti": uuid::Uuid::new_v4().to_string(),
    });
    let mut header = Header::new(Algorithm::RS384);
    header.kid = Some("rsa-1".into());
    let assertion = jsonwebtoken::encode(&header, &claims, &signing_key()).unwrap();
    let r = client()
        .post(format!("{url}/auth/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", assertion.as_str()),
            ("scope", scope),
        ])
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "token for {client_id}: {body}");
    body["access_token"].as_str().unwrap().to_string()
}

// ------------------------------------------------------------------ HTTP

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }
    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|h| h.to_str().unwrap().to_string())
    }
}

async fn call(method: reqwest::Method, url: &str, token: Option<&str>, prefer: bool) -> Answer {
    let mut req = client().request(method, url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if prefer {
        req = req.header("Prefer", "respond-async");
    }
    let r = req.send().await.unwrap();
    Answer {
        status: r.status().as_u16(),
        headers: r.headers().clone(),
        text: r.text().await.unwrap(),
    }
}

async fn get(url: &str, token: &str) -> Answer {
    call(reqwest::Method::GET, url, Some(token), false).await
}

/// Push `n` records for the facility `key`; their receipts.
async fn push(url: &str, key: &str, prefix: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let (status, body) = ingest(url, key, &record(&format!("{prefix}-{i}"))).await;
        assert_eq!(status, 202, "{body}");
        ids.push(body["receipt"].as_str().unwrap().to_string());
    }
    ids
}

async fn wait_delivered(url: &str, key: &str, ids: &[String]) {
    for id in ids {
        eventually(
            Duration::from_secs(60),
            &format!("receipt {id} delivered"),
            || async { (receipt(url, key, id).await["status"] == "delivered").then_some(()) },
        )
        .await;
    }
}

/// Follow `next` links from `start` until a page has none; the Bundles read, in order, and
/// the `self` link of the last page (where a puller resumes).
async fn read_feed(start: &str, token: &str) -> (Vec<Value>, String) {
    let mut url = start.to_string();
    let mut bundles = Vec::new();
    loop {
        let a = get(&url, token).await;
        assert_eq!(a.status, 200, "{url}: {}", a.text);
        let page = a.json();
        assert_eq!(page["resourceType"], "Bundle");
        assert_eq!(page["type"], "searchset");
        bundles.extend(
            page["entry"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["resource"].clone()),
        );
        match link(&page, "next") {
            Some(next) => url = next,
            None => return (bundles, link(&page, "self").unwrap()),
        }
    }
}

fn link(page: &Value, relation: &str) -> Option<String> {
    page["link"]
        .as_array()?
        .iter()
        .find(|l| l["relation"] == relation)
        .map(|l| l["url"].as_str().unwrap().to_string())
}

fn ids(bundles: &[Value]) -> Vec<String> {
    bundles
        .iter()
        .map(|b| b["id"].as_str().unwrap().to_string())
        .collect()
}

fn assert_bad_param(a: &Answer, param: &str) {
    assert_eq!(a.status, 400, "{param}: {}", a.text);
    let oo = a.json();
    assert_eq!(oo["resourceType"], "OperationOutcome", "{oo}");
    assert!(
        expressions(&oo).iter().any(|e| e == param) || texts(&oo).contains(param),
        "the OperationOutcome names {param}: {oo}"
    );
}

struct Setup {
    dir: tempfile::TempDir,
    _sandbox: Sandbox,
    gw: Gateway,
    cfg: PathBuf,
    key_a: String,
    key_b: String,
    a: Vec<String>,
    b: Vec<String>,
}

/// A sandbox, a gateway, facilities of two organizations, 5 + 3 records delivered, and the
/// pull clients: `nasional` (every organization), `dinkes-b` (only the other organization).
async fn setup(extra: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let sb_cfg = dir.path().join("sandbox.toml");
    std::fs::write(&sb_cfg, SANDBOX).unwrap();
    let sandbox = Sandbox::start(dir.path(), Some(&sb_cfg));
    let cfg = config(dir.path(), &sandbox.url, extra);
    let key_a = add_facility(&cfg, "pkm-a", ORG);
    let key_b = add_facility(&cfg, "pkm-b", OTHER_ORG);
    add_client(&cfg, dir.path(), "nasional", "system/*.read", None);
    add_client(
        &cfg,
        dir.path(),
        "dinkes-b",
        "system/*.read",
        Some(OTHER_ORG),
    );
    add_client(&cfg, dir.path(), "feed-only", "system/Bundle.read", None);
    let gw = Gateway::start(dir.path(), Some(&cfg), &[]);
    let a = push(&gw.url, &key_a, "A", 5).await;
    let b = push(&gw.url, &key_b, "B", 3).await;
    wait_delivered(&gw.url, &key_a, &a).await;
    wait_delivered(&gw.url, &key_b, &b).await;
    Setup {
        dir,
        _sandbox: sandbox,
        gw,
        cfg,
        key_a,
        key_b,
        a,
        b,
    }
}

// ------------------------------------------------------------------ the feed

#[tokio::test(flavor = "multi_thread")]
async fn fhir_pushed_directly_is_pulled_like_a_mapped_record() {
    let s = setup("").await;
    let url = &s.gw.url;
    let r = client()
        .post(format!("{url}/fhir"))
        .bearer_auth(&s.key_a)
        .header("Content-Type", "application/fhir+json")
        .body(facility_bundle("PULL-FHIR-1").to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    let id = r.json::<Value>().await.unwrap()["receipt"]
        .as_str()
        .unwrap()
        .to_string();
    wait_delivered(url, &s.key_a, std::slice::from_ref(&id)).await;
    let nasional = token(url, "nasional", "system/Bundle.read").await;
    let (bundles, _) = read_feed(&format!("{url}/fhir/Bundle?_count=50"), &nasional).await;
    assert_eq!(bundles.len(), s.a.len() + s.b.len() + 1);
    let pulled: Vec<&Value> = bundles
        .iter()
        .filter(|b| b.to_string().contains("PULL-FHIR-1"))
        .collect();
    assert_eq!(pulled.len(), 1, "the facility's own Bundle is pulled once");
    // As delivered: in UTC.
    assert!(pulled[0].to_string().contains("2026-05-12T01:30:00+00:00"));
    assert!(!pulled[0].to_string().contains("+07:00"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_since_feed_returns_every_delivered_bundle_once_in_commit_order() {
    let s = setup("").await;
    let url = &s.gw.url;
    let nasional = token(url, "nasional", "system/Bundle.read").await;

    // No token; a token without the scope.
    let a = call(
        reqwest::Method::GET,
        &format!("{url}/fhir/Bundle"),
        None,
        false,
    )
    .await;
    assert_eq!(a.status, 401, "{}", a.text);

    // Pages of two: every delivered Bundle once, none repeated, in a stable order.
    let start = format!("{url}/fhir/Bundle?_count=2");
    let first = get(&start, &nasional).await;
    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(
        first.header("content-type").unwrap(),
        "application/fhir+json"
    );
    let page1 = first.json();
    assert_eq!(page1["entry"].as_array().unwrap().len(), 2);
    let entry = &page1["entry"][0];
    assert_eq!(entry["search"]["mode"], "match");
    let bundle = &entry["resource"];
    assert_eq!(bundle["resourceType"], "Bundle");
    assert_eq!(bundle["type"], "transaction");
    assert!(
        bundle["meta"]["lastUpdated"]
            .as_str()
            .unwrap()
            .ends_with("+00:00")
    );
    assert!(bundle["entry"].as_array().unwrap().len() > 2);
    assert_eq!(
        entry["fullUrl"],
        format!("urn:uuid:{}", bundle["id"].as_str().unwrap())
    );

    // Deliveries that arrive while a puller pages through come on later pages.
    let late = push(url, &s.key_a, "LATE", 2).await;
    wait_delivered(url, &s.key_a, &late).await;
    let (rest, resume) = read_feed(&link(&page1, "next").unwrap(), &nasional).await;
    let mut seen = ids(page1["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["resource"].clone())
        .collect::<Vec<_>>()
        .as_slice());
    seen.extend(ids(&rest));
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no Bundle twice: {seen:?}");
    let pushed: HashSet<&String> = s.a.iter().chain(&s.b).chain(&late).collect();
    assert_eq!(unique, pushed, "every delivered Bundle, nothing else");
    // The late ones are at the end: the order is the order deliveries were committed.
    assert_eq!(
        seen[seen.len() - 2..].iter().collect::<HashSet<_>>(),
        late.iter().collect::<HashSet<_>>()
    );

    // Caught up: the last page's self link returns nothing now, and the next delivery later.
    let (none, _) = read_feed(&resume, &nasional).await;
    assert!(none.is_empty(), "{none:?}");
    let later = push(url, &s.key_b, "LATER", 1).await;
    wait_delivered(url, &s.key_b, &later).await;
    let (more, _) = read_feed(&resume, &nasional).await;
    assert_eq!(ids(&more), later);

    // The whole feed again, in one read: the same order.
    let (all, _) = read_feed(&format!("{url}/fhir/Bundle?_count=500"), &nasional).await;
    let mut expected = seen.clone();
    expected.extend(later.clone());
    assert_eq!(ids(&all), expected, "a stable order");
    let times: Vec<&str> = all
        .iter()
        .map(|b| b["meta"]["lastUpdated"].as_str().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");

    // `_since` in the middle: only what was delivered at or after it, same order.
    let since = times[4];
    let enc = since.replace('+', "%2B");
    let (tail, _) = read_feed(
        &format!("{url}/fhir/Bundle?_since={enc}&_count=3"),
        &nasional,
    )
    .await;
    let expected_tail: Vec<String> = all
        .iter()
        .filter(|b| b["meta"]["lastUpdated"].as_str().unwrap() >= since)
        .map(|b| b["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids(&tail), expected_tail);
    assert!(!tail.is_empty() && tail.len() < all.len());

    // A client of one organization sees only that organization's Bundles.
    let dinkes_b = token(url, "dinkes-b", "system/Bundle.read").await;
    let (own, _) = read_feed(&format!("{url}/fhir/Bundle?_count=2"), &dinkes_b).await;
    let own: HashSet<String> = ids(&own).into_iter().collect();
    let expected_b: HashSet<String> = s.b.iter().chain(&later).cloned().collect();
    assert_eq!(own, expected_b);

    // Bad parameters: 400 naming them.
    for (query, param) in [
        ("_count=abc", "_count"),
        ("_count=0", "_count"),
        ("_since=yesterday", "_since"),
        ("_cursor=zzz", "_cursor"),
        ("_sinse=2026-01-01T00:00:00Z", "_sinse"),
        ("_count=2&_count=3", "_count"),
    ] {
        let a = get(&format!("{url}/fhir/Bundle?{query}"), &nasional).await;
        assert_bad_param(&a, param);
    }
    // `_count` above the maximum is served at the maximum.
    let a = get(&format!("{url}/fhir/Bundle?_count=100000"), &nasional).await;
    assert_eq!(a.status, 200);
    assert!(link(&a.json(), "self").unwrap().contains("_count=500"));

    // Every page is audited for the client.
    let operator = gerbang(&s.cfg, &["operator", "add", "--name", "ops"]);
    let audit = client()
        .get(format!(
            "{url}/admin/audit?action=pull&actor=client:nasional&limit=1000"
        ))
        .bearer_auth(operator.trim())
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert!(audit["count"].as_u64().unwrap() >= 5, "{audit}");
    assert!(
        audit["events"][0]["detail"]
            .as_str()
            .unwrap()
            .starts_with("feed page"),
        "{audit}"
    );
    drop(s.dir);
}

// ------------------------------------------------------------------ $export

/// Kick off `url` (with `Prefer: respond-async`); the status URL.
async fn kick_off(url: &str, token: &str) -> String {
    let a = call(reqwest::Method::GET, url, Some(token), true).await;
    assert_eq!(a.status, 202, "{url}: {}", a.text);
    a.header("content-location").expect("Content-Location")
}

/// Poll the status URL until the manifest comes.
async fn manifest(status_url: &str, token: &str) -> Value {
    eventually(Duration::from_secs(60), "export completed", || async {
        let a = get(status_url, token).await;
        match a.status {
            202 => {
                assert!(a.header("x-progress").is_some(), "X-Progress");
                assert!(a.header("retry-after").is_some(), "Retry-After");
                None
            }
            200 => Some(a.json()),
            other => panic!("status {other}: {}", a.text),
        }
    })
    .await
}

/// Download every output file; per type, the resources. Checks the counts and the types.
async fn download(manifest: &Value, token: &str) -> BTreeMap<String, Vec<Value>> {
    assert_eq!(manifest["requiresAccessToken"], true, "{manifest}");
    assert!(manifest["transactionTime"].as_str().is_some(), "{manifest}");
    assert!(manifest["request"].as_str().unwrap().contains("$export"));
    assert_eq!(manifest["error"], json!([]));
    let mut out = BTreeMap::new();
    for file in manifest["output"].as_array().unwrap() {
        let rt = file["type"].as_str().unwrap().to_string();
        let a = get(file["url"].as_str().unwrap(), token).await;
        assert_eq!(a.status, 200, "{}", a.text);
        assert_eq!(a.header("content-type").unwrap(), "application/fhir+ndjson");
        let lines: Vec<Value> = a
            .text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len() as u64, file["count"].as_u64().unwrap(), "{rt}");
        for r in &lines {
            assert_eq!(r["resourceType"], rt.as_str());
            assert!(r["id"].as_str().is_some(), "{r}");
        }
        assert!(out.insert(rt, lines).is_none(), "one file per type");
    }
    out
}

fn job_dir(s: &Setup, status_url: &str) -> PathBuf {
    let job = status_url.rsplit('/').next().unwrap();
    s.dir.path().join("data/exports").join(job)
}

#[tokio::test(flavor = "multi_thread")]
async fn bulk_export_writes_ndjson_per_type_for_every_organization_or_one() {
    let s = setup("").await;
    let url = &s.gw.url;
    let nasional = token(url, "nasional", "system/*.read").await;

    // What the kick-off refuses.
    let plain = call(
        reqwest::Method::GET,
        &format!("{url}/fhir/$export"),
        Some(&nasional),
        false,
    )
    .await;
    assert_eq!(plain.status, 400, "without Prefer: respond-async");
    assert!(
        texts(&plain.json()).contains("respond-async"),
        "{}",
        plain.text
    );
    for (query, param) in [
        ("_type=Observation,Spaceship", "_type"),
        ("_outputFormat=text/csv", "_outputFormat"),
        ("_since=last-week", "_since"),
        ("_typeFilter=Observation%3Fcode%3Dx", "_typeFilter"),
    ] {
        let a = call(
            reqwest::Method::GET,
            &format!("{url}/fhir/$export?{query}"),
            Some(&nasional),
            true,
        )
        .await;
        assert_bad_param(&a, param);
    }
    let feed_only = token(url, "feed-only", "system/Bundle.read").await;
    let a = call(
        reqwest::Method::GET,
        &format!("{url}/fhir/$export"),
        Some(&feed_only),
        true,
    )
    .await;
    assert_eq!(
        a.status, 403,
        "system/Bundle.read is not system/*.read: {}",
        a.text
    );

    // System level: every organization's records.
    let status_url = kick_off(&format!("{url}/fhir/$export"), &nasional).await;
    assert!(status_url.starts_with(&format!("{url}/fhir/$export-status/")));
    let all = download(&manifest(&status_url, &nasional).await, &nasional).await;
    assert_eq!(all["Encounter"].len(), 8, "one Encounter per record");
    // The same patient and health worker in every record: exported once.
    assert_eq!(all["Patient"].len(), 1);
    assert_eq!(all["Practitioner"].len(), 1);
    assert!(all["Observation"].len() >= 8);
    // References between the resources of a Bundle point at the exported ids.
    let patient = format!("Patient/{}", all["Patient"][0]["id"].as_str().unwrap());
    assert!(
        all["Encounter"]
            .iter()
            .all(|e| e["subject"]["reference"] == patient.as_str())
    );
    let encounters: HashSet<String> = all["Encounter"]
        .iter()
        .map(|e| format!("Encounter/{}", e["id"].as_str().unwrap()))
        .collect();
    assert!(
        all["Observation"]
            .iter()
            .all(|o| encounters.contains(o["encounter"]["reference"].as_str().unwrap()))
    );

    // One organization; only some types.
    let status_url = kick_off(
        &format!("{url}/fhir/Organization/{OTHER_ORG}/$export"),
        &nasional,
    )
    .await;
    let b = download(&manifest(&status_url, &nasional).await, &nasional).await;
    assert_eq!(b["Encounter"].len(), 3);
    let status_url = kick_off(
        &format!("{url}/fhir/$export?_type=Observation&_outputFormat=application%2Ffhir%2Bndjson"),
        &nasional,
    )
    .await;
    let obs = download(&manifest(&status_url, &nasional).await, &nasional).await;
    assert_eq!(obs.keys().collect::<Vec<_>>(), vec!["Observation"]);
    assert_eq!(obs["Observation"].len(), all["Observation"].len());

    // A client of one organization: its system-level export is that organization's; another
    // organization's is refused; other clients' jobs are invisible to it.
    let dinkes_b = token(url, "dinkes-b", "system/*.read").await;
    let a = call(
        reqwest::Method::GET,
        &format!("{url}/fhir/Organization/{ORG}/$export"),
        Some(&dinkes_b),
        true,
    )
    .await;
    assert_eq!(a.status, 403, "{}", a.text);
    let own_url = kick_off(&format!("{url}/fhir/$export"), &dinkes_b).await;
    let own = download(&manifest(&own_url, &dinkes_b).await, &dinkes_b).await;
    assert_eq!(own["Encounter"].len(), 3);
    assert_eq!(get(&status_url, &dinkes_b).await.status, 404);

    // Cancel (DELETE): 202, then the job and its files are gone.
    let dir = job_dir(&s, &status_url);
    assert!(dir.join("Observation.ndjson").is_file());
    let file_url = format!("{}", obs_url(&status_url, url));
    let a = call(reqwest::Method::DELETE, &status_url, Some(&nasional), false).await;
    assert_eq!(a.status, 202, "{}", a.text);
    assert!(!dir.exists(), "files deleted");
    assert_eq!(get(&status_url, &nasional).await.status, 404);
    assert_eq!(get(&file_url, &nasional).await.status, 404);

    // Kick-offs are audited.
    let operator = gerbang(&s.cfg, &["operator", "add", "--name", "ops"]);
    let audit: Value = client()
        .get(format!("{url}/admin/audit?action=export"))
        .bearer_auth(operator.trim())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(audit["count"], 4, "{audit}");
    let _ = (&s.key_a, &s.key_b);
}

fn obs_url(status_url: &str, base: &str) -> String {
    let job = status_url.rsplit('/').next().unwrap();
    format!("{base}/fhir/$export-file/{job}/Observation.ndjson")
}

#[tokio::test(flavor = "multi_thread")]
async fn expired_exports_are_deleted_and_answer_410() {
    let s = setup("[export]\nttl_secs = 2\n").await;
    let url = &s.gw.url;
    let nasional = token(url, "nasional", "system/*.read").await;
    let status_url = kick_off(&format!("{url}/fhir/$export?_type=Encounter"), &nasional).await;
    let m = manifest(&status_url, &nasional).await;
    let dir = job_dir(&s, &status_url);
    assert!(dir.join("Encounter.ndjson").is_file(), "{m}");
    let file_url = m["output"][0]["url"].as_str().unwrap().to_string();
    eventually(Duration::from_secs(20), "the export expired", || async {
        (get(&status_url, &nasional).await.status == 410).then_some(())
    })
    .await;
    let a = get(&status_url, &nasional).await;
    assert_eq!(a.json()["resourceType"], "OperationOutcome");
    assert!(texts(&a.json()).contains("expired"), "{}", a.text);
    assert_eq!(get(&file_url, &nasional).await.status, 410);
    eventually(Duration::from_secs(20), "the files deleted", || async {
        (!dir.exists()).then_some(())
    })
    .await;
}

// ------------------------------------------------------------------ several instances

/// Two gateways on one PostgreSQL schema, records pushed through both: a puller reading the
/// feed from either sees every Bundle once; export jobs kicked off at one are run once each by
/// whichever worker claims them, and with `[export] dir` on a shared folder every instance
/// serves the files.
#[tokio::test(flavor = "multi_thread")]
async fn feed_and_exports_span_two_instances_on_postgres() {
    let test = "feed_and_exports_span_two_instances_on_postgres";
    let Some(db) = postgres_client(test).await else {
        return;
    };
    let schema = new_schema();
    let dir = tempfile::tempdir().unwrap();
    let sandbox = Sandbox::start(dir.path(), None);
    let shared = dir.path().join("shared-exports");
    let extra = format!(
        "[store]\nbackend = \"postgres\"\npostgres_url = \"{}\"\npostgres_schema = \"{schema}\"\n\
         max_connections = 4\n[export]\ndir = \"{}\"\n",
        postgres_url(),
        shared.display()
    );
    let config = |name: &str| {
        let d = dir.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        (write_config(&d, &sandbox.url, &extra), d)
    };
    let (cfg1, dir1) = config("gw-1");
    let (cfg2, dir2) = config("gw-2");
    let key = add_facility(&cfg1, "pkm-pg", ORG);
    add_client(&cfg1, dir.path(), "nasional", "system/*.read", None);
    let gw1 = Gateway::start(&dir1, Some(&cfg1), &[("HOSTNAME", "gw-1")]);
    let gw2 = Gateway::start(&dir2, Some(&cfg2), &[("HOSTNAME", "gw-2")]);

    let (one, two) = tokio::join!(
        push(&gw1.url, &key, "PG1", 6),
        push(&gw2.url, &key, "PG2", 6)
    );
    let pushed: HashSet<String> = one.iter().chain(&two).cloned().collect();
    wait_delivered(&gw1.url, &key, &one).await;
    wait_delivered(&gw1.url, &key, &two).await;

    // The token is in the shared store: good at both instances.
    let token = token(&gw1.url, "nasional", "system/*.read").await;
    let (all, _) = read_feed(&format!("{}/fhir/Bundle?_count=5", gw2.url), &token).await;
    let read = ids(&all);
    assert_eq!(read.len(), 12, "{read:?}");
    assert_eq!(read.iter().cloned().collect::<HashSet<_>>(), pushed);
    let (again, _) = read_feed(&format!("{}/fhir/Bundle?_count=500", gw1.url), &token).await;
    assert_eq!(ids(&again), read, "the same order at every instance");

    // Four jobs at once, kicked off at the first instance and polled at the second.
    let mut status_urls = Vec::new();
    for _ in 0..4 {
        status_urls.push(kick_off(&format!("{}/fhir/$export", gw1.url), &token).await);
    }
    for status_url in &status_urls {
        let at_gw2 = status_url.replace(&gw1.url, &gw2.url);
        let files = download(&manifest(&at_gw2, &token).await, &token).await;
        assert_eq!(files["Encounter"].len(), 12);
        assert_eq!(files["Patient"].len(), 1);
    }
    let owners: Vec<String> = db
        .query(
            &format!("SELECT owner FROM {schema}.export_jobs WHERE status = 'completed'"),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(owners.len(), 4, "{owners:?}");
    drop((gw1, gw2));
    drop_schema(&schema).await;
}
