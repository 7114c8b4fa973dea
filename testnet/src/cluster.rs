//! `cluster.json`: what a generated cluster is and which processes run it.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// File name inside the cluster directory.
pub const CLUSTER_FILE: &str = "cluster.json";

/// Process ids of one node (0 = not running).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Pids {
    /// The `cometbft` process.
    pub cometbft: u32,
    /// The `hashmesh start` process.
    pub hashmesh: u32,
    /// The pool's Stratum endpoints and miner fleet (`hashmesh-testnet stratum`).
    #[serde(default)]
    pub stratum: u32,
}

/// One pool endpoint's real Stratum server.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct EndpointInfo {
    /// Endpoint id, e.g. `pool-a/ep-1`.
    pub id: String,
    /// Its Stratum address (`HOST:PORT`).
    pub stratum: String,
    /// Its HTTP address: `GET /status`, `GET /metrics`, `POST /chaos`.
    pub http: String,
}

/// The testnet's Stratum traffic: endpoints, and a fleet of virtual miners per pool.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StratumSpec {
    /// The program that serves endpoints and fleets (`hashmesh-testnet`).
    pub program: PathBuf,
    /// Virtual miners per miner group (spread over the pool's agents).
    pub miners_per_group: usize,
    /// Hashes per second per virtual miner.
    pub hashrate_hs: f64,
    /// Endpoints' share difficulty.
    pub difficulty: f64,
    /// A new job every this many ms.
    pub job_ms: u64,
}

/// One node: a validator and its hashmesh node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Pool name, e.g. `pool-a`.
    pub name: String,
    /// CometBFT home.
    pub home: PathBuf,
    /// hashmesh home (config and pool key).
    pub hashmesh_home: PathBuf,
    /// CometBFT RPC URL.
    pub rpc: String,
    /// CometBFT P2P port.
    pub p2p_port: u16,
    /// ABCI address the node serves.
    pub abci: String,
    /// Prometheus metrics address.
    pub metrics: String,
    /// The pool id (ed25519 public key, hex).
    pub pool_id: String,
    /// CometBFT node id.
    pub node_id: String,
    /// CometBFT validator address.
    pub validator_address: String,
    /// Miner groups of this pool.
    pub groups: Vec<String>,
    /// Endpoints of this pool.
    pub endpoints: Vec<String>,
    /// Running processes.
    pub pids: Pids,
    /// The pool's agents (registered with its node).
    #[serde(default)]
    pub agents: Vec<AgentInfo>,
    /// The pool's endpoints' Stratum servers (empty without Stratum traffic).
    #[serde(default)]
    pub stratum: Vec<EndpointInfo>,
}

/// One agent of a node.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AgentInfo {
    /// Agent id (its ed25519 key, hex).
    pub id: String,
    /// Agent home.
    pub home: PathBuf,
    /// Groups it serves.
    pub groups: Vec<String>,
    /// Its process (0 = not running).
    pub pid: u32,
    /// Where miners connect to it (`HOST:PORT`), when it proxies Stratum.
    #[serde(default)]
    pub stratum: Option<String>,
    /// Its Prometheus `/metrics` (`HOST:PORT`), when it proxies Stratum.
    #[serde(default)]
    pub metrics: Option<String>,
}

/// A generated cluster.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cluster {
    /// The chain id.
    pub chain_id: String,
    /// The cluster directory.
    pub dir: PathBuf,
    /// The `cometbft` binary.
    pub cometbft: PathBuf,
    /// The binary that runs nodes and agents: `hashmesh`, or `hashmesh-testnet` (whose nodes
    /// may run the synthetic telemetry model).
    pub hashmesh: PathBuf,
    /// Its arguments before `--home` to run a node: `["start"]` for `hashmesh`, `["node"]` for
    /// `hashmesh-testnet`.
    #[serde(default = "default_node_args")]
    pub node_args: Vec<String>,
    /// Which ABCI application the validators run: `hashmesh`, or CometBFT's built-in
    /// `kvstore` (used as the benchmark baseline; no hashmesh processes then).
    #[serde(default = "default_app")]
    pub app: String,
    /// Every node, in order.
    pub nodes: Vec<NodeInfo>,
    /// Stratum traffic, if the cluster carries any.
    #[serde(default)]
    pub stratum: Option<StratumSpec>,
    /// The Prometheus `up --observe` started, if any.
    #[serde(default)]
    pub observer: Option<crate::observe::Observer>,
    /// The validators' p2p links through Toxiproxy (`up --links` / `--wan`), if any.
    #[serde(default)]
    pub links: Option<crate::links::Links>,
}

fn default_node_args() -> Vec<String> {
    vec!["start".into()]
}

fn default_app() -> String {
    "hashmesh".into()
}

impl Cluster {
    /// Whether the validators run hashmesh (rather than the kvstore baseline).
    #[must_use]
    pub fn runs_hashmesh(&self) -> bool {
        self.app == "hashmesh"
    }

    /// Load `cluster.json` from `dir`, if there is one.
    ///
    /// # Errors
    /// If it exists but cannot be parsed.
    pub fn load(dir: &Path) -> Result<Option<Self>> {
        let path = dir.join(CLUSTER_FILE);
        if !path.exists() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&path)?;
        Ok(Some(serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?))
    }

    /// Write `cluster.json`.
    ///
    /// # Errors
    /// If it cannot be written.
    pub fn save(&self) -> Result<()> {
        hashmesh_plane::host::files::write_atomic(
            &self.dir.join(CLUSTER_FILE),
            serde_json::to_string_pretty(self)?.as_bytes(),
        )
    }

    /// The node called `name` (or with that index).
    ///
    /// # Errors
    /// If there is no such node.
    pub fn node_index(&self, name: &str) -> Result<usize> {
        if let Some(i) = self.nodes.iter().position(|n| n.name == name) {
            return Ok(i);
        }
        if let Ok(i) = name.parse::<usize>() {
            if i < self.nodes.len() {
                return Ok(i);
            }
        }
        let names: Vec<_> = self.nodes.iter().map(|n| n.name.as_str()).collect();
        anyhow::bail!("no node {name:?}; nodes are {}", names.join(", "))
    }
}
