//! The operators' overview (`GET /console`): receipts by status and organization, each
//! organization's queue age and circuit breaker, and the last 24 hours as two charts —
//! records delivered per hour, and the median and 95th-percentile time from acceptance to
//! delivery per hour. The numbers come from the store ([`crate::store::overview`]) and the
//! forwarder's breakers; hours and percentiles are computed here ([`hourly`]), in WIB.

use super::chart::{self, Bar, Series};
use super::i18n::{Key, Lang, duration, t, wib_hour};
use super::layout::{self, Nav, Shell};
use super::session::Principal;
use super::{Ctx, Failure};
use crate::api::AppState;
use crate::deliver::breaker::{BreakerState, BreakerView};
use crate::store::{Delivery, OrganizationQueue, Status};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use maud::{Markup, html};

const HOUR: i64 = 3_600_000;
/// How many hours the charts show.
pub const HOURS: usize = 24;

/// One hour of deliveries.
#[derive(Debug, Clone, PartialEq)]
pub struct HourStat {
    /// Its start (ms).
    pub start: i64,
    pub delivered: u64,
    /// Seconds from acceptance to delivery; None without deliveries.
    pub median_s: Option<f64>,
    pub p95_s: Option<f64>,
}

/// Deliveries into `hours` clock hours ending with the hour `now` is in, oldest first.
pub fn hourly(deliveries: &[Delivery], now: i64, hours: usize) -> Vec<HourStat> {
    let end = (now.div_euclid(HOUR) + 1) * HOUR;
    let start = end - hours as i64 * HOUR;
    let mut latencies: Vec<Vec<i64>> = vec![Vec::new(); hours];
    for d in deliveries {
        if d.delivered_at < start || d.delivered_at >= end {
            continue;
        }
        let i = ((d.delivered_at - start) / HOUR) as usize;
        latencies[i].push((d.delivered_at - d.accepted_at).max(0));
    }
    latencies
        .into_iter()
        .enumerate()
        .map(|(i, mut l)| {
            l.sort_unstable();
            HourStat {
                start: start + i as i64 * HOUR,
                delivered: l.len() as u64,
                median_s: percentile(&l, 0.5).map(|ms| ms as f64 / 1000.0),
                p95_s: percentile(&l, 0.95).map(|ms| ms as f64 / 1000.0),
            }
        })
        .collect()
}

/// The nearest-rank percentile of sorted values.
fn percentile(sorted: &[i64], p: f64) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// What the overview shows.
pub struct Overview {
    pub now: i64,
    pub queues: Vec<OrganizationQueue>,
    pub hours: Vec<HourStat>,
    /// None: no forwarder in this process to ask.
    pub breakers: Option<Vec<BreakerView>>,
}

