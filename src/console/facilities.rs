//! Facilities, their keys and their webhooks (`/console/fasilitas`): every facility with its
//! SATUSEHAT organization and location, its API keys (by fingerprint — the store holds only
//! hashes), and where its webhook's delivery stands. Operators create a facility, give one
//! another key, or revoke a key. A new key is shown once, on the page the form redirects to
//! (kept server-side for that one view), never in a URL; gerbang keeps only its hash, as
//! `gerbang facility add` does. Every change is audited.

use super::i18n::{Key, Lang, t};
use super::layout::{self, Nav, Shell};
use super::{Ctx, Failure, Fields, Notice, Refusal};
use crate::api::AppState;
use crate::store::{ApiKeyInfo, AuditEvent, Facility, Webhook, sha256_hex};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use maud::{Markup, html};

/// A facility with its keys and webhook.
pub struct FacilityRow {
    pub facility: Facility,
    pub keys: Vec<ApiKeyInfo>,
    pub webhook: Option<Webhook>,
}

/// `GET /console/fasilitas`.
pub async fn page(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, Failure> {
    let ctx = Ctx::new(&req, &state).await?;
    let session = ctx.operator()?;
    let store_failed = |e| ctx.store_failed(e);
    let facilities = state.store.facilities().await.map_err(store_failed)?;
    let keys = state.store.facility_keys().await.map_err(store_failed)?;
    let webhooks = state.store.webhooks().await.map_err(store_failed)?;
    let rows: Vec<FacilityRow> = facilities
        .into_iter()
        .map(|f| FacilityRow {
            keys: keys
                .iter()
                .filter(|k| k.facility_id == f.id)
                .cloned()
                .collect(),
            webhook: webhooks.iter().find(|w| w.facility_id == f.id).cloned(),
            facility: f,
        })
        .collect();
    let notices = state.console.flash.take(session);
    Ok(super::html(
        StatusCode::OK,
        render(&ctx.shell(), &rows, &notices),
    ))
}

/// `POST /console/fasilitas`: `action` = `create`, `new-key` or `revoke`.
pub async fn act(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<Fields>,
) -> Result<HttpResponse, Failure> {
    let ctx = Ctx::new(&req, &state).await?;
    let session = ctx.check_form(&req, &form)?;
    ctx.operator()?;
    let lang = ctx.lang;
    let actor = session.principal.actor();
    let field = |name: &str| form.get(name).unwrap_or("").trim().to_string();
    let now = crate::time::now_millis();
    let store_failed = |e| ctx.store_failed(e);
    let bad = |key: Key| ctx.fail(Refusal::BadRequest(t(lang, key).into()));
    let notice = match form.get("action") {
        Some("create") => {
            let facility = Facility {
                id: field("id"),
                name: field("name"),
                organization_id: field("organization_id"),
                location_id: field("location_id"),
            };
            if !valid_id(&facility.id)
                || facility.name.is_empty()
                || !valid_id(&facility.organization_id)
                || !valid_id(&facility.location_id)
            {
                return Err(bad(Key::FacilityFieldsRequired));
            }
            if state
                .store
                .facility(&facility.id)
                .await
                .map_err(store_failed)?
                .is_some()
            {
                return Err(bad(Key::FacilityExists));
            }
            let key = crate::api::auth::new_api_key();
            state
                .store
                .add_facility_key(&facility, &sha256_hex(key.as_bytes()), now)
                .await
                .map_err(store_failed)?;
            audit(&state, &actor, "facility-add", &facility, now, None)
                .await
                .map_err(store_failed)?;
            Notice {
                ok: true,
                text: format!(
                    "{} {}. {}",
                    t(lang, Key::FacilityCreated),
                    facility.id,
                    t(lang, Key::KeyShownOnce)
                ),
                secret: Some(key),
            }
        }
        Some("new-key") => {
            let Some(facility) = state
                .store
                .facility(&field("facility_id"))
                .await
                .map_err(store_failed)?
            else {
                return Err(ctx.fail(Refusal::NotFound));
            };
            let key = crate::api::auth::new_api_key();
            let hash = sha256_hex(key.as_bytes());
            state
                .store
                .add_facility_key(&facility, &hash, now)
                .await
                .map_err(store_failed)?;
            audit(
                &state,
                &actor,
                "key-create",
                &facility,
                now,
                Some(fingerprint(&hash)),
            )
            .await
            .map_err(store_failed)?;
            Notice {
                ok: true,
                text: format!(
                    "{} {}. {}",
                    t(lang, Key::KeyCreated),
                    facility.id,
                    t(lang, Key::KeyShownOnce)
                ),
                secret: Some(key),
            }
        }
        Some("revoke") => {
            let hash = field("key_hash");
            let Some(facility_id) = state
                .store
                .revoke_facility_key(&hash, now)
                .await
                .map_err(store_failed)?
            else {
                return Err(bad(Key::KeyNotFound));
            };
            let facility = state
                .store
                .facility(&facility_id)
                .await
                .map_err(store_failed)?
                .ok_or_else(|| ctx.fail(Refusal::NotFound))?;
            audit(
                &state,
                &actor,
                "key-revoke",
                &facility,
                now,
                Some(fingerprint(&hash)),
            )
            .await
            .map_err(store_failed)?;
            Notice {
                ok: true,
                text: format!(
                    "{} {} ({})",
                    t(lang, Key::KeyRevoked),
                    fingerprint(&hash),
                    facility.id
                ),
                secret: None,
            }
        }
        _ => return Err(bad(Key::UnknownAction)),
    };
    state.console.flash.put(session, vec![notice]);
    Ok(super::see_other("/console/fasilitas"))
}

async fn audit(
    state: &AppState,
    actor: &str,
    action: &str,
    facility: &Facility,
    now: i64,
    key: Option<String>,
) -> crate::store::Result<()> {
    state
        .store
        .audit(AuditEvent {
            at: now,
            actor: actor.to_string(),
            action: action.into(),
            receipt_id: None,
            organization_id: Some(facility.organization_id.clone()),
            detail: Some(match key {
                Some(k) => format!("facility {} key {k}", facility.id),
                None => format!("facility {}", facility.id),
            }),
        })
        .await
}

/// An identifier typed by an operator: letters, digits, `.`, `_`, `-`; 1 to 64 of them.
fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// How a key is named on the page and in the audit log: the start of its hash.
pub fn fingerprint(key_hash: &str) -> String {
    format!("sha256:{}", &key_hash[..key_hash.len().min(12)])
}

/// The page.
pub fn render(shell: &Shell, rows: &[FacilityRow], notices: &[Notice]) -> Markup {
    let lang = shell.lang;
    let csrf = html! { @if let Some(s) = shell.session { (layout::csrf_field(s)) } };
    let body = html! {
        h1 { (t(lang, Key::FacilitiesTitle)) }
        (layout::notices(notices))
        @if rows.is_empty() {
            p.card { (t(lang, Key::NoFacilities)) }
        }
        @for row in rows {
            @let f = &row.facility;
            section.card data-testid="facility" data-facility=(f.id) {
                h2 { (f.name) " " span.small.muted.mono { (f.id) } }
                dl.facts {
                    dt { (t(lang, Key::Organization)) } dd.mono { (f.organization_id) }
                    dt { (t(lang, Key::Location)) } dd.mono { (f.location_id) }
                    dt { "Webhook" } dd data-testid="webhook" { (webhook(lang, row.webhook.as_ref())) }
                }
                h3 { (t(lang, Key::ApiKeys)) }
                div.table-wrap { table data-testid="keys" {
                    thead { tr { th { (t(lang, Key::Fingerprint)) } th { (t(lang, Key::Created)) } th { (t(lang, Key::State)) } th {} } }
                    tbody { @for k in &row.keys { tr data-testid="key" data-key=(fingerprint(&k.key_hash)) {
                        td.mono { (fingerprint(&k.key_hash)) }
                        td { (layout::time(k.created_at)) }
                        td { @match k.revoked_at {
                            Some(at) => { span.badge.status-cancelled { (t(lang, Key::Revoked)) } " " span.small.muted { (layout::time(at)) } }
                            None => { span.badge.status-delivered { (t(lang, Key::Active)) } }
                        } }
                        td { @if k.revoked_at.is_none() {
                            form.inline method="post" action="/console/fasilitas" {
                                (csrf)
                                input type="hidden" name="action" value="revoke";
                                input type="hidden" name="key_hash" value=(k.key_hash);
                                button.button.danger type="submit" data-testid="revoke-key"
                                    data-confirm=(t(lang, Key::RevokeConfirm)) { (t(lang, Key::Revoke)) }
                            }
                        } }
                    } } }
                } }
                form method="post" action="/console/fasilitas" {
                    (csrf)
                    input type="hidden" name="action" value="new-key";
                    input type="hidden" name="facility_id" value=(f.id);
                    button.button type="submit" data-testid="new-key-button" { (t(lang, Key::NewKey)) }
                }
            }
        }
        section.card {
            h2 { (t(lang, Key::CreateFacility)) }
            form #create-facility method="post" action="/console/fasilitas" {
                (csrf)
                input type="hidden" name="action" value="create";
                label for="new-facility-id" { (t(lang, Key::FacilityId)) }
                input #new-facility-id type="text" name="id" required maxlength="64" pattern="[A-Za-z0-9._\\-]+";
                label for="new-facility-name" { (t(lang, Key::FacilityName)) }
                input #new-facility-name type="text" name="name" required maxlength="200";
                label for="new-facility-org" { (t(lang, Key::OrganizationId)) }
                input #new-facility-org type="text" name="organization_id" required inputmode="numeric" maxlength="64";
                label for="new-facility-location" { (t(lang, Key::LocationId)) }
                input #new-facility-location type="text" name="location_id" required maxlength="64";
                button #create-facility-submit.button.primary type="submit" { (t(lang, Key::CreateFacility)) }
            }
        }
    };
    layout::page(
        shell,
        t(lang, Key::FacilitiesTitle),
        Some(Nav::Facilities),
        body,
    )
}

