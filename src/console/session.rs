//! Signing in to the console, the session that follows, and the checks every form passes.
//!
//! - **Sign-in** (`GET`/`POST /console/masuk`): the key is posted in the form body — never in
//!   a URL, so it is in no browser history, proxy log or `Referer` — and checked like the
//!   API checks it: an operator key (`gerbang operator add`) or a facility API key, by its
//!   SHA-256. Attempts are rate-limited per address ([`SignInLimiter`]).
//! - **Session**: a random token in the `gerbang_console` cookie (`HttpOnly`,
//!   `SameSite=Strict`, `Path=/console`, `Secure` over https); the store keeps only its
//!   SHA-256 ([`crate::store::sessions`]). A session ends after [`IDLE`] without a request,
//!   [`ABSOLUTE`] after sign-in, at sign-out, and as soon as the key it was opened with is
//!   revoked.
//! - **Forms**: every state-changing request is a `POST` carrying the session's CSRF token in
//!   a hidden field, compared in constant time ([`csrf_matches`]); a request whose `Origin`
//!   (or, without one, `Referer`) names another host is refused ([`same_origin`]).

use super::i18n::{Key, Lang};
use super::{Ctx, Failure, Fields, layout};
use crate::api::AppState;
use crate::store::{AuditEvent, ConsoleSession, Facility, Store, StoreError, sha256_hex};
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use maud::{Markup, html};
use std::net::IpAddr;
use std::num::NonZeroU32;

/// The session cookie.
pub const COOKIE: &str = "gerbang_console";
/// A session not used for this long has ended (ms): a workday's pause, not a night.
pub const IDLE: i64 = 8 * 3600 * 1000;
/// A session ends this long after sign-in, however busy (ms).
pub const ABSOLUTE: i64 = 24 * 3600 * 1000;
/// A session's idle clock is written back at most this often (ms): reading a page should not
/// cost a write every time.
const TOUCH_EVERY: i64 = 60 * 1000;

/// Who is signed in.
#[derive(Debug, Clone, PartialEq)]
pub enum Principal {
    /// An operator, by the name given at `gerbang operator add`.
    Operator(String),
    /// A facility, as registered now.
    Facility(Facility),
}

impl Principal {
    /// How the audit log names it (the same as the API: `operator:<name>`, `facility:<id>`).
    pub fn actor(&self) -> String {
        match self {
            Principal::Operator(name) => format!("operator:{name}"),
            Principal::Facility(f) => format!("facility:{}", f.id),
        }
    }
}

/// A live session of the request.
#[derive(Debug, Clone)]
pub struct Session {
    pub token_hash: String,
    pub principal: Principal,
    /// The token the session's forms carry.
    pub csrf: String,
}

/// Whether a stored session is still live at `now`: neither idle for [`IDLE`] nor past its
/// absolute end.
pub fn is_live(s: &ConsoleSession, now: i64) -> bool {
    now < s.expires_at && now - s.last_seen_at < IDLE
}

/// Whether the CSRF token a form carried is the session's, compared in constant time (the
/// time taken does not tell how much of a guess was right).
pub fn csrf_matches(expected: &str, given: &str) -> bool {
    let (a, b) = (expected.as_bytes(), given.as_bytes());
    if a.len() != b.len() || a.is_empty() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether a request comes from a page of this very host: its `Origin`, or without one its
/// `Referer`, names the host the request was sent to. A request naming neither passes (some
/// browsers and privacy tools drop both); the CSRF token still guards it.
pub fn same_origin(req: &HttpRequest) -> bool {
    let host = req.connection_info().host().to_ascii_lowercase();
    let named = req
        .headers()
        .get(header::ORIGIN)
        .or_else(|| req.headers().get(header::REFERER))
        .map(|h| h.to_str().unwrap_or("not text"));
    match named {
        None => true,
        Some(url) => origin_host(url).is_some_and(|h| h.eq_ignore_ascii_case(&host)),
    }
}

/// `host[:port]` of an absolute http(s) URL; None for `null` and anything else.
fn origin_host(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let host = &rest[..end];
    (!host.is_empty() && !host.contains('@')).then_some(host)
}

/// The value of cookie `name` in the request's `Cookie` header(s).
pub fn cookie(req: &HttpRequest, name: &str) -> Option<String> {
    req.headers()
        .get_all(header::COOKIE)
        .filter_map(|h| h.to_str().ok())
        .flat_map(|h| h.split(';'))
        .find_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k.trim() == name).then(|| v.trim().trim_matches('"').to_string())
        })
}

