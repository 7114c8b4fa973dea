//! The data plane on the real cluster, with the user's own command (`testnet up`): virtual
//! miners mine through every pool's agents to real Stratum endpoints; the cross-pool route of
//! the demo makes pool-a's miners' shares count at pool-b's endpoint under the credentials
//! pool-b's node handed over (which appear in no log, status, chain state or event); killing an
//! endpoint moves its work within 2 s, and a route change without it commits. The telemetry on
//! chain is the agents' measurements, with owner and observer views of the lent endpoint.
//! Killing pool-a's second endpoint makes pool-a borrow offered capacity on its own (active in
//! one block, no vote); both sides' reports settle the loan; restored, the hashrate comes home,
//! the loan closes, its settled work is within 1 % of what the lender's endpoint counted, and
//! the loan's credentials are gone from pool-a's agents.

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
    // With Prometheus when it is installed (CI installs it: deploy/install-checkers).
    let observe = match hashmesh_testnet::observe::prometheus_binary() {
        Ok(_) => true,
        Err(e) => {
            eprintln!("skipped the --observe part: {e:#}");
            false
        }
    };
    let mut args = vec!["up", "--cometbft", cometbft.to_str().unwrap(), "--base-port", "0"];
    if observe {
        args.push("--observe");
    }
    let (code, out, err) = testnet(&dir, &args);
    assert_eq!(code, 0, "up\n{out}\n{err}");
    if observe {
        prometheus_scrapes_every_node_and_agent(&dir);
    }

    // Real shares at every pool's endpoints, from its agents' upstream sessions.
    wait("accepted shares at pool-a/ep-1 and pool-c/ep-1", 60, || {
        let s = status(&dir);
        ["pool-a/ep-1", "pool-c/ep-1"].iter().all(|e| endpoint(&s, e)["accepted"].as_u64().unwrap_or(0) > 0)
    });

    // The demo's cross-pool route: pool-a/g-2's miners count at pool-b/ep-2 under the worker
    // name pool-b's node issued for the loan (`<pool-a id>.pool-a/g-2.<opened height>`), not
    // under pool-a's own login.
    let lent = || {
        endpoint(&status(&dir), "pool-b/ep-2")["workers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().is_some_and(|w| w.contains(".pool-a/g-2.")))
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

    lending(&dir, &rpc, &cluster);
    deploy_metrics_are_exported(&cluster);
}

/// `up --observe`: a query through Prometheus's HTTP API returns a sample from every node and
/// agent (and endpoint), and the project's alert rules are loaded.
fn prometheus_scrapes_every_node_and_agent(dir: &Path) {
    let c = hashmesh_testnet::Cluster::load(dir).unwrap().unwrap();
    let url = c.observer.as_ref().expect("an observer in cluster.json").url.clone();
    let mut want: Vec<String> = c.nodes.iter().map(|n| n.metrics.clone()).collect();
    want.extend(c.nodes.iter().flat_map(|n| n.agents.iter().filter_map(|a| a.metrics.clone())));
    want.extend(c.nodes.iter().flat_map(|n| n.stratum.iter().map(|e| e.http.clone())));
    let mut seen = Vec::new();
    wait("Prometheus to scrape every node, agent and endpoint", 30, || {
        seen = hashmesh_testnet::observe::query(&url, "up == 1")
            .map(|r| {
                r.as_array()
                    .unwrap()
                    .iter()
                    .filter_map(|s| s["metric"]["instance"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        want.iter().all(|w| seen.contains(w))
    });
    eprintln!("prometheus on the cluster: {} targets up ({url})", seen.len());
    let heights = hashmesh_testnet::observe::query(&url, "hashmesh_height").unwrap();
    assert_eq!(heights.as_array().unwrap().len(), c.nodes.len(), "{heights}");
    let body = hashmesh_testnet::observe::get(&url, "/api/v1/rules").unwrap();
    assert!(body.contains("HashmeshChainStalled") && body.contains("HashmeshSettlementDisputed"), "{body}");
}

/// Every metric deploy/'s alert rules and Grafana panels name is one a node or agent of the
/// running cluster exports (after traffic, failovers and loans, so labelled families exist).
fn deploy_metrics_are_exported(cluster: &hashmesh_testnet::Cluster) {
    let mut exported = std::collections::BTreeSet::new();
    let nodes = cluster.nodes.iter().map(|n| n.metrics.clone());
    let agents = cluster.nodes.iter().flat_map(|n| n.agents.iter().filter_map(|a| a.metrics.clone()));
    for m in nodes.chain(agents) {
        for l in http_get(&m, "/metrics").lines().filter(|l| l.starts_with("hashmesh_")) {
            exported.insert(l.split(['{', ' ']).next().unwrap().to_owned());
        }
    }
    let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy");
    let mut named = std::collections::BTreeSet::new();
    let texts = std::iter::once(deploy.join("prometheus/alerts.yml"))
        .chain(std::fs::read_dir(deploy.join("grafana")).unwrap().map(|e| e.unwrap().path()));
    for p in texts {
        let text = std::fs::read_to_string(&p).unwrap();
        for (i, _) in text.match_indices("hashmesh_") {
            let name: String =
                text[i..].chars().take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_').collect();
            named.insert(name);
        }
    }
    assert!(named.len() > 20, "{named:?}");
    let missing: Vec<&String> = named.iter().filter(|n| !exported.contains(*n)).collect();
    assert!(missing.is_empty(), "deploy/ names metrics nobody exports: {missing:?}\nexported: {exported:?}");
}

/// Accepted difficulty per worker at an endpoint, for the workers of pool-a's groups' loans.
fn loan_workers(http: &str) -> Vec<(String, f64)> {
    hashmesh_testnet::traffic::status(http)
        .map(|s| {
            s.workers
                .into_iter()
                .filter(|(w, _)| w.contains(".pool-a/g-"))
                .map(|(w, b)| (w, b.accepted_difficulty))
                .collect()
        })
        .unwrap_or_default()
}

/// pool-a's loans as the chain holds them.
fn pool_a_loans(rpc: &Rpc) -> Vec<Value> {
    rpc.abci_query("/loans", b"")
        .ok()
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
        .into_iter()
        .filter(|l| l["group"].as_str().is_some_and(|g| g.starts_with("pool-a/")))
        .collect()
}

fn lending(dir: &Path, rpc: &Rpc, cluster: &hashmesh_testnet::Cluster) {
    let http = |pool: usize, id: &str| cluster.nodes[pool].stratum.iter().find(|e| e.id == id).unwrap().http.clone();
    let lender = http(1, "pool-b/ep-1");
    let opened_before: Vec<u64> = pool_a_loans(rpc).iter().filter_map(|l| l["opened_height"].as_u64()).collect();
    let standby_at_lender = || {
        hashmesh_testnet::traffic::status(&lender)
            .map(|s| s.workers.iter().filter(|(w, _)| w.ends_with(".standby")).map(|(_, b)| b.accepted).sum::<u64>())
            .unwrap_or(0)
    };
    let standby_before = standby_at_lender();
    let killed = Instant::now();
    let (code, out, err) = testnet(dir, &["chaos", "kill", "pool-a/ep-2"]);
    assert_eq!(code, 0, "{out}{err}");
    // Both of pool-a's endpoints are dead. At once, its agents fall back to the cheapest
    // offer, pool-b/ep-1, with the offer's standby credential...
    let deadline = killed + Duration::from_secs(10);
    while standby_at_lender() == standby_before {
        assert!(Instant::now() < deadline, "no share of pool-a's accepted at pool-b/ep-1 under its standby credential");
        std::thread::sleep(Duration::from_millis(20));
    }
    let fell_back = killed.elapsed();
    eprintln!("fallback on the cluster: first share accepted at the lender {fell_back:?} after both endpoints died (including the chaos command)");
    assert!(fell_back <= Duration::from_secs(2), "fallback took {fell_back:?}");
    // ... and its loop borrows that offer: the loan's own credentials replace the standby one.
    wait("pool-a's miners' shares accepted at pool-b/ep-1 under a loan's worker name", 90, || {
        loan_workers(&lender).iter().any(|(_, d)| *d > 0.0)
    });
    eprintln!(
        "borrowing on the cluster: first share under the loan's worker name {:?} after both endpoints died",
        killed.elapsed()
    );
    let loans = pool_a_loans(rpc);
    let borrowed: Vec<&Value> = loans.iter().filter(|l| l["endpoint"] == "pool-b/ep-1" && l["open"] == true).collect();
    assert!(!borrowed.is_empty(), "{loans:?}");
    for l in &borrowed {
        assert_eq!(l["fee_bp"], 100, "the offer's fee: {l}");
        assert!(!opened_before.contains(&l["opened_height"].as_u64().unwrap()), "a new loan: {l}");
        // Active in the block that committed it: no vote.
        let d = rpc.abci_query("/directive", l["directive"].as_str().unwrap().as_bytes()).unwrap();
        assert_eq!(d["status"], "active", "{d}");
        assert!(d["voters_required"].as_array().unwrap().is_empty(), "{d}");
        assert_eq!(d["height"], d["decided_height"], "{d}");
    }

    // Both sides report; the chain settles.
    wait("a settled epoch of a pool-b/ep-1 loan", 90, || {
        pool_a_loans(rpc).iter().any(|l| l["endpoint"] == "pool-b/ep-1" && l["settlements"].as_u64().unwrap_or(0) > 0)
    });
    let ledger = rpc.abci_query("/ledger", b"").unwrap();
    assert!(
        ledger.as_array().unwrap().iter().any(|p| p["settled_hashes"].as_str().is_some_and(|h| h != "0")),
        "{ledger}"
    );
    let password_of = |agent: &str| -> Vec<String> {
        let state: Value =
            serde_json::from_slice(&std::fs::read(dir.join(format!("pool-a/{agent}/state.json"))).unwrap()).unwrap();
        state["routes"]
            .as_object()
            .unwrap()
            .values()
            .flat_map(|r| r["credentials"].as_array().unwrap().clone())
            .filter(|c| c["endpoint"] == "pool-b/ep-1")
            .filter_map(|c| c["password"].as_str().map(str::to_owned))
            .collect()
    };
    let loan_passwords: Vec<String> = ["agent-1", "agent-2"].iter().flat_map(|a| password_of(a)).collect();
    assert!(!loan_passwords.is_empty(), "pool-a's agents hold the loan's credentials");

    // Restore: after a dwell of health, the hashrate comes home and the loans close.
    for e in ["pool-a/ep-1", "pool-a/ep-2"] {
        let (code, out, err) = testnet(dir, &["chaos", "restore", e]);
        assert_eq!(code, 0, "{out}{err}");
    }
    wait("pool-a's loans at pool-b/ep-1 closed (the hashrate home)", 120, || {
        pool_a_loans(rpc).iter().filter(|l| l["endpoint"] == "pool-b/ep-1").all(|l| l["open"] == false)
    });
    // The last totals settle: what the chain settled is within 1 % of what pool-b's endpoint
    // counted under each loan's worker name.
    let mut last = String::new();
    let settled_within = |tolerance: f64, last: &mut String| -> bool {
        let counted = loan_workers(&lender);
        pool_a_loans(rpc).iter().filter(|l| l["endpoint"] == "pool-b/ep-1").all(|l| {
            let suffix = format!(".{}.{}", l["group"].as_str().unwrap(), l["opened_height"]);
            let at_lender: f64 = counted.iter().filter(|(w, _)| w.ends_with(&suffix)).map(|(_, d)| d).sum();
            let settled = l["settled_hashes"].as_str().unwrap().parse::<f64>().unwrap() / 4_294_967_296.0;
            *last = format!(
                "{}: settled {:.0} hashes, counted at pool-b/ep-1 {:.0} ({:+.2} %), disputes {} (last {})",
                l["group"],
                settled * 4_294_967_296.0,
                at_lender * 4_294_967_296.0,
                if at_lender > 0.0 { (settled - at_lender) / at_lender * 100.0 } else { 0.0 },
                l["disputes"],
                l["last_dispute"]
            );
            at_lender > 0.0 && (settled - at_lender).abs() <= tolerance * at_lender
        })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !settled_within(0.01, &mut last) {
        assert!(Instant::now() < deadline, "settled work not within 1 % of the lender's count: {last}");
        std::thread::sleep(Duration::from_millis(500));
    }
    eprintln!("settlement on the cluster: {last}");
    // An auditor re-derives every loan from the signed reports and finds the node's claims.
    let audit = hashmesh_node::audit_loans::run(rpc, &Default::default(), false).unwrap();
    assert_eq!(audit.failures, 0, "{}", hashmesh_node::audit_loans::render(&audit));
    assert!(audit.loans.iter().any(|l| l.endpoint == "pool-b/ep-1" && l.epochs.iter().any(|e| e.outcome == "settled")));
    eprintln!("{}", hashmesh_node::audit_loans::render(&audit));
    // By pool name: pool-c lent to pool-a (the second-cheapest offer) or nothing; pool-a is in all.
    let only = |p: &str| hashmesh_node::audit_loans::LoanAuditFilter { pool: Some(p.into()), from_height: None };
    let a = hashmesh_node::audit_loans::run(rpc, &only("pool-a"), false).unwrap();
    assert_eq!(a.loans.len(), audit.loans.len());
    let d = hashmesh_node::audit_loans::run(rpc, &only("pool-d"), false).unwrap();
    assert!(d.loans.iter().all(|l| l.endpoint.starts_with("pool-d/")), "{}", hashmesh_node::audit_loans::render(&d));
    assert!(hashmesh_node::audit_loans::run(rpc, &only("pool-zz"), false).is_err(), "an unknown pool name");
    // The loan's credentials are gone from pool-a's agents (a new loan gets new ones).
    wait("pool-a's agents to forget the closed loan's credentials", 30, || {
        let now: Vec<String> = ["agent-1", "agent-2"].iter().flat_map(|a| password_of(a)).collect();
        loan_passwords.iter().all(|p| !now.contains(p))
    });
}
