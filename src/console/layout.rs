//! The page shell every console page shares: the header with the navigation of the signed-in
//! principal (operators and facilities see different entries), the language switch and the
//! sign-out form; the main content; the error page; and small pieces several pages use
//! (status badges, the hidden CSRF field, times, URL-encoding for links).

use super::assets::{self, Asset};
use super::i18n::{Key, Lang, t, wib};
use super::session::{Principal, Session};
use crate::store::Status;
use actix_web::http::StatusCode;
use maud::{DOCTYPE, Markup, html};

/// What the shell needs to know about the request.
pub struct Shell<'a> {
    pub lang: Lang,
    /// Path and query of the request (the language switch comes back to it).
    pub path: &'a str,
    pub session: Option<&'a Session>,
}

/// The entries of the navigation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Overview,
    Refused,
    Facilities,
    Audit,
    Records,
    Playground,
}

impl Nav {
    fn href(self) -> &'static str {
        match self {
            Nav::Overview => "/console",
            Nav::Refused => "/console/ditolak",
            Nav::Facilities => "/console/fasilitas",
            Nav::Audit => "/console/audit",
            Nav::Records => "/console/catatan",
            Nav::Playground => "/console/playground",
        }
    }
    fn label(self) -> Key {
        match self {
            Nav::Overview => Key::NavOverview,
            Nav::Refused => Key::NavRefused,
            Nav::Facilities => Key::NavFacilities,
            Nav::Audit => Key::NavAudit,
            Nav::Records => Key::NavRecords,
            Nav::Playground => Key::NavPlayground,
        }
    }
    fn testid(self) -> &'static str {
        match self {
            Nav::Overview => "nav-overview",
            Nav::Refused => "nav-refused",
            Nav::Facilities => "nav-facilities",
            Nav::Audit => "nav-audit",
            Nav::Records => "nav-records",
            Nav::Playground => "nav-playground",
        }
    }
}

/// The navigation of a principal.
pub fn nav_for(principal: &Principal) -> &'static [Nav] {
    match principal {
        Principal::Operator(_) => &[
            Nav::Overview,
            Nav::Refused,
            Nav::Facilities,
            Nav::Audit,
            Nav::Playground,
        ],
        Principal::Facility(_) => &[Nav::Records, Nav::Playground],
    }
}

/// A whole page: `title`, the navigation with `active` marked, and `body`.
pub fn page(shell: &Shell, title: &str, active: Option<Nav>, body: Markup) -> Markup {
    let lang = shell.lang;
    html! {
        (DOCTYPE)
        html lang=(lang.code()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="same-origin";
                title { (title) " — " (t(lang, Key::AppName)) }
                link rel="stylesheet" href=(assets::url(Asset::Style));
                script src=(assets::url(Asset::Script)) defer {}
            }
            body {
                a.skip href="#main" { (t(lang, Key::SkipToContent)) }
                header.top {
                    a.brand href=(shell.session.map_or("/console/masuk", |s| super::session::home(&s.principal))) {
                        "gerbang"
                    }
                    @if let Some(s) = shell.session {
                        nav aria-label=(t(lang, Key::AppName)) {
                            ul {
                                @for n in nav_for(&s.principal) {
                                    li {
                                        a href=(n.href()) data-testid=(n.testid())
                                            aria-current=[(Some(*n) == active).then_some("page")] {
                                            (t(lang, n.label()))
                                        }
                                    }
                                }
                            }
                        }
                    }
                    div.tools {
                        (language_switch(shell))
                        @if let Some(s) = shell.session {
                            span.who data-testid="signed-in-as" {
                                (t(lang, Key::SignedInAs)) " "
                                @match &s.principal {
                                    Principal::Operator(name) => { (t(lang, Key::Operator)) " " strong { (name) } }
                                    Principal::Facility(f) => { (t(lang, Key::Facility)) " " strong { (f.name) } }
                                }
                            }
                            form.inline method="post" action="/console/keluar" {
                                (csrf_field(s))
                                button #sign-out.button.link type="submit" { (t(lang, Key::SignOut)) }
                            }
                        }
                    }
                }
                main #main {
                    (body)
                }
            }
        }
    }
}

/// Links to the other language, back to the same page.
fn language_switch(shell: &Shell) -> Markup {
    let next = url_encode(shell.path);
    html! {
        span.lang aria-label=(t(shell.lang, Key::Language)) {
            @for (l, name) in [(Lang::Id, "ID"), (Lang::En, "EN")] {
                @if l == shell.lang {
                    strong aria-current="true" { (name) }
                } @else {
                    a href={ "/console/bahasa?lang=" (l.code()) "&next=" (next) }
                        data-testid={ "lang-" (l.code()) } hreflang=(l.code()) { (name) }
                }
            }
        }
    }
}

/// The page of a refusal: what happened, and the way back.
pub fn error_page(shell: &Shell, status: StatusCode, title: &str, text: &str) -> Markup {
    let home = shell
        .session
        .map_or("/console/masuk", |s| super::session::home(&s.principal));
    page(
        shell,
        title,
        None,
        html! {
            section.card.narrow data-testid="error" data-status=(status.as_u16()) {
                h1 { (title) }
                p { (text) }
                p { a.button href=(home) { (t(shell.lang, Key::BackHome)) } }
            }
        },
    )
}

