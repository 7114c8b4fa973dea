//! `hashmesh genesis`: a three-pool genesis built by hand from node and CometBFT homes, checked,
//! and each mistake an operator makes named with its fix.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

const HASHMESH: &str = env!("CARGO_BIN_EXE_hashmesh");

fn hm(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(HASHMESH).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ok(args: &[&str]) -> String {
    let (code, out, err) = hm(args);
    assert_eq!(code, 0, "{args:?}: {out}{err}");
    out
}

/// A node home with a pool key; its pool id.
fn node_home(dir: &Path, name: &str) -> (String, String) {
    let home = dir.join(name);
    let out = ok(&[
        "init",
        "--home",
        home.to_str().unwrap(),
        "--moniker",
        name,
        "--abci-listen",
        "127.0.0.1:0",
        "--plane-listen",
        "none",
        "--metrics-listen",
        "none",
        "--json",
    ]);
    let id = serde_json::from_str::<Value>(&out).unwrap()["pool_id"].as_str().unwrap().to_owned();
    (home.display().to_string(), id)
}

/// A CometBFT home with only the validator key file `cometbft init` writes.
fn cometbft_home(dir: &Path, name: &str, address: &str) -> String {
    let home = dir.join(format!("cometbft-{name}"));
    std::fs::create_dir_all(home.join("config")).unwrap();
    let key = serde_json::json!({
        "address": address,
        "pub_key": {"type": "tendermint/PubKeyEd25519", "value": "q7b2Zc2hQ3pQ0Ww2YxS5l9d6rJ0nHnZ7mCkqv9u3c1E="},
        "priv_key": {"type": "tendermint/PrivKeyEd25519", "value": "secret"},
    });
    std::fs::write(home.join("config/priv_validator_key.json"), key.to_string()).unwrap();
    home.display().to_string()
}

#[test]
fn a_three_pool_genesis_is_built_checked_and_mistakes_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("genesis.json");
    let f = file.to_str().unwrap();
    let (a_home, a_id) = node_home(dir.path(), "a");
    let (b_home, _) = node_home(dir.path(), "b");
    let (_, c_id) = node_home(dir.path(), "c");
    let (stranger_home, _) = node_home(dir.path(), "stranger");
    let a_bft = cometbft_home(dir.path(), "a", "1A2B3C4D5E6F708192A3B4C5D6E7F80910111213");
    let b_bft = cometbft_home(dir.path(), "b", "2A2B3C4D5E6F708192A3B4C5D6E7F80910111213");

    ok(&["genesis", "init", "--file", f, "--chain-id", "consortium-1"]);
    let (code, _, err) = hm(&["genesis", "init", "--file", f, "--chain-id", "other"]);
    assert_eq!(code, 1, "never overwrites without --force");
    assert!(err.contains("--force"), "{err}");
    ok(&["genesis", "add-pool", "--file", f, "--name", "pool-a", "--home", &a_home, "--cometbft-home", &a_bft]);
    ok(&["genesis", "add-pool", "--file", f, "--name", "pool-b", "--home", &b_home, "--cometbft-home", &b_bft]);
    // pool-c validates nothing; its node home is elsewhere: its id is enough.
    ok(&["genesis", "add-pool", "--file", f, "--name", "pool-c", "--id", &c_id]);
    for (pool, n) in [("pool-a", 2), ("pool-b", 1), ("pool-c", 1)] {
        for i in 1..=n {
            let id = format!("{pool}/ep-{i}");
            ok(&[
                "genesis",
                "add-endpoint",
                "--file",
                f,
                "--pool",
                pool,
                "--id",
                &id,
                "--stratum-url",
                "stratum+tcp://127.0.0.1:3333",
                "--capacity-hs",
                "200000000000000",
                "--region",
                "eu",
            ]);
        }
        let g = format!("{pool}/g-1");
        ok(&["genesis", "add-group", "--file", f, "--pool", pool, "--id", &g, "--hashrate-hs", "100000000000000"]);
    }

    // Each mistake is refused with what to do, and the file is unchanged.
    let before = std::fs::read(&file).unwrap();
    for (args, says) in [
        (vec!["add-pool", "--name", "pool-a", "--id", &a_id], "already in this genesis"),
        (vec!["add-pool", "--name", "pool-d", "--id", &a_id], "already in this genesis"),
        (vec!["add-pool", "--name", "pool-d"], "--home NODE_HOME, or --id"),
        (vec!["add-pool", "--name", "pool-d", "--home", &stranger_home, "--cometbft-home", &a_bft], "validator"),
        (
            vec!["add-endpoint", "--pool", "pool-a", "--id", "pool-b/ep-9", "--stratum-url", "x", "--capacity-hs", "1"],
            "must start with its pool's name",
        ),
        (
            vec!["add-endpoint", "--pool", "pool-z", "--id", "pool-z/ep-1", "--stratum-url", "x", "--capacity-hs", "1"],
            "no pool named \"pool-z\"",
        ),
        (
            vec!["add-endpoint", "--pool", "pool-a", "--id", "pool-a/ep-3", "--stratum-url", "x", "--capacity-hs", "0"],
            "capacity above 0",
        ),
        (vec!["add-group", "--pool", "pool-a", "--id", "pool-a/g-1", "--hashrate-hs", "1"], "already in this genesis"),
    ] {
        let mut all = vec!["genesis", args[0], "--file", f];
        all.extend_from_slice(&args[1..]);
        let (code, out, err) = hm(&all);
        assert_eq!(code, 1, "{all:?} was accepted: {out}");
        assert!(err.contains(says), "{all:?}: {err}");
        assert_eq!(std::fs::read(&file).unwrap(), before, "{all:?} changed the file");
    }

    // Usable, for pool-a's node; what InitChain reads parses and validates.
    let out = ok(&["genesis", "validate", "--file", f, "--home", &a_home]);
    assert!(out.contains("usable, chain consortium-1") && out.contains("pool-c"), "{out}");
    let doc: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let app = hashmesh_abci::core::GenesisAppState::from_json(doc["app_state"].to_string().as_bytes()).unwrap();
    assert_eq!(app.pools.len(), 3);
    assert_eq!(doc["validators"].as_array().unwrap().len(), 2);
    assert_eq!(doc["validators"][0]["name"], "pool-a");
    assert_eq!(app.pools[0].validator_address, "1A2B3C4D5E6F708192A3B4C5D6E7F80910111213");

    // A node whose pool is not in it is told so.
    let (code, out, _) = hm(&["genesis", "validate", "--file", f, "--home", &stranger_home]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("is not in the genesis") && out.contains("add-pool --home"), "{out}");

    // A hand edit that breaks the validator link and an id's prefix: both named (JSON too).
    let mut broken = doc.clone();
    broken["validators"][1]["address"] = Value::from("FFFF3C4D5E6F708192A3B4C5D6E7F80910111213");
    broken["app_state"]["pools"][2]["groups"][0]["id"] = Value::from("pool-x/g-1");
    std::fs::write(&file, broken.to_string()).unwrap();
    let (code, out, _) = hm(&["genesis", "validate", "--file", f, "--json"]);
    assert_eq!(code, 1);
    let v: Value = serde_json::from_str(&out).unwrap();
    let problems: Vec<&str> =
        v["findings"].as_array().unwrap().iter().map(|x| x["problem"].as_str().unwrap()).collect();
    assert!(
        problems.iter().any(|p| p.contains("pool-b names validator") && p.contains("not in validators")),
        "{problems:?}"
    );
    assert!(
        problems.iter().any(|p| p.contains("FFFF3C4D") && p.contains("no pool's validator_address")),
        "{problems:?}"
    );
    assert!(
        problems.iter().any(|p| p.contains("pool-x/g-1") && p.contains("does not start with pool-c/")),
        "{problems:?}"
    );
}
