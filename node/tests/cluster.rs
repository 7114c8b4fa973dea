//! End to end against a real 4-validator CometBFT v0.38 cluster started by this test on
//! 127.0.0.1 with free ports. Every process is spawned here and killed by its pid on exit.
//!
//! Needs the cometbft binary: `HASHMESH_COMETBFT`, else `testnet/install-cometbft` provides it
//! (reusing the per-machine cache `~/.cache/hashmesh/tools/bin/cometbft`, or installing v0.38.25 with `go install` the first time).

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use hashmesh_node::rpc::Rpc;
use hashmesh_protocol::RejectCode;
use hashmesh_testnet::{self as testnet, procs, Cluster, ClusterSpec};
use serde_json::Value;

use hashmesh_testnet::install::cometbft;

const HASHMESH: &str = env!("CARGO_BIN_EXE_hashmesh");

/// Owns every child process; kills and reaps them by pid when dropped, even on panic.
struct Processes {
    cluster: Cluster,
    children: Vec<Vec<Child>>,
    _dir: tempfile::TempDir,
}

impl Processes {
    fn start(&mut self, i: usize) {
        self.children[i] = procs::start_node(&mut self.cluster, i, false).expect("start node");
    }

    fn kill(&mut self, i: usize) {
        for mut child in std::mem::take(&mut self.children[i]) {
            let _ = child.kill(); // SIGKILL, by the pid we spawned
            let _ = child.wait();
        }
    }
}

impl Drop for Processes {
    fn drop(&mut self) {
        for i in 0..self.children.len() {
            self.kill(i);
        }
    }
}

fn hm(args: &[&str]) -> (i32, Value, String) {
    let out = Command::new(HASHMESH).args(args).output().expect("run hashmesh");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let json = serde_json::from_str(&stdout).unwrap_or(Value::Null);
    (out.status.code().unwrap_or(-1), json, stderr)
}

fn home(p: &Processes, i: usize) -> String {
    p.cluster.nodes[i].hashmesh_home.display().to_string()
}

fn rpc(p: &Processes, i: usize) -> String {
    p.cluster.nodes[i].rpc.clone()
}

