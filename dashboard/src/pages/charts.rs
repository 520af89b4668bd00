//! The pages' charts: inline SVG drawn on the server (no script), every label escaped.

use strangler_catalog::TrafficMinute;

/// A bar chart of ratios (0 to 1) as inline SVG: one bar per bucket, `None` for a bucket with
/// nothing to show. Only numbers the server computed, and the escaped tooltips, go into it.
pub(super) fn ratio_chart(
    label: &str,
    bars: &[(Option<f64>, String)],
    color: &str,
    empty: &str,
    w: f64,
) -> String {
    use std::fmt::Write;
    if bars.iter().all(|(v, _)| !v.is_some_and(f64::is_finite)) {
        return nothing(empty);
    }
    let (h, left, top, bottom) = ((w * 0.3).min(180.0), 40.0, 8.0, 20.0);
    let plot_h = h - top - bottom;
    let bar_w = (w - left) / bars.len().max(1) as f64;
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg class="chart" viewBox="0 0 {w} {h}" width="100%" role="img" aria-label="{}">"#,
        escape(label)
    );
    for (pct, y) in [(100, top), (50, top + plot_h / 2.0), (0, top + plot_h)] {
        let _ = write!(
            out,
            r##"<line x1="{left}" x2="{w}" y1="{y}" y2="{y}" stroke="#d0d7de"/><text x="{}" y="{}" font-size="11" text-anchor="end" fill="#57606a">{pct} %</text>"##,
            left - 4.0,
            y + 3.0
        );
    }
    for (i, (value, tip)) in bars.iter().enumerate() {
        let Some(v) = value.filter(|v| v.is_finite()) else {
            continue;
        };
        let bh = (v.clamp(0.0, 1.0) * plot_h).max(1.0);
        let _ = write!(
            out,
            r##"<rect class="bar" x="{:.1}" y="{:.1}" width="{:.1}" height="{bh:.1}" fill="{color}"><title>{}</title></rect>"##,
            left + i as f64 * bar_w + 1.0,
            top + plot_h - bh,
            (bar_w - 2.0).max(1.0),
            escape(tip)
        );
    }
    out.push_str("</svg>");
    out
}

/// Chart widths in SVG units, about the CSS pixels a chart is drawn at, so that its 11-unit
/// labels read at about 11 px: a chart in the pages' two-column grid (a column is 320–420 px on
/// a laptop and the whole width of a phone), and one across a laptop's page.
pub(super) const COLUMN: f64 = 380.0;
pub(super) const PAGE: f64 = 960.0;

/// What a chart with nothing to draw shows instead: words that wrap at any width.
fn nothing(empty: &str) -> String {
    format!(r#"<p class="muted chart-empty">{}</p>"#, escape(empty))
}

/// Escapes text for HTML (for the SVG the pages build themselves).
pub(super) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A bar chart of two series side by side per bucket (new, legacy) as inline SVG, scaled to
/// the largest value; `fmt` writes a value with its unit for the axis and the tooltips.
pub(super) fn pair_chart(
    label: &str,
    bars: &[(Option<f64>, Option<f64>)],
    fmt: &dyn Fn(f64) -> String,
    empty: &str,
    w: f64,
) -> String {
    use std::fmt::Write;
    if bars
        .iter()
        .all(|(a, b)| !a.is_some_and(f64::is_finite) && !b.is_some_and(f64::is_finite))
    {
        return nothing(empty);
    }
    let (h, left, top, bottom) = ((w * 0.3).min(180.0), 56.0, 8.0, 20.0);
    let plot_h = h - top - bottom;
    let slot = (w - left) / bars.len().max(1) as f64;
    let max = bars
        .iter()
        .flat_map(|(a, b)| [*a, *b])
        .flatten()
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max);
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg class="chart" viewBox="0 0 {w} {h}" width="100%" role="img" aria-label="{}">"#,
        escape(label)
    );
    let scale = if max > 0.0 { max } else { 1.0 };
    for (frac, y) in [(1.0, top), (0.5, top + plot_h / 2.0), (0.0, top + plot_h)] {
        let _ = write!(
            out,
            r##"<line x1="{left}" x2="{w}" y1="{y}" y2="{y}" stroke="#d0d7de"/><text x="{}" y="{}" font-size="11" text-anchor="end" fill="#57606a">{}</text>"##,
            left - 4.0,
            y + 3.0,
            escape(&fmt(scale * frac))
        );
    }
    for (i, (new, legacy)) in bars.iter().enumerate() {
        for (j, (value, color, side)) in [(new, "#1a7f37", "new"), (legacy, "#8c959f", "legacy")]
            .into_iter()
            .enumerate()
        {
            let Some(v) = value.filter(|v| v.is_finite()) else {
                continue;
            };
            let bh = (v.max(0.0) / scale * plot_h).max(1.0);
            let bw = ((slot - 2.0) / 2.0).max(0.5);
            let _ = write!(
                out,
                r##"<rect class="bar {side}" x="{:.1}" y="{:.1}" width="{bw:.1}" height="{bh:.1}" fill="{color}"><title>{side}: {}</title></rect>"##,
                left + i as f64 * slot + 1.0 + j as f64 * bw,
                top + plot_h - bh,
                escape(&fmt(v))
            );
        }
    }
    out.push_str("</svg>");
    out
}

/// The share of requests the new services answered per bucket.
pub(super) fn share_chart(
    series: &[TrafficMinute],
    first: i64,
    buckets: i64,
    bucket_minutes: i64,
    w: f64,
) -> String {
    let bars: Vec<(Option<f64>, String)> = (0..buckets)
        .map(|i| {
            let start = first + i * bucket_minutes;
            let (new, total) = series
                .iter()
                .filter(|r| r.minute / bucket_minutes * bucket_minutes == start)
                .fold((0i64, 0i64), |(n, t), r| {
                    (
                        n + if r.side == "new" { r.requests } else { 0 },
                        t + r.requests,
                    )
                });
            let share = (total > 0).then(|| new as f64 / total as f64);
            let tip = match share {
                Some(x) => format!("{:.1} % of {total} requests", x * 100.0),
                None => String::new(),
            };
            (share, tip)
        })
        .collect();
    ratio_chart(
        &format!("Share of requests answered by new services, per {bucket_minutes} minutes"),
        &bars,
        "#1a7f37",
        "No traffic recorded yet",
        w,
    )
}
