//! `hashmesh sim` arguments.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use hashmesh_node::sim_cmd::{self, SimRequest};
use hashmesh_scheduler::sim::Options;

pub(super) const SIM_HELP: &str = "Scenarios:
  rr-load       every strategy at 1k and 10k QPS (the article's round-robin table)
  latency-loss  submit latency buckets vs hashrate lost to stale work
  heartbeat     fixed 5 s heartbeats vs phi accrual (--endpoints = agents)
  scale-out     endpoints join a loaded fleet: request deviation, latency
  polling       poll interval vs requests/day, CPU, stale work (--miners = pollers)
  failover      the largest endpoint dies and comes back, another degrades
  mixed         spike, failure, degradation and new endpoints at once

Examples:
  hashmesh sim --scenario scale-out
  hashmesh sim --scenario mixed --seed 7 --out sim-out
  hashmesh sim --scenario heartbeat --endpoints 50 --duration 6h --json";

#[derive(Args)]
pub(super) struct SimArgs {
    /// Scenario to run (see below).
    #[arg(long)]
    scenario: String,
    /// Seed: same seed, same output.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Endpoints (heartbeat: agents). Default: the scenario's.
    #[arg(long)]
    endpoints: Option<usize>,
    /// Miners, 1 share/s each (polling: pollers). Default: the scenario's.
    #[arg(long)]
    miners: Option<u64>,
    /// Simulated time, e.g. 300s, 10m, 24h. Default: the scenario's.
    #[arg(long)]
    duration: Option<String>,
    /// Directory for CSV tables and SVG charts.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// No progress on stderr.
    #[arg(long)]
    quiet: bool,
}

/// Run `hashmesh sim`; exit code 0 (targets not met are reported, not errors).
pub(super) fn run(a: SimArgs) -> Result<i32> {
    let duration_ms = a.duration.as_deref().map(sim_cmd::parse_duration_ms).transpose()?;
    sim_cmd::run(&SimRequest {
        scenario: a.scenario,
        options: Options { seed: a.seed, endpoints: a.endpoints, miners: a.miners, duration_ms },
        out: a.out,
        json: a.json,
        progress: !a.quiet,
    })?;
    Ok(0)
}
