//! The data plane on the real cluster, with the user's own command (`testnet up`): virtual
//! miners mine through every pool's agents to real Stratum endpoints; the cross-pool route of
//! the demo makes pool-a's miners' shares count at pool-b's endpoint under the credentials
//! pool-b's node handed over (which appear in no log, status, chain state or event); killing an
//! endpoint moves its work within 2 s, and a route change without it commits. The telemetry on
//! chain is the agents' measurements, with owner and observer views of the lent endpoint.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hashmesh_node::rpc::Rpc;
use serde_json::Value;

mod common;
use common::{testnet, Down};

fn status(dir: &Path) -> Value {
    let (code, out, err) = testnet(dir, &["status", "--json"]);
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(&out).unwrap()
}

fn endpoint(status: &Value, id: &str) -> Value {
    status["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|n| n["endpoints"].as_array().unwrap().clone())
        .find(|e| e["id"] == id)
        .unwrap_or_else(|| panic!("no endpoint {id} in {status}"))
}

fn wait(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `GET path` from `addr` (`HOST:PORT`): the body.
fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// Every file under `dir` (logs, homes, status files), as text.
fn files(dir: &Path, out: &mut Vec<(PathBuf, String)>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            files(&p, out);
        } else if let Ok(bytes) = std::fs::read(&p) {
            out.push((p, String::from_utf8_lossy(&bytes).into_owned()));
        }
    }
}

