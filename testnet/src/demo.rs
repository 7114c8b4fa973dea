//! The scripted demo `testnet up` runs: own routes, a cross-pool route with its vote, a drain.

use std::time::Duration;

use anyhow::{bail, Result};
use hashmesh_protocol::{Body, DirectiveId, RejectCode};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeSet;

use crate::cluster::Cluster;
use crate::procs;
use hashmesh_node::output::{short, table};
use hashmesh_node::rpc::Rpc;
use hashmesh_node::tx_cmd::{self, TxOptions};

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
        Body::ReportTelemetryBatch { epoch, entries } => {
            format!("telemetry epoch {epoch}: {} endpoint(s)", entries.len())
        }
        Body::Offer { endpoint, max_hs, fee_bp, expires_height } => {
            format!("offer {endpoint} up to {max_hs} H/s at {fee_bp} bp until height {expires_height}")
        }
        Body::Withdraw { endpoint } => format!("withdraw the offer on {endpoint}"),
        Body::ReportLoanWork { entries } => format!("loan work: {} loan(s)", entries.len()),
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

/// The endpoints committed state accepts as route targets now: not drained, and with fresh
/// telemetry (if any) at or above the network's health floor. A restarted cluster may have
/// degraded or drained endpoints; the demo routes around them instead of being refused.
fn usable_endpoints(rpc: &Rpc) -> Result<BTreeSet<String>> {
    #[derive(Deserialize)]
    struct Params {
        health_floor_bp: u32,
    }
    #[derive(Deserialize)]
    struct Status {
        params: Params,
    }
    #[derive(Deserialize)]
    struct Endpoint {
        id: String,
        drained: bool,
    }
    #[derive(Deserialize)]
    struct Telemetry {
        endpoint: String,
        health_bp: Option<u32>,
        fresh: bool,
    }
    let floor = serde_json::from_value::<Status>(rpc.abci_query("/status", b"")?)?.params.health_floor_bp;
    let endpoints: Vec<Endpoint> = serde_json::from_value(rpc.abci_query("/endpoints", b"")?)?;
    let telemetry: Vec<Telemetry> = serde_json::from_value(rpc.abci_query("/telemetry", b"")?)?;
    let unhealthy: BTreeSet<String> = telemetry
        .into_iter()
        .filter(|t| t.fresh && t.health_bp.is_some_and(|h| h < floor))
        .map(|t| t.endpoint)
        .collect();
    Ok(endpoints.into_iter().filter(|e| !e.drained && !unhealthy.contains(&e.id)).map(|e| e.id).collect())
}

/// `targets` without the endpoints committed state would refuse, weights rescaled to 10 000;
/// `None` when none is left.
fn fit<'a>(targets: &[(&'a str, u16)], usable: &BTreeSet<String>) -> Option<Vec<(&'a str, u16)>> {
    let kept: Vec<(&str, u16)> = targets.iter().copied().filter(|(e, _)| usable.contains(*e)).collect();
    let total: u32 = kept.iter().map(|(_, w)| u32::from(*w)).sum();
    let (last, rest) = kept.split_last()?;
    let mut out: Vec<(&str, u16)> = rest
        .iter()
        .map(|(e, w)| (*e, u16::try_from(u32::from(*w) * 10_000 / total).expect("at most 10 000")))
        .collect();
    let used: u16 = out.iter().map(|(_, w)| *w).sum();
    out.push((last.0, 10_000 - used));
    Some(out)
}

/// Send a route step over the usable part of `targets`, or skip it with a note; the report.
fn route_step(cluster: &Cluster, node: usize, group: &str, targets: &[(&str, u16)]) -> Result<Option<Value>> {
    let usable = usable_endpoints(&Rpc::new(&cluster.nodes[node].rpc))?;
    match fit(targets, &usable) {
        Some(t) => {
            if t.len() < targets.len() {
                println!("  (committed state refuses some of {group}'s demo targets now; routing over the rest)");
            }
            Ok(Some(send(cluster, node, route(group, &t)?)?))
        }
        None => {
            println!("  (skipped: every demo target of {group} is drained or below the health floor now)");
            Ok(None)
        }
    }
}

/// Run the demo against a running cluster — fresh or restarted: each route goes only to
/// endpoints the committed state accepts.
///
/// # Errors
/// If a step is refused or a node does not answer.
pub fn run(cluster: &Cluster) -> Result<()> {
    println!("demo: submitting signed directives");
    offer_step(cluster)?;
    let a = &cluster.nodes[0];
    route_step(cluster, 0, &a.groups[0], &[(&a.endpoints[0], 6000), (&a.endpoints[1], 4000)])?;
    if cluster.nodes.len() < 2 {
        return Ok(());
    }
    let b = &cluster.nodes[1];
    route_step(cluster, 1, &b.groups[0], &[(&b.endpoints[0], 10_000)])?;
    wait_for_first_plan(cluster, &a.groups[1])?;
    let usable = usable_endpoints(&Rpc::new(&a.rpc))?;
    let cross_targets = [(b.endpoints[1].as_str(), 7000), (a.endpoints[0].as_str(), 3000)];
    let cross = if cross_targets.iter().all(|(e, _)| usable.contains(*e)) {
        Some(send(cluster, 0, route(&a.groups[1], &cross_targets)?)?)
    } else {
        println!("  (skipped the cross-pool route and its vote: a target is drained or below the health floor now)");
        None
    };
    if let Some(cross) = cross {
        vote_step(cluster, &cross)?;
    }
    drain_step(cluster)
}

