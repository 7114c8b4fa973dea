//! End to end on a real 4-validator CometBFT cluster with every node's scheduling loop on:
//! the loop routes every miner group, and after `testnet chaos degrade` committed directives
//! move the affected groups off the degraded endpoint within three epochs, visible in the audit.

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use hashmesh_node::audit::{self, AuditFilter};
use hashmesh_node::live::{SchedulerSettings, Source};
use hashmesh_node::rpc::Rpc;
use hashmesh_testnet::{self as testnet, procs, ClusterSpec};
use serde_json::Value;

use hashmesh_testnet::install::cometbft;

const TESTNET: &str = env!("CARGO_BIN_EXE_hashmesh-testnet");
const EPOCH_MS: u64 = 2_000;

/// Kills and reaps every spawned process by pid when dropped, even on panic.
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
    start.elapsed()
}

fn routes_of(rpc: &Rpc, group: &str) -> Option<Vec<String>> {
    let a = rpc.abci_query("/assignments", b"").ok()?;
    a.as_array()?
        .iter()
        .find(|x| x["group"] == group)
        .map(|x| x["targets"].as_array().unwrap().iter().map(|t| t["endpoint"].as_str().unwrap().to_owned()).collect())
}

#[test]
fn a_degraded_endpoint_is_routed_around_by_committed_directives() {
    let dir = tempfile::tempdir().unwrap();
    let settings = SchedulerSettings {
        enabled: true,
        epoch_ms: EPOCH_MS,
        epoch_ms_high_load: 2 * EPOCH_MS,
        dwell_ms_min: 3 * EPOCH_MS,
        // No Stratum traffic to measure here: the testnet's model, turned on explicitly.
        source: Source::Synthetic,
        ..SchedulerSettings::default()
    };
    let mut cluster = testnet::generate(&ClusterSpec {
        dir: dir.path().join("cluster"),
        validators: 4,
        chain_id: "hashmesh-sched".into(),
        base_port: None,
        cometbft: cometbft(),
        hashmesh: PathBuf::from(TESTNET),
        node_args: vec!["node".into()],
        timeout_commit: "200ms".into(),
        vote_window_blocks: 100,
        kvstore: false,
        scheduler: Some(settings),
        agents_per_node: 0,
        stratum: None,
        simulated: None,
    })
    .expect("generate cluster");
    let mut children = Children(Vec::new());
    for i in 0..4 {
        children.0.extend(procs::start_node(&mut cluster, i, false).expect("start node"));
    }
    procs::wait_for_height(&cluster, &[0, 1, 2, 3], 2, Duration::from_secs(90)).expect("cluster makes blocks");
    let a = cluster.nodes[0].clone();
    let rpc = Rpc::new(&a.rpc);

    // The loops route every group of every pool, onto their own pool's endpoints.
    wait_until("every group to be routed", Duration::from_secs(60), || {
        rpc.abci_query("/assignments", b"").ok().and_then(|v| v.as_array().map(Vec::len)) == Some(8)
    });
    let bad = a.endpoints[0].clone();
    let uses_bad = |g: &str| routes_of(&rpc, g).is_some_and(|r| r.contains(&bad));
    wait_until("a pool-a group on the endpoint to degrade", Duration::from_secs(30), || {
        a.groups.iter().any(|g| uses_bad(g))
    });
    let telemetry = rpc.abci_query("/telemetry", b"").unwrap();
    assert!(telemetry.as_array().unwrap().iter().all(|t| t["health_bp"].as_u64().unwrap() >= 3000), "{telemetry}");
    let height_before = rpc.status().unwrap().1;

    // Degrade it: within three epochs no pool-a group routes there any more.
    let out = Command::new(TESTNET)
        .args(["--dir", cluster.dir.to_str().unwrap(), "chaos", "degrade", &bad])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let took = wait_until("groups to leave the degraded endpoint", Duration::from_millis(3 * EPOCH_MS + 5_000), || {
        a.groups.iter().all(|g| !uses_bad(g))
    });
    eprintln!("groups left {bad} {took:?} after the degrade (epoch {EPOCH_MS} ms)");

    // The move is in the committed, audited history, signed by pool-a after the degrade —
    // audited from another node, once that node has the blocks node a has.
    let h = rpc.status().unwrap().1;
    procs::wait_for_height(&cluster, &[3], h, Duration::from_secs(30)).expect("node d catches up");
    // The auditor's own code (`hashmesh audit directives --json --from-height H`), as a library.
    let filter = AuditFilter { from_height: Some(height_before), ..AuditFilter::default() };
    let report = audit::run(&Rpc::new(&cluster.nodes[3].rpc), &filter).expect("audit runs");
    let report: Value = serde_json::to_value(&report).unwrap();
    let moves: Vec<&Value> = report["directives"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["kind"] == "route" && d["signer_name"] == "pool-a" && d["status"] == "active")
        .collect();
    assert!(!moves.is_empty(), "no committed pool-a route after the degrade: {report}");
    assert!(moves.iter().all(|m| m["verified"] == true));
    // Each group's latest committed route avoids the degraded endpoint.
    for g in &a.groups {
        let last = moves.iter().filter(|m| m["body"]["group"] == g.as_str()).max_by_key(|m| m["height"].as_u64());
        if let Some(m) = last {
            assert!(
                m["body"]["targets"].as_array().unwrap().iter().all(|t| t["endpoint"] != bad.as_str()),
                "{g}'s latest route still uses {bad}: {m}"
            );
        }
    }
    // Its committed health is now below the floor, so nobody may route onto it.
    wait_until("the degraded health to commit", Duration::from_secs(10), || {
        rpc.abci_query("/telemetry", b"")
            .unwrap()
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["endpoint"] == bad.as_str() && t["health_bp"].as_u64().unwrap() < 3000)
    });
}
