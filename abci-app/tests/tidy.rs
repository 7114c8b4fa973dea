//! Mechanical check of the purity invariants in ARCHITECTURE.md: the protocol crate and the
//! abci-app core never mention IO, clocks, randomness, floats or hash-ordered collections.

use std::path::Path;

const FORBIDDEN: &[&str] = &[
    "tokio",
    "sled",
    "std::fs",
    "std::net",
    "Instant",
    "SystemTime",
    "HashMap",
    "HashSet",
    "rand::",
    "thread_rng",
    "f32",
    "f64",
];

/// The scheduler and the telemetry crate run off chain and may use floats and hash maps, but no
/// IO, clock or entropy.
const FORBIDDEN_IN_SCHEDULER: &[&str] =
    &["tokio", "sled", "std::fs", "std::net", "Instant", "SystemTime", "rand::", "thread_rng"];

fn scan(dir: &Path, hits: &mut Vec<String>) {
    scan_for(dir, FORBIDDEN, hits);
}

fn scan_for(dir: &Path, forbidden: &[&str], hits: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            scan_for(&path, forbidden, hits);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            for (n, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or("");
                for word in forbidden {
                    if code.contains(word) {
                        hits.push(format!("{}:{}: {word}: {}", path.display(), n + 1, line.trim()));
                    }
                }
            }
        }
    }
}

#[test]
fn pure_crates_stay_pure() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut hits = Vec::new();
    scan(&root.join("protocol/src"), &mut hits);
    scan(&root.join("abci-app/src/core"), &mut hits);
    scan_for(&root.join("scheduler/src"), FORBIDDEN_IN_SCHEDULER, &mut hits);
    scan_for(&root.join("telemetry/src"), FORBIDDEN_IN_SCHEDULER, &mut hits);
    assert!(hits.is_empty(), "impure code in a pure place:\n{}", hits.join("\n"));
}

#[test]
fn the_scan_sees_forbidden_words() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("x.rs"), "use std::collections::HashMap; // fine in a comment: sled\n").unwrap();
    let mut hits = Vec::new();
    scan(dir.path(), &mut hits);
    assert_eq!(hits.len(), 1, "{hits:?}");
}
