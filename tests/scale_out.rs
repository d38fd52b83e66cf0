//! Several gateway instances on one PostgreSQL database. Three real `gerbang serve` processes
//! share one schema and one slow sandbox; records are pushed through all three; one is killed
//! with SIGKILL while it holds leases on records it is delivering. Every acknowledged record
//! still reaches SATUSEHAT (the sandbox) exactly once, counted by identifier, and the killed
//! instance's leases are taken over by the survivors — only after they expire.
//!
//! PostgreSQL: POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/test), a schema of
//! its own; skipped with a notice when unreachable unless POSTGRES_TESTS_REQUIRED=1.

mod common;

use common::*;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// Short, so the test sees leases expire. The forwarder renews a lease every third of it
/// while an attempt runs, so a live attempt keeps its record even when it is slower.
const LEASE_SECS: u64 = 3;
const VICTIM: &str = "gw-victim";
const SURVIVORS: [&str; 2] = ["gw-a", "gw-b"];

/// Three gateways on one PostgreSQL schema and one sandbox, each with its own folder and
/// configuration file: the victim and the survivors, and a facility key that works on all
/// three (`gerbang facility add` writes to PostgreSQL). The lease owner is
/// `<HOSTNAME>-<uuid>`: the host name tells the instances apart in the database.
fn three_gateways(
    dir: &std::path::Path,
    sandbox: &Sandbox,
    schema: &str,
) -> (String, Gateway, Vec<Gateway>) {
    let extra = format!(
        "[store]\nbackend = \"postgres\"\npostgres_url = \"{}\"\npostgres_schema = \"{schema}\"\n\
         max_connections = 4\n[deliver]\nconcurrency = 4\nlease_secs = {LEASE_SECS}\n",
        postgres_url()
    );
    let config = |name: &str| {
        let d = dir.join(name);
        std::fs::create_dir_all(&d).unwrap();
        (write_config(&d, &sandbox.url, &extra), d)
    };
    let (victim_cfg, victim_dir) = config(VICTIM);
    let key = add_facility(&victim_cfg, "pkm-scale", ORG);
    let victim = Gateway::start(&victim_dir, Some(&victim_cfg), &[("HOSTNAME", VICTIM)]);
    let survivors = SURVIVORS
        .iter()
        .map(|name| {
            let (cfg, d) = config(name);
            Gateway::start(&d, Some(&cfg), &[("HOSTNAME", name)])
        })
        .collect();
    (key, victim, survivors)
}

/// The tests of this file run one at a time: each starts three gateways and a sandbox, and
/// two such clusters at once on two cores would measure the machine, not the gateway.
static ONE_CLUSTER_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// An acknowledged record: which gateway took it, its local id and receipt.
#[derive(Debug, Clone)]
struct Acked {
    gateway: &'static str,
    local_id: String,
    receipt: String,
}

