//! What a simulation run is made of: endpoints, incidents, the workload, and the run settings.

use crate::rng::Rng;

/// One endpoint of the simulated fleet.
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointSpec {
    /// Shares per second it can validate at full speed.
    pub capacity_qps: f64,
    /// Round-trip time to the miners, ms.
    pub rtt_ms: f64,
    /// Mean of the exponential network jitter added to each round trip, ms.
    pub jitter_ms: f64,
    /// Fraction of submits that fail on this endpoint for its own reasons.
    pub error_rate: f64,
    /// When it joins the fleet, ms (0: from the start). New endpoints start cold: half speed,
    /// reaching full speed after [`COLD_START_MS`].
    pub joins_at_ms: u64,
}

/// How long a newly joined endpoint takes to reach full speed (caches, JIT, connections).
pub const COLD_START_MS: u64 = 120_000;

/// Something that happens to an endpoint.
#[derive(Debug, Clone, PartialEq)]
pub enum Incident {
    /// The endpoint is down in `[from_ms, to_ms)`: submits to it time out.
    Fail {
        /// Endpoint index.
        endpoint: usize,
        /// Start, ms.
        from_ms: u64,
        /// End, ms.
        to_ms: u64,
    },
    /// The endpoint is slow in `[from_ms, to_ms)`.
    Degrade {
        /// Endpoint index.
        endpoint: usize,
        /// Start, ms.
        from_ms: u64,
        /// End, ms.
        to_ms: u64,
        /// Capacity multiplier (e.g. 0.3).
        capacity_factor: f64,
        /// Extra latency per submit, ms.
        extra_ms: f64,
        /// Extra error rate.
        error_rate: f64,
    },
}

/// A burst of load: the arrival rate is multiplied by `factor` in `[from_ms, to_ms)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spike {
    /// Start, ms.
    pub from_ms: u64,
    /// End, ms.
    pub to_ms: u64,
    /// Rate multiplier.
    pub factor: f64,
}

/// The miners' side.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    /// Share submissions per second (Poisson).
    pub qps: f64,
    /// Load bursts.
    pub spikes: Vec<Spike>,
    /// Mean time between job changes that make in-flight work stale (new block or clean job), ms.
    pub job_interval_ms: f64,
    /// Relative hashrate of each miner group (a share belongs to group `g` with probability
    /// proportional to its weight).
    pub group_weights: Vec<f64>,
}

/// One run: a fleet, a workload, what goes wrong, and how it is measured.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSpec {
    /// The fleet.
    pub endpoints: Vec<EndpointSpec>,
    /// Failures and degradations.
    pub incidents: Vec<Incident>,
    /// The miners.
    pub workload: Workload,
    /// Simulated time, ms.
    pub duration_ms: u64,
    /// Shares before this are simulated but not measured, ms.
    pub warmup_ms: u64,
    /// How often the balancers refresh telemetry (health, latency, forecasts), ms.
    pub poll_ms: u64,
    /// Windows `[from, to)` over which shares served per endpoint are counted.
    pub windows: Vec<(u64, u64)>,
    /// Width of one timeline point, ms.
    pub timeline_step_ms: u64,
    /// A submit that would wait longer than this in an endpoint's queue is rejected, ms.
    pub max_queue_ms: f64,
    /// A submit to a dead endpoint fails after this, ms.
    pub timeout_ms: f64,
    /// Seed of the workload (arrivals, jitter, job changes). Same seed, same workload for
    /// every strategy.
    pub seed: u64,
}

/// A heterogeneous fleet of `n` endpoints whose capacities add up to `total_qps`: capacities
/// log-uniform over a 3× spread, RTT 15–65 ms, jitter 2–10 ms, error rate 0.1–0.5 %.
#[must_use]
pub fn fleet(seed: u64, n: usize, total_qps: f64) -> Vec<EndpointSpec> {
    let mut rng = Rng::new(seed ^ 0xF1EE_7000_0000_0001);
    let mut eps: Vec<EndpointSpec> = (0..n)
        .map(|_| EndpointSpec {
            capacity_qps: 3f64.powf(rng.unit()),
            rtt_ms: 15.0 + 50.0 * rng.unit(),
            jitter_ms: 2.0 + 8.0 * rng.unit(),
            error_rate: 0.001 + 0.004 * rng.unit(),
            joins_at_ms: 0,
        })
        .collect();
    let sum: f64 = eps.iter().map(|e| e.capacity_qps).sum();
    for e in &mut eps {
        e.capacity_qps *= total_qps / sum;
    }
    eps
}

/// `n` miner groups with relative hashrates over a 4× spread.
#[must_use]
pub fn group_weights(seed: u64, n: usize) -> Vec<f64> {
    let mut rng = Rng::new(seed ^ 0x6A0B_0000_0000_0002);
    (0..n).map(|_| 4f64.powf(rng.unit())).collect()
}
