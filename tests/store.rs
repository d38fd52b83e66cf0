//! One store test suite, run against both backends: the embedded SQLite store and the real
//! PostgreSQL server (POSTGRES_URL, default postgres://postgres@127.0.0.1:5432/test; each test
//! in a schema of its own). Without a reachable PostgreSQL the PostgreSQL half is skipped with
//! a notice on the terminal, unless POSTGRES_TESTS_REQUIRED=1 (as in CI), which makes it fail.
//!
//! Leases run on the database's clock: a test that needs an expired lease takes one for a
//! negative time (expired the moment it is taken), never waits for one to run out.

mod common;

use gerbang::store::*;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::sync::Arc;

const ORG: &str = "1000000001";
/// A lease that outlasts any test.
const LONG: i64 = 600_000;
/// A lease expired the moment it is taken (the database's clock moves on).
const EXPIRED: i64 = -1;

fn record(id: &str, content: &str) -> NewRecord {
    NewRecord {
        facility_id: "pkm-1".into(),
        organization_id: ORG.into(),
        record_type: "posyandu.balita".into(),
        local_id: id.into(),
        content_hash: sha256_hex(content.as_bytes()),
        format: Some("sikda-generik".into()),
        // Decimals and key order must survive the store exactly.
        raw: serde_json::from_str(&format!(
            r#"{{"id_kunjungan": "{id}", "berat": 8.10, "a": 1}}"#
        ))
        .unwrap(),
        bundle: bundle(&format!("{id}/{content}")),
        received_at: 1_000,
        if_match: None,
    }
}

/// A Bundle that tells revisions apart.
fn bundle(tag: &str) -> Value {
    json!({"resourceType": "Bundle", "type": "transaction", "entry": [], "meta": {"tag": [{"code": tag}]}})
}

async fn accept(s: &Store, id: &str) -> String {
    match s.accept(record(id, id)).await.unwrap() {
        Accepted::New { receipt_id } => receipt_id,
        other => panic!("{other:?}"),
    }
}

/// Lease exactly one receipt of `org` for `owner`.
async fn lease_one(s: &Store, owner: &str, org: &str, lease_ms: i64) -> Lease {
    let mut got = s.lease_due(owner, org, lease_ms, 1, 2_000).await.unwrap();
    assert_eq!(got.len(), 1, "one receipt due");
    got.remove(0)
}

fn delivered(ids: Value) -> Completion {
    Completion::Delivered {
        server_ids: ids,
        duplicate: false,
        changes: None,
    }
}

fn retry_in(delay_ms: i64) -> Completion {
    Completion::Retry {
        delay_ms,
        error: "SATUSEHAT transaction answered HTTP 503".into(),
        http_status: Some(503),
    }
}

fn refused(rule: u32) -> Completion {
    Completion::Dead {
        error: format!("refused (rule {rule})"),
        outcome: json!({"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "value",
            "details": {"text": format!("Wrong organization ID (RuleNumber: {rule})")}}]}),
        http_status: Some(400),
    }
}

// ------------------------------------------------------------------------------ the suite

async fn accept_is_durable_idempotent_and_takes_revisions(s: Arc<Store>) {
    let id = accept(&s, "K-1").await;
    assert_eq!(
        s.accept(record("K-1", "K-1")).await.unwrap(),
        Accepted::Existing {
            receipt_id: id.clone(),
            revision: 1
        }
    );
    let known = s
        .find_by_local_id("pkm-1", "posyandu.balita", "K-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (known.receipt_id.as_str(), known.revision),
        (id.as_str(), 1)
    );
    let r = s.receipt(&id).await.unwrap().unwrap();
    assert_eq!(
        (r.status, r.revision, r.sending_revision),
        (Status::Queued, 1, Some(1))
    );
    let p = s.payload(&id).await.unwrap().unwrap();
    assert_eq!(
        serde_json::to_string(&p.raw).unwrap(),
        r#"{"id_kunjungan":"K-1","berat":8.10,"a":1}"#
    );
    // Changed content under the same id is a revision of the same receipt.
    assert_eq!(
        s.accept(record("K-1", "changed")).await.unwrap(),
        Accepted::Revised {
            receipt_id: id.clone(),
            revision: 2,
            status: Status::Queued
        }
    );
    // The newest revision is what a re-send is compared with.
    assert_eq!(
        s.accept(record("K-1", "changed")).await.unwrap(),
        Accepted::Existing {
            receipt_id: id.clone(),
            revision: 2
        }
    );
    // If-Match: only on the revision the facility saw; not for a record that does not exist.
    let mut stale = record("K-1", "third");
    stale.if_match = Some(1);
    assert_eq!(
        s.accept(stale).await.unwrap(),
        Accepted::Stale {
            receipt_id: Some(id.clone()),
            revision: Some(2)
        }
    );
    let mut current = record("K-1", "third");
    current.if_match = Some(2);
    assert!(matches!(
        s.accept(current).await.unwrap(),
        Accepted::Revised { revision: 3, .. }
    ));
    let mut nothing = record("K-none", "x");
    nothing.if_match = Some(1);
    assert_eq!(
        s.accept(nothing).await.unwrap(),
        Accepted::Stale {
            receipt_id: None,
            revision: None
        }
    );
    assert!(
        s.receipt_events(&id).await.unwrap().is_empty(),
        "acceptance is answered by the 202, not an event"
    );
}

