//! `hashmesh audit verify` against an honest node and against a lying one.
//!
//! A 4-validator cluster commits a few directives from pool 1. Node 3, which submitted nothing,
//! verifies from the genesis file. Then a fake RPC in front of node 3 serves a tampered history,
//! one lie at a time — a dropped transaction, an altered result code, a forged assignment, a
//! header from a fork signed by one validator, state answered from a stale height — and each is
//! caught and named (block and field). Every process is spawned here and killed by its pid.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use ed25519_dalek::Signer as _;
use hashmesh_abci::core::keys;
use hashmesh_abci::core::model::Assignment;
use hashmesh_node::rpc::Rpc;
use hashmesh_protocol::codec;
use hashmesh_testnet::install::cometbft;
use hashmesh_testnet::{self as testnet, procs, ClusterSpec};
use serde_json::Value;

mod common;
use common::Processes;

const HASHMESH: &str = env!("CARGO_BIN_EXE_hashmesh");
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// One lie the fake RPC tells.
#[derive(Debug, Clone)]
enum Lie {
    Honest,
    /// `/block` at this height without its first transaction.
    DropTx(u64),
    /// `/block_results` at this height with the first code changed.
    AlterCode(u64),
    /// `/store` answers for this key with a different assignment (the honest proof kept).
    ForgeAssignment(Vec<u8>),
    /// `/block` and `/commit` at this height serve a header with another app hash, signed by one
    /// validator (its key: `signer`), the other signatures absent.
    Fork {
        height: u64,
        signer: Box<ed25519_dalek::SigningKey>,
        address: String,
    },
    /// `/store` answers come from this older height (before pool 1's directives), labelled
    /// as the height asked.
    Stale(u64),
}

/// A JSON-RPC proxy in front of `upstream` (HOST:PORT) that tells `lie`.
fn fake_rpc(upstream: String, lie: Arc<Mutex<Lie>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let (up, lie) = (upstream.clone(), Arc::clone(&lie));
            std::thread::spawn(move || serve(conn, &up, &lie));
        }
    });
    format!("http://{addr}")
}