/// Sign and send with node `i`'s pool key through node `i`'s RPC.
fn tx(p: &Processes, i: usize, args: &[&str]) -> (i32, Value, String) {
    let (h, r) = (home(p, i), rpc(p, i));
    let mut all = vec!["tx"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--home", &h, "--rpc", &r]);
    hm(&all)
}

fn app_view(p: &Processes, i: usize) -> Value {
    let r = Rpc::new(&rpc(p, i));
    let status = r.abci_query("/status", b"").unwrap();
    let assignments = r.abci_query("/assignments", b"").unwrap();
    let endpoints = r.abci_query("/endpoints", b"").unwrap();
    serde_json::json!({"counts": status["directives"], "assignments": assignments, "endpoints": endpoints})
}

fn height(p: &Processes, i: usize) -> u64 {
    Rpc::new(&rpc(p, i)).status().map(|(_, h, _)| h).unwrap_or(0)
}

fn app_hash_at(p: &Processes, i: usize, h: u64) -> String {
    Rpc::new(&rpc(p, i)).block(h).unwrap().app_hash
}

fn http_get(url: &str) -> String {
    use std::io::{Read, Write};
    let addr = url.trim_start_matches("http://").split('/').next().unwrap().to_owned();
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes()).unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    body
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn four_validator_cluster_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = testnet::generate(&ClusterSpec {
        agents_per_node: 2,
        ..ClusterSpec::validators_only(dir.path().join("cluster"), "hashmesh-e2e", cometbft(), PathBuf::from(HASHMESH))
    })
    .expect("generate cluster");
    let mut p = Processes { children: vec![Vec::new(), Vec::new(), Vec::new(), Vec::new()], cluster, _dir: dir };
    for i in 0..4 {
        p.start(i);
    }
    procs::wait_for_height(&p.cluster, &[0, 1, 2, 3], 2, Duration::from_secs(90)).expect("cluster makes blocks");
    let (a, b) = (p.cluster.nodes[0].clone(), p.cluster.nodes[1].clone());
    let mut applied = 0;

    // Own routes from two pools are active at once.
    let to_a = format!("{}=6000,{}=4000", a.endpoints[0], a.endpoints[1]);
    let (code, r, err) = tx(&p, 0, &["route", "--group", &a.groups[0], "--to", &to_a]);
    assert_eq!((code, r["code"].as_u64(), r["status"].as_str()), (0, Some(0), Some("active")), "{r} {err}");
    applied += 1;
    let to_b = format!("{}=10000", b.endpoints[0]);
    let (code, r, err) = tx(&p, 1, &["route", "--group", &b.groups[0], "--to", &to_b]);
    assert_eq!((code, r["status"].as_str()), (0, Some("active")), "{r} {err}");
    applied += 1;

    // A cross-pool route waits for pool-b's vote, then becomes active.
    let cross_to = format!("{}=7000,{}=3000", b.endpoints[1], a.endpoints[0]);
    let (code, r, err) = tx(&p, 0, &["route", "--group", &a.groups[1], "--to", &cross_to]);
    assert_eq!((code, r["status"].as_str()), (0, Some("pending")), "{r} {err}");
    applied += 1;
    let cross_id = r["directive_id"].as_str().unwrap().to_owned();
    // pool-b sees it waiting for its vote, with the height to decide by; pool-c does not.
    let pending = |waiting_for: &str, json: bool| {
        let r = rpc(&p, 0);
        let mut args = vec!["query", "--rpc", &r, "pending", "--waiting-for", waiting_for];
        if json {
            args.push("--json");
        }
        let out = Command::new(HASHMESH).args(&args).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let for_b = pending("pool-b", false);
    assert!(for_b.starts_with("DIRECTIVE") && for_b.contains("VOTE BY HEIGHT"), "{for_b}");
    assert!(for_b.contains(&cross_id[..16]) && for_b.contains(&b.pool_id[..12]), "{for_b}");
    assert_eq!(pending("pool-c", false).lines().count(), 1, "only the header for pool-c");
    let as_json: Value = serde_json::from_str(&pending("pool-b", true)).unwrap();
    assert_eq!(as_json[0]["id"], cross_id.as_str());
    // pool-b votes through its own node, which must have committed the route first.
    let route_height = r["height"].as_u64().unwrap();
    wait_until("node b to commit the route", Duration::from_secs(30), || height(&p, 1) >= route_height);
    let (code, r, err) = tx(&p, 1, &["vote", "--directive", &cross_id, "--approve"]);
    assert_eq!(code, 0, "{r} {err}");
    assert_eq!(r["decided"]["status"], "active", "the vote reports the route it activated: {r}");
    applied += 1;
    let vote_height = r["height"].as_u64().unwrap();
    wait_until("node c to commit the vote's block", Duration::from_secs(30), || height(&p, 2) >= vote_height);
    let seen_from_c = Rpc::new(&rpc(&p, 2)).abci_query("/directive", cross_id.as_bytes()).unwrap();
    assert_eq!(seen_from_c["status"], "active", "node c sees the approved route active");

    // A drain; then routes onto the drained endpoint are refused.
    let (code, r, err) = tx(&p, 1, &["drain", "--endpoint", &b.endpoints[1]]);
    assert_eq!((code, r["status"].as_str()), (0, Some("applied")), "{r} {err}");
    applied += 1;

    // Every bad input is refused with its own code and changes nothing.
    let before = app_view(&p, 0);
    let (h0, r0) = (home(&p, 0), rpc(&p, 0));
    let signed = |extra: &[&str]| -> String {
        let mut args =
            vec!["tx", "route", "--group", &a.groups[0], "--to", &to_a, "--home", &h0, "--rpc", &r0, "--dry-run"];
        args.extend_from_slice(extra);
        let (code, r, err) = hm(&args);
        assert_eq!(code, 0, "{err}");
        r["tx_hex"].as_str().unwrap().to_owned()
    };
    let mut flipped = hex::decode(signed(&[])).unwrap();
    let last = flipped.len() - 1;
    flipped[last] ^= 0x01;
    let stranger = p._dir.path().join("stranger");
    assert_eq!(hm(&["init", "--home", stranger.to_str().unwrap(), "--moniker", "stranger"]).0, 0);
    // `hashmesh doctor` on a running node: same chain, in the genesis, clock, ports in use by it.
    let (code, v, err) = hm(&["doctor", "--home", &home(&p, 0), "--json"]);
    let level = |v: &Value, check: &str| {
        v["checks"].as_array().unwrap().iter().find(|c| c["check"] == check).map(|c| c["level"].clone())
    };
    for check in ["cometbft rpc", "genesis", "clock", "abci listen"] {
        assert_eq!(level(&v, check), Some(Value::from("ok")), "{check}: {v} {err}");
    }
    assert!(level(&v, "chain id").is_none(), "no chain id finding: {v}");
    assert_eq!(code, 0, "nothing fails on a healthy node: {v}");
    // A pool that is not in the genesis, pointed at the same chain: told to fix the genesis.
    let outsider = p._dir.path().join("outsider");
    let r0 = rpc(&p, 0);
    let (code, _, err) = hm(&[
        "init",
        "--home",
        outsider.to_str().unwrap(),
        "--moniker",
        "outsider",
        "--abci-listen",
        "127.0.0.1:0",
        "--plane-listen",
        "none",
        "--metrics-listen",
        "none",
        "--rpc",
        &r0,
        "--chain-id",
        "other-chain",
    ]);
    assert_eq!(code, 0, "{err}");
    let (code, v, _) = hm(&["doctor", "--home", outsider.to_str().unwrap(), "--json"]);
    assert_eq!(code, 1, "{v}");
    assert_eq!(level(&v, "genesis"), Some(Value::from("fail")), "{v}");
    assert_eq!(level(&v, "chain id"), Some(Value::from("fail")), "{v}");
    let stranger_tx = {
        let (_, r, _) = hm(&[
            "tx",
            "drain",
            "--endpoint",
            &a.endpoints[0],
            "--home",
            stranger.to_str().unwrap(),
            "--chain-id",
            "hashmesh-e2e",
            "--dry-run",
        ]);
        r["tx_hex"].as_str().unwrap().to_owned()
    };
    let replayed_nonce = {
        let first = signed(&["--nonce", "4242"]);
        let (code, r, err) = hm(&["tx", "raw", "--rpc", &r0, "--hex", &first]);
        assert_eq!(code, 0, "{r} {err}");
        applied += 1;
        // Exactly the same bytes again: CometBFT's mempool cache or our nonce rule refuses them.
        let (code, r, err) = hm(&["tx", "raw", "--rpc", &r0, "--hex", &first]);
        assert_ne!(code, 0, "an exact replay was accepted: {r}");
        assert!(
            err.contains("already exists in cache")
                || r["code"].as_u64() == Some(u64::from(RejectCode::NonceReused.code())),
            "{r} {err}"
        );
        // The same nonce on other bytes: our replay rule.
        let (_, r, _) = hm(&[
            "tx",
            "drain",
            "--endpoint",
            &a.endpoints[1],
            "--home",
            &h0,
            "--rpc",
            &r0,
            "--nonce",
            "4242",
            "--dry-run",
        ]);
        r["tx_hex"].as_str().unwrap().to_owned()
    };
    let before = {
        // The replay setup applied one more route; re-read the baseline.
        let _ = before;
        app_view(&p, 0)
    };
    let onto_drained = format!("{}=10000", b.endpoints[1]);
    let oversized = "00".repeat(hashmesh_protocol::limits::TX_BYTES_MAX + 100);
    let cases: Vec<(&str, Vec<&str>, RejectCode)> = vec![
        ("garbage bytes", vec!["raw", "--hex", "deadbeef00"], RejectCode::Malformed),
        ("oversized", vec!["raw", "--hex", &oversized], RejectCode::TxTooLarge),
        (
            "wrong chain id",
            vec!["drain", "--endpoint", &a.endpoints[1], "--chain-id", "other-chain"],
            RejectCode::WrongChainId,
        ),
        (
            "weights not 10000",
            vec!["route", "--group", &a.groups[0], "--to", "pool-a/ep-1=5000,pool-a/ep-2=4000"],
            RejectCode::WeightsNotTenThousand,
        ),
        (
            "unknown endpoint",
            vec!["route", "--group", &a.groups[0], "--to", "pool-x/ep-9=10000"],
            RejectCode::UnknownEndpoint,
        ),
        (
            "route onto drained endpoint",
            vec!["route", "--group", &a.groups[0], "--to", &onto_drained],
            RejectCode::EndpointDrained,
        ),
    ];
    let flipped_hex = hex::encode(&flipped);
    let raw_cases: Vec<(&str, &str, RejectCode)> = vec![
        ("flipped signature byte", &flipped_hex, RejectCode::BadSignature),
        ("unknown signer", &stranger_tx, RejectCode::UnknownSigner),
        ("replayed nonce", &replayed_nonce, RejectCode::NonceReused),
    ];
    let mut results = Vec::new();
    for (name, args, want) in cases {
        let (code, r, err) = tx(&p, 0, &args);
        results.push((name, code, r, err, want));
    }
    for (name, hexstr, want) in raw_cases {
        let (code, r, err) = hm(&["tx", "raw", "--rpc", &r0, "--hex", hexstr]);
        results.push((name, code, r, err, want));
    }
    for (name, code, r, err, want) in results {
        assert_eq!(code, 1, "{name}: exit status ({r} {err})");
        assert_eq!(r["code"].as_u64(), Some(u64::from(want.code())), "{name}: {r} {err}");
        assert!(!r["log"].as_str().unwrap_or("").is_empty(), "{name}: refusal without a message");
        if want == RejectCode::UnknownSigner {
            assert!(r["fix"].as_str().is_some_and(|f| f.contains("genesis add-pool")), "{name}: says what to do: {r}");
        }
    }
    assert_eq!(app_view(&p, 0), before, "refused inputs changed state");

    // SIGKILL one validator: the other three keep committing, including new directives.
    p.kill(3);
    let h = height(&p, 0);
    wait_until("three validators to commit 3 more blocks", Duration::from_secs(60), || height(&p, 0) >= h + 3);
    let (code, r, err) = tx(&p, 1, &["restore", "--endpoint", &b.endpoints[1]]);
    assert_eq!((code, r["status"].as_str()), (0, Some("applied")), "commit with one validator down: {r} {err}");
    applied += 1;

    // Restart it: it catches up to the same app hash.
    p.start(3);
    let target = height(&p, 0) + 2;
    procs::wait_for_height(&p.cluster, &[0, 1, 2, 3], target, Duration::from_secs(90))
        .expect("restarted node catches up");
    let hashes: Vec<String> = (0..4).map(|i| app_hash_at(&p, i, target)).collect();
    assert!(hashes.windows(2).all(|w| w[0] == w[1]), "app hashes differ at height {target}: {hashes:?}");

    // Prometheus metrics of a node count what it committed.
    let metrics = http_get(&format!("http://{}/metrics", p.cluster.nodes[0].metrics));
    let applied_metric: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("hashmesh_txs_applied_total "))
        .and_then(|v| v.trim().parse().ok())
        .expect("hashmesh_txs_applied_total in /metrics");
    // Receipts are transactions too (the nodes send them on their own), so at least `applied`.
    assert!(applied_metric >= applied as u64, "metrics: {metrics}");

    // Audit from a node that submitted nothing: every directive, every signature valid.
    let (code, report, err) = hm(&["audit", "directives", "--rpc", &rpc(&p, 3), "--json", "--check-blocks"]);
    assert_eq!(code, 0, "audit failed: {report} {err}");
    let dirs = report["directives"].as_array().unwrap();
    assert_eq!(dirs.len(), applied, "audit lists every applied directive");
    assert!(dirs.iter().all(|d| d["verified"] == true));
    let cross = dirs.iter().find(|d| d["id"] == cross_id.as_str()).expect("cross-pool route in the audit");
    assert_eq!(cross["status"], "active");
    let signers: std::collections::BTreeSet<_> =
        dirs.iter().map(|d| d["signer_name"].as_str().unwrap().to_owned()).collect();
    assert!(signers.contains("pool-a") && signers.contains("pool-b"));

    // The instruction plane: pool-a's last route of its first group reached both of its agents
    // over QUIC, and both receipts are on chain next to the directive, seen from node d.
    let (_, last, _) = hm(&["audit", "directives", "--rpc", &rpc(&p, 3), "--json", "--group", &a.groups[0]]);
    let last = last["directives"].as_array().unwrap().last().unwrap().clone();
    let last_id = last["id"].as_str().unwrap().to_owned();
    for agent in &a.agents {
        wait_until("the agent to apply pool-a's route", Duration::from_secs(30), || {
            let s = hashmesh_agent::home::load_state(&agent.home).unwrap_or_default();
            s.routes.get(&a.groups[0].parse().unwrap()).is_some_and(|r| r.directive.to_hex() == last_id)
        });
    }
    let receipted = || {
        let d = Rpc::new(&rpc(&p, 3)).abci_query("/directive", last_id.as_bytes()).unwrap();
        let mut agents: Vec<String> =
            d["receipts"].as_array().into_iter().flatten().map(|r| r["agent"].as_str().unwrap().to_owned()).collect();
        agents.sort();
        agents
    };
    let mut want: Vec<String> = a.agents.iter().map(|x| x.id.clone()).collect();
    want.sort();
    wait_until("both receipts on chain", Duration::from_secs(60), || receipted() == want);
    let (code, report, err) = hm(&["audit", "directives", "--rpc", &rpc(&p, 3), "--json", "--group", &a.groups[0]]);
    assert_eq!(code, 0, "{err}");
    let audited =
        report["directives"].as_array().unwrap().iter().find(|d| d["id"] == last_id.as_str()).unwrap().clone();
    assert_eq!(audited["receipts"].as_array().unwrap().len(), 2, "audit shows both receipts: {audited}");
    let plane_metrics = http_get(&format!("http://{}/metrics", a.metrics));
    assert!(plane_metrics.contains("hashmesh_plane_agents_connected 2"), "{plane_metrics}");

    // The cross-pool route: pool-b's node sent pool-a's node worker credentials for its
    // endpoint, and pool-a's agents have them — and they are nowhere in chain state or blocks.
    let mut password = String::new();
    for agent in &a.agents {
        wait_until("credentials at pool-a's agents", Duration::from_secs(60), || {
            let s = hashmesh_agent::home::load_state(&agent.home).unwrap_or_default();
            s.routes.get(&a.groups[1].parse().unwrap()).is_some_and(|r| {
                r.directive.to_hex() == cross_id
                    && r.credentials.iter().any(|c| {
                        password.clone_from(&c.password);
                        c.endpoint.as_str() == b.endpoints[1] && c.password.len() == 32
                    })
            })
        });
    }
    for n in &p.cluster.nodes {
        let node_dir = n.home.parent().unwrap();
        for dir in [n.home.join("data"), node_dir.join("hashmesh/data/state")] {
            assert!(!dir_contains(&dir, password.as_bytes()), "a credential leaked into {}", dir.display());
        }
    }
    let (_, hist, _) = hm(&["audit", "directives", "--rpc", &rpc(&p, 3), "--json"]);
    assert!(!hist.to_string().contains(&password), "a credential leaked into the directive history");
}

/// Whether any file under `dir` contains `needle`.
fn dir_contains(dir: &std::path::Path, needle: &[u8]) -> bool {
    std::fs::read_dir(dir).into_iter().flatten().flatten().any(|e| {
        let path = e.path();
        if path.is_dir() {
            dir_contains(&path, needle)
        } else {
            std::fs::read(&path).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle))
        }
    })
}
