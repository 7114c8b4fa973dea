//! The polling scenario: miners learn about new work by polling every `interval` (or, in
//! hashmesh, by being told). Counts requests per day, the work done on stale jobs while a miner
//! has not yet heard of the new one, and the server CPU those requests cost.
//!
//! The CPU column is a linear cost model, `base + cost × requests/s`, whose two parameters are
//! fitted to the article's two rows (5 s → 68 %, 15 s → 32 % at 1000 pollers); it is an
//! estimate, not a measurement. Request counts and staleness are simulated.

use super::report::{columns, num, Chart, ChartData, Report, Table};
use super::{Options, Progress};
use crate::rng::Rng;

/// CPU model: share of one server's CPU that does not depend on polling, %.
pub const CPU_BASE_PCT: f64 = 14.0;
/// CPU model: % per request/s.
pub const CPU_PER_RPS_PCT: f64 = 0.27;
/// One-way latency from the server to a miner, ms (answer of a poll, or a pushed notify).
pub const ONE_WAY_MS: f64 = 30.0;
/// Time to push one notify message to one miner, ms (fan-out is sequential per server).
pub const PUSH_PER_MINER_MS: f64 = 0.02;

/// How miners learn about new work.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Policy {
    /// Poll every this many ms.
    Fixed(u64),
    /// The article's adaptive polling: 20 s when the server's load > 0.8, else 10 s.
    Adaptive,
    /// Stratum-style push (hashmesh agents): the server notifies on every job change, plus one
    /// keep-alive per `keepalive_ms` per miner.
    Push {
        /// Keep-alive period, ms.
        keepalive_ms: u64,
    },
}

/// The rows, in table order.
#[must_use]
pub fn policies() -> Vec<(&'static str, Policy)> {
    vec![
        ("poll_5s", Policy::Fixed(5000)),
        ("poll_10s", Policy::Fixed(10_000)),
        ("poll_15s", Policy::Fixed(15_000)),
        ("adaptive_10_20s (article)", Policy::Adaptive),
        ("hashmesh_push", Policy::Push { keepalive_ms: 30_000 }),
    ]
}

/// The server's load from mining traffic over the day: 0.5 at night to 0.95 at the peak.
#[must_use]
pub fn load_at(t_ms: f64) -> f64 {
    let day = 86_400_000.0;
    0.725 - 0.225 * (2.0 * std::f64::consts::PI * (t_ms % day) / day).cos()
}

/// One policy's results.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    /// Requests (or pushed messages) per day.
    pub requests_per_day: f64,
    /// Estimated CPU, % (see the module docs).
    pub cpu_pct: f64,
    /// Mean time from a job change to a miner working on the new job, ms.
    pub mean_delay_ms: f64,
    /// Hashrate spent on stale work, %.
    pub stale_pct: f64,
}