/// Where a facility's webhook stands.
fn webhook(lang: Lang, w: Option<&Webhook>) -> Markup {
    let Some(w) = w else {
        return html! { span.muted { (t(lang, Key::NoWebhookShort)) } };
    };
    let failing = w.failing_since.is_some();
    html! {
        span.mono { (w.url) }
        br;
        @if failing {
            span.badge.status-dead data-state="failing" { (t(lang, Key::WebhookFailing)) }
        } @else {
            span.badge.status-delivered data-state="ok" { (t(lang, Key::WebhookOk)) }
        }
        " " span.small { (w.backlog) " " (t(lang, Key::EventsWaiting)) }
        @if w.given_up > 0 {
            " · " span.small { (w.given_up) " " (t(lang, Key::EventsGivenUp)) }
        }
        @if let Some(at) = w.last_success_at {
            br; span.small.muted { (t(lang, Key::LastSuccess)) ": " (layout::time(at)) }
        }
        @if let Some(e) = &w.last_error {
            br; span.small.muted { (t(lang, Key::LastError)) ": "
                @if let Some(s) = w.last_status { "HTTP " (s) " — " } (e) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_identifiers_are_checked() {
        assert!(valid_id("P3273020201"));
        assert!(valid_id("pkm-x.1_a"));
        assert!(!valid_id(""));
        assert!(!valid_id("a b"));
        assert!(!valid_id("<script>"));
        assert!(!valid_id(&"x".repeat(65)));
    }

    #[test]
    fn a_failing_webhook_shows_its_backlog_and_last_error() {
        let w = Webhook {
            facility_id: "pkm".into(),
            url: "https://simpus.example/hook".into(),
            secret: "whsec_never_shown".into(),
            created_at: 0,
            updated_at: 0,
            sent_seq: 3,
            attempts: 4,
            failing_since: Some(1_000),
            next_attempt_at: 2_000,
            last_error: Some("connection refused".into()),
            last_status: Some(503),
            last_success_at: None,
            given_up: 1,
            backlog: 7,
        };
        let html = webhook(Lang::En, Some(&w)).into_string();
        assert!(html.contains(r#"data-state="failing""#), "{html}");
        assert!(html.contains("7 events waiting"));
        assert!(html.contains("1 events given up"));
        assert!(html.contains("HTTP 503 — connection refused"));
        assert!(!html.contains("whsec_"), "the secret is never shown");
        assert!(webhook(Lang::En, None).into_string().contains("none"));
    }

    #[test]
    fn a_key_is_named_by_its_hash_only() {
        let hash = sha256_hex(b"gk_secret");
        let f = fingerprint(&hash);
        assert!(f.starts_with("sha256:") && f.len() == 7 + 12);
        assert!(!f.contains("gk_"));
    }
}
