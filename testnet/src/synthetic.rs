//! The testnet's synthetic telemetry: a model of endpoints whose utilisation drives CPU and
//! latency, with seeded jitter, steered by `testnet chaos` through `chaos.json` in the node's
//! home. It is a testnet tool: only `hashmesh-testnet start` runs a node with it (and says so
//! loudly); `hashmesh start` refuses `scheduler.source = "synthetic"`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use hashmesh_node::live::source::TelemetrySource;
use hashmesh_protocol::{EndpointId, Measurement, TelemetryReport};
use hashmesh_scheduler::rng::Rng;
use serde::{Deserialize, Serialize};

/// File in the node home that steers the synthetic source.
pub const CHAOS_FILE: &str = "chaos.json";

/// What `testnet/chaos` can do to an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum EndpointCondition {
    /// Working normally.
    #[default]
    Normal,
    /// Overloaded: high CPU and memory, slow, erroring.
    Degraded,
    /// Down: every request fails.
    Dead,
}

/// A modelled endpoint fleet: utilisation drives CPU and latency, with seeded jitter.
pub struct SyntheticSource {
    chaos: PathBuf,
    rng: Rng,
}

impl SyntheticSource {
    /// A source steered by `<home>/chaos.json`.
    #[must_use]
    pub fn new(home: PathBuf, seed: u64) -> Self {
        Self { chaos: home.join(CHAOS_FILE), rng: Rng::new(seed) }
    }

    fn condition(&self, endpoint: &str) -> EndpointCondition {
        std::fs::read(&self.chaos)
            .ok()
            .and_then(|b| serde_json::from_slice::<BTreeMap<String, EndpointCondition>>(&b).ok())
            .and_then(|m| m.get(endpoint).copied())
            .unwrap_or_default()
    }
}

fn bp(x: f64) -> u16 {
    (x.clamp(0.0, 1.0) * 10_000.0).round() as u16
}

impl TelemetrySource for SyntheticSource {
    fn measure(&mut self, endpoints: &[(EndpointId, u128, u64)], epoch: u64) -> BTreeMap<EndpointId, Measurement> {
        endpoints
            .iter()
            .map(|(e, load, cap)| (e.clone(), Measurement::from(self.sample(e.as_str(), *load, *cap, epoch))))
            .collect()
    }
}

impl SyntheticSource {
    /// One modelled report of `endpoint`, which carries `load_hs` of `capacity_hs`.
    pub fn sample(&mut self, endpoint: &str, load_hs: u128, capacity_hs: u64, epoch: u64) -> TelemetryReport {
        let util = (load_hs as f64 / capacity_hs.max(1) as f64).min(1.5);
        let jitter = self.rng.unit() - 0.5;
        let (cpu, memory, latency_ms, error_rate, served) = match self.condition(endpoint) {
            EndpointCondition::Normal => {
                (0.2 + 0.5 * util + 0.04 * jitter, 0.3 + 0.1 * util, 20.0 + 60.0 * util + 6.0 * jitter, 0.001, 1.0)
            }
            EndpointCondition::Degraded => (0.97, 0.92, 280.0 + 40.0 * jitter, 0.25, 0.6),
            EndpointCondition::Dead => (1.0, 1.0, 600_000.0, 1.0, 0.0),
        };
        let hashrate = (load_hs as f64 * served) as u64;
        let shares = hashrate / 1_000_000_000_000; // one share per TH/s per epoch, roughly
        let latency_ms_p50 = latency_ms.clamp(1.0, 600_000.0) as u32;
        TelemetryReport {
            epoch,
            hashrate_hs: hashrate,
            shares_accepted: (shares as f64 * (1.0 - error_rate)) as u64,
            shares_rejected: (shares as f64 * error_rate) as u64,
            shares_stale: (shares as f64 * (latency_ms_p50 as f64 / 10_000.0).min(1.0)) as u64,
            latency_ms_p50,
            latency_ms_p99: (latency_ms_p50.saturating_mul(3)).min(600_000),
            cpu_bp: bp(cpu),
            memory_bp: bp(memory),
            error_bp: bp(error_rate),
            queue_len: (util * 10.0) as u32,
            miners: (load_hs / 100_000_000_000_000) as u32 * 1000,
        }
    }
}
