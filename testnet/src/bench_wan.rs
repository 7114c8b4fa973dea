//! `hashmesh-testnet bench-wan`: the same cluster with its p2p links through Toxiproxy, once on
//! loopback (no latency added) and once WAN-shaped (`--wan`: pools 50–150 ms apart), each
//! measured for directive broadcast-to-commit latency (signed routes, `broadcast_tx_sync` until
//! the commit is visible) and the scheduling loop's reaction (an endpoint's server killed →
//! the owner's committed assignments no longer route to it). Also, for what else crosses pools:
//! pool-a's plane handshake with each other pool's node (QUIC + TLS 1.3, through the UDP relay
//! under `--wan`), and a Stratum `mining.subscribe` round trip from pool-a's agent's address for
//! each other pool's endpoint (through its Toxiproxy link under `--wan`).

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
    /// pool-a's plane handshakes with the other pools' nodes, ms (min, max).
    pub plane_handshake_ms: (u64, u64),
    /// Stratum subscribe round trips from pool-a's agent to the other pools' endpoints, ms
    /// (min, max).
    pub stratum_rtt_ms: (u64, u64),
}

fn span(ms: &[u64]) -> (u64, u64) {
    (ms.iter().copied().min().unwrap_or(0), ms.iter().copied().max().unwrap_or(0))
}

/// pool-a's plane handshake with every peer it lists.
fn plane_handshakes(c: &Cluster) -> Result<Vec<u64>> {
    let home = hashmesh_node::home::Home::load(&c.nodes[0].hashmesh_home)?;
    let key = home.signing_key()?;
    hashmesh_node::doctor::peer_handshakes(&home, &key)?
        .into_iter()
        .map(|(pool, addr, outcome)| match outcome {
            hashmesh_node::doctor::PeerHandshake::Proved(t) => Ok(u64::try_from(t.as_millis()).unwrap_or(u64::MAX)),
            other => bail!("plane handshake with {} at {addr}: {other:?}", pool.to_hex()),
        })
        .collect()
}

/// A `mining.subscribe` round trip to every other pool's endpoint, at the address pool-a's
/// first agent dials it.
fn stratum_round_trips(c: &Cluster) -> Result<Vec<u64>> {
    use std::io::{BufRead, BufReader, Write};
    let agent = c.nodes[0].agents.first().context("pool-a has no agent")?;
    let cfg =
        hashmesh_agent::proxy::config::StratumConfig::load(&agent.home)?.context("pool-a's agent proxies nothing")?;
    let mut out = Vec::new();
    for (id, addr) in cfg.endpoints.iter().filter(|(id, _)| !id.to_string().starts_with("pool-a/")) {
        let t = Instant::now();
        let stream = std::net::TcpStream::connect_timeout(addr, Duration::from_secs(5))
            .with_context(|| format!("connecting to {id} at {addr}"))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        (&stream).write_all(b"{\"id\":1,\"method\":\"mining.subscribe\",\"params\":[\"bench-wan\"]}\n")?;
        let mut line = String::new();
        BufReader::new(&stream).read_line(&mut line).with_context(|| format!("{id} did not answer"))?;
        if !line.contains("\"id\":1") {
            bail!("{id} answered {line:?} to mining.subscribe");
        }
        out.push(u64::try_from(t.elapsed().as_millis()).unwrap_or(u64::MAX));
    }
    Ok(out)
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
    let plane_handshake_ms = span(&plane_handshakes(&c)?);
    let stratum_rtt_ms = span(&stratum_round_trips(&c)?);
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
        plane_handshake_ms,
        stratum_rtt_ms,
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
        let row = measure(work_dir, cometbft, toxiproxy, wan, directives);
        if row.is_err() && work_dir.join("cluster.json").exists() {
            // Leave nothing running behind a failed measurement.
            let _ = commands::down(work_dir, true);
        }
        rows.push(row?);
    }
    Ok(rows)
}

/// The table.
#[must_use]
pub fn render(rows: &[WanRow]) -> String {
    let mut s = String::from(
        "| links | directives | broadcast→commit p50 | p99 | loop reaction to a dead endpoint | plane handshake to other pools | Stratum subscribe to other pools' endpoints |\n|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        s.push_str(&format!(
            "| {} | {} | {} ms | {} ms | {} ms | {}–{} ms | {}–{} ms |\n",
            r.links,
            r.directives,
            r.commit_p50_ms,
            r.commit_p99_ms,
            r.reaction_ms,
            r.plane_handshake_ms.0,
            r.plane_handshake_ms.1,
            r.stratum_rtt_ms.0,
            r.stratum_rtt_ms.1
        ));
    }
    if let Some(w) = rows.iter().find(|r| r.links == "wan") {
        s.push_str(&format!("WAN distances (round trip): {}\n", w.distances.join(", ")));
    }
    s
}
