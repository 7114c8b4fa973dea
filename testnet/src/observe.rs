//! `testnet/up --observe`: a real Prometheus (Debian's package; `testnet/install-prometheus`
//! installs it) scraping every node, agent and endpoint of the cluster every 2 s, with the
//! project's alert rules (`deploy/prometheus/alerts.yml`) loaded. Its pid and URL live in
//! `cluster.json`; `down` and `stop` stop it with the cluster.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::cluster::Cluster;
use crate::procs;

/// A running Prometheus.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Observer {
    /// Its pid.
    pub pid: u32,
    /// Its HTTP address, `http://127.0.0.1:PORT`.
    pub url: String,
}

/// The `prometheus` binary: `HASHMESH_PROMETHEUS`, else on `PATH`.
///
/// # Errors
/// If there is none, saying how to install it.
pub fn prometheus_binary() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("HASHMESH_PROMETHEUS").map(PathBuf::from).filter(|p| p.is_file()) {
        return Ok(p);
    }
    std::env::var_os("PATH")
        .and_then(|path| std::env::split_paths(&path).map(|d| d.join("prometheus")).find(|p| p.is_file()))
        .context("no prometheus binary: run testnet/install-prometheus (Debian's prometheus package), or set HASHMESH_PROMETHEUS")
}

/// The scrape configuration for `c`: nodes, agents and endpoints, every 2 s, the alert rules in
/// `rules`.
#[must_use]
pub fn config(c: &Cluster, rules: &Path) -> String {
    let list = |targets: Vec<String>| targets.iter().map(|t| format!("\"{t}\"")).collect::<Vec<_>>().join(", ");
    let nodes = list(c.nodes.iter().map(|n| n.metrics.clone()).collect());
    let agents = list(c.nodes.iter().flat_map(|n| n.agents.iter().filter_map(|a| a.metrics.clone())).collect());
    let endpoints = list(c.nodes.iter().flat_map(|n| n.stratum.iter().map(|e| e.http.clone())).collect());
    format!(
        "# Written by `hashmesh-testnet up --observe`.\n\
         global:\n  scrape_interval: 2s\n  evaluation_interval: 2s\n\
         rule_files:\n  - \"{}\"\n\
         scrape_configs:\n\
         \x20 - job_name: hashmesh-node\n    static_configs:\n      - targets: [{nodes}]\n\
         \x20 - job_name: hashmesh-agent\n    static_configs:\n      - targets: [{agents}]\n\
         \x20 - job_name: stratum-endpoint\n    static_configs:\n      - targets: [{endpoints}]\n",
        rules.display()
    )
}

/// The project's alert rules (`deploy/prometheus/alerts.yml`), as built into this binary.
pub const ALERT_RULES: &str = include_str!("../../deploy/prometheus/alerts.yml");

/// Start Prometheus for `c` with the project's alert rules (written into the cluster directory).
///
/// # Errors
/// If the files cannot be written, or it does not answer within 30 s.
pub fn start(c: &Cluster, prometheus: &Path) -> Result<Observer> {
    let dir = c.dir.join("prometheus");
    std::fs::create_dir_all(&dir)?;
    let kept_rules = dir.join("alerts.yml");
    std::fs::write(&kept_rules, ALERT_RULES)?;
    std::fs::write(dir.join("prometheus.yml"), config(c, &kept_rules))?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let url = format!("http://127.0.0.1:{port}");
    let (cfg, data, listen) = (
        format!("--config.file={}", dir.join("prometheus.yml").display()),
        format!("--storage.tsdb.path={}", dir.join("data").display()),
        format!("--web.listen-address=127.0.0.1:{port}"),
    );
    let child = procs::spawn_detached(prometheus, &[&cfg, &data, &listen], &dir.join("prometheus.log"))?;
    let observer = Observer { pid: child.id(), url };
    let deadline = Instant::now() + Duration::from_secs(30);
    while query(&observer.url, "up").is_err() {
        if Instant::now() > deadline {
            procs::stop_pid(observer.pid, Duration::from_secs(5));
            bail!("prometheus did not answer within 30 s; see {}", dir.join("prometheus.log").display());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(observer)
}

/// An instant query through Prometheus's HTTP API: `data.result`.
///
/// # Errors
/// If it cannot be reached or answers an error.
pub fn query(url: &str, promql: &str) -> Result<serde_json::Value> {
    let body = get(url, &format!("/api/v1/query?query={}", urlencode(promql)))?;
    let v: serde_json::Value = serde_json::from_str(&body).with_context(|| format!("prometheus answered {body:?}"))?;
    if v["status"] != "success" {
        bail!("prometheus: {}", v["error"]);
    }
    Ok(v["data"]["result"].clone())
}

/// `GET path` from Prometheus at `url`.
///
/// # Errors
/// If it cannot be reached or does not answer 200.
pub fn get(url: &str, path: &str) -> Result<String> {
    hashmesh_plane::host::http::request(url.trim_start_matches("http://"), "GET", path, "", Duration::from_secs(5))
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
