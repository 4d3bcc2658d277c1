//! `--plot FILE.svg`: every run's latency percentile curve on one chart — percentile on a log
//! scale of 1/(1-p), as HdrHistogram's plotter draws it — and each run's per-shard utilization.
//!
//! Written as plain SVG: the chart is a few polylines and labels, and the plotting crates need a
//! font back-end (system packages) to lay text out.

use std::fmt::Write as _;

use crate::output::Run;

const W: f64 = 900.0;
const H: f64 = 420.0;
const LEFT: f64 = 80.0;
const TOP: f64 = 40.0;
const PLOT_W: f64 = 560.0;
const PLOT_H: f64 = 300.0;
/// Percentiles on the x axis: 0, 90, 99, 99.9, 99.99, 99.999 (1/(1-p) = 1 … 10^5).
const DECADES: u32 = 5;
const COLORS: [&str; 8] = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];

fn x_of(p: f64) -> f64 {
    let inv = 1.0 / (1.0 - p.min(1.0 - 1e-9));
    LEFT + PLOT_W * (inv.log10() / f64::from(DECADES)).clamp(0.0, 1.0)
}

/// The chart as an SVG document.
pub fn svg(plan: &str, runs: &[Run]) -> String {
    let max_ns = runs.iter().map(|r| r.report.latency.max).max().unwrap_or(1).max(1) as f64;
    let y_of = |ns: f64| TOP + PLOT_H * (1.0 - ns / max_ns);
    let mut s = String::new();
    let _ = write!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{LEFT}" y="22" font-size="15">{plan}: end-to-end latency by percentile</text>
<rect x="{LEFT}" y="{TOP}" width="{PLOT_W}" height="{PLOT_H}" fill="none" stroke="#888"/>
"##
    );
    for d in 0..=DECADES {
        let x = LEFT + PLOT_W * f64::from(d) / f64::from(DECADES);
        let label = match d {
            0 => "0%".to_owned(),
            d => format!("{}%", 100.0 - 100.0 / 10f64.powi(d as i32)),
        };
        let _ = writeln!(s, r##"<line x1="{x}" y1="{TOP}" x2="{x}" y2="{}" stroke="#ddd"/>"##, TOP + PLOT_H);
        let _ = writeln!(s, r#"<text x="{x}" y="{}" text-anchor="middle">{label}</text>"#, TOP + PLOT_H + 16.0);
    }
    for k in 0..=4 {
        let ns = max_ns * f64::from(k) / 4.0;
        let y = y_of(ns);
        let _ = writeln!(s, r##"<line x1="{LEFT}" y1="{y}" x2="{}" y2="{y}" stroke="#eee"/>"##, LEFT + PLOT_W);
        let label = shardpipe::pipeline::fmt_ns(ns as u64);
        let _ = writeln!(s, r#"<text x="{}" y="{}" text-anchor="end">{label}</text>"#, LEFT - 6.0, y + 4.0);
    }
    let _ = writeln!(s, r#"<text x="{}" y="{}" text-anchor="middle">percentile</text>"#, LEFT + PLOT_W / 2.0, H - 40.0);
    for (i, run) in runs.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let Some(h) = run.report.latency_histogram.histogram().filter(|h| !h.is_empty()) else { continue };
        let points: Vec<String> = h
            .iter_quantiles(5)
            .map(|v| format!("{:.1},{:.1}", x_of(v.quantile_iterated_to()), y_of(v.value_iterated_to() as f64)))
            .collect();
        let _ =
            writeln!(s, r#"<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{}"/>"#, points.join(" "));
        // Legend and utilization, right of the chart.
        let ly = TOP + 18.0 * i as f64;
        let lx = LEFT + PLOT_W + 20.0;
        let util: Vec<String> =
            run.report.shard_usage.iter().map(|u| format!("{:.0}%", 100.0 * u.utilization())).collect();
        let _ = writeln!(s, r#"<rect x="{lx}" y="{}" width="12" height="3" fill="{color}"/>"#, ly - 4.0);
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{ly}">{} #{}: {:.0}/s, shards busy {}</text>"#,
            lx + 18.0,
            run.mode,
            run.repeat,
            run.report.items_per_sec(),
            util.join(" ")
        );
    }
    s.push_str("</svg>\n");
    s
}
