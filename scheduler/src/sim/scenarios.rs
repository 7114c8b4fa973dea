//! The named scenarios. Each builds its runs, runs every strategy on the same seeded workload,
//! and turns the results into tables (with the article's figures beside), charts and verdicts
//! on the targets.

use super::engine::run;
use super::heartbeat;
use super::model::{fleet, group_weights, EndpointSpec, Incident, RunSpec, Spike, Workload};
use super::polling;
use super::report::{bars, columns, error_pct, mean_latency, num, timeline, Report, Table, Verdict};
use super::stats::{RunStats, LATENCY_BUCKETS};
use super::strategy::{is_article, Strategy, NAMES};
use super::{Options, Progress};

/// The scenarios: name and one line on what it shows.
pub const SCENARIOS: [(&str, &str); 7] = [
    ("rr-load", "every strategy at 1k and 10k QPS on a heterogeneous fleet (the article's round-robin table)"),
    ("latency-loss", "submit latency buckets vs hashrate lost to stale work"),
    ("heartbeat", "fixed 5 s heartbeats vs phi accrual: false \"lost\" verdicts, detection time, piled-up tasks"),
    ("scale-out", "endpoints join a loaded fleet: request deviation and mean latency"),
    ("polling", "poll interval vs requests/day, CPU and stale work; push notifies"),
    ("failover", "the largest endpoint dies and comes back, another degrades"),
    ("mixed", "everything at once: spike, failure, degradation, new endpoints"),
];

/// Miner groups in every routing scenario.
const GROUPS: usize = 16;
/// Mean time between job changes that make in-flight work stale (a new block on a fast chain,
/// or a clean-jobs notify), ms.
const JOB_INTERVAL_MS: f64 = 10_000.0;

fn base_spec(seed: u64, endpoints: Vec<EndpointSpec>, qps: f64, duration_ms: u64) -> RunSpec {
    RunSpec {
        endpoints,
        incidents: Vec::new(),
        workload: Workload {
            qps,
            spikes: Vec::new(),
            job_interval_ms: JOB_INTERVAL_MS,
            group_weights: group_weights(seed, GROUPS),
        },
        duration_ms,
        warmup_ms: 10_000.min(duration_ms / 4),
        poll_ms: 10_000,
        windows: vec![(0, duration_ms)],
        timeline_step_ms: 5000,
        max_queue_ms: 1000.0,
        timeout_ms: 1000.0,
        seed,
    }
}

/// Run every strategy on `spec`.
fn run_all(
    spec: &RunSpec,
    label: &str,
    done: &mut usize,
    total: usize,
    progress: &mut dyn FnMut(&Progress),
) -> Vec<RunStats> {
    NAMES
        .iter()
        .map(|name| {
            let s = Strategy::named(name).expect("known strategy");
            let run_name = format!("{label} {name}");
            progress(&Progress { run: run_name.clone(), done: *done, total });
            let r = run(spec, s, &mut |_| {});
            *done += 1;
            progress(&Progress { run: run_name, done: *done, total });
            r
        })
        .collect()
}

fn find<'a>(runs: &'a [RunStats], name: &str) -> &'a RunStats {
    runs.iter().find(|r| r.strategy == name).expect("every strategy ran")
}

/// Run scenario `name`.
///
/// # Errors
/// If the scenario is unknown or an option is out of range (the message says which).
pub fn run_scenario(name: &str, o: &Options, progress: &mut dyn FnMut(&Progress)) -> Result<Report, String> {
    if let Some(n) = o.endpoints {
        if !(2..=256).contains(&n) {
            return Err(format!("--endpoints must be 2..=256 (got {n})"));
        }
    }
    if o.miners == Some(0) {
        return Err("--miners must be at least 1".into());
    }
    if o.duration_ms.is_some_and(|d| d < 10_000) {
        return Err("--duration must be at least 10s".into());
    }
    let mut report = match name {
        "rr-load" => rr_load(o, progress),
        "latency-loss" => latency_loss(o, progress),
        "heartbeat" => heartbeat::report(o, progress),
        "scale-out" => scale_out(o, progress),
        "polling" => polling::report(o, progress),
        "failover" => failover(o, progress),
        "mixed" => mixed(o, progress),
        _ => {
            let names: Vec<&str> = SCENARIOS.iter().map(|s| s.0).collect();
            return Err(format!("unknown scenario {name:?}; choose one of: {}", names.join(", ")));
        }
    };
    report.scenario = name.to_string();
    Ok(report)
}

