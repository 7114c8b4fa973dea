//! `hashmesh bench …`: benchmarks that need running processes or sockets (see also `cargo bench`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Result};
use clap::Subcommand;
use hashmesh_node::bench;
use hashmesh_node::output::print_json;

#[derive(Subcommand)]
pub(super) enum BenchCmd {
    /// Committed tx/s of hashmesh vs CometBFT's kvstore on loopback clusters, in one run.
    #[command(
        after_help = "Examples:\n  hashmesh bench cluster --cometbft .tools/bin/cometbft --duration-secs 20                 # saturation\n  hashmesh bench cluster --cometbft .tools/bin/cometbft --concurrency 8 --rate 50         # latency at light load"
    )]
    Cluster {
        /// The cometbft binary.
        #[arg(long, env = "HASHMESH_COMETBFT")]
        cometbft: PathBuf,
        /// Validators per cluster.
        #[arg(long, default_value_t = 4)]
        validators: usize,
        /// Seconds of load per application.
        #[arg(long, default_value_t = 20)]
        duration_secs: u64,
        /// Concurrent broadcasters.
        #[arg(long, default_value_t = 128)]
        concurrency: usize,
        /// Offer this many tx/s in total (open loop, for latency); default: closed loop (saturation).
        #[arg(long)]
        rate: Option<f64>,
        /// Working directory for the two clusters.
        #[arg(long, default_value = "target/bench-cluster")]
        dir: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// The instruction plane on loopback: commit-to-applied latency with many agents, and
    /// instructions/s over one connection vs a bare quinn stream, in one run.
    #[command(after_help = "Example:\n  hashmesh bench plane --agents 100 --commits 50 --instructions 20000")]
    Plane {
        /// Agents in the latency run.
        #[arg(long, default_value_t = 100)]
        agents: usize,
        /// Commits in the latency run.
        #[arg(long, default_value_t = 50)]
        commits: usize,
        /// Instructions in the throughput run.
        #[arg(long, default_value_t = 20_000)]
        instructions: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

pub(super) fn run(cmd: BenchCmd) -> Result<i32> {
    match cmd {
        BenchCmd::Plane { agents, commits, instructions, json } => {
            use hashmesh_node::plane::bench as pb;
            let r = pb::run(pb::PlaneBenchOptions { agents, commits, instructions })?;
            if json {
                print_json(&serde_json::to_value(&r)?);
            } else {
                print!("{}", pb::render(&r));
            }
            Ok(0)
        }
        BenchCmd::Cluster { cometbft, validators, duration_secs, concurrency, rate, dir, json } => {
            if rate.is_some_and(|r| r.is_nan() || r <= 0.0) {
                bail!("--rate must be a positive number of transactions per second");
            }
            let report = bench::run(&bench::BenchSpec {
                cometbft,
                hashmesh: std::env::current_exe()?,
                validators,
                duration: Duration::from_secs(duration_secs),
                concurrency,
                rate,
                work_dir: dir,
            })?;
            if json {
                print_json(&serde_json::to_value(&report)?);
            } else {
                print!("{}", bench::render(&report));
            }
            Ok(0)
        }
    }
}
