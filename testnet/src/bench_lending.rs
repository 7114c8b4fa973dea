//! `hashmesh-testnet bench-lending`: how long a pool that loses every endpoint waits before its
//! miners' shares are accepted at a lender, on a real 4-validator cluster with Stratum traffic.
//! Each run kills `pool-a/ep-1` (the baseline beside it: the agents' local failover onto
//! `pool-a/ep-2`, no consensus involved), then `pool-a/ep-2` — now nothing of pool-a's can carry
//! its groups, and two times run: until a lender's endpoint accepts the first share under the
//! offer's standby credential (the agents' fallback, no consensus involved), and until one is
//! accepted under a new loan's worker name (the loop's epoch, the borrow route's block, the
//! lender's credentials, the agents' login again) — then restores both and waits for the loans
//! to close before the next run.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use hashmesh_node::rpc::Rpc;
use serde::Serialize;

use crate::cluster::Cluster;
use crate::commands::{self, Traffic};
use crate::traffic;

/// One run.
#[derive(Debug, Clone, Serialize)]
pub struct LendingRun {
    /// Run number, from 1.
    pub run: usize,
    /// Kill of pool-a/ep-1 → its miners off it and pool-a/ep-2 accepting more, ms.
    pub local_failover_ms: u64,
    /// Kill of pool-a/ep-2 (both dead) → first share accepted at a lender under its standby
    /// credential (the agents' fallback), ms.
    pub fallback_ms: u64,
    /// Kill of pool-a/ep-2 (both dead) → first share accepted at a lender under a new loan, ms.
    pub borrow_ms: u64,
    /// The lender's endpoint.
    pub lender: String,
    /// Restore → every loan of the run closed (the hashrate home), ms.
    pub home_ms: u64,
}

/// Accepted shares per worker of pool-a's loans (and, under `.standby`, of its fallback) at
/// every other pool's endpoint.
fn loan_shares(c: &Cluster) -> Vec<(String, String, u64)> {
    c.nodes
        .iter()
        .skip(1)
        .flat_map(|n| n.stratum.iter())
        .filter_map(|e| Some((e.id.clone(), traffic::status(&e.http).ok()?)))
        .flat_map(|(id, s)| {
            s.workers
                .into_iter()
                .filter(|(w, _)| w.contains(".pool-a/g-") || w.ends_with(".standby"))
                .map(move |(w, b)| (id.clone(), w, b.accepted))
        })
        .collect()
}

/// Miners pool-a's agents have at `endpoint` (their `/metrics`).
fn miners_at(c: &Cluster, endpoint: &str) -> u64 {
    let series = format!("hashmesh_agent_endpoint_miners{{endpoint=\"{endpoint}\"}}");
    c.nodes[0]
        .agents
        .iter()
        .filter_map(|a| a.metrics.as_deref())
        .filter_map(|m| hashmesh_plane::host::http::request(m, "GET", "/metrics", "", Duration::from_secs(2)).ok())
        .map(|text| {
            text.lines()
                .find(|l| l.starts_with(&series))
                .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
                .unwrap_or(0)
        })
        .sum()
}

