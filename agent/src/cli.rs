//! The agent's commands: `init`, `start`, `status` (the `hashmesh-agent` binary, and the
//! `hashmesh agent …` alias).

use std::net::ToSocketAddrs;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Subcommand;
use hashmesh_protocol::PoolId;

use crate::home;
use crate::session::{self, AgentOptions};

/// An agent command.
#[derive(Subcommand)]
pub enum AgentCmd {
    /// Create an agent home with a new key (0600) and print the agent id to register.
    #[command(
        after_help = "Example:\n  hashmesh-agent init --home ~/.hashmesh-agent\n  # then on the node: hashmesh agents add --home ~/.hashmesh --key <id> --groups pool-a/g-1"
    )]
    Init {
        /// Agent home to create.
        #[arg(long)]
        home: PathBuf,
    },
    /// Connect to the node and apply its instructions (runs until stopped).
    #[command(
        after_help = "Example:\n  hashmesh-agent start --home ~/.hashmesh-agent --node 127.0.0.1:26658 --node-id <pool id>"
    )]
    Start {
        /// Agent home.
        #[arg(long)]
        home: PathBuf,
        /// The node's plane address (UDP), HOST:PORT.
        #[arg(long)]
        node: String,
        /// The node's pool id (its key is pinned in the TLS handshake).
        #[arg(long)]
        node_id: String,
        /// Heartbeat interval, ms.
        #[arg(long, default_value_t = 1000)]
        heartbeat_ms: u64,
    },
    /// Print the agent's routing table.
    #[command(after_help = "Example:\n  hashmesh-agent status --home ~/.hashmesh-agent --json")]
    Status {
        /// Agent home.
        #[arg(long)]
        home: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Run `cmd`; returns the exit code.
///
/// # Errors
/// With a message that says what to fix.
pub fn run(cmd: AgentCmd) -> Result<i32> {
    match cmd {
        AgentCmd::Init { home: dir } => {
            let id = home::init(&dir)?;
            println!("{id}");
            eprintln!("register it on the node: hashmesh agents add --home NODE_HOME --key {id} --groups GROUPS");
            Ok(0)
        }
        AgentCmd::Start { home: dir, node, node_id, heartbeat_ms } => {
            let node = node
                .to_socket_addrs()
                .with_context(|| format!("--node {node:?} must be HOST:PORT"))?
                .next()
                .with_context(|| format!("--node {node:?} resolves to nothing"))?;
            let node_id: PoolId = node_id.parse().context("--node-id must be the node's 64-hex pool id")?;
            home::load_key(&dir)?;
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
            rt.block_on(session::run(AgentOptions {
                home: dir,
                node,
                node_id,
                heartbeat: Duration::from_millis(heartbeat_ms),
            }))?;
            Ok(0)
        }
        AgentCmd::Status { home: dir, json } => {
            let key = home::load_key(&dir)?;
            let state = home::load_state(&dir)?;
            let agent = hex::encode(key.verifying_key().as_bytes());
            if json {
                let v = serde_json::json!({"agent": agent, "state": state});
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(0);
            }
            println!("agent {agent}  applied_seq {}", state.applied_seq);
            println!("{:<24} {:<48} {:<24} {:>8} directive", "group", "routes (in effect)", "drained", "height");
            for (g, r) in &state.routes {
                let routes: Vec<String> =
                    r.effective().iter().map(|t| format!("{}={}", t.endpoint, t.weight_bp)).collect();
                let drained: Vec<String> = r.drained.iter().map(ToString::to_string).collect();
                let d = r.directive.to_hex();
                println!(
                    "{:<24} {:<48} {:<24} {:>8} {}",
                    g.as_str(),
                    routes.join(","),
                    if drained.is_empty() { "-".into() } else { drained.join(",") },
                    r.height,
                    &d[..16]
                );
            }
            Ok(0)
        }
    }
}
