//! One record's whole history (`/console/catatan/{receipt}`): where it is, SATUSEHAT's
//! errors explained, its revisions and what became of each, every delivery attempt (time,
//! HTTP status, outcome), the ids SATUSEHAT gave its resources, the events sent to the
//! facility's webhook, and the record and Bundle themselves — the data of
//! `GET /admin/receipts/{id}` ([`crate::dead_letters::DeadLetters::inspect`]) with the
//! revisions and events beside it.
//!
//! Operators see any record. A facility sees only its own: the receipt is read with the
//! facility's id in the query ([`crate::store::Store::facility_receipt`]), and another
//! facility's is as absent as a missing one (404).

use super::dead_letters::explanation;
use super::i18n::{Key, Lang, t, wib};
use super::layout::{self, Nav, Shell};
use super::session::Principal;
use super::{Ctx, Failure, Refusal};
use crate::api::AppState;
use crate::api::explain::{Explanation, explanations};
use crate::dead_letters::{DeadLetterError, Inspection};
use crate::store::{Event, Revision, Status, Webhook};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use maud::{Markup, html};

/// Everything the page shows about one record.
pub struct History {
    pub inspection: Inspection,
    pub revisions: Vec<Revision>,
    pub errors: Vec<Explanation>,
    pub events: Vec<Event>,
    /// The facility's webhook, to tell which events it has acknowledged.
    pub webhook: Option<Webhook>,
}

