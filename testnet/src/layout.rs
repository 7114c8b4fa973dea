//! Generate a cluster directory: CometBFT homes with patched `config.toml`, one shared
//! `genesis.json` whose `app_state` lists every pool, hashmesh homes, and `cluster.json`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use hashmesh_abci::core::genesis::{GenesisEndpoint, GenesisGroup, GenesisPool};
use hashmesh_abci::core::{GenesisAppState, Params};
use hashmesh_agent::proxy::config::{Login, StratumConfig};
use hashmesh_protocol::{EndpointId, GroupId};
use serde_json::{json, Value};
use toml_edit::{value, DocumentMut};

use crate::cluster::{AgentInfo, Cluster, EndpointInfo, NodeInfo, Pids, StratumSpec};
use hashmesh_node::home::{Config, Home};

/// Ports each node needs: p2p, rpc, abci, metrics.
/// Ports of a node: p2p, rpc, abci (TCP) and plane (UDP, same number), metrics.
const PORTS_PER_NODE: usize = 4;
/// Ports of a pool's Stratum traffic: each endpoint's Stratum and HTTP, then each agent's
/// Stratum port, then each agent's `/metrics`.
fn stratum_ports(spec: &ClusterSpec) -> usize {
    if spec.stratum.is_some() {
        2 * ENDPOINTS_PER_POOL + 2 * spec.agents_per_node
    } else {
        0
    }
}
/// Endpoints (and groups) per generated pool.
const ENDPOINTS_PER_POOL: usize = 2;
/// Each testnet node's state-store page cache, MiB (`[store] cache_mib`; production: 128).
pub const TESTNET_STORE_CACHE_MIB: u64 = 32;
/// Heights each testnet node can prove state at (`[store] keep_heights`; production: 100 000).
pub const TESTNET_KEEP_HEIGHTS: u64 = 1_000;

/// What to generate.
#[derive(Debug, Clone)]
pub struct ClusterSpec {
    /// Cluster directory (created; must not hold a cluster yet).
    pub dir: PathBuf,
    /// Number of validators (pools).
    pub validators: usize,
    /// Chain id.
    pub chain_id: String,
    /// First port, or `None` to take free ports from the OS.
    pub base_port: Option<u16>,
    /// The `cometbft` binary.
    pub cometbft: PathBuf,
    /// The binary that runs nodes and agents (`hashmesh` or `hashmesh-testnet`).
    pub hashmesh: PathBuf,
    /// Its arguments before `--home` to run a node (`["start"]` or `["node"]`).
    pub node_args: Vec<String>,
    /// CometBFT `timeout_commit`.
    pub timeout_commit: String,
    /// Vote window in blocks.
    pub vote_window_blocks: u64,
    /// Use CometBFT's built-in `kvstore` instead of hashmesh (benchmark baseline).
    pub kvstore: bool,
    /// Run each node's live scheduling loop with these settings (`None`: off).
    pub scheduler: Option<hashmesh_node::live::SchedulerSettings>,
    /// Agents per pool, each serving all of the pool's groups, registered with its node.
    pub agents_per_node: usize,
    /// Real Stratum traffic: endpoints, agents proxying, virtual miners (`None`: none).
    pub stratum: Option<StratumSpec>,
    /// More pools in genesis with no validator and no node, whose keys the benchmark signs
    /// with ([`simulated_key`]); `None`: none.
    pub simulated: Option<Simulated>,
}

impl ClusterSpec {
    /// Four validators running `hashmesh start` and nothing else (no agents, traffic, loop or
    /// simulated pools), 200 ms blocks, free ports: what the cluster tests start from.
    #[must_use]
    pub fn validators_only(dir: PathBuf, chain_id: &str, cometbft: PathBuf, hashmesh: PathBuf) -> Self {
        Self {
            dir,
            validators: 4,
            chain_id: chain_id.to_owned(),
            base_port: None,
            cometbft,
            hashmesh,
            node_args: vec!["start".into()],
            timeout_commit: "200ms".into(),
            vote_window_blocks: 200,
            kvstore: false,
            scheduler: None,
            agents_per_node: 0,
            stratum: None,
            simulated: None,
        }
    }
}

/// Pools a benchmark signs for without running them (see [`ClusterSpec::simulated`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Simulated {
    /// How many (`sim-0`, `sim-1`, …).
    pub pools: usize,
    /// Endpoints each (`sim-0/ep-1`, …), at most `ENDPOINTS_PER_POOL_MAX`.
    pub endpoints: usize,
}

