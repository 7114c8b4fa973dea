//! The validators' p2p links through Toxiproxy: partitions and WAN latency on loopback.
//!
//! This kernel has no `netem`, so each ordered pair of validators `(from, to)` gets its own
//! Toxiproxy proxy: `from`'s CometBFT dials `to` at the proxy's port (its `persistent_peers` are
//! rewritten), the proxy forwards to `to`'s real p2p port. PEX is off, so no connection bypasses
//! the proxies. Disabling every link from and to a node partitions it (Toxiproxy closes their
//! connections); `--wan` adds a one-way latency of 25–75 ms (± 10 ms jitter) to each direction
//! of each link, so pools are 50–150 ms apart in round trip, each pair its own distance.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::json;
use toml_edit::{value, DocumentMut};

use crate::cluster::Cluster;
use crate::procs;

/// One proxied link.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Link {
    /// `pool-a->pool-b`.
    pub name: String,
    /// The dialing node's index.
    pub from: usize,
    /// The dialed node's index.
    pub to: usize,
    /// Where the proxy listens (`127.0.0.1:PORT`).
    pub listen: String,
    /// The dialed node's p2p address.
    pub upstream: String,
    /// One-way latency added in each direction, ms (0: none).
    pub latency_ms: u32,
}

/// The Toxiproxy server and the links it carries.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Links {
    /// The `toxiproxy-server` binary.
    pub binary: PathBuf,
    /// Its HTTP API (`127.0.0.1:PORT`).
    pub api: String,
    /// Its process (0: not running).
    pub pid: u32,
    /// Every ordered pair of validators.
    pub links: Vec<Link>,
}

/// Jitter added to every WAN latency, ms.
const JITTER_MS: u32 = 10;

/// Every port the cluster's processes will listen on (they are not listening yet, so the OS
/// could hand them out again).
fn cluster_ports(cluster: &Cluster) -> Result<std::collections::BTreeSet<u16>> {
    let text = serde_json::to_string(cluster)?;
    let mut ports: std::collections::BTreeSet<u16> = cluster.nodes.iter().map(|n| n.p2p_port).collect();
    for (i, _) in text.match_indices("127.0.0.1:") {
        let digits: String = text[i + 10..].chars().take_while(char::is_ascii_digit).collect();
        ports.extend(digits.parse::<u16>().ok());
    }
    Ok(ports)
}

/// `n` free ports, none of them one the cluster will use.
fn free_ports(n: usize, taken: &std::collections::BTreeSet<u16>) -> Result<Vec<u16>> {
    // Hold every listener until all are chosen so the OS gives distinct ports.
    let mut held = Vec::new();
    let mut ports = Vec::new();
    while ports.len() < n {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        let p = l.local_addr()?.port();
        if !taken.contains(&p) {
            ports.push(p);
        }
        held.push(l);
        if held.len() > n + 1000 {
            bail!("no {n} free ports on 127.0.0.1");
        }
    }
    Ok(ports)
}

/// Route the generated (not yet started) cluster's p2p links through Toxiproxy: ports for the
/// API and every ordered pair, each node's `persistent_peers` rewritten. With `wan`, each pair
/// gets a latency from 25 to 75 ms one way (spread evenly over the pairs).
///
/// # Errors
/// If a config cannot be rewritten.
pub fn interpose(cluster: &mut Cluster, binary: &Path, wan: bool) -> Result<()> {
    let n = cluster.nodes.len();
    let pairs: Vec<(usize, usize)> =
        (0..n).flat_map(|a| (0..n).filter(move |b| *b != a).map(move |b| (a, b))).collect();
    let ports = free_ports(pairs.len() + 1, &cluster_ports(cluster)?)?;
    let unordered = (n * n.saturating_sub(1) / 2).max(1);
    let mut links = Vec::new();
    for (k, (a, b)) in pairs.iter().copied().enumerate() {
        // Both directions of a pair share one distance.
        let (lo, hi) = (a.min(b), a.max(b));
        let rank = (0..lo).map(|x| n - 1 - x).sum::<usize>() + (hi - lo - 1);
        let span = unordered.saturating_sub(1).max(1);
        let latency_ms = if wan { 25 + u32::try_from(rank * 50 / span).unwrap_or(50).min(50) } else { 0 };
        links.push(Link {
            name: format!("{}->{}", cluster.nodes[a].name, cluster.nodes[b].name),
            from: a,
            to: b,
            listen: format!("127.0.0.1:{}", ports[k + 1]),
            upstream: format!("127.0.0.1:{}", cluster.nodes[b].p2p_port),
            latency_ms,
        });
    }
    for (i, node) in cluster.nodes.iter().enumerate() {
        let peers: Vec<String> = links
            .iter()
            .filter(|l| l.from == i)
            .map(|l| format!("{}@{}", cluster.nodes[l.to].node_id, l.listen))
            .collect();
        let path = node.home.join("config/config.toml");
        let mut doc: DocumentMut = std::fs::read_to_string(&path)?.parse().context("parsing CometBFT config.toml")?;
        doc["p2p"]["persistent_peers"] = value(peers.join(","));
        doc["p2p"]["pex"] = value(false);
        std::fs::write(&path, doc.to_string())?;
    }
    cluster.links = Some(Links { binary: binary.to_owned(), api: format!("127.0.0.1:{}", ports[0]), pid: 0, links });
    Ok(())
}

