//! What a scenario produces — tables, charts and target verdicts — and their CSV and SVG
//! forms. All rendering is deterministic (fixed number formats), so the
//! same run gives byte-identical files.

use std::fmt::Write as _;

use super::stats::{pct, RunStats, WindowPoint};

/// A table: one row per strategy (or bucket), cells already formatted.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// File-safe name (`rr_load`), used for `<scenario>_<name>.csv`.
    pub name: String,
    /// Human title.
    pub title: String,
    /// Column headers.
    pub columns: Vec<String>,
    /// Rows of cells.
    pub rows: Vec<Vec<String>>,
}

/// A chart: bars (one value per category) or lines (series of points).
#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    /// File-safe name, used for `<scenario>_<name>.svg`.
    pub name: String,
    /// Title.
    pub title: String,
    /// Y axis label.
    pub y_label: String,
    /// X axis label (lines only).
    pub x_label: String,
    /// The data.
    pub data: ChartData,
}

/// Chart data.
#[derive(Debug, Clone, PartialEq)]
pub enum ChartData {
    /// (category, value).
    Bars(Vec<(String, f64)>),
    /// (series name, points).
    Lines(Vec<(String, Vec<(f64, f64)>)>),
}

/// A target from the issue and whether this run met it.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// What was required.
    pub target: String,
    /// What was measured.
    pub measured: String,
    /// Met or not.
    pub met: bool,
}

/// Everything one scenario produced.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Report {
    /// Scenario name.
    pub scenario: String,
    /// One paragraph on what was simulated.
    pub setup: String,
    /// Tables.
    pub tables: Vec<Table>,
    /// Charts.
    pub charts: Vec<Chart>,
    /// Targets.
    pub verdicts: Vec<Verdict>,
    /// Notes printed under the tables.
    pub notes: Vec<String>,
    /// Shares simulated (for throughput).
    pub shares_simulated: u64,
}

/// Column headers from names.
#[must_use]
pub fn columns(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| (*s).to_string()).collect()
}

/// A number with `d` decimals.
#[must_use]
pub fn num(x: f64, d: usize) -> String {
    format!("{x:.d$}")
}

fn csv_cell(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

impl Table {
    /// CSV with a header row.
    #[must_use]
    pub fn to_csv(&self) -> String {
        let mut out = String::new();
        let line = |cells: &[String]| cells.iter().map(|c| csv_cell(c)).collect::<Vec<_>>().join(",");
        out.push_str(&line(&self.columns));
        out.push('\n');
        for r in &self.rows {
            out.push_str(&line(r));
            out.push('\n');
        }
        out
    }
}

const PALETTE: [&str; 9] =
    ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#1b1b1b"];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// A "nice" upper bound for an axis.
fn nice_max(x: f64) -> f64 {
    if x <= 0.0 || !x.is_finite() {
        return 1.0;
    }
    let p = 10f64.powf(x.log10().floor());
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if x <= m * p {
            return m * p;
        }
    }
    10.0 * p
}

