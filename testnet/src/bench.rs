//! `hashmesh bench cluster`: committed transactions per second on a loopback cluster, for
//! hashmesh and for CometBFT's built-in `kvstore` app, with the same load generator and the
//! same transaction size, in one run; plus broadcast-to-commit latency percentiles.
//!
//! Load: `concurrency` workers, each bound to one node (and, for hashmesh, to that node's pool
//! key) calling `broadcast_tx_sync`, closed loop (saturation) or paced to a total `rate`. Throughput counts transactions in blocks
//! committed while the load ran, over the span of those blocks' header times. Latency is the
//! time from the broadcast call until node 0's RPC shows the block holding the transaction.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use hashmesh_protocol::{Body, RouteTarget, SigningKey, UnsignedTx};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::{generate, procs, Cluster, ClusterSpec};
use hashmesh_node::home::Home;
use hashmesh_node::output::table;
use hashmesh_node::rpc::Rpc;

/// Benchmark settings.
#[derive(Debug, Clone)]
pub struct BenchSpec {
    /// The cometbft binary.
    pub cometbft: PathBuf,
    /// The hashmesh binary.
    pub hashmesh: PathBuf,
    /// Validators per cluster.
    pub validators: usize,
    /// Seconds of load per application.
    pub duration: Duration,
    /// Concurrent workers.
    pub concurrency: usize,
    /// Offered load in transactions per second over all workers (open loop); `None` for closed
    /// loop (each worker sends as soon as its previous broadcast returns).
    pub rate: Option<f64>,
    /// Where the clusters are generated (a fresh directory each).
    pub work_dir: PathBuf,
}

/// One application's result.
#[derive(Debug, Clone, Serialize)]
pub struct AppResult {
    /// `hashmesh` or `kvstore`.
    pub app: String,
    /// Bytes per transaction.
    pub tx_bytes: usize,
    /// Broadcasts admitted by `CheckTx`.
    pub admitted: u64,
    /// Broadcasts refused (by `CheckTx` or the RPC, e.g. a full mempool).
    pub refused: u64,
    /// Transactions in blocks committed during the load.
    pub committed: u64,
    /// Seconds spanned by those blocks.
    pub span_secs: f64,
    /// Committed transactions per second.
    pub tps: f64,
    /// Broadcast-to-commit latency, median, ms.
    pub latency_ms_p50: f64,
    /// Broadcast-to-commit latency, 99th percentile, ms.
    pub latency_ms_p99: f64,
    /// Mean block interval during the load, ms.
    pub block_interval_ms: f64,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// Per application.
    pub results: Vec<AppResult>,
    /// hashmesh tps / kvstore tps.
    pub ratio: f64,
}

type TxSource = Box<dyn FnMut() -> Vec<u8> + Send>;

/// Run both clusters one after the other and report.
///
/// # Errors
/// If a cluster cannot be generated or started.
pub fn run(spec: &BenchSpec) -> Result<BenchReport> {
    std::fs::create_dir_all(&spec.work_dir)?;
    let hm = run_app(spec, false)?;
    let kv = run_app(spec, true)?;
    let ratio = if kv.tps > 0.0 { hm.tps / kv.tps } else { 0.0 };
    Ok(BenchReport { results: vec![hm, kv], ratio })
}

fn sample_route_tx(key: &SigningKey, chain: &str, pool: &str, nonce: u64) -> Vec<u8> {
    let body = Body::Route {
        group: format!("{pool}/g-1").parse().expect("valid id"),
        targets: vec![
            RouteTarget { endpoint: format!("{pool}/ep-1").parse().expect("valid id"), weight_bp: 5000 },
            RouteTarget { endpoint: format!("{pool}/ep-2").parse().expect("valid id"), weight_bp: 5000 },
        ],
    };
    key.sign(UnsignedTx { chain_id: chain.into(), signer: key.pool_id(), nonce, body }).1
}