/// Before delivery the newest revision replaces the one waiting: only it is leased, and the
/// older is superseded.
async fn a_waiting_revision_is_replaced(s: Arc<Store>) {
    let id = accept(&s, "W-1").await;
    s.accept(record("W-1", "second")).await.unwrap();
    let l = lease_one(&s, "A", ORG, LONG).await;
    assert_eq!((l.revision, l.held.is_none()), (Some(2), true));
    assert_eq!(l.bundle, Some(bundle("W-1/second")));
    assert!(
        s.complete(
            &id,
            &l.token,
            2_000,
            3_000,
            delivered(json!([{"fullUrl": "urn:uuid:e", "resourceType": "Encounter", "id": "e1"}]))
        )
        .await
        .unwrap()
    );
    let outcomes: Vec<(i64, String)> = s
        .revisions(&id)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.revision, r.outcome))
        .collect();
    assert_eq!(
        outcomes,
        vec![(1, "superseded".into()), (2, "delivered".into())]
    );
    let r = s.receipt(&id).await.unwrap().unwrap();
    assert_eq!(
        (r.status, r.delivered_revision),
        (Status::Delivered, Some(2))
    );
    let events = s.receipt_events(&id).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(
        (events[0].kind, events[0].revision),
        (EventKind::Delivered, Some(2))
    );
}

/// After delivery a revision is an update, leased with what SATUSEHAT holds.
async fn a_delivered_record_is_corrected_by_an_update(s: Arc<Store>) {
    let id = accept(&s, "U-1").await;
    let ids = json!([{"fullUrl": "urn:uuid:e", "resourceType": "Encounter", "id": "e1"}]);
    let l = lease_one(&s, "A", ORG, LONG).await;
    assert!(
        s.complete(&id, &l.token, 2_000, 3_000, delivered(ids.clone()))
            .await
            .unwrap()
    );
    assert!(matches!(
        s.accept(record("U-1", "fixed")).await.unwrap(),
        Accepted::Revised { revision: 2, .. }
    ));
    assert_eq!(
        s.receipt(&id).await.unwrap().unwrap().status,
        Status::Queued
    );
    let l = lease_one(&s, "A", ORG, LONG).await;
    assert_eq!(l.revision, Some(2));
    assert_eq!(l.attempts, 1, "a correction has a fresh retry budget");
    let held = l.held.clone().expect("SATUSEHAT holds revision 1");
    assert_eq!(
        (held.revision, held.bundle, held.server_ids),
        (1, Some(bundle("U-1/U-1")), ids.clone())
    );
    let done = Completion::Delivered {
        server_ids: ids,
        duplicate: false,
        changes: Some(json!({"created": 0, "updated": 1, "retired": 0, "unchanged": 0})),
    };
    assert!(s.complete(&id, &l.token, 4_000, 5_000, done).await.unwrap());
    let r = s.receipt(&id).await.unwrap().unwrap();
    assert_eq!(
        (r.status, r.revision, r.delivered_revision),
        (Status::Delivered, 2, Some(2))
    );
    let revs = s.revisions(&id).await.unwrap();
    assert_eq!(revs[1].changes.as_ref().unwrap()["updated"], 1);
    let kinds: Vec<EventKind> = s
        .receipt_events(&id)
        .await
        .unwrap()
        .iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds, vec![EventKind::Delivered, EventKind::Corrected]);
    // Pullers see the corrected record again, at a new position.
    let feed = s.feed(&page(None, 0, None, 10)).await.unwrap();
    assert_eq!(feed.len(), 1);
    assert_eq!(feed[0].bundle, bundle("U-1/fixed"));
    assert!(feed[0].seq > 1, "moved to a new position");
}

/// A correction arriving while the previous revision is being delivered waits for it; the
/// completion queues it at once.
async fn a_correction_waits_for_the_delivery_under_way(s: Arc<Store>) {
    let id = accept(&s, "R-1").await;
    let l = lease_one(&s, "A", ORG, LONG).await;
    s.accept(record("R-1", "meanwhile")).await.unwrap();
    let r = s.receipt(&id).await.unwrap().unwrap();
    assert_eq!(
        (r.status, r.revision, r.sending_revision),
        (Status::Delivering, 2, Some(1))
    );
    assert!(
        s.lease_due("B", ORG, LONG, 10, 2_000)
            .await
            .unwrap()
            .is_empty(),
        "still held"
    );
    assert!(
        s.complete(&id, &l.token, 2_000, 3_000, delivered(json!([])))
            .await
            .unwrap()
    );
    let r = s.receipt(&id).await.unwrap().unwrap();
    assert_eq!(
        (r.status, r.delivered_revision, r.sending_revision),
        (Status::Queued, Some(1), Some(2))
    );
    let next = lease_one(&s, "B", ORG, LONG).await;
    assert_eq!(
        (next.revision, next.held.map(|h| h.revision)),
        (Some(2), Some(1))
    );

    // The same when the attempt under way fails: the waiting revision goes instead, and the
    // failed one is superseded, never retried.
    let other = accept(&s, "R-2").await;
    let l = lease_one(&s, "A", ORG, LONG).await;
    assert_eq!(l.receipt_id, other);
    s.accept(record("R-2", "meanwhile")).await.unwrap();
    assert!(
        s.complete(&other, &l.token, 2_000, 3_000, retry_in(60_000))
            .await
            .unwrap()
    );
    let r = s.receipt(&other).await.unwrap().unwrap();
    assert_eq!((r.status, r.sending_revision), (Status::Queued, Some(2)));
    let outcomes: Vec<String> = s
        .revisions(&other)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.outcome)
        .collect();
    assert_eq!(outcomes, vec!["superseded", "pending"]);
}