/// The name of simulated pool `i`.
#[must_use]
pub fn simulated_name(i: usize) -> String {
    format!("sim-{i}")
}

/// The key of simulated pool `i` (deterministic: the benchmark signs with it).
#[must_use]
pub fn simulated_key(i: usize) -> hashmesh_protocol::SigningKey {
    let mut seed = [0x5a; 32];
    seed[..8].copy_from_slice(&(i as u64).to_le_bytes());
    hashmesh_protocol::SigningKey::from_seed(&seed)
}

/// The pool name of node `i`: `pool-a`, `pool-b`, …
#[must_use]
pub fn pool_name(i: usize) -> String {
    let letters = b"abcdefghijklmnopqrstuvwxyz";
    if i < letters.len() {
        format!("pool-{}", letters[i] as char)
    } else {
        format!("pool-{i}")
    }
}

fn ports(spec: &ClusterSpec) -> Result<Vec<u16>> {
    let n = spec.validators * (PORTS_PER_NODE + stratum_ports(spec));
    match spec.base_port {
        Some(base) => {
            let ports: Vec<u16> = (0..n).map(|i| base + u16::try_from(i).expect("few ports")).collect();
            for p in &ports {
                if TcpListener::bind(("127.0.0.1", *p)).is_err() {
                    bail!("port {p} on 127.0.0.1 is in use; pick another --base-port or stop what uses it");
                }
            }
            Ok(ports)
        }
        None => {
            // Hold every listener until all are chosen so the OS gives distinct ports.
            let listeners: Vec<TcpListener> =
                (0..n).map(|_| TcpListener::bind("127.0.0.1:0")).collect::<std::io::Result<_>>()?;
            Ok(listeners.iter().map(|l| l.local_addr().expect("bound").port()).collect())
        }
    }
}

