//! The web console end to end, against the real binary in its zero-configuration setup
//! (SQLite, the built-in sandbox, the demo facility and the demo operator): signing in and
//! out, the session cookie, CSRF and origin checks, who may see which page, and each view
//! over real records pushed through the real ingest path. Assertions are on the HTML.

mod common;

use common::*;
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};
use std::time::Duration;

/// A zero-configuration gateway and what it printed.
struct Console {
    gw: Gateway,
    operator_key: String,
    facility_key: String,
    /// The built-in sandbox, to make it refuse records.
    sandbox_url: String,
    /// The gateway's working directory and data folder, removed at the end.
    _dir: tempfile::TempDir,
}

fn start() -> Console {
    let dir = tempfile::tempdir().unwrap();
    let mut gw = Gateway::start(dir.path(), None, &[]);
    let operator_key = gw
        .proc
        .wait_line("demo operator key: ", Duration::from_secs(30));
    let console = gw.proc.wait_line("console: ", Duration::from_secs(30));
    assert_eq!(console, format!("{}/console", gw.url));
    let sandbox_url = gw
        .proc
        .wait_line("built-in SATUSEHAT sandbox on ", Duration::from_secs(30));
    Console {
        facility_key: gw.demo_key.clone().unwrap(),
        gw,
        operator_key,
        sandbox_url,
        _dir: dir,
    }
}

/// A browser-like client that does not follow redirects (the test looks at each).
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// An answer as the test reads it.
struct Page {
    status: u16,
    headers: HeaderMap,
    body: String,
}

