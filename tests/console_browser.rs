//! The web console in a real browser: headless Chromium, driven over WebDriver by the
//! `chromedriver` each test starts, against the real binary in its zero-configuration setup
//! (SQLite, the built-in sandbox, the demo facility and the demo operator). What
//! `tests/console.rs` checks in the HTML, this checks as a person meets it: keys typed into
//! the form, buttons clicked, redirects and cookies followed by the browser, the stylesheet
//! and script applied — and a screenshot of every view.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them). Without them
//! each test prints a notice and passes, unless `CONSOLE_BROWSER_TESTS_REQUIRED=1` (as in CI).
//!
//! Screenshots go to `<target>/tmp/console-screenshots/` on every run, and with
//! `GERBANG_UPDATE_SCREENSHOTS=1` also to `tests/screenshots/`, the copies the README shows
//! (regenerated deliberately and looked at before committing, like golden files).
//!
//! Waits poll for a condition up to a generous deadline, never sleep a fixed time: the
//! tests must pass on a busy two-core machine.

mod common;

use common::*;
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long any one condition may take to come true (a page, a delivery).
const WAIT: Duration = Duration::from_secs(90);
/// The desktop window, and so the size of every screenshot but the phone's.
const DESKTOP: (u32, u32) = (1280, 800);
/// A phone (an iPhone 12–15's CSS viewport).
const PHONE: (u32, u32) = (390, 844);

// ------------------------------------------------------------------ finding the browser

/// The browser and its driver, when this machine has both.
struct Tools {
    chromium: PathBuf,
    chromedriver: PathBuf,
}

fn on_path(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
}

/// Chromium and chromedriver, or `None` after a notice (a failure when
/// `CONSOLE_BROWSER_TESTS_REQUIRED=1`), as the PostgreSQL tests do when there is no server.
fn tools(test: &str) -> Option<Tools> {
    let debian = Path::new("/usr/bin/chromium");
    let chromium = if debian.is_file() {
        Some(debian.to_path_buf())
    } else {
        on_path(&["chromium", "chromium-browser"])
    };
    let chromedriver = on_path(&["chromedriver"]);
    let missing: Vec<&str> = [
        ("chromium", chromium.is_none()),
        ("chromedriver", chromedriver.is_none()),
    ]
    .into_iter()
    .filter_map(|(name, absent)| absent.then_some(name))
    .collect();
    if missing.is_empty() {
        return Some(Tools {
            chromium: chromium.unwrap(),
            chromedriver: chromedriver.unwrap(),
        });
    }
    let missing = missing.join(" and ");
    if std::env::var("CONSOLE_BROWSER_TESTS_REQUIRED").is_ok_and(|v| v == "1") {
        panic!(
            "the browser tests are required (CONSOLE_BROWSER_TESTS_REQUIRED=1) but {missing} is not installed: apt-get install -y chromium chromium-driver"
        );
    }
    // Straight to the terminal (cargo test does not capture it), so the skip is seen.
    let _ = writeln!(
        std::io::stderr(),
        "\nNOTICE: browser test `{test}` SKIPPED — {missing} not found (apt-get install -y chromium chromium-driver). Set CONSOLE_BROWSER_TESTS_REQUIRED=1 to fail instead."
    );
    None
}

// ------------------------------------------------------------------ chromedriver and a session

/// A `chromedriver` on a port of its own choosing, its log in the target's tmp folder.
struct Driver {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Driver {
    fn start(path: &Path, test: &str) -> Driver {
        let log = tmp_dir("chromedriver").join(format!("{test}.log"));
        let mut child = Command::new(path)
            .arg("--port=0")
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start chromedriver");
        // "ChromeDriver was started successfully on port 40075."
        let (tx, rx) = std::sync::mpsc::channel();
        let said = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let (tx, said) = (tx.clone(), said.clone());
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if let Some(rest) = line.split("successfully on port ").nth(1) {
                        let _ = tx.send(rest.trim_end_matches('.').parse::<u16>());
                    }
                    said.lock().unwrap().push(line);
                }
            });
        }
        drop(tx);
        let port = match rx.recv_timeout(WAIT) {
            Ok(Ok(port)) => port,
            other => {
                let _ = child.kill();
                panic!(
                    "chromedriver did not say its port ({other:?}; {:?}); it said:\n{}\nits log:\n{}",
                    child.wait(),
                    said.lock().unwrap().join("\n"),
                    std::fs::read_to_string(&log).unwrap_or_default()
                )
            }
        };
        Driver { child, port, log }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // `/shutdown` makes chromedriver quit the browsers it started (a test that failed
        // never closed its session), then it is killed in case it did not exit.
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = write!(
                s,
                "GET /shutdown HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
            );
            let _ = std::io::Read::read(&mut s, &mut [0u8; 512]);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A folder under the test target's tmp dir.
