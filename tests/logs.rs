//! Logs are structured, carry a request id, and never contain a NIK or a person's name —
//! whatever happens to the record: accepted, delivered, rejected, dead-lettered.

mod common;

use common::*;
use serde_json::{Value, json};
use std::time::Duration;

/// Identifying data in the example record (ilp-domain.md example A).
const PII: [&str; 9] = [
    "3273015008250002", // child's NIK
    "3273014703880001", // health worker's NIK
    "3273016504970003", // mother's NIK
    "3273011208190004", // family card
    "Aisyah",
    "Rina Marlina",
    "Nurhasanah",
    "Gegerkalong",
    "Siti Aminah",
];

#[tokio::test(flavor = "multi_thread")]
async fn no_nik_or_name_reaches_the_log_and_every_request_has_an_id() {
    let dir = tempfile::tempdir().unwrap();
    let sb_cfg = dir.path().join("sandbox.toml");
    // The child is unknown upstream: that record becomes a dead letter.
    std::fs::write(
        &sb_cfg,
        "[sandbox]\nunknown_niks = [\"3273015008250002\"]\n",
    )
    .unwrap();
    let sandbox = Sandbox::start(dir.path(), Some(&sb_cfg));
    sandbox.set_faults(json!({"error_rate": 0.5})).await;
    let cfg = write_config(
        dir.path(),
        &sandbox.url,
        "[log]\nformat = \"json\"\nlevel = \"debug\"\n",
    );
    let key = add_facility(&cfg, "pkm-logs", ORG);
    let gw = Gateway::start(dir.path(), Some(&cfg), &[]);

    // Accepted, then dead-lettered (unknown NIK) after retries through 503s.
    let (status, body) = ingest(&gw.url, &key, &record("L-1")).await;
    assert_eq!(status, 202);
    let dead_id = body["receipt"].as_str().unwrap().to_string();
    // Accepted and delivered: another child.
    let mut other = example("balita-vitamin-a-kejar");
    other["id_kunjungan"] = json!("L-2");
    let (status, body) = ingest(&gw.url, &key, &other).await;
    assert_eq!(status, 202);
    let ok_id = body["receipt"].as_str().unwrap().to_string();
    // Sent again.
    assert_eq!(ingest(&gw.url, &key, &record("L-1")).await.0, 200);
    // Rejected by the schema, with the NIK and name in wrong places.
    let mut bad = record("L-3");
    bad["peserta"]["nik"] = json!("3273015008250002-Aisyah");
    bad["peserta"]["jenis_kelamin"] = json!("Aisyah Putri");
    assert_eq!(ingest(&gw.url, &key, &bad).await.0, 422);
    // Rejected by the rules.
    let mut late = record("L-4");
    late["waktu_selesai"] = json!("2026-05-12T07:00");
    let r = client()
        .post(format!("{}/ingest/posyandu.balita", gw.url))
        .bearer_auth(&key)
        .json(&late)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let request_id = r.headers()["x-request-id"].to_str().unwrap().to_string();

    for (id, status) in [(&dead_id, "dead"), (&ok_id, "delivered")] {
        eventually(Duration::from_secs(30), status, || {
            let (url, key, id) = (gw.url.clone(), key.clone(), id.clone());
            async move { (receipt(&url, &key, &id).await["status"] == status).then_some(()) }
        })
        .await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    let out = gw.proc.output();
    if std::env::var("SHOW_GATEWAY_LOG").is_ok() {
        eprintln!("{out}");
    }
    // The redacting writer is only a second line of defence: nothing should need it.
    assert!(
        !out.contains("[redacted]"),
        "a log statement tried to write a NIK-like number:\n{out}"
    );
    for secret in PII {
        assert!(!out.contains(secret), "{secret:?} reached the log:\n{out}");
    }
    // Structured: every line after start-up is a JSON object with a level and a message.
    let json_lines: Vec<Value> = out
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .collect();
    assert!(json_lines.len() > 10, "{out}");
    assert!(json_lines.iter().all(|l| l["level"].is_string()));
    // The request id of a request is on its log lines.
    let tagged: Vec<&Value> = json_lines
        .iter()
        .filter(|l| l["span"]["request_id"] == request_id.as_str())
        .collect();
    assert!(
        tagged.iter().any(|l| l["message"] == "record rejected"),
        "{out}"
    );
    // The events that matter are there, with their ids.
    assert!(
        json_lines
            .iter()
            .any(|l| l["message"] == "record dead-lettered" && l["receipt"] == dead_id.as_str()),
        "{out}"
    );
    assert!(
        json_lines
            .iter()
            .any(|l| l["message"] == "record delivered" && l["receipt"] == ok_id.as_str()),
        "{out}"
    );
}