fn routing_columns(extra: &[&str]) -> Vec<String> {
    let mut c = columns(&["strategy", "mean_ms", "p50_ms", "p99_ms", "errors_pct", "stale_pct"]);
    c.extend(columns(extra));
    c
}

fn routing_row(r: &RunStats) -> Vec<String> {
    vec![
        r.strategy.clone(),
        num(r.latency.mean_ms(), 1),
        num(r.latency.quantile_ms(0.5), 1),
        num(r.latency.quantile_ms(0.99), 1),
        num(r.error_pct(), 2),
        num(r.stale_pct(), 2),
    ]
}

fn rr_load(o: &Options, progress: &mut dyn FnMut(&Progress)) -> Report {
    let n = o.endpoints.unwrap_or(8);
    let duration = o.duration_ms.unwrap_or(120_000);
    let eps = fleet(o.seed, n, 14_500.0);
    let total = 2 * NAMES.len();
    let mut done = 0;
    let low = run_all(&base_spec(o.seed, eps.clone(), 1000.0, duration), "1k QPS", &mut done, total, progress);
    let high = run_all(&base_spec(o.seed, eps, 10_000.0, duration), "10k QPS", &mut done, total, progress);
    let rows = low
        .iter()
        .zip(&high)
        .map(|(l, h)| {
            vec![
                l.strategy.clone(),
                num(l.latency.mean_ms(), 1),
                num(l.latency.quantile_ms(0.99), 1),
                num(l.error_pct(), 2),
                num(h.latency.mean_ms(), 1),
                num(h.latency.quantile_ms(0.99), 1),
                num(h.error_pct(), 2),
                if l.strategy == "round_robin" { "1k: 45 ms, 0.3%; 10k: 320 ms, 6.8%".into() } else { String::new() },
            ]
        })
        .collect();
    let shares = low.iter().chain(&high).map(|r| r.simulated).sum();
    Report {
        setup: format!(
            "{n} endpoints (capacity 14.5k shares/s in total, 3x spread, RTT 15-65 ms), {}s simulated per run, \
             Poisson arrivals at 1k and 10k QPS, telemetry polled every 10 s, queue limit 1 s. --miners is not used: \
             the article's table is by QPS.",
            duration / 1000
        ),
        tables: vec![Table {
            name: "rr_load".into(),
            title: "Latency and errors under load (article: round robin, 1k and 10k QPS)".into(),
            columns: columns(&[
                "strategy",
                "1k_mean_ms",
                "1k_p99_ms",
                "1k_errors_pct",
                "10k_mean_ms",
                "10k_p99_ms",
                "10k_errors_pct",
                "article",
            ]),
            rows,
        }],
        charts: vec![
            bars("mean_latency_10k", "Mean submit latency at 10k QPS", "ms", &high, |r| r.latency.mean_ms()),
            bars("errors_10k", "Errors at 10k QPS", "% of submits", &high, RunStats::error_pct),
        ],
        shares_simulated: shares,
        ..Report::default()
    }
}

