//! `hashmesh doctor --home H`: check a node's home and surroundings — config, key file mode,
//! CometBFT reachable on the same chain, this pool in the genesis, the clock against the chain,
//! listen ports, plane peers reachable, agents registered and connected — each finding with
//! what to do.

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::Path;
use std::time::Duration;

use hashmesh_plane::host::clock::now_ms;
use hashmesh_plane::transport::endpoint::connect;
use hashmesh_plane::transport::identity::tls_identity;
use hashmesh_plane::transport::tls::{Role, Trust, ALPN};
use hashmesh_protocol::SigningKey;
use serde::Serialize;

use crate::home::Home;
use crate::output::table;
use crate::plane::registry;
use crate::rpc::Rpc;

/// Longest a plane peer may take to complete a handshake.
const PEER_WAIT: Duration = Duration::from_secs(3);
/// A last block older than this means the chain (or this host's clock) has a problem, ms.
const BLOCK_AGE_MS_MAX: i64 = 60_000;
/// A last block this far in the future means this host's clock is behind, ms.
const CLOCK_AHEAD_MS_MAX: i64 = 2_000;

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// Fine.
    Ok,
    /// Works, but look at it.
    Warn,
    /// Broken: the node cannot do its job until it is fixed.
    Fail,
}

/// One finding.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What was checked.
    pub check: String,
    /// How it came out.
    pub level: Level,
    /// What was found.
    pub detail: String,
    /// What to do (for warnings and failures).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

fn check(name: &str, level: Level, detail: impl Into<String>, fix: Option<String>) -> Check {
    Check { check: name.into(), level, detail: detail.into(), fix }
}

/// Run every check on the node home `dir`.
#[must_use]
pub fn run(dir: &Path) -> Vec<Check> {
    let mut out = Vec::new();
    let home = match Home::load(dir) {
        Ok(h) => {
            out.push(check("config", Level::Ok, format!("{} parses", dir.join("config.toml").display()), None));
            h
        }
        Err(e) => {
            out.push(check(
                "config",
                Level::Fail,
                format!("{e:#}"),
                Some(format!("run `hashmesh init --home {}`, or fix the file it names", dir.display())),
            ));
            return out;
        }
    };
    let me = match home.signing_key() {
        Ok(k) => {
            out.push(check("pool key", Level::Ok, format!("pool id {}", k.pool_id()), None));
            Some(k)
        }
        Err(e) => {
            let text = format!("{e:#}");
            let fix = if text.contains("chmod") {
                "make it readable by this user only (the message says how)".to_owned()
            } else {
                format!("restore pool_key.json into {} from your backup", dir.display())
            };
            out.push(check("pool key", Level::Fail, text, Some(fix)));
            None
        }
    };
    let rpc = Rpc::new(&home.config.rpc);
    let mut node_running = false;
    match rpc.status() {
        Err(e) => out.push(check(
            "cometbft rpc",
            Level::Fail,
            format!("{e:#}"),
            Some(format!(
                "start CometBFT (`cometbft start --home …`, after `hashmesh start`), or set `rpc` in {} to its [rpc] laddr",
                dir.join("config.toml").display()
            )),
        )),
        Ok((chain, height, _)) => {
            out.push(check("cometbft rpc", Level::Ok, format!("{} answers: chain {chain}, height {height}", rpc.url()), None));
            let configured = &home.config.chain_id;
            if !configured.is_empty() && *configured != chain {
                out.push(check(
                    "chain id",
                    Level::Fail,
                    format!("config.toml says {configured:?}, CometBFT runs {chain:?}"),
                    Some("set chain_id in config.toml to the consortium's (or leave it empty to ask CometBFT)".into()),
                ));
            }
            match rpc.abci_query("/pools", b"") {
                Err(e) => out.push(check(
                    "genesis",
                    Level::Fail,
                    format!("{e:#}"),
                    Some("start `hashmesh start --home` for this CometBFT (its proxy_app), with the shared genesis".into()),
                )),
                Ok(pools) => {
                    node_running = true;
                    let id = me.as_ref().map(|k| k.pool_id().to_hex()).unwrap_or_default();
                    let mine = pools.as_array().into_iter().flatten().find(|p| p["id"] == id.as_str());
                    match (mine, me.is_some()) {
                        (Some(p), _) => out.push(check(
                            "genesis",
                            Level::Ok,
                            format!("this pool is {} in the chain's genesis", p["name"].as_str().unwrap_or("?")),
                            None,
                        )),
                        (None, true) => out.push(check(
                            "genesis",
                            Level::Fail,
                            format!("pool {id} is not in the chain's genesis: every transaction it signs is refused"),
                            Some("every pool must be in genesis.json before the chain starts: `hashmesh genesis add-pool`, then `hashmesh genesis validate --home`".into()),
                        )),
                        (None, false) => {}
                    }
                }
            }
            if height > 0 {
                match rpc.block(height).map(|b| (b.time_secs * 1000.0) as i64) {
                    Ok(t) => out.push(clock(i64::try_from(now_ms()).unwrap_or(i64::MAX) - t)),
                    Err(e) => out.push(check("clock", Level::Warn, format!("could not read block {height}: {e:#}"), None)),
                }
            }
        }
    }
    out.extend(ports(&home, node_running));
    if let Some(k) = &me {
        out.extend(peers(&home, k));
    }
    out.push(agents(dir, node_running));
    out
}