/// Whether the request came over https (directly, or through a proxy that says so in
/// `Forwarded` / `X-Forwarded-Proto`): then cookies are `Secure`.
pub fn is_https(req: &HttpRequest) -> bool {
    req.connection_info().scheme() == "https"
}

/// The `Set-Cookie` value of a new session.
pub fn session_cookie(token: &str, secure: bool) -> String {
    format!(
        "{COOKIE}={token}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={}{}",
        ABSOLUTE / 1000,
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that makes the browser forget the session.
pub fn cleared_cookie(secure: bool) -> String {
    format!(
        "{COOKIE}=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0{}",
        if secure { "; Secure" } else { "" }
    )
}

/// The live session a request carries, if any. An ended session is deleted as it is found.
pub async fn current(req: &HttpRequest, store: &Store) -> Result<Option<Session>, StoreError> {
    let Some(token) = cookie(req, COOKIE).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    let hash = sha256_hex(token.as_bytes());
    let Some(stored) = store.console_session(&hash).await? else {
        return Ok(None);
    };
    let now = crate::time::now_millis();
    let principal = if is_live(&stored, now) {
        principal_of(store, &stored).await?
    } else {
        None
    };
    let Some(principal) = principal else {
        store.delete_console_session(&hash).await?;
        return Ok(None);
    };
    if now - stored.last_seen_at >= TOUCH_EVERY {
        store.touch_console_session(&hash, now).await?;
    }
    Ok(Some(Session {
        token_hash: hash,
        principal,
        csrf: stored.csrf_token,
    }))
}

/// Who a stored session belongs to, if the key it was opened with is still valid.
async fn principal_of(store: &Store, s: &ConsoleSession) -> Result<Option<Principal>, StoreError> {
    Ok(match s.principal_kind.as_str() {
        "operator" => store
            .operator_by_key_hash(&s.key_hash)
            .await?
            .filter(|name| *name == s.principal_id)
            .map(Principal::Operator),
        "facility" => store
            .facility_by_key_hash(&s.key_hash)
            .await?
            .filter(|f| f.id == s.principal_id)
            .map(Principal::Facility),
        _ => None,
    })
}

/// Who a key belongs to: an operator, else a facility.
async fn principal_by_key(store: &Store, key_hash: &str) -> Result<Option<Principal>, StoreError> {
    if let Some(name) = store.operator_by_key_hash(key_hash).await? {
        return Ok(Some(Principal::Operator(name)));
    }
    Ok(store
        .facility_by_key_hash(key_hash)
        .await?
        .map(Principal::Facility))
}

/// Open a session for `principal`: the new token (for the cookie only) and the session.
async fn open(
    store: &Store,
    principal: Principal,
    key_hash: String,
    now: i64,
) -> Result<(String, Session), StoreError> {
    let (token, csrf) = (random_token(), random_token());
    let (kind, id) = match &principal {
        Principal::Operator(name) => ("operator", name.clone()),
        Principal::Facility(f) => ("facility", f.id.clone()),
    };
    let stored = ConsoleSession {
        token_hash: sha256_hex(token.as_bytes()),
        principal_kind: kind.into(),
        principal_id: id,
        key_hash,
        csrf_token: csrf.clone(),
        created_at: now,
        last_seen_at: now,
        expires_at: now + ABSOLUTE,
    };
    store.create_console_session(&stored, now - IDLE).await?;
    Ok((
        token,
        Session {
            token_hash: stored.token_hash,
            principal,
            csrf,
        },
    ))
}

/// 244 random bits (two v4 UUIDs, from the operating system's CSPRNG), in hex: a session
/// token or a CSRF token.
fn random_token() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// Sign-in attempts per client address: 10 at once, then one every 6 seconds — a person who
/// mistyped a key a few times is not slowed, a script guessing keys is.
pub struct SignInLimiter {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
}

impl Default for SignInLimiter {
    fn default() -> Self {
        let per_minute = NonZeroU32::new(10).expect("non-zero");
        SignInLimiter {
            limiter: RateLimiter::keyed(Quota::per_minute(per_minute).allow_burst(per_minute)),
        }
    }
}

impl SignInLimiter {
    /// Take one attempt from the address's budget; `Err(seconds to wait)` when it is spent.
    pub fn attempt(&self, addr: Option<IpAddr>) -> Result<(), u64> {
        use governor::clock::{Clock, DefaultClock};
        let Some(addr) = addr else { return Ok(()) };
        self.limiter.check_key(&addr).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            wait.as_secs().max(1)
        })
    }

    /// Forget the addresses whose budget is full again.
    pub fn forget_idle(&self) {
        self.limiter.retain_recent();
    }
}

