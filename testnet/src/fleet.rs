//! A fleet of virtual Stratum V1 miners in one process: each a task around
//! `hashmesh_stratum::client::MinerClient`, doing real SHA-256d work at a configured hashrate
//! (with version rolling), reconnecting when asked or cut off. The fleet counts every answer,
//! so "no share is silently dropped" is checked from the miners' side: a share sent on a
//! connection that closed before answering it is counted as lost.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use hashmesh_agent::proxy::driver::read_lines;
use hashmesh_stratum::client::{ClientConfig, ClientEvent, MinerClient};
use hashmesh_stratum::codec::LineCodec;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// How the fleet mines.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetSettings {
    /// Where the miners connect (an agent's Stratum port, or an endpoint directly).
    pub target: SocketAddr,
    /// How many miners.
    pub miners: usize,
    /// Hashes per second, per miner.
    pub hashrate_hs: f64,
    /// Worker names are `<prefix><n>` (e.g. `pool-a/g-1.rig` → `pool-a/g-1.rig7`).
    pub worker_prefix: String,
    /// Whether miners roll version bits (BIP310).
    pub version_rolling: bool,
    /// Whether miners send `mining.extranonce.subscribe`.
    pub extranonce_subscribe: bool,
    /// How often each miner hashes its budget, ms.
    pub tick_ms: u64,
}

/// Totals over the fleet.
#[derive(Debug)]
pub struct FleetStats {
    /// When the fleet started: the clock of `latency_us` and `last_job_us`.
    pub started: Instant,
    /// Submit → answer, µs.
    pub latency_us: Mutex<Histogram<u64>>,
    /// Per miner, when its last job arrived (µs since `started`; 0: none yet).
    pub last_job_us: Mutex<Vec<u64>>,
    /// Set by [`FleetStats::stop`]: every miner disconnects and ends.
    stopped: AtomicBool,
    /// Miners connected now.
    pub connected: AtomicU64,
    /// Shares submitted.
    pub submitted: AtomicU64,
    /// Answered accepted.
    pub accepted: AtomicU64,
    /// Answered with an error (not stale).
    pub rejected: AtomicU64,
    /// Answered stale (code 21).
    pub stale: AtomicU64,
    /// Answers to nothing, or second answers.
    pub unexpected: AtomicU64,
    /// Submitted on a connection that closed before answering.
    pub lost: AtomicU64,
    /// Connections made after the first.
    pub reconnects: AtomicU64,
    /// Hashes tried.
    pub hashes: AtomicU64,
}

/// A snapshot of [`FleetStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetTotals {
    /// Miners connected now.
    pub connected: u64,
    /// Shares submitted.
    pub submitted: u64,
    /// Answered accepted.
    pub accepted: u64,
    /// Answered with an error (not stale).
    pub rejected: u64,
    /// Answered stale (code 21).
    pub stale: u64,
    /// Answers to nothing, or second answers.
    pub unexpected: u64,
    /// Submitted on a connection that closed before answering.
    pub lost: u64,
    /// Connections made after the first.
    pub reconnects: u64,
    /// Hashes tried.
    pub hashes: u64,
    /// Submit → answer, median, µs.
    pub latency_p50_us: u64,
    /// Submit → answer, 99th percentile, µs.
    pub latency_p99_us: u64,
}

impl FleetStats {
    fn new(miners: usize) -> Self {
        Self {
            started: Instant::now(),
            latency_us: Mutex::new(Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds")),
            last_job_us: Mutex::new(vec![0; miners]),
            stopped: AtomicBool::new(false),
            connected: AtomicU64::default(),
            submitted: AtomicU64::default(),
            accepted: AtomicU64::default(),
            rejected: AtomicU64::default(),
            stale: AtomicU64::default(),
            unexpected: AtomicU64::default(),
            lost: AtomicU64::default(),
            reconnects: AtomicU64::default(),
            hashes: AtomicU64::default(),
        }
    }

    /// Stop the fleet: each miner disconnects at its next tick and does not come back.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Relaxed);
    }