/// A correction of a refused record is delivered afresh and closes the dead letter.
async fn a_refused_record_is_corrected_afresh(s: Arc<Store>) {
    let id = accept(&s, "D-1").await;
    let l = lease_one(&s, "A", ORG, LONG).await;
    assert!(
        s.complete(&id, &l.token, 2_000, 3_000, refused(10117))
            .await
            .unwrap()
    );
    assert_eq!(s.receipt(&id).await.unwrap().unwrap().status, Status::Dead);
    let events = s.receipt_events(&id).await.unwrap();
    assert_eq!(events[0].kind, EventKind::Refused);
    assert!(
        events[0].data["outcome"]["issue"][0]["details"]["text"]
            .as_str()
            .unwrap()
            .contains("10117")
    );

    s.accept(record("D-1", "fixed")).await.unwrap();
    let r = s.receipt(&id).await.unwrap().unwrap();
    assert_eq!(
        (r.status, r.upstream_outcome.is_none()),
        (Status::Queued, true)
    );
    let revs = s.revisions(&id).await.unwrap();
    assert_eq!(
        (revs[0].outcome.as_str(), revs[0].closed.as_deref()),
        ("refused", Some("corrected"))
    );
    let l = lease_one(&s, "A", ORG, LONG).await;
    assert_eq!(
        (l.revision, l.held.is_none()),
        (Some(2), true),
        "afresh: SATUSEHAT holds nothing"
    );
    assert!(
        s.complete(&id, &l.token, 2_000, 3_000, delivered(json!([])))
            .await
            .unwrap()
    );
    let kinds: Vec<EventKind> = s
        .receipt_events(&id)
        .await
        .unwrap()
        .iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds, vec![EventKind::Refused, EventKind::Delivered]);
}

async fn cancellation_before_and_after_delivery(s: Arc<Store>) {
    // Not delivered yet: ends at once, nothing to send.
    let early = accept(&s, "C-1").await;
    let c = s
        .cancel(
            "pkm-1",
            "posyandu.balita",
            "C-1",
            "wrong child",
            "facility:pkm-1",
            5_000,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        c,
        Cancelled {
            receipt_id: early.clone(),
            already: false
        }
    );
    let r = s.receipt(&early).await.unwrap().unwrap();
    assert_eq!(
        (r.status, r.cancel_reason.as_deref(), r.cancelled_at),
        (Status::Cancelled, Some("wrong child"), Some(5_000))
    );
    assert!(
        s.lease_due("A", ORG, LONG, 10, 2_000)
            .await
            .unwrap()
            .is_empty(),
        "nothing is sent"
    );
    // Twice is harmless; a changed record no longer revives it.
    let again = s
        .cancel(
            "pkm-1",
            "posyandu.balita",
            "C-1",
            "again",
            "facility:pkm-1",
            6_000,
        )
        .await
        .unwrap()
        .unwrap();
    assert!(again.already);
    assert_eq!(
        s.receipt(&early)
            .await
            .unwrap()
            .unwrap()
            .cancel_reason
            .as_deref(),
        Some("wrong child")
    );
    assert_eq!(
        s.accept(record("C-1", "changed")).await.unwrap(),
        Accepted::Cancelled {
            receipt_id: early.clone()
        }
    );
    assert!(
        s.cancel("pkm-1", "posyandu.balita", "nope", "x", "facility:pkm-1", 1)
            .await
            .unwrap()
            .is_none()
    );

    // Delivered: queued as work of its own (no revision), with what SATUSEHAT holds.
    let late = accept(&s, "C-2").await;
    let ids = json!([{"fullUrl": "urn:uuid:e", "resourceType": "Encounter", "id": "e2"}]);
    let l = lease_one(&s, "A", ORG, LONG).await;
    assert!(
        s.complete(&late, &l.token, 2_000, 3_000, delivered(ids.clone()))
            .await
            .unwrap()
    );
    s.cancel(
        "pkm-1",
        "posyandu.balita",
        "C-2",
        "duplicate visit",
        "facility:pkm-1",
        7_000,
    )
    .await
    .unwrap();
    let l = lease_one(&s, "A", ORG, LONG).await;
    assert_eq!((l.revision, l.bundle.is_none()), (None, true));
    assert_eq!(l.held.as_ref().unwrap().server_ids, ids);
    assert_eq!(
        s.receipt(&late).await.unwrap().unwrap().status,
        Status::Delivering
    );
    assert!(
        s.complete(&late, &l.token, 8_000, 9_000, delivered(ids))
            .await
            .unwrap()
    );
    let r = s.receipt(&late).await.unwrap().unwrap();
    assert_eq!((r.status, r.cancelled_at), (Status::Cancelled, Some(9_000)));
    let kinds: Vec<EventKind> = s
        .receipt_events(&late)
        .await
        .unwrap()
        .iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds, vec![EventKind::Delivered, EventKind::Cancelled]);
    // Pullers see it again, as cancelled.
    let feed = s.feed(&page(None, 0, None, 10)).await.unwrap();
    assert_eq!(
        feed.iter()
            .map(|i| (i.receipt_id.as_str(), i.cancelled))
            .collect::<Vec<_>>(),
        vec![(late.as_str(), true)]
    );

    // Cancelled while a delivery is under way: the delivery ends first, then the
    // cancellation goes.
    let racing = accept(&s, "C-3").await;
    let l = lease_one(&s, "A", ORG, LONG).await;
    s.cancel(
        "pkm-1",
        "posyandu.balita",
        "C-3",
        "entered twice",
        "facility:pkm-1",
        7_000,
    )
    .await
    .unwrap();
    assert_eq!(
        s.receipt(&racing).await.unwrap().unwrap().status,
        Status::Delivering
    );
    assert!(
        s.complete(&racing, &l.token, 2_000, 3_000, delivered(json!([])))
            .await
            .unwrap()
    );
    let l = lease_one(&s, "A", ORG, LONG).await;
    assert_eq!((l.receipt_id.as_str(), l.revision), (racing.as_str(), None));
}

