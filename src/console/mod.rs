//! The web console: operators see and mend the queue, facilities see their records, served
//! by gerbang itself at `/console` — no separate server, no CDN, no build step.
//!
//! **Stack**: server-rendered HTML with `maud` (compile-time templates, escaped by default),
//! one hand-written CSS file and one small script for conveniences (every page works without
//! it), both embedded in the binary ([`assets`]); charts are inline SVG drawn on the server
//! ([`chart`]). So the console works offline on a district office network, on a phone, and
//! in any browser that renders HTML forms.
//!
//! | route | page | who |
//! |---|---|---|
//! | `GET /console` | overview: receipts by status and organization, deliveries and latency per hour, breakers, queue age ([`overview`]) | operator |
//! | `GET`, `POST /console/masuk` | sign in with an operator or facility key, posted in the body ([`session`]) | anyone |
//! | `POST /console/keluar` | sign out | signed in |
//! | `GET /console/bahasa?lang=en&next=…` | choose the language (a cookie), back to `next` | anyone |
//! | `GET /console/ditolak` | refused records (dead letters), filtered; `POST` replays or discards one or many ([`dead_letters`]) | operator |
//! | `GET /console/catatan?status=&cursor=` | the facility's own records: what needs correcting and why, counts by status, its records paged ([`records`]) | facility |
//! | `GET /console/catatan/{receipt}` | one record's history: revisions, attempts, SATUSEHAT ids, events ([`record`]) | operator; a facility for its own |
//! | `GET`, `POST /console/fasilitas` | facilities, their keys and webhooks; create, add a key, revoke ([`facilities`]) | operator |
//! | `GET /console/audit` | audit log search ([`audit`]) | operator |
//! | `GET /console/playground?mode=&example=` | integrators' playground: a record mapped and validated, or FHIR JSON validated, the Bundle and the OperationOutcome side by side ([`playground`]); `POST` runs it | signed in |
//! | `GET /console/assets/{file}` | the embedded CSS and script, named by content hash, cached for a year | anyone |
//!
//! Handlers are thin: they read the session ([`Ctx`]), call the services the API uses —
//! [`crate::dead_letters`], [`crate::api::explain`], [`crate::webhooks::registry`], the
//! [`crate::store::Store`] — and hand plain data to a rendering function that returns
//! [`maud::Markup`] (testable without HTTP). What a facility may see is chosen in the store
//! call (by its facility id), never in a template. A refusal is a page ([`Failure`]) that
//! says what happened and what to do, in the reader's language ([`i18n`]).

pub mod assets;
pub mod audit;
pub mod chart;
pub mod dead_letters;
pub mod facilities;
pub mod i18n;
pub mod json_view;
pub mod layout;
pub mod overview;
pub mod playground;
pub mod record;
pub mod records;
pub mod session;

use crate::api::AppState;
use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use i18n::{Key, Lang, t};
use maud::Markup;
use serde::Deserialize;
use session::{Principal, Session};
use std::sync::Arc;

/// What the console keeps beside the API's state.
#[derive(Default)]
pub struct ConsoleState {
    /// Sign-in attempts per address.
    pub sign_in: session::SignInLimiter,
    /// The forwarder's circuit breakers, read-only (None when no forwarder runs here).
    pub breakers: Option<Arc<crate::deliver::breaker::FlowControl>>,
    /// What a form did, shown once on the page it redirects to.
    pub flash: Flash,
}

/// A notice on a page.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    pub ok: bool,
    pub text: String,
    /// A secret shown once with the notice (a new API key), never put in a URL.
    pub secret: Option<String>,
}

/// The results of a form, kept for the page the form redirects to (POST-redirect-GET: a
/// reload does not post again) and taken once, per session. In this process's memory: with
/// several gateways behind a load balancer a result may show on none of them — the audit
/// log has it either way. Bounded: when full, it starts afresh.
#[derive(Default)]
pub struct Flash {
    notices: std::sync::Mutex<std::collections::HashMap<String, Vec<Notice>>>,
}

/// How many sessions' notices are kept at most.
const FLASH_CAP: usize = 1024;

impl Flash {
    pub fn put(&self, session: &Session, notices: Vec<Notice>) {
        let mut all = self.notices.lock().unwrap_or_else(|p| p.into_inner());
        if all.len() >= FLASH_CAP {
            all.clear();
        }
        all.insert(session.token_hash.clone(), notices);
    }
    pub fn take(&self, session: &Session) -> Vec<Notice> {
        self.notices
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&session.token_hash)
            .unwrap_or_default()
    }
}

/// The largest form the console accepts (a facility's name, a reason, a page of receipt ids).
const FORM_LIMIT: usize = 256 * 1024;