fn latency_loss(o: &Options, progress: &mut dyn FnMut(&Progress)) -> Report {
    let n = o.endpoints.unwrap_or(8);
    let miners = o.miners.unwrap_or(9000);
    let duration = o.duration_ms.unwrap_or(180_000);
    let mut spec = base_spec(o.seed, fleet(o.seed, n, 14_500.0), miners as f64, duration);
    // Congested links, sized so that round robin sees the article's production mix (68 % of
    // submits under 100 ms, 22 % at 100-300 ms, 10 % over 300 ms): two endpoints' paths add
    // 150 ms for 90 % of the run, a third's adds 400 ms and loses 40 % of its throughput for 80 %.
    let at = |f: f64| (duration as f64 * f) as u64 + 3_700;
    let slow = |endpoint: usize, from: f64, to: f64, extra_ms: f64, capacity_factor: f64| Incident::Degrade {
        endpoint: endpoint % n,
        from_ms: at(from),
        to_ms: at(to),
        capacity_factor,
        extra_ms,
        error_rate: 0.0,
    };
    spec.incidents =
        vec![slow(0, 0.1, 0.9, 400.0, 0.6), slow(1, 0.05, 0.95, 150.0, 1.0), slow(2, 0.05, 0.95, 150.0, 1.0)];
    let mut done = 0;
    let runs = run_all(&spec, "latency-loss", &mut done, NAMES.len(), progress);
    let mut columns = routing_columns(&[]);
    for (b, _) in LATENCY_BUCKETS {
        columns.push(format!("submits_{b}_pct"));
        columns.push(format!("lost_{b}_pct"));
    }
    let mut rows: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            let mut row = routing_row(r);
            for b in 0..LATENCY_BUCKETS.len() {
                row.push(num(super::stats::pct(r.bucket_shares[b], r.shares), 1));
                row.push(num(super::stats::pct(r.bucket_stale[b], r.shares), 3));
            }
            row
        })
        .collect();
    // The article's production figures: share of submits and GH/s lost per bucket.
    rows.push(vec![
        "article (production pool)".into(),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
        "68".into(),
        "12 GH/s".into(),
        "22".into(),
        "35 GH/s".into(),
        "10".into(),
        "78 GH/s".into(),
    ]);
    let rr = find(&runs, "round_robin");
    let hm = find(&runs, "hashmesh_planner");
    let reduction = if rr.stale_pct() > 0.0 { (1.0 - hm.stale_pct() / rr.stale_pct()) * 100.0 } else { 0.0 };
    Report {
        setup: format!(
            "{n} endpoints (14.5k shares/s in total), {miners} miners at 1 share/s in {GROUPS} groups, {}s simulated; \
             congested links sized so that round robin sees the article's mix (68/22/10%): endpoints 1 and 2 get \
             +150 ms from {}s to {}s, endpoint 0 +400 ms and 60% throughput from {}s to {}s. Work goes stale when the job changes (Poisson, every {}s on average) between the miner's last notify \
             and the pool validating the share. lost_* = stale shares in that bucket as % of all submits.",
            duration / 1000,
            at(0.05) / 1000,
            at(0.95) / 1000,
            at(0.1) / 1000,
            at(0.9) / 1000,
            JOB_INTERVAL_MS / 1000.0
        ),
        tables: vec![Table {
            name: "latency_loss".into(),
            title: "Submit latency buckets and hashrate lost to stale work".into(),
            columns,
            rows,
        }],
        charts: vec![
            bars("stale", "Hashrate lost to stale work", "% of submitted work", &runs, RunStats::stale_pct),
            bars("p99", "p99 submit latency", "ms", &runs, |r| r.latency.quantile_ms(0.99)),
        ],
        verdicts: vec![Verdict {
            target: "latency-loss: hashmesh stale loss at least 60% lower than round robin".into(),
            measured: format!(
                "round robin {}%, hashmesh {}% ({}% lower)",
                num(rr.stale_pct(), 3),
                num(hm.stale_pct(), 3),
                num(reduction, 1)
            ),
            met: reduction >= 60.0,
        }],
        notes: vec!["the article does not give its fleet's total hashrate, so its GH/s column compares by shape: \
                     most loss comes from the slowest 10% of submits"
            .into()],
        shares_simulated: runs.iter().map(|r| r.simulated).sum(),
        ..Report::default()
    }
}

