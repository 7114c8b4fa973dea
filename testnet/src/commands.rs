//! The `hashmesh-testnet …` commands behind the `testnet/` scripts.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::json;

use std::collections::BTreeMap;

use crate::cluster::StratumSpec;
use crate::synthetic::{EndpointCondition, CHAOS_FILE};
use crate::traffic;
use crate::{demo, generate, procs, Cluster, ClusterSpec};
use hashmesh_node::audit::{self, AuditFilter};
use hashmesh_node::live::SchedulerSettings;
use hashmesh_node::output::print_json;
use hashmesh_node::rpc::Rpc;
use hashmesh_stratum::endpoint::Chaos;

const NO_CLUSTER: &str = "no cluster here; run testnet/up first";

fn any_running(c: &Cluster) -> bool {
    c.nodes.iter().any(|n| procs::alive(n.pids.cometbft) || procs::alive(n.pids.hashmesh))
}

/// The testnet's scheduling loop: 5 s epochs (10 s when busy), 15 s minimum dwell; telemetry
/// from the agents' measurements of real Stratum traffic, or — only for a cluster without
/// traffic (`--miners-per-group 0`), where nothing can be measured — the synthetic model, turned
/// on explicitly.
#[must_use]
pub fn testnet_scheduler(measured: bool) -> SchedulerSettings {
    SchedulerSettings {
        enabled: true,
        source: if measured { hashmesh_node::live::Source::Agents } else { hashmesh_node::live::Source::Synthetic },
        epoch_ms: 5_000,
        epoch_ms_high_load: 10_000,
        dwell_ms_min: 15_000,
        ..SchedulerSettings::default()
    }
}

/// `testnet/chaos degrade|kill|restore ENDPOINT`: steer the endpoint's real Stratum server
/// (degrade: 300 ms added latency and half the shares refused; kill: down, every connection
/// closed; restore: healthy) — what the agents then measure — and the synthetic model
/// (`chaos.json`) a cluster without traffic signs.
///
/// # Errors
/// If there is no cluster, the endpoint is unknown or the mode is not one of the three.
pub fn chaos(dir: &Path, mode: &str, endpoint: &str) -> Result<i32> {
    let condition = match mode {
        "degrade" => EndpointCondition::Degraded,
        "kill" => EndpointCondition::Dead,
        "restore" => EndpointCondition::Normal,
        other => bail!("unknown chaos {other:?}; use degrade, kill or restore"),
    };
    let c = Cluster::load(dir)?.context(NO_CLUSTER)?;
    let Some(node) = c.nodes.iter().find(|n| n.endpoints.iter().any(|e| e == endpoint)) else {
        let all: Vec<&str> = c.nodes.iter().flat_map(|n| n.endpoints.iter().map(String::as_str)).collect();
        bail!("no endpoint {endpoint:?}; endpoints are {}", all.join(", "));
    };
    let path = node.hashmesh_home.join(CHAOS_FILE);
    let mut map: BTreeMap<String, EndpointCondition> =
        std::fs::read(&path).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
    map.insert(endpoint.to_owned(), condition);
    hashmesh_plane::host::files::write_atomic(&path, &serde_json::to_vec_pretty(&map)?)?;
    if let Some(e) = node.stratum.iter().find(|e| e.id == endpoint) {
        let chaos = match condition {
            EndpointCondition::Degraded => Chaos { latency_ms: 300, error_bp: 5000, ..Chaos::default() },
            EndpointCondition::Dead => Chaos { down: true, ..Chaos::default() },
            EndpointCondition::Normal => Chaos::default(),
        };
        traffic::set_chaos(&e.http, &chaos)?;
    }
    println!("{endpoint} is now {condition:?} (seen by {}'s next scheduling epoch)", node.name);
    Ok(0)
}

/// The Stratum traffic `up` generates a new cluster with.
#[derive(Debug, Clone, PartialEq)]
pub struct Traffic {
    /// Virtual miners per miner group (0: no Stratum traffic).
    pub miners_per_group: usize,
    /// Hashes per second per miner.
    pub hashrate_hs: f64,
    /// Endpoints' share difficulty.
    pub difficulty: f64,
    /// Job interval, ms.
    pub job_ms: u64,
}

