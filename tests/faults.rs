//! The sandbox misbehaves — 5xx, latency past the client timeout, 429 with Retry-After,
//! short-lived tokens, tokens revoked while requests carry them, connection resets before and
//! after it processed a Bundle — and every record still reaches it, exactly once.
//!
//! "Exactly once" is counted in the sandbox, by type and by identifier. The sandbox refuses a
//! resource whose identifier it already holds (20002), so a Bundle re-sent with the same
//! identifiers cannot create a second copy: the gateway must take that refusal as "delivered"
//! (else the record would end up dead), and any second copy under another identifier or
//! without one shows up in the per-type counts, which must be exactly what the records hold.

mod common;

use common::*;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

/// What one `record(id)` becomes upstream: 1 Encounter, 1 Condition (its diagnosis),
/// 5 Observations, 2 Immunizations.
const PER_RECORD: [(&str, usize); 4] = [
    ("Encounter", 1),
    ("Condition", 1),
    ("Observation", 5),
    ("Immunization", 2),
];

/// How long a whole batch may take to be delivered before the test fails.
const DEADLINE: Duration = Duration::from_secs(90);

struct Setup {
    _dir: tempfile::TempDir,
    sandbox: Sandbox,
    gw: Gateway,
    key: String,
}

/// A sandbox already failing with `faults`, and a gateway pointed at it (client timeout 2 s,
/// retry base 0.2 s / cap 1 s, breaker 5 failures / 0.5 s).
async fn setup(faults: Value) -> Setup {
    setup_with_timeout(faults, 2).await
}

/// The same with another client timeout: tests that count attempts must not let a machine
/// loaded by the other tests turn a slow answer into a timeout and a second attempt.
async fn setup_with_timeout(faults: Value, timeout_secs: u64) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = Sandbox::start(dir.path(), None);
    sandbox.set_faults(faults).await;
    let cfg = write_config(
        dir.path(),
        &sandbox.url,
        "[deliver]\nconcurrency = 8\nper_organization = 8\n",
    );
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(text.contains("timeout_secs = 2\n"));
    std::fs::write(
        &cfg,
        text.replace(
            "timeout_secs = 2\n",
            &format!("timeout_secs = {timeout_secs}\n"),
        ),
    )
    .unwrap();
    let key = add_facility(&cfg, "pkm-faults", ORG);
    let gw = Gateway::start(dir.path(), Some(&cfg), &[]);
    Setup {
        _dir: dir,
        sandbox,
        gw,
        key,
    }
}

/// Local ids `{prefix}-000`, `{prefix}-001`, …
fn ids(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i:03}")).collect()
}

/// Ingest one record per local id; their receipt ids.
async fn push(s: &Setup, ids: &[String]) -> Vec<String> {
    let mut receipts = Vec::new();
    for id in ids {
        let (status, body) = ingest(&s.gw.url, &s.key, &record(id)).await;
        assert_eq!(status, 202, "{body}");
        receipts.push(body["receipt"].as_str().unwrap().to_string());
    }
    receipts
}

