//! Pushes many records into a running gateway and follows its memory until every one is
//! delivered: the "≤ 150 MiB at every moment of a 20,000-record ingest and delivery" figure
//! of `benches/compare.sh` (issue 12, point 4).
//!
//! `push_records --gateway URL --key KEY --record FILE --count N --connections C --pid PID`
//! posts FILE to `URL/ingest/posyandu.balita` N times, each with its own `id_kunjungan` (so
//! every one is a new record, committed and delivered), C requests in flight. Meanwhile it
//! reads `/proc/PID/status` every 20 ms. When all are acknowledged it polls `/readyz` until
//! no receipt is queued, delivering or retrying, then prints one line:
//!
//! `pushed N (202: A, other: B) in S s; delivered by T s (still on their way: L); RSS peak P KiB (VmHWM H KiB), at the end E KiB`
//!
//! A bench target, so it builds with the benches and never ships; without arguments (as
//! `cargo bench` runs every bench) it says how to use it and exits.

use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

struct Args {
    gateway: String,
    key: String,
    record: String,
    count: u64,
    connections: u64,
    pid: u32,
}

fn args() -> Option<Args> {
    let mut it = std::env::args().skip(1);
    let (mut gateway, mut key, mut record, mut count, mut connections, mut pid) =
        (None, None, None, None, Some(8), None);
    while let Some(flag) = it.next() {
        let value = it.next();
        match flag.as_str() {
            "--gateway" => gateway = value,
            "--key" => key = value,
            "--record" => record = value,
            "--count" => count = value.and_then(|v| v.parse().ok()),
            "--connections" => connections = value.and_then(|v| v.parse().ok()),
            "--pid" => pid = value.and_then(|v| v.parse().ok()),
            _ => return None,
        }
    }
    Some(Args {
        gateway: gateway?,
        key: key?,
        record: record?,
        count: count?,
        connections: connections?,
        pid: pid?,
    })
}

/// `VmRSS` and `VmHWM` of the process, in KiB.
fn memory(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// Receipts still on their way (queued, delivering, retrying), as `/readyz` counts them.
async fn in_flight(client: &reqwest::Client, gateway: &str) -> Option<u64> {
    let ready: Value = client
        .get(format!("{gateway}/readyz"))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    let receipts = ready.get("receipts")?.as_object()?;
    Some(
        ["queued", "delivering", "retrying"]
            .iter()
            .filter_map(|s| receipts.get(*s).and_then(Value::as_u64))
            .sum(),
    )
}

#[tokio::main]
async fn main() {
    let Some(a) = args() else {
        eprintln!(
            "usage: push_records --gateway URL --key KEY --record FILE --count N [--connections C] --pid PID"
        );
        return;
    };
    let template = std::fs::read_to_string(&a.record).expect("the record file");
    let mut record: Value = serde_json::from_str(&template).expect("the record is JSON");

    let stop = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (stop, peak, pid) = (stop.clone(), peak.clone(), a.pid);
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if let Some((rss, _)) = memory(pid) {
                    peak.fetch_max(rss, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };

    let client = reqwest::Client::new();
    let next = Arc::new(AtomicU64::new(0));
    let (accepted, other) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..a.connections {
        let (client, next, accepted, other) = (
            client.clone(),
            next.clone(),
            accepted.clone(),
            other.clone(),
        );
        let url = format!("{}/ingest/posyandu.balita", a.gateway);
        let key = a.key.clone();
        let mut record = record.clone();
        let count = a.count;
        workers.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= count {
                    break;
                }
                record["id_kunjungan"] = Value::String(format!("PUSH-{n}"));
                let sent = client
                    .post(&url)
                    .bearer_auth(&key)
                    .header("Content-Type", "application/json")
                    .body(record.to_string())
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status().as_u16() == 202 => accepted.fetch_add(1, Ordering::Relaxed),
                    _ => other.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    for w in workers {
        w.await.expect("a pushing task");
    }
    let pushed = started.elapsed();
    record["id_kunjungan"] = Value::Null;

    // Delivered: nothing left on its way (checked until it holds, at most 10 minutes).
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut left = in_flight(&client, &a.gateway).await;
    while left != Some(0) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        left = in_flight(&client, &a.gateway).await;
    }
    let delivered = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    sampler.join().expect("the sampler");
    let (end, hwm) = memory(a.pid).unwrap_or((0, 0));
    println!(
        "pushed {} (202: {}, other: {}) in {:.1} s; delivered by {:.1} s (still on their way: {}); RSS peak {} KiB (VmHWM {} KiB), at the end {} KiB",
        a.count,
        accepted.load(Ordering::Relaxed),
        other.load(Ordering::Relaxed),
        pushed.as_secs_f64(),
        delivered.as_secs_f64(),
        left.map_or("unknown".into(), |n| n.to_string()),
        peak.load(Ordering::Relaxed).max(end),
        hwm,
        end
    );
}
