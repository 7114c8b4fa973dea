//! What the proxy measures, per endpoint and per worker: accepted / rejected / stale shares and
//! difficulty, submit latency (a mergeable HDR histogram), and the reports sent to the node in
//! heartbeats — each one the difference since the previous report, never a made-up number.

use std::collections::BTreeMap;

use hashmesh_protocol::limits::STRATUM_WORKERS_TRACKED_MAX;
use hashmesh_protocol::{EndpointId, TelemetryReport};
use hdrhistogram::Histogram;
use serde::Serialize;

/// Hashes per unit of share difficulty (difficulty 1 ≈ 2³² hashes).
pub const HASHES_PER_DIFFICULTY: f64 = 4_294_967_296.0;
/// Slowest submit latency the histograms record exactly, ms (slower ones are clamped to it).
pub const LATENCY_MS_RECORDED_MAX: u64 = 60_000;

/// Share counts and difficulty.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Counts {
    /// Shares the upstream accepted.
    pub accepted: u64,
    /// Shares refused (upstream or locally).
    pub rejected: u64,
    /// Shares that were stale: for a replaced job, or in flight when the upstream died.
    pub stale: u64,
    /// Sum of the difficulty of accepted shares.
    pub accepted_difficulty: f64,
}

impl Counts {
    fn minus(&self, earlier: &Counts) -> Counts {
        Counts {
            accepted: self.accepted - earlier.accepted,
            rejected: self.rejected - earlier.rejected,
            stale: self.stale - earlier.stale,
            accepted_difficulty: self.accepted_difficulty - earlier.accepted_difficulty,
        }
    }
}

/// One endpoint as this agent sees it.
#[derive(Debug, Clone)]
pub struct EndpointMeter {
    /// Everything since the agent started.
    pub total: Counts,
    at_last_report: Counts,
    last_report_ms: u64,
    /// Submit → verdict latency since the last report, ms.
    latency: Histogram<u64>,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_MS_RECORDED_MAX, 2).expect("valid bounds")
}

impl EndpointMeter {
    fn new(now_ms: u64) -> Self {
        Self {
            total: Counts::default(),
            at_last_report: Counts::default(),
            last_report_ms: now_ms,
            latency: histogram(),
        }
    }
}

/// All of the agent's measurements.
#[derive(Debug, Clone, Default)]
pub struct Meter {
    endpoints: BTreeMap<EndpointId, EndpointMeter>,
    workers: BTreeMap<String, Counts>,
}

/// A verdict or local answer, for the books.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted upstream.
    Accepted,
    /// Refused (upstream or locally).
    Rejected,
    /// Stale.
    Stale,
}

impl Meter {
    /// Count one share of `difficulty` by `worker` at `endpoint` (if it reached one).
    pub fn count(
        &mut self,
        endpoint: Option<&EndpointId>,
        worker: &str,
        outcome: Outcome,
        difficulty: f64,
        now_ms: u64,
    ) {
        let bump = |c: &mut Counts| match outcome {
            Outcome::Accepted => {
                c.accepted += 1;
                c.accepted_difficulty += difficulty;
            }
            Outcome::Rejected => c.rejected += 1,
            Outcome::Stale => c.stale += 1,
        };
        if let Some(e) = endpoint {
            bump(&mut self.endpoint(e, now_ms).total);
        }
        if !worker.is_empty() {
            if let Some(c) = self.workers.get_mut(worker) {
                bump(c);
            } else if self.workers.len() < STRATUM_WORKERS_TRACKED_MAX {
                bump(self.workers.entry(worker.to_owned()).or_default());
            }
        }
    }

    /// Record a submit's response time at `endpoint`.
    pub fn latency(&mut self, endpoint: &EndpointId, ms: u64, now_ms: u64) {
        let h = &mut self.endpoint(endpoint, now_ms).latency;
        h.saturating_record(ms.clamp(1, LATENCY_MS_RECORDED_MAX));
    }