impl Default for Traffic {
    fn default() -> Self {
        // 2^-20: 4096 hashes a share, so a 2 kH/s virtual miner finds one every ~2 s.
        Self { miners_per_group: 25, hashrate_hs: 2_000.0, difficulty: 1.0 / 1_048_576.0, job_ms: 5_000 }
    }
}

/// What `testnet/up` adds to a plain cluster.
#[derive(Debug, Clone, Copy)]
pub struct UpOptions<'a> {
    /// Run the scripted demo.
    pub run_demo: bool,
    /// Stratum traffic (applies when the cluster is generated).
    pub traffic: &'a Traffic,
    /// Start this Prometheus binary over the cluster.
    pub observe: Option<&'a Path>,
    /// Route the p2p links through this Toxiproxy binary; `true`: with WAN latency (applies
    /// when the cluster is generated).
    pub links: Option<(&'a Path, bool)>,
}

/// `testnet/up`: generate (or restart) the cluster, start every node, wait for blocks, run the
/// demo, print the nodes and the audit from the last node. Exit status 1 if the audit fails.
///
/// # Errors
/// If generation, a process start or the first blocks fail.
pub fn up(dir: &Path, validators: usize, cometbft: &Path, base_port: u16, opts: &UpOptions<'_>) -> Result<i32> {
    let UpOptions { run_demo, traffic, observe, links } = *opts;
    let mut cluster = match Cluster::load(dir)? {
        Some(c) if any_running(&c) => {
            println!("a cluster is already running in {} ({} nodes):", dir.display(), c.nodes.len());
            print!("{}", demo::render_status(&demo::status(&c)));
            println!("use testnet/status, testnet/stop NODE, or testnet/down [--wipe]");
            return Ok(0);
        }
        Some(c) if c.nodes.len() != validators => bail!(
            "{} holds a stopped {}-node cluster; run `testnet/down --wipe` to make a {validators}-node one",
            dir.display(),
            c.nodes.len()
        ),
        Some(c) => {
            println!("restarting the stopped cluster in {}", dir.display());
            c
        }
        None => {
            println!("generating a {validators}-pool cluster in {}", dir.display());
            let mut c = generate(&ClusterSpec {
                dir: dir.to_owned(),
                validators,
                chain_id: "hashmesh-testnet".into(),
                base_port: (base_port != 0).then_some(base_port),
                cometbft: cometbft.to_owned(),
                hashmesh: std::env::current_exe()?,
                node_args: vec!["node".into()],
                timeout_commit: "250ms".into(),
                vote_window_blocks: 100,
                kvstore: false,
                scheduler: Some(testnet_scheduler(traffic.miners_per_group > 0)),
                agents_per_node: 2,
                stratum: (traffic.miners_per_group > 0).then(|| StratumSpec {
                    program: std::env::current_exe().expect("checked above"),
                    miners_per_group: traffic.miners_per_group,
                    hashrate_hs: traffic.hashrate_hs,
                    difficulty: traffic.difficulty,
                    job_ms: traffic.job_ms,
                }),
                simulated: None,
            })?;
            if let Some((toxiproxy, wan)) = links {
                crate::links::interpose(&mut c, toxiproxy, wan)?;
                c.save()?;
            }
            c
        }
    };
    // Record what started even when a later step fails, so `down` can stop it.
    let started = crate::links::start(&mut cluster);
    cluster.save()?;
    started?;
    if let Some(l) = &cluster.links {
        let wan = l.links.iter().any(|x| x.latency_ms > 0);
        println!(
            "  p2p links through Toxiproxy at {}{}",
            l.api,
            if wan { format!(" (WAN: {})", crate::links::describe(l).join(", ")) } else { String::new() }
        );
        if wan {
            let count = |k| l.links.iter().filter(|x| x.kind == k).count();
            println!(
                "  WAN also on {} agent-to-foreign-endpoint Stratum links (Toxiproxy) and {} node-to-node plane links \
                 (UDP relay, pid {})",
                count(crate::links::LinkKind::Stratum),
                count(crate::links::LinkKind::Plane),
                l.relay_pid
            );
        }
    }
    for i in 0..cluster.nodes.len() {
        procs::start_node(&mut cluster, i, true)?;
        let n = &cluster.nodes[i];
        println!("  started {} (cometbft pid {}, hashmesh pid {})", n.name, n.pids.cometbft, n.pids.hashmesh);
    }
    cluster.save()?;
    println!("waiting for the first blocks...");
    let all: Vec<usize> = (0..cluster.nodes.len()).collect();
    procs::wait_for_height(&cluster, &all, 2, Duration::from_secs(60))?;
    if let Some(prometheus) = observe {
        if let Some(old) = cluster.observer.take() {
            procs::stop_pid(old.pid, Duration::from_secs(5));
        }
        let o = crate::observe::start(&cluster, prometheus)?;
        println!("  prometheus {} (pid {}) scrapes every node, agent and endpoint; alert rules loaded", o.url, o.pid);
        cluster.observer = Some(o);
        cluster.save()?;
    }
    if run_demo {
        demo::run(&cluster)?;
    }
    println!();
    print!("{}", demo::render_status(&demo::status(&cluster)));
    let auditor = cluster.nodes.last().expect("a cluster has nodes");
    println!("\naudit from {} ({}):", auditor.name, auditor.rpc);
    // Verified, not believed: every row proven from the genesis file (docs/audit.md).
    let rpc = Rpc::new(&auditor.rpc);
    let mut report = audit::run(&rpc, &AuditFilter::default())?;
    let genesis = hashmesh_node::verify::Trust::Genesis(PathBuf::from(&auditor.home).join("config/genesis.json"));
    audit::verify_rows(&rpc, &genesis, &mut report, false)?;
    print!("{}", audit::render(&report));
    println!("\ncluster file: {}/cluster.json   stop with: testnet/down", cluster.dir.display());
    Ok(i32::from(report.failures > 0))
}

