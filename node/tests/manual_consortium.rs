//! The operations guide's path, without the testnet generator: three pools on one host, each a
//! `cometbft init` home and a `hashmesh init` home on free ports, one genesis built with
//! `hashmesh genesis`, CometBFT's config.toml edited as docs/operations.md says — and a
//! directive commits. Every process is spawned here and killed by its pid on exit.
//!
//! Needs the cometbft binary: `HASHMESH_COMETBFT`, else `testnet/install-cometbft` provides it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hashmesh_node::rpc::Rpc;
use hashmesh_testnet::install::cometbft;
use serde_json::Value;

const HASHMESH: &str = env!("CARGO_BIN_EXE_hashmesh");

/// Kills and reaps every child by its pid when dropped, even on panic.
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn run(program: &Path, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(out.status.success(), "{} {args:?}: {}", program.display(), String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// Set `key = value` in `[section]` of a TOML file written by `cometbft init` (top level: "").
fn set(text: &str, section: &str, key: &str, value: &str) -> String {
    let mut current = String::new();
    let mut done = false;
    let out: Vec<String> = text
        .lines()
        .map(|l| {
            let t = l.trim();
            if t.starts_with('[') {
                current = t.trim_matches(|c| c == '[' || c == ']').to_owned();
            } else if current == section && t.split('=').next().is_some_and(|k| k.trim() == key) {
                done = true;
                return format!("{key} = {value}");
            }
            l.to_owned()
        })
        .collect();
    assert!(done, "no {key} in [{section}]");
    out.join("\n") + "\n"
}

struct Pool {
    name: String,
    hashmesh: PathBuf,
    cometbft: PathBuf,
    abci: u16,
    rpc: u16,
    p2p: u16,
}

#[test]
fn three_pools_by_the_operations_guide_commit_a_directive() {
    let bft = cometbft();
    let dir = tempfile::tempdir().unwrap();
    let pools: Vec<Pool> = ["pool-a", "pool-b", "pool-c"]
        .iter()
        .map(|name| Pool {
            name: (*name).to_owned(),
            hashmesh: dir.path().join(format!("{name}/hashmesh")),
            cometbft: dir.path().join(format!("{name}/cometbft")),
            abci: free_tcp_port(),
            rpc: free_tcp_port(),
            p2p: free_tcp_port(),
        })
        .collect();
    // 2. The homes.
    for p in &pools {
        run(&bft, &["init", "--home", p.cometbft.to_str().unwrap()]);
        let (abci, rpc) = (format!("127.0.0.1:{}", p.abci), format!("http://127.0.0.1:{}", p.rpc));
        run(
            Path::new(HASHMESH),
            &[
                "init",
                "--home",
                p.hashmesh.to_str().unwrap(),
                "--moniker",
                &p.name,
                "--abci-listen",
                &abci,
                "--plane-listen",
                "none",
                "--metrics-listen",
                "none",
                "--rpc",
                &rpc,
            ],
        );
    }
    // 3. One genesis, built with `hashmesh genesis`, copied to every CometBFT home.
    let genesis = dir.path().join("genesis.json");
    let g = genesis.to_str().unwrap();
    let base = pools[0].cometbft.join("config/genesis.json");
    run(
        Path::new(HASHMESH),
        &["genesis", "init", "--file", g, "--chain-id", "manual-1", "--from", base.to_str().unwrap()],
    );
    for p in &pools {
        let (h, c) = (p.hashmesh.to_str().unwrap(), p.cometbft.to_str().unwrap());
        run(
            Path::new(HASHMESH),
            &["genesis", "add-pool", "--file", g, "--name", &p.name, "--home", h, "--cometbft-home", c],
        );
        let (ep, grp) = (format!("{}/ep-1", p.name), format!("{}/g-1", p.name));
        run(
            Path::new(HASHMESH),
            &[
                "genesis",
                "add-endpoint",
                "--file",
                g,
                "--pool",
                &p.name,
                "--id",
                &ep,
                "--stratum-url",
                "stratum+tcp://127.0.0.1:3333",
                "--capacity-hs",
                "200000000000000",
            ],
        );
        run(
            Path::new(HASHMESH),
            &["genesis", "add-group", "--file", g, "--pool", &p.name, "--id", &grp, "--hashrate-hs", "100000000000000"],
        );
    }
    for p in &pools {
        run(Path::new(HASHMESH), &["genesis", "validate", "--file", g, "--home", p.hashmesh.to_str().unwrap()]);
        std::fs::copy(&genesis, p.cometbft.join("config/genesis.json")).unwrap();
    }
    // 4. CometBFT's config.toml, as the guide says for one host.
    let ids: Vec<String> = pools
        .iter()
        .map(|p| run(&bft, &["show-node-id", "--home", p.cometbft.to_str().unwrap()]).trim().to_owned())
        .collect();
    for (i, p) in pools.iter().enumerate() {
        let path = p.cometbft.join("config/config.toml");
        let peers: Vec<String> = pools
            .iter()
            .zip(&ids)
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, (q, id))| format!("{id}@127.0.0.1:{}", q.p2p))
            .collect();
        let mut t = std::fs::read_to_string(&path).unwrap();
        for (section, key, value) in [
            ("", "proxy_app", format!("\"tcp://127.0.0.1:{}\"", p.abci)),
            ("rpc", "laddr", format!("\"tcp://127.0.0.1:{}\"", p.rpc)),
            ("p2p", "laddr", format!("\"tcp://127.0.0.1:{}\"", p.p2p)),
            ("p2p", "persistent_peers", format!("\"{}\"", peers.join(","))),
            ("p2p", "addr_book_strict", "false".into()),
            ("p2p", "allow_duplicate_ip", "true".into()),
            ("consensus", "timeout_commit", "\"300ms\"".into()),
            ("tx_index", "indexer", "\"kv\"".into()),
        ] {
            t = set(&t, section, key, &value);
        }
        std::fs::write(&path, t).unwrap();
    }
    // 5. Run: hashmesh first, then CometBFT.
    let mut children = Children(Vec::new());
    for p in &pools {
        let log = std::fs::File::create(dir.path().join(format!("{}-hashmesh.log", p.name))).unwrap();
        children.0.push(
            Command::new(HASHMESH)
                .args(["start", "--home", p.hashmesh.to_str().unwrap()])
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap(),
        );
    }
    for p in &pools {
        let log = std::fs::File::create(dir.path().join(format!("{}-cometbft.log", p.name))).unwrap();
        children.0.push(
            Command::new(&bft)
                .args(["start", "--home", p.cometbft.to_str().unwrap()])
                .stdout(log)
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
    }
    let rpc = Rpc::new(&format!("http://127.0.0.1:{}", pools[0].rpc));
    let deadline = Instant::now() + Duration::from_secs(60);
    while rpc.status().map(|(_, h, _)| h).unwrap_or(0) < 2 {
        let logs: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path().display().to_string()))
            .collect();
        assert!(Instant::now() < deadline, "no blocks within 60 s; logs in {logs:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    // 6. Operate: pool-b routes its group; the chain commits it, seen from pool-c's node.
    let b = &pools[1];
    let out = Command::new(HASHMESH)
        .args([
            "tx",
            "route",
            "--home",
            b.hashmesh.to_str().unwrap(),
            "--group",
            "pool-b/g-1",
            "--to",
            "pool-b/ep-1=10000",
        ])
        .output()
        .unwrap();
    let r: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    assert_eq!(r["status"], "active", "{r} {}", String::from_utf8_lossy(&out.stderr));
    let id = r["directive_id"].as_str().unwrap().to_owned();
    let c = Rpc::new(&format!("http://127.0.0.1:{}", pools[2].rpc));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if c.abci_query("/directive", id.as_bytes()).is_ok_and(|d| d["status"] == "active") {
            break;
        }
        assert!(Instant::now() < deadline, "pool-c's node never saw the directive");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(c.abci_query("/pools", b"").unwrap().as_array().unwrap().len(), 3);
}