fn run(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Generate the cluster described by `spec`.
///
/// # Errors
/// If the directory already holds a cluster, a port is busy, or `cometbft init` fails.
pub fn generate(spec: &ClusterSpec) -> Result<Cluster> {
    if spec.validators == 0 || spec.validators > 26 {
        bail!("--validators must be 1..=26");
    }
    if Cluster::load(&spec.dir)?.is_some() {
        bail!("{} already holds a cluster; run `testnet/down --wipe` first", spec.dir.display());
    }
    std::fs::create_dir_all(&spec.dir)?;
    let dir = spec.dir.canonicalize()?;
    let ports = ports(spec)?;
    let mut nodes = Vec::new();
    let mut validators = Vec::new();
    let mut pools = Vec::new();
    let local = |port: u16| std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let per_node = PORTS_PER_NODE + stratum_ports(spec);
    // Every endpoint's Stratum address, known before any agent's configuration is written.
    let mut endpoint_addrs: BTreeMap<EndpointId, std::net::SocketAddr> = BTreeMap::new();
    for i in 0..spec.validators {
        for e in 0..ENDPOINTS_PER_POOL {
            let port = if spec.stratum.is_some() { ports[i * per_node + PORTS_PER_NODE + 2 * e] } else { 0 };
            endpoint_addrs.insert(format!("{}/ep-{}", pool_name(i), e + 1).parse()?, local(port));
        }
    }
    for i in 0..spec.validators {
        let name = pool_name(i);
        let base = i * per_node;
        let (p2p, rpc, abci, metrics) = (ports[base], ports[base + 1], ports[base + 2], ports[base + 3]);
        let node_dir = dir.join(&name);
        let cmt_home = node_dir.join("cometbft");
        run(Command::new(&spec.cometbft).args(["init", "--home"]).arg(&cmt_home))?;
        let node_id = run(Command::new(&spec.cometbft).args(["show-node-id", "--home"]).arg(&cmt_home))?;
        let pv: Value = serde_json::from_slice(&std::fs::read(cmt_home.join("config/priv_validator_key.json"))?)?;
        let address = pv["address"].as_str().context("priv_validator_key.json has no address")?.to_owned();
        validators.push(json!({
            "address": address,
            "pub_key": pv["pub_key"],
            "power": "10",
            "name": name,
        }));

        let mut cfg = Config::new(&name);
        cfg.chain_id = spec.chain_id.clone();
        cfg.abci_listen = local(abci);
        cfg.rpc = format!("http://127.0.0.1:{rpc}");
        cfg.metrics_listen = Some(local(metrics));
        // QUIC is UDP: the plane shares the ABCI port number without clashing.
        cfg.plane.listen = Some(local(abci));
        // A small node: four of them share one machine, and with its short blocks the testnet
        // makes in minutes the history a production node makes in days, so the store reaches
        // its steady size (cache full, history pruned) within a soak's first third.
        cfg.store = hashmesh_node::home::StoreSettings {
            cache_mib: TESTNET_STORE_CACHE_MIB,
            keep_heights: TESTNET_KEEP_HEIGHTS,
        };
        let endpoints: Vec<String> = (1..=ENDPOINTS_PER_POOL).map(|e| format!("{name}/ep-{e}")).collect();
        let groups: Vec<String> = (1..=ENDPOINTS_PER_POOL).map(|g| format!("{name}/g-{g}")).collect();
        let stratum: Vec<EndpointInfo> = if spec.stratum.is_some() {
            endpoints
                .iter()
                .enumerate()
                .map(|(e, id)| EndpointInfo {
                    id: id.clone(),
                    stratum: local(ports[base + PORTS_PER_NODE + 2 * e]).to_string(),
                    http: local(ports[base + PORTS_PER_NODE + 2 * e + 1]).to_string(),
                })
                .collect()
        } else {
            Vec::new()
        };
        if let Some(sched) = &spec.scheduler {
            // The endpoints' servers export their host's CPU and memory (node_exporter names):
            // the owner's node reads them for its own reports.
            // The same page counts accepted difficulty per worker: the lender's side of loans.
            let host_metrics: std::collections::BTreeMap<String, String> =
                stratum.iter().map(|e| (e.id.clone(), format!("http://{}/metrics", e.http))).collect();
            cfg.scheduler = hashmesh_node::live::SchedulerSettings {
                enabled: true,
                seed: i as u64 + 1,
                share_metrics: host_metrics.clone(),
                host_metrics,
                ..sched.clone()
            };
        }
        let hm_home = node_dir.join("hashmesh");
        let (_, key) = Home::init(&hm_home, cfg)?;
        let mut agents = Vec::new();
        for a in 1..=spec.agents_per_node {
            let home = node_dir.join(format!("agent-{a}"));
            let id = hashmesh_agent::home::init(&home)?;
            let parsed: std::collections::BTreeSet<GroupId> =
                groups.iter().map(|g| g.parse().expect("generated ids are valid")).collect();
            hashmesh_node::plane::registry::add(&hm_home, id, parsed.iter().cloned().collect())?;
            let agent_port = |k: usize| local(ports[base + PORTS_PER_NODE + 2 * ENDPOINTS_PER_POOL + k]);
            let listen = spec.stratum.as_ref().map(|_| agent_port(a - 1));
            let agent_metrics = spec.stratum.as_ref().map(|_| agent_port(spec.agents_per_node + a - 1));
            if let Some(listen) = listen {
                StratumConfig {
                    listen,
                    group_listeners: BTreeMap::new(),
                    endpoints: endpoint_addrs.clone(),
                    login: Login { user: format!("{name}.agent-{a}"), password: "x".into() },
                    logins: BTreeMap::new(),
                    standby: Vec::new(),
                    groups: parsed,
                    worker_groups: BTreeMap::new(),
                    fail_back_ms: 10_000,
                    start_difficulty: 1.0,
                    metrics_listen: agent_metrics,
                    partial_line_ms: hashmesh_agent::proxy::driver::PARTIAL_LINE_MS_DEFAULT,
                    workers_max: hashmesh_agent::proxy::core::WORKERS_MAX_DEFAULT,
                    worker_metrics: true,
                }
                .create(&home)?;
            }
            agents.push(AgentInfo {
                id: id.to_hex(),
                home,
                groups: groups.clone(),
                pid: 0,
                stratum: listen.map(|l| l.to_string()),
                metrics: agent_metrics.map(|l| l.to_string()),
            });
        }
        pools.push(GenesisPool {
            id: key.pool_id(),
            name: name.clone(),
            validator_address: address.clone(),
            endpoints: endpoints
                .iter()
                .map(|id| GenesisEndpoint {
                    id: id.parse().expect("generated ids are valid"),
                    stratum_url: format!(
                        "stratum+tcp://{}",
                        endpoint_addrs[&id.parse::<EndpointId>().expect("generated ids are valid")]
                    ),
                    capacity_hs: 500_000_000_000_000, // 500 TH/s
                    region: "local".into(),
                })
                .collect(),
            groups: groups
                .iter()
                .map(|id| GenesisGroup {
                    id: id.parse().expect("generated ids are valid"),
                    hashrate_hs: 100_000_000_000_000,
                })
                .collect(),
        });
        nodes.push(NodeInfo {
            name,
            home: cmt_home,
            hashmesh_home: hm_home,
            rpc: format!("http://127.0.0.1:{rpc}"),
            p2p_port: p2p,
            abci: format!("127.0.0.1:{abci}"),
            metrics: format!("127.0.0.1:{metrics}"),
            pool_id: key.pool_id().to_hex(),
            node_id,
            validator_address: address,
            groups,
            endpoints,
            pids: Pids::default(),
            agents,
            stratum,
        });
    }
    // Every node knows where the other pools' planes listen (for worker credentials).
    for n in &nodes {
        let mut home = Home::load(&n.hashmesh_home)?;
        home.config.plane.peers = nodes
            .iter()
            .filter(|m| m.pool_id != n.pool_id)
            .map(|m| Ok((m.pool_id.parse()?, m.abci.parse()?)))
            .collect::<Result<_>>()?;
        home.save_config()?;
    }
    for i in 0..spec.simulated.map_or(0, |s| s.pools) {
        let name = simulated_name(i);
        let per = spec.simulated.map_or(0, |s| s.endpoints);
        pools.push(GenesisPool {
            id: simulated_key(i).pool_id(),
            name: name.clone(),
            validator_address: "none (simulated by a benchmark)".into(),
            endpoints: (1..=per)
                .map(|e| GenesisEndpoint {
                    id: format!("{name}/ep-{e}").parse().expect("generated ids are valid"),
                    stratum_url: "stratum+tcp://127.0.0.1:1".into(),
                    capacity_hs: 500_000_000_000_000,
                    region: "local".into(),
                })
                .collect(),
            groups: Vec::new(),
        });
    }
    let app_state =
        GenesisAppState { params: Params { vote_window_blocks: spec.vote_window_blocks, ..Params::default() }, pools };
    app_state.validate().context("generated genesis is invalid")?;
    let mut genesis: Value = serde_json::from_slice(&std::fs::read(nodes[0].home.join("config/genesis.json"))?)?;
    genesis["chain_id"] = json!(spec.chain_id);
    genesis["validators"] = Value::Array(validators);
    genesis["app_state"] = serde_json::to_value(&app_state)?;
    let genesis_text = serde_json::to_string_pretty(&genesis)?;
    for (i, n) in nodes.iter().enumerate() {
        std::fs::write(n.home.join("config/genesis.json"), &genesis_text)?;
        let peers: Vec<String> = nodes
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, p)| format!("{}@127.0.0.1:{}", p.node_id, p.p2p_port))
            .collect();
        let proxy_app = if spec.kvstore { "kvstore".to_owned() } else { format!("tcp://{}", n.abci) };
        patch_config(&n.home, n, &proxy_app, &peers.join(","), &spec.timeout_commit)?;
    }
    let cluster = Cluster {
        chain_id: spec.chain_id.clone(),
        dir,
        cometbft: spec.cometbft.canonicalize()?,
        hashmesh: spec.hashmesh.canonicalize()?,
        node_args: spec.node_args.clone(),
        app: if spec.kvstore { "kvstore".into() } else { "hashmesh".into() },
        nodes,
        stratum: spec.stratum.clone(),
        observer: None,
        links: None,
    };
    cluster.save()?;
    Ok(cluster)
}