/// Push through one gateway until told to stop or until the gateway stops answering (the
/// victim after the kill). Only a 202 counts as acknowledged.
async fn pusher(
    name: &'static str,
    url: String,
    key: String,
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<Acked>>>,
) {
    let http = client();
    let mut i = 0;
    while !stop.load(Ordering::SeqCst) {
        let local_id = format!("{name}-{i:04}");
        i += 1;
        let sent = http
            .post(format!("{url}/ingest/posyandu.balita"))
            .bearer_auth(&key)
            .json(&record(&local_id))
            .send()
            .await;
        let Ok(r) = sent else { break };
        if r.status().as_u16() != 202 {
            break;
        }
        let Ok(body) = r.json::<serde_json::Value>().await else {
            break;
        };
        acked.lock().await.push(Acked {
            gateway: name,
            local_id,
            receipt: body["receipt"].as_str().unwrap().to_string(),
        });
        // Not flat out: the three forwarders should be delivering while records arrive.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_one_of_three_instances_loses_nothing_and_duplicates_nothing() {
    let _alone = ONE_CLUSTER_AT_A_TIME.lock().await;
    let test = "sigkill_one_of_three_instances_loses_nothing_and_duplicates_nothing";
    let Some(db) = postgres_client(test).await else {
        return;
    };
    let schema = new_schema();
    let dir = tempfile::tempdir().unwrap();
    let sandbox = Sandbox::start(dir.path(), None);
    // Slow upstream: deliveries overlap, so the kill finds the victim with records in flight.
    sandbox
        .set_faults(json!({"latency_min_ms": 300, "latency_max_ms": 700}))
        .await;

    let (key, mut victim, survivors) = three_gateways(dir.path(), &sandbox, &schema);

    // Push through all three at once.
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::<Acked>::new()));
    let mut pushers = vec![tokio::spawn(pusher(
        VICTIM,
        victim.url.clone(),
        key.clone(),
        stop.clone(),
        acked.clone(),
    ))];
    for (name, gw) in SURVIVORS.iter().zip(&survivors) {
        pushers.push(tokio::spawn(pusher(
            name,
            gw.url.clone(),
            key.clone(),
            stop.clone(),
            acked.clone(),
        )));
    }

    // Kill the victim once records are flowing and it holds leases on several of them.
    let receipts = format!("{schema}.receipts");
    let victim_leases = format!(
        "SELECT count(*) FROM {receipts} WHERE status = 'delivering' AND lease_owner LIKE '{VICTIM}-%'"
    );
    eventually(
        Duration::from_secs(60),
        "the victim delivering at least 3 records while 30 are acknowledged",
        || {
            let (db, q, acked) = (&db, &victim_leases, acked.clone());
            async move {
                let held: i64 = db.query_one(q.as_str(), &[]).await.unwrap().get(0);
                (held >= 3 && acked.lock().await.len() >= 30).then_some(())
            }
        },
    )
    .await;
    victim.proc.kill();
    let killed_at = now_ms();
    let killed = Instant::now();
    // Fast again, so a takeover's duplicate check (one search per resource) stays well within
    // the short lease.
    sandbox
        .set_faults(json!({"latency_min_ms": 0, "latency_max_ms": 50}))
        .await;

    // What the victim left behind: records leased to a process that no longer exists.
    let orphans: Vec<(String, i64, i64)> = db
        .query(
            &format!(
                "SELECT id, attempts, lease_until FROM {receipts} \
                 WHERE status = 'delivering' AND lease_owner LIKE '{VICTIM}-%'"
            ),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert!(
        !orphans.is_empty(),
        "the victim held no lease when it was killed"
    );
    for (_, _, until) in &orphans {
        assert!(
            *until > killed_at,
            "a lease of the victim had already expired"
        );
    }

    // A few more records through the survivors, then stop pushing.
    let before = acked.lock().await.len();
    eventually(
        Duration::from_secs(30),
        "more records after the kill",
        || {
            let acked = acked.clone();
            async move { (acked.lock().await.len() >= before + 10).then_some(()) }
        },
    )
    .await;
    stop.store(true, Ordering::SeqCst);
    for p in pushers {
        p.await.unwrap();
    }
    let acked = acked.lock().await.clone();
    let by_victim = acked.iter().filter(|a| a.gateway == VICTIM).count();
    assert!(by_victim > 0, "the victim acknowledged nothing");

    // Every acknowledged record ends delivered, the victim's included, as seen through a
    // survivor.
    for a in &acked {
        eventually(
            Duration::from_secs(90),
            "every acknowledged record delivered",
            || {
                let (url, key, id) = (survivors[0].url.clone(), key.clone(), a.receipt.clone());
                async move {
                    (receipt(&url, &key, &id).await["status"] == "delivered").then_some(())
                }
            },
        )
        .await;
    }
    let _ = writeln_err(&format!(
        "{} records acknowledged ({by_victim} by the victim), {} of its leases orphaned, all delivered {:.1}s after the kill",
        acked.len(),
        orphans.len(),
        killed.elapsed().as_secs_f64()
    ));

    // Exactly once, by identifier. A record the victim committed but could not acknowledge
    // before dying is delivered too (it is in the store); nothing is delivered twice.
    let encounters = sandbox.identifiers("Encounter").await;
    let mut count: HashMap<&str, usize> = HashMap::new();
    for e in &encounters {
        *count.entry(e.as_str()).or_default() += 1;
    }
    let twice: Vec<_> = count.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "delivered more than once: {twice:?}");
    for a in &acked {
        let ident = format!("http://sys-ids.kemkes.go.id/encounter/{ORG}|{}", a.local_id);
        assert_eq!(count.get(ident.as_str()), Some(&1), "missing {ident}");
    }
    let stored: i64 = db
        .query_one(
            &format!("SELECT count(*) FROM {receipts} WHERE status = 'delivered'"),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let all: i64 = db
        .query_one(&format!("SELECT count(*) FROM {receipts}"), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, all, "every stored record is delivered");
    assert_eq!(
        encounters.len() as i64,
        all,
        "one Encounter per stored record"
    );

    // The takeover, from the database: each orphaned record was leased again (attempts went
    // up), the victim's attempt was never recorded, and the attempt that delivered it started
    // only after the victim's lease had expired. Its "record delivered" line is in a
    // survivor's log.
    let mut taken_by: HashMap<&str, usize> = HashMap::new();
    for (id, attempts_at_kill, lease_until) in &orphans {
        let row = db
            .query_one(
                &format!("SELECT status, attempts FROM {receipts} WHERE id = $1"),
                &[id],
            )
            .await
            .unwrap();
        let (status, attempts): (String, i64) = (row.get(0), row.get(1));
        assert_eq!(status, "delivered");
        assert!(
            attempts > *attempts_at_kill,
            "{id} was not leased again ({attempts} attempts)"
        );
        let rows = db
            .query(
                &format!(
                    "SELECT attempt, started_at, result FROM {schema}.delivery_attempts \
                     WHERE receipt_id = $1 ORDER BY attempt"
                ),
                &[id],
            )
            .await
            .unwrap();
        let log: Vec<(i64, i64, String)> = rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect();
        assert!(
            log.iter().all(|(n, _, _)| n != attempts_at_kill),
            "{id}: the killed instance's attempt was recorded: {log:?}"
        );
        let (_, started_at, result) = log.last().expect("an attempt").clone();
        assert!(
            result == "delivered" || result == "duplicate",
            "{id}: {log:?}"
        );
        assert!(
            started_at >= *lease_until,
            "{id} was taken over at {started_at}, before the victim's lease ran out at {lease_until}"
        );
        // The line follows the commit the database shows, and is read from the pipe a moment
        // later: wait for it.
        let survivor = eventually(
            Duration::from_secs(30),
            "a survivor logging the delivery of an orphaned record",
            || {
                let found = SURVIVORS
                    .iter()
                    .zip(&survivors)
                    .find(|(_, gw)| {
                        gw.proc
                            .output()
                            .lines()
                            .any(|l| l.contains("record delivered") && l.contains(id.as_str()))
                    })
                    .map(|(name, _)| *name);
                async move { found }
            },
        )
        .await;
        *taken_by.entry(survivor).or_default() += 1;
    }
    let _ = writeln_err(&format!(
        "orphaned leases taken over after expiry: {taken_by:?}"
    ));

    // No survivor lost a lease of its own: the short lease still outlasts a live attempt.
    for gw in &survivors {
        assert!(
            !gw.proc
                .output()
                .contains("lease expired before the attempt finished"),
            "a live attempt was taken over:\n{}",
            gw.proc.output()
        );
    }
    drop(survivors);
    drop_schema(&schema).await;
}