/// `GET /console/catatan/{receipt}`.
pub async fn page(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, Failure> {
    let ctx = Ctx::new(&req, &state).await?;
    let session = ctx.signed_in()?;
    let id = path.into_inner();
    let visible = match &session.principal {
        Principal::Operator(_) => state.store.receipt(&id).await,
        Principal::Facility(f) => state.store.facility_receipt(&f.id, &id).await,
    }
    .map_err(|e| ctx.store_failed(e))?;
    if visible.is_none() {
        return Err(ctx.fail(Refusal::NotFound));
    }
    let inspection = match crate::api::admin::dead_letters(&state).inspect(&id).await {
        Ok(i) => i,
        Err(DeadLetterError::NotFound(_)) => return Err(ctx.fail(Refusal::NotFound)),
        Err(e) => return Err(ctx.store_failed(e)),
    };
    let store_failed = |e| ctx.store_failed(e);
    let revisions = state.store.revisions(&id).await.map_err(store_failed)?;
    let events = state
        .store
        .receipt_events(&id)
        .await
        .map_err(store_failed)?;
    let webhook = state
        .store
        .webhook(&inspection.receipt.facility_id)
        .await
        .map_err(store_failed)?;
    let errors = explanations(&state, &inspection.receipt)
        .await
        .map_err(|e| ctx.store_failed(format!("{e:?}")))?
        .unwrap_or_default();
    let history = History {
        inspection,
        revisions,
        errors,
        events,
        webhook,
    };
    Ok(super::html(StatusCode::OK, render(&ctx.shell(), &history)))
}

/// The page.
pub fn render(shell: &Shell, h: &History) -> Markup {
    let lang = shell.lang;
    let r = &h.inspection.receipt;
    let operator = matches!(
        shell.session.map(|s| &s.principal),
        Some(Principal::Operator(_))
    );
    let body = html! {
        h1 { (t(lang, Key::RecordTitle)) " " span.mono { (r.local_id) } }
        section.card data-testid="record-summary" data-receipt=(r.id) {
            p { (layout::status_badge(lang, r.status)) }
            dl.facts {
                dt { (t(lang, Key::Receipt)) } dd.mono { (r.id) }
                dt { (t(lang, Key::RecordType)) } dd { (r.record_type) }
                dt { (t(lang, Key::FacilityField)) } dd.mono { (r.facility_id) }
                dt { (t(lang, Key::Organization)) } dd.mono { (r.organization_id) }
                dt { (t(lang, Key::ReceivedAt)) } dd { (layout::time(r.created_at)) }
                dt { (t(lang, Key::UpdatedAt)) } dd { (layout::time(r.updated_at)) }
                dt { (t(lang, Key::Revision)) } dd { (r.revision) }
                @if let Some(d) = r.delivered_revision {
                    dt { (t(lang, Key::DeliveredRevision)) } dd { (d) }
                }
                @if let (Status::Retrying, Some(next)) = (r.status, r.next_attempt_at) {
                    dt { (t(lang, Key::NextAttempt)) } dd { (layout::time(next)) }
                }
                @if let Some(e) = &r.last_error {
                    dt { (t(lang, Key::LastError)) } dd { (e) }
                }
                @if let Some(reason) = &r.discard_reason {
                    dt { (t(lang, Key::DiscardReason)) } dd { (reason) }
                }
                @if let Some(reason) = &r.cancel_reason {
                    dt { (t(lang, Key::CancelReason)) } dd { (reason) }
                }
            }
            @if operator && r.status == Status::Dead {
                p { a.button href={ "/console/ditolak" (layout::query(&[("facility_id", r.facility_id.as_str()), ("record_type", r.record_type.as_str())])) } {
                    (t(lang, Key::ToRefusedList))
                } }
            }
        }
        @if !h.errors.is_empty() {
            section.card data-testid="record-errors" {
                h2 { (t(lang, Key::WhyRefused)) }
                @for e in &h.errors { (explanation(lang, e)) }
            }
        }
        section.card {
            h2 { (t(lang, Key::Revisions)) }
            div.table-wrap { table data-testid="revisions" {
                thead { tr {
                    th.num { (t(lang, Key::Revision)) } th { (t(lang, Key::ReceivedAt)) }
                    th { (t(lang, Key::Outcome)) } th { (t(lang, Key::OutcomeAt)) } th { (t(lang, Key::Changes)) }
                } }
                tbody { @for v in &h.revisions { tr {
                    td.num { (v.revision) }
                    td { (layout::time(v.received_at)) }
                    td { (v.outcome) @if let Some(c) = &v.closed { " (" (c) ")" } }
                    td { @if let Some(at) = v.outcome_at { (layout::time(at)) } }
                    td.small { @if let Some(c) = &v.changes { code { (c.to_string()) } } }
                } } }
            } }
        }
        section.card {
            h2 { (t(lang, Key::Attempts)) }
            @if h.inspection.attempts.is_empty() {
                p.muted { (t(lang, Key::NoAttempts)) }
            } @else {
                div.table-wrap { table data-testid="attempts" {
                    thead { tr {
                        th.num { "#" } th.num { (t(lang, Key::Revision)) } th { (t(lang, Key::StartedAt)) }
                        th.num { "HTTP" } th { (t(lang, Key::Outcome)) } th { (t(lang, Key::Detail)) }
                    } }
                    tbody { @for a in &h.inspection.attempts { tr data-testid="attempt" {
                        td.num { (a.attempt) }
                        td.num { @if let Some(v) = a.revision { (v) } }
                        td { (layout::time(a.started_at)) br; span.small.muted { ((a.finished_at - a.started_at).max(0)) " ms" } }
                        td.num data-testid="attempt-http" { @if let Some(s) = a.http_status { (s) } @else { "—" } }
                        td data-testid="attempt-result" { (a.result) }
                        td.small { (a.detail.as_deref().unwrap_or("")) }
                    } } }
                } }
            }
        }
        section.card {
            h2 { (t(lang, Key::SatusehatIds)) }
            (server_ids(lang, r.server_ids.as_ref()))
        }
        section.card {
            h2 { (t(lang, Key::EventsSent)) }
            (events(lang, &h.events, h.webhook.as_ref()))
        }
        @if let Some(p) = &h.inspection.payload {
            section.card {
                h2 { (t(lang, Key::RecordAndBundle)) }
                details {
                    summary { (t(lang, Key::TheRecord)) " (" (t(lang, Key::Revision)) " " (p.revision) ")" }
                    pre.json data-testid="raw-record" { (pretty(&p.raw)) }
                }
                details {
                    summary { "Bundle" }
                    pre.json data-testid="bundle" { (pretty(&p.bundle)) }
                }
            }
        } @else {
            p.card.muted { (t(lang, Key::PayloadPruned)) }
        }
    };
    let nav = if operator { Nav::Refused } else { Nav::Records };
    layout::page(
        shell,
        &format!("{} {}", t(lang, Key::RecordTitle), r.local_id),
        Some(nav),
        body,
    )
}

fn pretty(v: &serde_json::Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
}

/// The resources SATUSEHAT holds for the record.
fn server_ids(lang: Lang, ids: Option<&serde_json::Value>) -> Markup {
    let items = ids.and_then(|v| v.as_array()).cloned().unwrap_or_default();
    if items.is_empty() {
        return html! { p.muted { (t(lang, Key::NoServerIds)) } };
    }
    html! {
        div.table-wrap { table data-testid="server-ids" {
            thead { tr { th { (t(lang, Key::ResourceType)) } th { "id" } } }
            tbody { @for i in &items { tr {
                td { (i["resourceType"].as_str().unwrap_or("")) }
                td.mono data-testid="server-id" { (i["id"].as_str().unwrap_or("")) }
            } } }
        } }
    }
}

/// The record's events and whether the facility's webhook acknowledged each.
fn events(lang: Lang, events: &[Event], webhook: Option<&Webhook>) -> Markup {
    if events.is_empty() {
        return html! { p.muted { (t(lang, Key::NoEvents)) } };
    }
    html! {
        @if webhook.is_none() {
            p.small.muted { (t(lang, Key::NoWebhook)) }
        }
        div.table-wrap { table data-testid="events" {
            thead { tr {
                th.num { "#" } th { (t(lang, Key::Event)) } th.num { (t(lang, Key::Revision)) }
                th { (t(lang, Key::At)) } th { "Webhook" }
            } }
            tbody { @for e in events { tr data-testid="event" {
                td.num { (e.seq) }
                td.mono { (e.kind.as_str()) }
                td.num { @if let Some(v) = e.revision { (v) } }
                td { (wib(e.at)) }
                td { @match webhook {
                    None => { "—" }
                    Some(w) if w.sent_seq >= e.seq => { span.badge.status-delivered { (t(lang, Key::Acknowledged)) } }
                    Some(_) => { span.badge.status-queued { (t(lang, Key::Waiting)) } }
                } }
            } } }
        } }
    }
}