/// Mount the console under `/console`, beside the API.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/console")
            .app_data(
                web::FormConfig::default()
                    .limit(FORM_LIMIT)
                    .error_handler(|_, req| refusal_of(req, Refusal::BadForm).into()),
            )
            .app_data(
                web::QueryConfig::default().error_handler(|e, req| {
                    refusal_of(req, Refusal::BadRequest(e.to_string())).into()
                }),
            )
            .route("", web::get().to(overview::page))
            .route("/", web::get().to(|| async { see_other("/console") }))
            .route("/masuk", web::get().to(session::sign_in_form))
            .route("/masuk", web::post().to(session::sign_in))
            .route("/keluar", web::post().to(session::sign_out))
            .route("/bahasa", web::get().to(choose_language))
            .route("/ditolak", web::get().to(dead_letters::page))
            .route("/ditolak", web::post().to(dead_letters::act))
            .route("/catatan", web::get().to(records::page))
            .route("/catatan/{receipt}", web::get().to(record::page))
            .route("/fasilitas", web::get().to(facilities::page))
            .route("/fasilitas", web::post().to(facilities::act))
            .route("/audit", web::get().to(audit::page))
            .route("/playground", web::get().to(playground::page))
            .route("/playground", web::post().to(playground::run))
            .route("/assets/{file}", web::get().to(assets::serve))
            .default_service(web::to(not_found)),
    );
}

/// A request's context: its language, its path (for the language switch) and its session.
pub struct Ctx {
    pub lang: Lang,
    /// Path and query, as requested.
    pub path: String,
    pub session: Option<Session>,
}

impl Ctx {
    pub async fn new(req: &HttpRequest, state: &AppState) -> Result<Ctx, Failure> {
        let mut ctx = Ctx {
            lang: Lang::of(req),
            path: req
                .uri()
                .path_and_query()
                .map_or("/console", |p| p.as_str())
                .to_string(),
            session: None,
        };
        ctx.session = session::current(req, &state.store)
            .await
            .map_err(|e| ctx.store_failed(e))?;
        Ok(ctx)
    }

    /// The signed-in principal, or a redirect to the sign-in page.
    pub fn signed_in(&self) -> Result<&Session, Failure> {
        self.session
            .as_ref()
            .ok_or_else(|| self.fail(Refusal::SignInNeeded))
    }

    /// The signed-in operator's session; a facility is refused (403).
    pub fn operator(&self) -> Result<&Session, Failure> {
        let s = self.signed_in()?;
        match s.principal {
            Principal::Operator(_) => Ok(s),
            Principal::Facility(_) => Err(self.fail(Refusal::OperatorsOnly)),
        }
    }

    /// The signed-in facility; an operator is refused (403).
    pub fn facility(&self) -> Result<&crate::store::Facility, Failure> {
        let s = self.signed_in()?;
        match &s.principal {
            Principal::Facility(f) => Ok(f),
            Principal::Operator(_) => Err(self.fail(Refusal::FacilitiesOnly)),
        }
    }

    /// A state-changing form: signed in, from this host, carrying the session's CSRF token.
    pub fn check_form(&self, req: &HttpRequest, form: &Fields) -> Result<&Session, Failure> {
        let s = self.signed_in()?;
        let csrf = form.get("csrf").unwrap_or("");
        if !session::same_origin(req) || !session::csrf_matches(&s.csrf, csrf) {
            crate::internal_events::ConsoleFormRefused.emit();
            return Err(self.fail(Refusal::BadForm));
        }
        Ok(s)
    }

    /// The page shell of this request.
    pub fn shell(&self) -> layout::Shell<'_> {
        layout::Shell {
            lang: self.lang,
            path: &self.path,
            session: self.session.as_ref(),
        }
    }

    /// The label `key` in the request's language.
    pub fn t(&self, key: Key) -> &'static str {
        t(self.lang, key)
    }

    pub fn fail(&self, refusal: Refusal) -> Failure {
        Failure::render(&self.shell(), refusal)
    }

    /// The store failed: logged, and a page that asks to try again.
    pub fn store_failed(&self, e: impl std::fmt::Display) -> Failure {
        crate::internal_events::ConsoleStoreFailed {
            error: &e.to_string(),
        }
        .emit();
        self.fail(Refusal::StoreDown)
    }
}

/// Why a request was not served.
#[derive(Debug)]
pub enum Refusal {
    /// No live session: to the sign-in page.
    SignInNeeded,
    OperatorsOnly,
    FacilitiesOnly,
    NotFound,
    /// A form without the session's CSRF token, or from another host.
    BadForm,
    /// A request the page cannot take, with what was wrong.
    BadRequest(String),
    StoreDown,
}

/// A refusal as an answer: an HTML page (or the redirect to sign in).
#[derive(Debug)]
pub struct Failure {
    status: StatusCode,
    body: String,
    location: Option<String>,
}

