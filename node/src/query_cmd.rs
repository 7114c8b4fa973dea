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
    /// `/pending`, optionally only the routes waiting for a pool's vote.
    Pending(Option<String>),
    /// `/telemetry`
    Telemetry,
    /// `/offers`.
    Offers,
    /// `/loans`, optionally only those of a pool (id hex or prefix).
    Loans(Option<String>),
    /// `/ledger`, optionally only pairs with a pool.
    Ledger(Option<String>),
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
        Target::Pending(pool) => {
            let v = rpc.abci_query("/pending", b"")?;
            let Some(pool) = pool_id(rpc, pool.as_deref())? else { return Ok(v) };
            let waits = |d: &Value, k: &str| {
                d[k].as_array().into_iter().flatten().any(|p| p.as_str().is_some_and(|id| id.starts_with(&pool)))
            };
            Ok(Value::Array(
                v.as_array()
                    .into_iter()
                    .flatten()
                    .filter(|d| waits(d, "voters_required") && !waits(d, "approvals"))
                    .cloned()
                    .collect(),
            ))
        }
        Target::Telemetry => rpc.abci_query("/telemetry", b""),
        Target::Offers => rpc.abci_query("/offers", b""),
        Target::Loans(pool) => {
            let pool = pool_id(rpc, pool.as_deref())?;
            Ok(only_pool(rpc.abci_query("/loans", b"")?, pool.as_deref(), ["borrower", "lender"]))
        }
        Target::Ledger(pool) => {
            let pool = pool_id(rpc, pool.as_deref())?;
            Ok(only_pool(rpc.abci_query("/ledger", b"")?, pool.as_deref(), ["borrower", "lender"]))
        }
        Target::Directive(id) => rpc.abci_query("/directive", id.as_bytes()),
        Target::History(f) => rpc.abci_query("/history", f.to_string().as_bytes()),
    }
}

