//! Charts as inline SVG, drawn on the server: a bar chart and a line chart over labelled
//! slots (hours). Pure functions of their data — no script, no chart library, nothing
//! fetched — so they show offline, in any browser, and are tested as text. Colours come
//! from the stylesheet (classes), not inline styles, which the console's Content Security
//! Policy forbids. Each bar and point has a `<title>`: the browser's own tooltip.

use maud::{Markup, html};

const WIDTH: f64 = 600.0;
const HEIGHT: f64 = 200.0;
const LEFT: f64 = 44.0;
const RIGHT: f64 = 8.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 24.0;

/// One slot of a bar chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    /// Under the axis (shown every few slots).
    pub label: String,
    pub value: f64,
    /// The tooltip.
    pub title: String,
}

/// One line of a line chart: a value per slot (None: no data there, the line breaks).
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    /// The CSS class suffix: `line-<class>`, `dot-<class>`.
    pub class: &'static str,
    pub points: Vec<Option<f64>>,
}

/// A round number at or above `max`, for the top of the axis (1, 2, 5 × 10ⁿ).
pub fn nice_ceiling(max: f64) -> f64 {
    if !max.is_finite() || max <= 0.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(max.log10().floor());
    for step in [1.0, 2.0, 5.0, 10.0] {
        if step * magnitude >= max {
            return step * magnitude;
        }
    }
    10.0 * magnitude
}