/// Where a principal starts: operators at the overview, facilities at their records.
pub fn home(principal: &Principal) -> &'static str {
    match principal {
        Principal::Operator(_) => "/console",
        Principal::Facility(_) => "/console/catatan",
    }
}

// ------------------------------------------------------------------------------ handlers

/// `GET /console/masuk`: the sign-in form (or, when signed in already, the start page).
pub async fn sign_in_form(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Failure> {
    let ctx = Ctx::new(&req, &state).await?;
    if let Some(s) = &ctx.session {
        return Ok(super::see_other(home(&s.principal)));
    }
    Ok(super::html(
        actix_web::http::StatusCode::OK,
        sign_in_page(ctx.lang, &ctx.path, None),
    ))
}

/// `POST /console/masuk` with `key` in the body.
pub async fn sign_in(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<Fields>,
) -> Result<HttpResponse, Failure> {
    use actix_web::http::StatusCode;
    let ctx = Ctx::new(&req, &state).await?;
    if !same_origin(&req) {
        return Err(ctx.fail(super::Refusal::BadForm));
    }
    if let Err(wait) = state
        .console
        .sign_in
        .attempt(req.peer_addr().map(|a| a.ip()))
    {
        crate::internal_events::RequestThrottled { path: req.path() }.emit();
        let mut resp = super::html(
            StatusCode::TOO_MANY_REQUESTS,
            sign_in_page(ctx.lang, &ctx.path, Some(Key::TooManyAttempts)),
        );
        resp.headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from(wait));
        return Ok(resp);
    }
    let key = form.get("key").unwrap_or("").trim();
    let key_hash = sha256_hex(key.as_bytes());
    let principal = if key.is_empty() {
        None
    } else {
        principal_by_key(&state.store, &key_hash)
            .await
            .map_err(|e| ctx.store_failed(e))?
    };
    let Some(principal) = principal else {
        crate::internal_events::ConsoleSignInRefused.emit();
        return Ok(super::html(
            StatusCode::UNAUTHORIZED,
            sign_in_page(ctx.lang, &ctx.path, Some(Key::WrongKey)),
        ));
    };
    // Signing in again replaces the session the browser had: one cookie, one live session.
    if let Some(old) = &ctx.session {
        state
            .store
            .delete_console_session(&old.token_hash)
            .await
            .map_err(|e| ctx.store_failed(e))?;
    }
    let now = crate::time::now_millis();
    let (token, session) = open(&state.store, principal, key_hash, now)
        .await
        .map_err(|e| ctx.store_failed(e))?;
    let actor = session.principal.actor();
    state
        .store
        .audit(AuditEvent {
            at: now,
            actor,
            action: "console-sign-in".into(),
            receipt_id: None,
            organization_id: match &session.principal {
                Principal::Facility(f) => Some(f.organization_id.clone()),
                Principal::Operator(_) => None,
            },
            detail: None,
        })
        .await
        .map_err(|e| ctx.store_failed(e))?;
    crate::internal_events::ConsoleSignedIn {
        kind: match session.principal {
            Principal::Operator(_) => "operator",
            Principal::Facility(_) => "facility",
        },
    }
    .emit();
    let mut resp = super::see_other(home(&session.principal));
    set_cookie(&mut resp, &session_cookie(&token, is_https(&req)));
    Ok(resp)
}

/// `POST /console/keluar`: end the session.
pub async fn sign_out(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<Fields>,
) -> Result<HttpResponse, Failure> {
    let ctx = Ctx::new(&req, &state).await?;
    let session = ctx.check_form(&req, &form)?;
    state
        .store
        .delete_console_session(&session.token_hash)
        .await
        .map_err(|e| ctx.store_failed(e))?;
    state
        .store
        .audit(AuditEvent {
            at: crate::time::now_millis(),
            actor: session.principal.actor(),
            action: "console-sign-out".into(),
            receipt_id: None,
            organization_id: None,
            detail: None,
        })
        .await
        .map_err(|e| ctx.store_failed(e))?;
    let mut resp = super::see_other("/console/masuk");
    set_cookie(&mut resp, &cleared_cookie(is_https(&req)));
    Ok(resp)
}

