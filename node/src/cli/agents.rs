//! `hashmesh agents …` (the node's registry of agents). `hashmesh agent …` is an alias of the
//! `hashmesh-agent` binary's commands (`hashmesh_agent::cli`).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Subcommand;
use hashmesh_node::output::{print_json, table};
use hashmesh_node::plane::registry;
use hashmesh_protocol::{AgentId, GroupId};
use serde_json::json;

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
        /// The agent id (`hashmesh-agent init` prints it).
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

pub(super) fn run_agents(cmd: AgentsCmd) -> Result<i32> {
    match cmd {
        AgentsCmd::Add { home, key, groups } => {
            let id: AgentId =
                key.parse().context("--key must be the agent's 64-hex id (from `hashmesh-agent init`)")?;
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
