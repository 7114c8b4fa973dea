//! The node's live scheduling loop (DESIGN §7: collect → evaluate → decide → dispatch → feed
//! back). Every epoch it reports telemetry for its pool's endpoints, runs the pure planner
//! (`hashmesh-scheduler`) over committed state, proposes routes where the gain justifies a
//! move, and votes on pending directives that target its endpoints. Every decision goes on
//! chain as a signed transaction, so the committed history explains every move.

pub mod epoch;
pub mod host;
pub mod shares;
pub mod source;

use serde::{Deserialize, Serialize};

/// Where the scheduling loop's measurements come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The pool's agents' measurements, sent in their heartbeats.
    #[default]
    Agents,
    /// A model of endpoints steered by `chaos.json` — a testnet tool: its numbers are not
    /// measurements.
    Synthetic,
}

/// `[scheduler]` in a node's `config.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SchedulerSettings {
    /// Run the loop inside `hashmesh start`.
    pub enabled: bool,
    /// Epoch length, ms (the article: 10 s).
    pub epoch_ms: u64,
    /// Epoch length while the pool is under high load (CPU > 80 %), ms (the article: 20 s).
    #[serde(alias = "high_load_epoch_ms")]
    pub epoch_ms_high_load: u64,
    /// A group keeps a route at least this long unless a target becomes unusable, ms.
    #[serde(alias = "min_dwell_ms")]
    pub dwell_ms_min: u64,
    /// Smallest improvement worth a move, bp.
    #[serde(alias = "min_gain_bp")]
    pub gain_bp_min: u32,
    /// Most route changes proposed per epoch.
    #[serde(alias = "max_moves_per_epoch")]
    pub moves_per_epoch_max: u32,
    /// Endpoints below this health are not targeted (0..=1; the chain's floor applies too).
    pub health_floor: f64,
    /// Telemetry source: `agents` (what the pool's agents measure; unmeasured endpoints get no
    /// report) or `synthetic` (a model steered by `chaos.json`, for the testnet only).
    pub source: Source,
    /// Seed of the synthetic source.
    pub seed: u64,
    /// The pool's endpoints' host exporters (`"pool-a/ep-1" = "http://10.0.0.5:9100/metrics"`,
    /// node_exporter or compatible): the owner's CPU and memory of each endpoint, which its
    /// agents cannot see. Endpoints not listed report them as unknown.
    pub host_metrics: std::collections::BTreeMap<String, String>,
    /// The pool's endpoints' per-worker share counters (`"pool-a/ep-1" =
    /// "http://10.0.0.5:9101/metrics"`): a Prometheus counter of accepted share difficulty with
    /// a `worker` label, named by `share_metric`. What the lender reports for its loans; an
    /// endpoint not listed lends without settling (its loans stay unsettled).
    pub share_metrics: std::collections::BTreeMap<String, String>,
    /// The counter `share_metrics` serve (difficulty, by `worker`).
    pub share_metric: String,
}

impl Default for SchedulerSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            epoch_ms: 10_000,
            epoch_ms_high_load: 20_000,
            dwell_ms_min: 30_000,
            gain_bp_min: 500,
            moves_per_epoch_max: 4,
            health_floor: 0.3,
            source: Source::Agents,
            seed: 1,
            host_metrics: std::collections::BTreeMap::new(),
            share_metrics: std::collections::BTreeMap::new(),
            share_metric: shares::SHARE_METRIC.to_owned(),
        }
    }
}
