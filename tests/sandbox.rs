//! The sandbox on its own, over real HTTP: updates (`PUT`) with versions and `_history`,
//! reads through the injected faults, identifier search lagging writes while 20002 does not,
//! and a refused transaction that leaves its first entry stored — what SATUSEHAT does and the
//! gateway's tests rely on; and the bound on what it holds (`max_versions`).
//!
//! The Bundles are a golden example (posyandu.balita, `balita-wita-minimal`) as the gateway's
//! forwarder sends it: the Patient/Practitioner look-up entries dropped and their references
//! rewritten to IHS-shaped ids the sandbox knows.

mod common;

use common::*;
use serde_json::{Value, json};
use std::collections::HashMap;

/// The local visit id of the golden example; every identifier of its Bundle contains it.
const GOLDEN_VISIT: &str = "PSY-MKS-03/2026/05/0417";
const ENCOUNTER_SYSTEM: &str = "http://sys-ids.kemkes.go.id/encounter/1000000001";
const OBSERVATION_SYSTEM: &str = "http://sys-ids.kemkes.go.id/observation/1000000001";

/// A running sandbox and a token for the demo organization.
struct Sb {
    _dir: tempfile::TempDir,
    sandbox: Sandbox,
    token: String,
}

async fn start() -> Sb {
    start_with(None).await
}

/// A sandbox with `config` (TOML) as its configuration file.
async fn start_with(config: Option<&str>) -> Sb {
    let dir = tempfile::tempdir().unwrap();
    let file = config.map(|c| {
        let path = dir.path().join("gerbang.toml");
        std::fs::write(&path, c).unwrap();
        path
    });
    let sandbox = Sandbox::start(dir.path(), file.as_deref());
    let token = sandbox.token().await;
    Sb {
        _dir: dir,
        sandbox,
        token,
    }
}

/// Status, body (JSON, or the text as a string) and ETag of an answer.
struct Answer {
    status: u16,
    body: Value,
    etag: Option<String>,
}