fn patch_config(cmt_home: &Path, n: &NodeInfo, proxy_app: &str, peers: &str, timeout_commit: &str) -> Result<()> {
    let path = cmt_home.join("config/config.toml");
    let mut doc: DocumentMut = std::fs::read_to_string(&path)?.parse().context("parsing CometBFT config.toml")?;
    doc["moniker"] = value(n.name.as_str());
    doc["proxy_app"] = value(proxy_app);
    doc["rpc"]["laddr"] = value(n.rpc.replace("http://", "tcp://"));
    doc["rpc"]["pprof_laddr"] = value("");
    doc["p2p"]["laddr"] = value(format!("tcp://127.0.0.1:{}", n.p2p_port));
    doc["p2p"]["persistent_peers"] = value(peers);
    doc["p2p"]["addr_book_strict"] = value(false);
    doc["p2p"]["allow_duplicate_ip"] = value(true);
    doc["p2p"]["pex"] = value(false);
    doc["consensus"]["timeout_propose"] = value("1s");
    doc["consensus"]["timeout_commit"] = value(timeout_commit);
    doc["tx_index"]["indexer"] = value("kv");
    doc["storage"]["discard_abci_responses"] = value(false);
    doc["instrumentation"]["prometheus"] = value(false);
    std::fs::write(&path, doc.to_string())?;
    Ok(())
}
