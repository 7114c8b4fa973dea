//! `hashmesh-testnet bench-telemetry`: the chain load of telemetry — one transaction per endpoint
//! (the old `ReportTelemetry`) against one batch per pool (`ReportTelemetryBatch`) — at several
//! pool counts, on one loopback cluster, in one run.
//!
//! The cluster's genesis holds the 4 validators' pools and `max(pools)` simulated pools with
//! `endpoints` endpoints each, whose keys this benchmark signs with. For each pool count and
//! each form it sends `epochs` epochs of reports — every endpoint of every pool once per epoch —
//! with the cluster bench's generator (broadcast_tx_sync from concurrent workers, one node
//! each), and measures what the chain committed: transactions and bytes per epoch (so per
//! second at the nominal epoch length), and how long the chain took to commit each epoch.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use hashmesh_node::output::table;
use hashmesh_node::rpc::Rpc;
use hashmesh_protocol::telemetry::TELEMETRY_ENTRIES_PER_TX_MAX;
use hashmesh_protocol::{Body, LatencyPercentiles, Measurement, TelemetryEntry, TelemetryReport, UnsignedTx};
use serde::Serialize;

use crate::layout::{simulated_key, simulated_name, Simulated};
use crate::{generate, procs, ClusterSpec};

/// Benchmark settings.
#[derive(Debug, Clone)]
pub struct TelemetryBenchSpec {
    /// The cometbft binary.
    pub cometbft: PathBuf,
    /// The binary that runs nodes.
    pub hashmesh: PathBuf,
    /// Pool counts to measure (each at most 128 − 4).
    pub pools: Vec<usize>,
    /// Endpoints per pool.
    pub endpoints: usize,
    /// Epochs sent per pool count and form.
    pub epochs: usize,
    /// The nominal epoch length the per-second figures are for, seconds.
    pub epoch_secs: f64,
    /// Concurrent senders.
    pub concurrency: usize,
    /// Where the cluster is generated.
    pub work_dir: PathBuf,
}

/// One pool count and form.
#[derive(Debug, Clone, Serialize)]
pub struct TelemetryRow {
    /// Simulated pools reporting.
    pub pools: usize,
    /// `single` (one transaction per endpoint) or `batch` (one per pool).
    pub form: String,
    /// Transactions committed per epoch.
    pub tx_per_epoch: f64,
    /// Bytes committed per epoch.
    pub bytes_per_epoch: f64,
    /// Transactions per second at the nominal epoch length.
    pub tx_per_sec: f64,
    /// Bytes per second at the nominal epoch length.
    pub bytes_per_sec: f64,
    /// How long the chain took to commit one epoch's reports, median over the epochs, ms.
    pub commit_ms: f64,
    /// Broadcasts refused (mempool full, or `CheckTx`).
    pub refused: u64,
}