/// Every pool but the first offers spare capacity on its first endpoint (250 TH/s, 100 bp more
/// fee per pool, open for `OFFER_TERM_BLOCKS_MAX` blocks): the pool that loses its endpoints
/// borrows there without a vote.
fn offer_step(cluster: &Cluster) -> Result<()> {
    for (i, n) in cluster.nodes.iter().enumerate().skip(1) {
        let (_, height, _) = Rpc::new(&n.rpc).status()?;
        send(
            cluster,
            i,
            Body::Offer {
                endpoint: n.endpoints[0].parse()?,
                max_hs: 250_000_000_000_000,
                fee_bp: 100 * u16::try_from(i).unwrap_or(1),
                expires_height: height + hashmesh_protocol::limits::OFFER_TERM_BLOCKS_MAX,
            },
        )?;
    }
    Ok(())
}

/// On a fresh cluster whose pools run their scheduling loop, wait (at most 20 s) until pool-a's
/// loop has routed `group` itself: a borrowed route sent before that would be superseded by the
/// loop's first plan in the same block, and lending would never be seen. Sent after it, the
/// borrowed route is the newer one and the loop leaves it alone for its dwell time.
fn wait_for_first_plan(cluster: &Cluster, group: &str) -> Result<()> {
    let home = &cluster.nodes[0].hashmesh_home;
    let looping = hashmesh_node::home::Home::load(home).is_ok_and(|h| h.config.scheduler.enabled);
    if !looping {
        return Ok(());
    }
    let rpc = Rpc::new(&cluster.nodes[0].rpc);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::time::Instant::now() < deadline {
        let routed = rpc
            .abci_query("/assignments", b"")
            .ok()
            .is_some_and(|a| a.as_array().into_iter().flatten().any(|x| x["group"] == group));
        if routed {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    println!("  ({group} has no route from its pool's scheduling loop yet; lending it now)");
    Ok(())
}

/// pool-b approves pool-a's cross-pool route.
fn vote_step(cluster: &Cluster, cross: &Value) -> Result<()> {
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
    Ok(())
}

/// The last pool drains (or, on a restarted cluster where it is drained already, restores) its
/// second endpoint. The demo reports no telemetry: every number on chain is one a node measured
/// (or, on the testnet, its loudly-labelled synthetic model), and a hand-made report would also
/// race the pool's own scheduling loop for the same endpoint's epoch.
fn drain_step(cluster: &Cluster) -> Result<()> {
    let last = cluster.nodes.len() - 1;
    let z = &cluster.nodes[last];
    let endpoint: hashmesh_protocol::EndpointId = z.endpoints[1].parse()?;
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
                "endpoints": endpoint_rows(n),
            })
        })
        .collect()
}

/// Each agent of a node: process, and what the node last published about it.
fn agent_rows(n: &super::cluster::NodeInfo) -> Vec<Value> {
    let published = hashmesh_node::plane::registry::read_status(&n.hashmesh_home).unwrap_or_default();
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
                "stratum": a.stratum,
            })
        })
        .collect()
}

/// Each Stratum endpoint of node `n` as its server reports it (unreachable ones say so).
fn endpoint_rows(n: &super::cluster::NodeInfo) -> Vec<Value> {
    n.stratum
        .iter()
        .map(|e| match crate::traffic::status(&e.http) {
            Ok(s) => json!({
                "id": e.id,
                "stratum": e.stratum,
                "http": e.http,
                "up": !s.chaos.down,
                "chaos": s.chaos,
                "connections": s.connections,
                "hashrate_hs": s.hashrate_hs,
                "accepted": s.workers.values().map(|w| w.accepted).sum::<u64>(),
                "rejected": s.workers.values().map(|w| w.rejected).sum::<u64>(),
                "stale": s.workers.values().map(|w| w.stale).sum::<u64>(),
                "workers": s.workers.keys().collect::<Vec<_>>(),
            }),
            Err(err) => {
                json!({"id": e.id, "stratum": e.stratum, "http": e.http, "up": false, "error": format!("{err:#}")})
            }
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
                    a["stratum"].as_str().unwrap_or("-").to_owned(),
                ]
            })
        })
        .collect();
    let agents = if agents.is_empty() {
        String::new()
    } else {
        format!("\n{}", table(&["NODE", "AGENT", "STATE", "LAST HEARTBEAT", "LAST DIRECTIVE", "MINERS AT"], &agents))
    };
    let endpoints: Vec<Vec<String>> = rows
        .iter()
        .flat_map(|r| r["endpoints"].as_array().cloned().unwrap_or_default())
        .map(|e| {
            let state = if e["error"].is_string() {
                "unreachable".to_owned()
            } else if e["up"] != true {
                "killed".into()
            } else if e["chaos"]["latency_ms"].as_u64().unwrap_or(0) > 0
                || e["chaos"]["error_bp"].as_u64().unwrap_or(0) > 0
            {
                "degraded".into()
            } else {
                "up".into()
            };
            vec![
                e["id"].as_str().unwrap_or("").to_owned(),
                e["stratum"].as_str().unwrap_or("").to_owned(),
                state,
                e["connections"].to_string(),
                e["hashrate_hs"].as_f64().map_or("-".into(), |h| format!("{:.1} kH/s", h / 1000.0)),
                e["accepted"].to_string(),
                e["rejected"].to_string(),
                e["stale"].to_string(),
            ]
        })
        .collect();
    let endpoints = if endpoints.is_empty() {
        String::new()
    } else {
        format!(
            "\n{}",
            table(
                &["ENDPOINT", "STRATUM", "STATE", "CONNS", "ACCEPTED RATE", "ACCEPTED", "REJECTED", "STALE"],
                &endpoints
            )
        )
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
        + &endpoints
}