/// Corrections of records already delivered, pushed through three instances on one database
/// while one of them is killed with SIGKILL mid-way: every record ends with SATUSEHAT holding
/// its latest acknowledged revision's content, and nothing is created twice.
#[tokio::test(flavor = "multi_thread")]
async fn corrections_through_three_instances_with_one_killed_end_with_the_latest_content() {
    let _alone = ONE_CLUSTER_AT_A_TIME.lock().await;
    let test = "corrections_through_three_instances_with_one_killed_end_with_the_latest_content";
    let Some(db) = postgres_client(test).await else {
        return;
    };
    let schema = new_schema();
    let dir = tempfile::tempdir().unwrap();
    let sandbox = Sandbox::start(dir.path(), None);
    let (key, mut victim, survivors) = three_gateways(dir.path(), &sandbox, &schema);
    let urls: Vec<String> = std::iter::once(victim.url.clone())
        .chain(survivors.iter().map(|g| g.url.clone()))
        .collect();

    // Revision 1 of each record, through all three.
    const N: usize = 24;
    let weight = |i: usize, revision: usize| 8.0 + (i as f64) / 100.0 + (revision as f64) / 1000.0;
    let revision_of = |i: usize, revision: usize| {
        let mut r = record(&format!("SC-{i:02}"));
        r["pengukuran"]["berat_badan"] = json!(weight(i, revision));
        r
    };
    let mut receipts = Vec::new();
    for i in 0..N {
        let (status, body) = ingest(&urls[i % 3], &key, &revision_of(i, 1)).await;
        assert_eq!(status, 202, "{body}");
        receipts.push(body["receipt"].as_str().unwrap().to_string());
    }
    for id in &receipts {
        eventually(Duration::from_secs(90), "revision 1 delivered", || {
            let (url, key, id) = (survivors[0].url.clone(), key.clone(), id.clone());
            async move { (receipt(&url, &key, &id).await["status"] == "delivered").then_some(()) }
        })
        .await;
    }

    // Corrections, with a slow upstream so that they overlap; the victim dies in the middle.
    sandbox
        .set_faults(json!({"latency_min_ms": 300, "latency_max_ms": 700}))
        .await;
    // What each record's latest acknowledged revision says its weight is.
    let mut latest: HashMap<usize, f64> = (0..N).map(|i| (i, weight(i, 1))).collect();
    let victim_leases = format!(
        "SELECT count(*) FROM {schema}.receipts WHERE status = 'delivering' AND lease_owner LIKE '{VICTIM}-%'"
    );
    let mut killed = false;
    for revision in 2..=3 {
        for i in 0..N {
            let r = revision_of(i, revision);
            let url = &urls[i % 3];
            if killed && url == &victim.url {
                continue;
            }
            let (status, body) = ingest(url, &key, &r).await;
            assert_eq!(status, 202, "{body}");
            latest.insert(i, weight(i, revision));
            if !killed && (revision == 3 || i >= N / 2) {
                let held: i64 = db
                    .query_one(victim_leases.as_str(), &[])
                    .await
                    .unwrap()
                    .get(0);
                if held >= 1 {
                    victim.proc.kill();
                    killed = true;
                }
            }
        }
    }
    if !killed {
        eventually(
            Duration::from_secs(60),
            "the victim delivering a correction",
            || {
                let (db, q) = (&db, &victim_leases);
                async move {
                    let held: i64 = db.query_one(q.as_str(), &[]).await.unwrap().get(0);
                    (held >= 1).then_some(())
                }
            },
        )
        .await;
        victim.proc.kill();
    }
    sandbox
        .set_faults(json!({"latency_min_ms": 0, "latency_max_ms": 50}))
        .await;

    // Every record ends with its latest revision delivered, as seen through a survivor.
    for id in &receipts {
        eventually(
            Duration::from_secs(120),
            "the latest revision delivered",
            || {
                let (url, key, id) = (survivors[0].url.clone(), key.clone(), id.clone());
                async move {
                    let r = receipt(&url, &key, &id).await;
                    (r["status"] == "delivered" && r["delivered_revision"] == r["revision"])
                        .then_some(())
                }
            },
        )
        .await;
    }
    let v: serde_json::Value = client()
        .get(format!("{}/sandbox/received", sandbox.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut holders: HashMap<String, Vec<serde_json::Value>> = HashMap::new();
    for r in v["resources"].as_array().unwrap() {
        for i in r["identifiers"].as_array().unwrap() {
            holders
                .entry(i.as_str().unwrap().to_string())
                .or_default()
                .push(r.clone());
        }
    }
    for (ident, items) in &holders {
        assert_eq!(items.len(), 1, "{ident} created {} times", items.len());
    }
    for (i, w) in &latest {
        let ident = format!("http://sys-ids.kemkes.go.id/observation/{ORG}|SC-{i:02}/berat-badan");
        let held = &holders[&ident][0];
        assert_eq!(
            held["resource"]["valueQuantity"]["value"].as_f64(),
            Some(*w),
            "SC-{i:02} holds an older revision: {held}"
        );
    }
    drop(survivors);
    drop_schema(&schema).await;
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Straight to the terminal, so the numbers show up in `cargo test` output.
fn writeln_err(s: &str) -> std::io::Result<()> {
    use std::io::Write;
    writeln!(std::io::stderr(), "{s}")
}