fn run_app(spec: &BenchSpec, kvstore: bool) -> Result<AppResult> {
    let name = if kvstore { "kvstore" } else { "hashmesh" };
    let dir = spec.work_dir.join(name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    eprintln!("bench: generating a {}-validator {name} cluster", spec.validators);
    let mut cluster = generate(&ClusterSpec {
        dir: dir.clone(),
        validators: spec.validators,
        chain_id: format!("bench-{name}"),
        base_port: None,
        cometbft: spec.cometbft.clone(),
        hashmesh: spec.hashmesh.clone(),
        node_args: vec!["node".into()],
        timeout_commit: "250ms".into(),
        vote_window_blocks: 100,
        kvstore,
        scheduler: None,
        agents_per_node: 0,
        stratum: None,
        simulated: None,
    })?;
    let mut children = Vec::new();
    for i in 0..cluster.nodes.len() {
        children.extend(procs::start_node(&mut cluster, i, false)?);
    }
    let result = (|| {
        let all: Vec<usize> = (0..cluster.nodes.len()).collect();
        procs::wait_for_height(&cluster, &all, 2, Duration::from_secs(90))?;
        load(spec, &cluster, kvstore)
    })();
    for mut c in children {
        let _ = c.kill();
        let _ = c.wait();
    }
    result
}

fn sources(cluster: &Cluster, kvstore: bool, tx_bytes: usize) -> Result<Vec<TxSource>> {
    let counter = Arc::new(AtomicU64::new(1));
    cluster
        .nodes
        .iter()
        .map(|n| -> Result<TxSource> {
            if kvstore {
                let c = Arc::clone(&counter);
                let node = n.name.clone();
                Ok(Box::new(move || {
                    let k = format!("{node}-{}=", c.fetch_add(1, Ordering::Relaxed));
                    let mut tx = k.into_bytes();
                    tx.resize(tx_bytes, b'v');
                    tx
                }))
            } else {
                let key = Home::load(&n.hashmesh_home)?.signing_key()?;
                let (chain, pool) = (cluster.chain_id.clone(), n.name.clone());
                let nonce = Arc::new(AtomicU64::new(1));
                Ok(Box::new(move || sample_route_tx(&key, &chain, &pool, nonce.fetch_add(1, Ordering::Relaxed))))
            }
        })
        .collect()
}

fn load(spec: &BenchSpec, cluster: &Cluster, kvstore: bool) -> Result<AppResult> {
    let probe = SigningKey::from_seed(&[1; 32]);
    let tx_bytes = sample_route_tx(&probe, &format!("bench-{}", "hashmesh"), "pool-a", u64::MAX).len();
    let name = if kvstore { "kvstore" } else { "hashmesh" };
    let sent: Arc<Mutex<HashMap<[u8; 32], Instant>>> = Arc::default();
    let latencies: Arc<Mutex<Vec<f64>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let (admitted, refused) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let rpc0 = Rpc::new(&cluster.nodes[0].rpc);
    let h_start = rpc0.status()?.1;

    // Watcher: every new block on node 0, match its transactions to broadcast times.
    let watcher = {
        let (sent, latencies, stop, rpc0) =
            (Arc::clone(&sent), Arc::clone(&latencies), Arc::clone(&stop), rpc0.clone());
        std::thread::spawn(move || {
            let mut next = h_start + 1;
            while !stop.load(Ordering::Relaxed) {
                let Ok(block) = rpc0.block(next) else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                let seen = Instant::now();
                let mut s = sent.lock().expect("lock");
                let mut l = latencies.lock().expect("lock");
                for bytes in block.txs {
                    let h: [u8; 32] = Sha256::digest(&bytes).into();
                    if let Some(t0) = s.remove(&h) {
                        l.push(seen.duration_since(t0).as_secs_f64() * 1000.0);
                    }
                }
                next += 1;
            }
        })
    };

    match spec.rate {
        Some(r) => eprintln!("bench: {name}: {} workers offering {r} tx/s for {:?}", spec.concurrency, spec.duration),
        None => eprintln!("bench: {name}: {} closed-loop workers for {:?}", spec.concurrency, spec.duration),
    }
    let deadline = Instant::now() + spec.duration;
    let per_node = spec.concurrency.div_ceil(cluster.nodes.len()).max(1);
    let mut workers = Vec::new();
    for (node, src) in sources(cluster, kvstore, tx_bytes)?.into_iter().enumerate() {
        // Workers of one node share its source, so a pool's nonces arrive nearly in order.
        let src = Arc::new(Mutex::new(src));
        for _ in 0..per_node {
            let (src, sent, admitted, refused) =
                (Arc::clone(&src), Arc::clone(&sent), Arc::clone(&admitted), Arc::clone(&refused));
            let rpc = Rpc::new(&cluster.nodes[node].rpc);
            let gap = spec.rate.map(|r| Duration::from_secs_f64(spec.concurrency as f64 / r));
            workers.push(std::thread::spawn(move || {
                let mut next_send = Instant::now();
                while Instant::now() < deadline {
                    if let Some(gap) = gap {
                        // Open loop: keep the schedule even if a broadcast was slow.
                        let now = Instant::now();
                        if next_send > now {
                            std::thread::sleep(next_send - now);
                        }
                        next_send += gap;
                    }
                    let tx = (src.lock().expect("lock"))();
                    let h: [u8; 32] = Sha256::digest(&tx).into();
                    sent.lock().expect("lock").insert(h, Instant::now());
                    match rpc.broadcast_sync(&tx) {
                        Ok(b) if b.code == 0 => admitted.fetch_add(1, Ordering::Relaxed),
                        _ => {
                            sent.lock().expect("lock").remove(&h);
                            refused.fetch_add(1, Ordering::Relaxed)
                        }
                    };
                }
            }));
        }
    }
    for w in workers {
        let _ = w.join();
    }
    let h_end = rpc0.status()?.1;
    // Let the watcher see the last blocks of the load window.
    let settle = Instant::now() + Duration::from_secs(3);
    while Instant::now() < settle {
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::Relaxed);
    let _ = watcher.join();

    let (committed, span_secs, blocks) = committed_between(&rpc0, h_start, h_end)?;
    let mut lat = latencies.lock().expect("lock").clone();
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        if lat.is_empty() {
            0.0
        } else {
            lat[((lat.len() - 1) as f64 * p).round() as usize]
        }
    };
    Ok(AppResult {
        app: name.into(),
        tx_bytes,
        admitted: admitted.load(Ordering::Relaxed),
        refused: refused.load(Ordering::Relaxed),
        committed,
        span_secs,
        tps: if span_secs > 0.0 { committed as f64 / span_secs } else { 0.0 },
        latency_ms_p50: pct(0.50),
        latency_ms_p99: pct(0.99),
        block_interval_ms: if blocks > 0 { span_secs * 1000.0 / blocks as f64 } else { 0.0 },
    })
}