/// `testnet/start NODE`.
///
/// # Errors
/// If there is no cluster or no such node, or the processes cannot start.
pub fn start(dir: &Path, node: &str) -> Result<i32> {
    let mut c = Cluster::load(dir)?.context(NO_CLUSTER)?;
    let i = c.node_index(node)?;
    if procs::alive(c.nodes[i].pids.cometbft) {
        println!("{} is already running", c.nodes[i].name);
        return Ok(0);
    }
    let started = crate::links::start(&mut c);
    c.save()?;
    started?;
    procs::start_node(&mut c, i, true)?;
    c.save()?;
    let n = &c.nodes[i];
    println!("started {} (cometbft pid {}, hashmesh pid {})", n.name, n.pids.cometbft, n.pids.hashmesh);
    Ok(0)
}

/// `testnet/stop NODE`.
///
/// # Errors
/// If there is no cluster or no such node.
pub fn stop(dir: &Path, node: &str) -> Result<i32> {
    let mut c = Cluster::load(dir)?.context(NO_CLUSTER)?;
    let i = c.node_index(node)?;
    procs::stop_node(&mut c, i);
    c.save()?;
    println!("stopped {}", c.nodes[i].name);
    Ok(0)
}

/// `testnet/status [--json]`.
///
/// # Errors
/// If there is no cluster.
pub fn status(dir: &Path, json: bool) -> Result<i32> {
    let c = Cluster::load(dir)?.context(NO_CLUSTER)?;
    let rows = demo::status(&c);
    if json {
        print_json(&json!({"chain_id": c.chain_id, "dir": c.dir, "nodes": rows}));
    } else {
        print!("{}", demo::render_status(&rows));
    }
    Ok(0)
}

/// `testnet/down [--wipe]`.
///
/// # Errors
/// If the cluster directory cannot be removed.
pub fn down(dir: &Path, wipe: bool) -> Result<i32> {
    if let Some(mut c) = Cluster::load(dir)? {
        for i in 0..c.nodes.len() {
            procs::stop_node(&mut c, i);
        }
        if let Some(o) = c.observer.take() {
            procs::stop_pid(o.pid, Duration::from_secs(5));
        }
        if let Some(l) = c.links.as_mut() {
            procs::stop_pid(l.pid, Duration::from_secs(5));
            procs::stop_pid(l.relay_pid, Duration::from_secs(5));
            l.pid = 0;
            l.relay_pid = 0;
        }
        c.save()?;
        println!("stopped {} nodes", c.nodes.len());
    }
    if wipe && dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
        println!("removed {}", dir.display());
    }
    Ok(0)
}
