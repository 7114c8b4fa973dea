//! `hashmesh sim`: run a simulator scenario, print its tables, write CSV and SVG files.

use std::fmt::Write as _;
use std::io::{IsTerminal, Write as _};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use hashmesh_scheduler::sim::{run_scenario, Options, Progress, Report};
use serde_json::{json, Value};

use crate::output::table;

/// Parse `90`, `90s`, `10m`, `24h` or `1500ms` into milliseconds.
///
/// # Errors
/// If the text is not a number with an optional unit.
pub fn parse_duration_ms(s: &str) -> Result<u64> {
    let s = s.trim();
    let (digits, mult) = if let Some(d) = s.strip_suffix("ms") {
        (d, 1)
    } else if let Some(d) = s.strip_suffix('s') {
        (d, 1000)
    } else if let Some(d) = s.strip_suffix('m') {
        (d, 60_000)
    } else if let Some(d) = s.strip_suffix('h') {
        (d, 3_600_000)
    } else {
        (s, 1000)
    };
    let n: u64 = digits.parse().with_context(|| format!("bad duration {s:?}: use e.g. 90s, 10m, 24h"))?;
    n.checked_mul(mult).with_context(|| format!("duration {s:?} is too long"))
}

/// What the user asked for.
#[derive(Debug, Clone)]
pub struct SimRequest {
    /// Scenario name.
    pub scenario: String,
    /// Simulation options.
    pub options: Options,
    /// Where to write CSV and SVG files.
    pub out: Option<PathBuf>,
    /// Print JSON instead of text.
    pub json: bool,
    /// Show progress on stderr.
    pub progress: bool,
}

/// The report as plain text.
#[must_use]
pub fn render_text(r: &Report) -> String {
    let mut out = format!("scenario {}\n{}\n\n", r.scenario, r.setup);
    for t in &r.tables {
        let header: Vec<&str> = t.columns.iter().map(String::as_str).collect();
        let _ = write!(out, "{}\n{}\n", t.title, table(&header, &t.rows));
    }
    for n in &r.notes {
        let _ = writeln!(out, "note: {n}");
    }
    for v in &r.verdicts {
        let _ = writeln!(out, "target {}: {} — {}", if v.met { "MET" } else { "NOT MET" }, v.target, v.measured);
    }
    out
}

/// The report as JSON.
#[must_use]
pub fn render_json(r: &Report, files: &[PathBuf], wall_secs: f64) -> Value {
    json!({
        "scenario": r.scenario,
        "setup": r.setup,
        "tables": r.tables.iter().map(|t| json!({
            "name": t.name,
            "title": t.title,
            "rows": t.rows.iter().map(|row| {
                t.columns.iter().zip(row).map(|(c, v)| (c.clone(), Value::String(v.clone()))).collect::<serde_json::Map<_, _>>()
            }).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "targets": r.verdicts.iter().map(|v| json!({"target": v.target, "measured": v.measured, "met": v.met})).collect::<Vec<_>>(),
        "notes": r.notes,
        "files": files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>(),
        "shares_simulated": r.shares_simulated,
        "wall_seconds": wall_secs,
    })
}

/// Write `<scenario>_<table>.csv` and `<scenario>_<chart>.svg` into `dir`.
///
/// # Errors
/// If the directory cannot be created or a file cannot be written.
pub fn write_files(r: &Report, dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create output directory {}", dir.display()))?;
    let prefix = r.scenario.replace('-', "_");
    let mut files = Vec::new();
    for t in &r.tables {
        files.push((dir.join(format!("{prefix}_{}.csv", t.name)), t.to_csv()));
    }
    for c in &r.charts {
        files.push((dir.join(format!("{prefix}_{}.svg", c.name)), c.to_svg()));
    }
    let mut written = Vec::new();
    for (path, body) in files {
        std::fs::write(&path, body).with_context(|| format!("cannot write {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

/// Run the request; print the result.
///
/// # Errors
/// On a bad scenario or option, or if files cannot be written. A target that is not met is not
/// an error: it is reported.
pub fn run(req: &SimRequest) -> Result<()> {
    let started = Instant::now();
    let tty = std::io::stderr().is_terminal();
    let mut last = String::new();
    let mut on_progress = |p: &Progress| {
        if !req.progress {
            return;
        }
        let line = format!("[{}/{}] {}", p.done, p.total, p.run);
        if line == last {
            return;
        }
        let mut err = std::io::stderr().lock();
        if tty {
            let _ = write!(err, "\r\x1b[2K{line}");
        } else if p.done == p.total || p.total <= 40 || p.done % (p.total / 20).max(1) == 0 {
            let _ = writeln!(err, "{line}");
        }
        let _ = err.flush();
        last = line;
    };
    let report = match run_scenario(&req.scenario, &req.options, &mut on_progress) {
        Ok(r) => r,
        Err(e) => bail!("{e}"),
    };
    if req.progress && tty {
        eprintln!();
    }
    let wall = started.elapsed().as_secs_f64();
    let files = match &req.out {
        Some(dir) => write_files(&report, dir)?,
        None => Vec::new(),
    };
    if req.json {
        crate::output::print_json(&render_json(&report, &files, wall));
        return Ok(());
    }
    print!("{}", render_text(&report));
    for f in &files {
        println!("wrote {}", f.display());
    }
    if report.shares_simulated > 0 {
        println!(
            "simulated {} shares in {:.2} s ({:.2} M shares/s)",
            report.shares_simulated,
            wall,
            report.shares_simulated as f64 / wall.max(1e-9) / 1e6
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_duration_ms;

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("90").unwrap(), 90_000);
        assert_eq!(parse_duration_ms("90s").unwrap(), 90_000);
        assert_eq!(parse_duration_ms("10m").unwrap(), 600_000);
        assert_eq!(parse_duration_ms("24h").unwrap(), 86_400_000);
        assert_eq!(parse_duration_ms("1500ms").unwrap(), 1500);
        assert!(parse_duration_ms("ten").is_err());
        assert!(parse_duration_ms("-5s").is_err());
    }
}