/// A human table for list answers (JSON is printed for the rest).
#[must_use]
pub fn render(target: &Target, v: &Value) -> Option<String> {
    let s = |x: &Value| match x {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if let Target::Directive(_) = target {
        return Some(directive_text(v));
    }
    let history;
    let arr = match target {
        Target::History(_) => {
            history = v["directives"].as_array()?;
            history
        }
        _ => v.as_array()?,
    };
    match target {
        Target::Pending(_) => Some(table(
            &["DIRECTIVE", "GROUP", "SIGNER", "HEIGHT", "VOTE BY HEIGHT", "WAITING FOR", "APPROVED BY"],
            &arr.iter()
                .map(|d| {
                    let ids = |k: &str| {
                        let approved: Vec<&str> =
                            d["approvals"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
                        d[k].as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(Value::as_str)
                            .filter(|p| k != "voters_required" || !approved.contains(p))
                            .map(|p| short(p, 12))
                            .collect::<Vec<_>>()
                            .join(",")
                    };
                    vec![
                        short(&s(&d["id"]), 16),
                        s(&d["body"]["group"]),
                        short(&s(&d["signer"]), 12),
                        s(&d["height"]),
                        s(&d["vote_deadline_height"]),
                        ids("voters_required"),
                        ids("approvals"),
                    ]
                })
                .collect::<Vec<_>>(),
        )),
        Target::History(_) => {
            let mut t = table(
                &["HEIGHT", "DIRECTIVE", "KIND", "STATUS", "SIGNER", "GROUP / ENDPOINT"],
                &arr.iter()
                    .map(|d| {
                        let subject = d["body"]["group"].as_str().or(d["body"]["endpoint"].as_str()).unwrap_or("-");
                        vec![
                            s(&d["height"]),
                            short(&s(&d["id"]), 16),
                            s(&d["kind"]),
                            s(&d["status"]),
                            short(&s(&d["signer"]), 12),
                            subject.to_owned(),
                        ]
                    })
                    .collect::<Vec<_>>(),
            );
            if let Some(next) = v["next"].as_str() {
                t.push_str(&format!("(more: --after {next})\n"));
            }
            Some(t)
        }
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
        Target::Offers => Some(table(
            &["ENDPOINT", "LENDER", "MAX H/S", "FEE BP", "EXPIRES", "OPEN", "SINCE"],
            &arr.iter()
                .map(|o| {
                    vec![
                        s(&o["endpoint"]),
                        short(&s(&o["owner"]), 12),
                        s(&o["max_hs"]),
                        s(&o["fee_bp"]),
                        s(&o["expires_height"]),
                        s(&o["open"]),
                        s(&o["height"]),
                    ]
                })
                .collect::<Vec<_>>(),
        )),
        Target::Loans(_) => Some(table(
            &[
                "GROUP",
                "ENDPOINT",
                "BORROWER",
                "LENDER",
                "OPENED",
                "CLOSED",
                "HASHRATE H/S",
                "FEE BP",
                "SETTLED HASHES",
                "DISPUTES",
            ],
            &arr.iter()
                .map(|l| {
                    vec![
                        s(&l["group"]),
                        s(&l["endpoint"]),
                        short(&s(&l["borrower"]), 12),
                        short(&s(&l["lender"]), 12),
                        s(&l["opened_height"]),
                        if l["closed_height"].is_null() { "open".to_owned() } else { s(&l["closed_height"]) },
                        if l["hashrate_hs"].is_null() { "-".to_owned() } else { s(&l["hashrate_hs"]) },
                        s(&l["fee_bp"]),
                        s(&l["settled_hashes"]),
                        s(&l["disputes"]),
                    ]
                })
                .collect::<Vec<_>>(),
        )),
        Target::Ledger(_) => Some(table(
            &[
                "LENDER",
                "BORROWER",
                "SETTLED HASHES",
                "FEES HASHES",
                "SETTLEMENTS",
                "DISPUTES",
                "REWARD WEIGHT",
                "AS OF HOUR",
            ],
            &arr.iter()
                .map(|l| {
                    vec![
                        short(&s(&l["lender"]), 12),
                        short(&s(&l["borrower"]), 12),
                        s(&l["settled_hashes"]),
                        s(&l["fee_hashes"]),
                        s(&l["settlements"]),
                        s(&l["disputes"]),
                        s(&l["reward_weight"]),
                        s(&l["as_of_hour"]),
                    ]
                })
                .collect::<Vec<_>>(),
        )),
        Target::Telemetry => {
            // One row per view: the owner's, then each observer's; the floor health and the
            // flag are the endpoint's. Unknown values (nobody could measure them) show as "-".
            let k = |x: &Value| if x.is_null() { "-".to_owned() } else { s(x) };
            let mut rows = Vec::new();
            for t in arr {
                let views = t["owner"].is_object().then(|| ("owner".to_owned(), &t["owner"])).into_iter().chain(
                    t["observers"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|o| (format!("observer {}", short(&s(&o["pool"]), 8)), o)),
                );
                for (i, (who, v)) in views.enumerate() {
                    let m = &v["measurement"];
                    rows.push(vec![
                        if i == 0 { s(&t["endpoint"]) } else { String::new() },
                        if i == 0 { k(&t["health_bp"]) } else { String::new() },
                        if i == 0 {
                            if t["flagged"] == true {
                                "FLAGGED".into()
                            } else {
                                "-".into()
                            }
                        } else {
                            String::new()
                        },
                        who,
                        k(&v["health_bp"]),
                        s(&v["fresh"]),
                        s(&v["epoch"]),
                        s(&m["hashrate_hs"]),
                        format!("{}/{}/{}", s(&m["shares_accepted"]), s(&m["shares_rejected"]), s(&m["shares_stale"])),
                        k(&m["latency_ms"]["p50"]),
                        k(&m["latency_ms"]["p99"]),
                        k(&m["error_bp"]),
                        k(&m["cpu_bp"]),
                        s(&m["miners"]),
                    ]);
                }
            }
            Some(table(
                &[
                    "ENDPOINT",
                    "FLOOR HEALTH",
                    "FLAG",
                    "VIEW",
                    "HEALTH",
                    "FRESH",
                    "EPOCH",
                    "HASHRATE H/S",
                    "ACC/REJ/STALE",
                    "P50 MS",
                    "P99 MS",
                    "ERR BP",
                    "CPU BP",
                    "MINERS",
                ],
                &rows,
            ))
        }
        _ => None,
    }
}

/// One directive as `key: value` lines (the signed bytes and receipts only counted; `--json`
/// has everything).
fn directive_text(d: &Value) -> String {
    let s = |x: &Value| match x {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    };
    let mut out = String::new();
    let mut line = |k: &str, v: String| out.push_str(&format!("{k:<16} {v}\n"));
    line("id", s(&d["id"]));
    line("kind", s(&d["kind"]));
    line("status", s(&d["status"]));
    if let Some(by) = d["superseded_by"].as_str() {
        line("superseded by", by.to_owned());
    }
    line("height", format!("{} (index {})", s(&d["height"]), s(&d["index"])));
    line("signer", s(&d["signer"]));
    line("body", d["body"].to_string());
    if d["status"] == "pending" {
        line("vote by height", s(&d["vote_deadline_height"]));
        line("voters required", d["voters_required"].to_string());
        line("approvals", d["approvals"].to_string());
    }
    if d["decided_height"].as_u64().is_some_and(|h| h > 0) {
        line("decided at", s(&d["decided_height"]));
    }
    if d["reason"].as_str().is_some_and(|r| !r.is_empty()) {
        line("reason", s(&d["reason"]));
    }
    line("receipts", d["receipts"].as_array().map_or(0, Vec::len).to_string());
    out
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

/// A `--pool` given as a name (`pool-a`) or as a pool id (or a prefix of one), as an id prefix.
///
/// # Errors
/// If a name is not a registered pool's, or the node cannot be reached.
pub fn pool_id(rpc: &Rpc, pool: Option<&str>) -> Result<Option<String>> {
    let Some(p) = pool else { return Ok(None) };
    if !p.is_empty() && p.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(Some(p.to_ascii_lowercase()));
    }
    let pools = rpc.abci_query("/pools", b"")?;
    let found = pools.as_array().into_iter().flatten().find(|x| x["name"] == p).and_then(|x| x["id"].as_str());
    match found {
        Some(id) => Ok(Some(id.to_owned())),
        None => anyhow::bail!("--pool {p:?} is neither a pool name nor a pool id; `hashmesh query pools` lists them"),
    }
}

/// Keep the rows whose `fields` name `pool` (an id or a prefix of one); all rows without it.
fn only_pool(v: Value, pool: Option<&str>, fields: [&str; 2]) -> Value {
    let (Some(pool), Value::Array(rows)) = (pool, &v) else { return v };
    let pool = pool.to_ascii_lowercase();
    Value::Array(
        rows.iter()
            .filter(|r| fields.iter().any(|f| r[*f].as_str().is_some_and(|id| id.starts_with(&pool))))
            .cloned()
            .collect(),
    )
}
