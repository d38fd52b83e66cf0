//! One store test suite, run against both backends: the embedded SQLite store and the real
//! PostgreSQL server (POSTGRES_URL, default postgres://postgres@127.0.0.1:5432/test; each test
//! in a schema of its own). Without a reachable PostgreSQL the PostgreSQL half is skipped with
//! a notice on the terminal, unless POSTGRES_TESTS_REQUIRED=1 (as in CI), which makes it fail.

mod common;

use gerbang::store::postgres::PostgresStore;
use gerbang::store::sqlite::SqliteStore;
use gerbang::store::*;
use serde_json::json;
use std::collections::HashSet;
use std::sync::Arc;

fn record(id: &str, content: &str) -> NewRecord {
    NewRecord {
        facility_id: "pkm-1".into(),
        organization_id: "1000000001".into(),
        record_type: "posyandu.balita".into(),
        local_id: id.into(),
        content_hash: sha256_hex(content.as_bytes()),
        format: Some("sikda-generik".into()),
        // Decimals and key order must survive the store exactly.
        raw: serde_json::from_str(&format!(
            r#"{{"id_kunjungan": "{id}", "berat": 8.10, "a": 1}}"#
        ))
        .unwrap(),
        bundle: json!({"resourceType": "Bundle", "type": "transaction", "entry": []}),
        received_at: 1_000,
    }
}

async fn accept(s: &dyn Store, id: &str) -> String {
    match s.accept(record(id, id)).await.unwrap() {
        Accepted::New { receipt_id } => receipt_id,
        other => panic!("{other:?}"),
    }
}

// ------------------------------------------------------------------------------ the suite

async fn accept_is_durable_idempotent_and_detects_changes(s: Arc<dyn Store>) {
    let id = accept(s.as_ref(), "K-1").await;
    assert_eq!(
        s.accept(record("K-1", "K-1")).await.unwrap(),
        Accepted::Existing {
            receipt_id: id.clone(),
            same_content: true
        }
    );
    assert_eq!(
        s.accept(record("K-1", "changed")).await.unwrap(),
        Accepted::Existing {
            receipt_id: id.clone(),
            same_content: false
        }
    );
    assert_eq!(
        s.find_by_local_id("pkm-1", "posyandu.balita", "K-1")
            .await
            .unwrap()
            .unwrap()
            .0,
        id
    );
    let r = s.receipt(&id).await.unwrap().unwrap();
    assert_eq!(r.status, Status::Queued);
    let p = s.payload(&id).await.unwrap().unwrap();
    assert_eq!(
        serde_json::to_string(&p.raw).unwrap(),
        r#"{"id_kunjungan":"K-1","berat":8.10,"a":1}"#
    );
}

async fn leases_are_exclusive_and_fenced(s: Arc<dyn Store>) {
    let id = accept(s.as_ref(), "K-2").await;
    let a = s
        .lease_due("A", "1000000001", 2_000, 10_000, 10)
        .await
        .unwrap();
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].attempts, 1);
    // Held: nobody else gets it.
    assert!(
        s.lease_due("B", "1000000001", 3_000, 10_000, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // Expired: B takes it over, and A's late answer changes nothing.
    let b = s
        .lease_due("B", "1000000001", 20_000, 10_000, 10)
        .await
        .unwrap();
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].attempts, 2);
    let delivered = Completion::Delivered {
        server_ids: json!([{"resourceType": "Encounter", "id": "e1"}]),
        duplicate: false,
    };
    assert!(
        !s.complete(&id, "A", 2_000, 21_000, delivered.clone())
            .await
            .unwrap()
    );
    assert!(
        s.complete(&id, "B", 20_000, 21_000, delivered)
            .await
            .unwrap()
    );
    let r = s.receipt(&id).await.unwrap().unwrap();
    assert_eq!(r.status, Status::Delivered);
    assert_eq!(r.server_ids.unwrap()[0]["id"], "e1");
    assert_eq!(
        s.attempts(&id)
            .await
            .unwrap()
            .iter()
            .map(|a| a.result.as_str())
            .collect::<Vec<_>>(),
        vec!["delivered"]
    );
}

