//! Delivery to a standalone sandbox over real HTTP: retries for 5xx and timeouts, dead
//! letters for SATUSEHAT's refusals, and what the receipt says at each step.

mod common;

use common::*;
use serde_json::{Value, json};
use std::time::Duration;

struct Setup {
    _dir: tempfile::TempDir,
    sandbox: Sandbox,
    gw: Gateway,
    key: String,
}

/// A sandbox (with `sandbox_toml` as its config) and a gateway pointed at it.
fn setup(sandbox_toml: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let sb_cfg = dir.path().join("sandbox.toml");
    std::fs::write(&sb_cfg, sandbox_toml).unwrap();
    let sandbox = Sandbox::start(dir.path(), Some(&sb_cfg));
    let cfg = write_config(dir.path(), &sandbox.url, "");
    let key = add_facility(&cfg, "pkm-test", ORG);
    let gw = Gateway::start(dir.path(), Some(&cfg), &[]);
    Setup {
        _dir: dir,
        sandbox,
        gw,
        key,
    }
}

async fn wait_status(s: &Setup, id: &str, status: &str, timeout: Duration) -> Value {
    eventually(timeout, &format!("receipt {id} {status}"), || {
        let (url, key, id) = (s.gw.url.clone(), s.key.clone(), id.to_string());
        let status = status.to_string();
        async move {
            let r = receipt(&url, &key, &id).await;
            (r["status"] == status.as_str()).then_some(r)
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn server_errors_are_retried_with_the_error_on_the_receipt_then_delivered() {
    let s = setup("");
    s.sandbox.set_faults(json!({"error_rate": 1.0})).await;
    let (status, body) = ingest(&s.gw.url, &s.key, &record("R-1")).await;
    assert_eq!(status, 202);
    let id = body["receipt"].as_str().unwrap();

    let retrying = wait_status(&s, id, "retrying", Duration::from_secs(20)).await;
    assert!(
        retrying["last_error"].as_str().unwrap().contains("503"),
        "{retrying}"
    );
    assert!(
        retrying["next_attempt_at"]
            .as_str()
            .unwrap()
            .ends_with("+00:00"),
        "{retrying}"
    );

    // Let a few retries fail, then heal the upstream.
    tokio::time::sleep(Duration::from_secs(2)).await;
    s.sandbox.set_faults(json!({})).await;
    let delivered = wait_status(&s, id, "delivered", Duration::from_secs(20)).await;
    assert!(delivered["attempts"].as_i64().unwrap() >= 2, "{delivered}");
    assert_eq!(
        s.sandbox.identifiers("Encounter").await,
        vec![format!("http://sys-ids.kemkes.go.id/encounter/{ORG}|R-1")]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn timeouts_are_retried() {
    let s = setup("");
    // The gateway's client times out after 2 s.
    s.sandbox
        .set_faults(json!({"latency_min_ms": 2500, "latency_max_ms": 3000}))
        .await;
    let (_, body) = ingest(&s.gw.url, &s.key, &record("R-2")).await;
    let id = body["receipt"].as_str().unwrap();
    let retrying = wait_status(&s, id, "retrying", Duration::from_secs(30)).await;
    assert!(
        retrying["last_error"]
            .as_str()
            .unwrap()
            .contains("timed out"),
        "{retrying}"
    );
    s.sandbox.set_faults(json!({})).await;
    wait_status(&s, id, "delivered", Duration::from_secs(30)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_limits_are_retried() {
    let s = setup("");
    s.sandbox
        .set_faults(json!({"rate_limit_rate": 1.0, "retry_after_secs": 1}))
        .await;
    let (_, body) = ingest(&s.gw.url, &s.key, &record("R-3")).await;
    let id = body["receipt"].as_str().unwrap();
    let retrying = wait_status(&s, id, "retrying", Duration::from_secs(20)).await;
    assert!(
        retrying["last_error"].as_str().unwrap().contains("429"),
        "{retrying}"
    );
    s.sandbox.set_faults(json!({})).await;
    wait_status(&s, id, "delivered", Duration::from_secs(20)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refusal_by_satusehat_becomes_a_dead_letter_with_its_operation_outcome() {
    // The credentials configured for organization 1000000001 belong, upstream, to another
    // organization: SATUSEHAT answers rule 10117 (satusehat.md §6, "org mismatch").
    let s = setup(
        r#"
[sandbox]
[[sandbox.clients]]
client_id = "gerbang-demo"
client_secret = "gerbang-demo-secret"
organization_id = "1000099999"
"#,
    );
    let (status, body) = ingest(&s.gw.url, &s.key, &record("R-4")).await;
    assert_eq!(status, 202);
    let dead = wait_status(
        &s,
        body["receipt"].as_str().unwrap(),
        "dead",
        Duration::from_secs(20),
    )
    .await;
    let oo = &dead["upstream_outcome"];
    assert_eq!(oo["resourceType"], "OperationOutcome", "{dead}");
    assert!(texts(oo).contains("RuleNumber: 10117"), "{oo}");
    assert!(
        dead["last_error"].as_str().unwrap().contains("10117"),
        "{dead}"
    );
    assert_eq!(dead["attempts"], 1, "a refusal is not retried");
    assert!(s.sandbox.identifiers("Encounter").await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_patient_unknown_to_satusehat_is_a_dead_letter_that_says_what_to_do() {
    let s = setup(
        r#"
[sandbox]
unknown_niks = ["3273015008250002"]
"#,
    );
    let (_, body) = ingest(&s.gw.url, &s.key, &record("R-5")).await;
    let dead = wait_status(
        &s,
        body["receipt"].as_str().unwrap(),
        "dead",
        Duration::from_secs(20),
    )
    .await;
    let text = texts(&dead["upstream_outcome"]);
    assert!(
        text.contains("no patient with this NIK") && text.contains("replay"),
        "{text}"
    );
    assert!(
        !text.contains("3273015008250002"),
        "the NIK is not repeated"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_newborn_without_nik_is_registered_by_the_mothers_nik() {
    let s = setup("");
    let r = example("bayi-baru-lahir-nik-ibu-wit");
    let (status, body) = ingest(&s.gw.url, &s.key, &r).await;
    assert_eq!(status, 202, "{body}");
    wait_status(
        &s,
        body["receipt"].as_str().unwrap(),
        "delivered",
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(s.sandbox.identifiers("Immunization").await.len(), 2);
    // Practitioner look-up, newborn registration and the transaction shared one token.
    assert_eq!(s.sandbox.stats().await["tokens_issued"], 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_token_is_replaced_and_the_request_repeated() {
    let s = setup("");
    // Tokens live 1 s; the client refreshes early, but after a pause a request may still
    // meet a 401 — either way every record arrives.
    s.sandbox.set_faults(json!({"token_ttl_secs": 1})).await;
    for i in 0..3 {
        let (status, _) = ingest(&s.gw.url, &s.key, &record(&format!("R-6-{i}"))).await;
        assert_eq!(status, 202);
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    eventually(Duration::from_secs(20), "3 encounters", || async {
        (s.sandbox.identifiers("Encounter").await.len() == 3).then_some(())
    })
    .await;
    let stats = s.sandbox.stats().await;
    assert!(stats["tokens_issued"].as_u64().unwrap() >= 2, "{stats}");
}

async fn ingest_as(s: &Setup, record_type: &str, record: &Value) -> String {
    let r = client()
        .post(format!("{}/ingest/{record_type}", s.gw.url))
        .bearer_auth(&s.key)
        .json(record)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, 202, "{body}");
    body["receipt"].as_str().unwrap().to_string()
}

fn anc_example(name: &str) -> Value {
    let path = manifest_dir()
        .join("mappings/anc.kunjungan/examples")
        .join(format!("{name}.input.json"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pregnancys_episode_is_created_once_whatever_order_the_visits_arrive_in() {
    let s = setup("");
    // The K3 visit of a pregnancy arrives before its K1: the K3 Bundle creates the
    // EpisodeOfCare (not found upstream). The K1 Bundle carries the episode as a conditional
    // entry like every visit's: it finds the episode by look-up and points at it. Everything
    // of K1 must still arrive, once, and the episode must not be created twice.
    let k3 = ingest_as(
        &s,
        "anc.kunjungan",
        &anc_example("anc-k3-beberapa-diagnosis"),
    )
    .await;
    wait_status(&s, &k3, "delivered", Duration::from_secs(20)).await;
    let k1 = ingest_as(&s, "anc.kunjungan", &anc_example("anc-k1a-lengkap")).await;
    let delivered = wait_status(&s, &k1, "delivered", Duration::from_secs(20)).await;

    let episodes = s.sandbox.identifiers("EpisodeOfCare").await;
    assert_eq!(
        episodes,
        vec![format!(
            "http://sys-ids.kemkes.go.id/episode-of-care/{ORG}|HML-P3273010201-2026-0088"
        )]
    );
    let encounters = s.sandbox.identifiers("Encounter").await;
    for visit in [
        "P3273010201-ANC-20260915-007",
        "P3273010201-ANC-20260804-012",
    ] {
        assert!(
            encounters.contains(&format!(
                "http://sys-ids.kemkes.go.id/encounter/{ORG}|{visit}"
            )),
            "{encounters:?}"
        );
    }
    // K1 found the episode by look-up: no duplicate was sent.
    assert_eq!(s.sandbox.stats().await["duplicates"], 0);
    // The receipt names what the record created; the episode is the pregnancy's, not K1's
    // (a correction or cancellation of K1 leaves it alone).
    let ids = delivered["upstream_ids"].as_array().unwrap();
    assert!(
        ids.iter().all(|i| i["resourceType"] != "EpisodeOfCare"),
        "{delivered}"
    );
    assert!(
        ids.iter().any(|i| i["resourceType"] == "Encounter"),
        "{delivered}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_poison_record_never_blocks_the_others() {
    let s = setup("");
    // Upstream fails on this one record, every time, with a 500.
    s.sandbox
        .set_faults(json!({"poison_identifiers": ["POISON-1"]}))
        .await;
    let (status, body) = ingest(&s.gw.url, &s.key, &record("POISON-1")).await;
    assert_eq!(status, 202, "{body}");
    let poison = body["receipt"].as_str().unwrap().to_string();
    // The others arrive while it keeps failing: before, between and after its retries.
    let mut others = Vec::new();
    for batch in 0..3 {
        for i in 0..10 {
            let (status, body) =
                ingest(&s.gw.url, &s.key, &record(&format!("OK-{batch}-{i}"))).await;
            assert_eq!(status, 202, "{body}");
            others.push(body["receipt"].as_str().unwrap().to_string());
        }
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    for id in &others {
        wait_status(&s, id, "delivered", Duration::from_secs(30)).await;
    }
    let p = receipt(&s.gw.url, &s.key, &poison).await;
    assert!(
        p["status"] == "retrying" || p["status"] == "delivering",
        "the poison record is retried, not dropped and not delivered: {p}"
    );
    assert!(p["attempts"].as_i64().unwrap() >= 2, "{p}");
    let encounters = s.sandbox.identifiers("Encounter").await;
    assert_eq!(encounters.len(), others.len(), "every other record, once");
    assert!(!encounters.iter().any(|e| e.ends_with("|POISON-1")));
    assert!(s.sandbox.stats().await["faults_injected"].as_u64().unwrap() >= 2);
}
