//! The scripted demo `testnet up` runs: own routes, a cross-pool route with its vote, a drain.

use std::time::Duration;

use anyhow::{bail, Result};
use hashmesh_protocol::{Body, DirectiveId, RejectCode};
use serde_json::{json, Value};

use super::cluster::Cluster;
use super::procs;
use crate::output::{short, table};
use crate::rpc::Rpc;
use crate::tx_cmd::{self, TxOptions};

fn send(cluster: &Cluster, node: usize, body: Body) -> Result<Value> {
    send_tolerating(cluster, node, body, &[])
}

/// Like `send`, but a refusal with one of `tolerated` codes is reported and not an error.
fn send_tolerating(cluster: &Cluster, node: usize, body: Body, tolerated: &[RejectCode]) -> Result<Value> {
    let n = &cluster.nodes[node];
    let opts =
        TxOptions { rpc: n.rpc.clone(), chain_id: None, nonce: None, dry_run: false, timeout: Duration::from_secs(30) };
    let what = describe(&body);
    let (report, ok) = tx_cmd::sign_and_send(&n.hashmesh_home, body, &opts)?;
    let decided = match report["decided"]["status"].as_str() {
        Some(s) => format!(" (directive now {s})"),
        None => String::new(),
    };
    println!(
        "  {:<7} {:<62} -> {:<8} height {}{decided}",
        n.name,
        what,
        report["status"].as_str().unwrap_or("?"),
        report["height"]
    );
    let tolerated = report["code"].as_u64().is_some_and(|c| tolerated.iter().any(|t| u64::from(t.code()) == c));
    if !ok && !tolerated {
        bail!("demo step refused: {}", report["log"]);
    }
    if tolerated {
        println!("          (fine: {})", report["log"].as_str().unwrap_or_default());
    }
    Ok(report)
}

fn describe(body: &Body) -> String {
    match body {
        Body::Route { group, targets } => format!(
            "route {group} -> {}",
            targets.iter().map(|t| format!("{}={}", t.endpoint, t.weight_bp)).collect::<Vec<_>>().join(",")
        ),
        Body::Drain { endpoint } => format!("drain {endpoint}"),
        Body::Restore { endpoint } => format!("restore {endpoint}"),
        Body::Vote { directive, approve } => {
            format!("vote {} on {}", if *approve { "approve" } else { "reject" }, short(&directive.to_hex(), 12))
        }
        Body::ReportTelemetry { endpoint, report } => format!(
            "report {endpoint} epoch {} (cpu {} bp, p50 {} ms)",
            report.epoch, report.cpu_bp, report.latency_ms_p50
        ),
        Body::Receipt { receipts } => format!("{} receipt(s)", receipts.len()),
    }
}

fn route(group: &str, targets: &[(&str, u16)]) -> Result<Body> {
    Ok(Body::Route {
        group: group.parse()?,
        targets: targets
            .iter()
            .map(|(e, w)| Ok(hashmesh_protocol::RouteTarget { endpoint: e.parse()?, weight_bp: *w }))
            .collect::<Result<_>>()?,
    })
}

/// Run the demo against a running cluster.
///
/// # Errors
/// If a step is refused or a node does not answer.
pub fn run(cluster: &Cluster) -> Result<()> {
    println!("demo: submitting signed directives");
    let a = &cluster.nodes[0];
    send(cluster, 0, route(&a.groups[0], &[(&a.endpoints[0], 6000), (&a.endpoints[1], 4000)])?)?;
    if cluster.nodes.len() < 2 {
        return Ok(());
    }
    let b = &cluster.nodes[1];
    send(cluster, 1, route(&b.groups[0], &[(&b.endpoints[0], 10_000)])?)?;
    let cross = send(cluster, 0, route(&a.groups[1], &[(&b.endpoints[1], 7000), (&a.endpoints[0], 3000)])?)?;
    let id: DirectiveId = cross["directive_id"].as_str().unwrap_or_default().parse()?;
    // pool-b votes through its own node, which must have committed the route first.
    let route_height = cross["height"].as_u64().unwrap_or(0);
    procs::wait_for_height(cluster, &[1], route_height, Duration::from_secs(30))?;
    // pool-b's own scheduling loop may have voted already; that is the system working.
    send_tolerating(
        cluster,
        1,
        Body::Vote { directive: id, approve: true },
        &[RejectCode::AlreadyVoted, RejectCode::DirectiveNotPending],
    )?;
    let last = cluster.nodes.len() - 1;
    let z = &cluster.nodes[last];
    // Telemetry for an endpoint. Epochs are wall-clock milliseconds, like the scheduling loop's,
    // so a restarted demo still increases past what the loop reported.
    let epoch = hashmesh_plane::host::clock::now_ms();
    let report = hashmesh_protocol::TelemetryReport {
        epoch,
        hashrate_hs: 80_000_000_000_000,
        shares_accepted: 12_000,
        shares_rejected: 40,
        shares_stale: 25,
        latency_ms_p50: 35,
        latency_ms_p99: 120,
        cpu_bp: 3500,
        memory_bp: 4200,
        error_bp: 20,
        queue_len: 3,
        miners: 800,
    };
    send(cluster, last, Body::ReportTelemetry { endpoint: z.endpoints[0].parse()?, report })?;
    let endpoint: hashmesh_protocol::EndpointId = z.endpoints[1].parse()?;
    // On a restarted cluster the endpoint may already be drained: then restore it instead.
    let endpoints = Rpc::new(&z.rpc).abci_query("/endpoints", b"")?;
    let drained =
        endpoints.as_array().into_iter().flatten().any(|e| e["id"] == endpoint.as_str() && e["drained"] == true);
    send(cluster, last, if drained { Body::Restore { endpoint } } else { Body::Drain { endpoint } })?;
    Ok(())
}

