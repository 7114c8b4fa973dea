//! `hashmesh query …` and `hashmesh status`: read committed state through CometBFT RPC.

use anyhow::Result;
use serde_json::{json, Value};

use crate::output::{short, table};
use crate::rpc::Rpc;

/// What to query.
#[derive(Debug, Clone)]
pub enum Target {
    /// `/pools`
    Pools,
    /// `/endpoints`
    Endpoints,
    /// `/groups`
    Groups,
    /// `/assignments`
    Assignments,
    /// `/pending`
    Pending,
    /// `/telemetry`
    Telemetry,
    /// `/directive` by id
    Directive(String),
    /// `/history` with a JSON filter
    History(Value),
}

/// Run a query and return its JSON.
///
/// # Errors
/// If the node is unreachable or the app refuses the query.
pub fn run(rpc: &Rpc, target: &Target) -> Result<Value> {
    match target {
        Target::Pools => rpc.abci_query("/pools", b""),
        Target::Endpoints => rpc.abci_query("/endpoints", b""),
        Target::Groups => rpc.abci_query("/groups", b""),
        Target::Assignments => rpc.abci_query("/assignments", b""),
        Target::Pending => rpc.abci_query("/pending", b""),
        Target::Telemetry => rpc.abci_query("/telemetry", b""),
        Target::Directive(id) => rpc.abci_query("/directive", id.as_bytes()),
        Target::History(f) => rpc.abci_query("/history", f.to_string().as_bytes()),
    }
}

/// A human table for list answers (JSON is printed for the rest).
#[must_use]
pub fn render(target: &Target, v: &Value) -> Option<String> {
    let arr = v.as_array()?;
    let s = |x: &Value| match x {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    match target {
        Target::Pools => Some(table(
            &["NAME", "POOL ID", "VALIDATOR"],
            &arr.iter().map(|p| vec![s(&p["name"]), s(&p["id"]), s(&p["validator_address"])]).collect::<Vec<_>>(),
        )),
        Target::Endpoints => Some(table(
            &["ENDPOINT", "OWNER", "CAPACITY H/S", "REGION", "DRAINED", "STRATUM"],
            &arr.iter()
                .map(|e| {
                    vec![
                        s(&e["id"]),
                        short(&s(&e["owner"]), 12),
                        s(&e["capacity_hs"]),
                        s(&e["region"]),
                        s(&e["drained"]),
                        s(&e["stratum_url"]),
                    ]
                })
                .collect::<Vec<_>>(),
        )),
        Target::Groups => Some(table(
            &["GROUP", "OWNER", "HASHRATE H/S"],
            &arr.iter()
                .map(|g| vec![s(&g["id"]), short(&s(&g["owner"]), 12), s(&g["hashrate_hs"])])
                .collect::<Vec<_>>(),
        )),
        Target::Assignments => Some(table(
            &["GROUP", "SINCE", "ROUTES", "DIRECTIVE"],
            &arr.iter()
                .map(|a| {
                    let routes = a["targets"]
                        .as_array()
                        .map(|t| {
                            t.iter()
                                .map(|t| format!("{}={}", s(&t["endpoint"]), s(&t["weight_bp"])))
                                .collect::<Vec<_>>()
                                .join(",")
                        })
                        .unwrap_or_default();
                    vec![s(&a["group"]), s(&a["since_height"]), routes, short(&s(&a["directive"]), 16)]
                })
                .collect::<Vec<_>>(),
        )),
        Target::Telemetry => Some(table(
            &["ENDPOINT", "HEALTH BP", "FRESH", "EPOCH", "HEIGHT", "CPU BP", "P50 MS", "P99 MS", "MINERS"],
            &arr.iter()
                .map(|t| {
                    let r = &t["report"];
                    vec![
                        s(&t["endpoint"]),
                        s(&t["health_bp"]),
                        s(&t["fresh"]),
                        s(&r["epoch"]),
                        s(&t["height"]),
                        s(&r["cpu_bp"]),
                        s(&r["latency_ms_p50"]),
                        s(&r["latency_ms_p99"]),
                        s(&r["miners"]),
                    ]
                })
                .collect::<Vec<_>>(),
        )),
        _ => None,
    }
}

/// `hashmesh status`: CometBFT's view and the app's, in one object.
///
/// # Errors
/// If the node is unreachable.
pub fn status(rpc: &Rpc) -> Result<Value> {
    let (chain, height, app_hash) = rpc.status()?;
    let app = rpc.abci_query("/status", b"")?;
    Ok(json!({
        "rpc": rpc.url(),
        "chain_id": chain,
        "latest_block_height": height,
        "latest_app_hash": app_hash,
        "app": app,
    }))
}
