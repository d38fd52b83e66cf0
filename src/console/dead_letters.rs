//! Refused records (`/console/ditolak`): the dead letters, filtered by organization,
//! facility and record type, each with SATUSEHAT's errors explained — its text, its rule
//! number, the element (FHIRPath) and the field of the facility's record that produced it,
//! exactly as [`crate::api::explain`] finds them for the API. One form replays or discards
//! the ticked ones (a discard needs a reason) through [`crate::dead_letters`], the service
//! behind `/admin/dead-letters` and `gerbang dead-letters`; the result shows on the page the
//! form redirects to.

use super::i18n::{Key, Lang, t, wib};
use super::layout::{self, Nav, Shell};
use super::{Ctx, Failure, Fields, Notice, Refusal};
use crate::api::AppState;
use crate::api::explain::{Explanation, explanations};
use crate::dead_letters::DeadLetterError;
use crate::store::{Receipt, ReceiptFilter};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use maud::{Markup, html};
use serde::Deserialize;

/// At most this many refused records on one page (the filters narrow it down).
const PAGE_LIMIT: usize = 200;

/// The filters of the list, from its query (empty values mean "any").
#[derive(Debug, Default, Deserialize)]
pub struct Filter {
    #[serde(default)]
    pub organization_id: String,
    #[serde(default)]
    pub facility_id: String,
    #[serde(default)]
    pub record_type: String,
}

impl Filter {
    fn receipt_filter(&self) -> ReceiptFilter {
        let some = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_string());
        ReceiptFilter {
            organization_id: some(&self.organization_id),
            facility_id: some(&self.facility_id),
            record_type: some(&self.record_type),
            ..Default::default()
        }
    }

    /// This filter as a query string (`?organization_id=…`), to come back to it.
    pub fn query(&self) -> String {
        layout::query(&[
            ("organization_id", self.organization_id.trim()),
            ("facility_id", self.facility_id.trim()),
            ("record_type", self.record_type.trim()),
        ])
    }
}

/// A refused record and its explained errors.
pub struct Refused {
    pub receipt: Receipt,
    pub errors: Vec<Explanation>,
}

/// Refused receipts with their errors explained ([`explanations`]: the same as the API's).
pub async fn explain(
    ctx: &Ctx,
    state: &AppState,
    found: Vec<Receipt>,
) -> Result<Vec<Refused>, Failure> {
    let mut refused = Vec::with_capacity(found.len());
    for receipt in found {
        let errors = explanations(state, &receipt)
            .await
            .map_err(|e| ctx.store_failed(format!("{e:?}")))?
            .unwrap_or_default();
        refused.push(Refused { receipt, errors });
    }
    Ok(refused)
}

/// What the filter form offers.
pub struct Choices {
    pub facilities: Vec<(String, String)>,
    pub record_types: Vec<String>,
}

/// `GET /console/ditolak`.
pub async fn page(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<Filter>,
) -> Result<HttpResponse, Failure> {
    let ctx = Ctx::new(&req, &state).await?;
    let session = ctx.operator()?;
    let found = crate::api::admin::dead_letters(&state)
        .list(&query.receipt_filter(), PAGE_LIMIT)
        .await
        .map_err(|e| ctx.store_failed(e))?;
    let refused = explain(&ctx, &state, found).await?;
    let facilities = state
        .store
        .facilities()
        .await
        .map_err(|e| ctx.store_failed(e))?
        .into_iter()
        .map(|f| (f.id, f.name))
        .collect();
    let mut record_types: Vec<String> = state
        .mappings
        .record_types()
        .map(|r| r.meta.record_type.clone())
        .collect();
    record_types.push(crate::fhir_in::RECORD_TYPE.to_string());
    let notices = state.console.flash.take(session);
    Ok(super::html(
        StatusCode::OK,
        render(
            &ctx.shell(),
            &query,
            &Choices {
                facilities,
                record_types,
            },
            &refused,
            &notices,
        ),
    ))
}

