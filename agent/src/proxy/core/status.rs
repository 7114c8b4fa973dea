//! What the proxy tells others: measurements for the heartbeats, and the status snapshot
//! (`proxy.json`, `hashmesh-agent status`) — in which credentials never appear.

use std::collections::BTreeMap;

use hashmesh_protocol::{EndpointId, EndpointWindow, GroupId};
use hashmesh_telemetry::LatencyHistogram;
use serde::Serialize;

use super::{Failover, Link, Proxy};
use crate::proxy::meter::{Counts, UpstreamNow};

/// Upper bounds of the submit-latency histogram's Prometheus buckets, seconds.
pub const LATENCY_BUCKETS_SECONDS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

impl Proxy {
    // ---- what the agent tells others ------------------------------------------------------

    /// Close the report window at `now_ms`: what each upstream measured since the previous
    /// call (for the node).
    pub fn windows(&mut self, now_ms: u64) -> Vec<EndpointWindow> {
        let now: Vec<UpstreamNow> = self
            .upstreams
            .iter()
            .map(|(e, u)| UpstreamNow {
                endpoint: e.clone(),
                down: u.link != Link::Ready,
                miners: u32::try_from(self.miners.values().filter(|m| m.at.as_ref() == Some(e)).count())
                    .unwrap_or(u32::MAX),
                in_flight: u32::try_from(u.in_flight.len()).unwrap_or(u32::MAX),
            })
            .collect();
        self.meter.windows(now_ms, &now)
    }

    /// A snapshot for `hashmesh-agent status`, tests and the status file. Credentials never
    /// appear in it.
    #[must_use]
    pub fn status(&self, now_ms: u64) -> ProxyStatus {
        let endpoints = self
            .upstreams
            .iter()
            .map(|(e, u)| {
                let m = self.meter.endpoints().get(e);
                let totals = m.map(|m| m.total).unwrap_or_default();
                EndpointStatus {
                    hashrate_hs: m.map_or(0, |m| m.hashrate.hs(now_ms)),
                    submit_latency: m.map(|m| LatencySummary::of(&m.latency)).unwrap_or_default(),
                    last_job_age_ms: u.last_job_ms.map(|t| now_ms.saturating_sub(t)),
                    endpoint: e.clone(),
                    link: u.link,
                    usable: self.usable(e, now_ms),
                    standby_login: u.standby,
                    miners: self.miners.values().filter(|m| m.at.as_ref() == Some(e)).count(),
                    difficulty: u.difficulty,
                    in_flight: u.in_flight.len(),
                    failures: u.failures,
                    last_error: u.last_error.clone(),
                    totals,
                }
            })
            .collect();
        let groups = self
            .groups
            .iter()
            .map(|(gid, g)| GroupStatus {
                group: gid.clone(),
                directive: g.route.as_ref().map(|r| r.directive.to_hex()),
                targets: g
                    .route
                    .as_ref()
                    .map(|r| r.effective().into_iter().map(|t| (t.endpoint, t.weight_bp)).collect())
                    .unwrap_or_default(),
                live: self.live_targets(g, now_ms).into_iter().map(|(e, _)| e).collect(),
                miners: self.miners.values().filter(|m| m.group.as_ref() == Some(gid)).count(),
                accepted_difficulty: g.accepted.clone(),
            })
            .collect();
        ProxyStatus {
            miners: self.miners.len(),
            endpoints,
            groups,
            failovers: self.failovers.iter().cloned().collect(),
            hashrate_window_secs: crate::proxy::meter::HASHRATE_WINDOW_SECS,
            workers: {
                let mut connected: BTreeMap<&str, usize> = BTreeMap::new();
                for m in self.miners.values() {
                    *connected.entry(m.worker.as_str()).or_default() += 1;
                }
                self.meter
                    .workers()
                    .iter()
                    .map(|(w, m)| {
                        let miners = connected.get(w.as_str()).copied().unwrap_or(0);
                        (w.clone(), WorkerStatus { totals: m.total, hashrate_hs: m.hashrate.hs(now_ms), miners })
                    })
                    .collect()
            },
        }
    }
}