async fn retries_wait_for_their_time(s: Arc<dyn Store>) {
    let id = accept(s.as_ref(), "K-3").await;
    let l = s
        .lease_due("A", "1000000001", 2_000, 10_000, 10)
        .await
        .unwrap();
    assert_eq!(l.len(), 1);
    let retry = Completion::Retry {
        next_attempt_at: 50_000,
        error: "SATUSEHAT transaction answered HTTP 503".into(),
        http_status: Some(503),
    };
    assert!(s.complete(&id, "A", 2_000, 3_000, retry).await.unwrap());
    let r = s.receipt(&id).await.unwrap().unwrap();
    assert_eq!(
        (r.status, r.next_attempt_at),
        (Status::Retrying, Some(50_000))
    );
    assert!(r.last_error.unwrap().contains("503"));
    assert_eq!(s.next_due_at().await.unwrap(), Some(50_000));
    assert!(
        s.lease_due("A", "1000000001", 49_999, 10_000, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        s.lease_due("A", "1000000001", 50_000, 10_000, 10)
            .await
            .unwrap()
            .len(),
        1
    );
    let attempts = s.attempts(&id).await.unwrap();
    assert_eq!(
        (attempts[0].result.as_str(), attempts[0].http_status),
        ("retry", Some(503))
    );
}

async fn dead_letters_are_listed_requeued_and_discarded(s: Arc<dyn Store>) {
    let oo = json!({"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "value",
        "details": {"text": "Wrong organization ID (RuleNumber: 10117)"}}]});
    let mut ids = Vec::new();
    for k in ["K-4", "K-5", "K-6"] {
        let id = accept(s.as_ref(), k).await;
        s.lease_due("A", "1000000001", 2_000, 10_000, 1)
            .await
            .unwrap();
        let dead = Completion::Dead {
            error: "refused (rule 10117)".into(),
            outcome: oo.clone(),
            http_status: Some(400),
        };
        assert!(s.complete(&id, "A", 2_000, 3_000, dead).await.unwrap());
        ids.push(id);
    }
    let dead = s
        .list_receipts(
            &ReceiptFilter {
                status: Some(Status::Dead),
                rule: Some(10117),
                ..Default::default()
            },
            10,
        )
        .await
        .unwrap();
    assert_eq!(dead.len(), 3);
    assert!(
        s.list_receipts(
            &ReceiptFilter {
                rule: Some(10118),
                ..Default::default()
            },
            10
        )
        .await
        .unwrap()
        .is_empty()
    );

    let new_bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [{"fullUrl": "urn:uuid:x"}]});
    assert!(s.requeue(&ids[0], &new_bundle, 4_000).await.unwrap());
    assert!(
        !s.requeue(&ids[0], &new_bundle, 4_000).await.unwrap(),
        "only a dead letter is requeued"
    );
    let leased = s
        .lease_due("A", "1000000001", 4_000, 10_000, 10)
        .await
        .unwrap();
    assert_eq!(leased.len(), 1);
    assert_eq!(
        leased[0].bundle, new_bundle,
        "the replay sends the re-mapped Bundle"
    );
    // A replay starts a fresh retry budget: attempts and age count from the replay.
    assert_eq!(leased[0].attempts, 1, "attempts since the replay");
    assert_eq!(
        leased[0].created_at, 4_000,
        "the age counts from the replay"
    );
    assert_eq!(
        s.receipt(&ids[0]).await.unwrap().unwrap().attempts,
        2,
        "the receipt still counts every attempt"
    );

    assert!(
        s.discard(
            &ids[1],
            "patient died before registration; sent on paper",
            5_000
        )
        .await
        .unwrap()
    );
    assert!(!s.discard(&ids[1], "again", 5_000).await.unwrap());
    let r = s.receipt(&ids[1]).await.unwrap().unwrap();
    assert_eq!(r.status, Status::Discarded);
    assert_eq!(
        r.discard_reason.as_deref(),
        Some("patient died before registration; sent on paper")
    );
}

async fn retention_prunes_payloads_but_keeps_receipts(s: Arc<dyn Store>) {
    let id = accept(s.as_ref(), "K-7").await;
    let queued = accept(s.as_ref(), "K-8").await;
    s.lease_due("A", "1000000001", 2_000, 10_000, 1)
        .await
        .unwrap();
    assert!(
        s.complete(
            &id,
            "A",
            2_000,
            3_000,
            Completion::Delivered {
                server_ids: json!([]),
                duplicate: true
            }
        )
        .await
        .unwrap()
    );
    assert_eq!(s.prune_payloads(2_999).await.unwrap(), 0, "not old enough");
    assert_eq!(s.prune_payloads(10_000).await.unwrap(), 1);
    assert!(s.payload(&id).await.unwrap().is_none());
    assert!(s.receipt(&id).await.unwrap().unwrap().pruned);
    // A record not delivered yet is never pruned.
    assert!(s.payload(&queued).await.unwrap().is_some());
}

