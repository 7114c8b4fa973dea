//! `hashmesh-testnet bench-audit`: `hashmesh audit verify` over a long history, beside the
//! baseline of only fetching the same blocks. A fresh cluster (no agents, no traffic, blocks as
//! fast as CometBFT makes them) runs until it has `blocks` blocks, with a route committed every
//! `blocks / 20` heights so the history holds transactions and results; then, in one run, the
//! same node is read twice: fetch-only (the three RPC calls per block the walk makes: `/block`,
//! `/commit`, `/block_results`) and the full verification from the genesis file (the same calls,
//! plus light-client checks of every header, `data_hash`, `last_results_hash`, and the state
//! proofs at the end).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use hashmesh_node::rpc::Rpc;
use hashmesh_node::tx_cmd::{self, TxOptions};
use hashmesh_node::verify::{self, Trust, VerifyOptions};
use serde::Serialize;

use crate::{generate, procs, ClusterSpec};

/// The measured figures.
#[derive(Debug, Clone, Serialize)]
pub struct AuditBench {
    /// Validators (each header's commit carries one signature per validator).
    pub validators: usize,
    /// Blocks walked.
    pub blocks: u64,
    /// Transactions in them.
    pub txs: u64,
    /// Fetch-only baseline, blocks/s (the mean of a read before and one after the walk).
    pub fetch_blocks_per_second: f64,
    /// `audit verify`'s walk, blocks/s.
    pub verify_blocks_per_second: f64,
    /// State keys proven at the end.
    pub keys_proved: u64,
    /// Mean proof size per answer, bytes.
    pub proof_bytes_mean: f64,
    /// The state proofs, ms (fetch and check).
    pub state_ms: u64,
}

/// Kill the cluster's processes (by the pids spawned) however the bench ends.
struct Procs(Vec<std::process::Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Build a `blocks`-block history on `validators` validators in `work_dir` (wiped first) and
/// measure.
///
/// # Errors
/// If the cluster does not start, or a verification fails (an honest node must verify).
pub fn run(cometbft: &Path, work_dir: &Path, validators: usize, blocks: u64) -> Result<AuditBench> {
    if blocks < 40 {
        bail!("--blocks must be at least 40");
    }
    if work_dir.exists() {
        std::fs::remove_dir_all(work_dir).with_context(|| format!("wiping {}", work_dir.display()))?;
    }
    let mut cluster = generate(&ClusterSpec {
        dir: work_dir.to_owned(),
        validators,
        chain_id: "hashmesh-bench-audit".into(),
        base_port: None,
        cometbft: cometbft.to_owned(),
        hashmesh: std::env::current_exe()?,
        node_args: vec!["node".into()],
        timeout_commit: "1ms".into(),
        vote_window_blocks: 100,
        kvstore: false,
        scheduler: None,
        agents_per_node: 0,
        stratum: None,
        simulated: None,
    })?;
    let mut procs = Procs(Vec::new());
    for i in 0..validators {
        procs.0.extend(procs::start_node(&mut cluster, i, false)?);
    }
    let all: Vec<usize> = (0..validators).collect();
    procs::wait_for_height(&cluster, &all, 2, Duration::from_secs(60))?;
    let node = cluster.nodes[0].clone();
    let rpc = Rpc::new(&node.rpc);
    let every = blocks / 20;
    let mut next_route = 2;
    let mut last_print = Instant::now();
    let mut flip = false;
    loop {
        let h = rpc.status()?.1;
        if h > blocks + 1 {
            break;
        }
        if h >= next_route && h + 2 < blocks {
            flip = !flip;
            let (a, b) = if flip { (6000, 4000) } else { (3000, 7000) };
            let body = hashmesh_protocol::Body::Route {
                group: node.groups[0].parse()?,
                targets: vec![
                    hashmesh_protocol::RouteTarget { endpoint: node.endpoints[0].parse()?, weight_bp: a },
                    hashmesh_protocol::RouteTarget { endpoint: node.endpoints[1].parse()?, weight_bp: b },
                ],
            };
            let opts = TxOptions {
                rpc: node.rpc.clone(),
                chain_id: None,
                nonce: None,
                dry_run: false,
                timeout: Duration::from_secs(30),
            };
            let (report, ok) = tx_cmd::sign_and_send(&node.hashmesh_home, body, &opts)?;
            if !ok {
                bail!("a route did not commit: {report}");
            }
            next_route = h + every;
        }
        if last_print.elapsed() > Duration::from_secs(10) {
            last_print = Instant::now();
            eprintln!("bench-audit: height {h} of {blocks}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    // Stop making blocks so that both reads have the machine to themselves: the other
    // validators stay down, so node 0 alone serves its history but cannot commit (with one
    // validator it keeps going; the walk stops at `blocks` either way).
    drop(procs);
    let _procs = Procs(procs::start_node(&mut cluster, 0, false)?);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !rpc.status().is_ok_and(|s| s.1 > blocks) {
        if Instant::now() > deadline {
            bail!("node 0 did not come back with its history");
        }
        std::thread::sleep(Duration::from_millis(200));
    }

    // Fetch-only before and after the verification (caches warm the second read): the
    // baseline is their mean.
    let fetch_only = || -> Result<(f64, u64)> {
        eprintln!("bench-audit: fetch-only over {blocks} blocks");
        let t = Instant::now();
        let mut txs = 0u64;
        for h in 1..=blocks {
            txs += rpc.raw_block(h)?.data.len() as u64;
            rpc.signed_header(h)?;
            rpc.committed_results(h)?;
        }
        Ok((t.elapsed().as_secs_f64(), txs))
    };
    let (before, txs) = fetch_only()?;
    eprintln!("bench-audit: audit verify over {blocks} blocks");
    let genesis = PathBuf::from(&node.home).join("config/genesis.json");
    let report = verify::run(
        &rpc,
        &Trust::Genesis(genesis),
        &VerifyOptions { to_height: Some(blocks - 1), no_state: false, progress: true },
    )?;
    if !report.ok() {
        bail!("an honest node failed verification: {:?}", report.failures);
    }
    let (after, _) = fetch_only()?;
    let fetch = (before + after) / 2.0;
    let st = report.state.clone().unwrap_or_default();
    Ok(AuditBench {
        validators,
        blocks,
        txs,
        fetch_blocks_per_second: blocks as f64 / fetch,
        verify_blocks_per_second: report.blocks_per_second,
        keys_proved: st.keys_proved,
        proof_bytes_mean: st.proof_bytes as f64 / st.keys_proved.max(1) as f64,
        state_ms: report.state_ms,
    })
}

/// The table.
#[must_use]
pub fn render(b: &AuditBench) -> String {
    format!(
        "audit verify over {} blocks ({} transactions), {} validator(s)\n\
         | row | blocks/s |\n|---|---|\n\
         | fetch only (/block, /commit, /block_results) | {:.0} |\n\
         | audit verify walk (same calls + light client, data_hash, last_results_hash) | {:.0} |\n\
         ratio verify / fetch-only: {:.2}\n\
         state proofs: {} keys, {:.0} bytes per proof on average, {} ms\n",
        b.blocks,
        b.txs,
        b.validators,
        b.fetch_blocks_per_second,
        b.verify_blocks_per_second,
        b.verify_blocks_per_second / b.fetch_blocks_per_second,
        b.keys_proved,
        b.proof_bytes_mean,
        b.state_ms
    )
}
