//! The plane's core is sans-IO, the agent crate never links the consensus side, and the node
//! never imports the testnet: checked by scanning the sources (and checking that the scan still catches a forbidden word).

use std::path::Path;

fn words_in(dir: &Path, forbidden: &[&str]) -> Vec<String> {
    let mut hits = Vec::new();
    let entries: Vec<std::path::PathBuf> = if dir.is_file() {
        vec![dir.to_owned()]
    } else {
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect()
    };
    for path in entries {
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
fn the_stratum_crate_is_sans_io() {
    let stratum = Path::new(env!("CARGO_MANIFEST_DIR")).join("../stratum/src");
    assert_eq!(words_in(&stratum, CORE_FORBIDDEN), Vec::<String>::new());
}

#[test]
fn the_proxy_core_is_sans_io() {
    let proxy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../agent/src/proxy");
    for f in ["core", "split.rs", "meter.rs"] {
        assert_eq!(words_in(&proxy.join(f), CORE_FORBIDDEN), Vec::<String>::new());
    }
    assert!(!words_in(&proxy.join("driver.rs"), CORE_FORBIDDEN).is_empty(), "the scan still sees the driver's tokio");
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

/// Sibling modules each file of `dir` names (`super::x`, `crate::<parent>::x`), by module.
fn module_uses(dir: &Path, parent: &str) -> std::collections::BTreeMap<String, Vec<String>> {
    let mut uses = std::collections::BTreeMap::new();
    let modules: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            (p.extension()? == "rs").then(|| p.file_stem().unwrap().to_string_lossy().into_owned())
        })
        .filter(|m| m != "mod")
        .collect();
    for m in &modules {
        let text = std::fs::read_to_string(dir.join(format!("{m}.rs"))).unwrap();
        let code: String = text.lines().filter(|l| !l.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n");
        let named: Vec<String> = modules
            .iter()
            .filter(|o| *o != m)
            .filter(|o| code.contains(&format!("super::{o}")) || code.contains(&format!("crate::{parent}::{o}")))
            .cloned()
            .collect();
        uses.insert(m.clone(), named);
    }
    uses
}

fn has_cycle(uses: &std::collections::BTreeMap<String, Vec<String>>) -> Option<String> {
    fn visit(
        m: &str,
        uses: &std::collections::BTreeMap<String, Vec<String>>,
        path: &mut Vec<String>,
        done: &mut std::collections::BTreeSet<String>,
    ) -> Option<String> {
        if let Some(i) = path.iter().position(|p| p == m) {
            return Some(path[i..].join(" -> ") + " -> " + m);
        }
        if done.contains(m) {
            return None;
        }
        path.push(m.to_owned());
        for n in uses.get(m).into_iter().flatten() {
            if let Some(c) = visit(n, uses, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(m.to_owned());
        None
    }
    let mut done = std::collections::BTreeSet::new();
    uses.keys().find_map(|m| visit(m, uses, &mut Vec::new(), &mut done))
}

#[test]
fn no_import_cycles_between_sibling_modules() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for (dir, parent) in [("node/src/plane", "plane"), ("scheduler/src/sim", "sim"), ("node/src/live", "live")] {
        let uses = module_uses(&root.join(dir), parent);
        assert_eq!(has_cycle(&uses), None, "{dir}: {uses:?}");
    }
    // The check still catches one.
    let cyclic = std::collections::BTreeMap::from([
        ("a".to_owned(), vec!["b".to_owned()]),
        ("b".to_owned(), vec!["a".to_owned()]),
    ]);
    assert!(has_cycle(&cyclic).is_some());
}

#[test]
fn the_scan_still_catches_a_forbidden_word() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("x.rs"), "use tokio::net::TcpStream;\n// sled in a comment is fine\n").unwrap();
    assert_eq!(words_in(dir.path(), CORE_FORBIDDEN).len(), 1);
}
