//! `hashmesh-testnet bench-wan`: the same cluster with its p2p links through Toxiproxy, once on
//! loopback (no latency added) and once WAN-shaped (`--wan`: pools 50–150 ms apart), each
//! measured for directive broadcast-to-commit latency (signed routes, `broadcast_tx_sync` until
//! the commit is visible) and the scheduling loop's reaction (an endpoint's server killed →
//! the owner's committed assignments no longer route to it).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use hashmesh_node::rpc::Rpc;
use hashmesh_node::tx_cmd::{self, TxOptions};
use hashmesh_protocol::{Body, RouteTarget};
use serde::Serialize;

use crate::cluster::Cluster;
use crate::commands::{self, Traffic, UpOptions};

/// One cluster's figures.
#[derive(Debug, Clone, Serialize)]
pub struct WanRow {
    /// `loopback` or `wan`.
    pub links: String,
    /// Round trips between the pools, ms (for people).
    pub distances: Vec<String>,
    /// Directives measured.
    pub directives: usize,
    /// Broadcast to commit, p50, ms.
    pub commit_p50_ms: u64,
    /// Broadcast to commit, p99 (the worst of few), ms.
    pub commit_p99_ms: u64,
    /// Kill of pool-a/ep-1 → pool-a's committed assignments route nothing to it, ms.
    pub reaction_ms: u64,
}

fn pct(sorted: &[u64], p: f64) -> u64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or(0)
}

fn routes_to(rpc: &Rpc, endpoint: &str) -> Result<bool> {
    let a = rpc.abci_query("/assignments", b"")?;
    Ok(a.as_array().into_iter().flatten().any(|x| {
        x["group"].as_str().is_some_and(|g| g.starts_with("pool-a/"))
            && x["targets"].as_array().into_iter().flatten().any(|t| t["endpoint"] == endpoint)
    }))
}

fn measure(dir: &Path, cometbft: &Path, toxiproxy: &Path, wan: bool, directives: usize) -> Result<WanRow> {
    if dir.exists() {
        commands::down(dir, true)?;
    }
    let traffic = Traffic::default();
    let opts = UpOptions { run_demo: false, traffic: &traffic, observe: None, links: Some((toxiproxy, wan)) };
    let code = commands::up(dir, 4, cometbft, 0, &opts)?;
    if code != 0 {
        bail!("the cluster's audit failed at start");
    }
    let c = Cluster::load(dir)?.context("no cluster after up")?;
    let distances = c.links.as_ref().map(crate::links::describe).unwrap_or_default();
    // Directives from pool-b (its own groups and endpoints: active at once, no votes).
    let b = &c.nodes[1];
    let opts =
        TxOptions { rpc: b.rpc.clone(), chain_id: None, nonce: None, dry_run: false, timeout: Duration::from_secs(60) };
    let mut took = Vec::new();
    for k in 0..directives {
        let w = 3_000 + u16::try_from(k * 97 % 4_000).expect("small");
        let body = Body::Route {
            group: b.groups[k % b.groups.len()].parse()?,
            targets: vec![
                RouteTarget { endpoint: b.endpoints[0].parse()?, weight_bp: w },
                RouteTarget { endpoint: b.endpoints[1].parse()?, weight_bp: 10_000 - w },
            ],
        };
        let t = Instant::now();
        let (report, ok) = tx_cmd::sign_and_send(&b.hashmesh_home, body, &opts)?;
        if !ok {
            bail!("a route was refused: {report}");
        }
        took.push(u64::try_from(t.elapsed().as_millis()).unwrap_or(u64::MAX));
    }
    took.sort_unstable();
    // The scheduling loop's reaction to a dead endpoint.
    let rpc = Rpc::new(&c.nodes[0].rpc);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !routes_to(&rpc, "pool-a/ep-1")? {
        if Instant::now() > deadline {
            bail!("pool-a routes nothing to pool-a/ep-1 to begin with");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let t = Instant::now();
    commands::chaos(dir, "kill", "pool-a/ep-1")?;
    while routes_to(&rpc, "pool-a/ep-1")? {
        if t.elapsed() > Duration::from_secs(120) {
            bail!("pool-a still routes to its dead endpoint after 120 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let reaction_ms = u64::try_from(t.elapsed().as_millis()).unwrap_or(u64::MAX);
    commands::down(dir, true)?;
    Ok(WanRow {
        links: if wan { "wan".into() } else { "loopback".into() },
        distances,
        directives,
        commit_p50_ms: pct(&took, 0.5),
        commit_p99_ms: pct(&took, 0.99),
        reaction_ms,
    })
}

/// Both clusters, one after the other, in `work_dir`.
///
/// # Errors
/// If a cluster does not start or a step times out.
pub fn run(cometbft: &Path, toxiproxy: &Path, work_dir: &Path, directives: usize) -> Result<Vec<WanRow>> {
    let mut rows = Vec::new();
    for wan in [false, true] {
        eprintln!("bench-wan: {} links", if wan { "WAN-shaped" } else { "loopback" });
        rows.push(measure(work_dir, cometbft, toxiproxy, wan, directives)?);
    }
    Ok(rows)
}

/// The table.
#[must_use]
pub fn render(rows: &[WanRow]) -> String {
    let mut s = String::from(
        "| p2p links | directives | broadcast→commit p50 | p99 | loop reaction to a dead endpoint |\n|---|---|---|---|---|\n",
    );
    for r in rows {
        s.push_str(&format!(
            "| {} | {} | {} ms | {} ms | {} ms |\n",
            r.links, r.directives, r.commit_p50_ms, r.commit_p99_ms, r.reaction_ms
        ));
    }
    if let Some(w) = rows.iter().find(|r| r.links == "wan") {
        s.push_str(&format!("WAN distances (round trip): {}\n", w.distances.join(", ")));
    }
    s
}
