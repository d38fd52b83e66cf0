//! Test helpers: start the real `gerbang` binary (gateway or sandbox) as a child process,
//! read its output, talk to it over real HTTP.

#![allow(dead_code)]

use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_gerbang");
pub const ORG: &str = "1000000001";

/// A running gerbang process whose output is collected line by line.
pub struct Proc {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Proc {
    pub fn spawn(args: &[&str], cwd: &Path, env: &[(&str, &str)]) -> Proc {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .current_dir(cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // The developer's own GERBANG_* settings must not leak into a test's gateway.
        for (k, _) in std::env::vars() {
            if k.starts_with("GERBANG_") {
                cmd.env_remove(k);
            }
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start gerbang");
        let lines = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    lines.lock().unwrap().push(line);
                }
            });
        }
        Proc { child, lines }
    }

    /// Wait for a line starting with `prefix`; return the rest of it.
    pub fn wait_line(&mut self, prefix: &str, timeout: Duration) -> String {
        let start = Instant::now();
        loop {
            if let Some(l) = self
                .lines
                .lock()
                .unwrap()
                .iter()
                .find(|l| l.starts_with(prefix))
            {
                return l[prefix.len()..].trim().to_string();
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "gerbang exited ({status}) before printing {prefix:?}:\n{}",
                    self.output()
                );
            }
            assert!(
                start.elapsed() < timeout,
                "no line {prefix:?} within {timeout:?}:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn output(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A gateway started with `serve`.
pub struct Gateway {
    pub proc: Proc,
    pub url: String,
    /// The demo facility key (only with the built-in sandbox).
    pub demo_key: Option<String>,
}

const START: Duration = Duration::from_secs(60);

impl Gateway {
    /// `gerbang serve` in `dir` (its working directory and data folder), zero configuration
    /// unless `config` is given.
    pub fn start(dir: &Path, config: Option<&Path>, env: &[(&str, &str)]) -> Gateway {
        let data = dir.join("data");
        let data = data.to_str().unwrap();
        let mut args = vec![];
        if let Some(c) = config {
            args.extend(["--config", c.to_str().unwrap()]);
        }
        args.extend(["serve", "--listen", "127.0.0.1:0", "--data-dir", data]);
        let mut proc = Proc::spawn(&args, dir, env);
        let url = proc.wait_line("gerbang listening on ", START);
        let demo_key = if config.is_none() {
            Some(proc.wait_line("demo facility API key: ", START))
        } else {
            None
        };
        Gateway {
            proc,
            url,
            demo_key,
        }
    }
}

/// A standalone `gerbang sandbox`.
pub struct Sandbox {
    pub proc: Proc,
    pub url: String,
}

impl Sandbox {
    pub fn start(dir: &Path, config: Option<&Path>) -> Sandbox {
        let mut args = vec![];
        if let Some(c) = config {
            args.extend(["--config", c.to_str().unwrap()]);
        }
        args.extend(["sandbox", "--listen", "127.0.0.1:0"]);
        let mut proc = Proc::spawn(&args, dir, &[]);
        let url = proc.wait_line("SATUSEHAT sandbox listening on ", START);
        Sandbox { proc, url }
    }

    /// An access token for the sandbox's demo client (what gerbang's forwarder gets).
    pub async fn token(&self) -> String {
        let r: Value = client()
            .post(format!(
                "{}/oauth2/v1/accesstoken?grant_type=client_credentials",
                self.url
            ))
            .form(&[
                ("client_id", "gerbang-demo"),
                ("client_secret", "gerbang-demo-secret"),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        r["access_token"].as_str().expect("a token").to_string()
    }

    pub async fn set_faults(&self, faults: Value) {
        let r = client()
            .put(format!("{}/sandbox/faults", self.url))
            .json(&faults)
            .send()
            .await
            .unwrap();
        assert!(
            r.status().is_success(),
            "set faults: {}",
            r.text().await.unwrap()
        );
    }

    pub async fn stats(&self) -> Value {
        client()
            .get(format!("{}/sandbox/stats", self.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Every resource the sandbox holds, as `/sandbox/received` lists them.
    pub async fn received(&self) -> Vec<Value> {
        let v: Value = client()
            .get(format!("{}/sandbox/received", self.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["resources"].as_array().unwrap().clone()
    }

    /// `system|value` of every identifier of every resource of type `rt` the sandbox holds.
    pub async fn identifiers(&self, rt: &str) -> Vec<String> {
        self.received()
            .await
            .iter()
            .filter(|r| r["resourceType"] == rt)
            .flat_map(|r| {
                r["identifiers"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|i| i.as_str().unwrap().to_string())
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

/// A config file pointing a gateway at an external sandbox, with fast retries.
pub fn write_config(dir: &Path, sandbox_url: &str, extra: &str) -> PathBuf {
    let path = dir.join("gerbang.toml");
    let text = format!(
        r#"
data_dir = "{data}"
[upstream]
base_url = "{sandbox_url}"
timeout_secs = 2
[organizations."{ORG}"]
client_id = "gerbang-demo"
client_secret = "gerbang-demo-secret"
[deliver.retry]
base = 0.2
cap = 1.0
[deliver.breaker]
failures = 5
open_secs = 0.5
max_open_secs = 2.0
{extra}
"#,
        data = dir.join("data").display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// `gerbang facility add` for the demo organization; returns the new key.
pub fn add_facility(config: &Path, id: &str, org: &str) -> String {
    let out = Command::new(BIN)
        .args([
            "--config",
            config.to_str().unwrap(),
            "facility",
            "add",
            "--id",
            id,
            "--name",
            id,
            "--org",
            org,
            "--location",
            "loc-1",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

pub fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// An example record of posyandu.balita.
pub fn example(name: &str) -> Value {
    let path = manifest_dir()
        .join("mappings/posyandu.balita/examples")
        .join(format!("{name}.input.json"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The example with another local id (a different record).
pub fn record(id: &str) -> Value {
    let mut r = example("bayi-9-bulan-imunisasi");
    r["id_kunjungan"] = Value::String(id.to_string());
    r
}

/// A Bundle as a facility system builds it itself: gerbang's golden posyandu Bundle without
/// its look-up entries, people referred to by NIK, the visit named `visit`, its start in WIB
/// and one measurement's time in `Z`. Entry 0 is the Encounter, entry 1 its diagnosis (a
/// Condition), entry 2 that measurement (the body weight).
pub fn facility_bundle(visit: &str) -> Value {
    let path =
        manifest_dir().join("mappings/posyandu.balita/examples/bayi-9-bulan-imunisasi.bundle.json");
    let text = std::fs::read_to_string(path)
        .unwrap()
        .replace("PSY07-20260512-0012", visit);
    let golden: Value = serde_json::from_str(&text).unwrap();
    let mut by_nik = Vec::new();
    let mut entries = Vec::new();
    for e in golden["entry"].as_array().unwrap() {
        if let Some(q) = e["request"]["ifNoneExist"].as_str() {
            let rt = e["resource"]["resourceType"].as_str().unwrap();
            let nik = q.rsplit('|').next().unwrap();
            by_nik.push((
                e["fullUrl"].as_str().unwrap().to_string(),
                format!("{rt}?identifier=https://fhir.kemkes.go.id/id/nik|{nik}"),
            ));
        } else {
            entries.push(e.clone());
        }
    }
    let mut text = serde_json::to_string(&entries).unwrap();
    for (url, search) in &by_nik {
        text = text.replace(url, search);
    }
    let mut entries: Value = serde_json::from_str(&text).unwrap();
    let enc = &mut entries[0]["resource"];
    assert_eq!(enc["resourceType"], "Encounter");
    enc["period"]["start"] = json!("2026-05-12T08:30:00+07:00");
    assert_eq!(entries[1]["resource"]["resourceType"], "Condition");
    assert_eq!(entries[2]["resource"]["resourceType"], "Observation");
    entries[2]["resource"]["effectiveDateTime"] = json!("2026-05-12T01:35:00Z");
    json!({"resourceType": "Bundle", "type": "transaction", "entry": entries})
}

pub async fn ingest(url: &str, key: &str, record: &Value) -> (u16, Value) {
    let r = client()
        .post(format!("{url}/ingest/posyandu.balita"))
        .bearer_auth(key)
        .json(record)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

pub async fn receipt(url: &str, key: &str, id: &str) -> Value {
    client()
        .get(format!("{url}/receipts/{id}"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// `GET url` with a bearer key: the status and the JSON body (Null when not JSON).
pub async fn get_json(url: &str, key: &str) -> (u16, Value) {
    let r = client().get(url).bearer_auth(key).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Poll `check` until it returns `Some`, or fail after `timeout` with `what`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(start.elapsed() < timeout, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// All `expression`s of an OperationOutcome.
pub fn expressions(oo: &Value) -> Vec<String> {
    oo["issue"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|i| i["expression"][0].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

pub fn texts(oo: &Value) -> String {
    oo["issue"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|i| i["details"]["text"].as_str())
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

// ------------------------------------------------------------------ PostgreSQL for tests

/// The PostgreSQL server of the tests: POSTGRES_URL, default the local one.
pub fn postgres_url() -> String {
    std::env::var("POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// PostgreSQL is unreachable: fail if POSTGRES_TESTS_REQUIRED=1 (as in CI), else print a
/// notice straight to the terminal (cargo test does not capture it) so the skip is seen.
pub fn postgres_unreachable(test: &str, error: &dyn std::fmt::Display) {
    let url = postgres_url();
    if std::env::var("POSTGRES_TESTS_REQUIRED").is_ok_and(|v| v == "1") {
        panic!(
            "PostgreSQL is required (POSTGRES_TESTS_REQUIRED=1) but {url} is unreachable: {error}"
        );
    }
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "\nNOTICE: PostgreSQL test `{test}` SKIPPED — {url} unreachable ({error}). Set POSTGRES_URL, or POSTGRES_TESTS_REQUIRED=1 to fail instead."
    );
}

/// A direct connection to the test server, or `None` (after [`postgres_unreachable`]).
pub async fn postgres_client(test: &str) -> Option<tokio_postgres::Client> {
    match tokio_postgres::connect(&postgres_url(), tokio_postgres::NoTls).await {
        Ok((client, conn)) => {
            tokio::spawn(conn);
            Some(client)
        }
        Err(e) => {
            postgres_unreachable(test, &e);
            None
        }
    }
}

/// A fresh schema name for one test (`t_<uuid>`); the store creates it on first use.
pub fn new_schema() -> String {
    format!("t_{}", uuid::Uuid::new_v4().simple())
}

/// Remove a test's schema once the test has passed.
pub async fn drop_schema(schema: &str) {
    if let Ok((client, conn)) =
        tokio_postgres::connect(&postgres_url(), tokio_postgres::NoTls).await
    {
        tokio::spawn(conn);
        let _ = client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            .await;
    }
}