/// A number for an axis label or a tooltip: no decimals from 10 up, at most two below
/// (0.05 and 0.1 stay apart), no trailing zeros.
fn label_number(v: f64) -> String {
    if v >= 10.0 || v == v.trunc() {
        return format!("{v:.0}");
    }
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn plot_w() -> f64 {
    WIDTH - LEFT - RIGHT
}
fn plot_h() -> f64 {
    HEIGHT - TOP - BOTTOM
}

/// The y coordinate of `v` on an axis up to `top`.
fn y_of(v: f64, top: f64) -> f64 {
    TOP + plot_h() * (1.0 - (v / top).clamp(0.0, 1.0))
}

/// Axis lines and labels shared by both charts.
fn frame(labels: &[&str], top: f64, unit: &str) -> Markup {
    let n = labels.len().max(1) as f64;
    let slot = plot_w() / n;
    // Every few slots a label, so 24 hours stay readable on a phone.
    let every = (labels.len() / 8).max(1);
    html! {
        @for frac in [0.0, 0.5, 1.0] {
            @let y = y_of(top * frac, top);
            line.axis x1=(LEFT) x2=(WIDTH - RIGHT) y1=(y) y2=(y) {}
            text x=(LEFT - 4.0) y=(y + 4.0) text-anchor="end" { (label_number(top * frac)) }
        }
        text x=(4.0) y=(TOP + 8.0) { (unit) }
        @for (i, l) in labels.iter().enumerate() {
            @if i % every == 0 {
                text x=(LEFT + slot * (i as f64 + 0.5)) y=(HEIGHT - 6.0) text-anchor="middle" { (l) }
            }
        }
    }
}

/// A bar chart: one bar per slot.
pub fn bars(bars: &[Bar], label: &str, unit: &str, testid: &str) -> Markup {
    let top = nice_ceiling(bars.iter().map(|b| b.value).fold(0.0, f64::max));
    let slot = plot_w() / bars.len().max(1) as f64;
    let labels: Vec<&str> = bars.iter().map(|b| b.label.as_str()).collect();
    html! {
        figure.chart data-testid=(testid) {
            svg viewBox={ "0 0 " (WIDTH) " " (HEIGHT) } role="img" aria-label=(label)
                xmlns="http://www.w3.org/2000/svg" {
                title { (label) }
                (frame(&labels, top, unit))
                @for (i, b) in bars.iter().enumerate() {
                    @let y = y_of(b.value, top);
                    rect.bar x=(format!("{:.1}", LEFT + slot * i as f64 + slot * 0.15))
                        y=(format!("{y:.1}")) width=(format!("{:.1}", slot * 0.7))
                        height=(format!("{:.1}", TOP + plot_h() - y)) data-value=(b.value) {
                        title { (b.title) }
                    }
                }
            }
        }
    }
}

/// A line chart: one line per series over the same slots.
pub fn lines(
    labels: &[String],
    series: &[Series],
    label: &str,
    unit: &str,
    testid: &str,
) -> Markup {
    let top = nice_ceiling(
        series
            .iter()
            .flat_map(|s| s.points.iter().flatten())
            .copied()
            .fold(0.0, f64::max),
    );
    let slot = plot_w() / labels.len().max(1) as f64;
    let x_of = |i: usize| LEFT + slot * (i as f64 + 0.5);
    let label_refs: Vec<&str> = labels.iter().map(String::as_str).collect();
    html! {
        figure.chart data-testid=(testid) {
            svg viewBox={ "0 0 " (WIDTH) " " (HEIGHT) } role="img" aria-label=(label)
                xmlns="http://www.w3.org/2000/svg" {
                title { (label) }
                (frame(&label_refs, top, unit))
                @for s in series {
                    @for run in runs(&s.points) {
                        polyline class={ "line-" (s.class) } points=(
                            run.iter()
                                .map(|(i, v)| format!("{:.1},{:.1}", x_of(*i), y_of(*v, top)))
                                .collect::<Vec<_>>()
                                .join(" ")
                        ) {}
                    }
                    @for (i, v) in s.points.iter().enumerate() {
                        @if let Some(v) = v {
                            circle class={ "dot-" (s.class) } cx=(format!("{:.1}", x_of(i)))
                                cy=(format!("{:.1}", y_of(*v, top))) r="3" data-value=(v) {
                                title { (labels.get(i).map_or("", String::as_str)) " · " (s.name) ": " (label_number(*v)) " " (unit) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The unbroken stretches of a series (a slot without data breaks the line).
fn runs(points: &[Option<f64>]) -> Vec<Vec<(usize, f64)>> {
    let mut out: Vec<Vec<(usize, f64)>> = Vec::new();
    let mut current = Vec::new();
    for (i, p) in points.iter().enumerate() {
        match p {
            Some(v) => current.push((i, *v)),
            None if !current.is_empty() => out.push(std::mem::take(&mut current)),
            None => {}
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_labels_keep_small_steps_apart() {
        assert_eq!(label_number(0.05), "0.05");
        assert_eq!(label_number(0.1), "0.1");
        assert_eq!(label_number(2.5), "2.5");
        assert_eq!(label_number(12.4), "12");
        assert_eq!(label_number(3.0), "3");
    }

    #[test]
    fn axis_tops_are_round_numbers() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(0.7), 1.0);
        assert_eq!(nice_ceiling(3.0), 5.0);
        assert_eq!(nice_ceiling(12.0), 20.0);
        assert_eq!(nice_ceiling(50.0), 50.0);
        assert_eq!(nice_ceiling(501.0), 1000.0);
    }

    #[test]
    fn a_bar_chart_has_one_bar_per_slot_with_its_tooltip() {
        let data: Vec<Bar> = (0..24)
            .map(|h| Bar {
                label: format!("{h:02}"),
                value: h as f64,
                title: format!("{h:02}:00 — {h} delivered"),
            })
            .collect();
        let svg = bars(&data, "Delivered per hour", "n", "chart-delivered").into_string();
        assert_eq!(svg.matches("<rect").count(), 24);
        assert!(svg.contains("<title>23:00 — 23 delivered</title>"));
        assert!(svg.contains(r#"data-testid="chart-delivered""#));
        assert!(!svg.contains("style="), "colours come from the stylesheet");
        // The tallest bar reaches the top of the plot: 23 on an axis up to 50.
        assert!(svg.contains(r#"data-value="23""#));
    }

    #[test]
    fn lines_break_where_there_is_no_data() {
        assert_eq!(
            runs(&[Some(1.0), None, Some(2.0), Some(3.0), None]),
            vec![vec![(0, 1.0)], vec![(2, 2.0), (3, 3.0)]]
        );
        let labels: Vec<String> = (0..4).map(|h| format!("{h:02}")).collect();
        let svg = lines(
            &labels,
            &[Series {
                name: "median".into(),
                class: "median",
                points: vec![Some(1.0), None, Some(2.0), Some(3.0)],
            }],
            "Latency",
            "s",
            "chart-latency",
        )
        .into_string();
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert_eq!(svg.matches("<circle").count(), 3);
    }

    #[test]
    fn labels_in_charts_are_escaped() {
        let svg = bars(
            &[Bar {
                label: "<b>".into(),
                value: 1.0,
                title: "<script>".into(),
            }],
            "a<b",
            "n",
            "t",
        )
        .into_string();
        assert!(!svg.contains("<script>") && !svg.contains("<b>"), "{svg}");
    }
}