/// Poll the receipts until all are delivered or `limit` has passed; fail at once on a dead
/// letter. `watch` sees every receipt not delivered yet, each time it is polled. The
/// delivered receipts by id.
async fn poll(
    s: &Setup,
    receipts: &[String],
    limit: Duration,
    mut watch: impl FnMut(&Value),
) -> (HashMap<String, Value>, Option<Value>) {
    let start = Instant::now();
    let mut done: HashMap<String, Value> = HashMap::new();
    loop {
        let mut waiting = None;
        for id in receipts {
            if done.contains_key(id) {
                continue;
            }
            let r = receipt(&s.gw.url, &s.key, id).await;
            match r["status"].as_str() {
                Some("delivered") => {
                    done.insert(id.clone(), r);
                }
                Some("dead") | Some("discarded") => {
                    panic!(
                        "a record was given up on: {r}\nsandbox: {}",
                        s.sandbox.stats().await
                    )
                }
                _ => {
                    watch(&r);
                    waiting = Some(r);
                }
            }
        }
        if waiting.is_none() || start.elapsed() >= limit {
            return (done, waiting);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Watch the receipts for `d` (see [`poll`]).
async fn watch(s: &Setup, receipts: &[String], d: Duration, watch: impl FnMut(&Value)) {
    poll(s, receipts, d, watch).await;
}

/// Wait until every receipt is delivered (see [`poll`]); the delivered receipts, in order.
async fn all_delivered(s: &Setup, receipts: &[String], watch: impl FnMut(&Value)) -> Vec<Value> {
    let (mut done, waiting) = poll(s, receipts, DEADLINE, watch).await;
    if let Some(waiting) = waiting {
        panic!(
            "{} of {} delivered within {DEADLINE:?}; still waiting e.g. for {waiting}\nsandbox: {}",
            done.len(),
            receipts.len(),
            s.sandbox.stats().await
        );
    }
    receipts.iter().map(|id| done.remove(id).unwrap()).collect()
}

/// The sandbox holds each record exactly once: one Encounter per local id with its
/// identifier, and nothing beyond what these records make.
async fn assert_exactly_once(s: &Setup, ids: &[String]) {
    let n = ids.len();
    let encounters = s.sandbox.identifiers("Encounter").await;
    let expected: HashSet<String> = ids
        .iter()
        .map(|id| format!("http://sys-ids.kemkes.go.id/encounter/{ORG}|{id}"))
        .collect();
    assert_eq!(expected.len(), n, "local ids are distinct");
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for e in &encounters {
        *counts.entry(e.as_str()).or_default() += 1;
    }
    for ident in &expected {
        assert_eq!(
            counts.get(ident.as_str()).copied().unwrap_or(0),
            1,
            "{ident} is not in the sandbox exactly once: {counts:?}"
        );
    }
    assert_eq!(encounters.len(), n, "{encounters:?}");

    // Every resource, by type: exactly what n records hold, each identifier once.
    let received: Value = client()
        .get(format!("{}/sandbox/received", s.sandbox.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut by_type: BTreeMap<String, usize> = BTreeMap::new();
    let mut identifiers: HashSet<(String, String)> = HashSet::new();
    for r in received["resources"].as_array().unwrap() {
        let rt = r["resourceType"].as_str().unwrap().to_string();
        *by_type.entry(rt.clone()).or_default() += 1;
        let idents = r["identifiers"].as_array().unwrap();
        assert!(!idents.is_empty(), "a resource without identifier: {r}");
        for i in idents {
            assert!(
                identifiers.insert((rt.clone(), i.as_str().unwrap().to_string())),
                "{rt} {i} twice"
            );
        }
    }
    let want: BTreeMap<String, usize> = PER_RECORD
        .iter()
        .map(|(rt, k)| (rt.to_string(), k * n))
        .collect();
    assert_eq!(by_type, want, "resources in the sandbox, by type");
    let stats = s.sandbox.stats().await;
    assert_eq!(
        stats["resources_created"].as_u64().unwrap() as usize,
        PER_RECORD.iter().map(|(_, k)| k * n).sum::<usize>(),
        "{stats}"
    );
}

fn total_attempts(delivered: &[Value]) -> u64 {
    delivered
        .iter()
        .map(|r| r["attempts"].as_u64().unwrap())
        .sum()
}

fn stat(stats: &Value, name: &str) -> u64 {
    stats[name]
        .as_u64()
        .unwrap_or_else(|| panic!("no {name} in {stats}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn thirty_percent_server_errors() {
    const N: usize = 40;
    let s = setup(json!({"error_rate": 0.3})).await;
    let ids = ids("E", N);
    let receipts = push(&s, &ids).await;
    let delivered = all_delivered(&s, &receipts, |_| {}).await;
    assert_exactly_once(&s, &ids).await;

    let stats = s.sandbox.stats().await;
    let faults = stat(&stats, "faults_injected");
    assert!(faults > 0, "no fault was injected: {stats}");
    // A 503 ends the attempt it hits: every one of them cost a retry.
    assert!(
        total_attempts(&delivered) >= N as u64 + faults,
        "{} attempts for {N} records and {faults} faults",
        total_attempts(&delivered)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn latency_up_to_past_the_client_timeout() {
    const N: usize = 40;
    // The gateway gives up after 2 s: a fifth of the calls time out, and the sandbox still
    // finishes them — some Bundles arrive although the gateway saw a timeout, and sending
    // them again meets 20002.
    let s = setup(json!({"latency_min_ms": 0, "latency_max_ms": 2500})).await;
    let ids = ids("L", N);
    let receipts = push(&s, &ids).await;
    let mut timed_out = HashSet::new();
    let mut saw_timeout = |r: &Value| {
        if r["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("timed out"))
        {
            timed_out.insert(r["receipt"].as_str().unwrap().to_string());
        }
    };
    // The latency stays until the end: a record that met 20002 is resolved by look-ups (a
    // fifth of which time out too) that the next attempt does not repeat for what they found.
    let delivered = all_delivered(&s, &receipts, &mut saw_timeout).await;
    assert_exactly_once(&s, &ids).await;
    assert!(
        !timed_out.is_empty(),
        "no receipt was seen retrying after a timeout"
    );
    assert!(total_attempts(&delivered) > N as u64);
    let stats = s.sandbox.stats().await;
    assert!(
        stat(&stats, "duplicates") > 0,
        "no Bundle that timed out had arrived: {stats}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_limits_with_retry_after() {
    const N: usize = 25;
    // Retry-After (2 s) is longer than the retry cap (1 s): only honouring it explains a
    // wait of 2 s or more.
    let s = setup(json!({"rate_limit_rate": 0.3, "retry_after_secs": 2})).await;
    let ids = ids("Q", N);
    let receipts = push(&s, &ids).await;
    let mut limited: HashMap<String, i64> = HashMap::new();
    let delivered = all_delivered(&s, &receipts, |r| {
        if r["status"] == "retrying" && r["last_error"].as_str().is_some_and(|e| e.contains("429"))
        {
            let at = |k: &str| {
                chrono::DateTime::parse_from_rfc3339(r[k].as_str().unwrap())
                    .unwrap()
                    .timestamp()
            };
            // Whole seconds: a wait of d ≥ 2 s spans at least 2 of them.
            limited.insert(
                r["receipt"].as_str().unwrap().to_string(),
                at("next_attempt_at") - at("updated_at"),
            );
        }
    })
    .await;
    assert_exactly_once(&s, &ids).await;

    let stats = s.sandbox.stats().await;
    assert!(stat(&stats, "faults_injected") > 0, "{stats}");
    assert!(
        !limited.is_empty(),
        "no receipt was seen waiting after a 429: {stats}"
    );
    for (id, wait) in &limited {
        assert!(
            *wait >= 2,
            "receipt {id} was due again {wait} s after a 429 with Retry-After: 2"
        );
    }
    let by_id: HashMap<&str, &Value> = delivered
        .iter()
        .map(|r| (r["receipt"].as_str().unwrap(), r))
        .collect();
    for id in limited.keys() {
        assert!(
            by_id[id.as_str()]["attempts"].as_u64().unwrap() >= 2,
            "{}",
            by_id[id.as_str()]
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_that_expire_every_second() {
    const N: usize = 20;
    // A little latency spreads the deliveries over several token lifetimes.
    let s = setup(json!({"token_ttl_secs": 1, "latency_min_ms": 50, "latency_max_ms": 400})).await;
    let all = ids("T", N);
    let mut receipts = Vec::new();
    for batch in all.chunks(N / 4) {
        receipts.extend(push(&s, batch).await);
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    all_delivered(&s, &receipts, |_| {}).await;
    assert_exactly_once(&s, &all).await;
    let stats = s.sandbox.stats().await;
    assert!(stat(&stats, "tokens_issued") > 1, "{stats}");
}

#[tokio::test(flavor = "multi_thread")]
async fn connection_resets_before_and_after_processing() {
    let s = setup(json!({})).await;
    // One record through a healthy sandbox: the patient and the health worker are looked up
    // and cached, so what follows sends transaction Bundles straight away.
    let first = ids("C0", 1);
    let r = push(&s, &first).await;
    all_delivered(&s, &r, |_| {}).await;

    // Every connection dropped: about half of the Bundles are stored, their answer lost.
    s.sandbox.set_faults(json!({"reset_rate": 1.0})).await;
    let cut = ids("C1", 10);
    let mut receipts = push(&s, &cut).await;
    eventually(
        Duration::from_secs(30),
        "answers to stored Bundles lost",
        || async { (stat(&s.sandbox.stats().await, "responses_lost") >= 3).then_some(()) },
    )
    .await;

    // Then three calls in ten, before or after processing, while 30 more records arrive.
    s.sandbox.set_faults(json!({"reset_rate": 0.3})).await;
    let more = ids("C2", 30);
    receipts.extend(push(&s, &more).await);
    let delivered = all_delivered(&s, &receipts, |_| {}).await;
    let all: Vec<String> = [first, cut, more].concat();
    assert_exactly_once(&s, &all).await;

    let stats = s.sandbox.stats().await;
    let lost = stat(&stats, "responses_lost");
    assert!(lost >= 3, "{stats}");
    // Each record whose answer was lost met 20002 when re-sent — and is delivered, once.
    assert!(stat(&stats, "duplicates") >= lost, "{stats}");
    assert!(stat(&stats, "resets_injected") > lost, "{stats}");
    assert!(total_attempts(&delivered) > receipts.len() as u64);
}

#[tokio::test(flavor = "multi_thread")]
async fn everything_at_once() {
    const N: usize = 40;
    // A storm of every fault for 8 s — and on until each kind has struck, so that the test
    // exercises them all (a fifth of the calls meet an expired token first and never draw a
    // fault) — then calm.
    let s = setup(json!({
        "error_rate": 0.1,
        "rate_limit_rate": 0.1,
        "retry_after_secs": 1,
        "reset_rate": 0.1,
        "latency_min_ms": 0,
        "latency_max_ms": 2200,
        "token_ttl_secs": 2,
    }))
    .await;
    let ids = ids("X", N);
    let receipts = push(&s, &ids).await;
    watch(&s, &receipts, Duration::from_secs(8), |_| {}).await;
    // 503 or 429, resets, expired tokens.
    eventually(Duration::from_secs(30), "every kind of fault", || async {
        let stats = s.sandbox.stats().await;
        let struck = stat(&stats, "resets_injected") > 0
            && stat(&stats, "faults_injected") > stat(&stats, "resets_injected")
            && stat(&stats, "unauthorized") > 0
            && stat(&stats, "tokens_issued") > 1;
        struck.then_some(())
    })
    .await;
    s.sandbox.set_faults(json!({})).await;
    all_delivered(&s, &receipts, |_| {}).await;
    assert_exactly_once(&s, &ids).await;
}

/// `POST /sandbox/revoke-tokens`: SATUSEHAT forgets every token it issued. How many.
async fn revoke_tokens(s: &Setup) -> u64 {
    let r: Value = client()
        .post(format!("{}/sandbox/revoke-tokens", s.sandbox.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    r["revoked"].as_u64().unwrap()
}

/// Every receipt delivered at its first attempt: a 401 was answered by a new token and the
/// same request again, within the attempt — never by a retry later.
fn first_attempt(s: &Setup, delivered: &[Value]) {
    for r in delivered {
        if r["attempts"] != 1 {
            let receipt = r["receipt"].as_str().unwrap_or_default();
            let log = s.gw.proc.output();
            let lines: Vec<&str> = log.lines().filter(|l| l.contains(receipt)).collect();
            panic!(
                "delivered at attempt {}, not the first: {r}\ngateway log for it:\n{}",
                r["attempts"],
                lines.join("\n")
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn revoked_tokens_are_renewed_once_for_all_deliveries_that_meet_the_401() {
    const N: usize = 8;
    let s = setup_with_timeout(json!({}), 10).await;
    // One record through a healthy sandbox: one token, the patient and the health worker
    // cached, so each record that follows is one transaction request.
    let first = ids("V0", 1);
    let r = push(&s, &first).await;
    all_delivered(&s, &r, |_| {}).await;
    let before = s.sandbox.stats().await;
    assert_eq!(stat(&before, "tokens_issued"), 1, "{before}");

    // Every request now takes 1.5 s to reach SATUSEHAT's gateway (the token is checked on
    // arrival). Eight records go out at once, all carrying the token; while they are on
    // their way, SATUSEHAT forgets it (a key rotation, a restart).
    s.sandbox
        .set_faults(json!({"latency_min_ms": 1500, "latency_max_ms": 1500}))
        .await;
    let more = ids("V1", N);
    let receipts = push(&s, &more).await;
    eventually(
        Duration::from_secs(10),
        "all transactions on their way",
        || async {
            let now = stat(&s.sandbox.stats().await, "requests");
            (now >= stat(&before, "requests") + N as u64).then_some(())
        },
    )
    .await;
    assert_eq!(revoke_tokens(&s).await, 1);

    let mut retried = Vec::new();
    let delivered = all_delivered(&s, &receipts, |r| {
        if r["status"] == "retrying" {
            retried.push(r.clone());
        }
    })
    .await;
    let all: Vec<String> = [first, more].concat();
    assert_exactly_once(&s, &all).await;
    assert!(retried.is_empty(), "a 401 became a retry: {retried:?}");
    first_attempt(&s, &delivered);

    let stats = s.sandbox.stats().await;
    // Most of the eight met the 401 (all of them unless pushing them took over 1.5 s)...
    assert!(stat(&stats, "unauthorized") >= N as u64 / 2, "{stats}");
    // ... and one of them fetched the new token that all of them used.
    assert_eq!(stat(&stats, "tokens_issued"), 2, "{stats}");
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_revoked_again_and_again_while_records_stream_in() {
    const ROUNDS: usize = 4;
    const PER_ROUND: usize = 10;
    let s = setup_with_timeout(json!({"latency_min_ms": 0, "latency_max_ms": 500}), 10).await;
    let all = ids("W", ROUNDS * PER_ROUND);
    let mut receipts = Vec::new();
    let mut revoked = 0;
    for (round, batch) in all.chunks(PER_ROUND).enumerate() {
        let (early, late) = batch.split_at(PER_ROUND / 2);
        receipts.extend(push(&s, early).await);
        // The gateway renews a revoked token lazily, when a request next meets the 401 —
        // possibly only now, at this round's first request. A second revocation just after
        // that renewal would refuse the renewed request too (two 401s in one call are a
        // retry, by design). So wait until the gateway holds a token issued after the last
        // revocation, and until every request renewed with it has arrived (≤ 0.5 s on its
        // way, twice), before revoking again.
        eventually(
            Duration::from_secs(20),
            "a token issued after the last revocation",
            || async {
                // One token before the first revocation, one after each of `round` so far.
                let issued = stat(&s.sandbox.stats().await, "tokens_issued");
                (issued >= 1 + round as u64).then_some(())
            },
        )
        .await;
        tokio::time::sleep(Duration::from_millis(1700)).await;
        receipts.extend(push(&s, late).await);
        // Part of the batch is on its way, carrying the token, when it is revoked.
        tokio::time::sleep(Duration::from_millis(300)).await;
        revoked += revoke_tokens(&s).await;
    }
    let mut retried = Vec::new();
    let delivered = all_delivered(&s, &receipts, |r| {
        if r["status"] == "retrying" {
            retried.push(r.clone());
        }
    })
    .await;
    assert_exactly_once(&s, &all).await;
    assert!(retried.is_empty(), "a 401 became a retry: {retried:?}");
    first_attempt(&s, &delivered);

    let stats = s.sandbox.stats().await;
    assert!(revoked >= 1, "{stats}");
    assert!(
        stat(&stats, "unauthorized") > 0,
        "no request met a revoked token: {stats}"
    );
    // A new token after each revocation that a request met, never one per request.
    let issued = stat(&stats, "tokens_issued");
    assert!(issued >= 2, "{stats}");
    assert!(issued <= 1 + ROUNDS as u64, "{stats}");
}
