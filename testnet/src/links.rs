//! The links between pools through Toxiproxy: partitions and WAN latency on loopback.
//!
//! This kernel has no `netem`, so each ordered pair of validators `(from, to)` gets its own
//! Toxiproxy proxy: `from`'s CometBFT dials `to` at the proxy's port (its `persistent_peers` are
//! rewritten), the proxy forwards to `to`'s real p2p port. PEX is off, so no connection bypasses
//! the proxies. Disabling every p2p link from and to a node partitions it (Toxiproxy closes
//! their connections); `--wan` adds a one-way latency of 25–75 ms (± 10 ms jitter) to each
//! direction of each link, so pools are 50–150 ms apart in round trip, each pair its own
//! distance.
//!
//! With `--wan` the same distance also separates everything else that crosses pools: each
//! agent's Stratum connections to other pools' endpoints (a Toxiproxy proxy per pool and
//! foreign endpoint; the agents' `stratum.json` names it) and each node's plane connection to
//! other pools' nodes (QUIC over UDP, which Toxiproxy cannot carry: [`crate::udp_delay`] relays
//! those, in one `hashmesh-testnet wan-relay` process; `[plane.peers]` names the relay). A
//! pool's own agents, endpoints and node stay on loopback, as they would share a site.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::json;
use toml_edit::{value, DocumentMut};

use crate::cluster::Cluster;
use crate::procs;

/// What a link carries.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LinkKind {
    /// CometBFT p2p between validators (Toxiproxy; partitions cut these).
    #[default]
    P2p,
    /// An agent's pool to another pool's Stratum endpoint (Toxiproxy).
    Stratum,
    /// A node's plane to another pool's node (QUIC over UDP: the `wan-relay` process).
    Plane,
}

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
    /// What it carries.
    #[serde(default)]
    pub kind: LinkKind,
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
    /// Every ordered pair of validators (and with `--wan`, the Stratum and plane links).
    pub links: Vec<Link>,
    /// The program that relays the plane links (`hashmesh-testnet`).
    #[serde(default)]
    pub relay_program: Option<PathBuf>,
    /// The relay's process (0: not running).
    #[serde(default)]
    pub relay_pid: u32,
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
    let unordered = (n * n.saturating_sub(1) / 2).max(1);
    // Both directions of a pair share one distance.
    let latency = |a: usize, b: usize| {
        let (lo, hi) = (a.min(b), a.max(b));
        let rank = (0..lo).map(|x| n - 1 - x).sum::<usize>() + (hi - lo - 1);
        let span = unordered.saturating_sub(1).max(1);
        if wan {
            25 + u32::try_from(rank * 50 / span).unwrap_or(50).min(50)
        } else {
            0
        }
    };
    let mut wanted: Vec<(LinkKind, usize, usize, String, String)> = pairs
        .iter()
        .map(|&(a, b)| {
            let name = format!("{}->{}", cluster.nodes[a].name, cluster.nodes[b].name);
            (LinkKind::P2p, a, b, name, format!("127.0.0.1:{}", cluster.nodes[b].p2p_port))
        })
        .collect();
    if wan {
        for &(a, b) in &pairs {
            let to = &cluster.nodes[b];
            for e in &to.stratum {
                // Toxiproxy names go into URL paths: no '/'.
                let name = format!("{}=>{}", cluster.nodes[a].name, e.id.replace('/', ":"));
                wanted.push((LinkKind::Stratum, a, b, name, e.stratum.clone()));
            }
            wanted.push((LinkKind::Plane, a, b, format!("{}~>{}", cluster.nodes[a].name, to.name), to.abci.clone()));
        }
    }
    let ports = free_ports(wanted.len() + 1, &cluster_ports(cluster)?)?;
    let links: Vec<Link> = wanted
        .into_iter()
        .enumerate()
        .map(|(k, (kind, from, to, name, upstream))| Link {
            name,
            from,
            to,
            listen: format!("127.0.0.1:{}", ports[k + 1]),
            upstream,
            latency_ms: latency(from, to),
            kind,
        })
        .collect();
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
        route_through(cluster, i, &links)?;
    }
    let relay_program = links.iter().any(|l| l.kind == LinkKind::Plane).then(std::env::current_exe).transpose()?;
    cluster.links = Some(Links {
        binary: binary.to_owned(),
        api: format!("127.0.0.1:{}", ports[0]),
        pid: 0,
        links,
        relay_program,
        relay_pid: 0,
    });
    Ok(())
}