/// `GET /console`: the overview for operators; a facility goes to its records.
pub async fn page(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, Failure> {
    let ctx = Ctx::new(&req, &state).await?;
    if let Principal::Facility(_) = ctx.signed_in()?.principal {
        return Ok(super::see_other("/console/catatan"));
    }
    let now = crate::time::now_millis();
    let queues = state
        .store
        .organization_queues()
        .await
        .map_err(|e| ctx.store_failed(e))?;
    let deliveries = state
        .store
        .deliveries_since(now - HOURS as i64 * HOUR)
        .await
        .map_err(|e| ctx.store_failed(e))?;
    let breakers = state
        .console
        .breakers
        .as_ref()
        .map(|b| b.states(std::time::Instant::now()));
    let data = Overview {
        now,
        hours: hourly(&deliveries, now, HOURS),
        queues,
        breakers,
    };
    Ok(super::html(StatusCode::OK, render(&ctx.shell(), &data)))
}

/// The overview page.
pub fn render(shell: &Shell, data: &Overview) -> Markup {
    let lang = shell.lang;
    let body = html! {
        h1 { (t(lang, Key::OverviewTitle)) }
        section.card {
            h2 { (t(lang, Key::ReceiptsByOrganization)) }
            (queue_table(lang, data))
        }
        div.grid {
            section.card {
                h2 { (t(lang, Key::DeliveredPerHour)) }
                (delivered_chart(lang, &data.hours))
            }
            section.card {
                h2 { (t(lang, Key::LatencyPerHour)) }
                (latency_chart(lang, &data.hours))
                p.legend {
                    span { span.swatch.median {} (t(lang, Key::Median)) }
                    span { span.swatch.p95 {} (t(lang, Key::P95)) }
                }
            }
        }
    };
    layout::page(shell, t(lang, Key::NavOverview), Some(Nav::Overview), body)
}

fn queue_table(lang: Lang, data: &Overview) -> Markup {
    // Organizations with receipts, and any other whose breaker the forwarder knows.
    let mut orgs: Vec<&str> = data
        .queues
        .iter()
        .map(|q| q.organization_id.as_str())
        .collect();
    for b in data.breakers.iter().flatten() {
        if !orgs.contains(&b.organization_id.as_str()) {
            orgs.push(&b.organization_id);
        }
    }
    if orgs.is_empty() {
        return html! { p.muted data-testid="no-receipts" { (t(lang, Key::NoReceipts)) } };
    }
    html! {
        div.table-wrap {
            table #queue-table data-testid="queue-table" {
                thead {
                    tr {
                        th { (t(lang, Key::Organization)) }
                        @for s in Status::ALL {
                            th.num { (layout::status_label(lang, s)) }
                        }
                        th.num { (t(lang, Key::Total)) }
                        th { (t(lang, Key::QueueAge)) }
                        th { (t(lang, Key::Breaker)) }
                    }
                }
                tbody {
                    @for org in &orgs {
                        @let q = data.queues.iter().find(|q| q.organization_id == *org);
                        tr data-organization=(org) {
                            td.mono { (org) }
                            @for s in Status::ALL {
                                @let n = q.and_then(|q| q.counts.get(&s)).copied().unwrap_or(0);
                                td.num data-status=(s.as_str()) {
                                    @if n > 0 && s == Status::Dead {
                                        a href={ "/console/ditolak" (layout::query(&[("organization_id", *org)])) } { (n) }
                                    } @else {
                                        (n)
                                    }
                                }
                            }
                            td.num { (q.map_or(0, |q| q.counts.values().sum::<u64>())) }
                            td data-testid="queue-age" {
                                @match q.and_then(|q| q.oldest_waiting_since) {
                                    Some(since) => { (duration(lang, data.now - since)) }
                                    None => { span.muted { (t(lang, Key::NothingWaiting)) } }
                                }
                            }
                            td { (breaker_badge(lang, data.breakers.as_deref(), org)) }
                        }
                    }
                }
            }
        }
        p.small.muted { (t(lang, Key::QueueAge)) ": " (t(lang, Key::QueueAgeHelp)) }
    }
}

fn breaker_badge(lang: Lang, breakers: Option<&[BreakerView]>, org: &str) -> Markup {
    let Some(breakers) = breakers else {
        return html! { span.muted { "—" } };
    };
    let state = breakers
        .iter()
        .find(|b| b.organization_id == org)
        .map_or(BreakerState::Closed, |b| b.state);
    let failures = breakers
        .iter()
        .find(|b| b.organization_id == org)
        .map_or(0, |b| b.failures);
    let (class, label) = match state {
        BreakerState::Closed => ("closed", t(lang, Key::BreakerClosed)),
        BreakerState::Open { .. } => ("open", t(lang, Key::BreakerOpen)),
        BreakerState::HalfOpen => ("half-open", t(lang, Key::BreakerHalfOpen)),
    };
    html! {
        span class={ "badge breaker-" (class) } data-testid="breaker" data-state=(class) { (label) }
        @if let BreakerState::Open { remaining } = state {
            " " span.small.muted { (duration(lang, remaining.as_millis() as i64)) }
        }
        @if failures > 0 {
            " " span.small.muted { (failures) " " (t(lang, Key::FailuresInARow)) }
        }
    }
}