/// `POST /console/ditolak`: replay or discard the ticked receipts, then back to the list.
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
    let back = format!(
        "/console/ditolak{}",
        Filter {
            organization_id: form.get("organization_id").unwrap_or("").into(),
            facility_id: form.get("facility_id").unwrap_or("").into(),
            record_type: form.get("record_type").unwrap_or("").into(),
        }
        .query()
    );
    let ids = form.all("receipt");
    if ids.is_empty() {
        return Err(ctx.fail(Refusal::BadRequest(t(lang, Key::NothingTicked).into())));
    }
    let service = crate::api::admin::dead_letters(&state);
    let mut done = 0usize;
    let mut notices = Vec::new();
    match form.get("action") {
        Some("replay") => {
            for id in &ids {
                match service.replay(id, &actor).await {
                    Ok(_) => done += 1,
                    Err(DeadLetterError::Store(e)) => return Err(ctx.store_failed(e)),
                    Err(e) => notices.push(failed(id, &e)),
                }
            }
            if done > 0 {
                state.wake.notify_one();
                notices.insert(0, ok(format!("{done} {}", t(lang, Key::ReplayedCount))));
            }
        }
        Some("discard") => {
            let reason = form.get("reason").unwrap_or("").trim();
            if reason.is_empty() {
                return Err(ctx.fail(Refusal::BadRequest(t(lang, Key::ReasonRequired).into())));
            }
            for id in &ids {
                match service.discard(id, reason, &actor).await {
                    Ok(_) => done += 1,
                    Err(DeadLetterError::Store(e)) => return Err(ctx.store_failed(e)),
                    Err(e) => notices.push(failed(id, &e)),
                }
            }
            if done > 0 {
                notices.insert(0, ok(format!("{done} {}", t(lang, Key::DiscardedCount))));
            }
        }
        _ => return Err(ctx.fail(Refusal::BadRequest(t(lang, Key::UnknownAction).into()))),
    }
    state.console.flash.put(session, notices);
    Ok(super::see_other(&back))
}

fn ok(text: String) -> Notice {
    Notice {
        ok: true,
        text,
        secret: None,
    }
}

/// Why one receipt could not be replayed or discarded, as the service says it (its texts
/// say what to do), with the first issues when the current mappings still refuse it.
fn failed(id: &str, e: &DeadLetterError) -> Notice {
    let mut text = format!("{id}: {e}");
    if let DeadLetterError::StillInvalid(outcome) = e {
        for issue in outcome.issues.iter().filter(|i| i.is_error()).take(3) {
            text.push_str(" — ");
            text.push_str(&issue.text);
        }
    }
    Notice {
        ok: false,
        text,
        secret: None,
    }
}

/// SATUSEHAT's text without the rule number it carries at its end (shown on its own).
pub fn plain_text(text: &str) -> &str {
    match text.rfind("(RuleNumber:") {
        Some(at) if text.trim_end().ends_with(')') => text[..at].trim_end(),
        _ => text,
    }
}

/// One error, explained: rule, text, element, the record's field.
pub fn explanation(lang: Lang, e: &Explanation) -> Markup {
    html! {
        div.issue data-testid="issue" {
            @if let Some(rule) = e.rule {
                span.rule data-testid="rule" { (t(lang, Key::Rule)) " " (rule) }
                " · "
            }
            span data-testid="issue-text" { (plain_text(&e.text)) }
            @if let Some(expr) = &e.expression {
                br;
                span.small.muted { (t(lang, Key::Element)) ": " }
                code data-testid="expression" { (expr) }
            }
            @if !e.record_fields.is_empty() {
                br;
                span.small.muted { (t(lang, Key::RecordField)) ": " }
                @for (i, f) in e.record_fields.iter().enumerate() {
                    @if i > 0 { ", " }
                    code data-testid="record-field" { (f) }
                }
            }
        }
    }
}

/// Why a record was refused: each of SATUSEHAT's errors explained, or the last error when
/// SATUSEHAT's answer named none. Operators see it on this page, facilities on their own
/// (`/console/catatan`).
pub fn why_refused(lang: Lang, r: &Refused) -> Markup {
    html! {
        @if r.errors.is_empty() {
            span.muted { (r.receipt.last_error.as_deref().unwrap_or("—")) }
        }
        @for e in &r.errors {
            (explanation(lang, e))
        }
    }
}