impl Failure {
    fn render(shell: &layout::Shell, refusal: Refusal) -> Failure {
        let lang = shell.lang;
        let (status, title, text) = match refusal {
            Refusal::SignInNeeded => {
                return Failure {
                    status: StatusCode::SEE_OTHER,
                    body: String::new(),
                    location: Some("/console/masuk".into()),
                };
            }
            Refusal::OperatorsOnly => (
                StatusCode::FORBIDDEN,
                t(lang, Key::Forbidden),
                t(lang, Key::ForbiddenOperatorOnly).to_string(),
            ),
            Refusal::FacilitiesOnly => (
                StatusCode::FORBIDDEN,
                t(lang, Key::Forbidden),
                t(lang, Key::ForbiddenFacilityOnly).to_string(),
            ),
            Refusal::NotFound => (
                StatusCode::NOT_FOUND,
                t(lang, Key::NotFound),
                t(lang, Key::NotFoundText).to_string(),
            ),
            Refusal::BadForm => (
                StatusCode::FORBIDDEN,
                t(lang, Key::ErrorTitle),
                t(lang, Key::BadForm).to_string(),
            ),
            Refusal::BadRequest(what) => (StatusCode::BAD_REQUEST, t(lang, Key::ErrorTitle), what),
            Refusal::StoreDown => (
                StatusCode::SERVICE_UNAVAILABLE,
                t(lang, Key::ErrorTitle),
                t(lang, Key::StoreDown).to_string(),
            ),
        };
        Failure {
            status,
            body: layout::error_page(shell, status, title, &text).into_string(),
            location: None,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "console page refused: {}", self.status)
    }
}

impl ResponseError for Failure {
    fn status_code(&self) -> StatusCode {
        self.status
    }
    fn error_response(&self) -> HttpResponse {
        match &self.location {
            Some(to) => see_other(to),
            None => page_response(self.status, self.body.clone()),
        }
    }
}

/// A refusal rendered without a session (for extractor errors, before a handler runs).
fn refusal_of(req: &HttpRequest, refusal: Refusal) -> Failure {
    let path = req.path().to_string();
    Failure::render(
        &layout::Shell {
            lang: Lang::of(req),
            path: &path,
            session: None,
        },
        refusal,
    )
}

/// A form's fields in order, a name possibly repeated (checkboxes).
#[derive(Debug, Default, Deserialize)]
#[serde(transparent)]
pub struct Fields(pub Vec<(String, String)>);

impl Fields {
    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    /// Every value of `name`.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// Security headers of every console page: nothing from elsewhere may run or be framed, and
/// pages (which show records) are not cached.
const CSP: &str = "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; \
                   form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

fn page_response(status: StatusCode, body: String) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::CONTENT_SECURITY_POLICY, CSP))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::REFERRER_POLICY, "same-origin"))
        .body(body)
}

/// A rendered page as an answer.
pub fn html(status: StatusCode, markup: Markup) -> HttpResponse {
    page_response(status, markup.into_string())
}

/// 303 See Other: after a form, the page to show its result (POST-redirect-GET).
pub fn see_other(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, to))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

/// A console path given as a place to go back to: only this console's own pages, so the
/// parameter cannot send anyone elsewhere.
pub fn local_path(next: Option<&str>) -> &str {
    match next {
        Some(p)
            if p.starts_with("/console")
                && !p.starts_with("//")
                && !p.contains(['\\', '\r', '\n'])
                && !p.starts_with("/console/keluar") =>
        {
            p
        }
        _ => "/console",
    }
}

#[derive(Deserialize)]
pub struct LanguageChoice {
    lang: String,
    next: Option<String>,
}

/// `GET /console/bahasa?lang=en&next=/console/ditolak`: keep the language in a cookie and go
/// back to the page.
async fn choose_language(
    req: HttpRequest,
    query: web::Query<LanguageChoice>,
) -> Result<HttpResponse, Failure> {
    let lang = Lang::parse(&query.lang).unwrap_or(Lang::Id);
    let mut resp = see_other(local_path(query.next.as_deref()));
    let cookie = format!(
        "{}={}; Path=/console; SameSite=Strict; Max-Age=31536000{}",
        i18n::LANG_COOKIE,
        lang.code(),
        if session::is_https(&req) {
            "; Secure"
        } else {
            ""
        }
    );
    if let Ok(v) = header::HeaderValue::from_str(&cookie) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(resp)
}

async fn not_found(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, Failure> {
    let ctx = Ctx::new(&req, &state).await?;
    Err(ctx.fail(Refusal::NotFound))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_console_paths_are_places_to_go_back_to() {
        assert_eq!(
            local_path(Some("/console/ditolak?x=1")),
            "/console/ditolak?x=1"
        );
        assert_eq!(local_path(Some("https://evil.example/")), "/console");
        assert_eq!(local_path(Some("//evil.example/console")), "/console");
        assert_eq!(local_path(Some("/consolex\r\nSet-Cookie: a")), "/console");
        assert_eq!(local_path(None), "/console");
    }
}