/// Simulate `pollers` miners for `duration_ms` with job changes every `job_interval_ms` on
/// average.
pub fn simulate(
    seed: u64,
    pollers: usize,
    duration_ms: u64,
    job_interval_ms: f64,
    progress: &mut dyn FnMut(usize),
) -> Vec<(&'static str, Outcome)> {
    let d = duration_ms as f64;
    let mut rng = Rng::new(seed ^ 0x9011_0000_0000_0005);
    let mut jobs = Vec::new();
    let mut t = 0.0;
    loop {
        t += -(1.0 - rng.unit()).ln() * job_interval_ms;
        if t >= d {
            break;
        }
        jobs.push(t);
    }
    let phases: Vec<f64> = (0..pollers).map(|_| rng.unit()).collect();
    let policies = policies();
    let mut out = Vec::new();
    for (k, (name, policy)) in policies.iter().enumerate() {
        let mut requests = 0u64;
        let mut delay_sum = 0.0;
        let mut delays = 0u64;
        let mut stale_ms = 0.0;
        for (m, phase) in phases.iter().enumerate() {
            match *policy {
                Policy::Push { keepalive_ms } => {
                    requests += jobs.len() as u64 + (d / keepalive_ms as f64) as u64;
                    let delay = ONE_WAY_MS + PUSH_PER_MINER_MS * m as f64;
                    delay_sum += delay * jobs.len() as f64;
                    delays += jobs.len() as u64;
                    stale_ms += delay * jobs.len() as f64;
                }
                _ => {
                    // Walk this miner's polls; each poll learns every job change before it.
                    let interval = |t: f64| match *policy {
                        Policy::Fixed(i) => i as f64,
                        _ => {
                            if load_at(t) > 0.8 {
                                20_000.0
                            } else {
                                10_000.0
                            }
                        }
                    };
                    let mut at = phase * interval(0.0);
                    let mut j = 0;
                    while at < d {
                        requests += 1;
                        let learned = at + ONE_WAY_MS;
                        if j < jobs.len() && jobs[j] <= at {
                            // Work since the first unseen change is wasted until now.
                            stale_ms += learned - jobs[j];
                        }
                        while j < jobs.len() && jobs[j] <= at {
                            delay_sum += learned - jobs[j];
                            delays += 1;
                            j += 1;
                        }
                        at += interval(at);
                    }
                }
            }
        }
        let per_day = requests as f64 * 86_400_000.0 / d;
        let rps = per_day / 86_400.0;
        let mean_delay = if delays == 0 { 0.0 } else { delay_sum / delays as f64 };
        out.push((
            *name,
            Outcome {
                requests_per_day: per_day,
                cpu_pct: (CPU_BASE_PCT + CPU_PER_RPS_PCT * rps).min(100.0),
                mean_delay_ms: mean_delay,
                stale_pct: stale_ms / (pollers.max(1) as f64 * d) * 100.0,
            },
        ));
        progress(k + 1);
    }
    out
}

/// The `polling` scenario's report.
pub(crate) fn report(o: &Options, progress: &mut dyn FnMut(&Progress)) -> Report {
    let pollers = o.miners.map_or(1000, |m| usize::try_from(m).unwrap_or(usize::MAX));
    let duration = o.duration_ms.unwrap_or(86_400_000);
    let job_interval = 60_000.0;
    let total = policies().len();
    let results = simulate(o.seed, pollers, duration, job_interval, &mut |k| {
        progress(&Progress { run: format!("polling policy {k}/{total}"), done: k, total });
    });
    let rows = results
        .iter()
        .map(|(name, r)| {
            vec![
                (*name).to_string(),
                num(r.requests_per_day / 1e6, 2),
                num(r.cpu_pct, 1),
                num(r.mean_delay_ms / 1000.0, 2),
                num(r.stale_pct, 3),
                match *name {
                    "poll_5s" => "17.28 M/day, 68% CPU".into(),
                    "poll_15s" => "5.76 M/day, 32% CPU".into(),
                    _ => String::new(),
                },
            ]
        })
        .collect();
    Report {
        setup: format!(
            "{pollers} miners learn about new work (a job change every {}s on average) by polling or by push; {}h \
             simulated; server load follows a day curve (0.5 at night, 0.95 at the peak) and drives the adaptive \
             policy. cpu_pct is a linear cost model fitted to the article's two rows ({}% + {}% per request/s), \
             an estimate, not a measurement; requests and staleness are simulated.",
            job_interval / 1000.0,
            duration / 3_600_000,
            CPU_BASE_PCT,
            CPU_PER_RPS_PCT
        ),
        tables: vec![Table {
            name: "polling".into(),
            title: "Polling interval vs requests, CPU and stale work".into(),
            columns: columns(&["policy", "requests_m_per_day", "cpu_pct", "mean_notice_s", "stale_pct", "article"]),
            rows,
        }],
        charts: vec![
            Chart {
                name: "requests".into(),
                title: "Requests per day".into(),
                y_label: "millions".into(),
                x_label: String::new(),
                data: ChartData::Bars(
                    results.iter().map(|(n, r)| ((*n).to_string(), r.requests_per_day / 1e6)).collect(),
                ),
            },
            Chart {
                name: "stale".into(),
                title: "Work on stale jobs".into(),
                y_label: "% of hashrate".into(),
                x_label: String::new(),
                data: ChartData::Bars(results.iter().map(|(n, r)| ((*n).to_string(), r.stale_pct)).collect()),
            },
        ],
        ..Report::default()
    }
}
