//! The node's live scheduling loop (DESIGN §7: collect → evaluate → decide → dispatch → feed
//! back). Every epoch it reports telemetry for its pool's endpoints, runs the pure planner
//! (`hashmesh-scheduler`) over committed state, proposes routes where the gain justifies a
//! move, and votes on pending directives that target its endpoints. Every decision goes on
//! chain as a signed transaction, so the committed history explains every move.

pub mod epoch;
pub mod source;

use serde::{Deserialize, Serialize};

/// `[scheduler]` in a node's `config.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SchedulerSettings {
    /// Run the loop inside `hashmesh start`.
    pub enabled: bool,
    /// Epoch length, ms (the article: 10 s).
    pub epoch_ms: u64,
    /// Epoch length while the pool is under high load (CPU > 80 %), ms (the article: 20 s).
    pub high_load_epoch_ms: u64,
    /// A group keeps a route at least this long unless a target becomes unusable, ms.
    pub min_dwell_ms: u64,
    /// Smallest improvement worth a move, bp.
    pub min_gain_bp: u32,
    /// Most route changes proposed per epoch.
    pub max_moves_per_epoch: usize,
    /// Endpoints below this health are not targeted (0..=1; the chain's floor applies too).
    pub health_floor: f64,
    /// Telemetry source: `synthetic` (a model steered by `chaos.json`) or `agents` (what the
    /// pool's agents measure, synthetic for endpoints they do not report).
    pub source: String,
    /// Seed of the synthetic source.
    pub seed: u64,
}

impl Default for SchedulerSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            epoch_ms: 10_000,
            high_load_epoch_ms: 20_000,
            min_dwell_ms: 30_000,
            min_gain_bp: 500,
            max_moves_per_epoch: 4,
            health_floor: 0.3,
            source: "synthetic".into(),
            seed: 1,
        }
    }
}
