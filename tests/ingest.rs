//! `POST /ingest/posyandu.balita` and `GET /receipts/{id}` against the real binary in its
//! zero-configuration mode (SQLite in the data folder, built-in sandbox upstream).

mod common;

use common::*;
use serde_json::{Value, json};
use std::time::Duration;

fn start() -> (tempfile::TempDir, Gateway, String) {
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(dir.path(), None, &[]);
    let key = gw.demo_key.clone().unwrap();
    (dir, gw, key)
}

#[tokio::test(flavor = "multi_thread")]
async fn zero_config_start_uses_sqlite_in_the_data_folder_and_prints_a_key() {
    let (dir, gw, key) = start();
    assert!(key.starts_with("gk_"), "{key}");
    assert!(dir.path().join("data/gerbang.sqlite3").is_file());
    let out = gw.proc.output();
    assert!(
        out.contains("built-in SATUSEHAT sandbox on http://127.0.0.1:"),
        "{out}"
    );
    let ready: Value = client()
        .get(format!("{}/readyz", gw.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["status"], "ready");
}

#[tokio::test(flavor = "multi_thread")]
async fn valid_record_is_acknowledged_then_delivered_with_upstream_ids() {
    let (_dir, gw, key) = start();
    let (status, body) = ingest(&gw.url, &key, &record("K-1")).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["status"], "queued");
    let id = body["receipt"].as_str().unwrap().to_string();

    let delivered = eventually(Duration::from_secs(20), "receipt delivered", || {
        let (url, key, id) = (gw.url.clone(), key.clone(), id.clone());
        async move {
            let r = receipt(&url, &key, &id).await;
            (r["status"] == "delivered").then_some(r)
        }
    })
    .await;
    let ids = delivered["upstream_ids"].as_array().unwrap();
    // Encounter + its diagnosis (Condition) + 5 Observations (weight, length, head, MUAC,
    // BB/PB z-score) + 2 Immunizations; Patient and Practitioner are look-ups, not created.
    assert_eq!(ids.len(), 9, "{delivered}");
    assert!(ids.iter().any(
        |i| i["resourceType"] == "Encounter" && i["id"].as_str().is_some_and(|s| s.len() == 36)
    ));
    assert!(ids.iter().all(|i| i["resourceType"] != "Patient"));
    assert_eq!(delivered["attempts"], 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_record_twice_gets_the_same_receipt_and_creates_nothing() {
    let (_dir, gw, key) = start();
    let (s1, first) = ingest(&gw.url, &key, &record("K-2")).await;
    assert_eq!(s1, 202);
    let (s2, second) = ingest(&gw.url, &key, &record("K-2")).await;
    assert_eq!(s2, 200, "{second}");
    assert_eq!(first["receipt"], second["receipt"]);
    let ready: Value = client()
        .get(format!("{}/readyz", gw.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let total: u64 = ready["receipts"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(total, 1, "{ready}");

    // Same local id, different content: a correction of the same record (revision 2), not a
    // new record.
    let mut changed = record("K-2");
    changed["pengukuran"]["berat_badan"] = json!(8.3);
    let (s3, corrected) = ingest(&gw.url, &key, &changed).await;
    assert_eq!(s3, 202, "{corrected}");
    assert_eq!(corrected["receipt"], first["receipt"]);
    assert_eq!(
        (first["revision"].as_i64(), corrected["revision"].as_i64()),
        (Some(1), Some(2))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn input_that_breaks_the_schema_names_the_json_path() {
    let (_dir, gw, key) = start();
    let mut bad = record("K-3");
    bad["pengukuran"]["berat_badan"] = json!("delapan");
    bad["imunisasi"][1]
        .as_object_mut()
        .unwrap()
        .remove("no_batch");
    bad["peserta"]["jenis_kelamin"] = json!("X");
    let (status, oo) = ingest(&gw.url, &key, &bad).await;
    assert_eq!(status, 422, "{oo}");
    assert_eq!(oo["resourceType"], "OperationOutcome");
    let exprs = expressions(&oo);
    for expected in [
        "$.pengukuran.berat_badan",
        "$.imunisasi[1].no_batch",
        "$.peserta.jenis_kelamin",
    ] {
        assert!(
            exprs.iter().any(|e| e == expected),
            "missing {expected} in {exprs:?}"
        );
    }
    // The text says what is wrong without echoing the value.
    assert!(texts(&oo).contains("no_batch"), "{}", texts(&oo));
    let ready: Value = client()
        .get(format!("{}/readyz", gw.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        ready["receipts"]["queued"], 0,
        "nothing is stored for a rejected record"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn satusehat_rules_reject_a_mapped_record_with_rule_numbers() {
    let (_dir, gw, key) = start();
    // Passes the input check, but the vaccine expired before it was given (rule 10307). (A
    // visit that ends before it starts, rule 10173, is refused by the input check now, naming
    // $.waktu_selesai: tests/input_errors.rs.)
    let mut r = record("K-4");
    r["imunisasi"][0]["kadaluarsa"] = json!("2026-01-31");
    let (status, oo) = ingest(&gw.url, &key, &r).await;
    assert_eq!(status, 422, "{oo}");
    let text = texts(&oo);
    assert!(text.contains("(RuleNumber: 10307)"), "{text}");
    let exprs = expressions(&oo);
    assert!(
        exprs.iter().any(|e| e.ends_with("resource.expirationDate")),
        "{exprs:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_visit_in_the_future_is_refused() {
    let (_dir, gw, key) = start();
    let mut r = record("K-5");
    r["waktu_mulai"] = json!("2099-01-01T08:00");
    r["waktu_selesai"] = json!("2099-01-01T09:00");
    let (status, oo) = ingest(&gw.url, &key, &r).await;
    assert_eq!(status, 422);
    assert!(texts(&oo).contains("in the future"), "{oo}");
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_code_names_the_table_and_value() {
    let (_dir, gw, key) = start();
    let mut r = record("K-6");
    r["imunisasi"][0]["lokasi_suntik"] = json!("bokong kiri");
    let (status, oo) = ingest(&gw.url, &key, &r).await;
    assert_eq!(status, 422, "{oo}");
    let text = texts(&oo);
    assert!(
        text.contains("injection-site") && text.contains("bokong kiri"),
        "{text}"
    );
    assert!(
        text.contains("map.jq"),
        "the error names the mapping file: {text}"
    );
    assert_eq!(
        expressions(&oo),
        vec!["$.imunisasi[0].lokasi_suntik"],
        "and the input field: {oo}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_requests_get_operation_outcomes_not_bare_errors() {
    let (_dir, gw, key) = start();
    let c = client();
    // No key.
    let r = c
        .post(format!("{}/ingest/posyandu.balita", gw.url))
        .json(&record("K-7"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let oo: Value = r.json().await.unwrap();
    assert_eq!(oo["issue"][0]["code"], "login");
    // Wrong key.
    let (status, _) = ingest(&gw.url, "gk_not-a-key", &record("K-7")).await;
    assert_eq!(status, 401);
    // A body that does not say it is JSON, or says it is something else: 415.
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let mut req = c
            .post(format!("{}/ingest/posyandu.balita", gw.url))
            .bearer_auth(&key)
            .body(record("K-7").to_string());
        if let Some(t) = content_type {
            req = req.header("Content-Type", t);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 415, "{content_type:?}");
        let oo: Value = r.json().await.unwrap();
        assert!(texts(&oo).contains("application/json"), "{oo}");
    }
    // Not JSON.
    let r = c
        .post(format!("{}/ingest/posyandu.balita", gw.url))
        .bearer_auth(&key)
        .header("Content-Type", "application/json")
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let oo: Value = r.json().await.unwrap();
    assert!(texts(&oo).contains("not JSON"), "{oo}");
    // Unknown record type.
    let r = c
        .post(format!("{}/ingest/posyandu.dewasa", gw.url))
        .bearer_auth(&key)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let oo: Value = r.json().await.unwrap();
    assert!(
        texts(&oo).contains("posyandu.balita"),
        "lists the known types: {oo}"
    );
    // Unknown receipt.
    let r = c
        .get(format!(
            "{}/receipts/00000000-0000-0000-0000-000000000000",
            gw.url
        ))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // Too large: refused before anything is parsed.
    let big = format!("{{\"id_kunjungan\": \"{}\"}}", "x".repeat(2 * 1024 * 1024));
    let r = c
        .post(format!("{}/ingest/posyandu.balita", gw.url))
        .bearer_auth(&key)
        .header("Content-Type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert!(r.headers().get("x-request-id").is_some());
    let oo: Value = r.json().await.unwrap();
    assert_eq!(oo["issue"][0]["code"], "too-long");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_local_format_is_adapted_and_delivered() {
    let (_dir, gw, key) = start();
    let path = manifest_dir().join(
        "mappings/rawat-jalan/adapters/sikda-generik/examples/contoh-b-hipertensi.input.json",
    );
    let row: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let c = client();
    let post = |format: &'static str, body: Value| {
        c.post(format!("{}/ingest/rawat-jalan?format={format}", gw.url))
            .bearer_auth(&key)
            .json(&body)
            .send()
    };
    let r = post("sikda-generik", row.clone()).await.unwrap();
    assert_eq!(r.status(), 202);
    let receipt_id = r.json::<Value>().await.unwrap()["receipt"]
        .as_str()
        .unwrap()
        .to_string();
    eventually(Duration::from_secs(20), "delivered", || {
        let (url, key, id) = (gw.url.clone(), key.clone(), receipt_id.clone());
        async move { (receipt(&url, &key, &id).await["status"] == "delivered").then_some(()) }
    })
    .await;

    // A broken local record is refused with the path in the local format.
    let mut broken = row.clone();
    broken["TEKANAN_DARAH"] = json!("152-94");
    let r = post("sikda-generik", broken).await.unwrap();
    assert_eq!(r.status(), 422);
    let oo: Value = r.json().await.unwrap();
    assert!(
        expressions(&oo).contains(&"$.TEKANAN_DARAH".to_string()),
        "{oo}"
    );
    // An unknown format names the known ones.
    let r = post("hl7v2", row).await.unwrap();
    assert_eq!(r.status(), 404);
    let oo: Value = r.json().await.unwrap();
    assert!(
        texts(&oo).contains("sikda-generik") && texts(&oo).contains("pcare"),
        "{oo}"
    );
}