fn scale_out(o: &Options, progress: &mut dyn FnMut(&Progress)) -> Report {
    let n0 = o.endpoints.unwrap_or(8);
    let miners = o.miners.unwrap_or(9000);
    let duration = o.duration_ms.unwrap_or(600_000);
    let join_at = duration / 5;
    let mut eps = fleet(o.seed, n0, 11_000.0);
    let newcomers = (n0 / 2).max(1);
    for mut e in fleet(o.seed.wrapping_add(1), newcomers, 6_000.0) {
        e.joins_at_ms = join_at;
        eps.push(e);
    }
    let caps_before: Vec<f64> = eps.iter().map(|e| if e.joins_at_ms == 0 { e.capacity_qps } else { 0.0 }).collect();
    let caps_after: Vec<f64> = eps.iter().map(|e| e.capacity_qps).collect();
    let mut spec = base_spec(o.seed, eps, miners as f64, duration);
    spec.windows = vec![(join_at / 2, join_at), (join_at, duration)];
    let mut done = 0;
    let runs = run_all(&spec, "scale-out", &mut done, NAMES.len(), progress);
    let after_latency = |r: &RunStats| {
        let step = spec.timeline_step_ms;
        let pts: Vec<_> =
            r.timeline.iter().enumerate().filter(|(i, _)| *i as u64 * step >= join_at).map(|(_, p)| *p).collect();
        let (sum, n) = pts.iter().fold((0.0, 0u64), |(s, n), p| (s + p.latency_sum_ms, n + p.accepted));
        if n == 0 {
            0.0
        } else {
            sum / n as f64
        }
    };
    let rows = runs
        .iter()
        .map(|r| {
            vec![
                r.strategy.clone(),
                num(r.deviation_pct(0, &caps_before), 1),
                num(r.deviation_pct(1, &caps_after), 1),
                num(after_latency(r), 1),
                num(r.latency.quantile_ms(0.99), 1),
                num(r.error_pct(), 2),
                match r.strategy.as_str() {
                    "round_robin" => "plain: 65%, 150 ms (before: 72%, 120 ms)".into(),
                    "article_dynamic_weights" => "weighted: 23%, 98 ms".into(),
                    _ => String::new(),
                },
            ]
        })
        .collect();
    let hm = find(&runs, "hashmesh_planner");
    let aw = find(&runs, "article_dynamic_weights");
    let hm_dev = hm.deviation_pct(1, &caps_after);
    let (hm_lat, aw_lat) = (after_latency(hm), after_latency(aw));
    Report {
        setup: format!(
            "{n0} endpoints (11k shares/s) carry {miners} miners (1 share/s each, {GROUPS} groups); at {}s {newcomers} \
             new endpoints (6k shares/s) join cold (half speed, full after 120 s). {}s simulated. Deviation = mean \
             absolute deviation of each endpoint's served shares from its capacity-proportional share, % of that \
             share; before = [{}s, {}s), after = [{}s, end).",
            join_at / 1000,
            duration / 1000,
            join_at / 2000,
            join_at / 1000,
            join_at / 1000
        ),
        tables: vec![Table {
            name: "scale_out".into(),
            title: "Scale-out: request deviation and latency after new endpoints join".into(),
            columns: columns(&[
                "strategy",
                "deviation_before_pct",
                "deviation_after_pct",
                "mean_after_ms",
                "p99_ms",
                "errors_pct",
                "article",
            ]),
            rows,
        }],
        charts: vec![
            bars("deviation", "Request deviation after scale-out", "% of fair share", &runs, |r| {
                r.deviation_pct(1, &caps_after)
            }),
            timeline(
                "latency_timeline",
                "Mean latency over time (endpoints join at the marked time)",
                "ms",
                &runs,
                spec.timeline_step_ms,
                mean_latency,
            ),
        ],
        verdicts: vec![
            Verdict {
                target: "scale-out: hashmesh request deviation <= 10% (article: 72% -> 23%)".into(),
                measured: format!("{}%", num(hm_dev, 1)),
                met: hm_dev <= 10.0,
            },
            Verdict {
                target: "scale-out: hashmesh mean latency <= 0.8 x the article's weighted strategy".into(),
                measured: format!(
                    "hashmesh {} ms vs article_dynamic_weights {} ms (ratio {})",
                    num(hm_lat, 1),
                    num(aw_lat, 1),
                    num(if aw_lat > 0.0 { hm_lat / aw_lat } else { 0.0 }, 2)
                ),
                met: aw_lat > 0.0 && hm_lat <= 0.8 * aw_lat,
            },
        ],
        shares_simulated: runs.iter().map(|r| r.simulated).sum(),
        ..Report::default()
    }
}

