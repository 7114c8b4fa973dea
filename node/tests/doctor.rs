//! `hashmesh doctor`: each finding on a home without a running chain — a missing home, a loose
//! key file, CometBFT unreachable, a listen port held by another process, a plane peer that
//! does not answer, no agents — with its fix, as a table and as JSON. (The findings against a
//! running chain — same chain id, this pool in the genesis, the clock — are checked on the
//! 4-validator cluster in `cluster.rs`.)

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

const HASHMESH: &str = env!("CARGO_BIN_EXE_hashmesh");

fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn doctor(home: &Path) -> (i32, Value, String) {
    let json = Command::new(HASHMESH).args(["doctor", "--home", home.to_str().unwrap(), "--json"]).output().unwrap();
    let text = Command::new(HASHMESH).args(["doctor", "--home", home.to_str().unwrap()]).output().unwrap();
    assert_eq!(json.status.code(), text.status.code());
    (
        json.status.code().unwrap(),
        serde_json::from_slice(&json.stdout).unwrap(),
        String::from_utf8(text.stdout).unwrap(),
    )
}

fn finding<'a>(v: &'a Value, check: &str) -> &'a Value {
    v["checks"].as_array().unwrap().iter().find(|c| c["check"] == check).unwrap_or_else(|| panic!("no {check}: {v}"))
}

#[test]
fn each_finding_says_what_to_fix() {
    let dir = tempfile::tempdir().unwrap();
    // No home at all.
    let (code, v, text) = doctor(&dir.path().join("nowhere"));
    assert_eq!(code, 1);
    assert_eq!(finding(&v, "config")["level"], "fail");
    assert!(text.contains("hashmesh init --home"), "{text}");

    // A home whose CometBFT is not running, whose ABCI port another process holds, with a plane
    // peer that does not answer and no agents.
    let home = dir.path().join("node");
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let abci = held.local_addr().unwrap().to_string();
    let rpc = format!("http://127.0.0.1:{}", free_tcp_port());
    let out = Command::new(HASHMESH)
        .args(["init", "--home", home.to_str().unwrap(), "--moniker", "t", "--abci-listen", &abci])
        .args(["--plane-listen", "none", "--metrics-listen", "none", "--rpc", &rpc])
        .output()
        .unwrap();
    assert!(out.status.success());
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let cfg = home.join("config.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    let peer = "ab".repeat(32);
    std::fs::write(&cfg, text.replace("[plane.peers]", &format!("[plane.peers]\n{peer} = \"{silent}\""))).unwrap();
    let (code, v, text) = doctor(&home);
    assert_eq!(code, 1, "{text}");
    assert_eq!(finding(&v, "config")["level"], "ok");
    assert_eq!(finding(&v, "pool key")["level"], "ok");
    let bft = finding(&v, "cometbft rpc");
    assert_eq!(bft["level"], "fail");
    assert!(bft["fix"].as_str().unwrap().contains("cometbft start"), "{bft}");
    let port = finding(&v, "abci listen");
    assert_eq!(port["level"], "fail", "{port}");
    assert!(port["detail"].as_str().unwrap().contains(&abci), "{port}");
    let p = finding(&v, &format!("peer {}", &peer[..12]));
    assert_eq!(p["level"], "fail", "{p}");
    assert!(p["fix"].as_str().unwrap().contains("[plane.peers]") || p["fix"].as_str().unwrap().contains("UDP"), "{p}");
    let agents = finding(&v, "agents");
    assert_eq!(agents["level"], "warn");
    assert!(agents["fix"].as_str().unwrap().contains("hashmesh agents add"), "{agents}");
    assert!(
        text.starts_with("CHECK") && text.contains("FAIL") && text.contains("cometbft rpc: start CometBFT"),
        "{text}"
    );

    // The port freed: that finding clears. A key file others can read: named with the command.
    drop(held);
    std::fs::set_permissions(home.join("pool_key.json"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let (_, v, _) = doctor(&home);
    assert_eq!(finding(&v, "abci listen")["level"], "ok");
    let key = finding(&v, "pool key");
    assert_eq!(key["level"], "fail");
    assert!(key["detail"].as_str().unwrap().contains("chmod 600"), "{key}");
}
