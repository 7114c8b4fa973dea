//! A pool's Stratum traffic on the testnet: `hashmesh-testnet stratum NODE` serves the pool's
//! endpoints (real Stratum servers) and runs its miner fleet against its agents; `testnet/chaos`
//! and `testnet/status` talk to the endpoints over their HTTP side.

use std::time::Duration;

use std::net::SocketAddr;

use anyhow::{Context, Result};

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
    hashmesh_plane::host::http::request(addr, method, path, body, Duration::from_secs(5))
        .with_context(|| format!("the endpoint's HTTP side at {addr}; is `testnet/up` running?"))
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
