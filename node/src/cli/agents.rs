//! `hashmesh agent …` (the edge process) and `hashmesh agents …` (the node's registry).

use std::net::ToSocketAddrs;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Subcommand;
use hashmesh_node::agent::{self, AgentOptions, AgentState};
use hashmesh_node::output::{print_json, table};
use hashmesh_node::plane::registry;
use hashmesh_protocol::{AgentId, GroupId, PoolId};
use serde_json::json;

#[derive(Subcommand)]
pub(super) enum AgentCmd {
    /// Create an agent home with a new key (0600) and print the agent id to register.
    #[command(
        after_help = "Example:\n  hashmesh agent init --home ~/.hashmesh-agent\n  # then on the node: hashmesh agents add --home ~/.hashmesh --key <id> --groups pool-a/g-1"
    )]
    Init {
        /// Agent home to create.
        #[arg(long)]
        home: PathBuf,
    },
    /// Connect to the node and apply its instructions (runs until stopped).
    #[command(
        after_help = "Example:\n  hashmesh agent start --home ~/.hashmesh-agent --node 127.0.0.1:26658 --node-id <pool id>"
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
    Status {
        /// Agent home.
        #[arg(long)]
        home: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub(super) enum AgentsCmd {
    /// Register an agent with this node (takes effect when the node starts).
    #[command(
        after_help = "Example:\n  hashmesh agents add --home ~/.hashmesh --key 3b6a…e1 --groups pool-a/g-1,pool-a/g-2"
    )]
    Add {
        /// Node home.
        #[arg(long)]
        home: PathBuf,
        /// The agent id (`hashmesh agent init` prints it).
        #[arg(long)]
        key: String,
        /// Miner groups the agent serves, comma-separated.
        #[arg(long, value_delimiter = ',')]
        groups: Vec<String>,
    },
    /// Registered agents with their live status (connected, lost, last heartbeat and directive).
    List {
        /// Node home.
        #[arg(long)]
        home: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

pub(super) fn run_agent(cmd: AgentCmd) -> Result<i32> {
    match cmd {
        AgentCmd::Init { home } => {
            let id = agent::init(&home)?;
            println!("{id}");
            eprintln!("register it on the node: hashmesh agents add --home NODE_HOME --key {id} --groups GROUPS");
            Ok(0)
        }
        AgentCmd::Start { home, node, node_id, heartbeat_ms } => {
            let node = node
                .to_socket_addrs()
                .with_context(|| format!("--node {node:?} must be HOST:PORT"))?
                .next()
                .with_context(|| format!("--node {node:?} resolves to nothing"))?;
            let node_id: PoolId = node_id.parse().context("--node-id must be the node's 64-hex pool id")?;
            agent::load_key(&home)?;
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
            rt.block_on(agent::run(AgentOptions {
                home,
                node,
                node_id,
                heartbeat: Duration::from_millis(heartbeat_ms),
            }))?;
            Ok(0)
        }
        AgentCmd::Status { home, json } => {
            let key = agent::load_key(&home)?;
            let state = AgentState::load(&home)?;
            if json {
                print_json(&json!({"agent": hex::encode(key.verifying_key().as_bytes()), "state": state}));
            } else {
                println!("agent {}  applied_seq {}", hex::encode(key.verifying_key().as_bytes()), state.applied_seq);
                let rows: Vec<Vec<String>> = state
                    .routes
                    .iter()
                    .map(|(g, r)| {
                        vec![
                            g.clone(),
                            r.routes
                                .iter()
                                .map(|t| format!("{}={}", t.endpoint, t.weight_bp))
                                .collect::<Vec<_>>()
                                .join(","),
                            r.height.to_string(),
                            r.directive[..16].to_string(),
                        ]
                    })
                    .collect();
                print!("{}", table(&["group", "routes (in effect)", "drained", "height", "directive"], &rows));
            }
            Ok(0)
        }
    }
}

pub(super) fn run_agents(cmd: AgentsCmd) -> Result<i32> {
    match cmd {
        AgentsCmd::Add { home, key, groups } => {
            let id: AgentId =
                key.parse().context("--key must be the agent's 64-hex id (from `hashmesh agent init`)")?;
            let groups: Vec<GroupId> = groups
                .iter()
                .map(|g| g.parse().with_context(|| format!("bad group id {g:?}")))
                .collect::<Result<_>>()?;
            hashmesh_node::home::Home::load(&home)?;
            let e = registry::add(&home, id, groups)?;
            print_json(&json!({"agent": e.id, "groups": e.groups, "note": "restart the node to apply"}));
            Ok(0)
        }
        AgentsCmd::List { home, json } => {
            let reg = registry::load(&home)?;
            let status = registry::read_status(&home)?;
            let rows: Vec<serde_json::Value> = reg
                .values()
                .map(|e| {
                    let s = status.iter().find(|s| s.id == e.id.to_hex());
                    json!({
                        "agent": e.id,
                        "groups": e.groups,
                        "connected": s.is_some_and(|s| s.connected),
                        "lost": s.is_some_and(|s| s.lost),
                        "last_heartbeat_ms": s.and_then(|s| s.last_heartbeat_ms),
                        "last_directive": s.and_then(|s| s.last_directive.clone()),
                        "acked_seq": s.map_or(0, |s| s.acked_seq),
                        "outstanding": s.map_or(0, |s| s.outstanding),
                    })
                })
                .collect();
            if json {
                print_json(&json!(rows));
            } else {
                let cells: Vec<Vec<String>> = rows
                    .iter()
                    .map(|r| {
                        vec![
                            r["agent"].as_str().unwrap_or("")[..16].to_string(),
                            r["groups"].as_array().map_or(0, Vec::len).to_string(),
                            if r["lost"] == true {
                                "lost"
                            } else if r["connected"] == true {
                                "connected"
                            } else {
                                "offline"
                            }
                            .into(),
                            r["acked_seq"].to_string(),
                            r["outstanding"].to_string(),
                            r["last_directive"].as_str().map_or("-".into(), |d| d[..16].to_string()),
                        ]
                    })
                    .collect();
                print!("{}", table(&["agent", "groups", "state", "acked", "outstanding", "last_directive"], &cells));
            }
            Ok(0)
        }
    }
}