    /// µs since the fleet started.
    #[must_use]
    pub fn now_us(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// The totals now.
    #[must_use]
    pub fn totals(&self) -> FleetTotals {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let (latency_p50_us, latency_p99_us) = {
            let h = self.latency_us.lock().expect("histogram lock");
            (h.value_at_quantile(0.5), h.value_at_quantile(0.99))
        };
        FleetTotals {
            connected: l(&self.connected),
            submitted: l(&self.submitted),
            accepted: l(&self.accepted),
            rejected: l(&self.rejected),
            stale: l(&self.stale),
            unexpected: l(&self.unexpected),
            lost: l(&self.lost),
            reconnects: l(&self.reconnects),
            hashes: l(&self.hashes),
            latency_p50_us,
            latency_p99_us,
        }
    }
}

/// Start the fleet on the current runtime; its tasks run until the runtime stops.
#[must_use]
pub fn start(s: &FleetSettings) -> Arc<FleetStats> {
    let stats = Arc::new(FleetStats::new(s.miners));
    for n in 0..s.miners {
        let cfg = ClientConfig {
            worker: format!("{}{n}", s.worker_prefix),
            version_mask: if s.version_rolling { 0x1fff_e000 } else { 0 },
            extranonce_subscribe: s.extranonce_subscribe,
            user_agent: "hashmesh-fleet/1".into(),
        };
        tokio::spawn(miner(s.target, cfg, s.hashrate_hs, s.tick_ms.max(10), stats.clone(), n));
    }
    stats
}

async fn miner(target: SocketAddr, cfg: ClientConfig, rate: f64, tick_ms: u64, stats: Arc<FleetStats>, n: usize) {
    // Spread the miners' ticks so they do not all hash at once.
    let offset = (n as u64 * 7919) % tick_ms;
    tokio::time::sleep(Duration::from_millis(offset)).await;
    let mut first = true;
    while !stats.stopped.load(Ordering::Relaxed) {
        if let Ok(stream) = TcpStream::connect(target).await {
            if !first {
                stats.reconnects.fetch_add(1, Ordering::Relaxed);
            }
            first = false;
            let _ = stream.set_nodelay(true);
            stats.connected.fetch_add(1, Ordering::Relaxed);
            session(stream, MinerClient::new(cfg.clone()), rate, tick_ms, &stats, n).await;
            stats.connected.fetch_sub(1, Ordering::Relaxed);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn session(mut stream: TcpStream, mut c: MinerClient, rate: f64, tick_ms: u64, stats: &FleetStats, n: usize) {
    let mut codec = LineCodec::new();
    let mut buf = vec![0u8; 4096];
    let mut tick = tokio::time::interval(Duration::from_millis(tick_ms));
    let mut carry = 0.0f64;
    let mut seen = c.counts();
    loop {
        let mut out = Vec::new();
        while let Some(l) = c.poll_transmit() {
            out.extend_from_slice(l.as_bytes());
        }
        if !out.is_empty() && stream.write_all(&out).await.is_err() {
            break;
        }
        let mut lat = Vec::new();
        while let Some(l) = c.poll_latency() {
            lat.push(l);
        }
        if !lat.is_empty() {
            let mut h = stats.latency_us.lock().expect("histogram lock");
            for l in lat {
                h.saturating_record(l.max(1));
            }
        }
        if c.last_job_at() > 0 {
            stats.last_job_us.lock().expect("jobs lock")[n] = c.last_job_at();
        }
        let now = c.counts();
        stats.submitted.fetch_add(now.submitted - seen.submitted, Ordering::Relaxed);
        stats.accepted.fetch_add(now.accepted - seen.accepted, Ordering::Relaxed);
        stats.rejected.fetch_add(now.rejected - seen.rejected, Ordering::Relaxed);
        stats.stale.fetch_add(now.stale - seen.stale, Ordering::Relaxed);
        stats.unexpected.fetch_add(now.unexpected - seen.unexpected, Ordering::Relaxed);
        seen = now;
        if let Some(ClientEvent::Reconnect | ClientEvent::Unauthorized(_)) = c.poll_event() {
            break;
        }
        tokio::select! {
            (lines, end) = read_lines(&mut stream, &mut codec, &mut buf) => {
                c.set_time(stats.now_us());
                for line in lines {
                    c.handle_line(&line);
                }
                if end.is_some() {
                    break;
                }
            }
            _ = tick.tick() => {
                if stats.stopped.load(Ordering::Relaxed) {
                    break;
                }
                carry += rate * tick_ms as f64 / 1000.0;
                let budget = carry.floor();
                carry -= budget;
                c.set_time(stats.now_us());
                let tried = c.work(budget as u64);
                stats.hashes.fetch_add(tried, Ordering::Relaxed);
            }
        }
    }
    stats.lost.fetch_add(c.disconnected() as u64, Ordering::Relaxed);
}
