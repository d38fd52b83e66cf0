//! Operations: `/fhir/metadata` and `/openapi.json` describe the endpoints that really exist
//! (and every endpoint is described), `/metrics` counts what happened, and the limits —
//! JSON depth, per-key rate — answer with an OperationOutcome.

mod common;

use common::*;
use serde_json::{Value, json};
use std::time::Duration;

/// Whether the gateway routes `method path` to a handler (anything but the catch-all 404).
async fn routed(url: &str, method: &str, path: &str) -> bool {
    let c = client();
    let full = format!("{url}{path}");
    let req = match method {
        "get" => c.get(&full),
        "post" => c.post(&full).body("{}"),
        "delete" => c.delete(&full),
        "put" => c.put(&full).body("{}"),
        other => panic!("method {other}"),
    };
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let body = r.text().await.unwrap_or_default();
    !(status == 404 && body.contains("no endpoint"))
}

/// The routes `src/api/mod.rs` registers, with `{param}` segments.
fn registered_routes() -> Vec<String> {
    let src = std::fs::read_to_string(manifest_dir().join("src/api/mod.rs")).unwrap();
    let mut out = Vec::new();
    for part in src.split(".route(").skip(1) {
        let path = part.trim_start().trim_start_matches('"');
        out.push(path[..path.find('"').unwrap()].to_string());
    }
    out.sort();
    out.dedup();
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn the_capability_statement_and_openapi_match_the_real_endpoints() {
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(dir.path(), None, &[]);

    let r = client()
        .get(format!("{}/fhir/metadata", gw.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let cs: Value = r.json().await.unwrap();
    assert_eq!(cs["resourceType"], "CapabilityStatement");
    assert_eq!(cs["fhirVersion"], "4.0.1");
    // It is itself valid FHIR R4.
    let file = dir.path().join("cs.json");
    std::fs::write(&file, cs.to_string()).unwrap();
    let out = std::process::Command::new(BIN)
        .arg("validate")
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Every FHIR endpoint it declares exists.
    let rest = &cs["rest"][0];
    let mut fhir_paths: Vec<(&str, String)> = Vec::new();
    for op in rest["operation"].as_array().unwrap() {
        let name = op["name"].as_str().unwrap();
        let method = if name == "export" { "get" } else { "post" };
        fhir_paths.push((method, format!("/fhir/${name}")));
    }
    for res in rest["resource"].as_array().unwrap() {
        let t = res["type"].as_str().unwrap();
        for i in res["interaction"].as_array().into_iter().flatten() {
            match i["code"].as_str().unwrap() {
                "search-type" => {
                    fhir_paths.push(("get", format!("/fhir/{t}?_since=2026-01-01T00:00:00Z")))
                }
                "create" => fhir_paths.push(("post", format!("/fhir/{t}"))),
                other => panic!("an interaction gerbang does not offer: {other}"),
            }
        }
        for op in res["operation"].as_array().into_iter().flatten() {
            fhir_paths.push((
                "get",
                format!("/fhir/{t}/1000000001/${}", op["name"].as_str().unwrap()),
            ));
        }
    }
    for i in rest["interaction"].as_array().into_iter().flatten() {
        assert!(
            matches!(i["code"].as_str(), Some("transaction" | "batch")),
            "{i}"
        );
        fhir_paths.push(("post", "/fhir".to_string()));
    }
    let token = rest["security"]["extension"][0]["extension"][0]["valueUri"]
        .as_str()
        .unwrap();
    let token_path = token
        .strip_prefix(&gw.url)
        .expect("token endpoint on this server");
    fhir_paths.push(("post", token_path.to_string()));
    for (method, path) in &fhir_paths {
        assert!(
            routed(&gw.url, method, path).await,
            "CapabilityStatement declares {method} {path}, which does not exist"
        );
    }

    // Every path of the OpenAPI document exists …
    let api: Value = client()
        .get(format!("{}/openapi.json", gw.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(api["openapi"], "3.0.3");
    let paths = api["paths"].as_object().unwrap();
    for (path, ops) in paths {
        for method in ops.as_object().unwrap().keys() {
            let concrete = path
                .replace("{record_type}", "posyandu.balita")
                .replace("{id}", "r-1");
            assert!(
                routed(&gw.url, method, &concrete).await,
                "OpenAPI declares {method} {path}, which does not exist"
            );
        }
    }
    // … and every route is described: the FHIR ones by the CapabilityStatement, the rest by
    // the OpenAPI document.
    for route in registered_routes() {
        if route.starts_with("/fhir/") {
            continue;
        }
        let in_openapi = paths.contains_key(&route)
            || paths.keys().any(|p| {
                p.replace("{record_type}", "{x}").replace("{id}", "{x}")
                    == route.replace("{record_type}", "{x}").replace("{id}", "{x}")
            });
        assert!(
            in_openapi || route == token_path,
            "route {route} is not in the OpenAPI document"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_ingest_queue_and_delivery() {
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(dir.path(), None, &[]);
    let key = gw.demo_key.clone().unwrap();
    let (status, body) = ingest(&gw.url, &key, &record("M-1")).await;
    assert_eq!(status, 202, "{body}");
    let (status, _) = ingest(&gw.url, &key, &json!({"id_kunjungan": "M-2"})).await;
    assert_eq!(status, 422);
    let id = body["receipt"].as_str().unwrap().to_string();
    eventually(Duration::from_secs(30), "delivered", || async {
        (receipt(&gw.url, &key, &id).await["status"] == "delivered").then_some(())
    })
    .await;
    let text = eventually(Duration::from_secs(30), "metrics", || async {
        let t = client()
            .get(format!("{}/metrics", gw.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        // The queue-depth gauge is refreshed every few seconds: wait for it to see the delivery.
        (t.contains("gerbang_delivery_latency_seconds_bucket")
            && t.contains(r#"gerbang_receipts{status="delivered"} 1"#))
        .then_some(t)
    })
    .await;
    let line = |prefix: &str| {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .map(str::to_string)
    };
    assert!(
        line(r#"gerbang_ingest_total{record_type="posyandu.balita",result="accepted"} 1"#)
            .is_some(),
        "{text}"
    );
    assert!(
        line(r#"gerbang_ingest_total{record_type="posyandu.balita",result="rejected_input"} 1"#)
            .is_some(),
        "{text}"
    );
    assert!(line("gerbang_delivered_total").is_some(), "{text}");
    assert!(
        text.contains("gerbang_delivery_latency_seconds_bucket{le=\"0.05\"}"),
        "{text}"
    );
    assert!(
        line(r#"gerbang_receipts{status="delivered"} 1"#).is_some(),
        "queue depth gauge: {text}"
    );
    assert!(!text.contains("3273"), "no NIK in metrics");
}

#[tokio::test(flavor = "multi_thread")]
async fn deep_json_and_too_many_requests_are_refused_with_an_operation_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(
        dir.path(),
        None,
        &[
            ("GERBANG_LIMITS__REQUESTS_PER_SECOND", "1"),
            ("GERBANG_LIMITS__BURST", "3"),
            ("GERBANG_LIMITS__MAX_JSON_DEPTH", "32"),
        ],
    );
    let key = gw.demo_key.clone().unwrap();

    // A body nested 1,000 levels deep is refused before it is parsed.
    let deep = format!(
        "{{\"id_kunjungan\": {}1{}}}",
        "[".repeat(1000),
        "]".repeat(1000)
    );
    let r = client()
        .post(format!("{}/ingest/posyandu.balita", gw.url))
        .bearer_auth(&key)
        .header("Content-Type", "application/json")
        .body(deep)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let oo: Value = r.json().await.unwrap();
    assert_eq!(oo["resourceType"], "OperationOutcome");
    assert!(texts(&oo).contains("nested more than 32 levels"), "{oo}");

    // The burst is spent (1 above), then 429 with Retry-After; nothing stored.
    let mut throttled = None;
    for i in 0..6 {
        let r = client()
            .get(format!("{}/receipts/none-{i}", gw.url))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        if r.status() == 429 {
            throttled = Some(r);
            break;
        }
        assert_eq!(r.status(), 404);
    }
    let r = throttled.expect("a 429 within six quick requests at 1/s with a burst of 3");
    let retry_after: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after), "Retry-After {retry_after}");
    let oo: Value = r.json().await.unwrap();
    assert_eq!(oo["issue"][0]["code"], "throttled", "{oo}");
    // Another credential has its own bucket.
    let r = client()
        .get(format!("{}/receipts/none", gw.url))
        .bearer_auth("another-key")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "not throttled, just unknown");
    // After waiting as told, the key is let in again.
    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    let r = client()
        .get(format!("{}/receipts/none", gw.url))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}