/// One upstream in [`ProxyStatus`].
#[derive(Debug, Clone, Serialize)]
pub struct EndpointStatus {
    /// The endpoint.
    pub endpoint: EndpointId,
    /// Its connection.
    link: Link,
    /// Whether work goes there now.
    pub usable: bool,
    /// Logged in with a lender's standby credential: a fallback before any loan (its work is
    /// measured, and settled by no loan).
    pub standby_login: bool,
    /// Miners whose work goes there.
    pub miners: usize,
    /// Its share difficulty.
    pub difficulty: f64,
    /// Shares waiting for its verdict.
    pub in_flight: usize,
    /// Times it failed since the agent started.
    pub failures: u32,
    /// Why it last failed.
    pub last_error: Option<String>,
    /// Shares and difficulty since the agent started.
    pub totals: Counts,
    /// Hashrate from accepted difficulty over the last `hashrate_window_secs`, H/s.
    pub hashrate_hs: u64,
    /// Submit → verdict latency since the agent started.
    pub submit_latency: LatencySummary,
    /// Time since the endpoint's last job, ms (`None`: no job yet).
    pub last_job_age_ms: Option<u64>,
}

/// A latency histogram summarised: percentiles and Prometheus buckets.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LatencySummary {
    /// Samples.
    pub count: u64,
    /// Sum of samples, seconds.
    pub sum_seconds: f64,
    /// Median, ms.
    pub p50_ms: f64,
    /// 90th percentile, ms.
    pub p90_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Cumulative counts at each of [`LATENCY_BUCKETS_SECONDS`].
    pub buckets: Vec<(f64, u64)>,
}

impl LatencySummary {
    fn of(h: &LatencyHistogram) -> Self {
        Self {
            count: h.count(),
            sum_seconds: h.sum_seconds(),
            p50_ms: h.quantile_ms(0.5),
            p90_ms: h.quantile_ms(0.9),
            p99_ms: h.quantile_ms(0.99),
            buckets: LATENCY_BUCKETS_SECONDS
                .iter()
                .map(|&le| (le, h.count_at_or_below_us((le * 1e6).round() as u64)))
                .collect(),
        }
    }
}

/// One worker in [`ProxyStatus`].
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct WorkerStatus {
    /// Shares and difficulty since the agent started, and the last share.
    #[serde(flatten)]
    pub totals: Counts,
    /// Hashrate from accepted difficulty over the last `hashrate_window_secs`, H/s.
    pub hashrate_hs: u64,
    /// Connections working under this worker name now.
    pub miners: usize,
}

/// One group in [`ProxyStatus`].
#[derive(Debug, Clone, Serialize)]
pub struct GroupStatus {
    /// The group.
    pub group: GroupId,
    /// The directive of its route (hex), if one arrived.
    pub directive: Option<String>,
    /// The route in effect (drained endpoints removed).
    pub targets: Vec<(EndpointId, u16)>,
    /// Where its work can go now.
    pub live: Vec<EndpointId>,
    /// Its miners.
    pub miners: usize,
    /// Accepted difficulty per endpoint since its route took effect.
    pub accepted_difficulty: BTreeMap<EndpointId, f64>,
}

/// The proxy at a glance.
#[derive(Debug, Clone, Serialize)]
pub struct ProxyStatus {
    /// Miners connected.
    pub miners: usize,
    /// Upstreams.
    pub endpoints: Vec<EndpointStatus>,
    /// Groups.
    pub groups: Vec<GroupStatus>,
    /// Recent failovers, oldest first.
    pub failovers: Vec<Failover>,
    /// The window hashrates are estimated over, seconds.
    pub hashrate_window_secs: u64,
    /// Per worker (up to the configured bound; off when it is 0).
    pub workers: BTreeMap<String, WorkerStatus>,
}