fn api(links: &Links, method: &str, path: &str, body: &serde_json::Value) -> Result<String> {
    hashmesh_plane::host::http::request(&links.api, method, path, &body.to_string(), Duration::from_secs(5))
        .with_context(|| format!("Toxiproxy {method} {path}"))
}

/// Start the Toxiproxy server (if it is not running) and create every link (and its latency).
/// Records the pid; the caller saves the cluster.
///
/// # Errors
/// If it does not start or refuses a link.
pub fn start(cluster: &mut Cluster) -> Result<()> {
    let Some(links) = cluster.links.as_mut() else { return Ok(()) };
    if procs::alive(links.pid) {
        return Ok(());
    }
    let (host, port) = links.api.split_once(':').context("the Toxiproxy API address")?;
    let log = cluster.dir.join("toxiproxy.log");
    let child = procs::spawn_detached(&links.binary, &["-host", host, "-port", port], &log)?;
    links.pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(10);
    while api(links, "GET", "/version", &json!({})).is_err() {
        if Instant::now() > deadline {
            bail!("toxiproxy-server did not answer at {} within 10 s; see {}", links.api, log.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    for l in &links.links {
        let proxy = json!({"name": l.name, "listen": l.listen, "upstream": l.upstream, "enabled": true});
        api(links, "POST", "/proxies", &proxy)?;
        if l.latency_ms > 0 {
            for stream in ["upstream", "downstream"] {
                let toxic = json!({
                    "name": format!("wan_{stream}"), "type": "latency", "stream": stream, "toxicity": 1.0,
                    "attributes": {"latency": l.latency_ms, "jitter": JITTER_MS},
                });
                api(links, "POST", &format!("/proxies/{}/toxics", l.name), &toxic)?;
            }
        }
    }
    Ok(())
}

/// Cut (or restore) every link from and to node `i`.
///
/// # Errors
/// If Toxiproxy refuses.
pub fn set_node(links: &Links, i: usize, enabled: bool) -> Result<()> {
    for l in links.links.iter().filter(|l| l.from == i || l.to == i) {
        api(links, "POST", &format!("/proxies/{}", l.name), &json!({"enabled": enabled}))?;
    }
    Ok(())
}

/// The round-trip latency between every pair, for people: `pool-a<->pool-b 50 ms`, ….
#[must_use]
pub fn describe(links: &Links) -> Vec<String> {
    links
        .links
        .iter()
        .filter(|l| l.from < l.to)
        .map(|l| {
            format!(
                "{}<->{} {} ms",
                l.name.split("->").next().unwrap_or(""),
                l.name.split("->").nth(1).unwrap_or(""),
                2 * l.latency_ms
            )
        })
        .collect()
}

/// The Toxiproxy binary: `HASHMESH_TOXIPROXY`, or installed into the tools cache by
/// `testnet/install-toxiproxy` (beside this crate's sources).
///
/// # Errors
/// If the install script fails (its message says why).
pub fn toxiproxy() -> Result<PathBuf> {
    if let Ok(p) = std::env::var("HASHMESH_TOXIPROXY") {
        return Ok(PathBuf::from(p));
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("install-toxiproxy");
    let out = std::process::Command::new(&script)
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    if !out.status.success() {
        bail!("{} failed; set HASHMESH_TOXIPROXY to a toxiproxy-server v2.5.0 binary", script.display());
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}
