//! The plane's core is sans-IO, the agent crate never links the consensus side, and the node
//! never imports the testnet: checked by scanning the sources (and checking that the scan still catches a forbidden word).

use std::path::Path;

fn words_in(dir: &Path, forbidden: &[&str]) -> Vec<String> {
    let mut hits = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            hits.extend(words_in(&path, forbidden));
        } else if path.extension().is_some_and(|e| e == "rs" || e == "toml") {
            let text = std::fs::read_to_string(&path).unwrap();
            for line in text.lines().filter(|l| !l.trim_start().starts_with("//")) {
                for w in forbidden {
                    if line.contains(w) {
                        hits.push(format!("{}: {w}", path.display()));
                    }
                }
            }
        }
    }
    hits
}

const CORE_FORBIDDEN: &[&str] = &["tokio", "quinn", "sled", "std::fs", "std::net", "SystemTime", "Instant"];
const AGENT_FORBIDDEN: &[&str] = &["sled", "tendermint", "hashmesh-abci", "hashmesh_abci", "hashmesh-node"];

#[test]
fn the_plane_core_is_sans_io() {
    let core = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/core");
    assert_eq!(words_in(&core, CORE_FORBIDDEN), Vec::<String>::new());
}

#[test]
fn the_agent_never_names_the_consensus_side() {
    let agent = Path::new(env!("CARGO_MANIFEST_DIR")).join("../agent");
    assert_eq!(words_in(&agent.join("src"), AGENT_FORBIDDEN), Vec::<String>::new());
    let manifest = std::fs::read_to_string(agent.join("Cargo.toml")).unwrap();
    for w in AGENT_FORBIDDEN {
        assert!(!manifest.contains(w), "agent/Cargo.toml names {w}");
    }
}

const NODE_FORBIDDEN: &[&str] = &["hashmesh_testnet", "SyntheticSource", "chaos.json"];

#[test]
fn the_node_never_imports_the_testnet() {
    let node = Path::new(env!("CARGO_MANIFEST_DIR")).join("../node");
    assert_eq!(words_in(&node.join("src"), NODE_FORBIDDEN), Vec::<String>::new());
    let manifest = std::fs::read_to_string(node.join("Cargo.toml")).unwrap();
    let (deps, dev) = manifest.split_once("[dev-dependencies]").unwrap();
    assert!(!deps.contains("hashmesh-testnet"), "node depends on the testnet outside its tests");
    assert!(dev.contains("hashmesh-testnet"), "the end-to-end test uses the generator");
}

#[test]
fn the_scan_still_catches_a_forbidden_word() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("x.rs"), "use tokio::net::TcpStream;\n// sled in a comment is fine\n").unwrap();
    assert_eq!(words_in(dir.path(), CORE_FORBIDDEN).len(), 1);
}