/// The host's clock against the last block's time (`age_ms` = now − block time).
fn clock(age_ms: i64) -> Check {
    if age_ms > BLOCK_AGE_MS_MAX {
        check(
            "clock",
            Level::Warn,
            format!("the last block is {} s old", age_ms / 1000),
            Some("is the chain stalled (fewer than 2/3 of the voting power online)? else this host's clock is ahead: run NTP".into()),
        )
    } else if age_ms < -CLOCK_AHEAD_MS_MAX {
        check(
            "clock",
            Level::Warn,
            format!("the last block is {} ms in this host's future", -age_ms),
            Some("this host's clock is behind the validators': run NTP".into()),
        )
    } else {
        check("clock", Level::Ok, format!("last block {age_ms} ms ago"), None)
    }
}

/// The listen addresses: free when the node is not running, in use when it is.
fn ports(home: &Home, node_running: bool) -> Vec<Check> {
    let c = &home.config;
    let mut list: Vec<(&str, SocketAddr, bool)> = vec![("abci listen", c.abci_listen, true)];
    list.extend(c.metrics_listen.map(|a| ("metrics listen", a, true)));
    list.extend(c.plane.listen.map(|a| ("plane listen", a, false)));
    list.into_iter()
        .filter(|(_, a, _)| a.port() != 0)
        .map(|(name, addr, tcp)| {
            let free = if tcp { TcpListener::bind(addr).is_ok() } else { UdpSocket::bind(addr).is_ok() };
            match (free, node_running) {
                (true, _) => check(name, Level::Ok, format!("{addr} is free"), None),
                (false, true) => check(name, Level::Ok, format!("{addr} is in use (by the running node)"), None),
                (false, false) => check(
                    name,
                    Level::Fail,
                    format!("{addr} is in use, and no node of this home answers"),
                    Some(
                        "stop what holds it, or give this node another address (`hashmesh init` flags, or config.toml)"
                            .into(),
                    ),
                ),
            }
        })
        .collect()
}

/// How a handshake with one `[plane.peers]` entry went.
#[derive(Debug)]
pub enum PeerHandshake {
    /// It proved the listed pool key; how long the QUIC + TLS handshake took.
    Proved(std::time::Duration),
    /// It answered but the handshake failed.
    Failed(anyhow::Error),
    /// No answer within the wait.
    Silent,
}

/// Try a plane handshake with every `[plane.peers]` entry of `home`, signing as `key`.
///
/// # Errors
/// If no runtime or TLS identity can be built.
pub fn peer_handshakes(
    home: &Home,
    key: &SigningKey,
) -> anyhow::Result<Vec<(hashmesh_protocol::PoolId, std::net::SocketAddr, PeerHandshake)>> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let id = key_identity(key)?;
    Ok(home
        .config
        .plane
        .peers
        .iter()
        .map(|(pool, addr)| {
            let trust = Trust::default();
            trust.insert(pool.0, Role::Node);
            let t = std::time::Instant::now();
            let tried = rt.block_on(async { tokio::time::timeout(PEER_WAIT, connect(*addr, &id, &trust, ALPN)).await });
            let took = t.elapsed();
            let outcome = match tried {
                Ok(Ok(conn)) => {
                    conn.close(0u32.into(), b"doctor");
                    PeerHandshake::Proved(took)
                }
                Ok(Err(e)) => PeerHandshake::Failed(e),
                Err(_) => PeerHandshake::Silent,
            };
            (*pool, *addr, outcome)
        })
        .collect())
}

