//! FHIR pushed directly, end to end: the real `gerbang serve` and a standalone sandbox over
//! real HTTP. A facility system's own transaction Bundle — people referred to by NIK, times
//! in WIB and `Z` — is validated, committed, delivered (counted in the sandbox by identifier
//! and version), recognised when sent again, corrected by sending it changed, and cancelled;
//! one resource to `POST /fhir/{Type}`; a `batch` of Bundles answered entry by entry; and
//! what is refused, and why.

mod common;

use common::*;
use serde_json::{Value, json};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(90);

struct Setup {
    _dir: tempfile::TempDir,
    sandbox: Sandbox,
    gw: Gateway,
    key: String,
}

fn start() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = Sandbox::start(dir.path(), None);
    let cfg = write_config(dir.path(), &sandbox.url, "");
    let key = add_facility(&cfg, "simrs-fhir", ORG);
    let gw = Gateway::start(dir.path(), Some(&cfg), &[]);
    Setup {
        _dir: dir,
        sandbox,
        gw,
        key,
    }
}

async fn post(s: &Setup, path: &str, body: &Value, headers: &[(&str, &str)]) -> (u16, Value) {
    let mut req = client()
        .post(format!("{}{path}", s.gw.url))
        .bearer_auth(&s.key)
        .header("Content-Type", "application/fhir+json")
        .body(body.to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn until(s: &Setup, id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    eventually(WAIT, &format!("receipt {id}: {what}"), || async {
        let r = receipt(&s.gw.url, &s.key, id).await;
        done(&r).then_some(r)
    })
    .await
}

/// The resources the sandbox holds with the identifier `value` of their type's system.
async fn held(s: &Setup, rt: &str, value: &str) -> Vec<Value> {
    let wanted = format!(
        "http://sys-ids.kemkes.go.id/{}/{ORG}|{value}",
        rt.to_lowercase()
    );
    s.sandbox
        .received()
        .await
        .into_iter()
        .filter(|r| {
            r["resourceType"] == rt
                && r["identifiers"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|i| i.as_str() == Some(&wanted))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_facility_bundle_is_delivered_recognised_corrected_and_cancelled() {
    let s = start();
    let bundle = facility_bundle("FHIR-1");

    let (status, first) = post(&s, "/fhir", &bundle, &[]).await;
    assert_eq!(status, 202, "{first}");
    assert_eq!(first["record_type"], "fhir");
    assert_eq!(first["local_id"], "Encounter/FHIR-1");
    assert_eq!(first["revision"], 1);
    // The receipt says which times are delivered converted to UTC.
    let notes = texts(&first["warnings"]);
    assert!(
        notes.contains("`2026-05-12T08:30:00+07:00` is delivered as `2026-05-12T01:30:00+00:00`"),
        "{notes}"
    );
    assert!(
        expressions(&first["warnings"])
            .contains(&"Bundle.entry[2].resource.effectiveDateTime".to_string())
    );
    let id = first["receipt"].as_str().unwrap().to_string();
    until(&s, &id, "delivered", |r| r["status"] == "delivered").await;

    // Delivered once, in UTC, the people resolved to their IHS numbers.
    let enc = held(&s, "Encounter", "FHIR-1").await;
    assert_eq!(enc.len(), 1, "{enc:?}");
    let enc = &enc[0]["resource"];
    assert_eq!(enc["period"]["start"], "2026-05-12T01:30:00+00:00");
    let subject = enc["subject"]["reference"].as_str().unwrap();
    assert!(
        subject.starts_with("Patient/") && !subject.contains('?'),
        "{subject}"
    );
    let weight = held(&s, "Observation", "FHIR-1/berat-badan").await;
    assert_eq!(weight.len(), 1);
    assert_eq!(
        weight[0]["resource"]["effectiveDateTime"],
        "2026-05-12T01:35:00+00:00"
    );
    assert_eq!(weight[0]["resource"]["subject"]["reference"], subject);

    // The same Bundle again: recognised, nothing stored or sent.
    let (status, again) = post(&s, "/fhir", &bundle, &[]).await;
    assert_eq!(
        (status, again["receipt"].as_str()),
        (200, Some(id.as_str())),
        "{again}"
    );

    // Corrected: the weight was 8.30. A revision; only what changed is sent, as an update.
    let mut fixed = bundle.clone();
    fixed["entry"][2]["resource"]["valueQuantity"]["value"] = json!(8.30);
    let (status, stale) = post(&s, "/fhir", &fixed, &[("If-Match", "\"7\"")]).await;
    assert_eq!(status, 412, "{stale}");
    let (status, second) = post(&s, "/fhir", &fixed, &[("If-Match", "\"1\"")]).await;
    assert_eq!(
        (status, second["revision"].as_i64()),
        (202, Some(2)),
        "{second}"
    );
    assert_eq!(second["receipt"], id.as_str());
    until(&s, &id, "revision 2 delivered", |r| {
        r["delivered_revision"] == 2
    })
    .await;
    let weight = held(&s, "Observation", "FHIR-1/berat-badan").await;
    assert_eq!(weight.len(), 1, "nothing created twice");
    assert_eq!(
        weight[0]["resource"]["valueQuantity"]["value"].as_f64(),
        Some(8.30)
    );
    assert_eq!(weight[0]["versions"], 2);
    assert_eq!(
        held(&s, "Encounter", "FHIR-1").await[0]["versions"],
        1,
        "unchanged: not sent"
    );

    // Cancelled by the first resource's identifier: SATUSEHAT's copies are entered-in-error.
    let system = format!("http://sys-ids.kemkes.go.id/encounter/{ORG}");
    let r = client()
        .delete(format!("{}/fhir/Encounter", s.gw.url))
        .query(&[
            ("identifier", format!("{system}|FHIR-1")),
            ("reason", "pasien salah".into()),
        ])
        .bearer_auth(&s.key)
        .send()
        .await
        .unwrap();
    assert!(
        matches!(r.status().as_u16(), 200 | 202),
        "{}",
        r.text().await.unwrap()
    );
    until(&s, &id, "cancelled", |r| r["status"] == "cancelled").await;
    assert_eq!(
        held(&s, "Encounter", "FHIR-1").await[0]["resource"]["status"],
        "entered-in-error"
    );
    assert_eq!(
        held(&s, "Observation", "FHIR-1/berat-badan").await[0]["resource"]["status"],
        "entered-in-error"
    );
    // Another organization's identifier cannot be cancelled with this key.
    let r = client()
        .delete(format!("{}/fhir/Encounter", s.gw.url))
        .query(&[
            (
                "identifier",
                "http://sys-ids.kemkes.go.id/encounter/1000000099|FHIR-1",
            ),
            ("reason", "x"),
        ])
        .bearer_auth(&s.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_of_bundles_and_one_resource() {
    let s = start();
    // A batch of three visits, the second without its SATUSEHAT identifier.
    let mut broken = facility_bundle("FHIR-4");
    broken["entry"][0]["resource"]
        .as_object_mut()
        .unwrap()
        .remove("identifier");
    let batch = json!({"resourceType": "Bundle", "type": "batch", "entry": [
        {"resource": facility_bundle("FHIR-3")},
        {"resource": broken},
        {"resource": facility_bundle("FHIR-5")},
    ]});
    let (status, answer) = post(&s, "/fhir", &batch, &[]).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["type"], "batch-response");
    let statuses: Vec<&str> = answer["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["response"]["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["202 Accepted", "422 Unprocessable Entity", "202 Accepted"],
        "{answer}"
    );
    let why = &answer["entry"][1]["response"]["outcome"];
    assert!(
        texts(why).contains(&format!("http://sys-ids.kemkes.go.id/encounter/{ORG}")),
        "{why}"
    );
    assert_eq!(
        expressions(why),
        ["Bundle.entry[1].resource.entry[0].resource.identifier"]
    );
    let mut delivered = Vec::new();
    for e in [&answer["entry"][0], &answer["entry"][2]] {
        assert_eq!(e["response"]["etag"], "\"1\"");
        let location = e["response"]["location"].as_str().unwrap();
        let id = location.trim_start_matches("/receipts/");
        delivered.push(until(&s, id, "delivered", |r| r["status"] == "delivered").await);
    }
    assert_eq!(held(&s, "Encounter", "FHIR-3").await.len(), 1);
    assert_eq!(held(&s, "Encounter", "FHIR-5").await.len(), 1);
    assert!(held(&s, "Encounter", "FHIR-4").await.is_empty());

    // One resource: a later measurement of the FHIR-3 visit, referring to the Encounter
    // SATUSEHAT holds and to the patient by NIK.
    let encounter = delivered[0]["upstream_ids"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["resourceType"] == "Encounter")
        .map(|i| i["id"].as_str().unwrap().to_string())
        .expect("the Encounter's SATUSEHAT id is on the receipt");
    let mut observation = facility_bundle("FHIR-3")["entry"][2]["resource"].clone();
    observation["identifier"][0]["value"] = json!("FHIR-3/berat-badan-ulang");
    observation["encounter"] = json!({"reference": format!("Encounter/{encounter}")});
    let (status, one) = post(&s, "/fhir/Observation", &observation, &[]).await;
    assert_eq!(status, 202, "{one}");
    assert_eq!(one["local_id"], "Observation/FHIR-3/berat-badan-ulang");
    // Notes name places in the resource as sent.
    assert!(
        expressions(&one["warnings"]).contains(&"Observation.effectiveDateTime".to_string()),
        "{one}"
    );
    let id = one["receipt"].as_str().unwrap();
    until(&s, id, "delivered", |r| r["status"] == "delivered").await;
    let held_one = held(&s, "Observation", "FHIR-3/berat-badan-ulang").await;
    assert_eq!(held_one.len(), 1);
    assert_eq!(
        held_one[0]["resource"]["encounter"]["reference"],
        format!("Encounter/{encounter}")
    );

    // The wrong type for the path, and issues of an invalid resource named as sent.
    let (status, wrong) = post(&s, "/fhir/Encounter", &observation, &[]).await;
    assert_eq!(status, 422, "{wrong}");
    let mut invalid = observation.clone();
    invalid["status"] = json!("selesai");
    let (status, oo) = post(&s, "/fhir/Observation", &invalid, &[]).await;
    assert_eq!(status, 422, "{oo}");
    assert!(
        expressions(&oo).contains(&"Observation.status".to_string()),
        "{oo}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn what_is_refused_and_why() {
    let s = start();
    let receipts_before = get_json(&format!("{}/receipts", s.gw.url), &s.key).await.1;

    // Another organization's identifier system: not this key's to push.
    let mut other = facility_bundle("FHIR-9");
    other["entry"][0]["resource"]["identifier"][0]["system"] =
        json!("http://sys-ids.kemkes.go.id/encounter/1000000099");
    let (status, oo) = post(&s, "/fhir", &other, &[]).await;
    assert_eq!(status, 403, "{oo}");
    assert_eq!(
        expressions(&oo),
        ["Bundle.entry[0].resource.identifier[0].system"]
    );

    // Another organization as serviceProvider.
    let mut other = facility_bundle("FHIR-9");
    other["entry"][0]["resource"]["serviceProvider"] =
        json!({"reference": "Organization/1000000099"});
    let (status, oo) = post(&s, "/fhir", &other, &[]).await;
    assert_eq!(status, 403, "{oo}");

    // A resource without its SATUSEHAT identifier: the resource and the system to use.
    let mut bare = facility_bundle("FHIR-9");
    bare["entry"][2]["resource"]
        .as_object_mut()
        .unwrap()
        .remove("identifier");
    let (status, oo) = post(&s, "/fhir", &bare, &[]).await;
    assert_eq!(status, 422, "{oo}");
    assert_eq!(expressions(&oo), ["Bundle.entry[2].resource.identifier"]);
    assert!(texts(&oo).contains(&format!("http://sys-ids.kemkes.go.id/observation/{ORG}")));

    // A date without a time where SATUSEHAT wants a date-time.
    let mut dated = facility_bundle("FHIR-9");
    dated["entry"][0]["resource"]["period"]["start"] = json!("2026-05-12");
    let (status, oo) = post(&s, "/fhir", &dated, &[]).await;
    assert_eq!(status, 422, "{oo}");
    assert!(
        expressions(&oo).contains(&"Bundle.entry[0].resource.period.start".to_string()),
        "{oo}"
    );

    // Control characters and a megabyte of text, named by element; a large attachment is
    // a document, not a field, and may be long.
    let mut dirty = facility_bundle("FHIR-9");
    dirty["entry"][0]["resource"]["location"][0]["location"]["display"] =
        json!("Posyandu\u{0}Melati");
    dirty["entry"][1]["resource"]["note"] = json!([{"text": "x".repeat(1_000_000)}]);
    let (status, oo) = post(&s, "/fhir", &dirty, &[]).await;
    assert_eq!(status, 422, "{oo}");
    assert_eq!(
        expressions(&oo),
        [
            "Bundle.entry[0].resource.location[0].location.display",
            "Bundle.entry[1].resource.note[0].text"
        ]
    );

    // FHIR that breaks R4 is explained in plain words, never in JSON Schema's.
    for (element, value) in [
        ("status", json!(5)),
        ("class", json!("AMB")),
        (
            "period",
            json!({"start": "2026-05-12T01:30:00+00:00", "selesai": "x"}),
        ),
        ("identifier", json!([])),
    ] {
        let mut broken = facility_bundle("FHIR-9");
        broken["entry"][0]["resource"][element] = value;
        let (status, oo) = post(&s, "/fhir", &broken, &[]).await;
        assert!(matches!(status, 403 | 422), "{element}: {oo}");
        let text = texts(&oo).to_lowercase();
        let words: Vec<&str> = text.split(|c: char| !c.is_alphanumeric()).collect();
        for keyword in [
            "anyof",
            "oneof",
            "allof",
            "keyword",
            "schema",
            "const",
            "enum",
            "minitems",
            "additionalproperties",
        ] {
            assert!(!words.contains(&keyword), "{element}: `{keyword}` in {oo}");
        }
    }

    // Invalid FHIR: the same validator as for mapped records.
    let mut invalid = facility_bundle("FHIR-9");
    invalid["entry"][0]["resource"]["status"] = json!("selesai");
    let (status, oo) = post(&s, "/fhir", &invalid, &[]).await;
    assert_eq!(status, 422, "{oo}");
    assert_eq!(oo["resourceType"], "OperationOutcome");

    // Not a transaction; not a body said to be JSON.
    let (status, _) = post(
        &s,
        "/fhir",
        &json!({"resourceType": "Bundle", "type": "collection", "entry": []}),
        &[],
    )
    .await;
    assert_eq!(status, 422);
    let r = client()
        .post(format!("{}/fhir", s.gw.url))
        .bearer_auth(&s.key)
        .header("Content-Type", "text/plain")
        .body(facility_bundle("FHIR-9").to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 415);
    let oo: Value = r.json().await.unwrap();
    assert!(texts(&oo).contains("Content-Type"), "{oo}");

    // Nothing of it was stored.
    let receipts_after = get_json(&format!("{}/receipts", s.gw.url), &s.key).await.1;
    assert_eq!(receipts_before["receipts"], receipts_after["receipts"]);
    assert_eq!(receipts_after["count"], 0, "{receipts_after}");
}
