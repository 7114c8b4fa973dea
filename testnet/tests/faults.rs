//! The fault suite, shortened for CI, on its own running testnet (agents, Stratum traffic,
//! scheduling loops, p2p links through Toxiproxy): with a fixed seed, kills of nodes'
//! processes, a pause, aborts inside Commit before and after persisting, an agent kill and a
//! partition, under generated load — after each,
//! every node catches up to one state root, nothing committed is lost; at the end no
//! transaction is committed twice and `audit verify` passes on every node. The full run is
//! `testnet/faults` (docs/operations.md).

mod common;
use common::{testnet, Down};

#[test]
fn perturbations_under_load_lose_nothing_committed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cluster");
    let cometbft = hashmesh_testnet::install::cometbft();
    let _down = Down(dir.clone());
    let (code, out, err) =
        testnet(&dir, &["up", "--cometbft", cometbft.to_str().unwrap(), "--base-port", "0", "--no-demo", "--links"]);
    assert_eq!(code, 0, "up\n{out}\n{err}");
    let args = [
        "faults",
        "--seed",
        "7",
        "--kills",
        "3",
        "--pauses",
        "1",
        "--crashes",
        "2",
        "--agent-kills",
        "1",
        "--partitions",
        "1",
        "--json",
    ];
    let (code, out, err) = testnet(&dir, &args);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}\n{out}\n{err}"));
    eprintln!("{err}");
    assert_eq!(report["ok"], true, "{report:#}");
    assert_eq!(code, 0);
    let kinds: Vec<&str> =
        report["rows"].as_array().unwrap().iter().map(|r| r["perturbation"].as_str().unwrap()).collect();
    assert_eq!(kinds.len(), 5, "kill, pause, crash, agent and partition rows: {kinds:?}");
    let total: u64 = report["rows"].as_array().unwrap().iter().map(|r| r["count"].as_u64().unwrap()).sum();
    assert_eq!(total, 8);
    assert!(report["directives_committed"].as_u64().unwrap() > 5, "{report:#}");
    // Per node: directives present; the block walk; the agents' tables; per node: audit verify.
    let checks = report["final_checks"].as_array().unwrap();
    assert_eq!(checks.len(), 4 + 1 + 1 + 4, "{checks:#?}");
    assert!(
        checks.iter().any(|c| c.to_string().contains("every agent's (8) routes are the committed assignments")),
        "{checks:#?}"
    );
}