fn largest(eps: &[EndpointSpec]) -> usize {
    eps.iter().enumerate().max_by(|a, b| a.1.capacity_qps.total_cmp(&b.1.capacity_qps)).map_or(0, |(i, _)| i)
}

fn failover(o: &Options, progress: &mut dyn FnMut(&Progress)) -> Report {
    let n = o.endpoints.unwrap_or(8);
    let miners = o.miners.unwrap_or(8000);
    let duration = o.duration_ms.unwrap_or(300_000);
    let eps = fleet(o.seed, n, 14_500.0);
    let big = largest(&eps);
    let other = (big + 1) % n;
    let mut spec = base_spec(o.seed, eps, miners as f64, duration);
    spec.timeline_step_ms = (duration / 300).max(1000);
    // Off the 10 s poll grid, so detection is not a coincidence of timing.
    let (fail_at, recover_at) = (duration / 5 + 3_700, duration / 2 + 3_700);
    let (degrade_at, degrade_end) = (duration * 3 / 5 + 3_700, duration * 4 / 5 + 3_700);
    spec.incidents = vec![
        Incident::Fail { endpoint: big, from_ms: fail_at, to_ms: recover_at },
        Incident::Degrade {
            endpoint: other,
            from_ms: degrade_at,
            to_ms: degrade_end,
            capacity_factor: 0.35,
            extra_ms: 80.0,
            error_rate: 0.02,
        },
    ];
    let mut done = 0;
    let runs = run_all(&spec, "failover", &mut done, NAMES.len(), progress);
    let rows = runs
        .iter()
        .map(|r| {
            let mut row = routing_row(r);
            row.push(r.failures[0].to_string());
            row.push(r.detections_ms.first().map_or("-".into(), |d| num(d / 1000.0, 1)));
            row
        })
        .collect();
    Report {
        setup: format!(
            "{n} endpoints (14.5k shares/s), {miners} miners; the largest endpoint ({big}) is down from {}s to {}s; \
             endpoint {other} runs at 35% speed with +80 ms and 2% errors from {}s to {}s. {}s simulated. \
             detect_s = from the failure until the strategy stopped picking the dead endpoint (poll or ejection).",
            num(fail_at as f64 / 1000.0, 1),
            num(recover_at as f64 / 1000.0, 1),
            num(degrade_at as f64 / 1000.0, 1),
            num(degrade_end as f64 / 1000.0, 1),
            duration / 1000
        ),
        tables: vec![Table {
            name: "failover".into(),
            title: "Failover: errors, detection and latency".into(),
            columns: routing_columns(&["sent_to_dead", "detect_s"]),
            rows,
        }],
        charts: vec![
            timeline("errors_timeline", "Errors over time", "% of submits", &runs, spec.timeline_step_ms, error_pct),
            bars("errors", "Errors over the run", "% of submits", &runs, RunStats::error_pct),
        ],
        shares_simulated: runs.iter().map(|r| r.simulated).sum(),
        ..Report::default()
    }
}

