//! Batches, end to end: the real `gerbang serve` and a standalone sandbox over real HTTP.
//! NDJSON in, one result per line in input order, mixed results; and a posyandu's day of 500
//! records over a connection cut mid-answer, the lines without a result sent again —
//! counted in the sandbox: every record delivered exactly once.

mod common;

use common::*;
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashMap};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const WAIT: Duration = Duration::from_secs(180);

struct Setup {
    _dir: tempfile::TempDir,
    sandbox: Sandbox,
    gw: Gateway,
    key: String,
}

fn start(extra: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = Sandbox::start(dir.path(), None);
    let cfg = write_config(dir.path(), &sandbox.url, extra);
    let key = add_facility(&cfg, "posyandu-mawar", ORG);
    let gw = Gateway::start(dir.path(), Some(&cfg), &[]);
    Setup {
        _dir: dir,
        sandbox,
        gw,
        key,
    }
}

fn ndjson(records: &[Value]) -> String {
    records.iter().map(|r| format!("{r}\n")).collect()
}

async fn post_ndjson(s: &Setup, body: String) -> (u16, String) {
    let r = client()
        .post(format!("{}/ingest/posyandu.balita", s.gw.url))
        .bearer_auth(&s.key)
        .header("Content-Type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.text().await.unwrap())
}

fn results(text: &str) -> Vec<Value> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn one_result_per_line_in_input_order() {
    let s = start("[ingest]\nmax_batch_records = 6\n");
    let mut no_nik = record("B-3");
    no_nik.as_object_mut().unwrap().remove("id_kunjungan");
    let mut b4_corrected = record("B-4");
    b4_corrected["pengukuran"]["berat_badan"] = json!(8.30);
    let body = [
        record("B-1").to_string(),
        "{\"id_kunjungan\": ".to_string(), // cut short: not JSON
        no_nik.to_string(),
        String::new(), // a blank line is skipped, but still counted
        record("B-4").to_string(),
        record("B-1").to_string(), // line 1 again: recognised
        b4_corrected.to_string(),  // line 5 corrected: its revision 2, after it
    ]
    .join("\n");
    let (status, text) = post_ndjson(&s, body).await;
    assert_eq!(status, 200, "{text}");
    let got = results(&text);
    let summary: Vec<(u64, u64)> = got
        .iter()
        .map(|r| {
            (
                r["line"].as_u64().unwrap(),
                r["http_status"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [(1, 202), (2, 400), (3, 422), (5, 202), (6, 200), (7, 202)],
        "{text}"
    );
    assert_eq!(got[0]["receipt"], got[4]["receipt"]);
    assert_eq!(got[5]["receipt"], got[3]["receipt"]);
    assert_eq!(
        (got[3]["revision"].as_i64(), got[5]["revision"].as_i64()),
        (Some(1), Some(2))
    );
    assert_eq!(got[0]["revision"], 1);
    assert_eq!(got[0]["status"], "queued");
    // An error is an OperationOutcome that names its line.
    assert_eq!(got[1]["outcome"]["resourceType"], "OperationOutcome");
    assert!(
        texts(&got[1]["outcome"]).starts_with("line 2: "),
        "{}",
        got[1]
    );
    assert!(texts(&got[2]["outcome"]).contains("line 3: "), "{}", got[2]);
    for (r, revision) in [(&got[0], 1), (&got[5], 2)] {
        let id = r["receipt"].as_str().unwrap();
        eventually(WAIT, "delivered", || async {
            let r = receipt(&s.gw.url, &s.key, id).await;
            (r["status"] == "delivered" && r["delivered_revision"] == revision).then_some(())
        })
        .await;
    }

    // Past the configured count: refused whole, before anything is stored.
    let seven: Vec<Value> = (10..17).map(|i| record(&format!("B-{i}"))).collect();
    let (status, text) = post_ndjson(&s, ndjson(&seven)).await;
    assert_eq!(status, 413, "{text}");
    assert!(text.contains("max_batch_records"), "{text}");
    let (_, list) = get_json(&format!("{}/receipts", s.gw.url), &s.key).await;
    assert_eq!(list["count"], 2, "{list}");

    // A batch takes no If-Match: that is for one record's correction.
    let r = client()
        .post(format!("{}/ingest/posyandu.balita", s.gw.url))
        .bearer_auth(&s.key)
        .header("Content-Type", "application/x-ndjson")
        .header("If-Match", "\"1\"")
        .body(ndjson(&[record("B-1")]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
}

/// Send `body` as an NDJSON push over a raw connection, read the streamed answer until
/// `keep` results have arrived, then drop the connection. Returns the results read.
async fn push_and_cut(s: &Setup, body: &str, keep: usize) -> Vec<Value> {
    let addr = s.gw.url.trim_start_matches("http://").to_string();
    let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /ingest/posyandu.balita HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/x-ndjson\r\nContent-Length: {}\r\n\r\n",
        s.key,
        body.len()
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    conn.write_all(body.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = tokio::time::timeout(WAIT, conn.read(&mut buf))
            .await
            .expect("the answer stalled")
            .unwrap();
        assert!(
            n > 0,
            "the gateway closed the connection before {keep} results"
        );
        raw.extend_from_slice(&buf[..n]);
        let seen = complete_results(&raw);
        if seen.len() >= keep {
            // The connection drops mid-answer.
            drop(conn);
            return seen;
        }
    }
}

/// The complete result lines in a chunked HTTP answer read so far.
fn complete_results(raw: &[u8]) -> Vec<Value> {
    let text = String::from_utf8_lossy(raw);
    let Some(body) = text.split_once("\r\n\r\n").map(|(_, b)| b) else {
        return Vec::new();
    };
    // Only what is followed by a chunk boundary is whole.
    let whole = match body.rfind("\r\n") {
        Some(end) => &body[..end],
        None => return Vec::new(),
    };
    whole
        .split("\r\n")
        .flat_map(|piece| piece.split('\n'))
        .filter(|p| p.starts_with("{\"line\""))
        .map(|p| serde_json::from_str(p).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_day_of_posyandu_over_a_connection_cut_mid_answer() {
    let s = start("");
    const DAY: usize = 500;
    let records: Vec<Value> = (0..DAY)
        .map(|i| record(&format!("PSY-HARIAN-{i:03}")))
        .collect();

    // The evening sync: the link drops after 150 results have arrived.
    let first = push_and_cut(&s, &ndjson(&records), 150).await;
    let answered: BTreeSet<usize> = first
        .iter()
        .map(|r| {
            assert_eq!(r["http_status"], 202, "{r}");
            r["line"].as_u64().unwrap() as usize
        })
        .collect();
    assert!(
        answered.len() >= 150 && answered.len() < DAY,
        "{}",
        answered.len()
    );
    assert_eq!(
        answered.iter().copied().collect::<Vec<_>>(),
        (1..=answered.len()).collect::<Vec<_>>(),
        "results arrive in input order"
    );

    // The app sends again every record that had no result: some of them were committed
    // after the cut (recognised: 200), the rest are new (202).
    let rest: Vec<Value> = (1..=DAY)
        .filter(|n| !answered.contains(n))
        .map(|n| records[n - 1].clone())
        .collect();
    let (status, text) = post_ndjson(&s, ndjson(&rest)).await;
    assert_eq!(status, 200, "{text}");
    let second = results(&text);
    assert_eq!(second.len(), rest.len());
    let mut by_status: HashMap<u64, usize> = HashMap::new();
    for r in &second {
        *by_status
            .entry(r["http_status"].as_u64().unwrap())
            .or_default() += 1;
    }
    assert_eq!(
        by_status.get(&200).unwrap_or(&0) + by_status.get(&202).unwrap_or(&0),
        rest.len(),
        "{by_status:?}"
    );
    eprintln!(
        "{} results before the cut; of the {} sent again, {:?} (200: committed after the cut)",
        answered.len(),
        rest.len(),
        by_status
    );

    // Every record of the day is delivered exactly once.
    let system = format!("http://sys-ids.kemkes.go.id/encounter/{ORG}|PSY-HARIAN-");
    let held = eventually(WAIT, "all 500 visits delivered", || async {
        let ids: Vec<String> = s
            .sandbox
            .identifiers("Encounter")
            .await
            .into_iter()
            .filter(|i| i.starts_with(&system))
            .collect();
        (ids.iter().collect::<BTreeSet<_>>().len() == DAY).then_some(ids)
    })
    .await;
    assert_eq!(held.len(), DAY, "an Encounter was created twice");
}
