//! The facility's own records (`GET /console/catatan`, a facility session): first what needs
//! correcting — the records SATUSEHAT refused, each error explained as the operators' refused
//! records page explains it ([`super::dead_letters::why_refused`]: text, rule number,
//! element, and the field of the facility's record it came from) with what to do about it —
//! then how many records are in each status, and its records newest change first, filtered
//! by status and paged by a cursor as `GET /receipts` pages them.
//!
//! Every query names the facility ([`crate::store::Store::facility_counts`], a
//! [`ReceiptFilter`] with its id): another facility's records never reach this page. An
//! operator is refused (403) — operators have the overview and the refused records.

use super::dead_letters::{Refused, why_refused};
use super::i18n::{Key, t};
use super::layout::{self, Nav, Shell};
use super::{Ctx, Failure, Refusal};
use crate::api::AppState;
use crate::store::{Receipt, ReceiptFilter, Status};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use maud::{Markup, html};
use serde::Deserialize;

/// Records on one page of the list.
pub const PAGE_SIZE: usize = 50;
/// Refused records explained at the top of the page at most (explaining one maps its record
/// again); the rest are a click away in the list, filtered by status.
pub const CORRECTIONS_SHOWN: usize = 20;

/// The query of the page: a status (empty: any) and where the page starts.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    pub status: String,
    /// `<updated_at ms>.<receipt id>` of the last record of the page before.
    #[serde(default)]
    pub cursor: String,
}

/// A cursor as the list writes it: `<updated_at ms>.<receipt id>`.
pub fn parse_cursor(text: &str) -> Option<(i64, String)> {
    let (at, id) = text.split_once('.')?;
    let at = at.parse().ok()?;
    (!id.is_empty()).then(|| (at, id.to_string()))
}

/// Everything the page shows.
pub struct FacilityRecords {
    /// Receipts per status, every status.
    pub counts: Vec<(Status, u64)>,
    /// The status the list is filtered by.
    pub status: Option<Status>,
    /// Refused records, explained (shown on the first page only).
    pub corrections: Vec<Refused>,
    /// This page of the list.
    pub receipts: Vec<Receipt>,
    /// This page is not the first.
    pub paged: bool,
    /// The cursor of the next page, if there is one.
    pub next: Option<String>,
}

