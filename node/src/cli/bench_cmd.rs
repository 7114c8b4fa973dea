//! `hashmesh bench …`: benchmarks that need sockets (see also `cargo bench`; the cluster
//! benchmark is `hashmesh-testnet bench-cluster`).

use anyhow::Result;
use clap::Subcommand;
use hashmesh_node::output::print_json;

#[derive(Subcommand)]
pub(super) enum BenchCmd {
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
    }
}