/// Run the benchmark.
///
/// # Errors
/// If the cluster cannot be generated or started, or a node's RPC fails.
pub fn run(spec: &TelemetryBenchSpec) -> Result<Vec<TelemetryRow>> {
    let most = spec.pools.iter().copied().max().unwrap_or(0);
    if most == 0 || most + 4 > hashmesh_protocol::limits::POOLS_MAX {
        bail!("--pools must be between 1 and {}", hashmesh_protocol::limits::POOLS_MAX - 4);
    }
    if spec.endpoints == 0 || spec.endpoints > hashmesh_protocol::limits::ENDPOINTS_PER_POOL_MAX {
        bail!("--endpoints must be between 1 and {}", hashmesh_protocol::limits::ENDPOINTS_PER_POOL_MAX);
    }
    let dir = spec.work_dir.join("telemetry");
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    eprintln!("bench-telemetry: a 4-validator cluster with {most} simulated pools of {} endpoints", spec.endpoints);
    let mut cluster = generate(&ClusterSpec {
        dir,
        validators: 4,
        chain_id: "bench-telemetry".into(),
        base_port: None,
        cometbft: spec.cometbft.clone(),
        hashmesh: spec.hashmesh.clone(),
        node_args: vec!["node".into()],
        timeout_commit: "250ms".into(),
        vote_window_blocks: 100,
        kvstore: false,
        scheduler: None,
        agents_per_node: 0,
        stratum: None,
        simulated: Some(Simulated { pools: most, endpoints: spec.endpoints }),
    })?;
    let mut children = Vec::new();
    for i in 0..cluster.nodes.len() {
        children.extend(procs::start_node(&mut cluster, i, false)?);
    }
    let result = (|| {
        procs::wait_for_height(&cluster, &[0, 1, 2, 3], 2, Duration::from_secs(90))?;
        let rpcs: Vec<Rpc> = cluster.nodes.iter().map(|n| Rpc::new(&n.rpc)).collect();
        let keys: Vec<_> = (0..most).map(simulated_key).collect();
        let nonces: Vec<AtomicU64> = (0..most).map(|_| AtomicU64::new(1)).collect();
        let mut epoch = 1u64;
        let mut rows = Vec::new();
        for &pools in &spec.pools {
            for batch in [false, true] {
                let mut commit_ms = Vec::new();
                let (mut txs, mut bytes, mut refused) = (0u64, 0u64, 0u64);
                for _ in 0..spec.epochs {
                    let load: Vec<Vec<u8>> = (0..pools)
                        .flat_map(|p| reports(p, spec.endpoints, epoch, batch))
                        .map(|(p, body)| {
                            let nonce = nonces[p].fetch_add(1, Ordering::Relaxed);
                            let key = &keys[p];
                            key.sign(UnsignedTx {
                                chain_id: cluster.chain_id.clone(),
                                signer: key.pool_id(),
                                nonce,
                                body,
                            })
                            .1
                        })
                        .collect();
                    let m = send_epoch(&rpcs, load, spec.concurrency)?;
                    commit_ms.push(m.commit_ms);
                    txs += m.txs;
                    bytes += m.bytes;
                    refused += m.refused;
                    epoch += 1;
                }
                commit_ms.sort_by(f64::total_cmp);
                let n = spec.epochs.max(1) as f64;
                let row = TelemetryRow {
                    pools,
                    form: if batch { "batch" } else { "single" }.into(),
                    tx_per_epoch: txs as f64 / n,
                    bytes_per_epoch: bytes as f64 / n,
                    tx_per_sec: txs as f64 / n / spec.epoch_secs,
                    bytes_per_sec: bytes as f64 / n / spec.epoch_secs,
                    commit_ms: commit_ms.get(commit_ms.len() / 2).copied().unwrap_or(0.0),
                    refused,
                };
                eprintln!(
                    "bench-telemetry: {pools} pools, {}: {:.0} tx and {:.0} bytes an epoch, committed in {:.0} ms",
                    row.form, row.tx_per_epoch, row.bytes_per_epoch, row.commit_ms
                );
                rows.push(row);
            }
        }
        Ok(rows)
    })();
    for mut c in children {
        let _ = c.kill();
        let _ = c.wait();
    }
    result
}

/// One epoch of pool `p`'s reports: one body per endpoint, or its batches.
fn reports(p: usize, endpoints: usize, epoch: u64, batch: bool) -> Vec<(usize, Body)> {
    let name = simulated_name(p);
    let id = |e: usize| format!("{name}/ep-{e}").parse().expect("generated ids are valid");
    // Figures of the size agents measure: a few TH/s, thousands of shares, tens of ms.
    let salt = (p as u64 * 31 + epoch * 7) % 97;
    if batch {
        let entries: Vec<TelemetryEntry> = (1..=endpoints)
            .map(|e| TelemetryEntry {
                endpoint: id(e),
                measurement: Measurement {
                    hashrate_hs: 4_000_000_000_000 + salt * 1_000_000_000,
                    shares_accepted: 12_000 + salt,
                    shares_rejected: 12,
                    shares_stale: 30,
                    latency_ms: Some(LatencyPercentiles { p50: 40, p99: 120 }),
                    error_bp: Some(35),
                    cpu_bp: None,
                    memory_bp: None,
                    queue_len: 3,
                    miners: 400,
                },
            })
            .collect();
        let mut sorted = entries;
        sorted.sort_by(|a, b| a.endpoint.cmp(&b.endpoint));
        sorted
            .chunks(TELEMETRY_ENTRIES_PER_TX_MAX)
            .map(|c| (p, Body::ReportTelemetryBatch { epoch, entries: c.to_vec() }))
            .collect()
    } else {
        (1..=endpoints)
            .map(|e| {
                let report = TelemetryReport {
                    epoch,
                    hashrate_hs: 4_000_000_000_000 + salt * 1_000_000_000,
                    shares_accepted: 12_000 + salt,
                    shares_rejected: 12,
                    shares_stale: 30,
                    latency_ms_p50: 40,
                    latency_ms_p99: 120,
                    cpu_bp: 3000,
                    memory_bp: 4000,
                    error_bp: 35,
                    queue_len: 3,
                    miners: 400,
                };
                (p, Body::ReportTelemetry { endpoint: id(e), report })
            })
            .collect()
    }
}

