//! `hashmesh-testnet soak`: the fault suite at one perturbation a minute for `minutes`, with
//! the resident memory of every process of the cluster sampled every 10 s.
//!
//! The bounds (named below) are checked on each process kind: the largest resident set any
//! process of that kind reached, and the growth of the longest-lived process of that kind over
//! the second half of its life (a leak shows there; a restarted process starts small again, so
//! its restarts do not hide or fake one).
//!
//! Every sample goes to `soak-memory.csv` in the cluster directory (seconds since the start,
//! process kind, pid, resident KiB; kind `store-disk` is a node's state directory on disk, with
//! the node's index in place of a pid), and the report shows the longest-lived node's resident
//! set and its store on disk every five minutes.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use serde::Serialize;

use crate::cluster::Cluster;
use crate::faults::{self, FaultReport, FaultSpec};

/// Largest resident set a hashmesh node may reach, MiB (the testnet's store cache is 32 MiB of
/// it; a production node's default is 128).
pub const HASHMESH_RSS_MAX_MIB: u64 = 512;
/// Largest resident set an agent may reach, MiB.
pub const AGENT_RSS_MAX_MIB: u64 = 256;
/// Largest growth of a long-lived hashmesh process or agent over the second half of its life,
/// percent.
pub const RSS_GROWTH_MAX_PERCENT: u64 = 50;
/// How often memory is sampled.
const SAMPLE_EVERY: Duration = Duration::from_secs(10);
/// The sample kind of a node's state store on disk.
const STORE_DISK: &str = "store-disk";

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

/// The longest-lived node at one moment of the soak.
#[derive(Debug, Clone, Serialize)]
pub struct OverTime {
    /// Seconds since the soak began.
    pub at_s: u64,
    /// Its resident set, MiB.
    pub rss_mib: f64,
    /// Its state store on disk, MiB.
    pub store_disk_mib: f64,
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
    /// The longest-lived hashmesh node every five minutes.
    pub over_time: Vec<OverTime>,
    /// Whether every perturbation, check and bound held.
    pub ok: bool,
}

/// (kind, pid) → samples (seconds since the start, KiB).
type Samples = BTreeMap<(String, u32), Vec<(u64, u64)>>;

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()
}

/// Bytes a directory's files occupy on disk.
fn disk_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => disk_bytes(&e.path()),
            Ok(m) => std::os::unix::fs::MetadataExt::blocks(&m) * 512,
            Err(_) => 0,
        })
        .sum()
}

fn sample(dir: &Path, t0: Instant, samples: &Mutex<Samples>) {
    let Ok(Some(c)) = Cluster::load(dir) else { return };
    let t = t0.elapsed().as_secs();
    let mut out = samples.lock().expect("samples lock");
    for (i, n) in c.nodes.iter().enumerate() {
        if let Ok(home) = hashmesh_node::home::Home::load(&n.hashmesh_home) {
            let node = u32::try_from(i).unwrap_or(u32::MAX);
            out.entry((STORE_DISK.to_owned(), node)).or_default().push((t, disk_bytes(&home.state_dir()) / 1024));
        }
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
        if kind != STORE_DISK {
            kinds.entry(kind.as_str()).or_default().push(s);
        }
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
    let samples = samples.lock().expect("samples lock");
    write_csv(&dir.join("soak-memory.csv"), &samples)?;
    let memory = rows(&samples);
    let over_time = over_time(&samples, dir);
    let ok = report.ok && memory.iter().all(|r| r.result == "ok");
    Ok(SoakReport { minutes, faults: report, memory, over_time, ok })
}

fn write_csv(path: &Path, samples: &Samples) -> Result<()> {
    let mut rows: Vec<(u64, &str, u32, u64)> = samples
        .iter()
        .flat_map(|((kind, pid), s)| s.iter().map(move |&(t, kib)| (t, kind.as_str(), *pid, kib)))
        .collect();
    rows.sort_unstable();
    let mut text = String::from("t_s,kind,pid,kib\n");
    for (t, kind, pid, kib) in rows {
        text.push_str(&format!("{t},{kind},{pid},{kib}\n"));
    }
    std::fs::write(path, text).map_err(|e| anyhow!("writing {}: {e}", path.display()))
}

/// The longest-lived hashmesh process and its node's store on disk, every five minutes.
fn over_time(samples: &Samples, dir: &Path) -> Vec<OverTime> {
    let life = |s: &Vec<(u64, u64)>| s.last().map_or(0, |l| l.0) - s.first().map_or(0, |f| f.0);
    let Some(((_, pid), series)) = samples.iter().filter(|((k, _), _)| k == "hashmesh").max_by_key(|(_, s)| life(s))
    else {
        return Vec::new();
    };
    // Which node ran it: the one whose current or past pid it is (the cluster file names the
    // current pids; the longest-lived process is still running, so it is among them).
    let node = Cluster::load(dir)
        .ok()
        .flatten()
        .and_then(|c| c.nodes.iter().position(|n| n.pids.hashmesh == *pid))
        .and_then(|i| u32::try_from(i).ok());
    let disk = node.and_then(|i| samples.get(&(STORE_DISK.to_owned(), i)));
    let at = |s: &Vec<(u64, u64)>, t: u64| s.iter().rev().find(|x| x.0 <= t).map_or(0, |x| x.1);
    let end = series.last().map_or(0, |l| l.0);
    (0..=end)
        .step_by(300)
        .chain((end % 300 != 0).then_some(end))
        .map(|t| OverTime {
            at_s: t,
            rss_mib: mib(at(series, t.max(series[0].0))),
            store_disk_mib: disk.map_or(0.0, |d| mib(at(d, t))),
        })
        .collect()
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
    s.push_str("\nthe longest-lived node over the soak (every sample in soak-memory.csv):\n| minute | resident | store on disk |\n|---|---|---|\n");
    for o in &r.over_time {
        s.push_str(&format!("| {:.0} | {:.0} MiB | {:.0} MiB |\n", o.at_s as f64 / 60.0, o.rss_mib, o.store_disk_mib));
    }
    s.push_str(if r.ok { "SOAK HELD\n" } else { "SOAK FAILED\n" });
    s
}