fn serve(conn: TcpStream, upstream: &str, lie: &Mutex<Lie>) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut out = conn;
    loop {
        let mut len = 0usize;
        let mut line = String::new();
        loop {
            line.clear();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let mut req: Value = serde_json::from_slice(&body).unwrap();
        let lie = lie.lock().unwrap().clone();
        let asked = req["params"]["height"].as_str().and_then(|h| h.parse::<u64>().ok());
        let store = req["params"]["path"] == hashmesh_abci::query::STORE_PATH;
        if let (Lie::Stale(old), true, Some(_)) = (&lie, store, asked) {
            req["params"]["height"] = Value::String(old.to_string());
        }
        let answer =
            hashmesh_plane::host::http::request(upstream, "POST", "/", &req.to_string(), Duration::from_secs(10))
                .unwrap();
        let mut v: Value = serde_json::from_str(&answer).unwrap();
        tell(&lie, &req, asked, &mut v);
        let text = v.to_string();
        // One write: a head and a body written apart wait out the peer's delayed ACK.
        let answer = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{text}",
            text.len()
        );
        if out.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

fn tell(lie: &Lie, req: &Value, asked: Option<u64>, v: &mut Value) {
    let method = req["method"].as_str().unwrap_or_default();
    match (lie, method) {
        (Lie::DropTx(h), "block") if asked == Some(*h) => {
            v["result"]["block"]["data"]["txs"].as_array_mut().unwrap().remove(0);
        }
        (Lie::AlterCode(h), "block_results") if asked == Some(*h) => {
            v["result"]["txs_results"][0]["code"] = Value::from(5);
        }
        (Lie::ForgeAssignment(key), "abci_query")
            if req["params"]["data"].as_str().is_some_and(|d| d.eq_ignore_ascii_case(&hex::encode(key))) =>
        {
            let r = &mut v["result"]["response"];
            let honest = B64.decode(r["value"].as_str().unwrap()).unwrap();
            let mut a: Assignment = codec::decode_trusted(&honest).unwrap();
            a.targets.reverse();
            a.targets[0].weight_bp += 1;
            a.targets[1].weight_bp -= 1;
            r["value"] = Value::String(B64.encode(codec::encode(&a)));
        }
        (Lie::Fork { height, signer, address }, "commit" | "block") if asked == Some(*height) => {
            let forged = if method == "commit" { &mut v["result"]["signed_header"] } else { &mut v["result"]["block"] };
            forged["header"]["app_hash"] = Value::String("AB".repeat(32));
            let header: tendermint::block::Header = serde_json::from_value(forged["header"].clone()).unwrap();
            let hash = header.hash().to_string();
            if method == "commit" {
                let commit = &mut forged["commit"];
                commit["block_id"]["hash"] = Value::String(hash.clone());
                let block_id: tendermint::block::Id = serde_json::from_value(commit["block_id"].clone()).unwrap();
                let round = u16::try_from(commit["round"].as_u64().unwrap()).unwrap();
                for (i, sig) in commit["signatures"].as_array_mut().unwrap().iter_mut().enumerate() {
                    if sig["validator_address"].as_str() == Some(address) {
                        let vote = tendermint::vote::Vote {
                            vote_type: tendermint::vote::Type::Precommit,
                            height: header.height,
                            round: round.into(),
                            block_id: Some(block_id),
                            timestamp: Some(serde_json::from_value(sig["timestamp"].clone()).unwrap()),
                            validator_address: address.parse().unwrap(),
                            validator_index: (i as u32).try_into().unwrap(),
                            signature: None,
                            extension: Vec::new(),
                            extension_signature: None,
                        };
                        let bytes = vote.into_signable_vec(header.chain_id.clone());
                        sig["signature"] = Value::String(B64.encode(signer.sign(&bytes).to_bytes()));
                    } else {
                        *sig = serde_json::json!({
                            "block_id_flag": 1, "validator_address": "",
                            "timestamp": "0001-01-01T00:00:00Z", "signature": null
                        });
                    }
                }
            }
        }
        (Lie::Stale(_), "abci_query") if req["params"]["path"] == hashmesh_abci::query::STORE_PATH => {
            v["result"]["response"]["height"] = Value::String(asked.unwrap_or_default().to_string());
        }
        _ => {}
    }
}

fn verify(rpc: &str, genesis: &std::path::Path, to: u64) -> Value {
    let out = Command::new(HASHMESH)
        .args(["audit", "verify", "--json", "--rpc", rpc, "--to-height", &to.to_string(), "--trust"])
        .arg(genesis)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let r: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"));
    assert_eq!(out.status.code(), Some(i32::from(!r["failures"].as_array().unwrap().is_empty())), "{stderr}");
    r
}

fn audit_directives(rpc: &str, genesis: &std::path::Path) -> Value {
    let out = Command::new(HASHMESH)
        .args(["audit", "directives", "--json", "--verify", "--rpc", rpc, "--trust"])
        .arg(genesis)
        .output()
        .unwrap();
    let r: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(out.status.code(), Some(i32::from(r["failures"].as_u64() != Some(0))));
    r
}

fn first_failure(r: &Value) -> (u64, String, String) {
    let f = &r["failures"][0];
    (
        f["height"].as_u64().unwrap_or_else(|| panic!("expected a failure, got {r}")),
        f["field"].as_str().unwrap().to_owned(),
        f["detail"].as_str().unwrap().to_owned(),
    )
}

fn tx(args: &[&str], node: &testnet::NodeInfo) -> Value {
    let out = Command::new(HASHMESH)
        .args(args)
        .arg("--home")
        .arg(&node.hashmesh_home)
        .args(["--rpc", &node.rpc])
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn an_honest_node_verifies_and_each_lie_is_caught_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = testnet::generate(&ClusterSpec::validators_only(
        dir.path().join("cluster"),
        "hashmesh-audit",
        cometbft(),
        PathBuf::from(HASHMESH),
    ))
    .expect("generate cluster");
    let mut p = Processes { cluster, children: Vec::new(), _dir: dir };
    for i in 0..4 {
        let c = procs::start_node(&mut p.cluster, i, false).expect("start node");
        p.children.extend(c);
    }
    procs::wait_for_height(&p.cluster, &[0, 1, 2, 3], 2, Duration::from_secs(90)).expect("the chain makes blocks");

    // Pool 1 routes both its groups and drains an endpoint; one route is refused (a weight sum
    // that is not 10 000 is refused in CheckTx, so refuse it in the block instead: drain twice).
    let b = p.cluster.nodes[1].clone();
    let split = format!("{}=6000,{}=4000", b.endpoints[0], b.endpoints[1]);
    let mut heights = Vec::new();
    for g in &b.groups {
        let r = tx(&["tx", "route", "--group", g, "--to", &split], &b);
        assert_eq!(r["status"], "active", "{r}");
        heights.push(r["height"].as_u64().unwrap());
    }
    let r = tx(&["tx", "drain", "--endpoint", &b.endpoints[1]], &b);
    heights.push(r["height"].as_u64().unwrap_or_else(|| panic!("{r}")));
    let with_tx = heights[0];

    let node3 = &p.cluster.nodes[3];
    let rpc = Rpc::new(&node3.rpc);
    let deadline = Instant::now() + Duration::from_secs(30);
    let top = *heights.iter().max().unwrap();
    while rpc.status().unwrap().1 < top + 5 {
        assert!(Instant::now() < deadline, "the chain stalled");
        std::thread::sleep(Duration::from_millis(100));
    }
    let to = top + 3;
    let genesis = PathBuf::from(&node3.home).join("config/genesis.json");

    // Honest: from the node that submitted nothing, everything verifies.
    let honest = verify(&node3.rpc, &genesis, to);
    assert!(honest["failures"].as_array().unwrap().is_empty(), "{honest}");
    assert_eq!(honest["headers"], serde_json::json!([1, to + 1]));
    assert_eq!(honest["state"]["directives"], 3, "{honest}");
    let group = &b.groups[0];
    let proven = honest["state"]["assignments"].as_array().unwrap().iter().find(|a| a["group"] == *group).unwrap();
    assert_eq!(proven["targets"][0][1], 6000, "{proven}");

    // `audit directives --verify`: every row proven.
    let rows = audit_directives(&node3.rpc, &genesis);
    assert_eq!(rows["directives"].as_array().unwrap().len(), 3, "{rows}");
    assert!(rows["directives"].as_array().unwrap().iter().all(|d| d["proven"] == true), "{rows}");
    assert_eq!(rows["failures"], 0);

    // The lies, one at a time, through one fake RPC.
    let upstream = node3.rpc.trim_start_matches("http://").to_owned();
    let lie = Arc::new(Mutex::new(Lie::Honest));
    let fake = fake_rpc(upstream, Arc::clone(&lie));
    assert!(verify(&fake, &genesis, to)["failures"].as_array().unwrap().is_empty(), "the proxy itself is honest");

    let key0 = std::fs::read_to_string(PathBuf::from(&p.cluster.nodes[0].home).join("config/priv_validator_key.json"))
        .unwrap();
    let key0: Value = serde_json::from_str(&key0).unwrap();
    let secret = B64.decode(key0["priv_key"]["value"].as_str().unwrap()).unwrap();
    let signer = ed25519_dalek::SigningKey::from_bytes(&secret[..32].try_into().unwrap());
    let address = key0["address"].as_str().unwrap().to_owned();
    let fork_height = with_tx + 1;

    let forged_key = format!("key a:{group}");
    let cases: Vec<(Lie, u64, &str, &str)> = vec![
        (Lie::DropTx(with_tx), with_tx, "data_hash", "transaction"),
        (Lie::AlterCode(with_tx), with_tx, "last_results_hash", "results"),
        (Lie::ForgeAssignment(keys::assignment(&group.parse().unwrap())), to, "app_hash", &forged_key),
        (Lie::Fork { height: fork_height, signer: Box::new(signer), address }, fork_height, "commit", "voting power"),
        (Lie::Stale(with_tx - 1), to, "app_hash", "the proof does not match"),
    ];
    for (l, height, field, says) in cases {
        let name = format!("{l:?}").split(['(', ' ']).next().unwrap().to_owned();
        *lie.lock().unwrap() = l;
        let r = verify(&fake, &genesis, to);
        let (h, f, detail) = first_failure(&r);
        eprintln!("{name}: caught: block {h}: {f}: {detail}");
        assert_eq!((h, f.as_str()), (height, field), "{name}: {detail}");
        assert!(detail.contains(says), "{name}: {detail}");
    }
    // The rows of `audit directives --verify` are not proven through a lying node.
    *lie.lock().unwrap() = Lie::DropTx(with_tx);
    let rows = audit_directives(&fake, &genesis);
    assert!(rows["failures"].as_u64().unwrap() >= 1, "{rows}");
    assert!(rows["directives"].as_array().unwrap().iter().any(|d| d["proven"] == false), "{rows}");
}
