//! What the proxy measures, per endpoint and per worker: accepted / rejected / stale shares and
//! difficulty, hashrate from accepted difficulty over [`HASHRATE_WINDOW_MS`], submit latency as
//! a mergeable histogram (`hashmesh-telemetry`), the last share; and the report windows sent to
//! the node — each window the difference since the previous one, never a made-up number.

use std::collections::BTreeMap;

use hashmesh_protocol::limits::STRATUM_WORKERS_TRACKED_MAX;
use hashmesh_protocol::{EndpointId, EndpointWindow};
use hashmesh_telemetry::{hashes_of, HashrateWindow, LatencyHistogram, HASHRATE_WINDOW_MS};
use serde::Serialize;

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
    /// When the last share was answered, ms since the Unix epoch.
    pub last_share_ms: Option<u64>,
}

impl Counts {
    fn bump(&mut self, outcome: Outcome, difficulty: f64, now_ms: u64) {
        match outcome {
            Outcome::Accepted => {
                self.accepted += 1;
                self.accepted_difficulty += difficulty;
            }
            Outcome::Rejected => self.rejected += 1,
            Outcome::Stale => self.stale += 1,
        }
        self.last_share_ms = Some(now_ms);
    }

    fn answered(&self) -> u64 {
        self.accepted + self.rejected + self.stale
    }
}

/// One endpoint as this agent sees it.
#[derive(Debug, Clone)]
pub struct EndpointMeter {
    /// Everything since the agent started.
    pub total: Counts,
    /// Submit → verdict latency since the agent started.
    pub latency: LatencyHistogram,
    /// Accepted hashes over the last [`HASHRATE_WINDOW_MS`].
    pub hashrate: HashrateWindow,
    /// The current report window: its counts, accepted hashes, latency, start.
    window: Counts,
    window_hashes: u128,
    /// The part of `window_hashes` done under a lender's standby credential.
    window_standby: u128,
    window_latency: LatencyHistogram,
    window_start_ms: u64,
}

impl EndpointMeter {
    fn new(now_ms: u64) -> Self {
        Self {
            total: Counts::default(),
            latency: LatencyHistogram::default(),
            hashrate: HashrateWindow::new(now_ms),
            window: Counts::default(),
            window_hashes: 0,
            window_standby: 0,
            window_latency: LatencyHistogram::default(),
            window_start_ms: now_ms,
        }
    }
}

/// One worker as this agent sees it.
#[derive(Debug, Clone)]
pub struct WorkerMeter {
    /// Everything since the agent started.
    pub total: Counts,
    /// Accepted hashes over the last [`HASHRATE_WINDOW_MS`].
    pub hashrate: HashrateWindow,
}

/// An upstream's state at the end of a report window, from the proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamNow {
    /// The endpoint.
    pub endpoint: EndpointId,
    /// Its session is not ready.
    pub down: bool,
    /// Miners whose work goes there.
    pub miners: u32,
    /// Shares waiting for its verdict.
    pub in_flight: u32,
}

/// All of the agent's measurements.
#[derive(Debug, Clone)]
pub struct Meter {
    endpoints: BTreeMap<EndpointId, EndpointMeter>,
    workers: BTreeMap<String, WorkerMeter>,
    /// Most workers tracked one by one (0: per-worker statistics off).
    workers_max: usize,
}

impl Default for Meter {
    fn default() -> Self {
        Self::new(STRATUM_WORKERS_TRACKED_MAX)
    }
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
    /// A meter tracking at most `workers_max` workers one by one (0 turns per-worker
    /// statistics off; the bound is at most `STRATUM_WORKERS_TRACKED_MAX`).
    #[must_use]
    pub fn new(workers_max: usize) -> Self {
        Self {
            endpoints: BTreeMap::new(),
            workers: BTreeMap::new(),
            workers_max: workers_max.min(STRATUM_WORKERS_TRACKED_MAX),
        }
    }

    /// Count one share of `difficulty` by `worker` at `endpoint` (if it reached one).
    pub fn count(
        &mut self,
        endpoint: Option<&EndpointId>,
        worker: &str,
        outcome: Outcome,
        difficulty: f64,
        now_ms: u64,
    ) {
        let hashes = if outcome == Outcome::Accepted { hashes_of(difficulty) } else { 0 };
        if let Some(e) = endpoint {
            let m = self.endpoint(e, now_ms);
            m.total.bump(outcome, difficulty, now_ms);
            m.window.bump(outcome, difficulty, now_ms);
            m.window_hashes += hashes;
            m.hashrate.record(now_ms, hashes);
        }
        if worker.is_empty() {
            return;
        }
        if !self.workers.contains_key(worker) {
            if self.workers.len() >= self.workers_max {
                return; // counted per endpoint only
            }
            self.workers.insert(
                worker.to_owned(),
                WorkerMeter { total: Counts::default(), hashrate: HashrateWindow::new(now_ms) },
            );
        }
        let w = self.workers.get_mut(worker).expect("present");
        w.total.bump(outcome, difficulty, now_ms);
        w.hashrate.record(now_ms, hashes);
    }

    /// An accepted share of `difficulty` (already counted) was done at `endpoint` under a
    /// lender's standby credential: measured like any other, but no loan's work.
    pub fn standby(&mut self, endpoint: &EndpointId, difficulty: f64, now_ms: u64) {
        self.endpoint(endpoint, now_ms).window_standby += hashes_of(difficulty);
    }

    /// Record a submit's response time at `endpoint`.
    pub fn latency(&mut self, endpoint: &EndpointId, ms: u64, now_ms: u64) {
        let m = self.endpoint(endpoint, now_ms);
        m.latency.record_us(ms.saturating_mul(1000));
        m.window_latency.record_us(ms.saturating_mul(1000));
    }