/// What the last form did (see [`super::Flash`]).
pub fn notices(notices: &[super::Notice]) -> Markup {
    html! {
        @for n in notices {
            p class={ "alert " (if n.ok { "alert-ok" } else { "alert-error" }) } role="status"
                data-testid=(if n.ok { "notice-ok" } else { "notice-error" }) {
                (n.text)
            }
            @if let Some(secret) = &n.secret {
                p.key-once #new-key data-testid="new-key" { (secret) }
            }
        }
    }
}

/// The hidden field that carries the session's CSRF token in a form.
pub fn csrf_field(s: &Session) -> Markup {
    html! { input type="hidden" name="csrf" value=(s.csrf); }
}

/// A receipt's status as a coloured badge.
pub fn status_badge(lang: Lang, status: Status) -> Markup {
    html! {
        span class={ "badge status-" (status.as_str()) } data-testid="status-badge"
            data-status=(status.as_str()) {
            (status_label(lang, status))
        }
    }
}

/// A status in words.
pub fn status_label(lang: Lang, status: Status) -> &'static str {
    match (lang, status) {
        (Lang::Id, Status::Queued) => "antre",
        (Lang::Id, Status::Delivering) => "sedang dikirim",
        (Lang::Id, Status::Retrying) => "dicoba lagi",
        (Lang::Id, Status::Delivered) => "terkirim",
        (Lang::Id, Status::Dead) => "ditolak",
        (Lang::Id, Status::Discarded) => "dibuang",
        (Lang::Id, Status::Cancelled) => "dibatalkan",
        (Lang::En, Status::Queued) => "queued",
        (Lang::En, Status::Delivering) => "delivering",
        (Lang::En, Status::Retrying) => "retrying",
        (Lang::En, Status::Delivered) => "delivered",
        (Lang::En, Status::Dead) => "refused",
        (Lang::En, Status::Discarded) => "discarded",
        (Lang::En, Status::Cancelled) => "cancelled",
    }
}

/// A time, in WIB with the zone named, in a `<time>` element carrying the UTC instant.
pub fn time(ms: i64) -> Markup {
    html! { time datetime=(crate::time::millis_to_utc(ms)) { (wib(ms)) } }
}

/// Percent-encoding for a value put into a link's query (everything but unreserved
/// characters); maud escapes HTML, not URLs.
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A query string from pairs, the empty values left out: `?a=1&b=x%20y`.
pub fn query(pairs: &[(&str, &str)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", url_encode(v)))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Facility;

    fn operator() -> Session {
        Session {
            token_hash: "h".into(),
            principal: Principal::Operator("ops <b>".into()),
            csrf: "tok\"en".into(),
        }
    }

    #[test]
    fn text_from_people_and_records_is_escaped() {
        let s = operator();
        let shell = Shell {
            lang: Lang::En,
            path: "/console?x=<script>",
            session: Some(&s),
        };
        let html = page(
            &shell,
            "<script>alert(1)</script>",
            None,
            html! { p { ("<img src=x>") } },
        )
        .into_string();
        assert!(!html.contains("<script>alert(1)"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains("&lt;img src=x&gt;"));
        assert!(html.contains("ops &lt;b&gt;"));
        assert!(html.contains(r#"value="tok&quot;en""#), "{html}");
        // The switch's link back is URL-encoded, not merely escaped.
        assert!(
            html.contains("next=%2Fconsole%3Fx%3D%3Cscript%3E"),
            "{html}"
        );
    }

    #[test]
    fn the_navigation_follows_the_principal() {
        let op = operator();
        let fac = Session {
            principal: Principal::Facility(Facility {
                id: "pkm".into(),
                name: "Puskesmas".into(),
                organization_id: "1".into(),
                location_id: "l".into(),
            }),
            ..operator()
        };
        let render = |s: &Session| {
            page(
                &Shell {
                    lang: Lang::Id,
                    path: "/console",
                    session: Some(s),
                },
                "t",
                Some(Nav::Overview),
                html! {},
            )
            .into_string()
        };
        let (o, f) = (render(&op), render(&fac));
        assert!(o.contains(r#"data-testid="nav-refused""#));
        assert!(o.contains(r#"aria-current="page""#));
        assert!(!o.contains(r#"data-testid="nav-records""#));
        assert!(f.contains(r#"data-testid="nav-records""#));
        assert!(f.contains(r#"data-testid="nav-playground""#));
        assert!(!f.contains(r#"data-testid="nav-refused""#));
        assert!(!f.contains(r#"data-testid="nav-audit""#));
        assert!(o.contains("Ringkasan"), "Indonesian by default");
    }

    #[test]
    fn queries_leave_out_empty_values_and_encode_the_rest() {
        assert_eq!(
            query(&[("a", "1"), ("b", ""), ("c", "x y&z")]),
            "?a=1&c=x%20y%26z"
        );
        assert_eq!(query(&[("a", "")]), "");
    }
}