/// `GET /console/catatan`.
pub async fn page(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, Failure> {
    let ctx = Ctx::new(&req, &state).await?;
    let facility = ctx.facility()?;
    let status = match query.status.trim() {
        "" => None,
        s => Some(Status::parse(s).map_err(|_| {
            ctx.fail(Refusal::BadRequest(format!(
                "{} `{s}`",
                ctx.t(Key::UnknownStatus)
            )))
        })?),
    };
    let after = match query.cursor.trim() {
        "" => None,
        c => Some(
            parse_cursor(c)
                .ok_or_else(|| ctx.fail(Refusal::BadRequest(ctx.t(Key::BadCursor).into())))?,
        ),
    };
    let store_failed = |e| ctx.store_failed(e);
    let counts = state
        .store
        .facility_counts(&facility.id)
        .await
        .map_err(store_failed)?;
    let page = state
        .store
        .receipts_page(
            &ReceiptFilter {
                status,
                facility_id: Some(facility.id.clone()),
                ..Default::default()
            },
            after.clone(),
            PAGE_SIZE,
        )
        .await
        .map_err(store_failed)?;
    // What needs correcting, on the first page of the whole list or of the refused ones.
    let corrections = if after.is_none() && matches!(status, None | Some(Status::Dead)) {
        let refused = state
            .store
            .list_receipts(
                &ReceiptFilter {
                    status: Some(Status::Dead),
                    facility_id: Some(facility.id.clone()),
                    ..Default::default()
                },
                CORRECTIONS_SHOWN,
            )
            .await
            .map_err(store_failed)?;
        super::dead_letters::explain(&ctx, &state, refused).await?
    } else {
        Vec::new()
    };
    let data = FacilityRecords {
        counts,
        status,
        corrections,
        receipts: page.receipts,
        paged: after.is_some(),
        next: page.next.map(|(at, id)| format!("{at}.{id}")),
    };
    Ok(super::html(StatusCode::OK, render(&ctx.shell(), &data)))
}

/// The page.
pub fn render(shell: &Shell, data: &FacilityRecords) -> Markup {
    let lang = shell.lang;
    let total: u64 = data.counts.iter().map(|(_, n)| n).sum();
    let refused = data
        .counts
        .iter()
        .find(|(s, _)| *s == Status::Dead)
        .map_or(0, |(_, n)| *n);
    let status_query = data.status.map_or("", Status::as_str);
    let body = html! {
        h1 { (t(lang, Key::RecordsTitle)) }
        @if !data.corrections.is_empty() {
            section.card data-testid="needs-correction" {
                h2 { (t(lang, Key::NeedsCorrection)) " (" (refused) ")" }
                p { (t(lang, Key::NeedsCorrectionHelp)) }
                p.alert.alert-warn data-testid="correction-how" { (t(lang, Key::CorrectHow)) }
                @for r in &data.corrections {
                    @let id = &r.receipt.id;
                    div.correction data-testid="correction" data-receipt=(id) {
                        p {
                            a href={ "/console/catatan/" (id) } data-testid="record-link" {
                                strong.mono { (r.receipt.local_id) }
                            }
                            " · " (r.receipt.record_type)
                            " · " span.small.muted { (t(lang, Key::UpdatedAt)) " " (layout::time(r.receipt.updated_at)) }
                        }
                        (why_refused(lang, r))
                    }
                }
                @if refused > data.corrections.len() as u64 {
                    p { a href="/console/catatan?status=dead" data-testid="all-refused" {
                        (t(lang, Key::AllRefused)) " (" (refused) ")"
                    } }
                }
            }
        } @else if refused == 0 && !data.paged {
            p.card.alert-ok data-testid="nothing-to-correct" { (t(lang, Key::NothingToCorrect)) }
        }
        section.card {
            h2 { (t(lang, Key::RecordsByStatus)) }
            nav.status-filter aria-label=(t(lang, Key::RecordsByStatus)) {
                ul {
                    li { a href="/console/catatan" data-testid="records-status-all"
                        aria-current=[data.status.is_none().then_some("page")] {
                        (t(lang, Key::AllStatuses)) " " span.count { (total) }
                    } }
                    @for (s, n) in &data.counts {
                        li { a href={ "/console/catatan?status=" (s.as_str()) }
                            data-testid={ "records-status-" (s.as_str()) } data-count=(n)
                            class={ "status-" (s.as_str()) }
                            aria-current=[(data.status == Some(*s)).then_some("page")] {
                            (layout::status_label(lang, *s)) " " span.count { (n) }
                        } }
                    }
                }
            }
            @if data.receipts.is_empty() {
                p.muted data-testid="no-records" {
                    @if total == 0 { (t(lang, Key::NoReceipts)) } @else { (t(lang, Key::NoRecordsHere)) }
                }
            } @else {
                div.table-wrap {
                    table data-testid="records-table" {
                        thead { tr {
                            th { (t(lang, Key::Status)) }
                            th { (t(lang, Key::LocalId)) }
                            th { (t(lang, Key::RecordType)) }
                            th.num { (t(lang, Key::Revision)) }
                            th { (t(lang, Key::ReceivedAt)) }
                            th { (t(lang, Key::UpdatedAt)) }
                        } }
                        tbody {
                            @for r in &data.receipts {
                                tr data-testid="record-row" data-receipt=(r.id) {
                                    td { (layout::status_badge(lang, r.status)) }
                                    td { a href={ "/console/catatan/" (r.id) } data-testid="record-link" {
                                        span.mono { (r.local_id) }
                                    } }
                                    td { (r.record_type) }
                                    td.num { (r.revision) }
                                    td { (layout::time(r.created_at)) }
                                    td { (layout::time(r.updated_at)) }
                                }
                            }
                        }
                    }
                }
            }
            p.pager {
                @if data.paged {
                    a.button href={ "/console/catatan" (layout::query(&[("status", status_query)])) }
                        data-testid="records-first" { (t(lang, Key::FirstPage)) }
                    " "
                }
                @if let Some(next) = &data.next {
                    a.button href={ "/console/catatan" (layout::query(&[("status", status_query), ("cursor", next)])) }
                        data-testid="records-next" { (t(lang, Key::NextPage)) }
                }
            }
        }
    };
    layout::page(shell, t(lang, Key::RecordsTitle), Some(Nav::Records), body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::explain::Explanation;
    use crate::console::i18n::Lang;
    use crate::console::session::{Principal, Session};
    use crate::store::Facility;

    fn receipt(id: &str, status: Status) -> Receipt {
        Receipt {
            id: id.into(),
            facility_id: "pkm".into(),
            organization_id: "100".into(),
            record_type: "posyandu.balita".into(),
            local_id: format!("LOCAL-{id}"),
            status,
            attempts: 1,
            created_at: 1_778_549_400_000,
            updated_at: 1_778_549_400_000,
            next_attempt_at: None,
            last_error: None,
            delivered_at: None,
            server_ids: None,
            upstream_outcome: None,
            discard_reason: None,
            format: None,
            pruned: false,
            revision: 1,
            sending_revision: None,
            delivered_revision: None,
            cancel_reason: None,
            cancel_requested_at: None,
            cancelled_at: None,
        }
    }

    fn session() -> Session {
        Session {
            token_hash: "h".into(),
            principal: Principal::Facility(Facility {
                id: "pkm".into(),
                name: "Puskesmas".into(),
                organization_id: "100".into(),
                location_id: "l".into(),
            }),
            csrf: "c".into(),
        }
    }

    fn counts(dead: u64, delivered: u64) -> Vec<(Status, u64)> {
        Status::ALL
            .iter()
            .map(|s| {
                let n = match s {
                    Status::Dead => dead,
                    Status::Delivered => delivered,
                    _ => 0,
                };
                (*s, n)
            })
            .collect()
    }

    #[test]
    fn refused_records_come_first_with_their_fields_and_what_to_do() {
        let s = session();
        let shell = Shell {
            lang: Lang::En,
            path: "/console/catatan",
            session: Some(&s),
        };
        let html = render(
            &shell,
            &FacilityRecords {
                counts: counts(1, 1),
                status: None,
                corrections: vec![Refused {
                    receipt: receipt("r-dead", Status::Dead),
                    errors: vec![Explanation {
                        text: "Code not found (RuleNumber: 10103)".into(),
                        rule: Some(10103),
                        expression: Some("Bundle.entry[3].resource.code".into()),
                        record_fields: vec!["/pengukuran/lingkar_kepala".into()],
                    }],
                }],
                receipts: vec![
                    receipt("r-dead", Status::Dead),
                    receipt("r-ok", Status::Delivered),
                ],
                paged: false,
                next: Some("1778549400000.r-ok".into()),
            },
        )
        .into_string();
        let needs = html.find(r#"data-testid="needs-correction""#).unwrap();
        let table = html.find(r#"data-testid="records-table""#).unwrap();
        assert!(needs < table, "what needs correcting comes first");
        assert!(html.contains("Rule 10103"));
        assert!(html.contains("/pengukuran/lingkar_kepala"));
        assert!(html.contains("same local id"), "what to do: {html}");
        assert!(html.contains(r#"data-testid="records-status-dead" data-count="1""#));
        assert!(html.contains(r#"data-receipt="r-ok""#));
        assert!(html.contains("2026-05-12 08:30:00 WIB"));
        assert!(html.contains("?cursor=1778549400000.r-ok"), "{html}");
        assert!(!html.contains(r#"data-testid="records-first""#));
    }

    #[test]
    fn nothing_to_correct_is_said_plainly() {
        let s = session();
        let shell = Shell {
            lang: Lang::Id,
            path: "/console/catatan",
            session: Some(&s),
        };
        let html = render(
            &shell,
            &FacilityRecords {
                counts: counts(0, 0),
                status: Some(Status::Delivered),
                corrections: Vec::new(),
                receipts: Vec::new(),
                paged: false,
                next: None,
            },
        )
        .into_string();
        assert!(html.contains(r#"data-testid="nothing-to-correct""#));
        assert!(!html.contains(r#"data-testid="needs-correction""#));
        assert!(html.contains(r#"data-testid="no-records""#));
        assert!(
            html.contains(r#"data-testid="records-status-delivered" data-count="0" class="status-delivered" aria-current="page""#),
            "{html}"
        );
    }

    #[test]
    fn cursors_are_read_as_written() {
        assert_eq!(parse_cursor("12.abc"), Some((12, "abc".into())));
        assert_eq!(parse_cursor("12."), None);
        assert_eq!(parse_cursor("x.abc"), None);
        assert_eq!(parse_cursor("12"), None);
    }
}
