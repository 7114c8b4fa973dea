//! `hashmesh-testnet soak`: the fault suite at one perturbation a minute for `minutes`, with
//! the resident memory of every process of the cluster sampled every 10 s.
//!
//! The bounds (named below) are checked on each process kind: the largest resident set any
//! process of that kind reached, and the growth of the longest-lived process of that kind over
//! the second half of its life (a leak shows there; a restarted process starts small again, so
//! its restarts do not hide or fake one).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use serde::Serialize;

use crate::cluster::Cluster;
use crate::faults::{self, FaultReport, FaultSpec};

/// Largest resident set a hashmesh node may reach, MiB (sled's cache is 256 MiB of it).
pub const HASHMESH_RSS_MAX_MIB: u64 = 512;
/// Largest resident set an agent may reach, MiB.
pub const AGENT_RSS_MAX_MIB: u64 = 256;
/// Largest growth of a long-lived hashmesh process or agent over the second half of its life,
/// percent.
pub const RSS_GROWTH_MAX_PERCENT: u64 = 50;
/// How often memory is sampled.
const SAMPLE_EVERY: Duration = Duration::from_secs(10);

/// One kind of process over the soak.
#[derive(Debug, Clone, Serialize)]
pub struct MemoryRow {
    /// `hashmesh`, `cometbft`, `agent`, `stratum` (endpoints and miners).
    pub kind: String,
    /// Processes of this kind seen (restarts make new ones).
    pub processes: usize,
    /// Largest resident set of any of them, MiB.
    pub max_mib: f64,
    /// The longest-lived one: its life, s, and its resident set at half-life and at the end, MiB.
    pub longest_life_s: u64,
    /// At half-life.
    pub mid_mib: f64,
    /// At its last sample.
    pub last_mib: f64,
    /// `(last - mid) / mid`, percent.
    pub growth_percent: f64,
    /// The bound checked, or `-` (CometBFT's and the traffic generator's memory is reported,
    /// not bounded: they are not ours).
    pub bound: String,
    /// `ok` or what exceeded.
    pub result: String,
}

/// The soak's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct SoakReport {
    /// Minutes run.
    pub minutes: u64,
    /// The fault suite's report over the soak.
    pub faults: FaultReport,
    /// Memory per process kind.
    pub memory: Vec<MemoryRow>,
    /// Whether every perturbation, check and bound held.
    pub ok: bool,
}

/// (kind, pid) → samples (seconds since the start, KiB).
type Samples = BTreeMap<(String, u32), Vec<(u64, u64)>>;

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()
}