fn delivered_chart(lang: Lang, hours: &[HourStat]) -> Markup {
    let bars: Vec<Bar> = hours
        .iter()
        .map(|h| Bar {
            label: wib_hour(h.start),
            value: h.delivered as f64,
            title: format!(
                "{}:00 WIB — {} {}",
                wib_hour(h.start),
                h.delivered,
                t(lang, Key::DeliveredWord)
            ),
        })
        .collect();
    chart::bars(
        &bars,
        t(lang, Key::DeliveredPerHour),
        "n",
        "chart-delivered",
    )
}

fn latency_chart(lang: Lang, hours: &[HourStat]) -> Markup {
    let labels: Vec<String> = hours.iter().map(|h| wib_hour(h.start)).collect();
    chart::lines(
        &labels,
        &[
            Series {
                name: t(lang, Key::Median).into(),
                class: "median",
                points: hours.iter().map(|h| h.median_s).collect(),
            },
            Series {
                name: t(lang, Key::P95).into(),
                class: "p95",
                points: hours.iter().map(|h| h.p95_s).collect(),
            },
        ],
        t(lang, Key::LatencyPerHour),
        "s",
        "chart-latency",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(accepted: i64, delivered: i64) -> Delivery {
        Delivery {
            accepted_at: accepted,
            delivered_at: delivered,
        }
    }

    #[test]
    fn deliveries_fall_into_clock_hours_with_their_percentiles() {
        let now = 10 * HOUR + 30 * 60_000; // 10:30 UTC
        let deliveries = vec![
            d(10 * HOUR, 10 * HOUR + 1_000),
            d(10 * HOUR, 10 * HOUR + 3_000),
            d(10 * HOUR, 10 * HOUR + 2_000),
            d(9 * HOUR, 9 * HOUR + 60_000),
            d(0, 5 * HOUR),              // before the window of 3 hours
            d(10 * HOUR, 11 * HOUR + 1), // after now's hour
        ];
        let h = hourly(&deliveries, now, 3);
        assert_eq!(h.len(), 3);
        assert_eq!(h[0].start, 8 * HOUR);
        assert_eq!(h[0].delivered, 0);
        assert_eq!(h[0].median_s, None);
        assert_eq!(h[1].delivered, 1);
        assert_eq!(h[1].median_s, Some(60.0));
        assert_eq!(h[2].delivered, 3);
        assert_eq!(h[2].median_s, Some(2.0));
        assert_eq!(h[2].p95_s, Some(3.0));
    }

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<i64> = (1..=100).collect();
        assert_eq!(percentile(&v, 0.5), Some(50));
        assert_eq!(percentile(&v, 0.95), Some(95));
        assert_eq!(percentile(&[7], 0.95), Some(7));
        assert_eq!(percentile(&[], 0.5), None);
    }

    #[test]
    fn the_overview_shows_counts_queue_age_and_breakers() {
        use std::collections::BTreeMap;
        let data = Overview {
            now: 10 * HOUR,
            queues: vec![OrganizationQueue {
                organization_id: "1000000001".into(),
                counts: BTreeMap::from([(Status::Dead, 2), (Status::Queued, 3)]),
                oldest_waiting_since: Some(10 * HOUR - 90_000),
            }],
            hours: hourly(&[], 10 * HOUR, HOURS),
            breakers: Some(vec![BreakerView {
                organization_id: "1000000002".into(),
                state: BreakerState::Open {
                    remaining: std::time::Duration::from_secs(20),
                },
                failures: 5,
                in_flight: 0,
            }]),
        };
        let html = render(
            &Shell {
                lang: Lang::En,
                path: "/console",
                session: None,
            },
            &data,
        )
        .into_string();
        assert!(html.contains(r#"data-testid="queue-table""#));
        assert!(
            html.contains(r#"href="/console/ditolak?organization_id=1000000001""#),
            "{html}"
        );
        assert!(html.contains("1 m 30 s"), "queue age: {html}");
        assert!(html.contains(r#"data-state="open""#));
        assert!(html.contains(r#"data-testid="chart-delivered""#));
        assert!(html.contains(r#"data-testid="chart-latency""#));
    }
}
