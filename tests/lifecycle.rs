//! A record's whole life, end to end: the real `gerbang serve` and a standalone sandbox, over
//! real HTTP, counted in the sandbox by identifier and version. Corrections before delivery,
//! after delivery and after a refusal; cancellation before and after delivery; a stale
//! `If-Match`; a correction racing the delivery under way; a refusal that SATUSEHAT partly
//! stored and whose search lags; the facility's own view and its event feed. In every case
//! each SATUSEHAT resource ends with the latest revision's content, and nothing is created
//! twice.

mod common;

use common::*;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(90);

struct Setup {
    _dir: tempfile::TempDir,
    sandbox: Sandbox,
    gw: Gateway,
    key: String,
    operator: String,
}

fn start() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = Sandbox::start(dir.path(), None);
    let cfg = write_config(dir.path(), &sandbox.url, "");
    let key = add_facility(&cfg, "pkm-life", ORG);
    let operator = gerbang(&cfg, &["operator", "add", "--name", "ops"]);
    let gw = Gateway::start(dir.path(), Some(&cfg), &[]);
    Setup {
        _dir: dir,
        sandbox,
        gw,
        key,
        operator,
    }
}

fn gerbang(config: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new(BIN)
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Every resource the sandbox holds: `(resourceType, system|value)` → the items holding it.
async fn held(sandbox: &Sandbox) -> HashMap<(String, String), Vec<Value>> {
    let v: Value = client()
        .get(format!("{}/sandbox/received", sandbox.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut out: HashMap<(String, String), Vec<Value>> = HashMap::new();
    for r in v["resources"].as_array().unwrap() {
        for i in r["identifiers"].as_array().unwrap() {
            out.entry((
                r["resourceType"].as_str().unwrap().to_string(),
                i.as_str().unwrap().to_string(),
            ))
            .or_default()
            .push(r.clone());
        }
    }
    out
}

/// The one resource holding `rt` identifier `…|<local_id>/<key>` (or `…|<local_id>` when
/// `key` is empty); fails if it is held twice.
fn one<'a>(
    held: &'a HashMap<(String, String), Vec<Value>>,
    rt: &str,
    value: &str,
) -> Option<&'a Value> {
    let system = format!("http://sys-ids.kemkes.go.id/{}/{ORG}", rt.to_lowercase());
    let items = held.get(&(rt.to_string(), format!("{system}|{value}")))?;
    assert_eq!(items.len(), 1, "{rt} {value} is held {} times", items.len());
    Some(&items[0])
}

/// No identifier is held by more than one resource: nothing was created twice.
fn nothing_twice(held: &HashMap<(String, String), Vec<Value>>) {
    for ((rt, ident), items) in held {
        assert_eq!(items.len(), 1, "{rt} {ident} created {} times", items.len());
    }
}

async fn push(
    gw: &Gateway,
    key: &str,
    record: &Value,
    if_match: Option<&str>,
) -> (u16, Value, Option<String>) {
    let mut req = client()
        .post(format!("{}/ingest/posyandu.balita", gw.url))
        .bearer_auth(key)
        .json(record);
    if let Some(m) = if_match {
        req = req.header("If-Match", m);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let etag = r
        .headers()
        .get("ETag")
        .map(|v| v.to_str().unwrap().to_string());
    (status, r.json().await.unwrap_or(Value::Null), etag)
}

async fn cancel(gw: &Gateway, key: &str, local_id: &str, reason: &str) -> (u16, Value) {
    let r = client()
        .delete(format!("{}/ingest/posyandu.balita/{local_id}", gw.url))
        .bearer_auth(key)
        .json(&json!({"reason": reason}))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Wait until the receipt satisfies `done`.
async fn until(
    gw: &Gateway,
    key: &str,
    id: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    eventually(WAIT, &format!("receipt {id}: {what}"), || async {
        let r = receipt(&gw.url, key, id).await;
        done(&r).then_some(r)
    })
    .await
}

fn weight(r: &Value) -> f64 {
    r["resource"]["valueQuantity"]["value"].as_f64().unwrap()
}

async fn set_faults(sandbox: &Sandbox, faults: Value) {
    sandbox.set_faults(faults).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_correction_before_delivery_replaces_the_waiting_revision() {
    let s = start();
    // SATUSEHAT is down: the first revision waits, retrying.
    set_faults(&s.sandbox, json!({"error_rate": 1.0})).await;
    let (status, first, etag) = push(&s.gw, &s.key, &record("LC-1"), None).await;
    assert_eq!((status, etag.as_deref()), (202, Some("\"1\"")), "{first}");
    let id = first["receipt"].as_str().unwrap().to_string();
    until(&s.gw, &s.key, &id, "retrying", |r| {
        r["status"] == "retrying"
    })
    .await;
    let mut fixed = record("LC-1");
    fixed["pengukuran"]["berat_badan"] = json!(8.30);
    let (status, second, etag) = push(&s.gw, &s.key, &fixed, None).await;
    assert_eq!((status, etag.as_deref()), (202, Some("\"2\"")), "{second}");
    assert_eq!(
        (second["receipt"].as_str(), second["revision"].as_i64()),
        (Some(id.as_str()), Some(2))
    );

    set_faults(&s.sandbox, json!({})).await;
    let r = until(&s.gw, &s.key, &id, "delivered", |r| {
        r["status"] == "delivered"
    })
    .await;
    assert_eq!(r["delivered_revision"], 2, "{r}");
    let outcomes: Vec<&str> = r["revisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, vec!["superseded", "delivered"], "{r}");
    let held = held(&s.sandbox).await;
    nothing_twice(&held);
    let w = one(&held, "Observation", "LC-1/berat-badan").expect("the weight was delivered");
    assert_eq!(weight(w), 8.30);
    assert_eq!(w["versions"], 1, "nothing of the first revision was sent");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_correction_after_delivery_updates_what_changed_and_retires_what_is_gone() {
    let s = start();
    let mut first = record("LC-2");
    first["pengukuran"].as_object_mut().unwrap().remove("lila");
    let (status, body, _) = push(&s.gw, &s.key, &first, None).await;
    assert_eq!(status, 202, "{body}");
    let id = body["receipt"].as_str().unwrap().to_string();
    until(&s.gw, &s.key, &id, "delivered", |r| {
        r["status"] == "delivered"
    })
    .await;
    let before = held(&s.sandbox).await;
    let encounter_id = one(&before, "Encounter", "LC-2").unwrap()["id"].clone();
    let weight_id = one(&before, "Observation", "LC-2/berat-badan").unwrap()["id"].clone();
    assert!(one(&before, "Observation", "LC-2/lila").is_none());

    // The kader typed the weight wrong, forgot the arm circumference, and the IPV dose was
    // not given after all.
    let mut second = record("LC-2");
    second["pengukuran"]["berat_badan"] = json!(8.30);
    second["imunisasi"]
        .as_array_mut()
        .unwrap()
        .retain(|i| i["antigen"] != "IPV");
    let (status, body, etag) = push(&s.gw, &s.key, &second, Some("\"1\"")).await;
    assert_eq!((status, etag.as_deref()), (202, Some("\"2\"")), "{body}");
    let r = until(&s.gw, &s.key, &id, "revision 2 delivered", |r| {
        r["delivered_revision"] == 2
    })
    .await;
    assert_eq!(r["status"], "delivered");
    let changes = &r["revisions"][1]["changes"];
    assert_eq!(
        (
            changes["created"].as_i64(),
            changes["updated"].as_i64(),
            changes["retired"].as_i64()
        ),
        (Some(1), Some(1), Some(1)),
        "{r}"
    );

    let after = held(&s.sandbox).await;
    nothing_twice(&after);
    // Changed: PUT to the same id, a second version.
    let w = one(&after, "Observation", "LC-2/berat-badan").unwrap();
    assert_eq!(
        (w["id"].clone(), w["versionId"].as_str(), weight(w)),
        (weight_id, Some("2"), 8.30)
    );
    // New: created once.
    assert_eq!(
        one(&after, "Observation", "LC-2/lila").unwrap()["versions"],
        1
    );
    // Gone: entered-in-error, same id.
    let ipv = one(&after, "Immunization", "LC-2/imunisasi/IPV/2").unwrap();
    assert_eq!(
        (ipv["versions"].as_i64(), ipv["resource"]["status"].as_str()),
        (Some(2), Some("entered-in-error"))
    );
    // Unchanged: not sent again.
    let enc = one(&after, "Encounter", "LC-2").unwrap();
    assert_eq!(
        (enc["id"].clone(), enc["versions"].as_i64()),
        (encounter_id, Some(1))
    );
    assert_eq!(
        one(&after, "Immunization", "LC-2/imunisasi/MR/1").unwrap()["versions"],
        1
    );

    // The facility's events: delivered, then corrected.
    let (_, events) = get_json(&format!("{}/events?since=0", s.gw.url), &s.key).await;
    let kinds: Vec<(&str, i64)> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap(),
                e["data"]["revision"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        vec![("record.delivered", 1), ("record.corrected", 2)],
        "{events}"
    );
    let _ = &s.operator;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stale_if_match_is_refused() {
    let s = start();
    let (_, body, _) = push(&s.gw, &s.key, &record("LC-3"), None).await;
    let id = body["receipt"].as_str().unwrap().to_string();
    let mut v2 = record("LC-3");
    v2["pengukuran"]["berat_badan"] = json!(8.2);
    assert_eq!(push(&s.gw, &s.key, &v2, Some("\"1\"")).await.0, 202);
    // Another system still at revision 1.
    let mut v3 = record("LC-3");
    v3["pengukuran"]["berat_badan"] = json!(8.4);
    let (status, oo, _) = push(&s.gw, &s.key, &v3, Some("\"1\"")).await;
    assert_eq!(status, 412, "{oo}");
    assert_eq!(oo["resourceType"], "OperationOutcome");
    assert!(texts(&oo).contains("revision 2"), "{oo}");
    let (status, oo, _) = push(&s.gw, &s.key, &record("LC-none"), Some("\"1\"")).await;
    assert_eq!(status, 412, "no such record: {oo}");
    let (status, oo, _) = push(&s.gw, &s.key, &v3, Some("soon")).await;
    assert_eq!(status, 400, "{oo}");
    let r = until(&s.gw, &s.key, &id, "revision 2 delivered", |r| {
        r["delivered_revision"] == 2
    })
    .await;
    assert_eq!(r["revision"], 2, "the stale push changed nothing: {r}");
    let held = held(&s.sandbox).await;
    assert_eq!(
        weight(one(&held, "Observation", "LC-3/berat-badan").unwrap()),
        8.2
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_correction_racing_the_delivery_under_way_waits_for_it() {
    let s = start();
    // Slow upstream: the correction arrives while the first revision is on its way.
    set_faults(
        &s.sandbox,
        json!({"latency_min_ms": 1500, "latency_max_ms": 1500}),
    )
    .await;
    let (_, body, _) = push(&s.gw, &s.key, &record("LC-4"), None).await;
    let id = body["receipt"].as_str().unwrap().to_string();
    until(&s.gw, &s.key, &id, "delivering", |r| {
        r["status"] == "delivering"
    })
    .await;
    let mut fixed = record("LC-4");
    fixed["pengukuran"]["berat_badan"] = json!(8.55);
    let (status, body, _) = push(&s.gw, &s.key, &fixed, None).await;
    assert_eq!(
        (status, body["revision"].as_i64()),
        (202, Some(2)),
        "{body}"
    );
    let r = until(&s.gw, &s.key, &id, "revision 2 delivered", |r| {
        r["delivered_revision"] == 2
    })
    .await;
    let outcomes: Vec<&str> = r["revisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes,
        vec!["delivered", "delivered"],
        "one after the other: {r}"
    );
    let held = held(&s.sandbox).await;
    nothing_twice(&held);
    let w = one(&held, "Observation", "LC-4/berat-badan").unwrap();
    assert_eq!((weight(w), w["versions"].as_i64()), (8.55, Some(2)));
    assert_eq!(one(&held, "Encounter", "LC-4").unwrap()["versions"], 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn cancellation_before_and_after_delivery() {
    let s = start();
    // Before delivery: nothing is sent.
    set_faults(&s.sandbox, json!({"error_rate": 1.0})).await;
    let (_, body, _) = push(&s.gw, &s.key, &record("LC-5"), None).await;
    let early = body["receipt"].as_str().unwrap().to_string();
    until(&s.gw, &s.key, &early, "retrying", |r| {
        r["status"] == "retrying"
    })
    .await;
    let (status, r) = cancel(&s.gw, &s.key, "LC-5", "anak yang salah").await;
    assert_eq!(
        (status, r["status"].as_str()),
        (200, Some("cancelled")),
        "{r}"
    );
    set_faults(&s.sandbox, json!({})).await;

    // After delivery: each resource becomes entered-in-error.
    let (_, body, _) = push(&s.gw, &s.key, &record("LC-6"), None).await;
    let late = body["receipt"].as_str().unwrap().to_string();
    until(&s.gw, &s.key, &late, "delivered", |r| {
        r["status"] == "delivered"
    })
    .await;
    let (status, r) = cancel(&s.gw, &s.key, "LC-6", "kunjungan tercatat dua kali").await;
    assert_eq!(status, 202, "{r}");
    let r = until(&s.gw, &s.key, &late, "cancelled", |r| {
        r["status"] == "cancelled"
    })
    .await;
    assert_eq!(r["cancellation"]["reason"], "kunjungan tercatat dua kali");
    // Twice is harmless; a correction cannot revive it; no reason is refused.
    let (status, again) = cancel(&s.gw, &s.key, "LC-6", "lagi").await;
    assert_eq!(
        (status, again["cancellation"]["reason"].as_str()),
        (200, Some("kunjungan tercatat dua kali"))
    );
    let mut changed = record("LC-6");
    changed["pengukuran"]["berat_badan"] = json!(9.0);
    assert_eq!(push(&s.gw, &s.key, &changed, None).await.0, 409);
    let r = client()
        .delete(format!("{}/ingest/posyandu.balita/LC-6", s.gw.url))
        .bearer_auth(&s.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400, "a reason is required");
    let (status, _) = cancel(&s.gw, &s.key, "LC-nope", "x").await;
    assert_eq!(status, 404);

    let held = held(&s.sandbox).await;
    nothing_twice(&held);
    assert!(
        one(&held, "Encounter", "LC-5").is_none(),
        "nothing of the early one was sent"
    );
    let owned: Vec<&Value> = held
        .iter()
        .filter(|((_, ident), _)| ident.ends_with("|LC-6") || ident.contains("|LC-6/"))
        .map(|(_, items)| &items[0])
        .collect();
    assert_eq!(
        owned.len(),
        9,
        "encounter, condition, 5 observations, 2 immunizations"
    );
    for r in owned {
        // A Condition has no status: its verificationStatus says entered-in-error.
        let state = if r["resourceType"] == "Condition" {
            &r["resource"]["verificationStatus"]["coding"][0]["code"]
        } else {
            &r["resource"]["status"]
        };
        assert_eq!(state, "entered-in-error", "{r}");
        assert_eq!(r["versions"], 2, "{r}");
    }
}

/// A refused transaction that SATUSEHAT partly stored, then a correction: the correction
/// meets 20002 for what was stored, SATUSEHAT's search does not find it yet, so it is tried
/// again later — not dead-lettered — and once found, it is updated, not created twice.
#[tokio::test(flavor = "multi_thread")]
async fn a_refused_partly_stored_record_is_corrected_through_a_lagging_search() {
    let s = start();
    set_faults(
        &s.sandbox,
        json!({"refuse_identifiers": ["LC-7/lingkar-kepala"], "keep_first_entry_on_refusal": true, "search_delay_ms": 3_600_000}),
    )
    .await;
    let (_, body, _) = push(&s.gw, &s.key, &record("LC-7"), None).await;
    let id = body["receipt"].as_str().unwrap().to_string();
    let dead = until(&s.gw, &s.key, &id, "dead", |r| r["status"] == "dead").await;
    // SATUSEHAT's error in the facility's terms: rule, text, and the field of its record.
    let error = &dead["errors"][0];
    assert_eq!(error["rule"], 10103, "{dead}");
    assert!(
        error["text"].as_str().unwrap().contains("Code not found"),
        "{dead}"
    );
    assert!(
        error["record_fields"]
            .as_array()
            .unwrap()
            .contains(&json!("/pengukuran/lingkar_kepala")),
        "{dead}"
    );
    let (_, listed) = get_json(&format!("{}/receipts?status=dead", s.gw.url), &s.key).await;
    assert_eq!(
        listed["receipts"][0]["errors"][0]["rule"], 10103,
        "{listed}"
    );
    let stored = held(&s.sandbox).await;
    assert!(
        one(&stored, "Encounter", "LC-7").is_some(),
        "the refused transaction left its Encounter"
    );

    // The correction: no head circumference.
    let mut fixed = record("LC-7");
    fixed["pengukuran"]
        .as_object_mut()
        .unwrap()
        .remove("lingkar_kepala");
    fixed["pengukuran"]["berat_badan"] = json!(8.25);
    assert_eq!(push(&s.gw, &s.key, &fixed, None).await.0, 202);
    // 20002, and the search finds nothing: retried, not dead.
    eventually(WAIT, "a retry after 20002-not-found", || async {
        let (_, r) = admin_get(&s, &format!("/admin/receipts/{id}")).await;
        r["attempts_log"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| {
                a["result"] == "retry" && a["detail"].as_str().is_some_and(|d| d.contains("20002"))
            })
            .then_some(())
    })
    .await;
    assert_ne!(receipt(&s.gw.url, &s.key, &id).await["status"], "dead");
    // The search catches up.
    set_faults(&s.sandbox, json!({})).await;
    let r = until(&s.gw, &s.key, &id, "delivered", |r| {
        r["status"] == "delivered"
    })
    .await;
    assert_eq!(r["revisions"][0]["closed"], "corrected", "{r}");
    let held = held(&s.sandbox).await;
    nothing_twice(&held);
    let enc = one(&held, "Encounter", "LC-7").unwrap();
    assert_eq!(
        enc["versions"], 2,
        "found and updated with the correction: {enc}"
    );
    assert_eq!(
        weight(one(&held, "Observation", "LC-7/berat-badan").unwrap()),
        8.25
    );
    assert!(one(&held, "Observation", "LC-7/lingkar-kepala").is_none());
}

async fn admin_get(s: &Setup, path: &str) -> (u16, Value) {
    get_json(&format!("{}{path}", s.gw.url), &s.operator).await
}

/// The facility's own list: only its records, newest change first, a cursor for the next page.
#[tokio::test(flavor = "multi_thread")]
async fn the_facility_lists_its_own_records() {
    let s = start();
    let cfg = s._dir.path().join("gerbang.toml");
    let other = add_facility(&cfg, "pkm-other", ORG);
    let mut ids = Vec::new();
    for i in 0..3 {
        let (status, body, _) = push(&s.gw, &s.key, &record(&format!("LC-L{i}")), None).await;
        assert_eq!(status, 202, "{body}");
        ids.push(body["receipt"].as_str().unwrap().to_string());
    }
    assert_eq!(push(&s.gw, &other, &record("LC-OTHER"), None).await.0, 202);
    // Settled first: a record that changes while the pages are read moves ahead of the
    // cursor (newest change first) and is found by the next `since=` instead.
    for id in &ids {
        until(&s.gw, &s.key, id, "delivered", |r| {
            r["status"] == "delivered"
        })
        .await;
    }
    let mut seen = Vec::new();
    let mut next = "/receipts?_count=2&record_type=posyandu.balita".to_string();
    loop {
        let (_, page) = get_json(&format!("{}{next}", s.gw.url), &s.key).await;
        for r in page["receipts"].as_array().unwrap() {
            assert!(r["revision"].is_i64() && r["status"].is_string(), "{r}");
            seen.push(r["local_id"].as_str().unwrap().to_string());
        }
        match page["next"].as_str() {
            Some(n) => next = n.to_string(),
            None => break,
        }
    }
    seen.sort();
    assert_eq!(seen, vec!["LC-L0", "LC-L1", "LC-L2"], "its own, each once");
    let (status, _) = get_json(&format!("{}/receipts?status=lost", s.gw.url), &s.key).await;
    assert_eq!(status, 400);
}
