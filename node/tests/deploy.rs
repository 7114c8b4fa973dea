//! The files in deploy/ are valid for the tools that read them: `systemd-analyze verify` for the
//! units (with the binaries this build made), `promtool check rules|config` for Prometheus,
//! `kubernetes-validate --strict` for the manifests, JSON with panels and queries for the
//! Grafana dashboards. `deploy/install-checkers` installs the checkers (CI runs it); a checker
//! that is not installed is named and its check skipped. That every metric the rules and
//! panels name is exported is checked against a running cluster (testnet/tests/data_plane.rs).

use std::path::{Path, PathBuf};
use std::process::Command;

const HASHMESH: &str = env!("CARGO_BIN_EXE_hashmesh");

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

fn on_path(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?.to_str()?.split(':').map(|d| Path::new(d).join(tool)).find(|p| p.is_file())
}

fn tools_dir() -> PathBuf {
    if let Some(t) = std::env::var_os("HASHMESH_TOOLS") {
        return PathBuf::from(t);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache"));
    cache.join("hashmesh/tools")
}

fn passes(program: &Path, args: &[&str], dir: &Path) {
    let out = Command::new(program).args(args).current_dir(dir).output().unwrap();
    assert!(
        out.status.success(),
        "{} {args:?} failed:\n{}{}",
        program.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn systemd_units_verify() {
    let Some(analyze) = on_path("systemd-analyze") else {
        eprintln!("skipped: systemd-analyze is not installed (deploy/install-checkers)");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    // The units name /usr/local/bin/…; verify checks that ExecStart is executable, so point them
    // at binaries that exist here (this build's, and any executable for cometbft).
    let hashmesh = Path::new(HASHMESH);
    let agent = hashmesh.with_file_name("hashmesh-agent");
    let agent = if agent.is_file() { agent } else { hashmesh.to_owned() };
    let mut names = Vec::new();
    for e in std::fs::read_dir(deploy().join("systemd")).unwrap() {
        let p = e.unwrap().path();
        let text = std::fs::read_to_string(&p)
            .unwrap()
            .replace("/usr/local/bin/hashmesh-agent", agent.to_str().unwrap())
            .replace("/usr/local/bin/hashmesh ", &format!("{HASHMESH} "))
            .replace("/usr/local/bin/cometbft", HASHMESH);
        let name = p.file_name().unwrap().to_str().unwrap().to_owned();
        std::fs::write(tmp.path().join(&name), text).unwrap();
        names.push(format!("./{name}"));
    }
    assert_eq!(names.len(), 3, "cometbft, node and agent units");
    let args: Vec<&str> = std::iter::once("verify").chain(names.iter().map(String::as_str)).collect();
    passes(&analyze, &args, tmp.path());
}

#[test]
fn prometheus_rules_and_config_check() {
    let Some(promtool) = on_path("promtool") else {
        eprintln!("skipped: promtool is not installed (deploy/install-checkers installs Debian's prometheus)");
        return;
    };
    let dir = deploy().join("prometheus");
    passes(&promtool, &["check", "rules", "alerts.yml"], &dir);
    passes(&promtool, &["check", "config", "prometheus.yml"], &dir);
}

#[test]
fn kubernetes_manifests_validate() {
    let kv = tools_dir().join("kubernetes-validate/bin/kubernetes-validate");
    if !kv.is_file() {
        eprintln!("skipped: {} is not installed (deploy/install-checkers)", kv.display());
        return;
    }
    passes(&kv, &["--strict", "validator.yaml", "agent.yaml"], &deploy().join("kubernetes"));
}

#[test]
fn grafana_dashboards_are_importable_json_with_queries() {
    let mut uids = Vec::new();
    for e in std::fs::read_dir(deploy().join("grafana")).unwrap() {
        let p = e.unwrap().path();
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        let panels = v["panels"].as_array().unwrap_or_else(|| panic!("{}: no panels", p.display()));
        assert!(!panels.is_empty() && v["title"].is_string() && v["schemaVersion"].is_u64(), "{}", p.display());
        for panel in panels {
            let targets = panel["targets"].as_array().unwrap();
            assert!(!targets.is_empty(), "{}: {} has no query", p.display(), panel["title"]);
            assert!(targets.iter().all(|t| t["expr"].as_str().is_some_and(|e| e.contains("hashmesh_"))));
            assert_eq!(
                panel["datasource"]["uid"],
                "${datasource}",
                "{}: panels use the datasource variable",
                p.display()
            );
        }
        uids.push(v["uid"].as_str().unwrap().to_owned());
    }
    uids.sort();
    assert_eq!(uids, ["hashmesh-endpoints", "hashmesh-loans", "hashmesh-node", "hashmesh-plane"]);
}
