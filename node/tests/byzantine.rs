//! One byzantine validator of four: as proposer it adds forged, wrong-chain, oversized and
//! replayed transactions to every proposal (`HASHMESH_FAULT_BYZANTINE_PROPOSER`). The honest
//! validators refuse those proposals in `ProcessProposal`, none of those transactions is ever
//! in a committed block, and the chain keeps going. Every process is spawned here and killed
//! by its pid on exit.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use hashmesh_node::rpc::Rpc;
use hashmesh_protocol::{signing, PoolKey, SignedTx};
use hashmesh_testnet::install::cometbft;
use hashmesh_testnet::{self as testnet, procs, ClusterSpec};

mod common;
use common::Processes;

const HASHMESH: &str = env!("CARGO_BIN_EXE_hashmesh");

fn metric(addr: &str, name: &str) -> u64 {
    hashmesh_plane::host::http::request(addr, "GET", "/metrics", "", Duration::from_secs(5))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0)
}

#[test]
fn one_byzantine_proposer_of_four_commits_nothing_it_forged() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = testnet::generate(&ClusterSpec::validators_only(
        dir.path().join("cluster"),
        "hashmesh-byzantine",
        cometbft(),
        PathBuf::from(HASHMESH),
    ))
    .expect("generate cluster");
    let mut p = Processes { cluster, children: Vec::new(), _dir: dir };
    // Only node 0's processes get the fault (the variable is read by `hashmesh start` alone).
    std::env::set_var("HASHMESH_FAULT_BYZANTINE_PROPOSER", "1");
    let first = procs::start_node(&mut p.cluster, 0, false).expect("start node 0");
    std::env::remove_var("HASHMESH_FAULT_BYZANTINE_PROPOSER");
    p.children.extend(first);
    for i in 1..4 {
        let c = procs::start_node(&mut p.cluster, i, false).expect("start node");
        p.children.extend(c);
    }
    procs::wait_for_height(&p.cluster, &[1, 2, 3], 2, Duration::from_secs(90)).expect("the chain makes blocks");

    // A real transaction commits, so the byzantine proposer has something to replay.
    let (b, rpc_b) = (p.cluster.nodes[1].clone(), p.cluster.nodes[1].rpc.clone());
    let to = format!("{}=10000", b.endpoints[0]);
    let out = Command::new(HASHMESH)
        .args(["tx", "route", "--group", &b.groups[0], "--to", &to, "--home"])
        .arg(&b.hashmesh_home)
        .args(["--rpc", &rpc_b])
        .output()
        .unwrap();
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    assert_eq!(r["status"], "active", "{r} {}", String::from_utf8_lossy(&out.stderr));

    // The chain keeps going while node 0's proposals are refused.
    let rpc = Rpc::new(&rpc_b);
    let start = rpc.status().unwrap().1;
    let deadline = Instant::now() + Duration::from_secs(120);
    while rpc.status().unwrap().1 < start + 16 {
        assert!(Instant::now() < deadline, "the chain stalled with one byzantine validator");
        std::thread::sleep(Duration::from_millis(200));
    }
    let refused: u64 = (1..4).map(|i| metric(&p.cluster.nodes[i].metrics, "hashmesh_proposals_refused_total")).sum();
    assert!(refused > 0, "no honest node refused a proposal: node 0 never proposed?");

    // Every committed transaction is one an honest proposer could make: it decodes, names this
    // chain and a registered pool, and its signature verifies; the route is there exactly once.
    let pools: Vec<(hashmesh_protocol::PoolId, PoolKey)> = rpc
        .abci_query("/pools", b"")
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let id: hashmesh_protocol::PoolId = p["id"].as_str().unwrap().parse().unwrap();
            (id, PoolKey::from_pool_id(&id).unwrap())
        })
        .collect();
    let (mut seen, mut routes) = (0, 0);
    for h in 1..=rpc.status().unwrap().1 {
        for tx in rpc.block(h).unwrap().txs {
            let t = SignedTx::decode(&tx).unwrap_or_else(|e| panic!("block {h} holds an undecodable tx: {e}"));
            assert_eq!(t.chain_id, "hashmesh-byzantine", "block {h}");
            let (_, key) = pools.iter().find(|(id, _)| *id == t.signer).expect("a registered signer");
            signing::verify(key, &tx).unwrap_or_else(|e| panic!("block {h} holds a forged tx: {e}"));
            routes += usize::from(t.body.kind() == "route");
            seen += 1;
        }
    }
    assert_eq!(routes, 1, "the route committed once, never replayed");
    eprintln!(
        "byzantine proposer: {refused} proposals refused by the honest nodes; {seen} honest transactions committed"
    );
}
