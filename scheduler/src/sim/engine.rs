//! The discrete-event core: Poisson share arrivals, FIFO endpoints (Lindley recursion, so a
//! share costs O(log in-flight)), telemetry polls, planner epochs, and completions delivered to
//! the strategy when they happen (never earlier).

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use super::model::{EndpointSpec, Incident, RunSpec, COLD_START_MS};
use super::stats::{latency_bucket, Failure, RunStats, WindowPoint};
use super::strategy::{pick, Kind, Strategy};
use crate::balancer::EndpointView;
use crate::forecast::Ewma;
use crate::health::{health, HealthWeights};
use crate::outlier::{OutlierConfig, OutlierDetector};
use crate::rng::Rng;
use crate::telemetry::Telemetry;

/// A share's answer reaching the miner (and the balancer).
struct Completion {
    at_ms: f64,
    seq: u64,
    endpoint: usize,
    latency_ms: f64,
    ok: bool,
}

impl PartialEq for Completion {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Completion {}
impl PartialOrd for Completion {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Completion {
    // Reversed: BinaryHeap is a max-heap and we want the earliest first.
    fn cmp(&self, o: &Self) -> Ordering {
        o.at_ms.total_cmp(&self.at_ms).then(o.seq.cmp(&self.seq))
    }
}

/// Per-endpoint counters since the last poll.
#[derive(Clone, Copy, Default)]
struct Window {
    requests: u64,
    errors: u64,
    accepted: u64,
    latency_sum_ms: f64,
    busy_ms: f64,
}

/// The condition of an endpoint at some instant.
#[derive(Clone, Copy)]
struct Condition {
    dead: bool,
    capacity_factor: f64,
    extra_ms: f64,
    extra_errors: f64,
}

fn condition(i: usize, now: u64, incidents: &[Incident]) -> Condition {
    let mut c = Condition { dead: false, capacity_factor: 1.0, extra_ms: 0.0, extra_errors: 0.0 };
    for inc in incidents {
        match *inc {
            Incident::Fail { endpoint, from_ms, to_ms } if endpoint == i && (from_ms..to_ms).contains(&now) => {
                c.dead = true;
            }
            Incident::Degrade { endpoint, from_ms, to_ms, capacity_factor, extra_ms, error_rate }
                if endpoint == i && (from_ms..to_ms).contains(&now) =>
            {
                c.capacity_factor *= capacity_factor;
                c.extra_ms += extra_ms;
                c.extra_errors += error_rate;
            }
            _ => {}
        }
    }
    c
}

/// Milliseconds at which some endpoint's condition or the arrival rate changes.
fn boundaries(spec: &RunSpec) -> Vec<u64> {
    let mut b: Vec<u64> = spec
        .incidents
        .iter()
        .flat_map(|i| match *i {
            Incident::Fail { from_ms, to_ms, .. } | Incident::Degrade { from_ms, to_ms, .. } => [from_ms, to_ms],
        })
        .chain(spec.workload.spikes.iter().flat_map(|s| [s.from_ms, s.to_ms]))
        .chain(spec.endpoints.iter().map(|e| e.joins_at_ms))
        .collect();
    b.sort_unstable();
    b.dedup();
    b
}

fn rate_at(spec: &RunSpec, now: u64) -> f64 {
    spec.workload
        .spikes
        .iter()
        .filter(|s| (s.from_ms..s.to_ms).contains(&now))
        .fold(spec.workload.qps, |r, s| r * s.factor)
}

fn job_changes(spec: &RunSpec) -> Vec<f64> {
    let mut rng = Rng::new(spec.seed ^ 0x10B5_0000_0000_0003);
    let mut t = 0.0;
    let mut v = Vec::new();
    let end = spec.duration_ms as f64 + 10_000.0;
    while spec.workload.job_interval_ms > 0.0 && t < end {
        t += -(1.0 - rng.unit()).ln() * spec.workload.job_interval_ms;
        v.push(t);
    }
    v
}

fn exp(u: f64) -> f64 {
    -(1.0 - u).ln()
}

/// Tick length: ejection expiry, ramps, due planner moves, polls are checked this often.
const TICK_MS: u64 = 1000;

/// Simulate `spec` under strategy `s`. `progress(now_ms)` is called about every simulated
/// ten seconds.
#[allow(clippy::too_many_lines)]
pub fn run(spec: &RunSpec, mut s: Strategy, progress: &mut dyn FnMut(u64)) -> RunStats {
    let n = spec.endpoints.len();
    let weights = HealthWeights::default();
    let mut stats = RunStats {
        strategy: s.name().to_string(),
        served: vec![vec![0; spec.windows.len()]; n],
        timeline: vec![WindowPoint::default(); (spec.duration_ms / spec.timeline_step_ms.max(1) + 1) as usize],
        ..RunStats::default()
    };
    let mut wl = Rng::new(spec.seed);
    let mut brng = Rng::new(spec.seed ^ 0xBA1A_0000_0000_0004);
    let jobs = job_changes(spec);
    let bounds = boundaries(spec);
    let mut next_bound = 0;
    let group_cum: Vec<f64> = spec
        .workload
        .group_weights
        .iter()
        .scan(0.0, |acc, w| {
            *acc += w;
            Some(*acc)
        })
        .collect();
    let group_total = group_cum.last().copied().unwrap_or(0.0);

    let joined_at = |e: &EndpointSpec, now: u64| e.joins_at_ms <= now;
    let mut conds: Vec<Condition> = (0..n).map(|i| condition(i, 0, &spec.incidents)).collect();
    let mut rate = rate_at(spec, 0);
    let mut busy_until = vec![0.0f64; n];
    let mut windows = vec![Window::default(); n];
    let mut forecasts = vec![Ewma::new(0.5); n];
    let mut outlier = OutlierDetector::new(OutlierConfig::default(), n);
    let mut polled_up: Vec<bool> = spec.endpoints.iter().zip(&conds).map(|(e, c)| joined_at(e, 0) && !c.dead).collect();
    let mut views: Vec<EndpointView> = spec
        .endpoints
        .iter()
        .enumerate()
        .map(|(i, e)| EndpointView {
            up: polled_up[i],
            capacity: if joined_at(e, 0) { e.capacity_qps } else { 0.0 },
            health: 1.0,
            pending: 0,
            latency_ms: e.rtt_ms,
            hashrate: e.capacity_qps,
            forecast_qps: 0.0,
            ramp: 1.0,
        })
        .collect();
    let mut joined: Vec<bool> = spec.endpoints.iter().map(|e| joined_at(e, 0)).collect();
    if let Kind::Planner(p) = &mut s.kind {
        let expected: Vec<f64> = spec
            .workload
            .group_weights
            .iter()
            .map(|w| spec.workload.qps * w / group_total.max(f64::MIN_POSITIVE))
            .collect();
        p.start(&expected, &views, &joined);
    }
    // Failure bookkeeping: when each endpoint died, and whether the strategy noticed.
    let mut died_at: Vec<Option<u64>> = vec![None; n];

    let mut heap: BinaryHeap<Completion> = BinaryHeap::new();
    let mut seq = 0u64;
    let mut t = 0.0f64;
    let mut next_tick = TICK_MS;
    let mut last_poll = 0u64;
    let mut next_poll = match &s.kind {
        Kind::Planner(p) => p.epoch_for(0.0),
        Kind::Balancer(_) => spec.poll_ms,
    };
    let mut next_progress = 10_000u64;
    let duration = spec.duration_ms as f64;

    loop {
        t += exp(wl.unit()) * 1000.0 / rate.max(1e-9);
        let now_f = t.min(duration);
        // Deliver completions and run ticks in time order up to `now_f`.
        loop {
            let next_c = heap.peek().map_or(f64::INFINITY, |c| c.at_ms);
            let tick = next_tick as f64;
            let bound = bounds.get(next_bound).map_or(f64::INFINITY, |b| *b as f64);
            if bound <= now_f && bound <= next_c && bound <= tick {
                // An incident starts or ends, a spike begins, an endpoint joins.
                let now = bounds[next_bound];
                next_bound += 1;
                for i in 0..n {
                    let c = condition(i, now, &spec.incidents);
                    if c.dead && !conds[i].dead {
                        died_at[i] = Some(now);
                    }
                    if !c.dead {
                        died_at[i] = None;
                    }
                    conds[i] = c;
                }
                rate = rate_at(spec, now);
            } else if next_c <= now_f && next_c <= tick {
                let c = heap.pop().expect("peeked");
                let v = &mut views[c.endpoint];
                v.pending = v.pending.saturating_sub(1);
                if let Kind::Balancer(b) = &mut s.kind {
                    b.observe(c.endpoint, if c.ok { c.latency_ms } else { spec.timeout_ms }, c.at_ms as u64);
                }
                if s.outlier {
                    let was = outlier.is_ejected(c.endpoint, c.at_ms as u64);
                    outlier.record(c.endpoint, c.ok, c.at_ms as u64);
                    if !was && outlier.is_ejected(c.endpoint, c.at_ms as u64) {
                        views[c.endpoint].up = false;
                        if let Some(d) = died_at[c.endpoint].take() {
                            stats.detections_ms.push(c.at_ms - d as f64);
                        }
                    }
                }
            } else if tick <= now_f {
                let now = next_tick;
                next_tick += TICK_MS;
                if let Kind::Planner(p) = &mut s.kind {
                    p.apply_due(now);
                }
                if now >= next_poll {
                    let elapsed = (now - last_poll).max(1);
                    let mut util_sum = 0.0;
                    for i in 0..n {
                        let e = &spec.endpoints[i];
                        let w = std::mem::take(&mut windows[i]);
                        joined[i] = joined_at(e, now);
                        let util = (w.busy_ms / elapsed as f64).min(1.0);
                        util_sum += util;
                        let v = &mut views[i];
                        if w.accepted > 0 {
                            v.latency_ms = w.latency_sum_ms / w.accepted as f64;
                        }
                        let err = if w.requests > 0 { w.errors as f64 / w.requests as f64 } else { 0.0 };
                        let tel = Telemetry {
                            cpu: util,
                            memory: 0.2 + 0.5 * util,
                            latency_ms_p50: v.latency_ms as u32,
                            error_rate: err,
                            ..Telemetry::default()
                        };
                        v.health = health(&tel, &weights);
                        forecasts[i].update(w.requests as f64 * 1000.0 / elapsed as f64);
                        v.forecast_qps = forecasts[i].value();
                        v.capacity = if joined[i] { e.capacity_qps } else { 0.0 };
                        let uptime = if e.joins_at_ms == 0 { u64::MAX / 2 } else { now.saturating_sub(e.joins_at_ms) };
                        v.ramp = s.ramp.factor(uptime, util);
                        let was_up = polled_up[i];
                        polled_up[i] = joined[i] && !conds[i].dead;
                        if was_up && !polled_up[i] && v.up {
                            if let Some(d) = died_at[i].take() {
                                stats.detections_ms.push((now - d) as f64);
                            }
                        }
                    }
                    let mean_util = util_sum / n.max(1) as f64;
                    last_poll = now;
                    next_poll = now
                        + match &s.kind {
                            Kind::Planner(p) => p.epoch_for(mean_util),
                            Kind::Balancer(_) => spec.poll_ms,
                        };
                    if let Kind::Planner(p) = &mut s.kind {
                        for i in 0..n {
                            views[i].up = polled_up[i] && !outlier.is_ejected(i, now);
                        }
                        p.epoch(now, elapsed, &views, &joined);
                    }
                }
                for i in 0..n {
                    views[i].up = polled_up[i] && !(s.outlier && outlier.is_ejected(i, now));
                }
                if now >= next_progress {
                    progress(now);
                    next_progress += 10_000;
                }
            } else {
                break;
            }
        }
        if t >= duration {
            break;
        }
        let now = t as u64;
        // The workload's randomness: the same draws for every strategy.
        let u_group = wl.unit();
        let u_net = wl.unit();
        let u_service = wl.unit();
        let u_err = wl.unit();
        let group = group_cum.partition_point(|c| *c <= u_group * group_total).min(group_cum.len().saturating_sub(1));
        stats.simulated += 1;
        let measured = now >= spec.warmup_ms;
        let step = (now / spec.timeline_step_ms.max(1)) as usize;
        if measured {
            stats.shares += 1;
            stats.timeline[step].shares += 1;
        }
        let fail = |stats: &mut RunStats, f: Failure| {
            if measured {
                stats.failures[f as usize] += 1;
                stats.timeline[step].errors += 1;
            }
        };
        let Some(i) = pick(&mut s, group, &views, now, &mut brng) else {
            fail(&mut stats, Failure::NoEndpoint);
            continue;
        };
        let e = &spec.endpoints[i];
        let c = conds[i];
        let w = &mut windows[i];
        w.requests += 1;
        views[i].pending += 1;
        seq += 1;
        if c.dead {
            w.errors += 1;
            fail(&mut stats, Failure::Dead);
            heap.push(Completion {
                at_ms: t + spec.timeout_ms,
                seq,
                endpoint: i,
                latency_ms: spec.timeout_ms,
                ok: false,
            });
            continue;
        }
        let rtt = e.rtt_ms + e.jitter_ms * exp(u_net) + c.extra_ms;
        let arrive = t + rtt / 2.0;
        let start = arrive.max(busy_until[i]);
        if start - arrive > spec.max_queue_ms {
            w.errors += 1;
            fail(&mut stats, Failure::Overflow);
            heap.push(Completion { at_ms: t + rtt, seq, endpoint: i, latency_ms: rtt, ok: false });
            continue;
        }
        let cold = if e.joins_at_ms > 0 {
            0.5 + 0.5 * (now.saturating_sub(e.joins_at_ms) as f64 / COLD_START_MS as f64).min(1.0)
        } else {
            1.0
        };
        let service = exp(u_service) * 1000.0 / (e.capacity_qps * c.capacity_factor * cold).max(1e-9);
        busy_until[i] = start + service;
        w.busy_ms += service;
        let processed = start + service;
        let latency = processed + rtt / 2.0 - t;
        if u_err < e.error_rate + c.extra_errors {
            w.errors += 1;
            fail(&mut stats, Failure::Intrinsic);
            heap.push(Completion { at_ms: t + latency, seq, endpoint: i, latency_ms: latency, ok: false });
            continue;
        }
        w.accepted += 1;
        w.latency_sum_ms += latency;
        heap.push(Completion { at_ms: t + latency, seq, endpoint: i, latency_ms: latency, ok: true });
        if measured {
            // Stale: the job changed between the miner's last notify (one way before it found
            // the share) and the pool validating the share.
            let k = jobs.partition_point(|j| *j <= t - rtt / 2.0);
            let stale = k < jobs.len() && jobs[k] <= processed;
            let b = latency_bucket(latency);
            stats.latency.record_ms(latency);
            stats.bucket_shares[b] += 1;
            if stale {
                stats.stale += 1;
                stats.bucket_stale[b] += 1;
            }
            let tp = &mut stats.timeline[step];
            tp.accepted += 1;
            tp.latency_sum_ms += latency;
            for (k, (from, to)) in spec.windows.iter().enumerate() {
                if (*from..*to).contains(&now) {
                    stats.served[i][k] += 1;
                }
            }
        }
    }
    stats
}