#[test]
fn miners_follow_committed_routes_on_the_cluster() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cluster");
    let cometbft = hashmesh_testnet::install::cometbft();
    let _down = Down(dir.clone());
    let (code, out, err) = testnet(&dir, &["up", "--cometbft", cometbft.to_str().unwrap(), "--base-port", "0"]);
    assert_eq!(code, 0, "up\n{out}\n{err}");

    // Real shares at every pool's endpoints, from its agents' upstream sessions.
    wait("accepted shares at pool-a/ep-1 and pool-c/ep-1", 60, || {
        let s = status(&dir);
        ["pool-a/ep-1", "pool-c/ep-1"].iter().all(|e| endpoint(&s, e)["accepted"].as_u64().unwrap_or(0) > 0)
    });

    // The demo's cross-pool route: pool-a/g-2's miners count at pool-b/ep-2 under the worker
    // name pool-b's node issued (`<pool-a id>.pool-a/g-2`), not under pool-a's own login.
    let lent = || {
        endpoint(&status(&dir), "pool-b/ep-2")["workers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().is_some_and(|w| w.ends_with(".pool-a/g-2")))
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !lent() {
        if Instant::now() > deadline {
            let rpc = Rpc::new(status(&dir)["nodes"][0]["rpc"].as_str().unwrap());
            let history = rpc.abci_query("/history", b"").map(|v| v.to_string()).unwrap_or_default();
            let proxy = std::fs::read_to_string(dir.join("pool-a/agent-1/proxy.json")).unwrap_or_default();
            let (_, agent, _) = testnet(
                &dir,
                &["agent", "status", "--home", &dir.join("pool-a/agent-1").display().to_string(), "--json"],
            );
            panic!("pool-a/g-2's shares never counted at pool-b/ep-2 under pool-b's credentials\nhistory: {history}\nagent: {agent}\nproxy: {proxy}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let state: Value = serde_json::from_slice(&std::fs::read(dir.join("pool-a/agent-1/state.json")).unwrap()).unwrap();
    let password = state["routes"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|r| r["credentials"].as_array().unwrap().clone())
        .find_map(|c| c["password"].as_str().map(str::to_owned))
        .expect("pool-a's agent holds pool-b's credentials");
    assert!(password.len() >= 16);
    let s = status(&dir);
    let rpc = Rpc::new(s["nodes"][0]["rpc"].as_str().unwrap());
    let mut seen = Vec::new();
    files(&dir, &mut seen);
    for (path, text) in &seen {
        // Where credentials live by design: the agents' routing tables (0600) and the nodes'
        // plane stores (the outbox that delivers them, the lender's issued secrets).
        let secret_holder = path.ends_with("state.json") || path.to_string_lossy().contains("/data/plane/");
        assert!(secret_holder || !text.contains(&password), "the lender's password leaked into {}", path.display());
    }
    for q in ["/assignments", "/history", "/telemetry", "/pending"] {
        let v = rpc.abci_query(q, b"").unwrap();
        assert!(!v.to_string().contains(&password), "the lender's password is in chain state {q}");
    }

    // On chain, the telemetry is what the agents measured: pool-b/ep-2 carries pool-b's own view
    // and pool-a's (an observer: its routed miners work there) side by side. CPU and memory,
    // which no agent can see, come from the endpoint host's exporter for the owner, and are
    // unknown (not 0) in the observer's view.
    let telemetry = |id: &str| -> Option<Value> {
        rpc.abci_query("/telemetry", b"").ok()?.as_array()?.iter().find(|t| t["endpoint"] == id).cloned()
    };
    wait("owner (with its host's CPU) and observer views of pool-b/ep-2 on chain", 60, || {
        telemetry("pool-b/ep-2").is_some_and(|t| {
            !t["owner"]["measurement"]["cpu_bp"].is_null() && !t["observers"].as_array().unwrap().is_empty()
        })
    });
    let t = telemetry("pool-b/ep-2").unwrap();
    let owner = &t["owner"]["measurement"];
    assert!(owner["cpu_bp"].as_u64().unwrap() <= 10_000 && owner["memory_bp"].as_u64().unwrap() > 0, "{t}");
    for view in std::iter::once(&t["owner"]).chain(t["observers"].as_array().unwrap()) {
        let m = &view["measurement"];
        assert!(m["shares_accepted"].as_u64().unwrap() > 0 && m["hashrate_hs"].as_u64().unwrap() > 0, "{t}");
    }
    for o in t["observers"].as_array().unwrap() {
        assert!(o["measurement"]["cpu_bp"].is_null() && o["measurement"]["memory_bp"].is_null(), "{t}");
    }
    assert_eq!(t["flagged"], false, "honest owner and observer agree: {t}");

    // Kill pool-a/ep-1: within 2 s its miners' work is accepted at pool-a/ep-2, before any
    // consensus (watched live: the agents' /metrics and the endpoint's HTTP status); then the
    // pool's scheduling loop commits routes without it.
    let cluster = hashmesh_testnet::Cluster::load(&dir).unwrap().unwrap();
    let metrics: Vec<String> = cluster.nodes[0].agents.iter().map(|a| a.metrics.clone().unwrap()).collect();
    let ep2_http = cluster.nodes[0].stratum.iter().find(|e| e.id == "pool-a/ep-2").unwrap().http.clone();
    let miners_on_ep1 = || -> u64 {
        metrics
            .iter()
            .map(|m| {
                let text = http_get(m, "/metrics");
                text.lines()
                    .find(|l| l.starts_with("hashmesh_agent_endpoint_miners{endpoint=\"pool-a/ep-1\"}"))
                    .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
                    .unwrap_or(0)
            })
            .sum()
    };
    let accepted_ep2 =
        || hashmesh_testnet::traffic::status(&ep2_http).unwrap().workers.values().map(|w| w.accepted).sum::<u64>();
    let on_ep1 = miners_on_ep1();
    assert!(on_ep1 > 0, "pool-a/ep-1 carries no miners before the kill");
    let before = accepted_ep2();
    let killed = Instant::now();
    let (code, out, err) = testnet(&dir, &["chaos", "kill", "pool-a/ep-1"]);
    assert_eq!(code, 0, "{out}{err}");
    wait("pool-a/ep-1's miners to move and pool-a/ep-2 to accept their work", 10, || {
        miners_on_ep1() == 0 && accepted_ep2() > before
    });
    let failover = killed.elapsed();
    eprintln!("failover on the cluster: {on_ep1} miners off pool-a/ep-1 in {failover:?} (including the chaos command)");
    assert!(
        failover < Duration::from_secs(2),
        "failover of {on_ep1} miners took {failover:?} (including the chaos command)"
    );
    // Each agent counted the failure, and its status file (rewritten every 2 s) records it.
    for m in &metrics {
        let text = http_get(m, "/metrics");
        let failures = text
            .lines()
            .find(|l| l.starts_with("hashmesh_agent_endpoint_failures_total{endpoint=\"pool-a/ep-1\"}"))
            .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok());
        assert!(failures.is_some_and(|n| n >= 1), "{text}");
    }
    wait("the agents' status files to record the failover", 10, || {
        ["agent-1", "agent-2"].iter().all(|a| {
            std::fs::read(dir.join(format!("pool-a/{a}/proxy.json")))
                .ok()
                .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
                .is_some_and(|p| p["failovers"].as_array().unwrap().iter().any(|f| f["endpoint"] == "pool-a/ep-1"))
        })
    });
    // The agents measured it dead (every share in flight answered stale, nothing answered
    // since): its committed health falls to 0, below the floor.
    wait("pool-a/ep-1's measured health below the floor", 30, || {
        telemetry("pool-a/ep-1").is_some_and(|t| t["health_bp"].as_u64().is_some_and(|h| h < 3000))
    });
    wait("a committed route of pool-a without pool-a/ep-1", 60, || {
        rpc.abci_query("/assignments", b"").ok().is_some_and(|a| {
            a.as_array()
                .unwrap()
                .iter()
                .filter(|x| x["group"].as_str().is_some_and(|g| g.starts_with("pool-a/")))
                .all(|x| x["targets"].as_array().unwrap().iter().all(|t| t["endpoint"] != "pool-a/ep-1"))
        })
    });
}