fn sample(dir: &Path, t0: Instant, samples: &Mutex<Samples>) {
    let Ok(Some(c)) = Cluster::load(dir) else { return };
    let t = t0.elapsed().as_secs();
    let mut out = samples.lock().expect("samples lock");
    for n in &c.nodes {
        let mut pids = vec![("cometbft", n.pids.cometbft), ("hashmesh", n.pids.hashmesh), ("stratum", n.pids.stratum)];
        pids.extend(n.agents.iter().map(|a| ("agent", a.pid)));
        for (kind, pid) in pids {
            if let Some(kib) = rss_kib(pid).filter(|_| pid != 0) {
                out.entry((kind.to_owned(), pid)).or_default().push((t, kib));
            }
        }
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn rows(samples: &Samples) -> Vec<MemoryRow> {
    let mut kinds: BTreeMap<&str, Vec<&Vec<(u64, u64)>>> = BTreeMap::new();
    for ((kind, _), s) in samples {
        kinds.entry(kind.as_str()).or_default().push(s);
    }
    kinds
        .into_iter()
        .map(|(kind, series)| {
            let max = series.iter().flat_map(|s| s.iter().map(|x| x.1)).max().unwrap_or(0);
            let life = |s: &Vec<(u64, u64)>| s.last().map_or(0, |l| l.0) - s.first().map_or(0, |f| f.0);
            let longest = series.iter().max_by_key(|s| life(s)).expect("a kind has a series");
            let half = longest.first().map_or(0, |f| f.0) + life(longest) / 2;
            let mid = longest.iter().find(|x| x.0 >= half).map_or(0, |x| x.1);
            let last = longest.last().map_or(0, |x| x.1);
            let growth = if mid == 0 { 0.0 } else { (last as f64 - mid as f64) * 100.0 / mid as f64 };
            let cap = match kind {
                "hashmesh" => Some(HASHMESH_RSS_MAX_MIB),
                "agent" => Some(AGENT_RSS_MAX_MIB),
                _ => None,
            };
            let result = match cap {
                Some(c) if mib(max) > c as f64 => format!("FAILED: {:.0} MiB > {c} MiB", mib(max)),
                Some(_) if growth > RSS_GROWTH_MAX_PERCENT as f64 => {
                    format!("FAILED: grew {growth:.0} % > {RSS_GROWTH_MAX_PERCENT} %")
                }
                _ => "ok".into(),
            };
            MemoryRow {
                kind: kind.to_owned(),
                processes: series.len(),
                max_mib: mib(max),
                longest_life_s: life(longest),
                mid_mib: mib(mid),
                last_mib: mib(last),
                growth_percent: growth,
                bound: cap.map_or_else(|| "-".into(), |c| format!("≤ {c} MiB, ≤ {RSS_GROWTH_MAX_PERCENT} % growth")),
                result,
            }
        })
        .collect()
}

/// Soak the running cluster in `dir` for `minutes` (one perturbation a minute).
///
/// # Errors
/// As [`faults::run`].
pub fn run(dir: &Path, minutes: u64, seed: u64, links: bool) -> Result<SoakReport> {
    let n = usize::try_from(minutes).unwrap_or(usize::MAX).max(1);
    // Mostly perturbations that do not restart hashmesh (so long-lived processes exist to show
    // a leak), a third that do.
    let spec = FaultSpec {
        seed,
        kills: n / 4,
        crashes: n / 10,
        pauses: n / 4,
        agent_kills: n / 10,
        partitions: if links { n - n / 4 - n / 10 - n / 4 - n / 10 } else { 0 },
        load_per_sec: 2.0,
        // About a minute from one perturbation's start to the next (each takes ~5–10 s).
        every: Some(Duration::from_secs(52)),
    };
    let spec = if links { spec } else { FaultSpec { pauses: n - n / 4 - n / 10 - n / 10, ..spec } };
    let samples: Arc<Mutex<Samples>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let t0 = Instant::now();
    let sampler = {
        let (dir, samples, stop) = (dir.to_owned(), Arc::clone(&samples), Arc::clone(&stop));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                sample(&dir, t0, &samples);
                let next = Instant::now() + SAMPLE_EVERY;
                while Instant::now() < next && !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        })
    };
    let report = faults::run(dir, &spec);
    stop.store(true, Ordering::Relaxed);
    sampler.join().map_err(|_| anyhow!("the memory sampler panicked"))?;
    let report = report?;
    let memory = rows(&samples.lock().expect("samples lock"));
    let ok = report.ok && memory.iter().all(|r| r.result == "ok");
    Ok(SoakReport { minutes, faults: report, memory, ok })
}

/// The tables.
#[must_use]
pub fn render(r: &SoakReport) -> String {
    let mut s = format!("soak: {} minutes, one perturbation a minute\n", r.minutes);
    s.push_str(&faults::render(&r.faults));
    s.push_str("\nresident memory, sampled every 10 s:\n| process | count | max | longest-lived: life, at half-life → last (growth) | bound | result |\n|---|---|---|---|---|---|\n");
    for m in &r.memory {
        s.push_str(&format!(
            "| {} | {} | {:.0} MiB | {} s, {:.0} → {:.0} MiB ({:+.0} %) | {} | {} |\n",
            m.kind,
            m.processes,
            m.max_mib,
            m.longest_life_s,
            m.mid_mib,
            m.last_mib,
            m.growth_percent,
            m.bound,
            m.result
        ));
    }
    s.push_str(if r.ok { "SOAK HELD\n" } else { "SOAK FAILED\n" });
    s
}