fn set_cookie(resp: &mut HttpResponse, value: &str) {
    if let Ok(v) = header::HeaderValue::from_str(value) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// The sign-in page, with a message after a failed attempt.
pub fn sign_in_page(lang: Lang, path: &str, message: Option<Key>) -> Markup {
    use super::i18n::t;
    let body = html! {
        section.card.narrow {
            h1 { (t(lang, Key::SignInTitle)) }
            p { (t(lang, Key::SignInHelp)) }
            @if let Some(m) = message {
                p.alert.alert-error role="alert" data-testid="sign-in-error" { (t(lang, m)) }
            }
            form #sign-in-form method="post" action="/console/masuk" autocomplete="off" {
                label for="sign-in-key" { (t(lang, Key::KeyLabel)) }
                input #sign-in-key type="password" name="key" required autocomplete="off"
                    autocapitalize="off" spellcheck="false";
                button #sign-in-submit.button.primary type="submit" { (t(lang, Key::SignIn)) }
            }
        }
    };
    layout::page(
        &layout::Shell {
            lang,
            path,
            session: None,
        },
        t(lang, Key::SignInTitle),
        None,
        body,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn stored(created: i64, last_seen: i64) -> ConsoleSession {
        ConsoleSession {
            token_hash: "h".into(),
            principal_kind: "operator".into(),
            principal_id: "ops".into(),
            key_hash: "k".into(),
            csrf_token: "c".into(),
            created_at: created,
            last_seen_at: last_seen,
            expires_at: created + ABSOLUTE,
        }
    }

    #[test]
    fn a_session_ends_when_idle_and_at_its_absolute_end() {
        let s = stored(0, 0);
        assert!(is_live(&s, 1));
        assert!(is_live(&s, IDLE - 1));
        assert!(!is_live(&s, IDLE), "8 hours without a request");
        // Busy all day: still ends 24 hours after sign-in.
        let busy = stored(0, ABSOLUTE - 60_000);
        assert!(is_live(&busy, ABSOLUTE - 1));
        assert!(!is_live(&busy, ABSOLUTE));
    }

    #[test]
    fn csrf_tokens_compare_exactly() {
        assert!(csrf_matches("abc123", "abc123"));
        assert!(!csrf_matches("abc123", "abc124"));
        assert!(!csrf_matches("abc123", "abc12"));
        assert!(!csrf_matches("abc123", ""));
        assert!(!csrf_matches("", ""), "a session always has a token");
    }

    #[test]
    fn cookies_are_read_from_the_header() {
        let r = TestRequest::default()
            .insert_header(("Cookie", "lang=en; gerbang_console=tok123 ; other=1"))
            .to_http_request();
        assert_eq!(cookie(&r, COOKIE).as_deref(), Some("tok123"));
        assert_eq!(cookie(&r, "lang").as_deref(), Some("en"));
        assert_eq!(cookie(&r, "missing"), None);
    }

    #[test]
    fn the_session_cookie_is_http_only_strict_and_scoped_to_the_console() {
        let c = session_cookie("t", false);
        assert!(c.starts_with("gerbang_console=t;"));
        for part in ["HttpOnly", "SameSite=Strict", "Path=/console"] {
            assert!(c.contains(part), "{c}");
        }
        assert!(!c.contains("Secure"));
        assert!(session_cookie("t", true).ends_with("; Secure"));
        assert!(cleared_cookie(false).contains("Max-Age=0"));
    }

    #[test]
    fn only_this_host_may_post_forms() {
        let req = |h: Option<(&'static str, &'static str)>| {
            let mut r = TestRequest::default().insert_header(("Host", "gerbang.local:8080"));
            if let Some(h) = h {
                r = r.insert_header(h);
            }
            r.to_http_request()
        };
        assert!(same_origin(&req(None)));
        assert!(same_origin(&req(Some((
            "Origin",
            "http://gerbang.local:8080"
        )))));
        assert!(same_origin(&req(Some((
            "Referer",
            "https://gerbang.local:8080/console/ditolak?x=1"
        )))));
        assert!(!same_origin(&req(Some(("Origin", "http://evil.example")))));
        assert!(!same_origin(&req(Some(("Origin", "null")))));
        assert!(!same_origin(&req(Some((
            "Referer",
            "http://gerbang.local:8080@evil.example/"
        )))));
        assert!(!same_origin(&req(Some((
            "Origin",
            "http://gerbang.local:9999"
        )))));
    }
}