fn mixed(o: &Options, progress: &mut dyn FnMut(&Progress)) -> Report {
    let n0 = o.endpoints.unwrap_or(8);
    let miners = o.miners.unwrap_or(9000);
    let duration = o.duration_ms.unwrap_or(480_000);
    let at = |f: f64| (duration as f64 * f) as u64;
    let mut eps = fleet(o.seed, n0, 13_000.0);
    for mut e in fleet(o.seed.wrapping_add(1), (n0 / 2).max(1), 5000.0) {
        e.joins_at_ms = at(0.3);
        eps.push(e);
    }
    let big = largest(&eps[..n0]);
    let slow = (big + 1) % n0;
    let caps: Vec<f64> = eps.iter().map(|e| e.capacity_qps).collect();
    let mut spec = base_spec(o.seed, eps, miners as f64, duration);
    spec.workload.spikes = vec![Spike { from_ms: at(0.2), to_ms: at(0.27), factor: 1.4 }];
    spec.incidents = vec![
        Incident::Fail { endpoint: big, from_ms: at(0.42), to_ms: at(0.55) },
        Incident::Degrade {
            endpoint: slow,
            from_ms: at(0.62),
            to_ms: at(0.88),
            capacity_factor: 0.35,
            extra_ms: 80.0,
            error_rate: 0.02,
        },
    ];
    spec.windows = vec![(at(0.3), duration)];
    let mut done = 0;
    let runs = run_all(&spec, "mixed", &mut done, NAMES.len(), progress);
    let lost = |r: &RunStats| r.error_pct() + r.stale_pct();
    let rows = runs
        .iter()
        .map(|r| {
            let mut row = routing_row(r);
            row.push(num(lost(r), 2));
            row.push(num(r.deviation_pct(0, &caps), 1));
            row
        })
        .collect();
    let hm = find(&runs, "hashmesh_planner");
    let p2c = find(&runs, "p2c_peak_ewma");
    let p99 = |r: &RunStats| r.latency.quantile_ms(0.99);
    let beaten: Vec<&RunStats> =
        runs.iter().filter(|r| is_article(&r.strategy)).filter(|r| !(p99(hm) < p99(r) && lost(hm) < lost(r))).collect();
    Report {
        setup: format!(
            "{n0} endpoints (13k shares/s), {miners} miners; load x1.4 from {}s to {}s; {} endpoints (5k shares/s) \
             join at {}s; the largest endpoint is down from {}s to {}s; another runs at 35% speed (+80 ms, 2% errors) \
             from {}s to {}s. {}s simulated. lost_pct = errors + stale work; deviation over [{}s, end).",
            at(0.2) / 1000,
            at(0.27) / 1000,
            (n0 / 2).max(1),
            at(0.3) / 1000,
            at(0.42) / 1000,
            at(0.55) / 1000,
            at(0.62) / 1000,
            at(0.88) / 1000,
            duration / 1000,
            at(0.3) / 1000
        ),
        tables: vec![Table {
            name: "mixed".into(),
            title: "Mixed: everything at once".into(),
            columns: routing_columns(&["lost_pct", "deviation_pct"]),
            rows,
        }],
        charts: vec![
            bars("p99", "p99 submit latency", "ms", &runs, p99),
            bars("lost", "Work lost (errors + stale)", "% of submits", &runs, lost),
            timeline("latency_timeline", "Mean latency over time", "ms", &runs, spec.timeline_step_ms, mean_latency),
        ],
        verdicts: vec![
            Verdict {
                target: "mixed: hashmesh p99 <= power of two choices with peak EWMA".into(),
                measured: format!("hashmesh {} ms vs p2c_peak_ewma {} ms", num(p99(hm), 1), num(p99(p2c), 1)),
                met: p99(hm) <= p99(p2c),
            },
            Verdict {
                target: "mixed: hashmesh better than every article strategy (lower p99 and lower lost work)".into(),
                measured: if beaten.is_empty() {
                    "better than all four".into()
                } else {
                    format!(
                        "not better than: {}",
                        beaten.iter().map(|r| r.strategy.as_str()).collect::<Vec<_>>().join(", ")
                    )
                },
                met: beaten.is_empty(),
            },
        ],
        shares_simulated: runs.iter().map(|r| r.simulated).sum(),
        ..Report::default()
    }
}
