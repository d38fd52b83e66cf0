//! When the store cannot take writes. A full disk, for real: the gateway's data folder is a
//! small tmpfs. When it fills up, a push is answered 503 with `Retry-After` (and an
//! OperationOutcome that says it was not accepted), `/readyz` says not ready, and the
//! forwarder does not spin on failing writes. When space comes back, everything acknowledged
//! is delivered. And a database that fails every statement (PostgreSQL, its schema gone):
//! the forwarder backs off instead of logging an error per millisecond.
//!
//! Mounting needs privileges (root, as in CI): elsewhere the tmpfs test is skipped with a
//! notice, unless TMPFS_TESTS_REQUIRED=1 (set by `.ci/run`), which makes it fail.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A tmpfs mounted for the test, unmounted when dropped.
struct Mount(PathBuf);

impl Mount {
    fn new(at: &Path, size: &str) -> Option<Mount> {
        std::fs::create_dir_all(at).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Mount(at.to_path_buf())),
            other => {
                let why = match other {
                    Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_string(),
                    Err(e) => e.to_string(),
                };
                if std::env::var("TMPFS_TESTS_REQUIRED").is_ok_and(|v| v == "1") {
                    panic!(
                        "a tmpfs is required (TMPFS_TESTS_REQUIRED=1) but cannot be mounted: {why}"
                    );
                }
                eprintln!(
                    "NOTICE: disk-full test skipped: cannot mount a tmpfs ({why}); run as root to include it"
                );
                None
            }
        }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_refuses_new_records_is_not_ready_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let Some(_mount) = Mount::new(&data, "16m") else {
        return;
    };
    // Room to take back later: more than the store needs to deliver everything it took in
    // meanwhile. Each delivery commits into SQLite's write-ahead log, which grows up to its
    // checkpoint (1,000 pages, 4 MB) before it is copied into the database; with only 1 MB
    // given back the log filled the disk again halfway through the deliveries.
    let filler = data.join("filler");
    std::fs::write(&filler, vec![0u8; 12 * 1024 * 1024]).unwrap();
    // Keep 1 MB free (the default, 64 MB, is more than this whole disk). Retries and the
    // breaker stay short: how long the records waited while SATUSEHAT was down must not
    // decide how long they take once it is back.
    let mut gw = Gateway::start(
        dir.path(),
        None,
        &[
            ("GERBANG_STORE__MIN_FREE_MB", "1"),
            ("GERBANG_DELIVER__RETRY__BASE", "0.2"),
            ("GERBANG_DELIVER__RETRY__CAP", "1"),
            ("GERBANG_DELIVER__BREAKER__OPEN_SECS", "0.5"),
            ("GERBANG_DELIVER__BREAKER__MAX_OPEN_SECS", "2"),
        ],
    );
    let key = gw.demo_key.clone().unwrap();
    // SATUSEHAT is down meanwhile: records wait in the queue, and the forwarder keeps
    // writing their attempts — into the full disk.
    let upstream = gw
        .proc
        .wait_line("built-in SATUSEHAT sandbox on ", Duration::from_secs(10));
    let faults = |v: serde_json::Value| {
        let url = format!("{upstream}/sandbox/faults");
        async move {
            assert!(
                client()
                    .put(url)
                    .json(&v)
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .is_success()
            );
        }
    };
    faults(serde_json::json!({"error_rate": 1.0})).await;

    // Push until the disk is full.
    let mut acked = Vec::new();
    let refusal = loop {
        assert!(acked.len() < 5_000, "the disk never filled up");
        let r = client()
            .post(format!("{}/ingest/posyandu.balita", gw.url))
            .bearer_auth(&key)
            .json(&record(&format!("DF-{:05}", acked.len())))
            .send()
            .await
            .unwrap();
        match r.status().as_u16() {
            202 => acked.push(
                r.json::<serde_json::Value>().await.unwrap()["receipt"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            ),
            503 => break r,
            other => panic!("HTTP {other}: {}", r.text().await.unwrap()),
        }
    };
    assert!(!acked.is_empty(), "nothing fitted at all");
    assert_eq!(
        refusal
            .headers()
            .get("Retry-After")
            .map(|v| v.to_str().unwrap().to_string()),
        Some("30".into())
    );
    let oo: serde_json::Value = refusal.json().await.unwrap();
    assert!(texts(&oo).contains("NOT accepted"), "{oo}");
    // The last bytes go too (a log file, another program): now every write fails.
    let top = data.join("top");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&top).unwrap();
        while f.write_all(&[0u8; 4096]).is_ok() {}
    }

    // Not ready, with Retry-After.
    let ready = client()
        .get(format!("{}/readyz", gw.url))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status().as_u16(), 503);
    assert!(ready.headers().get("Retry-After").is_some());

    // The forwarder goes on with its small writes where it can, and backs off where it
    // cannot: a few lines over several seconds at most, not dozens a second.
    let (before, t0) = (store_failures(&gw.proc.output()), Instant::now());
    std::thread::sleep(Duration::from_secs(6));
    let during = store_failures(&gw.proc.output()) - before;
    let per_sec = during as f64 / t0.elapsed().as_secs_f64();
    assert!(
        per_sec < 2.0,
        "{during} store-failure lines in {:?}: no backoff",
        t0.elapsed()
    );

    // Space again, SATUSEHAT back: ready, and every acknowledged record is delivered.
    std::fs::remove_file(&filler).unwrap();
    std::fs::remove_file(&top).unwrap();
    faults(serde_json::json!({})).await;
    eventually(Duration::from_secs(60), "ready again", || async {
        let r = client()
            .get(format!("{}/readyz", gw.url))
            .send()
            .await
            .unwrap();
        (r.status().as_u16() == 200).then_some(())
    })
    .await;
    for id in &acked {
        let start = Instant::now();
        loop {
            let r = receipt(&gw.url, &key, id).await;
            if r["status"] == "delivered" {
                break;
            }
            if start.elapsed() > Duration::from_secs(120) {
                // What the gateway did, to see why this record is still waiting.
                let out = gw.proc.output();
                // Not this test's own polling of receipts.
                let tail: Vec<&str> = out
                    .lines()
                    .filter(|l| !l.contains("path=/receipts/"))
                    .rev()
                    .take(80)
                    .collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                panic!(
                    "receipt {id} not delivered 120 s after the disk and SATUSEHAT came back: {r}\n--- gateway log (last lines) ---\n{}",
                    tail.join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    eprintln!(
        "{} records acknowledged before the disk filled; backoff: {during} failure lines in {:.1}s",
        acked.len(),
        t0.elapsed().as_secs_f64()
    );
    drop(gw);
}

fn store_failures(out: &str) -> usize {
    out.lines()
        .filter(|l| l.contains("the store failed; backing off"))
        .count()
}

/// Every statement fails (the PostgreSQL schema is gone under a running gateway): pushes get
/// 503 with Retry-After, `/readyz` 503, and the forwarder backs off — its failure lines come
/// further and further apart.
#[tokio::test(flavor = "multi_thread")]
async fn a_failing_database_makes_the_forwarder_back_off() {
    let test = "a_failing_database_makes_the_forwarder_back_off";
    let Some(db) = postgres_client(test).await else {
        return;
    };
    let schema = new_schema();
    let dir = tempfile::tempdir().unwrap();
    let sandbox = Sandbox::start(dir.path(), None);
    let cfg = write_config(
        dir.path(),
        &sandbox.url,
        &format!(
            "[store]\nbackend = \"postgres\"\npostgres_url = \"{}\"\npostgres_schema = \"{schema}\"\n",
            postgres_url()
        ),
    );
    let key = add_facility(&cfg, "pkm-db", ORG);
    let gw = Gateway::start(dir.path(), Some(&cfg), &[]);
    assert_eq!(ingest(&gw.url, &key, &record("DB-1")).await.0, 202);
    db.batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .unwrap();

    let r = client()
        .post(format!("{}/ingest/posyandu.balita", gw.url))
        .bearer_auth(&key)
        .json(&record("DB-2"))
        .send()
        .await
        .unwrap();
    // The key check itself needs the store: 503, with Retry-After, never a bare 500.
    assert_eq!(r.status().as_u16(), 503);
    assert!(r.headers().get("Retry-After").is_some());
    let ready = client()
        .get(format!("{}/readyz", gw.url))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status().as_u16(), 503);
    assert!(ready.headers().get("Retry-After").is_some());

    eventually(
        Duration::from_secs(30),
        "the forwarder meeting the failing store",
        || {
            let n = store_failures(&gw.proc.output());
            async move { (n >= 3).then_some(()) }
        },
    )
    .await;
    let (before, t0) = (store_failures(&gw.proc.output()), Instant::now());
    std::thread::sleep(Duration::from_secs(6));
    let during = store_failures(&gw.proc.output()) - before;
    // Backoff doubles from 0.5 s to 30 s: after the first few, a handful in six seconds.
    assert!(
        (during as f64) / t0.elapsed().as_secs_f64() < 2.0,
        "{during} store-failure lines in {:?}: no backoff\n{}",
        t0.elapsed(),
        gw.proc.output()
    );
    drop(gw);
}