async fn leases_are_exclusive_and_fenced_by_token(s: Arc<Store>) {
    let id = accept(&s, "K-2").await;
    let a = lease_one(&s, "A", ORG, EXPIRED).await;
    assert_eq!(a.attempts, 1);
    // Expired: B takes it over, and A's late answer changes nothing.
    let b = lease_one(&s, "B", ORG, LONG).await;
    assert_eq!(b.attempts, 2);
    assert_ne!(a.token, b.token);
    assert!(
        s.lease_due("C", ORG, LONG, 10, 2_000)
            .await
            .unwrap()
            .is_empty(),
        "held by B"
    );
    for late in [delivered(json!([])), retry_in(1), refused(10117)] {
        assert!(
            !s.complete(&id, &a.token, 2_000, 21_000, late)
                .await
                .unwrap()
        );
    }
    assert!(
        s.complete(
            &id,
            &b.token,
            20_000,
            21_000,
            delivered(json!([{"resourceType": "Encounter", "id": "e1"}]))
        )
        .await
        .unwrap()
    );
    let r = s.receipt(&id).await.unwrap().unwrap();
    assert_eq!(r.status, Status::Delivered);
    assert_eq!(r.server_ids.unwrap()[0]["id"], "e1");
    let attempts = s.attempts(&id).await.unwrap();
    assert_eq!(
        attempts
            .iter()
            .map(|a| (a.attempt, a.result.as_str(), a.revision))
            .collect::<Vec<_>>(),
        vec![(2, "delivered", Some(1))]
    );

    // A lease the same owner took again after its own expired is a new lease: the old token
    // is refused even though the owner is the same.
    let id = accept(&s, "K-2b").await;
    let first = lease_one(&s, "A", ORG, EXPIRED).await;
    let second = lease_one(&s, "A", ORG, LONG).await;
    assert!(
        !s.complete(&id, &first.token, 1, 2, delivered(json!([])))
            .await
            .unwrap()
    );
    assert!(
        s.complete(&id, &second.token, 1, 2, delivered(json!([])))
            .await
            .unwrap()
    );
}

/// The heartbeat keeps a lease; a lease not renewed expires and moves.
async fn leases_are_renewed_by_heartbeat(s: Arc<Store>) {
    let id = accept(&s, "H-1").await;
    let l = lease_one(&s, "A", ORG, EXPIRED).await;
    // Renewed before anyone took it over: held again, for as long as asked.
    assert_eq!(
        s.renew_leases(
            vec![
                (id.clone(), l.token.clone()),
                (id.clone(), "someone-else/1".into())
            ],
            LONG
        )
        .await
        .unwrap(),
        vec![true, false]
    );
    assert!(
        s.lease_due("B", ORG, LONG, 10, 2_000)
            .await
            .unwrap()
            .is_empty(),
        "renewed"
    );
    let due = s.next_due_in().await.unwrap().unwrap();
    assert!(
        due > LONG - 60_000 && due <= LONG,
        "the lease ends in about {LONG} ms, not {due}"
    );
}

async fn retries_wait_for_their_time(s: Arc<Store>) {
    let id = accept(&s, "K-3").await;
    let l = lease_one(&s, "A", ORG, LONG).await;
    assert!(
        s.complete(&id, &l.token, 2_000, 3_000, retry_in(3_600_000))
            .await
            .unwrap()
    );
    let r = s.receipt(&id).await.unwrap().unwrap();
    assert_eq!(r.status, Status::Retrying);
    assert!(r.last_error.unwrap().contains("503"));
    let due = s.next_due_in().await.unwrap().unwrap();
    assert!(
        due > 3_500_000 && due <= 3_600_000,
        "due in an hour, not {due} ms"
    );
    assert!(s.due_organizations().await.unwrap().is_empty());
    assert!(
        s.lease_due("A", ORG, LONG, 10, 2_000)
            .await
            .unwrap()
            .is_empty()
    );
    // A retry due now is leased at once.
    let id2 = accept(&s, "K-3b").await;
    let l = lease_one(&s, "A", ORG, LONG).await;
    assert!(
        s.complete(&id2, &l.token, 2_000, 3_000, retry_in(-1))
            .await
            .unwrap()
    );
    assert_eq!(s.due_organizations().await.unwrap(), vec![ORG.to_string()]);
    let again = lease_one(&s, "A", ORG, LONG).await;
    assert_eq!((again.receipt_id, again.attempts), (id2.clone(), 2));
    let attempts = s.attempts(&id2).await.unwrap();
    assert_eq!(
        (attempts[0].result.as_str(), attempts[0].http_status),
        ("retry", Some(503))
    );
}