/// Transactions in blocks `(from, to]` and the header-time span they cover.
fn committed_between(rpc: &Rpc, from: u64, to: u64) -> Result<(u64, f64, u64)> {
    let mut total = 0;
    let mut times = Vec::new();
    for h in from..=to {
        let block = rpc.block(h)?;
        times.push(block.time_secs);
        if h > from {
            total += block.txs.len() as u64;
        }
    }
    let span = times.last().copied().unwrap_or(0.0) - times.first().copied().unwrap_or(0.0);
    Ok((total, span, to.saturating_sub(from)))
}

/// The report as a table.
#[must_use]
pub fn render(r: &BenchReport) -> String {
    let rows: Vec<Vec<String>> = r
        .results
        .iter()
        .map(|a| {
            vec![
                a.app.clone(),
                a.tx_bytes.to_string(),
                a.admitted.to_string(),
                a.refused.to_string(),
                a.committed.to_string(),
                format!("{:.1}", a.tps),
                format!("{:.0}", a.latency_ms_p50),
                format!("{:.0}", a.latency_ms_p99),
                format!("{:.0}", a.block_interval_ms),
            ]
        })
        .collect();
    let mut s =
        table(&["APP", "TX BYTES", "ADMITTED", "REFUSED", "COMMITTED", "TX/S", "P50 MS", "P99 MS", "BLOCK MS"], &rows);
    s.push_str(&format!("hashmesh / kvstore committed tx/s = {:.2} (target >= 0.90)\n", r.ratio));
    s
}
