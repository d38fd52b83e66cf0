//! Telling the facility what became of its records: a real facility-system receiver (an HTTP
//! server in this test) is registered as the facility's webhook, is down for a while, then
//! comes back. Every event arrives — delivered, corrected, refused, cancelled — in order per
//! record, each with a Standard Webhooks signature that verifies, and the same events are in
//! `GET /events`.

mod common;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use common::*;
use gerbang::webhooks::signature;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(120);

/// What the receiver got: `(webhook-id, webhook-timestamp, webhook-signature, body)`.
type Got = Arc<Mutex<Vec<(String, String, String, String)>>>;

struct Receiver {
    url: String,
    up: Arc<AtomicBool>,
    got: Got,
    /// Requests answered 503 while down.
    refused: Arc<Mutex<u64>>,
    handle: actix_web::dev::ServerHandle,
}

fn receiver() -> Receiver {
    let up = Arc::new(AtomicBool::new(false));
    let got: Got = Arc::default();
    let refused = Arc::new(Mutex::new(0));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/gerbang/events", listener.local_addr().unwrap());
    let state = (up.clone(), got.clone(), refused.clone());
    let server = HttpServer::new(move || {
        let (up, got, refused) = state.clone();
        App::new().route(
            "/gerbang/events",
            web::post().to(move |req: HttpRequest, body: web::Bytes| {
                let (up, got, refused) = (up.clone(), got.clone(), refused.clone());
                async move {
                    if !up.load(Ordering::SeqCst) {
                        *refused.lock().unwrap() += 1;
                        return HttpResponse::ServiceUnavailable().finish();
                    }
                    let h = |n: &str| {
                        req.headers()
                            .get(n)
                            .map(|v| v.to_str().unwrap().to_string())
                            .unwrap_or_default()
                    };
                    got.lock().unwrap().push((
                        h("webhook-id"),
                        h("webhook-timestamp"),
                        h("webhook-signature"),
                        String::from_utf8(body.to_vec()).unwrap(),
                    ));
                    HttpResponse::NoContent().finish()
                }
            }),
        )
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .unwrap()
    .run();
    let handle = server.handle();
    tokio::spawn(server);
    Receiver {
        url,
        up,
        got,
        refused,
        handle,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_receiver_down_for_a_while_gets_every_event_in_order_signed() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = Sandbox::start(dir.path(), None);
    // Fast webhook retries, so "a while" is seconds here (a day in production is the same
    // path: the retries only wait longer, up to cap_secs).
    let cfg = write_config(
        dir.path(),
        &sandbox.url,
        "[webhooks]\nbase_secs = 0.2\ncap_secs = 1.0\n",
    );
    let key = add_facility(&cfg, "pkm-hook", ORG);
    let operator = String::from_utf8(
        std::process::Command::new(BIN)
            .args([
                "--config",
                cfg.to_str().unwrap(),
                "operator",
                "add",
                "--name",
                "ops",
            ])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .to_string();
    let gw = Gateway::start(dir.path(), Some(&cfg), &[]);
    let rx = receiver();

    // Registered through the admin API; gerbang makes the secret and shows it once.
    let r = client()
        .put(format!("{}/admin/facilities/pkm-hook/webhook", gw.url))
        .bearer_auth(&operator)
        .json(&json!({"url": rx.url}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let registered: Value = r.json().await.unwrap();
    let secret = registered["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"), "{registered}");
    let bad = client()
        .put(format!("{}/admin/facilities/pkm-hook/webhook", gw.url))
        .bearer_auth(&operator)
        .json(&json!({"url": "ftp://simpus"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 422);
    let (_, shown) = get_json(
        &format!("{}/admin/facilities/pkm-hook/webhook", gw.url),
        &operator,
    )
    .await;
    assert!(
        shown.get("secret").is_none(),
        "the secret is shown once only: {shown}"
    );

    // The receiver is down while records are delivered, corrected, refused and cancelled.
    sandbox
        .set_faults(json!({"refuse_identifiers": ["WH-3/berat-badan"]}))
        .await;
    let mut receipts = Vec::new();
    for i in 0..4 {
        let (status, body) = ingest(&gw.url, &key, &record(&format!("WH-{i}"))).await;
        assert_eq!(status, 202, "{body}");
        receipts.push(body["receipt"].as_str().unwrap().to_string());
    }
    for (i, id) in receipts.iter().enumerate() {
        let want = if i == 3 { "dead" } else { "delivered" };
        eventually(WAIT, &format!("{id} {want}"), || async {
            (receipt(&gw.url, &key, id).await["status"] == want).then_some(())
        })
        .await;
    }
    let mut fixed = record("WH-1");
    fixed["pengukuran"]["berat_badan"] = json!(8.4);
    assert_eq!(ingest(&gw.url, &key, &fixed).await.0, 202);
    let r = client()
        .delete(format!(
            "{}/ingest/posyandu.balita/WH-2?reason=salah%20anak",
            gw.url
        ))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    for (id, what) in [(&receipts[1], "corrected"), (&receipts[2], "cancelled")] {
        eventually(WAIT, &format!("{id} {what}"), || async {
            let r = receipt(&gw.url, &key, id).await;
            let done = match what {
                "corrected" => r["delivered_revision"] == 2,
                _ => r["status"] == "cancelled",
            };
            done.then_some(())
        })
        .await;
    }
    // It was tried, and failing is visible to operators.
    eventually(WAIT, "the webhook failing, as operators see it", || async {
        let (_, state) = get_json(&format!("{}/admin/webhooks", gw.url), &operator).await;
        let w = &state["webhooks"][0];
        (*rx.refused.lock().unwrap() > 0
            && w["backlog"].as_i64().unwrap() >= 1
            && w["last_status"] == 503)
            .then_some(())
    })
    .await;
    assert!(rx.got.lock().unwrap().is_empty());

    // Back up: every event arrives.
    rx.up.store(true, Ordering::SeqCst);
    let (_, feed) = get_json(&format!("{}/events?since=0&_count=100", gw.url), &key).await;
    let events = feed["events"].as_array().unwrap().clone();
    // 3 delivered, 1 refused, 1 corrected, 1 cancelled.
    assert_eq!(events.len(), 6, "{feed}");
    let feed_ids: HashSet<String> = events
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    eventually(WAIT, "every event at the receiver", || async {
        let got = rx.got.lock().unwrap();
        let ids: HashSet<String> = got.iter().map(|g| g.0.clone()).collect();
        (ids == feed_ids).then_some(())
    })
    .await;

    let got = rx.got.lock().unwrap().clone();
    let mut per_record: BTreeMap<String, Vec<(i64, String)>> = BTreeMap::new();
    for (id, timestamp, sig, body) in &got {
        // Each signature verifies with the secret, over exactly the bytes received.
        signature::verify(
            &secret,
            id,
            timestamp.parse().unwrap(),
            body.as_bytes(),
            sig,
        )
        .unwrap_or_else(|e| panic!("{id}: {e:?}"));
        assert!(signature::verify(&secret, id, timestamp.parse().unwrap(), b"{}", sig).is_err());
        let e: Value = serde_json::from_str(body).unwrap();
        assert_eq!(e["id"], json!(id), "the webhook-id is the event's id");
        per_record
            .entry(e["data"]["receipt"].as_str().unwrap().to_string())
            .or_default()
            .push((
                e["seq"].as_i64().unwrap(),
                e["type"].as_str().unwrap().to_string(),
            ));
    }
    // In order per record (at least once: a repeat would come after, in order too).
    for (receipt, seen) in &per_record {
        assert!(
            seen.windows(2).all(|w| w[0].0 <= w[1].0),
            "{receipt}: {seen:?}"
        );
    }
    let types = |i: usize| -> Vec<String> {
        let mut t: Vec<String> = per_record[&receipts[i]]
            .iter()
            .map(|(_, t)| t.clone())
            .collect();
        t.dedup();
        t
    };
    assert_eq!(types(0), vec!["record.delivered"]);
    assert_eq!(types(1), vec!["record.delivered", "record.corrected"]);
    assert_eq!(types(2), vec!["record.delivered", "record.cancelled"]);
    assert_eq!(types(3), vec!["record.refused"]);
    let refused = got
        .iter()
        .map(|g| serde_json::from_str::<Value>(&g.3).unwrap())
        .find(|e| e["type"] == "record.refused")
        .unwrap();
    assert!(
        texts(&refused["data"]["outcome"]).contains("10103"),
        "{refused}"
    );
    let (_, caught_up) = get_json(
        &format!("{}/admin/facilities/pkm-hook/webhook", gw.url),
        &operator,
    )
    .await;
    assert_eq!(
        (
            caught_up["backlog"].as_i64(),
            caught_up["given_up"].as_i64()
        ),
        (Some(0), Some(0)),
        "{caught_up}"
    );
    rx.handle.stop(false).await;
}