impl Page {
    fn location(&self) -> Option<&str> {
        self.headers.get(LOCATION).map(|h| h.to_str().unwrap())
    }
    fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all(SET_COOKIE)
            .iter()
            .map(|h| h.to_str().unwrap().to_string())
            .collect()
    }
    /// The session cookie this answer sets (`name=value`), if any.
    fn session_cookie(&self) -> Option<String> {
        self.set_cookies()
            .iter()
            .find(|c| c.starts_with("gerbang_console="))
            .map(|c| c.split(';').next().unwrap().to_string())
    }
    /// The CSRF token of the page's forms.
    fn csrf(&self) -> String {
        let at = self
            .body
            .find(r#"name="csrf" value=""#)
            .unwrap_or_else(|| panic!("no CSRF field in:\n{}", self.body));
        let rest = &self.body[at + r#"name="csrf" value=""#.len()..];
        rest[..rest.find('"').unwrap()].to_string()
    }
}

async fn read(r: reqwest::Response) -> Page {
    Page {
        status: r.status().as_u16(),
        headers: r.headers().clone(),
        body: r.text().await.unwrap(),
    }
}

async fn get(base: &str, path: &str, cookie: Option<&str>) -> Page {
    let mut req = browser().get(format!("{base}{path}"));
    if let Some(c) = cookie {
        req = req.header("Cookie", c);
    }
    read(req.send().await.unwrap()).await
}

/// A form posted as a browser on the console's own page posts it: with `Origin`.
async fn post(base: &str, path: &str, cookie: Option<&str>, fields: &[(&str, &str)]) -> Page {
    post_from(base, path, cookie, fields, Some(base)).await
}

async fn post_from(
    base: &str,
    path: &str,
    cookie: Option<&str>,
    fields: &[(&str, &str)],
    origin: Option<&str>,
) -> Page {
    let mut req = browser().post(format!("{base}{path}")).form(fields);
    if let Some(c) = cookie {
        req = req.header("Cookie", c);
    }
    if let Some(o) = origin {
        req = req.header("Origin", o);
    }
    read(req.send().await.unwrap()).await
}

/// Sign in with `key`; the session cookie (`gerbang_console=…`) and the answer.
async fn sign_in(base: &str, key: &str) -> (String, Page) {
    let p = post(base, "/console/masuk", None, &[("key", key)]).await;
    assert_eq!(p.status, 303, "sign-in: {}", p.body);
    let cookie = p.session_cookie().expect("a session cookie");
    (cookie, p)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_signs_in_with_a_strict_http_only_cookie_and_the_key_stays_out_of_urls() {
    let c = start();
    let base = c.gw.url.as_str();
    let mut locations = Vec::new();

    // Not signed in: every page leads to the sign-in form.
    let p = get(base, "/console", None).await;
    assert_eq!(p.status, 303);
    assert_eq!(p.location(), Some("/console/masuk"));
    let p = get(base, "/console/ditolak", None).await;
    assert_eq!(p.location(), Some("/console/masuk"));
    let form = get(base, "/console/masuk", None).await;
    assert_eq!(form.status, 200);
    assert!(form.body.contains(r#"id="sign-in-form""#), "{}", form.body);
    assert!(form.body.contains(r#"method="post""#));
    assert!(form.body.contains(r#"id="sign-in-key""#));
    assert!(form.body.contains(r#"type="password""#));
    assert!(form.body.contains(r#"id="sign-in-submit""#));
    assert!(
        form.body.contains(r#"<html lang="id">"#),
        "Indonesian by default"
    );
    let csp = form.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'"), "{csp}");

    // A wrong key: the form again, 401, a plain message, no cookie.
    let wrong = post(base, "/console/masuk", None, &[("key", "gk_not-a-key")]).await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.body.contains(r#"data-testid="sign-in-error""#));
    assert!(wrong.session_cookie().is_none());

    // The operator key: a session cookie, HttpOnly, SameSite=Strict, for /console only.
    let (cookie, p) = sign_in(base, &c.operator_key).await;
    locations.extend(p.location().map(str::to_string));
    assert_eq!(p.location(), Some("/console"));
    let set = p.set_cookies().join("\n");
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/console"] {
        assert!(set.contains(attr), "{set}");
    }
    assert!(!set.contains("Secure"), "plain http: no Secure attribute");
    assert!(!set.contains(&c.operator_key), "the cookie is not the key");
    let home = get(base, "/console", Some(&cookie)).await;
    assert_eq!(home.status, 200, "{}", home.body);
    assert!(home.body.contains("demo-operator"));
    assert!(home.body.contains(r#"data-testid="nav-refused""#));
    assert!(
        !home.body.contains(&c.operator_key),
        "the key is never shown again"
    );
    // Behind a TLS proxy the cookie is Secure.
    let tls = browser()
        .post(format!("{base}/console/masuk"))
        .header("X-Forwarded-Proto", "https")
        .form(&[("key", c.operator_key.as_str())])
        .send()
        .await
        .unwrap();
    let tls = read(tls).await;
    assert!(tls.set_cookies().join("\n").contains("; Secure"));

    // A form without the CSRF token, or posted from another site, is refused.
    let csrf = home.csrf();
    let p = post(base, "/console/keluar", Some(&cookie), &[]).await;
    assert_eq!(p.status, 403, "{}", p.body);
    let p = post(
        base,
        "/console/keluar",
        Some(&cookie),
        &[("csrf", "forged")],
    )
    .await;
    assert_eq!(p.status, 403);
    let p = post_from(
        base,
        "/console/keluar",
        Some(&cookie),
        &[("csrf", &csrf)],
        Some("http://evil.example"),
    )
    .await;
    assert_eq!(p.status, 403);
    assert_eq!(
        get(base, "/console", Some(&cookie)).await.status,
        200,
        "still signed in"
    );

    // The language switch: a cookie, and back to the page.
    let p = get(
        base,
        "/console/bahasa?lang=en&next=%2Fconsole%2Fditolak",
        Some(&cookie),
    )
    .await;
    assert_eq!(p.location(), Some("/console/ditolak"));
    locations.extend(p.location().map(str::to_string));
    assert!(p.set_cookies().join("\n").contains("lang=en"));
    let en = get(base, "/console", Some(&format!("{cookie}; lang=en"))).await;
    assert!(en.body.contains(r#"<html lang="en">"#));
    assert!(en.body.contains("Sign out"));
    // Somewhere else is no place to go back to.
    let p = get(
        base,
        "/console/bahasa?lang=en&next=https%3A%2F%2Fevil.example",
        None,
    )
    .await;
    assert_eq!(p.location(), Some("/console"));

    // The embedded stylesheet: named by its hash, cached for a year.
    let at = home.body.find("/console/assets/style.").unwrap();
    let href = &home.body[at..at + home.body[at..].find('"').unwrap()];
    let css = get(base, href, None).await;
    assert_eq!(css.status, 200);
    assert!(
        css.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );
    assert!(
        css.headers["cache-control"]
            .to_str()
            .unwrap()
            .contains("immutable")
    );

    // Sign-out ends the session on the server, not only in the browser.
    let p = post(base, "/console/keluar", Some(&cookie), &[("csrf", &csrf)]).await;
    assert_eq!(p.status, 303);
    locations.extend(p.location().map(str::to_string));
    assert!(p.set_cookies().join("\n").contains("Max-Age=0"));
    assert_eq!(
        get(base, "/console", Some(&cookie)).await.location(),
        Some("/console/masuk")
    );

    // Sign-ins and sign-outs are audited.
    let (_, audit) = get_json(
        &format!("{base}/admin/audit?actor=operator:demo-operator"),
        &c.operator_key,
    )
    .await;
    let actions: Vec<&str> = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(actions.contains(&"console-sign-in"), "{audit}");
    assert!(actions.contains(&"console-sign-out"), "{audit}");

    for l in &locations {
        assert!(!l.contains(&c.operator_key) && !l.contains("key="), "{l}");
    }
    // Printed once at start-up, as the demo facility's is; never in a log line.
    let log = c.gw.proc.output();
    let leaks: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(&c.operator_key) && !l.starts_with("demo operator key: "))
        .collect();
    assert!(leaks.is_empty(), "the key is never logged: {leaks:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_facility_session_sees_its_pages_and_is_refused_operator_pages() {
    let c = start();
    let base = c.gw.url.as_str();
    let (cookie, p) = sign_in(base, &c.facility_key).await;
    assert_eq!(p.location(), Some("/console/catatan"));
    let records = get(base, "/console/catatan", Some(&cookie)).await;
    assert_eq!(records.status, 200);
    assert!(records.body.contains(r#"data-testid="nothing-to-correct""#));
    assert!(records.body.contains(r#"data-testid="no-records""#));
    assert!(records.body.contains(r#"data-testid="nav-records""#));
    assert!(!records.body.contains(r#"data-testid="nav-refused""#));
    for page in ["/console/ditolak", "/console/fasilitas", "/console/audit"] {
        let p = get(base, page, Some(&cookie)).await;
        assert_eq!(p.status, 403, "{page}: {}", p.body);
        assert!(p.body.contains(r#"data-testid="error""#));
    }
    assert_eq!(
        get(base, "/console/playground", Some(&cookie)).await.status,
        200
    );
    assert_eq!(
        get(base, "/console/no-such-page", Some(&cookie))
            .await
            .status,
        404
    );

    // Signing in again replaces the browser's session: the old cookie no longer works.
    let again = post(
        base,
        "/console/masuk",
        Some(&cookie),
        &[("key", &c.facility_key)],
    )
    .await;
    let renewed = again.session_cookie().expect("a new session");
    assert_ne!(renewed, cookie);
    assert_eq!(
        get(base, "/console/catatan", Some(&cookie))
            .await
            .location(),
        Some("/console/masuk")
    );
    assert_eq!(
        get(base, "/console/catatan", Some(&renewed)).await.status,
        200
    );

    // An operator is not a facility.
    let (op, _) = sign_in(base, &c.operator_key).await;
    assert_eq!(get(base, "/console/catatan", Some(&op)).await.status, 403);
}

#[tokio::test(flavor = "multi_thread")]
async fn guessing_keys_at_the_sign_in_form_is_rate_limited() {
    let c = start();
    let base = c.gw.url.as_str();
    let mut statuses = Vec::new();
    for i in 0..12 {
        let p = post(
            base,
            "/console/masuk",
            None,
            &[("key", &format!("guess-{i}"))],
        )
        .await;
        statuses.push(p.status);
        if p.status == 429 {
            assert!(p.headers.contains_key("retry-after"));
        }
    }
    assert_eq!(&statuses[..10], &[401; 10], "{statuses:?}");
    assert_eq!(statuses[11], 429, "{statuses:?}");
}

/// The value of the hidden field `name` in the first form of `html` after `after`.
fn hidden_after(html: &str, after: &str, name: &str) -> String {
    let start = html
        .find(after)
        .unwrap_or_else(|| panic!("no {after:?} in:\n{html}"));
    let rest = &html[start..];
    let marker = format!(r#"name="{name}" value=""#);
    let at = rest
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} after {after:?}"));
    let rest = &rest[at + marker.len()..];
    rest[..rest.find('"').unwrap()].to_string()
}

/// The text of the element with `data-testid="{id}"`.
fn testid_text(html: &str, id: &str) -> String {
    let at = html
        .find(&format!(r#"data-testid="{id}""#))
        .unwrap_or_else(|| panic!("no {id} in:\n{html}"));
    let rest = &html[at..];
    let rest = &rest[rest.find('>').unwrap() + 1..];
    rest[..rest.find('<').unwrap()].trim().to_string()
}

async fn wait_status(base: &str, key: &str, id: &str, status: &str) {
    eventually(
        Duration::from_secs(60),
        &format!("{id} {status}"),
        || async { (receipt(base, key, id).await["status"] == status).then_some(()) },
    )
    .await
}

/// Make the built-in sandbox misbehave (`PUT /sandbox/faults`).
async fn set_faults(sandbox_url: &str, faults: serde_json::Value) {
    let r = client()
        .put(format!("{sandbox_url}/sandbox/faults"))
        .json(&faults)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
}

async fn push(base: &str, key: &str, local_id: &str) -> String {
    let (status, body) = ingest(base, key, &record(local_id)).await;
    assert_eq!(status, 202, "{body}");
    body["receipt"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn operators_mend_refused_records_and_manage_facilities_through_the_console() {
    let c = start();
    let base = c.gw.url.as_str();
    let (op, _) = sign_in(base, &c.operator_key).await;

    // ---- Facilities: register one; its key is shown once, never in a URL.
    let page = get(base, "/console/fasilitas", Some(&op)).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains(r#"data-facility="demo-posyandu""#));
    let csrf = page.csrf();
    let location = gerbang::sandbox::demo_location();
    let created = post(
        base,
        "/console/fasilitas",
        Some(&op),
        &[
            ("csrf", &csrf),
            ("action", "create"),
            ("id", "pkm-lain"),
            ("name", "Puskesmas Lain <b>"),
            ("organization_id", ORG),
            ("location_id", &location),
        ],
    )
    .await;
    assert_eq!(created.status, 303, "{}", created.body);
    assert_eq!(created.location(), Some("/console/fasilitas"));
    let shown = get(base, "/console/fasilitas", Some(&op)).await;
    let other_key = testid_text(&shown.body, "new-key");
    assert!(other_key.starts_with("gk_"), "{other_key}");
    assert!(shown.body.contains("Puskesmas Lain &lt;b&gt;"));
    assert!(
        !get(base, "/console/fasilitas", Some(&op))
            .await
            .body
            .contains(&other_key),
        "the key is shown once"
    );
    // The same id again is refused.
    let again = post(
        base,
        "/console/fasilitas",
        Some(&op),
        &[
            ("csrf", &csrf),
            ("action", "create"),
            ("id", "pkm-lain"),
            ("name", "x"),
            ("organization_id", ORG),
            ("location_id", &location),
        ],
    )
    .await;
    assert_eq!(again.status, 400);

    // ---- Records through the real ingest path; SATUSEHAT refuses two of them.
    set_faults(
        &c.sandbox_url,
        serde_json::json!({"refuse_identifiers": ["CON-1/lingkar-kepala", "CON-2/lingkar-kepala", "CON-3/lingkar-kepala"]}),
    )
    .await;
    let refused_1 = push(base, &c.facility_key, "CON-1").await;
    let refused_2 = push(base, &c.facility_key, "CON-2").await;
    let refused_3 = push(base, &c.facility_key, "CON-3").await;
    let others = push(base, &other_key, "OTHER-1").await;
    wait_status(base, &c.facility_key, &refused_1, "dead").await;
    wait_status(base, &c.facility_key, &refused_2, "dead").await;
    wait_status(base, &c.facility_key, &refused_3, "dead").await;
    wait_status(base, &other_key, &others, "delivered").await;

    // ---- Refused records: SATUSEHAT's rule, the element, the field of the record.
    let list = get(base, "/console/ditolak", Some(&op)).await;
    assert_eq!(list.status, 200, "{}", list.body);
    assert!(list.body.contains("10103"), "rule number: {}", list.body);
    assert!(list.body.contains(r#"data-testid="expression""#));
    assert!(
        list.body.contains("/pengukuran/lingkar_kepala"),
        "record field"
    );
    for id in [&refused_1, &refused_2, &refused_3] {
        assert!(list.body.contains(&format!(r#"data-testid="select-{id}""#)));
    }
    assert!(!list.body.contains(&format!("select-{others}")));
    assert!(list.body.contains(r#"id="replay-button""#));
    assert!(list.body.contains(r#"id="discard-button""#));
    let only_other = get(base, "/console/ditolak?facility_id=pkm-lain", Some(&op)).await;
    assert!(only_other.body.contains(r#"data-testid="no-refused""#));
    let csrf = list.csrf();

    // A discard without a reason is refused; so is a replay without the CSRF token.
    let p = post(
        base,
        "/console/ditolak",
        Some(&op),
        &[
            ("csrf", &csrf),
            ("action", "discard"),
            ("receipt", &refused_2),
            ("reason", " "),
        ],
    )
    .await;
    assert_eq!(p.status, 400, "{}", p.body);
    let p = post(
        base,
        "/console/ditolak",
        Some(&op),
        &[("action", "replay"), ("receipt", &refused_1)],
    )
    .await;
    assert_eq!(p.status, 403);
    assert_eq!(
        receipt(base, &c.facility_key, &refused_2).await["status"],
        "dead"
    );
    assert_eq!(
        receipt(base, &c.facility_key, &refused_1).await["status"],
        "dead"
    );

    // The cause is fixed upstream: replay one, discard the other with a reason.
    set_faults(&c.sandbox_url, serde_json::json!({})).await;
    let p = post(
        base,
        "/console/ditolak",
        Some(&op),
        &[
            ("csrf", &csrf),
            ("action", "replay"),
            ("receipt", &refused_1),
        ],
    )
    .await;
    assert_eq!(p.status, 303, "{}", p.body);
    assert_eq!(p.location(), Some("/console/ditolak"));
    let after = get(base, "/console/ditolak", Some(&op)).await;
    assert!(
        after.body.contains(r#"data-testid="notice-ok""#),
        "{}",
        after.body
    );
    assert!(!after.body.contains(&format!("select-{refused_1}")));
    assert_ne!(
        receipt(base, &c.facility_key, &refused_1).await["status"],
        "dead"
    );
    let p = post(
        base,
        "/console/ditolak",
        Some(&op),
        &[
            ("csrf", &csrf),
            ("action", "discard"),
            ("receipt", &refused_2),
            ("receipt", &refused_3),
            ("reason", "data uji, tidak perlu dikirim"),
        ],
    )
    .await;
    assert_eq!(p.status, 303, "{}", p.body);
    for id in [&refused_2, &refused_3] {
        assert_eq!(
            receipt(base, &c.facility_key, id).await["status"],
            "discarded"
        );
    }
    let after = get(base, "/console/ditolak", Some(&op)).await;
    assert!(after.body.contains("2 catatan dibuang."), "{}", after.body);
    assert!(after.body.contains(r#"data-testid="no-refused""#));
    wait_status(base, &c.facility_key, &refused_1, "delivered").await;

    // ---- One record's history: attempts with their HTTP status, revisions, ids, events.
    let history = get(base, &format!("/console/catatan/{refused_1}"), Some(&op)).await;
    assert_eq!(history.status, 200, "{}", history.body);
    for part in [
        "attempts",
        "revisions",
        "server-ids",
        "events",
        "raw-record",
        "bundle",
    ] {
        assert!(
            history.body.contains(&format!(r#"data-testid="{part}""#)),
            "{part}: {}",
            history.body
        );
    }
    assert!(
        history.body.contains(r#"data-testid="attempt-http">400"#),
        "the refusal"
    );
    assert!(history.body.contains("record.refused"));
    assert!(history.body.contains("record.delivered"));
    assert!(history.body.contains(r#"data-status="delivered""#));

    // ---- Each facility sees its own records only.
    let (demo, _) = sign_in(base, &c.facility_key).await;
    assert_eq!(
        get(base, &format!("/console/catatan/{refused_1}"), Some(&demo))
            .await
            .status,
        200
    );
    let foreign = get(base, &format!("/console/catatan/{others}"), Some(&demo)).await;
    assert_eq!(foreign.status, 404, "{}", foreign.body);
    assert!(!foreign.body.contains("OTHER-1"));

    // ---- The overview: counts per organization, charts, breaker, queue age.
    let overview = get(base, "/console", Some(&op)).await;
    assert!(
        overview
            .body
            .contains(&format!(r#"data-organization="{ORG}""#))
    );
    assert!(overview.body.contains(r#"data-testid="chart-delivered""#));
    assert!(overview.body.contains(r#"data-testid="chart-latency""#));
    assert!(overview.body.contains(r#"data-testid="breaker""#));
    assert!(
        overview.body.contains(r#"data-status="delivered">2<"#),
        "{}",
        overview.body
    );
    assert!(overview.body.contains("<rect"));

    // ---- The audit log: the discard with its reason, the new facility, the sign-ins.
    let audit = get(base, "/console/audit?action=discard", Some(&op)).await;
    assert!(
        audit.body.contains(r#"data-action="discard""#),
        "{}",
        audit.body
    );
    assert!(audit.body.contains("data uji, tidak perlu dikirim"));
    assert!(!audit.body.contains(r#"data-action="replay""#));
    let audit = get(
        base,
        "/console/audit?actor=operator%3Ademo-operator",
        Some(&op),
    )
    .await;
    for action in ["replay", "discard", "facility-add", "console-sign-in"] {
        assert!(
            audit.body.contains(&format!(r#"data-action="{action}""#)),
            "{action}"
        );
    }
    let future = get(base, "/console/audit?since=2099-01-01T00%3A00", Some(&op)).await;
    assert!(future.body.contains(r#"data-testid="no-audit""#));
    let bad = get(base, "/console/audit?since=kemarin", Some(&op)).await;
    assert_eq!(bad.status, 400);

    // ---- Revoking a key: the facility's system and its console session stop at once.
    let (other_session, _) = sign_in(base, &other_key).await;
    assert_eq!(
        get(base, "/console/catatan", Some(&other_session))
            .await
            .status,
        200
    );
    let page = get(base, "/console/fasilitas", Some(&op)).await;
    let hash = hidden_after(&page.body, r#"data-facility="pkm-lain""#, "key_hash");
    let p = post(
        base,
        "/console/fasilitas",
        Some(&op),
        &[
            ("csrf", &page.csrf()),
            ("action", "revoke"),
            ("key_hash", &hash),
        ],
    )
    .await;
    assert_eq!(p.status, 303, "{}", p.body);
    assert_eq!(ingest(base, &other_key, &record("OTHER-2")).await.0, 401);
    assert_eq!(
        get(base, "/console/catatan", Some(&other_session))
            .await
            .location(),
        Some("/console/masuk")
    );
    // A new key for it is shown once.
    let p = post(
        base,
        "/console/fasilitas",
        Some(&op),
        &[
            ("csrf", &csrf),
            ("action", "new-key"),
            ("facility_id", "pkm-lain"),
        ],
    )
    .await;
    assert_eq!(p.status, 303);
    let fresh = testid_text(
        &get(base, "/console/fasilitas", Some(&op)).await.body,
        "new-key",
    );
    assert!(!push(base, &fresh, "OTHER-3").await.is_empty());
    let audit = get(base, "/console/audit?action=key-revoke", Some(&op)).await;
    assert!(audit.body.contains(r#"data-action="key-revoke""#));
    assert!(
        !audit.body.contains(&other_key),
        "keys never reach the audit log"
    );
}

/// Register a facility through the operator's console; its key, shown once.
async fn register_facility(base: &str, op: &str, id: &str) -> String {
    let page = get(base, "/console/fasilitas", Some(op)).await;
    let created = post(
        base,
        "/console/fasilitas",
        Some(op),
        &[
            ("csrf", &page.csrf()),
            ("action", "create"),
            ("id", id),
            ("name", "Puskesmas Lain"),
            ("organization_id", ORG),
            ("location_id", &gerbang::sandbox::demo_location()),
        ],
    )
    .await;
    assert_eq!(created.status, 303, "{}", created.body);
    testid_text(
        &get(base, "/console/fasilitas", Some(op)).await.body,
        "new-key",
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_facility_sees_its_own_records_by_status_and_what_needs_correcting() {
    let c = start();
    let base = c.gw.url.as_str();
    let (op, _) = sign_in(base, &c.operator_key).await;
    let other_key = register_facility(base, &op, "pkm-tetangga").await;

    // One record SATUSEHAT refuses, one it takes; another facility's record beside them.
    set_faults(
        &c.sandbox_url,
        serde_json::json!({"refuse_identifiers": ["FAC-1/lingkar-kepala"]}),
    )
    .await;
    let refused = push(base, &c.facility_key, "FAC-1").await;
    let delivered = push(base, &c.facility_key, "FAC-2").await;
    let foreign = push(base, &other_key, "FAC-9").await;
    wait_status(base, &c.facility_key, &refused, "dead").await;
    wait_status(base, &c.facility_key, &delivered, "delivered").await;
    wait_status(base, &other_key, &foreign, "delivered").await;

    let (demo, _) = sign_in(base, &c.facility_key).await;
    let page = get(base, "/console/catatan", Some(&demo)).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let body = &page.body;

    // Counts by status, each a filter link.
    assert!(
        body.contains(r#"data-testid="records-status-dead" data-count="1""#),
        "{body}"
    );
    assert!(body.contains(r#"data-testid="records-status-delivered" data-count="1""#));
    assert!(body.contains(r#"href="/console/catatan?status=dead""#));

    // What needs correcting comes first: the refused record, SATUSEHAT's rule, the element,
    // the field of the facility's own record, and what to do.
    let needs = body
        .find(r#"data-testid="needs-correction""#)
        .expect("a needs-correction section");
    let table = body.find(r#"data-testid="records-table""#).unwrap();
    assert!(needs < table);
    let section = &body[needs..table];
    assert!(section.contains(&format!(r#"data-receipt="{refused}""#)));
    assert!(!section.contains(&format!(r#"data-receipt="{delivered}""#)));
    assert!(
        section.contains(r#"data-testid="rule">Aturan 10103<"#),
        "{section}"
    );
    assert!(section.contains(r#"data-testid="expression""#));
    assert!(section.contains(r#"data-testid="record-field">/pengukuran/lingkar_kepala<"#));
    assert!(section.contains("ID lokal yang sama"), "what to do");

    // The list: its own records, with status badges and links to each record's history.
    for id in [&refused, &delivered] {
        assert!(
            body.contains(&format!(r#"data-testid="record-row" data-receipt="{id}""#)),
            "{id}"
        );
        assert!(body.contains(&format!(r#"href="/console/catatan/{id}""#)));
    }
    assert!(body.contains(r#"data-testid="status-badge" data-status="dead""#));
    assert!(body.contains(" WIB<"));
    // Never another facility's record.
    assert!(
        !body.contains(&foreign),
        "another facility's receipt: {body}"
    );

    // Filtered by status.
    let dead = get(base, "/console/catatan?status=dead", Some(&demo)).await;
    assert!(dead.body.contains(&format!(r#"data-receipt="{refused}""#)));
    assert!(!dead.body.contains(&format!(
        r#"data-testid="record-row" data-receipt="{delivered}""#
    )));
    let done = get(base, "/console/catatan?status=delivered", Some(&demo)).await;
    assert!(!done.body.contains(r#"data-testid="needs-correction""#));
    assert!(
        done.body
            .contains(&format!(r#"data-receipt="{delivered}""#))
    );
    assert!(!done.body.contains(&format!(r#"data-receipt="{refused}""#)));
    assert_eq!(
        get(base, "/console/catatan?status=lost", Some(&demo))
            .await
            .status,
        400
    );
    assert_eq!(
        get(base, "/console/catatan?cursor=nonsense", Some(&demo))
            .await
            .status,
        400
    );

    // The other facility sees its own and not the demo facility's.
    let (theirs, _) = sign_in(base, &other_key).await;
    let page = get(base, "/console/catatan", Some(&theirs)).await;
    assert!(page.body.contains(&format!(r#"data-receipt="{foreign}""#)));
    assert!(!page.body.contains(&refused) && !page.body.contains(&delivered));
    assert!(page.body.contains(r#"data-testid="nothing-to-correct""#));

    // An operator keeps the overview and the refused records; this page is not theirs.
    assert_eq!(get(base, "/console/catatan", Some(&op)).await.status, 403);
}

/// HTML text back to what it says.
fn unescape(html: &str) -> String {
    html.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The text in the playground's text box.
fn playground_input(html: &str) -> String {
    let at = html
        .find(r#"data-testid="playground-input">"#)
        .unwrap_or_else(|| panic!("no text box in:\n{html}"));
    let rest = &html[at + r#"data-testid="playground-input">"#.len()..];
    unescape(&rest[..rest.find("</textarea>").unwrap()])
}

/// Every `id="…"` of a page.
fn ids_of(html: &str) -> std::collections::HashSet<String> {
    html.split(r#" id=""#)
        .skip(1)
        .map(|rest| rest[..rest.find('"').unwrap()].to_string())
        .collect()
}

/// The `#…` targets of the links with `data-testid="{testid}"`.
fn link_targets(html: &str, testid: &str) -> Vec<String> {
    html.split("<a ")
        .skip(1)
        .filter(|a| a[..a.find('>').unwrap()].contains(&format!(r#"data-testid="{testid}""#)))
        .map(|a| {
            let at = a.find(r##"href="#"##).expect("a fragment link") + r##"href="#"##.len();
            a[at..at + a[at..].find('"').unwrap()].to_string()
        })
        .collect()
}

/// Each issue's element (and field) link leads to an element of the page.
fn assert_links_resolve(html: &str) {
    let ids = ids_of(html);
    for testid in ["playground-issue-element", "playground-issue-field"] {
        for target in link_targets(html, testid) {
            assert!(
                ids.contains(&target),
                "{testid} #{target} is not on the page"
            );
        }
    }
}

async fn run_playground(base: &str, cookie: &str, csrf: &str, fields: &[(&str, &str)]) -> Page {
    let mut all = vec![("csrf", csrf)];
    all.extend_from_slice(fields);
    post(base, "/console/playground", Some(cookie), &all).await
}

#[tokio::test(flavor = "multi_thread")]
async fn the_playground_maps_an_example_and_links_each_issue_to_its_element_and_field() {
    let c = start();
    let base = c.gw.url.as_str();
    let (op, _) = sign_in(base, &c.operator_key).await;

    let page = get(base, "/console/playground", Some(&op)).await;
    assert_eq!(page.status, 200, "{}", page.body);
    for part in [
        "playground-record-type",
        "playground-input",
        "playground-file",
        "playground-example",
        "playground-run",
        "playground-validate",
        "playground-sender",
    ] {
        assert!(
            page.body.contains(&format!(r#"data-testid="{part}""#)),
            "{part}"
        );
    }
    assert!(page.body.contains(r#"<option value="posyandu.balita""#));
    assert!(
        page.body.contains(r#"<option value="sikda-generik""#),
        "formats"
    );
    assert!(page.body.contains("posyandu.balita/bayi-9-bulan-imunisasi"));
    assert!(
        page.body.contains(gerbang::sandbox::DEMO_ORGANIZATION),
        "an operator maps for the playground sender"
    );
    assert!(!page.body.contains(r#"data-testid="playground-result""#));

    // Start from an example: the server fills the text box (no script needed).
    let example = get(
        base,
        "/console/playground?example=posyandu.balita%2Fbayi-9-bulan-imunisasi",
        Some(&op),
    )
    .await;
    assert_eq!(example.status, 200);
    let record = playground_input(&example.body);
    let parsed: serde_json::Value = serde_json::from_str(&record).unwrap();
    assert_eq!(parsed["id_kunjungan"], "PSY07-20260512-0012");
    assert!(
        example
            .body
            .contains(r#"<option value="posyandu.balita" title="#)
    );
    let csrf = example.csrf();

    // Run it: the Bundle and the OperationOutcome side by side, every link resolving.
    let ran = run_playground(
        base,
        &op,
        &csrf,
        &[
            ("mode", "map"),
            ("record_type", "posyandu.balita"),
            ("format", ""),
            ("input", &record),
        ],
    )
    .await;
    assert_eq!(ran.status, 200, "{}", ran.body);
    let body = &ran.body;
    assert!(
        body.contains(r#"data-testid="playground-bundle""#),
        "{body}"
    );
    assert!(body.contains(r#"data-testid="playground-outcome""#));
    assert!(body.contains(r#"data-testid="playground-record""#));
    assert!(body.contains(r#"data-errors="0""#), "the example passes");
    assert!(body.contains(r#"id="el-Bundle.entry-0.resource""#));
    let elements = link_targets(body, "playground-issue-element");
    assert!(!elements.is_empty(), "the validator's notes name elements");
    assert!(elements.iter().all(|e| e.starts_with("el-Bundle.entry-")));
    assert!(
        !link_targets(body, "playground-issue-field").is_empty(),
        "provenance finds the record's fields"
    );
    assert_links_resolve(body);
    assert_eq!(playground_input(body), record, "the form keeps the record");

    // A required field left out: an input issue naming the field, no Bundle.
    let mut broken = parsed.clone();
    broken["pengukuran"]
        .as_object_mut()
        .unwrap()
        .remove("berat_badan");
    let ran = run_playground(
        base,
        &op,
        &csrf,
        &[
            ("mode", "map"),
            ("record_type", "posyandu.balita"),
            ("input", &broken.to_string()),
        ],
    )
    .await;
    assert_eq!(ran.status, 200, "{}", ran.body);
    assert!(ran.body.contains(r#"data-testid="playground-no-bundle""#));
    assert!(
        ran.body.contains(
            r#"data-testid="playground-issue-field" data-field="/pengukuran/berat_badan""#
        ),
        "{}",
        ran.body
    );
    assert!(ran.body.contains(r##"href="#rec.pengukuran""##));
    assert_links_resolve(&ran.body);

    // Not JSON: a plain message, not a server error.
    let ran = run_playground(
        base,
        &op,
        &csrf,
        &[
            ("mode", "map"),
            ("record_type", "posyandu.balita"),
            ("input", "{\"id_kunjungan\": \"A\", berat 8}"),
        ],
    )
    .await;
    assert_eq!(ran.status, 200, "{}", ran.body);
    assert!(ran.body.contains("bukan JSON"), "{}", ran.body);
    assert!(ran.body.contains(r#"data-testid="playground-issue""#));

    // A local format through its adapter: the canonical record is shown beside the record,
    // and the Bundle's notes still lead to the fields of the record as sent.
    let pcare = get(
        base,
        "/console/playground?example=rawat-jalan%2Fpcare%2Fcontoh-b-hipertensi",
        Some(&op),
    )
    .await;
    assert_eq!(pcare.status, 200);
    assert!(
        pcare.body.contains(r#"<option value="pcare" selected>"#),
        "{}",
        pcare.body
    );
    let ran = run_playground(
        base,
        &op,
        &csrf,
        &[
            ("mode", "map"),
            ("record_type", "rawat-jalan"),
            ("format", "pcare"),
            ("input", &playground_input(&pcare.body)),
        ],
    )
    .await;
    assert_eq!(ran.status, 200, "{}", ran.body);
    assert!(ran.body.contains(r#"data-testid="playground-canonical""#));
    assert!(ran.body.contains(r#"data-testid="playground-bundle""#));
    assert!(ran.body.contains(r#"data-errors="0""#), "{}", ran.body);
    assert_links_resolve(&ran.body);
    // A format the record type has no adapter for: an outcome naming the known ones.
    let ran = run_playground(
        base,
        &op,
        &csrf,
        &[
            ("mode", "map"),
            ("record_type", "posyandu.balita"),
            ("format", "pcare"),
            ("input", &record),
        ],
    )
    .await;
    assert_eq!(ran.status, 200);
    assert!(
        ran.body.contains("accepts only its canonical format"),
        "{}",
        ran.body
    );

    // Larger than the API takes: refused as such, with the limit named.
    let huge = format!("{{\"x\": \"{}\"}}", "a".repeat(1024 * 1024));
    let ran = run_playground(
        base,
        &op,
        &csrf,
        &[
            ("mode", "map"),
            ("record_type", "posyandu.balita"),
            ("input", &huge),
        ],
    )
    .await;
    assert_eq!(ran.status, 413);
    assert!(ran.body.contains("ingest.max_body_bytes"));

    // Without the CSRF token the form is refused; an unknown example too.
    let p = post(
        base,
        "/console/playground",
        Some(&op),
        &[("mode", "map"), ("input", &record)],
    )
    .await;
    assert_eq!(p.status, 403);
    let p = get(
        base,
        "/console/playground?example=..%2F..%2Fetc%2Fpasswd",
        Some(&op),
    )
    .await;
    assert_eq!(p.status, 400);
    let p = get(base, "/console/playground", None).await;
    assert_eq!(p.location(), Some("/console/masuk"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_playground_validates_fhir_json_and_maps_for_the_facility_signed_in() {
    let c = start();
    let base = c.gw.url.as_str();
    let (demo, _) = sign_in(base, &c.facility_key).await;

    // A facility maps for its own organization.
    let page = get(base, "/console/playground", Some(&demo)).await;
    assert_eq!(page.status, 200);
    assert!(
        testid_text(&page.body, "playground-sender").contains("Dipetakan untuk fasilitas Anda")
    );

    // Validate mode: a golden Bundle, shown pretty with its elements linked.
    let form = get(base, "/console/playground?mode=validate", Some(&demo)).await;
    assert!(form.body.contains(r#"name="mode" value="validate""#));
    assert!(
        !form
            .body
            .contains(r#"data-testid="playground-record-type""#)
    );
    assert!(form.body.contains("posyandu.balita/bayi-9-bulan-imunisasi"));
    let bundle = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("mappings/posyandu.balita/examples/bayi-9-bulan-imunisasi.bundle.json"),
    )
    .unwrap();
    let ran = run_playground(
        base,
        &demo,
        &form.csrf(),
        &[("mode", "validate"), ("input", &bundle)],
    )
    .await;
    assert_eq!(ran.status, 200, "{}", ran.body);
    assert!(ran.body.contains(r#"data-testid="playground-bundle""#));
    assert!(ran.body.contains(r#"id="el-Bundle.entry-0""#));
    assert!(ran.body.contains(r#"data-errors="0""#), "{}", ran.body);
    assert!(!ran.body.contains(r#"data-testid="playground-record""#));
    assert!(!link_targets(&ran.body, "playground-issue-element").is_empty());
    assert_links_resolve(&ran.body);

    // The example list fills the box in validate mode too.
    let loaded = get(
        base,
        "/console/playground?mode=validate&example=posyandu.balita%2Fbayi-9-bulan-imunisasi",
        Some(&demo),
    )
    .await;
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&playground_input(&loaded.body)).unwrap(),
        serde_json::from_str::<serde_json::Value>(&bundle).unwrap()
    );

    // A resource with an error: an issue linked to its element.
    let patient = serde_json::json!({"resourceType": "Patient", "gender": "perempuan"});
    let ran = run_playground(
        base,
        &demo,
        &form.csrf(),
        &[("mode", "validate"), ("input", &patient.to_string())],
    )
    .await;
    assert_eq!(ran.status, 200);
    assert!(!ran.body.contains(r#"data-errors="0""#), "{}", ran.body);
    assert!(ran.body.contains(r#"id="el-Patient.gender""#));
    assert_links_resolve(&ran.body);

    // Not JSON in validate mode: an outcome, not a server error.
    let ran = run_playground(
        base,
        &demo,
        &form.csrf(),
        &[("mode", "validate"), ("input", "<Patient/>")],
    )
    .await;
    assert_eq!(ran.status, 200);
    assert!(ran.body.contains(r#"data-testid="playground-issue""#));
}