    fn endpoint(&mut self, e: &EndpointId, now_ms: u64) -> &mut EndpointMeter {
        self.endpoints.entry(e.clone()).or_insert_with(|| EndpointMeter::new(now_ms))
    }

    /// Totals per endpoint.
    #[must_use]
    pub fn endpoints(&self) -> &BTreeMap<EndpointId, EndpointMeter> {
        &self.endpoints
    }

    /// Totals per worker.
    #[must_use]
    pub fn workers(&self) -> &BTreeMap<String, Counts> {
        &self.workers
    }

    /// One report per endpoint for what happened since the previous call: shares, hashrate
    /// from accepted difficulty, latency percentiles, error rate. `down` endpoints with no
    /// answered share in the window report a 100 % error rate; `miners` and `in_flight` are
    /// the proxy's current counts. CPU and memory are the endpoint owner's to measure: the
    /// agent reports 0 for them.
    pub fn reports(
        &mut self,
        now_ms: u64,
        down: &dyn Fn(&EndpointId) -> bool,
        miners: &dyn Fn(&EndpointId) -> u32,
        in_flight: &dyn Fn(&EndpointId) -> u32,
    ) -> Vec<(EndpointId, TelemetryReport)> {
        let mut out = Vec::new();
        for (e, m) in &mut self.endpoints {
            let d = m.total.minus(&m.at_last_report);
            let secs = (now_ms.saturating_sub(m.last_report_ms) as f64 / 1000.0).max(0.001);
            let answered = d.accepted + d.rejected + d.stale;
            let error_bp = match ((d.rejected + d.stale) * 10_000).checked_div(answered) {
                Some(bp) => u16::try_from(bp).unwrap_or(10_000),
                None if down(e) => 10_000,
                None => 0,
            };
            let (p50, p99) = if m.latency.is_empty() {
                (0, 0)
            } else {
                (m.latency.value_at_quantile(0.5), m.latency.value_at_quantile(0.99))
            };
            out.push((
                e.clone(),
                TelemetryReport {
                    epoch: now_ms,
                    hashrate_hs: (d.accepted_difficulty * HASHES_PER_DIFFICULTY / secs) as u64,
                    shares_accepted: d.accepted,
                    shares_rejected: d.rejected,
                    shares_stale: d.stale,
                    latency_ms_p50: u32::try_from(p50).unwrap_or(u32::MAX),
                    latency_ms_p99: u32::try_from(p99).unwrap_or(u32::MAX),
                    cpu_bp: 0,
                    memory_bp: 0,
                    error_bp,
                    queue_len: in_flight(e),
                    miners: miners(e),
                },
            ));
            m.at_last_report = m.total;
            m.last_report_ms = now_ms;
            m.latency.reset();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_are_differences_since_the_last_one() {
        let e: EndpointId = "pool-a/ep-1".parse().unwrap();
        let mut m = Meter::default();
        m.count(Some(&e), "w1", Outcome::Accepted, 2.0, 0);
        m.count(Some(&e), "w1", Outcome::Accepted, 2.0, 0);
        m.count(Some(&e), "w2", Outcome::Stale, 2.0, 0);
        m.latency(&e, 10, 0);
        m.latency(&e, 30, 0);
        let r = m.reports(2000, &|_| false, &|_| 3, &|_| 1);
        let t = &r[0].1;
        assert_eq!((t.shares_accepted, t.shares_stale, t.miners, t.queue_len), (2, 1, 3, 1));
        assert_eq!(t.hashrate_hs, (4.0 * HASHES_PER_DIFFICULTY / 2.0) as u64);
        assert_eq!(t.error_bp, 3333);
        assert_eq!(t.latency_ms_p99, 30);
        assert_eq!(m.workers()["w1"].accepted, 2);
        let r = m.reports(3000, &|_| true, &|_| 0, &|_| 0);
        assert_eq!((r[0].1.shares_accepted, r[0].1.error_bp, r[0].1.latency_ms_p50), (0, 10_000, 0), "down, silent");
    }
}