/// Point node `i`'s agents at the Stratum links to other pools' endpoints and its plane at the
/// relays to other pools' nodes.
fn route_through(cluster: &Cluster, i: usize, links: &[Link]) -> Result<()> {
    let node = &cluster.nodes[i];
    let stratum: Vec<&Link> = links.iter().filter(|l| l.from == i && l.kind == LinkKind::Stratum).collect();
    if !stratum.is_empty() {
        for agent in &node.agents {
            let Some(mut cfg) = hashmesh_agent::proxy::config::StratumConfig::load(&agent.home)? else { continue };
            for l in &stratum {
                let (upstream, listen): (std::net::SocketAddr, std::net::SocketAddr) =
                    (l.upstream.parse()?, l.listen.parse()?);
                for addr in cfg.endpoints.values_mut().filter(|a| **a == upstream) {
                    *addr = listen;
                }
            }
            cfg.save(&agent.home)?;
        }
    }
    let plane: Vec<&Link> = links.iter().filter(|l| l.from == i && l.kind == LinkKind::Plane).collect();
    if !plane.is_empty() {
        let mut home = hashmesh_node::home::Home::load(&node.hashmesh_home)?;
        for l in plane {
            home.config.plane.peers.insert(cluster.nodes[l.to].pool_id.parse()?, l.listen.parse()?);
        }
        home.save_config()?;
    }
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
    start_relay(&cluster.dir, links)?;
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
    for l in links.links.iter().filter(|l| l.kind != LinkKind::Plane) {
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

/// Start the plane links' relay (if there are plane links and it is not running). Records the
/// pid; the caller saves the cluster.
///
/// # Errors
/// If it does not start.
fn start_relay(dir: &Path, links: &mut Links) -> Result<()> {
    let Some(program) = links.relay_program.clone() else { return Ok(()) };
    if procs::alive(links.relay_pid) {
        return Ok(());
    }
    let log = dir.join("wan-relay.log");
    let dir_arg = dir.display().to_string();
    let child = procs::spawn_detached(&program, &["--dir", &dir_arg, "wan-relay"], &log)?;
    links.relay_pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&log).is_ok_and(|t| t.lines().any(|l| l == "ready")) {
        if Instant::now() > deadline || !procs::alive(links.relay_pid) {
            bail!("the plane links' relay did not start; see {}", log.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// The plane links to relay, for `hashmesh-testnet wan-relay`.
///
/// # Errors
/// If a link's address does not parse.
pub fn relays(links: &Links) -> Result<Vec<crate::udp_delay::Relay>> {
    links
        .links
        .iter()
        .filter(|l| l.kind == LinkKind::Plane)
        .map(|l| {
            Ok(crate::udp_delay::Relay {
                listen: l.listen.parse()?,
                upstream: l.upstream.parse()?,
                latency_ms: l.latency_ms,
                jitter_ms: if l.latency_ms > 0 { JITTER_MS } else { 0 },
            })
        })
        .collect()
}

/// Cut (or restore) every p2p link from and to node `i` (a partition of its validator).
///
/// # Errors
/// If Toxiproxy refuses.
pub fn set_node(links: &Links, i: usize, enabled: bool) -> Result<()> {
    for l in links.links.iter().filter(|l| l.kind == LinkKind::P2p && (l.from == i || l.to == i)) {
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
        .filter(|l| l.kind == LinkKind::P2p && l.from < l.to)
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