struct EpochResult {
    txs: u64,
    bytes: u64,
    refused: u64,
    commit_ms: f64,
}

/// Broadcast `load` from `concurrency` workers over the nodes; wait until the chain committed
/// every admitted transaction; count what the blocks hold.
fn send_epoch(rpcs: &[Rpc], load: Vec<Vec<u8>>, concurrency: usize) -> Result<EpochResult> {
    let rpc0 = &rpcs[0];
    let h0 = rpc0.status()?.1;
    let queue = Arc::new(Mutex::new(load));
    let (admitted, refused) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency.max(1))
        .map(|i| {
            let (queue, admitted, refused) = (Arc::clone(&queue), Arc::clone(&admitted), Arc::clone(&refused));
            let rpc = rpcs[i % rpcs.len()].clone();
            std::thread::spawn(move || loop {
                let Some(tx) = queue.lock().expect("lock").pop() else { return };
                match rpc.broadcast_sync(&tx) {
                    Ok(b) if b.code == 0 => admitted.fetch_add(1, Ordering::Relaxed),
                    _ => refused.fetch_add(1, Ordering::Relaxed),
                };
            })
        })
        .collect();
    for w in workers {
        let _ = w.join();
    }
    let want = admitted.load(Ordering::Relaxed);
    let (mut txs, mut bytes, mut next) = (0u64, 0u64, h0 + 1);
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut last_commit = started;
    while txs < want {
        if Instant::now() > deadline {
            bail!("only {txs} of {want} admitted telemetry transactions committed within 120 s");
        }
        match rpc0.block(next) {
            Ok(b) => {
                if !b.txs.is_empty() {
                    last_commit = Instant::now();
                }
                txs += b.txs.len() as u64;
                bytes += b.txs.iter().map(|t| t.len() as u64).sum::<u64>();
                next += 1;
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    Ok(EpochResult {
        txs,
        bytes,
        refused: refused.load(Ordering::Relaxed),
        commit_ms: last_commit.duration_since(started).as_secs_f64() * 1000.0,
    })
}

/// The rows as a table, each batch row with its ratio to the single form beside it.
#[must_use]
pub fn render(rows: &[TelemetryRow], epoch_secs: f64) -> String {
    let single = |pools: usize| rows.iter().find(|r| r.pools == pools && r.form == "single");
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let base = single(r.pools).filter(|_| r.form == "batch");
            let ratio = |a: f64, b: Option<f64>| b.filter(|b| *b > 0.0).map_or("-".into(), |b| format!("{:.3}", a / b));
            vec![
                r.pools.to_string(),
                r.form.clone(),
                format!("{:.0}", r.tx_per_epoch),
                format!("{:.1}", r.tx_per_sec),
                format!("{:.1}", r.bytes_per_sec / 1024.0),
                format!("{:.0}", r.commit_ms),
                r.refused.to_string(),
                ratio(r.tx_per_sec, base.map(|b| b.tx_per_sec)),
                ratio(r.bytes_per_sec, base.map(|b| b.bytes_per_sec)),
            ]
        })
        .collect();
    let mut out = format!("telemetry chain load at a {epoch_secs} s epoch (single = one tx per endpoint, before; batch = one per pool, after)\n");
    out.push_str(&table(
        &["pools", "form", "tx/epoch", "tx/s", "KiB/s", "commit ms", "refused", "tx vs single", "bytes vs single"],
        &body,
    ));
    out
}