async fn lookups_expire(s: Arc<dyn Store>) {
    s.cache_lookup("Patient|nik", "h1", "P02478375538", 10_000)
        .await
        .unwrap();
    assert_eq!(
        s.cached_lookup("Patient|nik", "h1", 9_999)
            .await
            .unwrap()
            .as_deref(),
        Some("P02478375538")
    );
    assert_eq!(
        s.cached_lookup("Patient|nik", "h1", 10_000).await.unwrap(),
        None
    );
    s.cache_lookup("Patient|nik", "h1", "P1", 20_000)
        .await
        .unwrap();
    assert_eq!(
        s.cached_lookup("Patient|nik", "h1", 10_000)
            .await
            .unwrap()
            .as_deref(),
        Some("P1")
    );
}

async fn facility_keys_resolve_by_hash(s: Arc<dyn Store>) {
    let f = Facility {
        id: "pkm-1".into(),
        name: "Puskesmas".into(),
        organization_id: "1000000001".into(),
        location_id: "loc".into(),
    };
    s.add_facility_key(&f, &sha256_hex(b"secret"), 1)
        .await
        .unwrap();
    assert_eq!(
        s.facility_by_key_hash(&sha256_hex(b"secret"))
            .await
            .unwrap(),
        Some(f)
    );
    assert_eq!(
        s.facility_by_key_hash(&sha256_hex(b"other")).await.unwrap(),
        None
    );
}

async fn audit_is_queryable(s: Arc<dyn Store>) {
    for (action, at) in [("push", 1), ("replay", 2), ("discard", 3)] {
        s.audit(AuditEvent {
            at,
            actor: "operator:ani".into(),
            action: action.into(),
            receipt_id: Some("r1".into()),
            organization_id: Some("1000000001".into()),
            detail: None,
        })
        .await
        .unwrap();
    }
    let all = s.audit_events(&AuditFilter::default(), 10).await.unwrap();
    assert_eq!(
        all.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(),
        vec!["discard", "replay", "push"]
    );
    let replays = s
        .audit_events(
            &AuditFilter {
                action: Some("replay".into()),
                ..Default::default()
            },
            10,
        )
        .await
        .unwrap();
    assert_eq!(replays.len(), 1);

    // Accepting a record audits the push in the same transaction; a re-send does not.
    let id = accept(s.as_ref(), "AUD-1").await;
    assert!(matches!(
        s.accept(record("AUD-1", "AUD-1")).await.unwrap(),
        Accepted::Existing { .. }
    ));
    let pushes = s
        .audit_events(
            &AuditFilter {
                receipt_id: Some(id.clone()),
                ..Default::default()
            },
            10,
        )
        .await
        .unwrap();
    assert_eq!(pushes.len(), 1, "{pushes:?}");
    assert_eq!(pushes[0].action, "push");
    assert!(pushes[0].actor.starts_with("facility:"), "{pushes:?}");
}

async fn concurrent_forwarders_never_share_a_record(s: Arc<dyn Store>) {
    for i in 0..40 {
        accept(s.as_ref(), &format!("C-{i}")).await;
    }
    let mut tasks = Vec::new();
    for w in 0..4 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = s
                    .lease_due(&format!("W{w}"), "1000000001", 2_000, 60_000, 3)
                    .await
                    .unwrap();
                if got.is_empty() {
                    break;
                }
                mine.extend(got.into_iter().map(|l| l.receipt_id));
            }
            mine
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let unique: HashSet<&String> = all.iter().collect();
    assert_eq!(all.len(), 40);
    assert_eq!(unique.len(), 40);
}

// ------------------------------------------------------------------------------ pulling

/// A record of `org` (the others are all of 1000000001).
async fn accept_for(s: &dyn Store, org: &str, id: &str) -> String {
    let mut r = record(id, id);
    r.organization_id = org.into();
    match s.accept(r).await.unwrap() {
        Accepted::New { receipt_id } => receipt_id,
        other => panic!("{other:?}"),
    }
}

/// Lease `id` (of `org`) and complete it as delivered at `now`.
async fn deliver(s: &dyn Store, org: &str, id: &str, now: i64) {
    s.lease_due("W", org, 2_000, 600_000, 100).await.unwrap();
    let delivered = Completion::Delivered {
        server_ids: json!([]),
        duplicate: false,
    };
    assert!(s.complete(id, "W", 2_000, now, delivered).await.unwrap());
}

fn page(org: Option<&str>, after: i64, since: Option<i64>, limit: usize) -> FeedQuery {
    FeedQuery {
        after_seq: after,
        until_seq: None,
        since,
        organization_id: org.map(str::to_string),
        limit,
    }
}