    fn endpoint(&mut self, e: &EndpointId, now_ms: u64) -> &mut EndpointMeter {
        self.endpoints.entry(e.clone()).or_insert_with(|| EndpointMeter::new(now_ms))
    }

    /// Per endpoint.
    #[must_use]
    pub fn endpoints(&self) -> &BTreeMap<EndpointId, EndpointMeter> {
        &self.endpoints
    }

    /// Per worker.
    #[must_use]
    pub fn workers(&self) -> &BTreeMap<String, WorkerMeter> {
        &self.workers
    }

    /// Close the report window of every upstream at `now_ms`: one [`EndpointWindow`] for each
    /// that answered a share in the window or is down (a down endpoint that answered nothing
    /// is a measurement too: a 100 % error rate). An endpoint that was up and answered
    /// nothing gets no window — nothing was measured there. An endpoint whose session ended
    /// since (a route moved away) still gets its last window: the work it accepted is counted
    /// (a loan's last shares are settled like the others).
    pub fn windows(&mut self, now_ms: u64, upstreams: &[UpstreamNow]) -> Vec<EndpointWindow> {
        let gone: Vec<UpstreamNow> = self
            .endpoints
            .iter()
            .filter(|(e, m)| m.window.answered() > 0 && !upstreams.iter().any(|u| u.endpoint == **e))
            .map(|(e, _)| UpstreamNow { endpoint: e.clone(), down: false, miners: 0, in_flight: 0 })
            .collect();
        let mut out = Vec::new();
        for u in upstreams.iter().chain(&gone) {
            let m = self.endpoint(&u.endpoint, now_ms);
            if now_ms <= m.window_start_ms {
                continue;
            }
            if m.window.answered() > 0 || u.down {
                out.push(EndpointWindow {
                    endpoint: u.endpoint.clone(),
                    start_ms: m.window_start_ms,
                    end_ms: now_ms,
                    accepted: m.window.accepted,
                    rejected: m.window.rejected,
                    stale: m.window.stale,
                    accepted_hashes: m.window_hashes,
                    latency: m.window_latency.to_wire(),
                    down: u.down,
                    miners: u.miners,
                    in_flight: u.in_flight,
                    standby_hashes: m.window_standby.min(m.window_hashes),
                });
            }
            m.window = Counts::default();
            m.window_hashes = 0;
            m.window_standby = 0;
            m.window_latency.reset();
            m.window_start_ms = now_ms;
        }
        out
    }
}

/// The window the hashrate gauges are estimated over, for status and metrics text.
pub const HASHRATE_WINDOW_SECS: u64 = HASHRATE_WINDOW_MS / 1000;

#[cfg(test)]
mod tests {
    use super::*;
    use hashmesh_telemetry::LatencyHistogram;

    fn up(e: &EndpointId, down: bool) -> UpstreamNow {
        UpstreamNow { endpoint: e.clone(), down, miners: 3, in_flight: 1 }
    }

    #[test]
    fn windows_are_differences_since_the_last_one() {
        let e: EndpointId = "pool-a/ep-1".parse().unwrap();
        let idle: EndpointId = "pool-a/ep-2".parse().unwrap();
        let mut m = Meter::default();
        m.count(Some(&e), "w1", Outcome::Accepted, 2.0, 0);
        m.count(Some(&e), "w1", Outcome::Accepted, 2.0, 0);
        m.count(Some(&e), "w2", Outcome::Stale, 2.0, 0);
        m.latency(&e, 10, 0);
        m.latency(&e, 30, 0);
        let w = m.windows(2000, &[up(&e, false), up(&idle, false)]);
        assert_eq!(w.len(), 1, "the idle endpoint measured nothing");
        let w = &w[0];
        assert_eq!((w.accepted, w.stale, w.miners, w.in_flight), (2, 1, 3, 1));
        assert_eq!(w.accepted_hashes, 2 * hashes_of(2.0));
        let h = LatencyHistogram::from_wire(&w.latency).unwrap();
        assert_eq!(h.count(), 2);
        assert_eq!(h.quantile_ms_round(0.99), 30);
        assert_eq!(m.workers()["w1"].total.accepted, 2);
        let w = m.windows(3000, &[up(&e, true)]);
        assert_eq!((w[0].accepted, w[0].down, w[0].start_ms), (0, true, 2000), "down, silent");
        assert!(w[0].latency.buckets.is_empty());
        assert_eq!(m.endpoints()[&e].total.accepted, 2, "totals keep everything");
    }

    #[test]
    fn per_worker_statistics_are_bounded_and_can_be_off() {
        let e: EndpointId = "pool-a/ep-1".parse().unwrap();
        let mut m = Meter::new(2);
        for w in ["a", "b", "c"] {
            m.count(Some(&e), w, Outcome::Accepted, 1.0, 0);
        }
        assert_eq!(m.workers().len(), 2);
        assert_eq!(m.endpoints()[&e].total.accepted, 3, "every share still counts per endpoint");
        let mut off = Meter::new(0);
        off.count(Some(&e), "a", Outcome::Accepted, 1.0, 0);
        assert!(off.workers().is_empty());
    }

    #[test]
    fn an_endpoint_whose_session_ended_still_reports_its_last_window() {
        let mut m = Meter::default();
        let e: EndpointId = "pool-b/ep-1".parse().unwrap();
        m.count(Some(&e), "w", Outcome::Accepted, 1.0, 1500);
        let w = m.windows(2000, &[]);
        assert_eq!((w.len(), w[0].accepted, w[0].down, w[0].miners), (1, 1, false, 0), "{w:?}");
        assert!(m.windows(4000, &[]).is_empty(), "once");
    }
}
