//! Kill the gateway with SIGKILL in the middle of delivering, start it again on the same
//! data folder, and every acknowledged record reaches SATUSEHAT (the sandbox) exactly once,
//! counted by identifier.

mod common;

use common::*;
use serde_json::json;
use std::collections::HashMap;
use std::time::Duration;

const RECORDS: usize = 30;

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_mid_delivery_loses_nothing_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = Sandbox::start(dir.path(), None);
    // Slow upstream: deliveries overlap, so a kill finds some in flight.
    sandbox
        .set_faults(json!({"latency_min_ms": 300, "latency_max_ms": 700}))
        .await;
    let cfg = write_config(dir.path(), &sandbox.url, "[deliver]\nconcurrency = 4\n");
    let key = add_facility(&cfg, "pkm-durable", ORG);
    let mut gw = Gateway::start(dir.path(), Some(&cfg), &[]);

    let mut receipts = Vec::new();
    for i in 0..RECORDS {
        let (status, body) = ingest(&gw.url, &key, &record(&format!("D-{i:03}"))).await;
        assert_eq!(status, 202, "{body}");
        receipts.push(body["receipt"].as_str().unwrap().to_string());
    }

    // Some delivered, most not yet: kill now.
    eventually(Duration::from_secs(30), "first deliveries", || async {
        (sandbox.stats().await["transactions_accepted"]
            .as_u64()
            .unwrap()
            >= 4)
            .then_some(())
    })
    .await;
    gw.proc.kill();

    // The database as the killed process left it.
    let db = rusqlite::Connection::open(dir.path().join("data/gerbang.sqlite3")).unwrap();
    let counts: HashMap<String, i64> = db
        .prepare("SELECT status, COUNT(*) FROM receipts GROUP BY status")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    drop(db);
    let total: i64 = counts.values().sum();
    assert_eq!(
        total, RECORDS as i64,
        "every acknowledged record is in the store: {counts:?}"
    );
    assert!(
        counts.get("delivered").copied().unwrap_or(0) < RECORDS as i64,
        "the kill came too late to test anything: {counts:?}"
    );
    assert!(
        counts.get("delivering").copied().unwrap_or(0) > 0,
        "the kill came between deliveries: {counts:?}"
    );

    // Restart on the same data folder and let it finish.
    let gw = Gateway::start(dir.path(), Some(&cfg), &[]);
    for id in &receipts {
        eventually(Duration::from_secs(60), "all delivered after restart", || {
            let (url, key, id) = (gw.url.clone(), key.clone(), id.clone());
            async move { (receipt(&url, &key, &id).await["status"] == "delivered").then_some(()) }
        })
        .await;
    }

    // Exactly once, by identifier.
    let encounters = sandbox.identifiers("Encounter").await;
    assert_eq!(encounters.len(), RECORDS, "{encounters:?}");
    let mut seen = std::collections::HashSet::new();
    for i in 0..RECORDS {
        let ident = format!("http://sys-ids.kemkes.go.id/encounter/{ORG}|D-{i:03}");
        assert!(encounters.contains(&ident), "missing {ident}");
        assert!(seen.insert(ident));
    }
    // And every other resource of every record once: 5 Observations and 2 Immunizations each.
    let observations = sandbox.identifiers("Observation").await;
    assert_eq!(observations.len(), RECORDS * 5);
    assert_eq!(
        observations
            .iter()
            .collect::<std::collections::HashSet<_>>()
            .len(),
        RECORDS * 5
    );
    assert_eq!(sandbox.identifiers("Immunization").await.len(), RECORDS * 2);
}