async fn dead_letters_are_listed_requeued_and_discarded(s: Arc<Store>) {
    let mut ids = Vec::new();
    for k in ["K-4", "K-5", "K-6"] {
        let id = accept(&s, k).await;
        let l = lease_one(&s, "A", ORG, LONG).await;
        assert!(
            s.complete(&id, &l.token, 2_000, 3_000, refused(10117))
                .await
                .unwrap()
        );
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
    // Replayed for the facility's organization as it is now.
    assert!(
        s.requeue(&ids[0], Some(&new_bundle), "1000000009", 4_000)
            .await
            .unwrap()
    );
    assert!(
        !s.requeue(&ids[0], Some(&new_bundle), "1000000009", 4_000)
            .await
            .unwrap(),
        "only a dead letter is requeued"
    );
    assert!(
        s.lease_due("A", ORG, LONG, 10, 2_000)
            .await
            .unwrap()
            .is_empty(),
        "it moved to the new organization"
    );
    let leased = lease_one(&s, "A", "1000000009", LONG).await;
    assert_eq!(
        leased.bundle,
        Some(new_bundle),
        "the replay sends the re-mapped Bundle"
    );
    // A replay starts a fresh retry budget: attempts and age count from the replay.
    assert_eq!(leased.attempts, 1, "attempts since the replay");
    assert_eq!(leased.created_at, 4_000, "the age counts from the replay");
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
    assert_eq!(
        s.revisions(&ids[1]).await.unwrap()[0].closed.as_deref(),
        Some("discarded")
    );
}

/// The facility's own list: newest change first, filtered, paged by a stable cursor.
async fn receipts_page_newest_change_first(s: Arc<Store>) {
    let mut ids = Vec::new();
    for i in 0..5 {
        let mut r = record(&format!("L-{i}"), &format!("L-{i}"));
        r.received_at = 1_000 + i;
        ids.push(match s.accept(r).await.unwrap() {
            Accepted::New { receipt_id } => receipt_id,
            other => panic!("{other:?}"),
        });
    }
    let mut other = record("L-x", "L-x");
    other.facility_id = "pkm-2".into();
    s.accept(other).await.unwrap();
    let mine = ReceiptFilter {
        facility_id: Some("pkm-1".into()),
        ..Default::default()
    };
    let first = s.receipts_page(&mine, None, 2).await.unwrap();
    assert_eq!(
        first
            .receipts
            .iter()
            .map(|r| r.id.clone())
            .collect::<Vec<_>>(),
        vec![ids[4].clone(), ids[3].clone()]
    );
    let second = s.receipts_page(&mine, first.next.clone(), 2).await.unwrap();
    let third = s
        .receipts_page(&mine, second.next.clone(), 2)
        .await
        .unwrap();
    assert_eq!(third.receipts.len(), 1);
    assert!(third.next.is_none());
    let all: Vec<String> = first
        .receipts
        .iter()
        .chain(&second.receipts)
        .chain(&third.receipts)
        .map(|r| r.id.clone())
        .collect();
    assert_eq!(
        all.iter().collect::<HashSet<_>>().len(),
        5,
        "each once, never another facility's"
    );
    let queued = ReceiptFilter {
        status: Some(Status::Delivered),
        ..mine.clone()
    };
    assert!(
        s.receipts_page(&queued, None, 10)
            .await
            .unwrap()
            .receipts
            .is_empty()
    );
    let since = ReceiptFilter {
        since: Some(1_003),
        ..mine
    };
    assert_eq!(
        s.receipts_page(&since, None, 10)
            .await
            .unwrap()
            .receipts
            .len(),
        2
    );
}

/// Events: in commit order per facility; a webhook starts after the facility's last event,
/// is leased by one sender at a time, and moves past an event only when told.
async fn events_and_webhooks(s: Arc<Store>) {
    let f = Facility {
        id: "pkm-1".into(),
        name: "P".into(),
        organization_id: ORG.into(),
        location_id: "l".into(),
    };
    s.add_facility_key(&f, &sha256_hex(b"k"), 1).await.unwrap();
    let first = accept(&s, "E-1").await;
    let l = lease_one(&s, "A", ORG, LONG).await;
    assert!(
        s.complete(&first, &l.token, 1, 2, delivered(json!([])))
            .await
            .unwrap()
    );
    s.set_webhook(
        "pkm-1",
        "http://127.0.0.1:9/hook",
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        10,
    )
    .await
    .unwrap();
    let w = s.webhook("pkm-1").await.unwrap().unwrap();
    assert_eq!(
        (w.backlog, w.sent_seq > 0),
        (0, true),
        "history stays in the feed, not the webhook"
    );
    assert!(
        s.lease_webhooks("X", LONG, 10).await.unwrap().is_empty(),
        "nothing to send"
    );
    for k in ["E-2", "E-3"] {
        let id = accept(&s, k).await;
        let l = lease_one(&s, "A", ORG, LONG).await;
        assert!(
            s.complete(&id, &l.token, 1, 2, delivered(json!([])))
                .await
                .unwrap()
        );
    }
    let all = s.events_after("pkm-1", 0, 10).await.unwrap();
    assert_eq!(all.len(), 3);
    assert!(all.windows(2).all(|w| w[0].seq < w[1].seq));
    assert!(s.events_after("pkm-2", 0, 10).await.unwrap().is_empty());
    let leased = s.lease_webhooks("X", LONG, 10).await.unwrap();
    assert_eq!(leased.len(), 1);
    assert_eq!(leased[0].webhook.backlog, 2);
    assert!(
        s.lease_webhooks("Y", LONG, 10).await.unwrap().is_empty(),
        "one sender at a time"
    );
    let token = leased[0].token.clone();
    assert!(
        s.webhook_sent("pkm-1", &token, all[1].seq, LONG, 20)
            .await
            .unwrap()
    );
    assert!(
        !s.webhook_sent("pkm-1", "stale", all[2].seq, LONG, 20)
            .await
            .unwrap()
    );
    let failed = |give_up: bool, delay_ms: i64, status: u16| WebhookFailure {
        seq: all[2].seq,
        error: format!("webhook answered HTTP {status}"),
        http_status: Some(status),
        delay_ms,
        give_up,
    };
    assert!(
        s.webhook_failed("pkm-1", &token, failed(false, 3_600_000, 503), 30)
            .await
            .unwrap()
    );
    let w = s.webhook("pkm-1").await.unwrap().unwrap();
    assert_eq!(
        (
            w.sent_seq,
            w.backlog,
            w.attempts,
            w.failing_since,
            w.last_status
        ),
        (all[1].seq, 1, 1, Some(30), Some(503))
    );
    assert!(
        s.lease_webhooks("Y", LONG, 10).await.unwrap().is_empty(),
        "waits for its retry"
    );
    // Given up after its budget: the cursor moves past it, counted.
    s.set_webhook(
        "pkm-1",
        "http://127.0.0.1:9/hook",
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        40,
    )
    .await
    .unwrap();
    let leased = s.lease_webhooks("Y", LONG, 10).await.unwrap();
    assert_eq!(leased.len(), 1, "a new URL is tried at once");
    assert!(
        s.webhook_failed("pkm-1", &leased[0].token, failed(true, 0, 410), 50)
            .await
            .unwrap()
    );
    let w = s.webhook("pkm-1").await.unwrap().unwrap();
    assert_eq!((w.sent_seq, w.backlog, w.given_up), (all[2].seq, 0, 1));
    assert!(s.remove_webhook("pkm-1").await.unwrap());
    assert!(!s.remove_webhook("pkm-1").await.unwrap());
}

async fn retention_prunes_payloads_but_keeps_receipts(s: Arc<Store>) {
    let id = accept(s.as_ref(), "K-7").await;
    let queued = accept(s.as_ref(), "K-8").await;
    let l = lease_one(&s, "A", ORG, LONG).await;
    assert!(
        s.complete(
            &id,
            &l.token,
            2_000,
            3_000,
            Completion::Delivered {
                server_ids: json!([]),
                duplicate: true,
                changes: None,
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

async fn lookups_expire(s: Arc<Store>) {
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

async fn facility_keys_resolve_by_hash(s: Arc<Store>) {
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

async fn audit_is_queryable(s: Arc<Store>) {
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

fn console_session(token: &str, created: i64) -> ConsoleSession {
    ConsoleSession {
        token_hash: sha256_hex(token.as_bytes()),
        principal_kind: "operator".into(),
        principal_id: "ani".into(),
        key_hash: sha256_hex(b"operator-key"),
        csrf_token: format!("csrf-{token}"),
        created_at: created,
        last_seen_at: created,
        expires_at: created + 24 * 3_600_000,
    }
}

async fn console_sessions_are_kept_touched_and_forgotten(s: Arc<Store>) {
    let hour = 3_600_000;
    let a = console_session("a", 1_000);
    s.create_console_session(&a, 0).await.unwrap();
    assert_eq!(
        s.console_session(&a.token_hash).await.unwrap(),
        Some(a.clone())
    );
    assert_eq!(
        s.console_session(&sha256_hex(b"other")).await.unwrap(),
        None
    );
    // Touching moves the idle clock forward, never back.
    s.touch_console_session(&a.token_hash, 5_000).await.unwrap();
    s.touch_console_session(&a.token_hash, 2_000).await.unwrap();
    let touched = s.console_session(&a.token_hash).await.unwrap().unwrap();
    assert_eq!(touched.last_seen_at, 5_000);
    assert_eq!(touched.csrf_token, "csrf-a");
    // A new session forgets the ended ones: idle since before `idle_before`, or past expiry.
    let b = console_session("b", 30 * hour);
    s.create_console_session(&b, 30 * hour - 8 * hour)
        .await
        .unwrap();
    assert_eq!(s.console_session(&a.token_hash).await.unwrap(), None);
    assert!(s.console_session(&b.token_hash).await.unwrap().is_some());
    // Sign-out.
    assert!(s.delete_console_session(&b.token_hash).await.unwrap());
    assert!(!s.delete_console_session(&b.token_hash).await.unwrap());
    assert_eq!(s.console_session(&b.token_hash).await.unwrap(), None);
}

/// What the console's overview reads: counts per organization and status, the age of each
/// organization's queue, and deliveries with their acceptance and delivery times; and a
/// facility's own counts per status.
async fn the_overview_counts_queues_and_deliveries(s: Arc<Store>) {
    let done = accept(&s, "OV-1").await;
    let l = lease_one(&s, "A", ORG, LONG).await;
    assert!(
        s.complete(&done, &l.token, 4_000, 5_000, delivered(json!([])))
            .await
            .unwrap()
    );
    let dead = accept(&s, "OV-2").await;
    let l = lease_one(&s, "A", ORG, LONG).await;
    assert!(
        s.complete(&dead, &l.token, 6_000, 7_000, refused(10103))
            .await
            .unwrap()
    );
    let mut waiting = record("OV-3", "OV-3");
    waiting.received_at = 900;
    s.accept(waiting).await.unwrap();
    accept_for(&s, "1000000002", "OV-4").await;

    let queues = s.organization_queues().await.unwrap();
    assert_eq!(queues.len(), 2);
    assert_eq!(queues[0].organization_id, ORG);
    assert_eq!(queues[0].counts.get(&Status::Delivered), Some(&1));
    assert_eq!(queues[0].counts.get(&Status::Dead), Some(&1));
    assert_eq!(queues[0].counts.get(&Status::Queued), Some(&1));
    assert_eq!(queues[0].oldest_waiting_since, Some(900));
    assert_eq!(queues[1].organization_id, "1000000002");
    assert_eq!(queues[1].oldest_waiting_since, Some(1_000));

    assert_eq!(
        s.deliveries_since(0).await.unwrap(),
        vec![Delivery {
            accepted_at: 1_000,
            delivered_at: 5_000
        }]
    );
    assert!(s.deliveries_since(5_001).await.unwrap().is_empty());

    // A facility reads a receipt only with its own id in the query.
    assert!(s.facility_receipt("pkm-1", &dead).await.unwrap().is_some());
    assert!(s.facility_receipt("pkm-2", &dead).await.unwrap().is_none());

    // A facility's counts per status are its own, every status present.
    let mut other = record("OV-5", "OV-5");
    other.facility_id = "pkm-2".into();
    s.accept(other).await.unwrap();
    let counts = s.facility_counts("pkm-1").await.unwrap();
    assert_eq!(
        counts,
        vec![
            (Status::Queued, 2),
            (Status::Delivering, 0),
            (Status::Retrying, 0),
            (Status::Delivered, 1),
            (Status::Dead, 1),
            (Status::Discarded, 0),
            (Status::Cancelled, 0),
        ]
    );
    let theirs = s.facility_counts("pkm-2").await.unwrap();
    assert_eq!(theirs.iter().map(|(_, n)| n).sum::<u64>(), 1);
    assert!(
        s.facility_counts("nobody")
            .await
            .unwrap()
            .iter()
            .all(|(_, n)| *n == 0)
    );
}

/// Operators list facility keys (hashes and dates, never keys) and narrow the audit log by
/// time.
async fn facility_keys_are_listed_and_the_audit_log_has_a_time_range(s: Arc<Store>) {
    let f = Facility {
        id: "pkm-keys".into(),
        name: "Puskesmas".into(),
        organization_id: ORG.into(),
        location_id: "loc".into(),
    };
    s.add_facility_key(&f, &sha256_hex(b"k1"), 10)
        .await
        .unwrap();
    s.add_facility_key(&f, &sha256_hex(b"k2"), 20)
        .await
        .unwrap();
    s.revoke_facility_key(&sha256_hex(b"k1"), 30).await.unwrap();
    let keys = s.facility_keys().await.unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(
        (
            keys[0].key_hash.as_str(),
            keys[0].created_at,
            keys[0].revoked_at
        ),
        (sha256_hex(b"k1").as_str(), 10, Some(30))
    );
    assert_eq!(keys[1].revoked_at, None);

    for at in [100, 200, 300] {
        s.audit(AuditEvent {
            at,
            actor: "operator:ani".into(),
            action: "key-create".into(),
            receipt_id: None,
            organization_id: None,
            detail: None,
        })
        .await
        .unwrap();
    }
    let between = s
        .audit_events(
            &AuditFilter {
                since: Some(150),
                until: Some(300),
                ..Default::default()
            },
            10,
        )
        .await
        .unwrap();
    assert_eq!(between.iter().map(|e| e.at).collect::<Vec<_>>(), vec![200]);
}

async fn concurrent_forwarders_never_share_a_record(s: Arc<Store>) {
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
async fn accept_for(s: &Store, org: &str, id: &str) -> String {
    let mut r = record(id, id);
    r.organization_id = org.into();
    match s.accept(r).await.unwrap() {
        Accepted::New { receipt_id } => receipt_id,
        other => panic!("{other:?}"),
    }
}

/// Lease `id` (of `org`) and complete it as delivered at `now`. The others leased with it
/// stay due (their leases expire at once).
async fn deliver(s: &Store, org: &str, id: &str, now: i64) {
    let leased = s.lease_due("W", org, EXPIRED, 100, 2_000).await.unwrap();
    let l = leased.iter().find(|l| l.receipt_id == id).expect("leased");
    assert!(
        s.complete(id, &l.token, 2_000, now, delivered(json!([])))
            .await
            .unwrap()
    );
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

async fn feed_follows_the_commit_order(s: Arc<Store>) {
    let org2 = "1000000002";
    let a = accept(s.as_ref(), "P-1").await;
    let b = accept(s.as_ref(), "P-2").await;
    let c = accept_for(s.as_ref(), org2, "P-3").await;
    let d = accept(s.as_ref(), "P-4").await;
    let undelivered = accept(s.as_ref(), "P-5").await;
    let mut leases = s
        .lease_due("W", "1000000001", LONG, 100, 2_000)
        .await
        .unwrap();
    leases.extend(s.lease_due("W", org2, LONG, 100, 2_000).await.unwrap());
    // Committed in the order b, c, a, d — with a clock that goes back for a (another
    // instance's): the feed follows the commits, and a's time is not before b's.
    for (id, at) in [(&b, 10_000), (&c, 11_000), (&a, 9_000), (&d, 12_000)] {
        let token = &leases.iter().find(|l| &l.receipt_id == id).unwrap().token;
        assert!(
            s.complete(id, token, 2_000, at, delivered(json!([])))
                .await
                .unwrap()
        );
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
async fn feed_readers_never_miss_concurrent_deliveries(s: Arc<Store>) {
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
                    .lease_due(&owner, "1000000001", LONG, 2, 2_000)
                    .await
                    .unwrap();
                if got.is_empty() {
                    break;
                }
                for l in got {
                    let now = 5_000 + fastrand_ish(&l.receipt_id);
                    assert!(
                        s.complete(&l.receipt_id, &l.token, 2_000, now, delivered(json!([])))
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

async fn export_jobs_are_claimed_once_and_fenced(s: Arc<Store>) {
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
async fn concurrent_workers_never_share_an_export_job(s: Arc<Store>) {
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

async fn facility_keys_are_revoked_one_or_all(s: Arc<Store>) {
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

async fn smart_clients_and_access_tokens(s: Arc<Store>) {
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

async fn assertion_jtis_are_used_once(s: Arc<Store>) {
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

fn sqlite() -> (tempfile::TempDir, Arc<Store>) {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::sqlite(&dir.path().join("t.sqlite3")).unwrap();
    (dir, Arc::new(s))
}

use common::{drop_schema, new_schema, postgres_unreachable, postgres_url};

async fn postgres(test: &str) -> Option<(Arc<Store>, String)> {
    let schema = new_schema();
    match Store::postgres(&postgres_url(), Some(&schema), 8).await {
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
    accept_is_durable_idempotent_and_takes_revisions,
    a_waiting_revision_is_replaced,
    a_delivered_record_is_corrected_by_an_update,
    a_correction_waits_for_the_delivery_under_way,
    a_refused_record_is_corrected_afresh,
    cancellation_before_and_after_delivery,
    leases_are_exclusive_and_fenced_by_token,
    leases_are_renewed_by_heartbeat,
    retries_wait_for_their_time,
    receipts_page_newest_change_first,
    events_and_webhooks,
    dead_letters_are_listed_requeued_and_discarded,
    retention_prunes_payloads_but_keeps_receipts,
    lookups_expire,
    facility_keys_resolve_by_hash,
    audit_is_queryable,
    concurrent_forwarders_never_share_a_record,
    facility_keys_are_revoked_one_or_all,
    smart_clients_and_access_tokens,
    assertion_jtis_are_used_once,
    console_sessions_are_kept_touched_and_forgotten,
    the_overview_counts_queues_and_deliveries,
    facility_keys_are_listed_and_the_audit_log_has_a_time_range,
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
                tokio::spawn(
                    async move { Store::postgres(&postgres_url(), Some(&schema), 2).await },
                )
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
    let b = Arc::new(
        Store::postgres(&postgres_url(), Some(&schema), 2)
            .await
            .unwrap(),
    );
    let id = accept(&a, "F-1").await;
    let first = lease_one(&a, "A", ORG, EXPIRED).await;
    // A's lease ran out on the database's clock; B takes the record over.
    let taken = lease_one(&b, "B", ORG, LONG).await;
    assert!(
        a.lease_due("A", ORG, LONG, 10, 2_000)
            .await
            .unwrap()
            .is_empty(),
        "held by B"
    );
    // A answers late, with every kind of result, and renews: none is recorded.
    for late in [retry_in(9_000), refused(10117), delivered(json!([]))] {
        assert!(
            !a.complete(&id, &first.token, 2_000, 3_500, late)
                .await
                .unwrap()
        );
    }
    assert_eq!(
        a.renew_leases(vec![(id.clone(), first.token.clone())], LONG)
            .await
            .unwrap(),
        vec![false]
    );
    let r = b.receipt(&id).await.unwrap().unwrap();
    assert_eq!((r.status, r.attempts), (Status::Delivering, 2));
    assert!(
        b.attempts(&id).await.unwrap().is_empty(),
        "no attempt recorded for A"
    );
    let done = Completion::Delivered {
        server_ids: json!([{"resourceType": "Encounter", "id": "e"}]),
        duplicate: true,
        changes: None,
    };
    assert!(
        b.complete(&id, &taken.token, 3_001, 3_600, done)
            .await
            .unwrap()
    );
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

/// A JSON column that does not parse reads as an error on both databases — never as "none".
#[tokio::test(flavor = "multi_thread")]
async fn corrupt_json_reads_as_an_error_on_both_databases() {
    async fn deliver_one(s: &Store) -> String {
        let id = accept(s, "J-1").await;
        let l = lease_one(s, "A", ORG, LONG).await;
        assert!(
            s.complete(&id, &l.token, 1, 2, delivered(json!([])))
                .await
                .unwrap()
        );
        id
    }
    let (dir, s) = sqlite();
    let id = deliver_one(&s).await;
    let conn = rusqlite::Connection::open(dir.path().join("t.sqlite3")).unwrap();
    conn.execute(
        "UPDATE receipts SET server_ids = '[{oops' WHERE id = ?1",
        [&id],
    )
    .unwrap();
    let got = s.receipt(&id).await;
    assert!(
        matches!(got, Err(StoreError::Corrupt(_))),
        "SQLite: {got:?}"
    );

    let test = "corrupt_json_reads_as_an_error_on_both_databases";
    let Some((s, schema)) = postgres(test).await else {
        return;
    };
    let id = deliver_one(&s).await;
    let client = common::postgres_client(test).await.unwrap();
    client
        .execute(
            &format!("UPDATE {schema}.receipts SET server_ids = '[{{oops' WHERE id = $1"),
            &[&id],
        )
        .await
        .unwrap();
    let got = s.receipt(&id).await;
    assert!(
        matches!(got, Err(StoreError::Corrupt(_))),
        "PostgreSQL: {got:?}"
    );
    drop_schema(&schema).await;
}
