//! The simulator: a deterministic discrete-event model of heterogeneous pool endpoints
//! (capacity, service time, network jitter, failures, endpoints joining, load spikes) that runs
//! every strategy on the same seeded workload and reports the source article's tables beside
//! ours. Pure: no IO, no clock; the CLI (`hashmesh sim`) writes the files.
//!
//! - [`model`]: fleets, incidents, workloads, run settings.
//! - [`engine`]: the share-level event loop.
//! - [`strategy`]: the strategies compared (every balancer and the hashmesh planner).
//! - [`heartbeat`], [`polling`]: the two scenarios that are not about routing shares.
//! - [`scenarios`]: the named scenarios and their tables, charts and target verdicts.
//! - [`report`], [`stats`]: results and their text, CSV and SVG forms.

pub mod engine;
pub mod heartbeat;
pub mod model;
pub mod polling;
pub mod report;
pub mod scenarios;
pub mod stats;
pub mod strategy;

pub use report::{Chart, ChartData, Report, Table, Verdict};
pub use scenarios::{run_scenario, SCENARIOS};

/// What the user may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Seed of everything random.
    pub seed: u64,
    /// Endpoints (heartbeat: agents); `None` = the scenario's default.
    pub endpoints: Option<usize>,
    /// Miners (1 share/s each; polling: pollers); `None` = the scenario's default.
    pub miners: Option<u64>,
    /// Simulated time, ms; `None` = the scenario's default.
    pub duration_ms: Option<u64>,
}

impl Default for Options {
    fn default() -> Self {
        Self { seed: 1, endpoints: None, miners: None, duration_ms: None }
    }
}

/// Progress of a scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    /// What is running now.
    pub run: String,
    /// Runs finished.
    pub done: usize,
    /// Runs in total.
    pub total: usize,
}