async fn feed_follows_the_commit_order(s: Arc<dyn Store>) {
    let org2 = "1000000002";
    let a = accept(s.as_ref(), "P-1").await;
    let b = accept(s.as_ref(), "P-2").await;
    let c = accept_for(s.as_ref(), org2, "P-3").await;
    let d = accept(s.as_ref(), "P-4").await;
    let undelivered = accept(s.as_ref(), "P-5").await;
    s.lease_due("W", "1000000001", 2_000, 600_000, 100)
        .await
        .unwrap();
    s.lease_due("W", org2, 2_000, 600_000, 100).await.unwrap();
    // Committed in the order b, c, a, d — with a clock that goes back for a (another
    // instance's): the feed follows the commits, and a's time is not before b's.
    for (id, at) in [(&b, 10_000), (&c, 11_000), (&a, 9_000), (&d, 12_000)] {
        let done = Completion::Delivered {
            server_ids: json!([]),
            duplicate: false,
        };
        assert!(s.complete(id, "W", 2_000, at, done).await.unwrap());
    }
    let all = s.feed(&page(None, 0, None, 100)).await.unwrap();
    let ids: Vec<&str> = all.iter().map(|i| i.receipt_id.as_str()).collect();
    assert_eq!(ids, vec![b.as_str(), c.as_str(), a.as_str(), d.as_str()]);
    assert!(!ids.contains(&undelivered.as_str()));
    assert!(all.windows(2).all(|w| w[0].seq < w[1].seq));
    assert!(
        all.windows(2)
            .all(|w| w[0].delivered_at <= w[1].delivered_at)
    );
    assert_eq!(
        all[2].delivered_at, 11_000,
        "never earlier than the one before"
    );
    assert_eq!(
        s.receipt(&a).await.unwrap().unwrap().delivered_at,
        Some(11_000)
    );
    assert_eq!(all[0].bundle["resourceType"], "Bundle");
    assert_eq!(all[1].organization_id, org2);

    // Pages of two by cursor: each once.
    let first = s.feed(&page(None, 0, None, 2)).await.unwrap();
    let second = s.feed(&page(None, first[1].seq, None, 2)).await.unwrap();
    let third = s.feed(&page(None, second[1].seq, None, 2)).await.unwrap();
    assert_eq!(
        first
            .iter()
            .chain(&second)
            .map(|i| &i.receipt_id)
            .collect::<Vec<_>>(),
        ids
    );
    assert!(third.is_empty());
    assert_eq!(s.feed_count(&page(None, 0, None, 1)).await.unwrap(), 4);

    // One organization; delivered since.
    let own = s
        .feed(&page(Some("1000000001"), 0, None, 100))
        .await
        .unwrap();
    assert_eq!(own.len(), 3);
    assert!(own.iter().all(|i| i.organization_id == "1000000001"));
    let since = s.feed(&page(None, 0, Some(11_000), 100)).await.unwrap();
    assert_eq!(
        since
            .iter()
            .map(|i| i.receipt_id.as_str())
            .collect::<Vec<_>>(),
        vec![c.as_str(), a.as_str(), d.as_str()]
    );
    assert!(
        s.feed(&page(None, 0, Some(12_001), 100))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        s.feed_count(&page(Some(org2), 0, Some(11_000), 100))
            .await
            .unwrap(),
        1
    );

    // A pruned payload leaves the feed; the positions of the others stay.
    let before = all.clone();
    assert_eq!(
        s.prune_payloads(10_500).await.unwrap(),
        2,
        "b, and a (committed at 9_000)"
    );
    let after = s.feed(&page(None, 0, None, 100)).await.unwrap();
    assert_eq!(after.len(), 2);
    assert_eq!((after[0].seq, after[1].seq), (before[1].seq, before[3].seq));
}