fn tmp_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A headless Chromium session on a console, with the helpers the flows use.
struct Browser {
    client: Client,
    /// The gateway, e.g. `http://127.0.0.1:41833`.
    base: String,
    driver: Driver,
}

impl Browser {
    async fn open(tools: &Tools, test: &str, base: &str) -> Browser {
        let driver = Driver::start(&tools.chromedriver, test);
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": tools.chromium,
                "args": [
                    "--headless=new",
                    // CI runs as root, where Chromium's sandbox cannot start.
                    "--no-sandbox",
                    // Containers give /dev/shm 64 MB; Chromium would crash on bigger pages.
                    "--disable-dev-shm-usage",
                    format!("--window-size={},{}", DESKTOP.0, DESKTOP.1),
                    "--force-device-scale-factor=1",
                    "--hide-scrollbars",
                    // The console answers in the browser's language: Indonesian, as in a
                    // puskesmas, so that switching to English is a visible change.
                    "--lang=id",
                    "--accept-lang=id",
                    "--no-first-run",
                    "--disable-extensions",
                    "--disable-background-networking",
                ],
                "prefs": {"intl.accept_languages": "id"},
            },
        });
        let Value::Object(caps) = caps else {
            unreachable!()
        };
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", driver.port))
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "no Chromium session ({e}); chromedriver's log: {}",
                    driver.log.display()
                )
            });
        let b = Browser {
            client,
            base: base.to_string(),
            driver,
        };
        b.resize(DESKTOP).await;
        b
    }

    /// End the session (Chromium quits).
    async fn close(self) {
        let Browser { client, driver, .. } = self;
        client.close().await.unwrap();
        drop(driver);
    }

    async fn goto(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap_or_else(|e| panic!("open {path}: {e}"));
    }

    /// The path of the page shown.
    async fn path(&self) -> String {
        self.client.current_url().await.unwrap().path().to_string()
    }

    /// Wait for an element matching `css` on the page.
    async fn wait_for(&self, css: &str) -> Element {
        match self
            .client
            .wait()
            .at_most(WAIT)
            .every(Duration::from_millis(100))
            .for_element(Locator::Css(css))
            .await
        {
            Ok(e) => e,
            Err(e) => panic!(
                "no {css} on {} within {WAIT:?} ({e}); the page:\n{}",
                self.path().await,
                self.client.source().await.unwrap_or_default()
            ),
        }
    }

    /// Every element matching `css` now (no waiting).
    async fn all(&self, css: &str) -> Vec<Element> {
        self.client.find_all(Locator::Css(css)).await.unwrap()
    }

    /// The current value of a form field (what is typed, loaded or read into it).
    /// Read in one script, so that a page being replaced (a form just sent) cannot leave a
    /// stale element behind: no such field yet is an empty value.
    async fn value(&self, css: &str) -> String {
        let v = self
            .client
            .execute(
                "const e = document.querySelector(arguments[0]); return e ? e.value : '';",
                vec![json!(css)],
            )
            .await
            .unwrap_or_else(|e| panic!("the value of {css}: {e}"));
        v.as_str().unwrap_or_default().to_string()
    }

    /// Poll `check` until it is true, or fail after [`WAIT`] naming `what`.
    async fn until<F, Fut>(&self, what: &str, mut check: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = Instant::now() + WAIT;
        while !check().await {
            assert!(
                Instant::now() < deadline,
                "{} on {}: not within {WAIT:?}",
                what,
                self.path().await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The texts of every element matching `css` now.
    async fn texts(&self, css: &str) -> Vec<String> {
        let mut texts = Vec::new();
        for e in self.all(css).await {
            texts.push(e.text().await.unwrap());
        }
        texts
    }

    async fn text(&self, css: &str) -> String {
        self.wait_for(css).await.text().await.unwrap()
    }

    async fn click(&self, css: &str) {
        self.wait_for(css)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    async fn type_into(&self, css: &str, text: &str) {
        self.wait_for(css)
            .await
            .send_keys(text)
            .await
            .unwrap_or_else(|e| panic!("type into {css}: {e}"));
    }

    /// The page's language (`<html lang>`).
    async fn lang(&self) -> String {
        self.wait_for("html")
            .await
            .attr("lang")
            .await
            .unwrap()
            .unwrap_or_default()
    }

    /// Make the page's viewport `w`×`h` CSS pixels. Headless Chromium keeps room for a
    /// browser frame it does not draw, and the page learns of a resize a moment after the
    /// command returns: so set the window, read the viewport, and set it again grown by the
    /// frame measured, until the viewport is right.
    async fn resize(&self, (w, h): (u32, u32)) {
        let deadline = Instant::now() + WAIT;
        let (mut outer_w, mut outer_h) = (w, h);
        loop {
            self.client.set_window_size(outer_w, outer_h).await.unwrap();
            let (iw, ih) = self.viewport().await;
            if (iw, ih) == (w, h) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the viewport is {iw}×{ih}, not {w}×{h}"
            );
            let (ow, oh) = self.client.get_window_size().await.unwrap();
            outer_w = w + (ow as u32).saturating_sub(iw);
            outer_h = h + (oh as u32).saturating_sub(ih);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn viewport(&self) -> (u32, u32) {
        let v = self
            .client
            .execute("return [window.innerWidth, window.innerHeight]", vec![])
            .await
            .unwrap();
        (v[0].as_u64().unwrap() as u32, v[1].as_u64().unwrap() as u32)
    }

    /// The page is no wider than the window: nothing to scroll sideways.
    async fn assert_no_horizontal_overflow(&self) {
        let v = self
            .client
            .execute(
                "return [document.documentElement.scrollWidth, window.innerWidth]",
                vec![],
            )
            .await
            .unwrap();
        let (scroll, inner) = (v[0].as_u64().unwrap(), v[1].as_u64().unwrap());
        assert!(
            scroll <= inner,
            "{}: the page is {scroll} px wide in a {inner} px window",
            self.path().await
        );
    }

    /// A screenshot of the window as `<view>.png`: always under the target's tmp dir, and
    /// with `GERBANG_UPDATE_SCREENSHOTS=1` also as the README's copy in tests/screenshots/.
    async fn shot(&self, view: &str) {
        let png = self.client.screenshot().await.unwrap();
        let name = format!("{view}.png");
        std::fs::write(tmp_dir("console-screenshots").join(&name), &png).unwrap();
        if std::env::var("GERBANG_UPDATE_SCREENSHOTS").is_ok_and(|v| v == "1") {
            let dir = manifest_dir().join("tests/screenshots");
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(&name), &png).unwrap();
        }
    }

    /// Sign in through the form: type the key, press the button, land on `home`.
    async fn sign_in(&self, key: &str, home: &str) {
        self.goto("/console/masuk").await;
        self.type_into("#sign-in-key", key).await;
        self.click("#sign-in-submit").await;
        self.wait_for(r#"[data-testid="signed-in-as"]"#).await;
        assert_eq!(self.path().await, home);
    }

    /// Sign out with the header's button: back at the sign-in form.
    async fn sign_out(&self) {
        self.click("#sign-out").await;
        self.wait_for("#sign-in-form").await;
        assert_eq!(self.path().await, "/console/masuk");
    }
}

// ------------------------------------------------------------------ the gateway

/// A zero-configuration gateway and what it printed.
struct Console {
    gw: Gateway,
    operator_key: String,
    facility_key: String,
    /// The built-in sandbox, to make it refuse records.
    sandbox_url: String,
    _dir: tempfile::TempDir,
}

fn start() -> Console {
    let dir = tempfile::tempdir().unwrap();
    let mut gw = Gateway::start(dir.path(), None, &[]);
    let operator_key = gw.proc.wait_line("demo operator key: ", WAIT);
    let sandbox_url = gw.proc.wait_line("built-in SATUSEHAT sandbox on ", WAIT);
    Console {
        facility_key: gw.demo_key.clone().unwrap(),
        gw,
        operator_key,
        sandbox_url,
        _dir: dir,
    }
}

/// Make the built-in sandbox refuse the records whose head circumference is identified by
/// these local ids (SATUSEHAT's rule 10103 on the Observation's identifier).
async fn refuse(sandbox_url: &str, local_ids: &[&str]) {
    let ids: Vec<String> = local_ids
        .iter()
        .map(|id| format!("{id}/lingkar-kepala"))
        .collect();
    let faults = json!({ "refuse_identifiers": ids });
    let r = client()
        .put(format!("{sandbox_url}/sandbox/faults"))
        .json(&faults)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
}

/// Push a posyandu record through the API; its receipt.
async fn push(base: &str, key: &str, local_id: &str) -> String {
    let (status, body) = ingest(base, key, &record(local_id)).await;
    assert_eq!(status, 202, "{body}");
    body["receipt"].as_str().unwrap().to_string()
}

async fn wait_status(base: &str, key: &str, id: &str, status: &str) {
    eventually(WAIT, &format!("{id} {status}"), || async {
        (receipt(base, key, id).await["status"] == status).then_some(())
    })
    .await
}

// ------------------------------------------------------------------ the flows

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_finds_a_refused_record_replays_it_and_sees_it_delivered() {
    let test = "an_operator_finds_a_refused_record_replays_it_and_sees_it_delivered";
    let Some(tools) = tools(test) else { return };
    let c = start();
    let base = c.gw.url.as_str();

    // Two records SATUSEHAT takes, one it refuses.
    refuse(&c.sandbox_url, &["BRW-3"]).await;
    let delivered = [
        push(base, &c.facility_key, "BRW-1").await,
        push(base, &c.facility_key, "BRW-2").await,
    ];
    let refused = push(base, &c.facility_key, "BRW-3").await;
    for id in &delivered {
        wait_status(base, &c.facility_key, id, "delivered").await;
    }
    wait_status(base, &c.facility_key, &refused, "dead").await;

    let b = Browser::open(&tools, test, base).await;

    // ---- Not signed in: the console sends the browser to the sign-in form, in Indonesian.
    b.goto("/console").await;
    b.wait_for("#sign-in-form").await;
    assert_eq!(b.path().await, "/console/masuk");
    assert_eq!(b.lang().await, "id");
    assert_eq!(
        b.wait_for("#sign-in-key").await.attr("type").await.unwrap(),
        Some("password".into())
    );
    b.shot("sign-in").await;

    // A wrong key: the form again with a message.
    b.type_into("#sign-in-key", "gk_not-a-key").await;
    b.click("#sign-in-submit").await;
    b.wait_for(r#"[data-testid="sign-in-error"]"#).await;

    // ---- The operator key, typed into the field: the overview.
    b.sign_in(&c.operator_key, "/console").await;
    assert!(
        b.text(r#"[data-testid="signed-in-as"]"#)
            .await
            .contains("demo-operator")
    );
    let row = format!(r#"#queue-table tr[data-organization="{ORG}"]"#);
    assert_eq!(
        b.text(&format!(r#"{row} td[data-status="delivered"]"#))
            .await,
        "2"
    );
    assert_eq!(
        b.text(&format!(r#"{row} td[data-status="dead"]"#)).await,
        "1"
    );
    b.wait_for(r#"[data-testid="chart-delivered"] rect"#).await;
    b.wait_for(r#"[data-testid="chart-latency"]"#).await;
    assert_eq!(
        b.wait_for(r#"[data-testid="breaker"]"#)
            .await
            .attr("data-state")
            .await
            .unwrap()
            .as_deref(),
        Some("closed")
    );
    // The embedded stylesheet is applied (without it the header has no colour).
    let header = b
        .wait_for("header.top")
        .await
        .css_value("background-color")
        .await
        .unwrap();
    assert_ne!(header, "rgba(0, 0, 0, 0)", "the console's CSS is applied");
    b.shot("overview").await;

    // ---- Refused records, from the navigation: SATUSEHAT's rule, the element, the field.
    b.click(r#"[data-testid="nav-refused"]"#).await;
    let row = format!(r#"tr[data-testid="dead-letter-row"][data-receipt="{refused}"]"#);
    b.wait_for(&row).await;
    assert_eq!(b.path().await, "/console/ditolak");
    assert_eq!(b.all(r#"tr[data-testid="dead-letter-row"]"#).await.len(), 1);
    assert_eq!(
        b.text(&format!(r#"{row} [data-testid="rule"]"#)).await,
        "Aturan 10103"
    );
    let fields = b
        .texts(&format!(r#"{row} [data-testid="record-field"]"#))
        .await;
    assert!(
        fields.iter().any(|f| f == "/pengukuran/lingkar_kepala"),
        "the field of the facility's record: {fields:?}"
    );
    assert!(
        b.text(&format!(r#"{row} [data-testid="expression"]"#))
            .await
            .starts_with("Bundle.entry[")
    );
    assert!(
        b.text(&format!(r#"{row} [data-testid="record-link"]"#))
            .await
            .contains("BRW-3")
    );
    b.shot("refused-records").await;

    // ---- The same page on a phone: nothing to scroll sideways.
    b.resize(PHONE).await;
    b.assert_no_horizontal_overflow().await;
    b.client
        .execute(
            "arguments[0].scrollIntoView({block: 'center'})",
            vec![serde_json::to_value(b.wait_for(&row).await).unwrap()],
        )
        .await
        .unwrap();
    b.shot("phone-refused-records").await;
    b.resize(DESKTOP).await;

    // ---- The cause is fixed upstream; the operator ticks the record and replays it.
    refuse(&c.sandbox_url, &[]).await;
    let tick = b.wait_for(&format!("#select-{refused}")).await;
    tick.click().await.unwrap();
    assert!(tick.is_selected().await.unwrap());
    b.click("#replay-button").await;
    let notice = b.text(r#"[data-testid="notice-ok"]"#).await;
    assert_eq!(notice, "1 catatan diantrekan lagi.");
    assert!(b.all(&row).await.is_empty(), "no longer refused");

    // ---- Its history: reload until it shows delivered.
    b.goto(&format!("/console/catatan/{refused}")).await;
    let badge = r#"[data-testid="record-summary"] [data-testid="status-badge"]"#;
    let deadline = Instant::now() + WAIT;
    loop {
        let status = b.wait_for(badge).await.attr("data-status").await.unwrap();
        if status.as_deref() == Some("delivered") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{refused} still {status:?} after {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
        b.client.refresh().await.unwrap();
    }
    assert_eq!(b.text(badge).await, "terkirim");
    let http = b.texts(r#"[data-testid="attempt-http"]"#).await;
    assert!(
        http.iter().any(|s| s == "400"),
        "the refusal is in the attempts: {http:?}"
    );
    let results = b.texts(r#"[data-testid="attempt-result"]"#).await;
    assert_eq!(
        results,
        ["dead", "delivered"],
        "the refusal, then the delivery"
    );
    let events = b.text(r#"[data-testid="events"]"#).await;
    assert!(events.contains("record.refused"), "{events}");
    assert!(events.contains("record.delivered"), "{events}");
    assert!(!b.all(r#"[data-testid="server-id"]"#).await.is_empty());
    b.shot("record-history").await;

    // ---- The audit log names the replay.
    b.click(r#"[data-testid="nav-audit"]"#).await;
    b.wait_for(r#"tr[data-testid="audit-row"][data-action="replay"]"#)
        .await;
    b.shot("audit").await;

    // ---- English, one click away, and kept for the next page.
    assert_eq!(b.text("h1").await, "Log audit");
    b.click(r#"[data-testid="lang-en"]"#).await;
    b.wait_for(r#"html[lang="en"]"#).await;
    assert_eq!(b.path().await, "/console/audit");
    assert_eq!(b.text("h1").await, "Audit log");
    assert_eq!(b.text("#sign-out").await, "Sign out");
    b.click(r#"[data-testid="nav-refused"]"#).await;
    b.wait_for(r#"[data-testid="no-refused"]"#).await;
    assert_eq!(b.text("h1").await, "Records SATUSEHAT refused");

    // ---- Every operator page fits a phone's width.
    b.resize(PHONE).await;
    for page in [
        "/console".to_string(),
        "/console/ditolak".into(),
        format!("/console/catatan/{refused}"),
        "/console/fasilitas".into(),
        "/console/audit".into(),
    ] {
        b.goto(&page).await;
        b.wait_for(r#"[data-testid="signed-in-as"]"#).await;
        b.assert_no_horizontal_overflow().await;
    }
    b.resize(DESKTOP).await;

    b.sign_out().await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_facility_sees_only_its_own_records() {
    let test = "a_facility_sees_only_its_own_records";
    let Some(tools) = tools(test) else { return };
    let c = start();
    let base = c.gw.url.as_str();
    let b = Browser::open(&tools, test, base).await;

    // ---- An operator registers a second facility in the console; its key is shown once.
    b.sign_in(&c.operator_key, "/console").await;
    b.click(r#"[data-testid="nav-facilities"]"#).await;
    b.type_into("#new-facility-id", "pkm-lain").await;
    b.type_into("#new-facility-name", "Puskesmas Lain").await;
    b.type_into("#new-facility-org", ORG).await;
    b.type_into("#new-facility-location", &gerbang::sandbox::demo_location())
        .await;
    b.click("#create-facility-submit").await;
    let other_key = b.text(r#"[data-testid="new-key"]"#).await;
    assert!(other_key.starts_with("gk_"), "{other_key}");
    b.client.refresh().await.unwrap();
    b.wait_for(r#"[data-facility="pkm-lain"]"#).await;
    assert!(
        b.all(r#"[data-testid="new-key"]"#).await.is_empty(),
        "shown once"
    );
    b.wait_for(r#"[data-facility="demo-posyandu"]"#).await;
    b.shot("facilities").await;
    b.sign_out().await;

    // ---- Records of both facilities through the API; SATUSEHAT refuses one of the demo's.
    refuse(&c.sandbox_url, &["FAS-1"]).await;
    let own_refused = push(base, &c.facility_key, "FAS-1").await;
    let own_delivered = push(base, &c.facility_key, "FAS-2").await;
    let others = push(base, &other_key, "LAIN-1").await;
    wait_status(base, &c.facility_key, &own_refused, "dead").await;
    wait_status(base, &c.facility_key, &own_delivered, "delivered").await;
    wait_status(base, &other_key, &others, "delivered").await;

    // ---- The demo facility signs in: its own records, and what needs correcting.
    b.sign_in(&c.facility_key, "/console/catatan").await;
    b.wait_for(r#"[data-testid="records-table"]"#).await;
    let row = |id: &str| format!(r#"[data-testid="record-row"][data-receipt="{id}"]"#);
    b.wait_for(&row(&own_delivered)).await;
    assert!(
        b.all(&row(&others)).await.is_empty(),
        "another facility's record is not listed"
    );
    let page = b.client.source().await.unwrap();
    assert!(!page.contains(&others) && !page.contains("LAIN-1"));
    let fix = format!(
        r#"[data-testid="needs-correction"] [data-testid="correction"][data-receipt="{own_refused}"]"#
    );
    b.wait_for(&fix).await;
    assert!(
        b.text(&fix).await.contains("FAS-1"),
        "the refused record under needs-correction"
    );
    assert_eq!(
        b.text(&format!(r#"{fix} [data-testid="rule"]"#)).await,
        "Aturan 10103"
    );
    assert_eq!(
        b.all(r#"[data-testid="needs-correction"] [data-testid="correction"]"#)
            .await
            .len(),
        1,
        "only the refused one needs correcting"
    );
    let badge = |id: &str| format!(r#"{} [data-testid="status-badge"]"#, row(id));
    for (id, status) in [(&own_refused, "dead"), (&own_delivered, "delivered")] {
        assert_eq!(
            b.wait_for(&badge(id))
                .await
                .attr("data-status")
                .await
                .unwrap()
                .as_deref(),
            Some(status)
        );
    }
    // Operator pages are not in its navigation.
    assert!(b.all(r#"[data-testid="nav-refused"]"#).await.is_empty());
    b.shot("facility-records").await;
    b.resize(PHONE).await;
    b.assert_no_horizontal_overflow().await;
    b.resize(DESKTOP).await;

    // The other facility's record by its address: as absent as a missing one.
    b.goto(&format!("/console/catatan/{others}")).await;
    let error = b.wait_for(r#"[data-testid="error"]"#).await;
    assert_eq!(
        error.attr("data-status").await.unwrap().as_deref(),
        Some("404")
    );
    assert!(!b.client.source().await.unwrap().contains("LAIN-1"));

    b.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_playground_maps_and_validates_an_example() {
    let test = "the_playground_maps_and_validates_an_example";
    let Some(tools) = tools(test) else { return };
    let c = start();
    let b = Browser::open(&tools, test, &c.gw.url).await;
    b.sign_in(&c.facility_key, "/console/catatan").await;
    b.click(r#"[data-testid="nav-playground"]"#).await;

    // ---- Load an example: the server fills the text box.
    let example = "posyandu.balita/bayi-9-bulan-imunisasi";
    b.wait_for(r#"[data-testid="playground-example"]"#)
        .await
        .select_by_value(example)
        .await
        .unwrap();
    b.click(r#"[data-testid="playground-load-example"]"#).await;
    let input = r#"[data-testid="playground-input"]"#;
    b.until("the example in the text box", || async {
        b.value(input).await.contains("PSY07-20260512-0012")
    })
    .await;
    let record_type = b
        .wait_for(r#"[data-testid="playground-record-type"]"#)
        .await;
    record_type
        .select_by_value("posyandu.balita")
        .await
        .unwrap();
    assert_eq!(
        record_type.prop("value").await.unwrap().as_deref(),
        Some("posyandu.balita")
    );

    // ---- Run it: the Bundle and the OperationOutcome side by side.
    b.click(r#"[data-testid="playground-run"]"#).await;
    let result = b.wait_for(r#"[data-testid="playground-result"]"#).await;
    assert_eq!(
        result.attr("data-errors").await.unwrap().as_deref(),
        Some("0"),
        "the example passes"
    );
    let bundle = b.text(r#"[data-testid="playground-bundle"]"#).await;
    assert!(bundle.contains(r#""resourceType": "Bundle""#), "{bundle}");
    assert!(bundle.contains(r#""type": "transaction""#), "{bundle}");
    b.wait_for(r#"[data-testid="playground-outcome"] [data-testid="playground-issue"]"#)
        .await;
    assert!(
        b.value(input).await.contains("PSY07-20260512-0012"),
        "the form keeps the record"
    );
    b.shot("playground").await;
    b.resize(PHONE).await;
    b.assert_no_horizontal_overflow().await;
    b.resize(DESKTOP).await;

    // ---- An issue's element link leads to that element of the Bundle, and its field link
    // to the field of the record: each the page's :target, scrolled into view.
    for link in ["playground-issue-element", "playground-issue-field"] {
        let a = b
            .wait_for(&format!(
                r#"[data-testid="playground-issue"] a[data-testid="{link}"]"#
            ))
            .await;
        let href = a.attr("href").await.unwrap().unwrap();
        let target = href.strip_prefix('#').expect("a link within the page");
        a.click().await.unwrap();
        let shown = b
            .client
            .execute(
                "const t = document.querySelector(':target'); \
                 if (!t) return null; \
                 const r = t.getBoundingClientRect(); \
                 return [t.id, r.top >= 0 && r.top < window.innerHeight];",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(shown, json!([target, true]), "{link} #{target}");
    }

    // ---- Validate mode: a FHIR file read into the box by the console's script.
    b.click(r#"[data-testid="playground-validate"]"#).await;
    b.wait_for(r#"[data-testid="playground-validate"][aria-current="page"]"#)
        .await;
    let file =
        manifest_dir().join("mappings/posyandu.balita/examples/bayi-9-bulan-imunisasi.bundle.json");
    b.wait_for(r#"[data-testid="playground-file"]"#)
        .await
        .send_keys(file.to_str().unwrap())
        .await
        .unwrap();
    b.until("the file in the text box", || async {
        b.value(input).await.contains(r#""resourceType": "Bundle""#)
    })
    .await;
    b.click(r#"[data-testid="playground-run"]"#).await;
    let result = b.wait_for(r#"[data-testid="playground-result"]"#).await;
    assert_eq!(
        result.attr("data-errors").await.unwrap().as_deref(),
        Some("0"),
        "the golden Bundle passes"
    );
    b.wait_for(r#"[data-testid="playground-outcome"]"#).await;
    assert!(
        b.text(r#"[data-testid="playground-bundle"]"#)
            .await
            .contains("PSY07-20260512-0012")
    );

    b.close().await;
}