impl Chart {
    /// A self-contained SVG.
    #[must_use]
    pub fn to_svg(&self) -> String {
        let (w, h, left, right, top, bottom) = (760.0, 420.0, 70.0, 190.0, 40.0, 90.0);
        let pw = w - left - right;
        let ph = h - top - bottom;
        let mut s = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"{}\" y=\"22\" font-size=\"14\" text-anchor=\"middle\">{}</text>\n",
            w / 2.0,
            esc(&self.title)
        );
        let ymax = nice_max(match &self.data {
            ChartData::Bars(b) => b.iter().map(|x| x.1).fold(0.0, f64::max),
            ChartData::Lines(l) => l.iter().flat_map(|x| x.1.iter().map(|p| p.1)).fold(0.0, f64::max),
        });
        for k in 0..=4 {
            let v = ymax * f64::from(k) / 4.0;
            let y = top + ph - ph * f64::from(k) / 4.0;
            let _ = writeln!(
                s,
                "<line x1=\"{left}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#ddd\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
                left + pw,
                left - 6.0,
                y + 4.0,
                trim_num(v)
            );
        }
        let _ = writeln!(
            s,
            "<text x=\"16\" y=\"{:.1}\" transform=\"rotate(-90 16 {:.1})\" text-anchor=\"middle\">{}</text>",
            top + ph / 2.0,
            top + ph / 2.0,
            esc(&self.y_label)
        );
        match &self.data {
            ChartData::Bars(bars) => {
                let slot = pw / bars.len().max(1) as f64;
                for (i, (name, v)) in bars.iter().enumerate() {
                    let bh = ph * (v / ymax).clamp(0.0, 1.0);
                    let x = left + slot * i as f64 + slot * 0.15;
                    let _ = writeln!(
                        s,
                        "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{bh:.1}\" fill=\"{}\"><title>{}: {}</title></rect>",
                        top + ph - bh,
                        slot * 0.7,
                        PALETTE[i % PALETTE.len()],
                        esc(name),
                        trim_num(*v)
                    );
                    let cx = x + slot * 0.35;
                    let cy = top + ph + 10.0;
                    let _ = writeln!(
                        s,
                        "<text x=\"{cx:.1}\" y=\"{cy:.1}\" text-anchor=\"end\" transform=\"rotate(-35 {cx:.1} {cy:.1})\">{}</text>",
                        esc(name)
                    );
                }
            }
            ChartData::Lines(lines) => {
                let xmax = lines.iter().flat_map(|l| l.1.iter().map(|p| p.0)).fold(0.0, f64::max).max(1e-9);
                for k in 0..=4 {
                    let v = xmax * f64::from(k) / 4.0;
                    let x = left + pw * f64::from(k) / 4.0;
                    let _ = writeln!(
                        s,
                        "<text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
                        top + ph + 16.0,
                        trim_num(v)
                    );
                }
                let _ = writeln!(
                    s,
                    "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
                    left + pw / 2.0,
                    top + ph + 36.0,
                    esc(&self.x_label)
                );
                for (i, (name, pts)) in lines.iter().enumerate() {
                    let path: Vec<String> = pts
                        .iter()
                        .map(|(x, y)| {
                            format!("{:.1},{:.1}", left + pw * x / xmax, top + ph - ph * (y / ymax).clamp(0.0, 1.0))
                        })
                        .collect();
                    let color = PALETTE[i % PALETTE.len()];
                    let _ = writeln!(
                        s,
                        "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"1.5\" points=\"{}\"/>",
                        path.join(" ")
                    );
                    let ly = top + 14.0 * i as f64;
                    let _ = writeln!(
                        s,
                        "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"10\" height=\"10\" fill=\"{color}\"/><text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
                        left + pw + 12.0,
                        ly,
                        left + pw + 26.0,
                        ly + 9.0,
                        esc(name)
                    );
                }
            }
        }
        let _ = writeln!(
            s,
            "<line x1=\"{left}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"black\"/>",
            top + ph,
            left + pw,
            top + ph
        );
        s.push_str("</svg>\n");
        s
    }
}

fn trim_num(v: f64) -> String {
    if v.abs() >= 100.0 || v == v.trunc() {
        format!("{v:.0}")
    } else {
        format!("{v:.2}").trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// A bar per run.
pub(crate) fn bars(name: &str, title: &str, y: &str, runs: &[RunStats], f: impl Fn(&RunStats) -> f64) -> Chart {
    Chart {
        name: name.into(),
        title: title.into(),
        y_label: y.into(),
        x_label: String::new(),
        data: ChartData::Bars(runs.iter().map(|r| (r.strategy.clone(), f(r))).collect()),
    }
}

/// A line per run over its timeline.
pub(crate) fn timeline(
    name: &str,
    title: &str,
    y: &str,
    runs: &[RunStats],
    step_ms: u64,
    f: impl Fn(&WindowPoint) -> f64,
) -> Chart {
    Chart {
        name: name.into(),
        title: title.into(),
        y_label: y.into(),
        x_label: "simulated time, s".into(),
        data: ChartData::Lines(
            runs.iter()
                .map(|r| {
                    let pts = r
                        .timeline
                        .iter()
                        .enumerate()
                        .filter(|(_, p)| p.shares > 0)
                        .map(|(i, p)| ((i as u64 * step_ms) as f64 / 1000.0, f(p)))
                        .collect();
                    (r.strategy.clone(), pts)
                })
                .collect(),
        ),
    }
}

/// Mean latency of a timeline point, ms.
pub(crate) fn mean_latency(p: &WindowPoint) -> f64 {
    if p.accepted == 0 {
        0.0
    } else {
        p.latency_sum_ms / p.accepted as f64
    }
}

/// Errors of a timeline point, %.
pub(crate) fn error_pct(p: &WindowPoint) -> f64 {
    pct(p.errors, p.shares)
}
