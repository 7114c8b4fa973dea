//! The node's merge of its agents' report windows into one epoch's measurement per endpoint.
//!
//! Counts are summed; latency histograms are merged, so the epoch's percentiles are the
//! percentiles of every sample any agent took (never an average of percentiles); hashrate is
//! each agent's accepted hashes over the time its windows covered, summed over agents (agents
//! see disjoint miners). An endpoint no agent sent a window for gets no measurement.

use std::collections::BTreeMap;

use hashmesh_protocol::body::TELEMETRY_LATENCY_MS_MAX;
use hashmesh_protocol::limits::REPORTS_KEPT_MAX;
use hashmesh_protocol::telemetry::LatencyPercentiles;
use hashmesh_protocol::{AgentId, EndpointId, EndpointWindow, Measurement};

use crate::hashrate::hashrate_hs;
use crate::histogram::LatencyHistogram;

/// Why a window was not counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BookError {
    /// The window is malformed (what is wrong).
    Malformed(&'static str),
    /// The window ends no later than one already counted for this agent and endpoint.
    Repeated,
    /// `REPORTS_KEPT_MAX` endpoints are already being measured this epoch.
    Full,
}

impl std::fmt::Display for BookError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BookError::Malformed(why) => write!(f, "malformed window: {why}"),
            BookError::Repeated => write!(f, "window already counted"),
            BookError::Full => write!(f, "{REPORTS_KEPT_MAX} endpoints already measured this epoch"),
        }
    }
}

/// One agent's windows at one endpoint since the last epoch.
#[derive(Debug, Clone, Default)]
struct Sum {
    accepted: u64,
    rejected: u64,
    stale: u64,
    hashes: u128,
    /// The part of `hashes` done under a standby credential.
    standby: u128,
    covered_ms: u64,
    latency: LatencyHistogram,
    /// The latest window's state.
    down: bool,
    miners: u32,
    in_flight: u32,
    /// End of the latest window counted (kept across epochs: a repeated window is refused).
    last_end_ms: u64,
    /// Windows counted this epoch.
    windows: u32,
}

/// What one agent had accepted at one endpoint in an epoch: the borrower's side of a loan's
/// running total is the sum of these (`EpochBook::take_with_work`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentWork {
    /// The agent.
    pub agent: AgentId,
    /// The endpoint.
    pub endpoint: EndpointId,
    /// Accepted hashes in the epoch's windows, leaving out work under a standby credential
    /// (an agent's fallback before a loan commits is no loan's work).
    pub hashes: u128,
    /// End of the agent's latest window there (agent clock, ms): the work is complete up to it.
    pub through_ms: u64,
}

/// Windows received since the last [`EpochBook::take`], per endpoint and agent.
#[derive(Debug, Clone, Default)]
pub struct EpochBook {
    endpoints: BTreeMap<EndpointId, BTreeMap<AgentId, Sum>>,
}

impl EpochBook {
    /// Count one window from `agent`.
    ///
    /// # Errors
    /// [`BookError`]: nothing was counted.
    pub fn record(&mut self, agent: AgentId, w: &EndpointWindow) -> Result<(), BookError> {
        if let Some(why) = w.malformed() {
            return Err(BookError::Malformed(why));
        }
        let latency = LatencyHistogram::from_wire(&w.latency).map_err(BookError::Malformed)?;
        if !self.endpoints.contains_key(&w.endpoint) && self.endpoints.len() >= REPORTS_KEPT_MAX {
            return Err(BookError::Full);
        }
        let s = self.endpoints.entry(w.endpoint.clone()).or_default().entry(agent).or_default();
        if w.end_ms <= s.last_end_ms {
            return Err(BookError::Repeated);
        }
        s.accepted = s.accepted.saturating_add(w.accepted);
        s.rejected = s.rejected.saturating_add(w.rejected);
        s.stale = s.stale.saturating_add(w.stale);
        s.hashes = s.hashes.saturating_add(w.accepted_hashes);
        s.standby = s.standby.saturating_add(w.standby_hashes);
        // Windows of one agent do not overlap; a gap (the agent was disconnected) is not covered.
        s.covered_ms += w.end_ms - w.start_ms.max(s.last_end_ms);
        s.latency.merge(&latency);
        s.down = w.down;
        s.miners = w.miners;
        s.in_flight = w.in_flight;
        s.last_end_ms = w.end_ms;
        s.windows += 1;
        Ok(())
    }