/// Deliveries committed by several forwarders at once, read by a puller at the same time:
/// following the cursor, it sees every one exactly once (a position never appears below one
/// already read).
async fn feed_readers_never_miss_concurrent_deliveries(s: Arc<dyn Store>) {
    const N: usize = 60;
    let mut all = HashSet::new();
    for i in 0..N {
        all.insert(accept(s.as_ref(), &format!("R-{i}")).await);
    }
    let mut workers = Vec::new();
    for w in 0..4 {
        let s = s.clone();
        workers.push(tokio::spawn(async move {
            loop {
                let owner = format!("W{w}");
                let got = s
                    .lease_due(&owner, "1000000001", 2_000, 600_000, 2)
                    .await
                    .unwrap();
                if got.is_empty() {
                    break;
                }
                for l in got {
                    let done = Completion::Delivered {
                        server_ids: json!([]),
                        duplicate: false,
                    };
                    let now = 5_000 + fastrand_ish(&l.receipt_id);
                    assert!(
                        s.complete(&l.receipt_id, &owner, 2_000, now, done)
                            .await
                            .unwrap()
                    );
                }
            }
        }));
    }
    let reader = {
        let s = s.clone();
        tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut cursor = 0;
            let start = std::time::Instant::now();
            while seen.len() < N && start.elapsed() < std::time::Duration::from_secs(60) {
                let got = s.feed(&page(None, cursor, None, 3)).await.unwrap();
                if let Some(last) = got.last() {
                    cursor = last.seq;
                } else {
                    tokio::task::yield_now().await;
                }
                seen.extend(got.into_iter().map(|i| i.receipt_id));
            }
            seen
        })
    };
    for w in workers {
        w.await.unwrap();
    }
    let seen = reader.await.unwrap();
    let unique: HashSet<String> = seen.iter().cloned().collect();
    assert_eq!(seen.len(), N, "each delivery once");
    assert_eq!(unique, all);
}

/// A deterministic spread of times, so that commit order and clock order disagree.
fn fastrand_ish(id: &str) -> i64 {
    id.bytes().map(i64::from).sum::<i64>() % 1_000
}

async fn export_jobs_are_claimed_once_and_fenced(s: Arc<dyn Store>) {
    let a = accept(s.as_ref(), "X-1").await;
    let b = accept(s.as_ref(), "X-2").await;
    deliver(s.as_ref(), "1000000001", &a, 10_000).await;
    let job = s
        .create_export_job(&NewExportJob {
            id: "job1".into(),
            requester: "client:nasional".into(),
            organization_id: Some("1000000001".into()),
            since: Some(5_000),
            types: vec!["Observation".into(), "Patient".into()],
            request: "http://gw/fhir/$export?_type=Observation,Patient".into(),
            created_at: 20_000,
        })
        .await
        .unwrap();
    assert_eq!(job.status, ExportStatus::InProgress);
    assert_eq!(job.types, vec!["Observation", "Patient"]);
    assert_eq!(
        job.transaction_time, 10_000,
        "the last delivery in the snapshot"
    );
    // A delivery after the kick-off is not in the job's snapshot.
    deliver(s.as_ref(), "1000000001", &b, 21_000).await;
    let mut q = FeedQuery {
        until_seq: Some(job.until_seq),
        organization_id: job.organization_id.clone(),
        since: job.since,
        limit: 100,
        ..Default::default()
    };
    let snap = s.feed(&q).await.unwrap();
    assert_eq!(snap.len(), 1);
    assert_eq!(snap[0].receipt_id, a);
    assert_eq!(s.feed_count(&q).await.unwrap(), 1);
    q.until_seq = None;
    assert_eq!(s.feed_count(&q).await.unwrap(), 2);

    // Claimed by one worker at a time; the other is fenced out until the lease runs out.
    let claimed = s
        .claim_export_job("A", 30_000, 10_000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claimed.id, "job1");
    assert_eq!(claimed.owner.as_deref(), Some("A"));
    assert!(
        s.claim_export_job("B", 35_000, 10_000)
            .await
            .unwrap()
            .is_none()
    );
    let p = ExportProgress {
        records_done: 1,
        records_total: 1,
        resources_done: 5,
    };
    assert!(s.export_progress("job1", "A", p, 45_000).await.unwrap());
    assert!(!s.export_progress("job1", "B", p, 45_000).await.unwrap());
    assert!(
        s.claim_export_job("B", 44_000, 10_000)
            .await
            .unwrap()
            .is_none(),
        "renewed"
    );
    let taken = s
        .claim_export_job("B", 45_001, 10_000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (taken.records_done, taken.resources_done),
        (0, 0),
        "starts again"
    );
    assert!(!s.export_progress("job1", "A", p, 60_000).await.unwrap());
    let end = ExportEnd::Completed {
        manifest: json!({"output": [{"type": "Observation", "count": 5}]}),
    };
    assert!(
        !s.finish_export_job("job1", "A", &end, 50_000, 90_000)
            .await
            .unwrap()
    );
    assert!(
        s.finish_export_job("job1", "B", &end, 50_000, 90_000)
            .await
            .unwrap()
    );
    let done = s.export_job("job1").await.unwrap().unwrap();
    assert_eq!(done.status, ExportStatus::Completed);
    assert_eq!(done.manifest.unwrap()["output"][0]["count"], 5);
    assert_eq!(
        (done.completed_at, done.expires_at),
        (Some(50_000), Some(90_000))
    );
    assert!(
        s.claim_export_job("C", 100_000, 10_000)
            .await
            .unwrap()
            .is_none()
    );

    // Cancelled: a second job stops its worker; cancelling twice is a no-op.
    let second = NewExportJob {
        id: "job2".into(),
        requester: "client:nasional".into(),
        organization_id: None,
        since: None,
        types: vec![],
        request: "http://gw/fhir/$export".into(),
        created_at: 60_000,
    };
    let j2 = s.create_export_job(&second).await.unwrap();
    assert!(j2.types.is_empty());
    assert_eq!(j2.transaction_time, 21_000);
    assert!(
        s.claim_export_job("A", 60_000, 10_000)
            .await
            .unwrap()
            .is_some()
    );
    assert!(s.cancel_export_job("job2", 61_000).await.unwrap());
    assert!(!s.cancel_export_job("job2", 61_000).await.unwrap());
    assert!(!s.export_progress("job2", "A", p, 70_000).await.unwrap());
    assert_eq!(
        s.export_job("job2").await.unwrap().unwrap().status,
        ExportStatus::Cancelled
    );

    // Expired rows are forgotten.
    assert_eq!(s.purge_export_jobs(61_000).await.unwrap(), 0);
    assert_eq!(s.purge_export_jobs(95_000).await.unwrap(), 2);
    assert!(s.export_job("job1").await.unwrap().is_none());
    assert!(!s.cancel_export_job("nope", 1).await.unwrap());
}