/// The page: the filters, the list, one form for the actions.
pub fn render(
    shell: &Shell,
    filter: &Filter,
    choices: &Choices,
    refused: &[Refused],
    notices: &[Notice],
) -> Markup {
    let lang = shell.lang;
    let body = html! {
        h1 { (t(lang, Key::RefusedTitle)) }
        (layout::notices(notices))
        p.muted { (t(lang, Key::RefusedHelp)) }
        form.card.filters #filter-form method="get" action="/console/ditolak" {
            div {
                label for="f-org" { (t(lang, Key::Organization)) }
                input #f-org type="text" name="organization_id" value=(filter.organization_id) inputmode="numeric";
            }
            div {
                label for="f-facility" { (t(lang, Key::FacilityField)) }
                select #f-facility name="facility_id" {
                    option value="" { (t(lang, Key::Any)) }
                    @for (id, name) in &choices.facilities {
                        option value=(id) selected[*id == filter.facility_id] { (name) " (" (id) ")" }
                    }
                }
            }
            div {
                label for="f-type" { (t(lang, Key::RecordType)) }
                select #f-type name="record_type" {
                    option value="" { (t(lang, Key::Any)) }
                    @for rt in &choices.record_types {
                        option value=(rt) selected[*rt == filter.record_type] { (rt) }
                    }
                }
            }
            div { button #filter-submit.button type="submit" { (t(lang, Key::Filter)) } }
        }
        @if refused.is_empty() {
            p.card data-testid="no-refused" { (t(lang, Key::NoRefused)) }
        } @else {
            form #dead-letter-form method="post" action="/console/ditolak" {
                @if let Some(s) = shell.session { (layout::csrf_field(s)) }
                input type="hidden" name="organization_id" value=(filter.organization_id);
                input type="hidden" name="facility_id" value=(filter.facility_id);
                input type="hidden" name="record_type" value=(filter.record_type);
                p.small.muted { (refused.len()) " " (t(lang, Key::RefusedCount)) }
                div.table-wrap {
                    table #dead-letter-table {
                        thead {
                            tr {
                                th {
                                    input #select-all type="checkbox" data-select-all="receipt"
                                        aria-label=(t(lang, Key::SelectAll));
                                }
                                th { (t(lang, Key::Record)) }
                                th { (t(lang, Key::WhyRefused)) }
                            }
                        }
                        tbody {
                            @for r in refused {
                                @let id = &r.receipt.id;
                                tr data-testid="dead-letter-row" data-receipt=(id) {
                                    td {
                                        input type="checkbox" name="receipt" value=(id)
                                            id={ "select-" (id) } data-testid={ "select-" (id) }
                                            aria-label=(r.receipt.local_id);
                                    }
                                    td {
                                        a href={ "/console/catatan/" (id) } data-testid="record-link" {
                                            strong.mono { (r.receipt.local_id) }
                                        }
                                        br;
                                        span.small { (r.receipt.record_type) " · " (r.receipt.facility_id) }
                                        br;
                                        span.small.muted { (t(lang, Key::Organization)) " " (r.receipt.organization_id) }
                                        br;
                                        span.small.muted { (wib(r.receipt.updated_at)) }
                                    }
                                    td { (why_refused(lang, r)) }
                                }
                            }
                        }
                    }
                }
                section.card.actions {
                    div {
                        button #replay-button.button.primary type="submit" name="action" value="replay"
                            data-testid="replay-button" {
                            (t(lang, Key::Replay))
                        }
                        p.small.muted { (t(lang, Key::ReplayHelp)) }
                    }
                    div {
                        label for="discard-reason" { (t(lang, Key::Reason)) }
                        textarea #discard-reason name="reason" rows="2" {}
                        button #discard-button.button.danger type="submit" name="action" value="discard"
                            data-testid="discard-button" data-confirm=(t(lang, Key::DiscardConfirm)) {
                            (t(lang, Key::Discard))
                        }
                    }
                }
            }
        }
    };
    layout::page(shell, t(lang, Key::RefusedTitle), Some(Nav::Refused), body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule_number_is_shown_once() {
        assert_eq!(
            plain_text("Code not found (RuleNumber: 10103)"),
            "Code not found"
        );
        assert_eq!(plain_text("no rule here"), "no rule here");
    }

    #[test]
    fn an_explanation_names_rule_element_and_field() {
        let html = explanation(
            Lang::En,
            &Explanation {
                text: "Code not found <x> (RuleNumber: 10103)".into(),
                rule: Some(10103),
                expression: Some("Bundle.entry[3].resource.code".into()),
                record_fields: vec!["/pengukuran/lingkar_kepala".into()],
            },
        )
        .into_string();
        assert!(
            html.contains(r#"<span class="rule" data-testid="rule">Rule 10103</span>"#),
            "{html}"
        );
        assert!(html.contains("Code not found &lt;x&gt;"));
        assert!(html.contains("Bundle.entry[3].resource.code"));
        assert!(html.contains("/pengukuran/lingkar_kepala"));
    }

    #[test]
    fn filters_come_back_as_a_query() {
        let f = Filter {
            organization_id: "100".into(),
            facility_id: String::new(),
            record_type: "posyandu.balita".into(),
        };
        assert_eq!(
            f.query(),
            "?organization_id=100&record_type=posyandu.balita"
        );
        assert_eq!(f.receipt_filter().facility_id, None);
    }
}