    /// Endpoints with windows waiting.
    #[must_use]
    pub fn pending(&self) -> usize {
        self.endpoints.values().filter(|a| a.values().any(|s| s.windows > 0)).count()
    }

    /// The epoch's measurement of every endpoint some agent sent a window for, and start the
    /// next epoch. CPU and memory are unknown: agents cannot see them.
    pub fn take(&mut self) -> BTreeMap<EndpointId, Measurement> {
        self.take_with_work().0
    }

    /// [`EpochBook::take`], and each agent's accepted work per endpoint in the epoch.
    pub fn take_with_work(&mut self) -> (BTreeMap<EndpointId, Measurement>, Vec<AgentWork>) {
        let mut out = BTreeMap::new();
        let mut work = Vec::new();
        for (e, agents) in &mut self.endpoints {
            agents.retain(|_, s| s.windows > 0);
            if agents.is_empty() {
                continue;
            }
            let mut latency = LatencyHistogram::default();
            let (mut accepted, mut rejected, mut stale, mut hs, mut miners, mut queue) =
                (0u64, 0u64, 0u64, 0u64, 0u32, 0u32);
            let mut down = false;
            for (agent, s) in agents.iter_mut() {
                work.push(AgentWork {
                    agent: *agent,
                    endpoint: e.clone(),
                    hashes: s.hashes.saturating_sub(s.standby),
                    through_ms: s.last_end_ms,
                });
                accepted = accepted.saturating_add(s.accepted);
                rejected = rejected.saturating_add(s.rejected);
                stale = stale.saturating_add(s.stale);
                hs = hs.saturating_add(hashrate_hs(s.hashes, s.covered_ms));
                miners = miners.saturating_add(s.miners);
                queue = queue.saturating_add(s.in_flight);
                down |= s.down;
                latency.merge(&s.latency);
                *s = Sum { last_end_ms: s.last_end_ms, ..Sum::default() };
            }
            let answered = accepted.saturating_add(rejected).saturating_add(stale);
            let error_bp = match (rejected.saturating_add(stale)).saturating_mul(10_000).checked_div(answered) {
                Some(bp) => Some(u16::try_from(bp).unwrap_or(10_000)),
                None if down => Some(10_000),
                None => None,
            };
            let latency_ms = (!latency.is_empty()).then(|| LatencyPercentiles {
                p50: latency.quantile_ms_round(0.5).min(TELEMETRY_LATENCY_MS_MAX),
                p99: latency.quantile_ms_round(0.99).min(TELEMETRY_LATENCY_MS_MAX),
            });
            out.insert(
                e.clone(),
                Measurement {
                    hashrate_hs: hs,
                    shares_accepted: accepted,
                    shares_rejected: rejected,
                    shares_stale: stale,
                    latency_ms,
                    error_bp,
                    cpu_bp: None,
                    memory_bp: None,
                    queue_len: queue.min(hashmesh_protocol::body::TELEMETRY_COUNT_MAX),
                    miners: miners.min(hashmesh_protocol::body::TELEMETRY_COUNT_MAX),
                },
            );
        }
        self.endpoints.retain(|_, a| !a.is_empty());
        (out, work)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hashrate::hashes_of;

    fn agent(n: u8) -> AgentId {
        AgentId([n; 32])
    }

    fn window(start: u64, end: u64, accepted: u64, latencies_ms: &[u64]) -> EndpointWindow {
        let mut h = LatencyHistogram::default();
        for &l in latencies_ms {
            h.record_us(l * 1000);
        }
        EndpointWindow {
            endpoint: "pool-a/ep-1".parse().unwrap(),
            start_ms: start,
            end_ms: end,
            accepted,
            rejected: 0,
            stale: 0,
            accepted_hashes: u128::from(accepted) * hashes_of(1.0),
            latency: h.to_wire(),
            down: false,
            miners: 2,
            in_flight: 0,
            standby_hashes: 0,
        }
    }

    #[test]
    fn agents_add_up_and_percentiles_come_from_all_samples() {
        let mut b = EpochBook::default();
        // Agent 1: 10 fast shares over 2 s; agent 2: 10 slow ones over 2 s.
        b.record(agent(1), &window(0, 2000, 10, &[10; 10])).unwrap();
        b.record(agent(2), &window(0, 2000, 10, &[400; 10])).unwrap();
        assert_eq!(b.record(agent(1), &window(0, 2000, 10, &[10])), Err(BookError::Repeated));
        let m = &b.take()[&"pool-a/ep-1".parse::<EndpointId>().unwrap()];
        assert_eq!(m.shares_accepted, 20);
        assert_eq!(m.miners, 4);
        assert_eq!(m.hashrate_hs, 2 * hashrate_hs(10 * hashes_of(1.0), 2000));
        let l = m.latency_ms.unwrap();
        assert_eq!((l.p50, l.p99), (10, 400), "not the average of two medians");
        assert_eq!((m.cpu_bp, m.memory_bp, m.error_bp), (None, None, Some(0)));
        assert!(b.take().is_empty(), "no window, no measurement");
    }

    #[test]
    fn down_and_silent_is_a_full_error_rate() {
        let mut b = EpochBook::default();
        let mut w = window(0, 2000, 0, &[]);
        w.down = true;
        b.record(agent(1), &w).unwrap();
        let m = b.take().into_values().next().unwrap();
        assert_eq!((m.error_bp, m.latency_ms), (Some(10_000), None));
        let mut w = window(2000, 4000, 0, &[]);
        w.end_ms = 1000;
        assert!(matches!(b.record(agent(1), &w), Err(BookError::Malformed(_))));
    }

    #[test]
    fn work_is_reported_per_agent_and_endpoint_with_its_last_window() {
        let mut b = EpochBook::default();
        b.record(agent(1), &window(0, 2000, 10, &[10])).unwrap();
        b.record(agent(1), &window(2000, 4000, 5, &[10])).unwrap();
        b.record(agent(2), &window(0, 2000, 0, &[])).unwrap();
        let (_, mut work) = b.take_with_work();
        work.sort_by_key(|w| w.agent);
        let e: EndpointId = "pool-a/ep-1".parse().unwrap();
        assert_eq!(
            work,
            vec![
                AgentWork { agent: agent(1), endpoint: e.clone(), hashes: 15 * hashes_of(1.0), through_ms: 4000 },
                AgentWork { agent: agent(2), endpoint: e, hashes: 0, through_ms: 2000 },
            ]
        );
        assert!(b.take_with_work().1.is_empty(), "taken once");
    }

    #[test]
    fn standby_work_is_measured_but_left_out_of_the_work() {
        let mut b = EpochBook::default();
        let mut w = window(0, 2000, 10, &[10]);
        w.standby_hashes = 4 * hashes_of(1.0);
        b.record(agent(1), &w).unwrap();
        let (m, work) = b.take_with_work();
        assert_eq!(m.into_values().next().unwrap().hashrate_hs, hashrate_hs(10 * hashes_of(1.0), 2000));
        assert_eq!(work[0].hashes, 6 * hashes_of(1.0));
        let mut bad = window(2000, 4000, 1, &[10]);
        bad.standby_hashes = 2 * hashes_of(1.0);
        assert!(matches!(b.record(agent(1), &bad), Err(BookError::Malformed(_))));
    }
}
