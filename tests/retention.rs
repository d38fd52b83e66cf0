//! Retention soak: a gateway with `retention_secs = 1` and `prune_interval_secs = 1` takes
//! several rounds of large records; after each round is delivered and pruned, what the SQLite
//! database holds is measured. A round must not add its payloads — without pruning it grows by
//! them every round — and the receipts of pruned records stay readable.

mod common;

use common::*;
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

const ROUNDS: usize = 6;
const PER_ROUND: usize = 50;
/// Size of the padding in each record's raw payload.
const PADDING: usize = 40 * 1024;

/// A valid record made large: `kader_input` (free text, kept locally, never sent) carries
/// about 40 KB, standing in for the long registers some facility systems send.
fn large_record(id: &str) -> Value {
    let mut r = record(id);
    let line = "Kader: Siti Aminah, dicatat ulang dari buku register posyandu. ";
    // Spread over fields the mapping does not send, each under the input check's limit on
    // one text field (10,000 characters).
    let piece = line.repeat(PADDING / 5 / line.len() + 1);
    for pointer in [
        "/kader_input",
        "/sumber",
        "/kode_posyandu",
        "/peserta/nama_ibu",
        "/peserta/no_bpjs",
    ] {
        *r.pointer_mut(pointer)
            .unwrap_or_else(|| panic!("{pointer}")) = Value::String(piece.clone());
    }
    r
}

/// Bytes the database holds: its pages in use (free pages left out), as a reader sees them
/// (the write-ahead log included). What the files measure on disk also depends on when SQLite
/// last checkpointed and vacuumed — under load, seconds later — so it is printed, not asserted.
fn db_size(data: &Path) -> (u64, u64) {
    let db = data.join("gerbang.sqlite3");
    let conn =
        rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let pragma = |p: &str| -> u64 {
        conn.query_row(&format!("PRAGMA {p}"), [], |r| r.get::<_, i64>(0))
            .unwrap() as u64
    };
    let used = (pragma("page_count") - pragma("freelist_count")) * pragma("page_size");
    let on_disk = |f: &str| std::fs::metadata(data.join(f)).map_or(0, |m| m.len());
    (
        used,
        on_disk("gerbang.sqlite3") + on_disk("gerbang.sqlite3-wal"),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn pruned_payloads_keep_the_database_bounded_and_receipts_readable() {
    let t0 = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let sandbox = Sandbox::start(dir.path(), None);
    let cfg = write_config(
        dir.path(),
        &sandbox.url,
        // The test polls every receipt of a round in a tight loop: far above the default
        // per-key rate limit, which is not what this test is about.
        "[store]\nretention_secs = 1\nprune_interval_secs = 1\n[limits]\nrequests_per_second = 0\n",
    );
    let key = add_facility(&cfg, "pkm-retention", ORG);
    let gw = Gateway::start(dir.path(), Some(&cfg), &[]);
    let data = dir.path().join("data");

    let mut sizes = Vec::new();
    let mut all = Vec::new();
    for round in 0..ROUNDS {
        // Push a round, ten at a time.
        let mut tasks = Vec::new();
        for t in 0..10 {
            let (url, key) = (gw.url.clone(), key.clone());
            tasks.push(tokio::spawn(async move {
                let mut ids = Vec::new();
                for i in (t..PER_ROUND).step_by(10) {
                    let (status, body) =
                        ingest(&url, &key, &large_record(&format!("R{round}-{i:03}"))).await;
                    assert_eq!(status, 202, "{body}");
                    ids.push(body["receipt"].as_str().unwrap().to_string());
                }
                ids
            }));
        }
        let mut ids = Vec::new();
        for t in tasks {
            ids.extend(t.await.unwrap());
        }

        // Delivered, then pruned (a second after delivery, within a second).
        for id in &ids {
            eventually(
                Duration::from_secs(30),
                "the round delivered and pruned",
                || {
                    let (url, key, id) = (gw.url.clone(), key.clone(), id.clone());
                    async move {
                        let r = receipt(&url, &key, &id).await;
                        (r["status"] == "delivered" && r["payload_pruned"] == true).then_some(())
                    }
                },
            )
            .await;
        }
        all.extend(ids);
        let (used, on_disk) = db_size(&data);
        sizes.push(used);
        eprintln!(
            "round {}: {PER_ROUND} records delivered and pruned; database holds {:.2} MB ({:.2} MB on disk with its WAL)",
            round + 1,
            used as f64 / 1e6,
            on_disk as f64 / 1e6
        );
    }

    // Bounded: a round adds its receipts, their attempt log, events and audit entries — kept
    // on purpose, about 9 KB per record with their indexes (0.45 MB a round here) — but not its
    // payloads (~2 MB of raw records a round, more with their Bundles): unpruned, every round
    // would add at least that.
    let payloads = (PER_ROUND * PADDING) as u64;
    for round in 1..sizes.len() {
        let added = sizes[round].saturating_sub(sizes[round - 1]);
        assert!(
            added < payloads / 2,
            "round {} added {added} bytes to the database, a round's payloads are {payloads} (sizes {sizes:?})",
            round + 1
        );
    }

    // Every receipt is still there and says what happened, payload gone.
    for id in &all {
        let r = receipt(&gw.url, &key, id).await;
        assert_eq!(r["status"], "delivered", "{r}");
        assert_eq!(r["payload_pruned"], true, "{r}");
        assert!(
            !r["upstream_ids"].as_array().unwrap().is_empty(),
            "SATUSEHAT's ids stay on the receipt: {r}"
        );
    }
    assert_eq!(
        sandbox.identifiers("Encounter").await.len(),
        ROUNDS * PER_ROUND
    );

    // The database gives pages back rather than only reusing them.
    let db = rusqlite::Connection::open_with_flags(
        data.join("gerbang.sqlite3"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let auto_vacuum: i64 = db
        .query_row("PRAGMA auto_vacuum", [], |r| r.get(0))
        .unwrap();
    assert_eq!(auto_vacuum, 2, "auto_vacuum = INCREMENTAL");
    let payloads: i64 = db
        .query_row(
            "SELECT count(*) FROM revisions WHERE raw IS NOT NULL OR bundle IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(payloads, 0, "every delivered payload pruned");
    drop(db);

    // The retention task reports counts, never content.
    let out = gw.proc.output();
    assert!(out.contains("payloads pruned"), "{out}");
    assert!(!out.contains("Aisyah") && !out.contains("Siti Aminah"));
    eprintln!("soak took {:.1}s", t0.elapsed().as_secs_f64());
}