/// One status row per node.
#[must_use]
pub fn status(cluster: &Cluster) -> Vec<Value> {
    cluster
        .nodes
        .iter()
        .map(|n| {
            let (height, app_hash) = Rpc::new(&n.rpc).status().map(|(_, h, a)| (h, a)).unwrap_or((0, String::new()));
            json!({
                "name": n.name,
                "pool_id": n.pool_id,
                "rpc": n.rpc,
                "abci": n.abci,
                "metrics": n.metrics,
                "height": height,
                "app_hash": app_hash,
                "cometbft_pid": n.pids.cometbft,
                "cometbft_alive": procs::alive(n.pids.cometbft),
                "hashmesh_pid": n.pids.hashmesh,
                "hashmesh_alive": procs::alive(n.pids.hashmesh),
                "agents": agent_rows(n),
            })
        })
        .collect()
}

/// Each agent of a node: process, and what the node last published about it.
fn agent_rows(n: &super::cluster::NodeInfo) -> Vec<Value> {
    let published = crate::plane::registry::read_status(&n.hashmesh_home).unwrap_or_default();
    n.agents
        .iter()
        .map(|a| {
            let s = published.iter().find(|s| s.id == a.id);
            json!({
                "id": a.id,
                "pid": a.pid,
                "alive": procs::alive(a.pid),
                "connected": s.is_some_and(|s| s.connected),
                "lost": s.is_some_and(|s| s.lost),
                "last_heartbeat_ms": s.and_then(|s| s.last_heartbeat_ms),
                "last_directive": s.and_then(|s| s.last_directive.clone()),
            })
        })
        .collect()
}

/// The status rows as a table.
#[must_use]
pub fn render_status(rows: &[Value]) -> String {
    let up = |alive: &Value, pid: &Value| {
        if alive.as_bool() == Some(true) {
            format!("up ({pid})")
        } else {
            "down".into()
        }
    };
    let now = hashmesh_plane::host::clock::now_ms();
    let agents: Vec<Vec<String>> = rows
        .iter()
        .flat_map(|r| {
            let node = r["name"].as_str().unwrap_or("").to_owned();
            r["agents"].as_array().cloned().unwrap_or_default().into_iter().map(move |a| {
                vec![
                    node.clone(),
                    short(a["id"].as_str().unwrap_or(""), 12),
                    if a["alive"] != true {
                        "down".into()
                    } else if a["lost"] == true {
                        "lost".into()
                    } else if a["connected"] == true {
                        "connected".into()
                    } else {
                        "connecting".into()
                    },
                    a["last_heartbeat_ms"]
                        .as_u64()
                        .map_or("-".into(), |t| format!("{:.1} s ago", now.saturating_sub(t) as f64 / 1000.0)),
                    a["last_directive"].as_str().map_or("-".into(), |d| short(d, 16)),
                ]
            })
        })
        .collect();
    let agents = if agents.is_empty() {
        String::new()
    } else {
        format!("\n{}", table(&["NODE", "AGENT", "STATE", "LAST HEARTBEAT", "LAST DIRECTIVE"], &agents))
    };
    table(
        &["NODE", "POOL ID", "RPC", "HEIGHT", "APP HASH", "COMETBFT", "HASHMESH"],
        &rows
            .iter()
            .map(|r| {
                vec![
                    r["name"].as_str().unwrap_or("").to_owned(),
                    short(r["pool_id"].as_str().unwrap_or(""), 12),
                    r["rpc"].as_str().unwrap_or("").to_owned(),
                    r["height"].to_string(),
                    short(r["app_hash"].as_str().unwrap_or(""), 16),
                    up(&r["cometbft_alive"], &r["cometbft_pid"]),
                    up(&r["hashmesh_alive"], &r["hashmesh_pid"]),
                ]
            })
            .collect::<Vec<_>>(),
    ) + &agents
}
