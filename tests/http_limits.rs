//! Bad input from outside, at the HTTP level: a body that stalls or trickles, requests
//! without a valid key in bulk, an overlong URL, malformed HTTP, and the token endpoint's
//! errors. Each gets a prompt 4xx that says what to do (an OperationOutcome; OAuth JSON at
//! `/auth/token`), and nothing is stored.
//!
//! The slow-client tests speak raw HTTP over a blocking `std::net::TcpStream`: reqwest cannot
//! stall half-way through a body. Its read time-out is the bound of each wait, never a sleep.

mod common;

use common::*;
use serde_json::Value;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// An answer read off a raw connection.
#[derive(Debug)]
struct Raw {
    status: u16,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

impl Raw {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {:?} {}",
                self.headers,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

fn connect(url: &str) -> TcpStream {
    let s = TcpStream::connect(url.trim_start_matches("http://")).unwrap();
    // The bound of every wait below: an answer that has not come by then fails the test.
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s
}

/// Read one HTTP answer: its head, then as many bytes as its Content-Length says.
fn read_answer(s: &mut TcpStream) -> Raw {
    read_answers(s, &mut Vec::new())
}

/// The same, for one of several answers on a connection: `buf` holds bytes already read
/// past the previous answer, and keeps those past this one.
fn read_answers(s: &mut TcpStream, buf: &mut Vec<u8>) -> Raw {
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s
            .read(&mut chunk)
            .expect("an answer before the read time-out");
        assert!(
            n > 0,
            "connection closed without an answer: {}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .get("content-length")
        .map_or(0, |l| l.parse().unwrap());
    let mut body = buf.split_off(head_end);
    while body.len() < len {
        let n = s
            .read(&mut chunk)
            .expect("the whole body before the read time-out");
        assert!(n > 0, "connection closed inside the body");
        body.extend_from_slice(&chunk[..n]);
    }
    *buf = body.split_off(len);
    Raw {
        status,
        headers,
        body,
    }
}

/// How many receipts the gateway holds (any state), as `/readyz` counts them.
async fn stored(url: &str) -> u64 {
    let ready: Value = client()
        .get(format!("{url}/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    ready["receipts"]
        .as_object()
        .map_or(0, |m| m.values().filter_map(Value::as_u64).sum())
}

fn is_outcome(v: &Value) -> bool {
    v["resourceType"] == "OperationOutcome"
}

/// An OAuth error answer: the code, JSON, never cached.
fn assert_oauth(r: &Raw, status: u16, error: &str) -> String {
    assert_eq!(r.status, status, "{r:?}");
    assert!(
        r.headers["content-type"].starts_with("application/json"),
        "{r:?}"
    );
    assert_eq!(r.headers["cache-control"], "no-store", "{r:?}");
    let v = r.json();
    assert_eq!(v["error"], error, "{v}");
    v["error_description"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_or_trickling_body_is_cut_with_408_and_nothing_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(
        dir.path(),
        None,
        &[
            ("GERBANG_LIMITS__BODY_TIMEOUT_SECS", "1"),
            ("GERBANG_LIMITS__BODY_DEADLINE_SECS", "3"),
        ],
    );
    let key = gw.demo_key.clone().unwrap();
    let body = serde_json::to_vec(&record("STALL-1")).unwrap();

    // Headers and a third of the record, then nothing: 408 after about a second.
    let url = gw.url.clone();
    let (key2, record2) = (key.clone(), body.clone());
    let (r, took) = tokio::task::spawn_blocking(move || {
        let mut s = connect(&url);
        let start = Instant::now();
        write!(
            s,
            "POST /ingest/posyandu.balita HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {key2}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            record2.len()
        )
        .unwrap();
        s.write_all(&record2[..record2.len() / 3]).unwrap();
        (read_answer(&mut s), start.elapsed())
    })
    .await
    .unwrap();
    assert_eq!(r.status, 408, "{r:?}");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(10),
        "answered after {took:?}"
    );
    let oo = r.json();
    assert!(is_outcome(&oo), "{oo}");
    assert_eq!(oo["issue"][0]["code"], "timeout", "{oo}");
    let text = texts(&oo);
    assert!(text.contains("stopped arriving"), "{text}");
    assert!(
        text.contains("nothing of this request was stored"),
        "{text}"
    );

    // A body that trickles in, a byte at a time, never stalls for a second but is cut at
    // the 3 s deadline.
    let (url, key2) = (gw.url.clone(), key.clone());
    let (r, took) = tokio::task::spawn_blocking(move || {
        let mut s = connect(&url);
        let start = Instant::now();
        write!(
            s,
            "POST /fhir/$validate HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {key2}\r\n\
             Content-Type: application/fhir+json\r\nContent-Length: 100000\r\n\r\n"
        )
        .unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let mut writer = s.try_clone().unwrap();
        let trickling = stop.clone();
        let trickler = std::thread::spawn(move || {
            // Exercising the deadline: a byte every 200 ms, until the answer came.
            while !trickling.load(Ordering::Relaxed) && writer.write_all(b" ").is_ok() {
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        let r = read_answer(&mut s);
        let took = start.elapsed();
        stop.store(true, Ordering::Relaxed);
        trickler.join().unwrap();
        (r, took)
    })
    .await
    .unwrap();
    assert_eq!(r.status, 408, "{r:?}");
    assert!(
        took >= Duration::from_millis(2900) && took < Duration::from_secs(12),
        "answered after {took:?}"
    );
    let oo = r.json();
    assert!(texts(&oo).contains("not complete after 3 s"), "{oo}");

    // The token endpoint's body too, answered as OAuth JSON.
    let url = gw.url.clone();
    let r = tokio::task::spawn_blocking(move || {
        let mut s = connect(&url);
        s.write_all(
            b"POST /auth/token HTTP/1.1\r\nHost: gw\r\nContent-Type: application/x-www-form-urlencoded\r\n\
              Content-Length: 500\r\n\r\ngrant_type=client_cre",
        )
        .unwrap();
        read_answer(&mut s)
    })
    .await
    .unwrap();
    let why = assert_oauth(&r, 408, "invalid_request");
    assert!(why.contains("stopped arriving"), "{why}");

    // Headers that stall: actix's own 408 after 5 s (before any handler; the body is
    // `api::wire`'s), and the connection is closed — not held.
    let url = gw.url.clone();
    let (r, took) = tokio::task::spawn_blocking(move || {
        let mut s = connect(&url);
        let start = Instant::now();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: gw\r\nX-Slow: ")
            .unwrap();
        (read_answer(&mut s), start.elapsed())
    })
    .await
    .unwrap();
    assert_eq!(r.status, 408, "{r:?}");
    assert!(took < Duration::from_secs(12), "answered after {took:?}");
    assert!(
        texts(&r.json()).contains("did not arrive within 5 s"),
        "{r:?}"
    );

    // Nothing was stored, and the gateway takes the same record whole at once.
    assert_eq!(stored(&gw.url).await, 0);
    let (status, body) = ingest(&gw.url, &key, &record("STALL-1")).await;
    assert_eq!(status, 202, "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_without_a_valid_key_are_rate_limited_per_address() {
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(
        dir.path(),
        None,
        &[
            ("GERBANG_LIMITS__PER_ADDRESS_REQUESTS_PER_SECOND", "1"),
            ("GERBANG_LIMITS__PER_ADDRESS_BURST", "5"),
        ],
    );
    let key = gw.demo_key.clone().unwrap();
    let url = &gw.url;
    // The facility's key is recognised once (that first request counts against the address).
    let (status, _) = get_json(&format!("{url}/receipts/none"), &key).await;
    assert_eq!(status, 404);

    // Guessing keys: each wrong key is a new credential, but they all come from one address.
    let mut throttled = None;
    for i in 0..10 {
        let r = client()
            .get(format!("{url}/receipts/none"))
            .bearer_auth(format!("gk_guess{i}"))
            .send()
            .await
            .unwrap();
        if r.status() == 429 {
            throttled = Some(r);
            break;
        }
        assert_eq!(r.status(), 401);
    }
    let r = throttled.expect("a 429 within ten guesses at 1/s with a burst of 5");
    let retry_after: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after), "Retry-After {retry_after}");
    let oo: Value = r.json().await.unwrap();
    assert_eq!(oo["issue"][0]["code"], "throttled", "{oo}");
    assert!(
        texts(&oo).contains("from this address without a valid API key"),
        "{oo}"
    );

    // Without any key: the same address budget (it refills at 1/s, so allow a refill or two).
    let mut codes = vec![];
    for _ in 0..3 {
        let r = client()
            .get(format!("{url}/receipts/none"))
            .send()
            .await
            .unwrap();
        codes.push(r.status().as_u16());
        if r.status() == 429 {
            let oo: Value = r.json().await.unwrap();
            assert!(is_outcome(&oo), "{oo}");
            break;
        }
    }
    assert_eq!(codes.last(), Some(&429), "{codes:?}");

    // The token endpoint counts against the address too, and says so in OAuth JSON.
    let mut last = None;
    for _ in 0..3 {
        let r = client()
            .post(format!("{url}/auth/token"))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        let done = r.status() == 429;
        last = Some(r);
        if done {
            break;
        }
    }
    let r = last.unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(r.headers()["cache-control"], "no-store");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable", "{body}");

    // The recognised key is not held back by its neighbours' guessing, and probes pass.
    let (status, body) = get_json(&format!("{url}/receipts/none"), &key).await;
    assert_eq!(status, 404, "{body}");
    for probe in ["/healthz", "/readyz", "/metrics"] {
        let r = client().get(format!("{url}{probe}")).send().await.unwrap();
        assert_eq!(r.status(), 200, "{probe}");
    }
    assert_eq!(stored(url).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_overlong_url_or_malformed_http_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(dir.path(), None, &[]);
    let key = gw.demo_key.clone().unwrap();
    let long = "x".repeat(9000);

    // A query longer than 8 KiB: 414 with an OperationOutcome, with or without a key.
    for auth in [Some(key.as_str()), None] {
        let mut req = client().get(format!("{}/receipts?status={long}", gw.url));
        if let Some(k) = auth {
            req = req.bearer_auth(k);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 414);
        let oo: Value = r.json().await.unwrap();
        assert_eq!(oo["issue"][0]["code"], "too-long", "{oo}");
        assert!(texts(&oo).contains("at most 8192"), "{oo}");
    }
    // A POST with one is refused before its body is read: nothing stored.
    let r = client()
        .post(format!("{}/ingest/posyandu.balita?x={long}", gw.url))
        .bearer_auth(&key)
        .json(&record("LONG-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 414);
    assert_eq!(stored(&gw.url).await, 0);
    // At the token endpoint, OAuth JSON.
    let url = gw.url.clone();
    let long2 = long.clone();
    let r = tokio::task::spawn_blocking(move || {
        let mut s = connect(&url);
        write!(
            s,
            "POST /auth/token?x={long2} HTTP/1.1\r\nHost: gw\r\nContent-Length: 0\r\n\r\n"
        )
        .unwrap();
        read_answer(&mut s)
    })
    .await
    .unwrap();
    assert_oauth(&r, 414, "invalid_request");

    // What actix-http refuses before the App sees it — a request line that is not HTTP, a
    // head past its 128 KiB buffer, more than 96 headers, a request after a malformed one on
    // the same connection — is answered with an OperationOutcome too.
    let huge_query = format!(
        "GET /receipts?status={} HTTP/1.1\r\nHost: gw\r\n\r\n",
        "x".repeat(140 * 1024)
    );
    let many_headers = format!(
        "GET /receipts HTTP/1.1\r\nHost: gw\r\n{}\r\n",
        (0..100)
            .map(|i| format!("X-H{i}: 1\r\n"))
            .collect::<String>()
    );
    let cases: Vec<(Vec<u8>, u16, &str)> = vec![
        (
            b"GET /receipts HTTP/1.1 extra\r\nHost: gw\r\n\r\n".to_vec(),
            400,
            "not a valid HTTP/1.1 request",
        ),
        (
            b"GET /re ceipts HTTP/1.1\r\nHost: gw\r\n\r\n".to_vec(),
            400,
            "not a valid HTTP/1.1 request",
        ),
        (huge_query.into_bytes(), 431, "larger than 128 KiB"),
        (many_headers.into_bytes(), 431, "more than 96 headers"),
    ];
    for (request, status, why) in cases {
        let url = gw.url.clone();
        let r = tokio::task::spawn_blocking(move || {
            let mut s = connect(&url);
            // The server may close before a huge head is all sent; its answer is still read.
            let _ = s.write_all(&request);
            read_answer(&mut s)
        })
        .await
        .unwrap();
        assert_eq!(r.status, status, "{r:?}");
        assert_eq!(r.headers["content-type"], "application/fhir+json", "{r:?}");
        let oo = r.json();
        assert!(is_outcome(&oo) && texts(&oo).contains(why), "{oo}");
        assert!(texts(&oo).contains("Nothing was stored"), "{oo}");
    }
    // A good request, then garbage on the same connection: the first is answered as usual,
    // the second with an OperationOutcome.
    let url = gw.url.clone();
    let (first, second) = tokio::task::spawn_blocking(move || {
        let mut s = connect(&url);
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\nGARBAGE\r\n\r\n")
            .unwrap();
        let mut buf = Vec::new();
        (
            read_answers(&mut s, &mut buf),
            read_answers(&mut s, &mut buf),
        )
    })
    .await
    .unwrap();
    assert_eq!(first.status, 200, "{first:?}");
    assert_eq!(second.status, 400, "{second:?}");
    assert!(is_outcome(&second.json()), "{second:?}");
    assert_eq!(stored(&gw.url).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn token_endpoint_errors_are_oauth_json() {
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(dir.path(), None, &[]);
    let token_url = format!("{}/auth/token", gw.url);
    let raw = |r: reqwest::Response| async move {
        let status = r.status().as_u16();
        let headers = r
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_string()))
            .collect();
        let body = r.bytes().await.unwrap().to_vec();
        Raw {
            status,
            headers,
            body,
        }
    };

    // JSON instead of a form.
    let r = raw(client()
        .post(&token_url)
        .json(&serde_json::json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .unwrap())
    .await;
    let why = assert_oauth(&r, 400, "invalid_request");
    assert!(why.contains("x-www-form-urlencoded"), "{why}");

    // A form too large to be a token request.
    let r = raw(client()
        .post(&token_url)
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", &"s ".repeat(20_000)),
        ])
        .send()
        .await
        .unwrap())
    .await;
    assert_oauth(&r, 400, "invalid_request");

    // No grant type; another one.
    let r = raw(client()
        .post(&token_url)
        .form(&[("scope", "system/*.read")])
        .send()
        .await
        .unwrap())
    .await;
    assert_oauth(&r, 400, "invalid_request");
    let r = raw(client()
        .post(&token_url)
        .form(&[("grant_type", "password")])
        .send()
        .await
        .unwrap())
    .await;
    assert_oauth(&r, 400, "unsupported_grant_type");

    // No assertion: the client is not authenticated.
    let r = raw(client()
        .post(&token_url)
        .form(&[
            ("grant_type", "client_credentials"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("scope", "system/*.read"),
        ])
        .send()
        .await
        .unwrap())
    .await;
    assert_oauth(&r, 401, "invalid_client");

    // Another method than POST.
    let r = raw(client().get(&token_url).send().await.unwrap()).await;
    let why = assert_oauth(&r, 405, "invalid_request");
    assert!(why.contains("POST"), "{why}");
    assert_eq!(r.headers["allow"], "POST");
}