fn wait(what: &str, limit: Duration, mut f: impl FnMut() -> Result<bool>) -> Result<Duration> {
    let t = Instant::now();
    while !f()? {
        if t.elapsed() > limit {
            bail!("timed out after {limit:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    Ok(t.elapsed())
}

fn open_loans(rpc: &Rpc) -> Result<usize> {
    Ok(rpc
        .abci_query("/loans", b"")?
        .as_array()
        .into_iter()
        .flatten()
        .filter(|l| l["open"] == true && l["group"].as_str().is_some_and(|g| g.starts_with("pool-a/")))
        .count())
}

/// Stops the cluster however the bench ends; wipes it only after a successful run (a failed
/// one keeps its logs).
struct Down(PathBuf, bool);

impl Drop for Down {
    fn drop(&mut self) {
        let _ = commands::down(&self.0, self.1);
        if !self.1 {
            eprintln!("bench-lending: the cluster's logs stay in {}", self.0.display());
        }
    }
}

/// Run `runs` kill-both / restore cycles on a fresh cluster in `work_dir`.
///
/// # Errors
/// If the cluster does not start or a step times out.
pub fn run(cometbft: &Path, work_dir: &Path, runs: usize) -> Result<Vec<LendingRun>> {
    if work_dir.join("cluster.json").exists() {
        commands::down(work_dir, true)?;
    }
    let mut down = Down(work_dir.to_owned(), false);
    let code = commands::up(
        work_dir,
        4,
        cometbft,
        0,
        &commands::UpOptions { run_demo: true, traffic: &Traffic::default(), observe: None, links: None },
    )?;
    if code != 0 {
        bail!("the cluster's audit failed at start");
    }
    let c = Cluster::load(work_dir)?.context("no cluster after up")?;
    let rpc = Rpc::new(&c.nodes[0].rpc);
    let ep2 = c.nodes[0].stratum.iter().find(|e| e.id == "pool-a/ep-2").context("pool-a/ep-2")?.http.clone();
    let accepted =
        |http: &str| -> Result<u64> { Ok(traffic::status(http)?.workers.values().map(|w| w.accepted).sum()) };
    let mut out = Vec::new();
    for run in 1..=runs {
        eprintln!("bench-lending: run {run} of {runs}");
        // A poll that fails (the node busy, a kept-alive connection closed) counts as "not yet".
        wait("pool-a's loans closed and its endpoints carrying work", Duration::from_secs(120), || {
            Ok(open_loans(&rpc).is_ok_and(|n| n == 0))
        })?;
        let before = accepted(&ep2)?;
        commands::chaos(work_dir, "kill", "pool-a/ep-1")?;
        let local =
            wait("pool-a/ep-1's miners off it and pool-a/ep-2 accepting more", Duration::from_secs(30), || {
                Ok(miners_at(&c, "pool-a/ep-1") == 0 && accepted(&ep2)? > before)
            })?;
        let seen: Vec<(String, String, u64)> = loan_shares(&c);
        let t = Instant::now();
        commands::chaos(work_dir, "kill", "pool-a/ep-2")?;
        let (mut lender, mut fallback) = (String::new(), None);
        wait("a share accepted at a lender under a new loan", Duration::from_secs(120), || {
            let now = loan_shares(&c);
            let grew = |standby: bool| {
                now.iter().find(|(e, w, n)| {
                    w.ends_with(".standby") == standby
                        && *n > seen.iter().find(|(e2, w2, _)| e2 == e && w2 == w).map_or(0, |s| s.2)
                })
            };
            if fallback.is_none() && grew(true).is_some() {
                fallback = Some(t.elapsed());
            }
            let hit = grew(false);
            if let Some((e, _, _)) = hit {
                lender.clone_from(e);
            }
            Ok(hit.is_some())
        })?;
        let borrow = t.elapsed();
        let fallback = fallback.context("the loan's first share came before any under a standby credential")?;
        commands::chaos(work_dir, "restore", "pool-a/ep-1")?;
        commands::chaos(work_dir, "restore", "pool-a/ep-2")?;
        let home = wait("the loans closed", Duration::from_secs(180), || Ok(open_loans(&rpc).is_ok_and(|n| n == 0)))?;
        let r = LendingRun {
            run,
            local_failover_ms: local.as_millis() as u64,
            fallback_ms: fallback.as_millis() as u64,
            borrow_ms: borrow.as_millis() as u64,
            lender,
            home_ms: home.as_millis() as u64,
        };
        eprintln!(
            "bench-lending: run {run}: local failover {} ms, both dead → fallback share {} ms, loan share at {} {} ms, home {} ms",
            r.local_failover_ms, r.fallback_ms, r.lender, r.borrow_ms, r.home_ms
        );
        out.push(r);
        // Both endpoints healthy and used again before the next run.
        std::thread::sleep(Duration::from_secs(10));
    }
    down.1 = true;
    Ok(out)
}

fn quantile(mut v: Vec<u64>, q: f64) -> u64 {
    v.sort_unstable();
    v.get(((v.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or(0)
}

/// The runs and their p50/p99, with the local failover as the baseline.
#[must_use]
pub fn render(runs: &[LendingRun]) -> String {
    let mut s = String::from(
        "run  local failover (baseline)  both dead → fallback share  both dead → loan share  lender        home after restore\n",
    );
    for r in runs {
        s.push_str(&format!(
            "{:<4} {:>10} ms               {:>10} ms                  {:>10} ms           {:<13} {:>8} ms\n",
            r.run, r.local_failover_ms, r.fallback_ms, r.borrow_ms, r.lender, r.home_ms
        ));
    }
    let col = |f: fn(&LendingRun) -> u64| runs.iter().map(f).collect::<Vec<_>>();
    for (name, q) in [("p50", 0.5), ("p99", 0.99)] {
        let (l, f, b, h) = (
            quantile(col(|r| r.local_failover_ms), q),
            quantile(col(|r| r.fallback_ms), q),
            quantile(col(|r| r.borrow_ms), q),
            quantile(col(|r| r.home_ms), q),
        );
        s.push_str(&format!(
            "{name:<4} {l:>10} ms               {f:>10} ms ({:>4.1}×)          {b:>10} ms ({:>5.0}×)  {:<13} {h:>8} ms\n",
            f as f64 / l.max(1) as f64,
            b as f64 / l.max(1) as f64,
            ""
        ));
    }
    s.push_str("(×: the time over the baseline's, measured side by side in the same runs)\n");
    s
}
