//! Audit log search (`/console/audit`): who did what, and when — pushes, pulls, replays,
//! discards, keys, console sign-ins — filtered by actor, action and a time range given in
//! WIB, newest first. The same query as `GET /admin/audit` ([`crate::store::Store::audit_events`]).

use super::i18n::{Key, Lang, t, wib};
use super::layout::{self, Nav, Shell};
use super::{Ctx, Failure, Refusal};
use crate::api::AppState;
use crate::store::{AuditEvent, AuditFilter};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use maud::{Markup, html};
use serde::Deserialize;

/// At most this many entries on one page (narrow the filter for older ones).
const PAGE_LIMIT: usize = 200;

/// The actions gerbang writes, offered as suggestions in the filter.
const ACTIONS: &[&str] = &[
    "push",
    "correct",
    "cancel",
    "pull",
    "replay",
    "discard",
    "facility-add",
    "key-create",
    "key-revoke",
    "console-sign-in",
    "console-sign-out",
];

/// The filter, as the form sends it: times as `datetime-local` values in WIB.
#[derive(Debug, Default, Deserialize)]
pub struct Query {
    #[serde(default)]
    pub actor: String,
    #[serde(default)]
    pub action: String,
    #[serde(default)]
    pub since: String,
    #[serde(default)]
    pub until: String,
}

/// A `datetime-local` value (`2026-05-12T08:30`, seconds optional) read as WIB, in ms.
pub fn parse_wib(text: &str) -> Option<i64> {
    crate::time::parse_local(text.trim(), "WIB")
        .ok()
        .map(|t| t.timestamp_millis())
}

impl Query {
    fn filter(&self, lang: Lang) -> Result<AuditFilter, String> {
        let some = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_string());
        let time = |s: &str| -> Result<Option<i64>, String> {
            match some(s) {
                None => Ok(None),
                Some(v) => parse_wib(&v)
                    .map(Some)
                    .ok_or_else(|| format!("{} `{v}`", t(lang, Key::BadTime))),
            }
        };
        Ok(AuditFilter {
            actor: some(&self.actor),
            action: some(&self.action),
            since: time(&self.since)?,
            until: time(&self.until)?,
            ..Default::default()
        })
    }
}

/// `GET /console/audit`.
pub async fn page(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<Query>,
) -> Result<HttpResponse, Failure> {
    let ctx = Ctx::new(&req, &state).await?;
    ctx.operator()?;
    let filter = query
        .filter(ctx.lang)
        .map_err(|e| ctx.fail(Refusal::BadRequest(e)))?;
    let events = state
        .store
        .audit_events(&filter, PAGE_LIMIT)
        .await
        .map_err(|e| ctx.store_failed(e))?;
    Ok(super::html(
        StatusCode::OK,
        render(&ctx.shell(), &query, &events),
    ))
}

/// The page.
pub fn render(shell: &Shell, q: &Query, events: &[AuditEvent]) -> Markup {
    let lang = shell.lang;
    let body = html! {
        h1 { (t(lang, Key::AuditTitle)) }
        form.card.filters #audit-filter method="get" action="/console/audit" {
            div {
                label for="a-actor" { (t(lang, Key::Actor)) }
                input #a-actor type="text" name="actor" value=(q.actor) placeholder="operator:… / facility:…";
            }
            div {
                label for="a-action" { (t(lang, Key::Action)) }
                input #a-action type="text" name="action" value=(q.action) list="audit-actions";
                datalist #audit-actions { @for a in ACTIONS { option value=(a) {} } }
            }
            div {
                label for="a-since" { (t(lang, Key::Since)) " (WIB)" }
                input #a-since type="datetime-local" name="since" value=(q.since);
            }
            div {
                label for="a-until" { (t(lang, Key::Until)) " (WIB)" }
                input #a-until type="datetime-local" name="until" value=(q.until);
            }
            div { button #audit-submit.button type="submit" { (t(lang, Key::Filter)) } }
        }
        @if events.is_empty() {
            p.card data-testid="no-audit" { (t(lang, Key::NoAudit)) }
        } @else {
            p.small.muted { (events.len()) " " (t(lang, Key::AuditCount)) }
            div.table-wrap { table #audit-table data-testid="audit-table" {
                thead { tr {
                    th { (t(lang, Key::At)) } th { (t(lang, Key::Actor)) } th { (t(lang, Key::Action)) }
                    th { (t(lang, Key::Record)) } th { (t(lang, Key::Organization)) } th { (t(lang, Key::Detail)) }
                } }
                tbody { @for e in events { tr data-testid="audit-row" data-action=(e.action) {
                    td { (wib(e.at)) }
                    td.mono { (e.actor) }
                    td.mono { (e.action) }
                    td.mono { @if let Some(r) = &e.receipt_id { a href={ "/console/catatan/" (r) } { (r) } } }
                    td.mono { (e.organization_id.as_deref().unwrap_or("")) }
                    td.small { (e.detail.as_deref().unwrap_or("")) }
                } } }
            } }
        }
    };
    layout::page(shell, t(lang, Key::AuditTitle), Some(Nav::Audit), body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_in_the_filter_are_wib() {
        // 08:30 WIB is 01:30 UTC.
        assert_eq!(parse_wib("2026-05-12T08:30"), Some(1_778_549_400_000));
        assert_eq!(parse_wib("2026-05-12T08:30:00"), Some(1_778_549_400_000));
        assert_eq!(parse_wib("yesterday"), None);
        let q = Query {
            since: "2026-05-12T08:30".into(),
            until: "nonsense".into(),
            ..Default::default()
        };
        assert!(q.filter(Lang::En).unwrap_err().contains("nonsense"));
    }
}