impl Sb {
    fn fhir(&self, path: &str) -> String {
        format!("{}/fhir-r4/v1{path}", self.sandbox.url)
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Answer {
        let r = req.bearer_auth(&self.token).send().await.unwrap();
        let status = r.status().as_u16();
        let etag = r
            .headers()
            .get("ETag")
            .map(|v| v.to_str().unwrap().to_string());
        let text = r.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Answer { status, body, etag }
    }

    async fn get(&self, path: &str) -> Answer {
        self.send(client().get(self.fhir(path))).await
    }

    async fn put(&self, path: &str, resource: &Value) -> Answer {
        self.send(client().put(self.fhir(path)).json(resource))
            .await
    }

    async fn transaction(&self, bundle: &Value) -> Answer {
        self.send(client().post(self.fhir("")).json(bundle)).await
    }

    /// Identifier search; the resources found.
    async fn search(&self, rt: &str, system: &str, value: &str) -> Vec<Value> {
        let a = self
            .send(
                client()
                    .get(self.fhir(&format!("/{rt}")))
                    .query(&[("identifier", format!("{system}|{value}"))]),
            )
            .await;
        assert_eq!(a.status, 200, "{}", a.body);
        assert_eq!(a.body["type"], "searchset");
        let found: Vec<Value> = a.body["entry"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["resource"].clone())
            .collect();
        assert_eq!(a.body["total"], found.len());
        found
    }

    /// `GET /sandbox/received`.
    async fn received(&self) -> Vec<Value> {
        let v: Value = client()
            .get(format!("{}/sandbox/received", self.sandbox.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["resources"].as_array().unwrap().clone()
    }

    async fn stat(&self, name: &str) -> u64 {
        let stats = self.sandbox.stats().await;
        stats[name]
            .as_u64()
            .unwrap_or_else(|| panic!("no {name} in {stats}"))
    }

    /// Send `bundle`, which must be accepted: `Type` → ids created, in entry order.
    async fn create(&self, bundle: &Value) -> HashMap<String, Vec<String>> {
        let a = self.transaction(bundle).await;
        assert_eq!(a.status, 200, "{}", a.body);
        let mut ids: HashMap<String, Vec<String>> = HashMap::new();
        for e in a.body["entry"].as_array().unwrap() {
            let location = e["response"]["location"].as_str().unwrap();
            let parts: Vec<&str> = location.split('/').collect();
            assert_eq!(parts[2..], ["_history", "1"], "{location}");
            ids.entry(parts[0].to_string())
                .or_default()
                .push(parts[1].to_string());
        }
        ids
    }
}

/// The golden Bundle for local visit id `visit` (Encounter, its diagnosis, body weight, body
/// height), as the forwarder sends it.
fn bundle(visit: &str) -> Value {
    let path =
        manifest_dir().join("mappings/posyandu.balita/examples/balita-wita-minimal.bundle.json");
    let text = std::fs::read_to_string(path)
        .unwrap()
        .replace(GOLDEN_VISIT, visit);
    let mut bundle: Value = serde_json::from_str(&text).unwrap();
    let mut known = HashMap::new();
    let entries = bundle["entry"].as_array_mut().unwrap();
    entries.retain(|e| {
        if e.pointer("/request/ifNoneExist").is_none() {
            return true;
        }
        let ihs = match e["resource"]["resourceType"].as_str().unwrap() {
            "Patient" => "Patient/P00000000001",
            "Practitioner" => "Practitioner/100000000001",
            other => panic!("unexpected look-up entry {other}"),
        };
        known.insert(e["fullUrl"].as_str().unwrap().to_string(), ihs.to_string());
        false
    });
    rewrite_references(&mut bundle, &known);
    let types: Vec<&str> = bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["resource"]["resourceType"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        ["Encounter", "Condition", "Observation", "Observation"]
    );
    bundle
}

fn rewrite_references(v: &mut Value, known: &HashMap<String, String>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                match (k.as_str(), child.as_str().and_then(|r| known.get(r))) {
                    ("reference", Some(new)) => *child = json!(new),
                    _ => rewrite_references(child, known),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|c| rewrite_references(c, known)),
        _ => {}
    }
}

/// The `(RuleNumber: N)`s of an OperationOutcome.
fn rules(oo: &Value) -> Vec<u32> {
    texts(oo)
        .split("(RuleNumber: ")
        .skip(1)
        .filter_map(|rest| rest.split(')').next()?.parse().ok())
        .collect()
}

fn weight(observation: &Value) -> f64 {
    observation["valueQuantity"]["value"].as_f64().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn put_stores_a_new_version_and_keeps_the_old_one_in_history() {
    let s = start().await;
    let ids = s.create(&bundle("V-1")).await;
    let (encounter, weight_id) = (&ids["Encounter"][0], &ids["Observation"][0]);

    let v1 = s.get(&format!("/Observation/{weight_id}")).await;
    assert_eq!(v1.status, 200, "{}", v1.body);
    assert_eq!(v1.body["meta"]["versionId"], "1");
    assert_eq!(v1.etag.as_deref(), Some("W/\"1\""));
    assert_eq!(weight(&v1.body), 13.25);
    // The transaction rewrote the reference to its Encounter to the server id.
    assert_eq!(
        v1.body["encounter"]["reference"],
        format!("Encounter/{encounter}")
    );

    let mut changed = v1.body.clone();
    changed["valueQuantity"]["value"] = json!(13.5);
    let put = s.put(&format!("/Observation/{weight_id}"), &changed).await;
    assert_eq!(put.status, 200, "{}", put.body);
    assert_eq!(put.body["resourceType"], "Observation");
    assert_eq!(put.body["id"], weight_id.as_str());
    assert_eq!(put.body["meta"]["versionId"], "2");
    assert!(
        put.body["meta"]["lastUpdated"]
            .as_str()
            .unwrap()
            .ends_with("+00:00"),
        "{}",
        put.body
    );
    assert_eq!(put.etag.as_deref(), Some("W/\"2\""));
    assert_eq!(weight(&put.body), 13.5);

    let v2 = s.get(&format!("/Observation/{weight_id}")).await;
    assert_eq!(v2.status, 200);
    assert_eq!(v2.body, put.body);

    let history = s.get(&format!("/Observation/{weight_id}/_history")).await;
    assert_eq!(history.status, 200, "{}", history.body);
    assert_eq!(history.body["resourceType"], "Bundle");
    assert_eq!(history.body["type"], "history");
    assert_eq!(history.body["total"], 2);
    let versions: Vec<&Value> = history.body["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["resource"])
        .collect();
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[0]["meta"]["versionId"], "2", "newest first");
    assert_eq!(weight(versions[0]), 13.5);
    assert_eq!(versions[1]["meta"]["versionId"], "1");
    assert_eq!(weight(versions[1]), 13.25);

    let old = s.get(&format!("/Observation/{weight_id}/_history/1")).await;
    assert_eq!(old.status, 200, "{}", old.body);
    assert_eq!(old.body, v1.body);
    for vid in ["3", "0", "x"] {
        let none = s
            .get(&format!("/Observation/{weight_id}/_history/{vid}"))
            .await;
        assert_eq!(none.status, 404, "version {vid}: {}", none.body);
        assert_eq!(rules(&none.body), [20007]);
    }
    let wrong_type = s.get(&format!("/Encounter/{weight_id}/_history")).await;
    assert_eq!(wrong_type.status, 404);

    let received = s.received().await;
    assert_eq!(received.len(), 4);
    let item = received
        .iter()
        .find(|r| r["id"] == weight_id.as_str())
        .unwrap();
    assert_eq!(item["resourceType"], "Observation");
    assert_eq!(item["versionId"], "2");
    assert_eq!(item["versions"], 2);
    assert_eq!(item["resource"], put.body);
    assert_eq!(
        item["identifiers"],
        json!([format!("{OBSERVATION_SYSTEM}|V-1/berat-badan")])
    );
    let others: Vec<&Value> = received
        .iter()
        .filter(|r| r["id"] != weight_id.as_str())
        .collect();
    assert!(
        others
            .iter()
            .all(|r| r["versionId"] == "1" && r["versions"] == 1)
    );
    let mut sorted: Vec<&str> = received.iter().map(|r| r["id"].as_str().unwrap()).collect();
    sorted.sort();
    assert_eq!(
        sorted,
        received
            .iter()
            .map(|r| r["id"].as_str().unwrap())
            .collect::<Vec<_>>()
    );

    // Identifier search answers the current version.
    let found = s
        .search("Observation", OBSERVATION_SYSTEM, "V-1/berat-badan")
        .await;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["meta"]["versionId"], "2");
    assert_eq!(weight(&found[0]), 13.5);

    assert_eq!(s.stat("updates_applied").await, 1);
    assert_eq!(s.stat("updates_rejected").await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_update_that_changes_identifiers_moves_the_index() {
    let s = start().await;
    let ids = s.create(&bundle("V-1")).await;
    let weight_id = &ids["Observation"][0];
    let mut obs = s.get(&format!("/Observation/{weight_id}")).await.body;
    obs["identifier"][0]["value"] = json!("V-1/berat-badan-koreksi");
    let put = s.put(&format!("/Observation/{weight_id}"), &obs).await;
    assert_eq!(put.status, 200, "{}", put.body);

    assert!(
        s.search("Observation", OBSERVATION_SYSTEM, "V-1/berat-badan")
            .await
            .is_empty()
    );
    let found = s
        .search("Observation", OBSERVATION_SYSTEM, "V-1/berat-badan-koreksi")
        .await;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["id"], weight_id.as_str());
    // A resource keeping its own identifier is no duplicate.
    let again = s.put(&format!("/Observation/{weight_id}"), &put.body).await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.body["meta"]["versionId"], "3");
    // The old identifier is free again: another Observation may take it.
    let height_id = &ids["Observation"][1];
    let mut height = s.get(&format!("/Observation/{height_id}")).await.body;
    height["identifier"][0]["value"] = json!("V-1/berat-badan");
    let taken = s.put(&format!("/Observation/{height_id}"), &height).await;
    assert_eq!(taken.status, 200, "{}", taken.body);
    let found = s
        .search("Observation", OBSERVATION_SYSTEM, "V-1/berat-badan")
        .await;
    assert_eq!(found[0]["id"], height_id.as_str());
}

#[tokio::test(flavor = "multi_thread")]
async fn put_refusals_say_why_and_store_nothing() {
    let s = start().await;
    let ids = s.create(&bundle("V-1")).await;
    let (weight_id, height_id) = (&ids["Observation"][0], &ids["Observation"][1]);
    let path = format!("/Observation/{weight_id}");
    let current = s.get(&path).await.body;

    // No such resource: 404, 20007.
    let unknown = "0b6c4b0e-1111-4c6f-9c3e-000000000000";
    let mut body = current.clone();
    body["id"] = json!(unknown);
    let a = s.put(&format!("/Observation/{unknown}"), &body).await;
    assert_eq!(a.status, 404, "{}", a.body);
    assert_eq!(a.body["resourceType"], "OperationOutcome");
    assert!(texts(&a.body).contains(&format!("Resource not found Observation/{unknown}")));
    assert_eq!(rules(&a.body), [20007]);
    // An id of another type names nothing either.
    let mut body = current.clone();
    body["resourceType"] = json!("Encounter");
    let a = s.put(&format!("/Encounter/{weight_id}"), &body).await;
    assert_eq!(a.status, 404, "{}", a.body);

    // The body's id must be the URL's.
    let mut body = current.clone();
    body["id"] = json!(height_id);
    let a = s.put(&path, &body).await;
    assert_eq!(a.status, 400, "{}", a.body);
    assert_eq!(a.body["resourceType"], "OperationOutcome");
    let mut body = current.clone();
    body.as_object_mut().unwrap().remove("id");
    assert_eq!(s.put(&path, &body).await.status, 400);

    // Not JSON; not an Observation.
    let a = s.send(client().put(s.fhir(&path)).body("{not json")).await;
    assert_eq!(a.status, 400);
    assert_eq!(rules(&a.body), [20006]);
    let a = s
        .put(&path, &json!({"resourceType": "Patient", "id": weight_id}))
        .await;
    assert_eq!(a.status, 400, "{}", a.body);
    assert_eq!(a.body["resourceType"], "OperationOutcome");

    // Invalid for the profile engine: a status SATUSEHAT refuses.
    let mut body = current.clone();
    body["status"] = json!("bogus");
    let a = s.put(&path, &body).await;
    assert_eq!(a.status, 400, "{}", a.body);
    assert_eq!(rules(&a.body), [10008]);
    assert_eq!(expressions(&a.body), ["Observation.status"]);

    // References: an unknown Encounter, or a urn:uuid nothing in a PUT resolves.
    for reference in [
        "Encounter/4b4a5a1c-0000-4000-8000-000000000000".to_string(),
        "urn:uuid:b4737dcd-30a7-5b81-adcb-2d115d177a74".to_string(),
        format!("Encounter/{height_id}"),
    ] {
        let mut body = current.clone();
        body["encounter"]["reference"] = json!(reference);
        let a = s.put(&path, &body).await;
        assert_eq!(a.status, 400, "{reference}: {}", a.body);
        assert_eq!(rules(&a.body), [20007], "{reference}: {}", a.body);
        assert!(texts(&a.body).contains(&format!("Resource not found {reference}")));
        assert_eq!(expressions(&a.body), ["Observation.encounter"]);
    }

    // The identifier of another Observation: 20002.
    let mut body = current.clone();
    body["identifier"][0]["value"] = json!("V-1/tinggi-badan");
    let a = s.put(&path, &body).await;
    assert_eq!(a.status, 400, "{}", a.body);
    assert_eq!(rules(&a.body), [20002]);
    assert!(texts(&a.body).contains("Found duplicate resource: Observation"));

    // Nothing of that was stored.
    let after = s.get(&path).await;
    assert_eq!(after.body, current);
    let history = s.get(&format!("{path}/_history")).await;
    assert_eq!(history.body["total"], 1);
    assert_eq!(s.stat("updates_applied").await, 0);
    assert_eq!(s.stat("updates_rejected").await, 11);
    assert_eq!(s.stat("duplicates").await, 1);
    // The other Observation still holds its identifier.
    let found = s
        .search("Observation", OBSERVATION_SYSTEM, "V-1/tinggi-badan")
        .await;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["id"], height_id.as_str());
}

/// What the validator says about marking a record as entered in error by `PUT`: both an
/// Observation and an Encounter with `status: entered-in-error` are accepted as they are
/// (the Encounter's statusHistory still ending in `finished`).
#[tokio::test(flavor = "multi_thread")]
async fn entered_in_error_is_accepted_for_observation_and_encounter() {
    let s = start().await;
    let ids = s.create(&bundle("V-1")).await;
    for (rt, id) in [
        ("Observation", &ids["Observation"][0]),
        ("Encounter", &ids["Encounter"][0]),
    ] {
        let path = format!("/{rt}/{id}");
        let mut body = s.get(&path).await.body;
        body["status"] = json!("entered-in-error");
        let a = s.put(&path, &body).await;
        assert_eq!(a.status, 200, "{rt}: {}", a.body);
        assert_eq!(a.body["status"], "entered-in-error");
        assert_eq!(a.body["meta"]["versionId"], "2");
        assert_eq!(s.get(&path).await.body["status"], "entered-in-error");
    }
    assert_eq!(s.stat("updates_applied").await, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn identifier_search_lags_writes_while_20002_and_reads_do_not() {
    let s = start().await;
    s.sandbox
        .set_faults(json!({"search_delay_ms": 3_600_000}))
        .await;
    let ids = s.create(&bundle("V-1")).await;
    let encounter = &ids["Encounter"][0];

    assert!(
        s.search("Encounter", ENCOUNTER_SYSTEM, "V-1")
            .await
            .is_empty()
    );
    assert!(
        s.search("Observation", OBSERVATION_SYSTEM, "V-1/berat-badan")
            .await
            .is_empty()
    );
    // Read by id does not lag.
    let read = s.get(&format!("/Encounter/{encounter}")).await;
    assert_eq!(read.status, 200, "{}", read.body);
    // The duplicate check does not lag: "20002, but not found".
    let again = s.transaction(&bundle("V-1")).await;
    assert_eq!(again.status, 400, "{}", again.body);
    assert_eq!(rules(&again.body), [20002, 20002, 20002, 20002]);
    // Neither does a PUT's; and the update itself lags like a create.
    let weight_id = &ids["Observation"][0];
    let mut obs = s.get(&format!("/Observation/{weight_id}")).await.body;
    obs["identifier"][0]["value"] = json!("V-1/tinggi-badan");
    let dup = s.put(&format!("/Observation/{weight_id}"), &obs).await;
    assert_eq!(rules(&dup.body), [20002], "{}", dup.body);
    obs["identifier"][0]["value"] = json!("V-1/berat-badan");
    obs["valueQuantity"]["value"] = json!(14.0);
    assert_eq!(
        s.put(&format!("/Observation/{weight_id}"), &obs)
            .await
            .status,
        200
    );
    assert!(
        s.search("Observation", OBSERVATION_SYSTEM, "V-1/berat-badan")
            .await
            .is_empty()
    );

    // The delay in force at search time decides: back to 0, everything is findable.
    s.sandbox.set_faults(json!({"search_delay_ms": 0})).await;
    let found = s.search("Encounter", ENCOUNTER_SYSTEM, "V-1").await;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["id"], encounter.as_str());
    let found = s
        .search("Observation", OBSERVATION_SYSTEM, "V-1/berat-badan")
        .await;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["meta"]["versionId"], "2");
    assert_eq!(weight(&found[0]), 14.0);

    let faults: Value = client()
        .get(format!("{}/sandbox/faults", s.sandbox.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(faults["search_delay_ms"], 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn with_the_fault_a_refused_transaction_keeps_its_first_entry() {
    let s = start().await;
    // An Observation (entry 2) the rules refuse; the Encounter (entry 0) is fine.
    let mut refused = bundle("V-1");
    refused["entry"][2]["resource"]["status"] = json!("bogus");

    // By default a refused transaction stores nothing.
    let plain = s.transaction(&refused).await;
    assert_eq!(plain.status, 400, "{}", plain.body);
    assert_eq!(rules(&plain.body), [10008]);
    assert!(s.received().await.is_empty());

    s.sandbox
        .set_faults(json!({"keep_first_entry_on_refusal": true}))
        .await;
    let partial = s.transaction(&refused).await;
    assert_eq!(partial.status, 400);
    assert_eq!(partial.body, plain.body, "the refusal is unchanged");

    let received = s.received().await;
    assert_eq!(received.len(), 1, "{received:?}");
    let kept = &received[0];
    assert_eq!(kept["resourceType"], "Encounter");
    assert_eq!(kept["versionId"], "1");
    assert_eq!(kept["versions"], 1);
    assert_eq!(
        kept["identifiers"],
        json!([format!("{ENCOUNTER_SYSTEM}|V-1")])
    );
    assert_eq!(
        kept["resource"]["subject"]["reference"],
        "Patient/P00000000001"
    );
    assert_eq!(s.stat("partial_stores").await, 1);
    assert_eq!(s.stat("transactions_rejected").await, 2);
    assert_eq!(s.stat("transactions_accepted").await, 0);
    let id = kept["id"].as_str().unwrap();
    assert_eq!(s.get(&format!("/Encounter/{id}")).await.status, 200);

    // The valid Bundle now meets 20002 on the Encounter, and stores nothing more.
    let valid = s.transaction(&bundle("V-1")).await;
    assert_eq!(valid.status, 400, "{}", valid.body);
    assert_eq!(rules(&valid.body), [20002]);
    assert_eq!(
        expressions(&valid.body),
        ["Bundle.entry[0].resource.identifier"]
    );
    assert_eq!(s.received().await.len(), 1);
    // …which is no error of the first entry's own: nothing more is kept.
    assert_eq!(s.stat("partial_stores").await, 1);

    // A Bundle whose first entry is itself refused keeps nothing.
    let mut bad_first = bundle("V-2");
    bad_first["entry"][0]["resource"]["status"] = json!("bogus");
    let a = s.transaction(&bad_first).await;
    assert_eq!(a.status, 400, "{}", a.body);
    assert_eq!(s.received().await.len(), 1);
    assert_eq!(s.stat("partial_stores").await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn reads_history_and_updates_go_through_the_token_check_and_faults() {
    let s = start().await;
    let ids = s.create(&bundle("V-1")).await;
    let path = format!("/Encounter/{}", ids["Encounter"][0]);
    let current = s.get(&path).await.body;

    let no_token = client().get(s.fhir(&path)).send().await.unwrap();
    assert_eq!(no_token.status().as_u16(), 401);

    s.sandbox.set_faults(json!({"error_rate": 1.0})).await;
    assert_eq!(s.get(&path).await.status, 503);
    assert_eq!(s.get(&format!("{path}/_history")).await.status, 503);
    assert_eq!(s.get(&format!("{path}/_history/1")).await.status, 503);
    assert_eq!(s.put(&path, &current).await.status, 503);
    assert_eq!(s.stat("faults_injected").await, 4);

    s.sandbox.set_faults(json!({})).await;
    assert_eq!(s.get(&path).await.status, 200);
    // The refused PUT stored nothing.
    assert_eq!(s.get(&path).await.body["meta"]["versionId"], "1");
}

#[tokio::test(flavor = "multi_thread")]
async fn new_faults_are_checked() {
    let s = start().await;
    let put = |body: Value| {
        let url = format!("{}/sandbox/faults", s.sandbox.url);
        async move {
            client()
                .put(url)
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(put(json!({"search_delay_ms": 3_600_000_000u64})).await, 422);
    assert_eq!(put(json!({"search_delay_ms": -1})).await, 400);
    assert_eq!(
        put(json!({"keep_first_entry_on_refusal": "yes"})).await,
        400
    );
    assert_eq!(put(json!({"keep_first_entry": true})).await, 400);
    assert_eq!(
        put(json!({"search_delay_ms": 250, "keep_first_entry_on_refusal": true})).await,
        200
    );
}

/// `[sandbox] max_versions`: never more versions held than that; the resources written longest
/// ago are forgotten first, with their identifiers — the same Bundle is then accepted again
/// as new (not 20002), and reading or updating a forgotten resource is 404.
#[tokio::test(flavor = "multi_thread")]
async fn it_holds_at_most_max_versions_forgetting_the_oldest_written_first() {
    // Two golden Bundles (four resources each) fit; a third pushes the first out.
    let s = start_with(Some("[sandbox]\nmax_versions = 8\n")).await;
    let held = |received: &[Value]| -> u64 {
        received
            .iter()
            .map(|r| r["versions"].as_u64().unwrap())
            .sum()
    };
    let v1 = s.create(&bundle("V-1")).await;
    let v2 = s.create(&bundle("V-2")).await;
    assert_eq!(s.received().await.len(), 8);
    let v3 = s.create(&bundle("V-3")).await;
    let received = s.received().await;
    assert_eq!(held(&received), 8, "{} resources held", received.len());
    let visits: std::collections::BTreeSet<&str> = received
        .iter()
        .map(|r| {
            let key = r["identifiers"][0].as_str().unwrap();
            key.split('|').nth(1).unwrap().split('/').next().unwrap()
        })
        .collect();
    assert_eq!(
        visits.into_iter().collect::<Vec<_>>(),
        ["V-2", "V-3"],
        "V-1 was written first and went first"
    );
    assert_eq!(s.stat("resources_forgotten").await, 4);

    // V-1 is gone: reads, history and updates say 404; search finds nothing.
    let encounter = &v1["Encounter"][0];
    for path in [
        format!("/Encounter/{encounter}"),
        format!("/Encounter/{encounter}/_history"),
        format!("/Encounter/{encounter}/_history/1"),
    ] {
        let a = s.get(&path).await;
        assert_eq!(a.status, 404, "{path}: {}", a.body);
        assert_eq!(rules(&a.body), [20007]);
    }
    assert!(
        s.search("Encounter", ENCOUNTER_SYSTEM, "V-1")
            .await
            .is_empty()
    );
    // V-3, written last, is all there.
    let weight_id = &v3["Observation"][0];
    let current = s.get(&format!("/Observation/{weight_id}")).await;
    assert_eq!(current.status, 200, "{}", current.body);

    // Its identifiers are free: the same Bundle is accepted as new, not refused with 20002,
    // and pushes V-2 out in turn.
    let again = s.create(&bundle("V-1")).await;
    assert_ne!(again["Encounter"][0], *encounter);
    let received = s.received().await;
    assert_eq!(held(&received), 8);
    assert!(
        received
            .iter()
            .all(|r| r["id"] != v2["Encounter"][0].as_str()),
        "V-2 was the oldest written"
    );
    assert_eq!(s.stat("duplicates").await, 0);

    // An update counts as a write: V-3's weight, updated, is now the newest, and V-3's
    // Encounter, the oldest written, makes room for its second version.
    let mut changed = current.body.clone();
    changed["valueQuantity"]["value"] = json!(13.5);
    let put = s.put(&format!("/Observation/{weight_id}"), &changed).await;
    assert_eq!(put.status, 200, "{}", put.body);
    let received = s.received().await;
    assert_eq!(held(&received), 8, "{} resources held", received.len());
    let item = received
        .iter()
        .find(|r| r["id"] == weight_id.as_str())
        .unwrap();
    assert_eq!(item["versions"], 2);
    let v3_encounter = &v3["Encounter"][0];
    assert_eq!(
        s.get(&format!("/Encounter/{v3_encounter}")).await.status,
        404
    );
    // Updating a forgotten resource: 404, as for an id never known.
    let forgotten = &v1["Observation"][0];
    let mut body = changed.clone();
    body["id"] = json!(forgotten);
    let a = s.put(&format!("/Observation/{forgotten}"), &body).await;
    assert_eq!(a.status, 404, "{}", a.body);
    assert_eq!(rules(&a.body), [20007]);

    // The next Bundle pushes out the four written longest ago; the weight updated last stays.
    let v4 = s.create(&bundle("V-4")).await;
    let received = s.received().await;
    assert_eq!(held(&received), 8, "{} resources held", received.len());
    let ids: Vec<&str> = received.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert!(ids.contains(&weight_id.as_str()), "{ids:?}");
    assert!(ids.contains(&v4["Encounter"][0].as_str()), "{ids:?}");
    assert!(!ids.contains(&again["Encounter"][0].as_str()), "{ids:?}");
    assert_eq!(s.stat("resources_forgotten").await, 13);
}
