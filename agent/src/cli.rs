//! The agent's commands: `init`, `start`, `status` (the `hashmesh-agent` binary, and the
//! `hashmesh agent …` alias).

use std::net::ToSocketAddrs;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Subcommand;
use hashmesh_plane::host::text::table;
use hashmesh_protocol::PoolId;

use crate::home;
use crate::proxy::config::StratumConfig;
use crate::proxy::{self, driver};
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
        /// Print JSON.
        #[arg(long)]
        json: bool,
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
        AgentCmd::Init { home: dir, json } => {
            let id = home::init(&dir)?;
            if json {
                println!("{}", serde_json::json!({"home": dir, "agent_id": id.to_string()}));
            } else {
                println!("agent id  {id}\nhome      {}", dir.display());
            }
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
            let stratum = StratumConfig::load(&dir)?;
            if stratum.is_none() {
                tracing::warn!(
                    "no {} in {}: applying routes without proxying miners (docs/operations.md, \"The agent's Stratum proxy\")",
                    proxy::config::STRATUM_FILE,
                    dir.display()
                );
            }
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
            rt.block_on(async {
                let proxy = match &stratum {
                    Some(c) => Some(driver::start(c, c.proxy_config(), Some(dir.clone())).await?),
                    None => None,
                };
                session::run(AgentOptions {
                    home: dir,
                    node,
                    node_id,
                    heartbeat: Duration::from_millis(heartbeat_ms),
                    proxy,
                })
                .await
            })?;
            Ok(0)
        }
        AgentCmd::Status { home: dir, json } => {
            let key = home::load_key(&dir)?;
            let mut state = home::load_state(&dir)?;
            // Lenders' passwords never leave the state file.
            for r in state.routes.values_mut() {
                for c in &mut r.credentials {
                    c.password = "(hidden)".into();
                }
            }
            let agent = hex::encode(key.verifying_key().as_bytes());
            let proxy: Option<serde_json::Value> =
                std::fs::read(dir.join(driver::STATUS_FILE)).ok().and_then(|b| serde_json::from_slice(&b).ok());
            if json {
                let v = serde_json::json!({"agent": agent, "state": state, "proxy": proxy});
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(0);
            }
            println!("agent {agent}  applied_seq {}", state.applied_seq);
            let rows: Vec<Vec<String>> = state
                .routes
                .iter()
                .map(|(g, r)| {
                    let routes: Vec<String> =
                        r.effective().iter().map(|t| format!("{}={}", t.endpoint, t.weight_bp)).collect();
                    let drained: Vec<String> = r.drained.iter().map(ToString::to_string).collect();
                    vec![
                        g.to_string(),
                        routes.join(","),
                        if drained.is_empty() { "-".into() } else { drained.join(",") },
                        r.height.to_string(),
                        r.directive.to_hex()[..16].to_owned(),
                    ]
                })
                .collect();
            print!("{}", table(&["GROUP", "ROUTES (IN EFFECT)", "DRAINED", "HEIGHT", "DIRECTIVE"], &rows));
            if !state.fallback.is_empty() {
                let offers: Vec<&str> = state.fallback.iter().map(|c| c.endpoint.as_str()).collect();
                println!("fallback (other pools' offers, cheapest first): {}", offers.join(", "));
            }
            if let Some(p) = proxy {
                print_proxy(&p);
            }
            Ok(0)
        }
    }
}

/// A hashrate for people: H/s with an SI prefix.
fn rate(hs: f64) -> String {
    let units = ["H/s", "kH/s", "MH/s", "GH/s", "TH/s", "PH/s", "EH/s"];
    let mut v = hs;
    let mut i = 0;
    while v >= 1000.0 && i + 1 < units.len() {
        v /= 1000.0;
        i += 1;
    }
    format!("{v:.1} {}", units[i])
}

/// The proxy's part of `status`: per endpoint, miners, shares, hashrate and latency.
fn print_proxy(p: &serde_json::Value) {
    println!();
    println!("stratum proxy: {} miners (hashrate over the last {} s)", p["miners"], p["hashrate_window_secs"]);
    let rows: Vec<Vec<String>> = p["endpoints"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let ms = |q: &str| e["submit_latency"][q].as_f64().map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"));
            vec![
                e["endpoint"].as_str().unwrap_or("?").to_owned(),
                format!(
                    "{}{}{}",
                    e["link"].as_str().unwrap_or("?"),
                    if e["usable"] == true { "" } else { "*" },
                    if e["standby_login"] == true { " (standby)" } else { "" }
                ),
                e["miners"].to_string(),
                e["totals"]["accepted"].to_string(),
                e["totals"]["rejected"].to_string(),
                e["totals"]["stale"].to_string(),
                rate(e["hashrate_hs"].as_f64().unwrap_or(0.0)),
                ms("p50_ms"),
                ms("p99_ms"),
                e["failures"].to_string(),
                e["last_error"].as_str().unwrap_or("-").to_owned(),
            ]
        })
        .collect();
    print!(
        "{}",
        table(
            &[
                "ENDPOINT",
                "LINK",
                "MINERS",
                "ACCEPTED",
                "REJECTED",
                "STALE",
                "HASHRATE",
                "P50 MS",
                "P99 MS",
                "FAILURES",
                "LAST ERROR"
            ],
            &rows
        )
    );
    let workers = p["workers"].as_object().map_or(0, serde_json::Map::len);
    if workers > 0 {
        println!("{workers} worker(s) with statistics: `status --json` lists them (totals, hashrate, last share)");
    }
    println!(
        "(* = no work goes there now: down, or waiting out the fail-back dwell; standby = logged in with a lender's standby credential, a fallback before any loan)"
    );
}