/// Workers of several instances claiming at once never run the same job.
async fn concurrent_workers_never_share_an_export_job(s: Arc<dyn Store>) {
    for i in 0..12 {
        s.create_export_job(&NewExportJob {
            id: format!("cj{i}"),
            requester: "client:x".into(),
            organization_id: None,
            since: None,
            types: vec![],
            request: "http://gw/fhir/$export".into(),
            created_at: i,
        })
        .await
        .unwrap();
    }
    let mut tasks = Vec::new();
    for w in 0..4 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            while let Some(j) = s
                .claim_export_job(&format!("W{w}"), 1_000, 60_000)
                .await
                .unwrap()
            {
                mine.push(j.id);
            }
            mine
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let unique: HashSet<&String> = all.iter().collect();
    assert_eq!((all.len(), unique.len()), (12, 12));
}

// ---- access (migration 0005)

async fn facility_keys_are_revoked_one_or_all(s: Arc<dyn Store>) {
    let f = Facility {
        id: "pkm-r".into(),
        name: "Puskesmas R".into(),
        organization_id: "1000000001".into(),
        location_id: "loc".into(),
    };
    for k in [b"k1".as_slice(), b"k2", b"k3"] {
        s.add_facility_key(&f, &sha256_hex(k), 1).await.unwrap();
    }
    assert_eq!(
        s.revoke_facility_key(&sha256_hex(b"k1"), 2).await.unwrap(),
        Some("pkm-r".into())
    );
    assert_eq!(
        s.facility_by_key_hash(&sha256_hex(b"k1")).await.unwrap(),
        None
    );
    assert_eq!(
        s.facility_by_key_hash(&sha256_hex(b"k2")).await.unwrap(),
        Some(f.clone())
    );
    // Twice, or unknown: nothing to revoke.
    assert_eq!(
        s.revoke_facility_key(&sha256_hex(b"k1"), 3).await.unwrap(),
        None
    );
    assert_eq!(
        s.revoke_facility_key(&sha256_hex(b"zz"), 3).await.unwrap(),
        None
    );
    // All the others at once.
    assert_eq!(s.revoke_facility_keys("pkm-r", 4).await.unwrap(), 2);
    assert_eq!(
        s.facility_by_key_hash(&sha256_hex(b"k3")).await.unwrap(),
        None
    );
    assert_eq!(s.revoke_facility_keys("pkm-r", 5).await.unwrap(), 0);
    // The facility itself stays (its receipts refer to it).
    assert!(s.facility("pkm-r").await.unwrap().is_some());
}