/// Each `[plane.peers]` address completes a handshake with the pool key it is listed under.
fn peers(home: &Home, key: &SigningKey) -> Vec<Check> {
    if home.config.plane.peers.is_empty() {
        return Vec::new();
    }
    let tried = match peer_handshakes(home, key) {
        Ok(t) => t,
        Err(e) => return vec![check("plane peers", Level::Warn, format!("could not try them: {e:#}"), None)],
    };
    tried
        .into_iter()
        .map(|(pool, addr, outcome)| {
            let name = format!("peer {}", &pool.to_hex()[..12]);
            match outcome {
                PeerHandshake::Proved(took) => {
                    check(&name, Level::Ok, format!("{addr} proved its pool key ({} ms)", took.as_millis()), None)
                }
                PeerHandshake::Failed(e) => check(
                    &name,
                    Level::Fail,
                    format!("{addr}: {e:#}"),
                    Some("check the address under [plane.peers] and that pool's `[plane] listen`; its key must be the one listed".into()),
                ),
                PeerHandshake::Silent => check(
                    &name,
                    Level::Fail,
                    format!("{addr}: no answer within {PEER_WAIT:?}"),
                    Some("is that pool's node running, its plane listening there, and UDP open between you?".into()),
                ),
            }
        })
        .collect()
}

fn key_identity(key: &SigningKey) -> anyhow::Result<hashmesh_plane::transport::identity::TlsIdentity> {
    tls_identity(&ed25519_dalek::SigningKey::from_bytes(&key.seed()))
}

/// Registered agents, and — while the node runs — how many are connected.
fn agents(dir: &Path, node_running: bool) -> Check {
    let registered = match registry::load(dir) {
        Ok(r) => r.len(),
        Err(e) => return check("agents", Level::Fail, format!("{e:#}"), Some("fix or remove agents.json".into())),
    };
    if registered == 0 {
        return check(
            "agents",
            Level::Warn,
            "no agent registered: no miner follows this pool's routes",
            Some(
                "`hashmesh-agent init` at the edge, then `hashmesh agents add --home` here and restart the node".into(),
            ),
        );
    }
    let status: Vec<registry::AgentStatus> = std::fs::read(dir.join(registry::STATUS_FILE))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let connected = status.iter().filter(|a| a.connected).count();
    if node_running && connected == 0 {
        check(
            "agents",
            Level::Warn,
            format!("{registered} registered, none connected"),
            Some("start them (`hashmesh-agent start --node … --node-id <this pool id>`); their logs say why a session fails".into()),
        )
    } else {
        check("agents", Level::Ok, format!("{registered} registered, {connected} connected"), None)
    }
}

/// The findings as a table with the fixes under it.
#[must_use]
pub fn render(checks: &[Check]) -> String {
    let rows: Vec<Vec<String>> = checks
        .iter()
        .map(|c| {
            let level = match c.level {
                Level::Ok => "ok",
                Level::Warn => "WARN",
                Level::Fail => "FAIL",
            };
            vec![c.check.clone(), level.into(), c.detail.clone()]
        })
        .collect();
    let mut s = table(&["CHECK", "RESULT", "DETAIL"], &rows);
    for c in checks.iter().filter(|c| c.fix.is_some()) {
        s.push_str(&format!("{}: {}\n", c.check, c.fix.as_deref().unwrap_or_default()));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_check_names_a_stalled_chain_and_a_clock_behind() {
        assert_eq!(clock(800).level, Level::Ok);
        let stale = clock(BLOCK_AGE_MS_MAX + 1);
        assert_eq!(stale.level, Level::Warn);
        assert!(stale.fix.unwrap().contains("stalled"));
        let behind = clock(-CLOCK_AHEAD_MS_MAX - 1);
        assert_eq!(behind.level, Level::Warn);
        assert!(behind.fix.unwrap().contains("behind"));
        assert_eq!(clock(-CLOCK_AHEAD_MS_MAX).level, Level::Ok, "the bound itself is fine");
    }
}
