//! A pool's Stratum traffic on the testnet: `hashmesh-testnet stratum NODE` serves the pool's
//! endpoints (real Stratum servers) and runs its miner fleet against its agents; `testnet/chaos`
//! and `testnet/status` talk to the endpoints over their HTTP side.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::cluster::Cluster;
use crate::endpoint::{Endpoint, EndpointSettings, EndpointStatus};
use crate::fleet::{self, FleetSettings};
use hashmesh_stratum::endpoint::Chaos;

/// Serve node `i`'s endpoints and run its fleet until killed.
///
/// # Errors
/// If the cluster has no Stratum traffic or an address cannot be bound.
pub fn serve(cluster: &Cluster, i: usize) -> Result<()> {
    let spec = cluster.stratum.clone().context("this cluster was generated without Stratum traffic")?;
    let node = cluster.nodes[i].clone();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    rt.block_on(async move {
        for e in &node.stratum {
            Endpoint::start(EndpointSettings {
                name: e.id.clone(),
                stratum: e.stratum.parse()?,
                http: e.http.parse()?,
                difficulty: spec.difficulty,
                job_ms: spec.job_ms,
                jobs_per_block: 6,
            })
            .await?;
            tracing::info!(endpoint = %e.id, stratum = %e.stratum, http = %e.http, "endpoint serving");
        }
        let agents: Vec<SocketAddr> = node.agents.iter().filter_map(|a| a.stratum.as_ref()?.parse().ok()).collect();
        if !agents.is_empty() {
            for g in &node.groups {
                for (k, agent) in agents.iter().enumerate() {
                    let share =
                        spec.miners_per_group / agents.len() + usize::from(k < spec.miners_per_group % agents.len());
                    let _stats = fleet::start(&FleetSettings {
                        target: *agent,
                        miners: share,
                        hashrate_hs: spec.hashrate_hs,
                        worker_prefix: format!("{g}.rig-{}-", k + 1),
                        version_rolling: true,
                        // Half the fleet cannot take mining.set_extranonce, as in real farms.
                        extranonce_subscribe: k % 2 == 0,
                        tick_ms: 250,
                    });
                }
            }
            tracing::info!(pool = %node.name, per_group = spec.miners_per_group, "fleet mining through the agents");
        }
        std::future::pending::<()>().await;
        Ok::<(), anyhow::Error>(())
    })
}

fn http(addr: &str, method: &str, path: &str, body: &str) -> Result<String> {
    let addr: SocketAddr = addr.parse()?;
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .with_context(|| format!("the endpoint's HTTP side at {addr} does not answer; is `testnet/up` running?"))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    let (head, rest) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    if !head.starts_with("HTTP/1.1 200") {
        bail!("{method} {path} at {addr}: {}", head.lines().next().unwrap_or_default());
    }
    Ok(rest.to_owned())
}

/// Put `chaos` on the endpoint whose HTTP side is `addr`.
///
/// # Errors
/// If the endpoint does not answer or refuses.
pub fn set_chaos(addr: &str, chaos: &Chaos) -> Result<()> {
    http(addr, "POST", "/chaos", &serde_json::to_string(chaos)?).map(|_| ())
}

/// The status of the endpoint whose HTTP side is `addr`.
///
/// # Errors
/// If the endpoint does not answer.
pub fn status(addr: &str) -> Result<EndpointStatus> {
    Ok(serde_json::from_str(&http(addr, "GET", "/status", "")?)?)
}