async fn smart_clients_and_access_tokens(s: Arc<dyn Store>) {
    let mut c = SmartClient {
        id: "dto-pull".into(),
        name: "DTO".into(),
        jwks: json!({"keys": [{"kty": "EC", "crv": "P-384", "kid": "k1", "x": "…", "y": "…"}]}),
        scopes: vec!["system/*.read".into(), "gerbang.admin".into()],
        organization_id: Some("1000000001".into()),
        revoked_at: None,
    };
    s.add_smart_client(&c, 1).await.unwrap();
    assert_eq!(s.smart_client("dto-pull").await.unwrap(), Some(c.clone()));
    assert_eq!(s.smart_client("nobody").await.unwrap(), None);

    let token = AccessToken {
        token_hash: sha256_hex(b"gt_1"),
        client_id: "dto-pull".into(),
        scopes: vec!["system/Bundle.read".into()],
        organization_id: Some("1000000001".into()),
        issued_at: 10,
        expires_at: 310,
    };
    s.add_access_token(&token, 10).await.unwrap();
    assert_eq!(
        s.access_token(&token.token_hash).await.unwrap(),
        Some(token.clone())
    );
    assert_eq!(s.access_token(&sha256_hex(b"gt_2")).await.unwrap(), None);

    // Registering again replaces keys, scopes, organization.
    c.scopes = vec!["system/Bundle.read".into()];
    c.organization_id = None;
    s.add_smart_client(&c, 20).await.unwrap();
    assert_eq!(s.smart_client("dto-pull").await.unwrap(), Some(c.clone()));

    // Revoked: the client is still known (to say so), its tokens are gone.
    assert!(s.revoke_smart_client("dto-pull", 30).await.unwrap());
    assert!(!s.revoke_smart_client("dto-pull", 31).await.unwrap());
    assert!(!s.revoke_smart_client("nobody", 31).await.unwrap());
    assert_eq!(
        s.smart_client("dto-pull")
            .await
            .unwrap()
            .unwrap()
            .revoked_at,
        Some(30)
    );
    assert_eq!(s.access_token(&token.token_hash).await.unwrap(), None);

    // Registered again: usable again, but the old tokens stay dead.
    s.add_smart_client(&c, 40).await.unwrap();
    assert_eq!(
        s.smart_client("dto-pull")
            .await
            .unwrap()
            .unwrap()
            .revoked_at,
        None
    );
    assert_eq!(s.access_token(&token.token_hash).await.unwrap(), None);

    // Long-expired tokens are cleared when new ones are issued; recently expired ones stay.
    let old = AccessToken {
        token_hash: sha256_hex(b"gt_old"),
        issued_at: 50,
        expires_at: 100,
        ..token.clone()
    };
    s.add_access_token(&old, 50).await.unwrap();
    let fresh = AccessToken {
        token_hash: sha256_hex(b"gt_fresh"),
        ..token.clone()
    };
    s.add_access_token(&fresh, 100 + EXPIRED_TOKENS_KEPT_MS - 1)
        .await
        .unwrap();
    assert!(s.access_token(&old.token_hash).await.unwrap().is_some());
    let newer = AccessToken {
        token_hash: sha256_hex(b"gt_newer"),
        ..token.clone()
    };
    s.add_access_token(&newer, 100 + EXPIRED_TOKENS_KEPT_MS + 1)
        .await
        .unwrap();
    assert_eq!(s.access_token(&old.token_hash).await.unwrap(), None);
}

async fn assertion_jtis_are_used_once(s: Arc<dyn Store>) {
    assert!(s.use_assertion_jti("a", "j1", 1_300, 1_000).await.unwrap());
    assert!(
        !s.use_assertion_jti("a", "j1", 1_300, 1_001).await.unwrap(),
        "a replay"
    );
    // Another client may use the same jti.
    assert!(s.use_assertion_jti("b", "j1", 1_300, 1_002).await.unwrap());
    // Once the assertion has expired the jti is forgotten (the assertion itself is refused
    // by then anyway).
    assert!(s.use_assertion_jti("a", "j1", 2_000, 1_301).await.unwrap());
    // Concurrent uses: exactly one wins.
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.use_assertion_jti("c", "race", 9_000, 1_500)
                .await
                .unwrap()
        }));
    }
    let mut wins = 0;
    for t in tasks {
        wins += t.await.unwrap() as usize;
    }
    assert_eq!(wins, 1);
}

// ---- end of access

// ------------------------------------------------------------------------------ backends

fn sqlite() -> (tempfile::TempDir, Arc<dyn Store>) {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(&dir.path().join("t.sqlite3")).unwrap();
    (dir, Arc::new(s))
}

use common::{drop_schema, new_schema, postgres_unreachable, postgres_url};

async fn postgres(test: &str) -> Option<(Arc<dyn Store>, String)> {
    let schema = new_schema();
    match PostgresStore::connect(&postgres_url(), Some(&schema), 8).await {
        Ok(s) => Some((Arc::new(s), schema)),
        Err(e) => {
            postgres_unreachable(test, &e);
            None
        }
    }
}

macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread")]
                async fn $name() {
                    let (_dir, s) = super::sqlite();
                    super::$name(s).await;
                }
            )*
        }
        mod on_postgres {
            $(
                #[tokio::test(flavor = "multi_thread")]
                async fn $name() {
                    if let Some((s, schema)) = super::postgres(stringify!($name)).await {
                        super::$name(s).await;
                        super::drop_schema(&schema).await;
                    }
                }
            )*
        }
    };
}

suite!(
    accept_is_durable_idempotent_and_detects_changes,
    leases_are_exclusive_and_fenced,
    retries_wait_for_their_time,
    dead_letters_are_listed_requeued_and_discarded,
    retention_prunes_payloads_but_keeps_receipts,
    lookups_expire,
    facility_keys_resolve_by_hash,
    audit_is_queryable,
    concurrent_forwarders_never_share_a_record,
    facility_keys_are_revoked_one_or_all,
    smart_clients_and_access_tokens,
    assertion_jtis_are_used_once,
    feed_follows_the_commit_order,
    feed_readers_never_miss_concurrent_deliveries,
    export_jobs_are_claimed_once_and_fenced,
    concurrent_workers_never_share_an_export_job,
);

/// Several gateways starting at once on a new schema (a fresh deployment, or the scale-out
/// test) all come up: creating the schema and migrating it are serialised between them.
#[tokio::test(flavor = "multi_thread")]
async fn postgres_instances_start_together_on_a_new_schema() {
    let test = "postgres_instances_start_together_on_a_new_schema";
    if common::postgres_client(test).await.is_none() {
        return;
    }
    for _round in 0..5 {
        let schema = new_schema();
        let starts: Vec<_> = (0..6)
            .map(|_| {
                let schema = schema.clone();
                tokio::spawn(async move {
                    PostgresStore::connect(&postgres_url(), Some(&schema), 2).await
                })
            })
            .collect();
        let mut failures = Vec::new();
        for s in starts {
            if let Err(e) = s.await.unwrap() {
                failures.push(e.to_string());
            }
        }
        assert!(
            failures.is_empty(),
            "concurrent starts failed: {failures:?}"
        );
        drop_schema(&schema).await;
    }
}

/// A late completion by a forwarder whose lease expired and was taken over changes nothing,
/// whatever it reports — and the new owner's result stands (PostgreSQL, several processes'
/// worth of connections on one schema).
#[tokio::test(flavor = "multi_thread")]
async fn postgres_lease_taken_over_is_fenced_across_connections() {
    let Some((a, schema)) =
        postgres("postgres_lease_taken_over_is_fenced_across_connections").await
    else {
        return;
    };
    // A second "instance": its own pool on the same schema.
    let b: Arc<dyn Store> = Arc::new(
        PostgresStore::connect(&postgres_url(), Some(&schema), 2)
            .await
            .unwrap(),
    );
    let id = accept(a.as_ref(), "F-1").await;
    assert_eq!(
        a.lease_due("A", "1000000001", 2_000, 1_000, 10)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(
        b.lease_due("B", "1000000001", 2_500, 1_000, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // A's lease ran out at 3_000; B takes the record over.
    assert_eq!(
        b.lease_due("B", "1000000001", 3_001, 1_000, 10)
            .await
            .unwrap()
            .len(),
        1
    );
    // A answers late, with every kind of result: none is recorded.
    for late in [
        Completion::Retry {
            next_attempt_at: 9_000,
            error: "late".into(),
            http_status: Some(503),
        },
        Completion::Dead {
            error: "late".into(),
            outcome: json!({}),
            http_status: Some(400),
        },
        Completion::Delivered {
            server_ids: json!([]),
            duplicate: false,
        },
    ] {
        assert!(!a.complete(&id, "A", 2_000, 3_500, late).await.unwrap());
    }
    let r = b.receipt(&id).await.unwrap().unwrap();
    assert_eq!((r.status, r.attempts), (Status::Delivering, 2));
    assert!(
        b.attempts(&id).await.unwrap().is_empty(),
        "no attempt recorded for A"
    );
    let delivered = Completion::Delivered {
        server_ids: json!([{"resourceType": "Encounter", "id": "e"}]),
        duplicate: true,
    };
    assert!(b.complete(&id, "B", 3_001, 3_600, delivered).await.unwrap());
    let r = a.receipt(&id).await.unwrap().unwrap();
    assert_eq!(r.status, Status::Delivered);
    let attempts = a.attempts(&id).await.unwrap();
    assert_eq!(attempts.len(), 1);
    assert_eq!(
        (attempts[0].attempt, attempts[0].result.as_str()),
        (2, "duplicate")
    );
    drop_schema(&schema).await;
}
