//! A testnet pool endpoint: a real Stratum V1 server (jobs on a synthetic chain, SHA-256d share
//! validation at a low difficulty, per-worker books) with an HTTP side — `GET /status` (JSON),
//! `GET /metrics` (Prometheus, with the host's CPU and memory in node_exporter's names), `POST /chaos` (added latency, error rate, refuse work, down) —
//! which `testnet/chaos` drives. The protocol logic is `hashmesh_stratum::endpoint`; this file
//! only moves bytes and timers.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use hashmesh_agent::proxy::driver::read_lines;
use hashmesh_plane::host::clock::now_ms;
use hashmesh_plane::host::http::{self, reply};
use hashmesh_stratum::codec::LineCodec;
use hashmesh_stratum::endpoint::{Books, Chaos, EndpointConn, JobChain};
use hashmesh_stratum::message::Notify;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Method, Response, StatusCode};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// How an endpoint runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndpointSettings {
    /// Its id (`pool-a/ep-1`), also written into its coinbases.
    pub name: String,
    /// Stratum address.
    pub stratum: SocketAddr,
    /// HTTP address (status, metrics, chaos).
    pub http: SocketAddr,
    /// Share difficulty.
    pub difficulty: f64,
    /// A new job every this many ms.
    pub job_ms: u64,
    /// Every this many jobs is a new block (clean jobs).
    pub jobs_per_block: u32,
}

/// The endpoint's status (`GET /status`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EndpointStatus {
    /// Its id.
    pub endpoint: String,
    /// Open Stratum connections.
    pub connections: usize,
    /// Share difficulty.
    pub difficulty: f64,
    /// Current chaos.
    pub chaos: Chaos,
    /// Accepted hashrate over the last 10 s, H/s (accepted difficulty × 2³² per second).
    pub hashrate_hs: f64,
    /// Books per worker since start.
    pub workers: Books,
}

struct Shared {
    settings: EndpointSettings,
    chaos: Mutex<Chaos>,
    books: Mutex<Books>,
    /// (ms, total accepted difficulty) once a second, the last 10 s.
    samples: Mutex<VecDeque<(u64, f64)>>,
    connections: AtomicUsize,
    next_index: AtomicU32,
    job: watch::Sender<Option<Notify>>,
    down: watch::Sender<bool>,
}

/// A running endpoint.
#[derive(Clone)]
pub struct Endpoint {
    shared: Arc<Shared>,
    /// Where miners connect.
    pub stratum: SocketAddr,
    /// Where `/status`, `/metrics` and `/chaos` are served.
    pub http: SocketAddr,
}

impl Endpoint {
    /// Bind both addresses and serve on the current tokio runtime.
    ///
    /// # Errors
    /// If an address cannot be bound.
    pub async fn start(settings: EndpointSettings) -> Result<Self> {
        let stratum = TcpListener::bind(settings.stratum)
            .await
            .with_context(|| format!("endpoint {}: binding Stratum on {}", settings.name, settings.stratum))?;
        let http = TcpListener::bind(settings.http)
            .await
            .with_context(|| format!("endpoint {}: binding HTTP on {}", settings.name, settings.http))?;
        let (job, _) = watch::channel(None);
        let (down, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            settings,
            chaos: Mutex::new(Chaos::default()),
            books: Mutex::new(Books::new()),
            samples: Mutex::new(VecDeque::new()),
            connections: AtomicUsize::new(0),
            next_index: AtomicU32::new(1),
            job,
            down,
        });
        let e = Self { stratum: stratum.local_addr()?, http: http.local_addr()?, shared: shared.clone() };
        tokio::spawn(jobs(shared.clone()));
        tokio::spawn(accept(stratum, shared.clone()));
        tokio::spawn(serve_http(http, shared));
        Ok(e)
    }

    /// Set the chaos (down closes every connection now).
    pub fn set_chaos(&self, chaos: Chaos) {
        set_chaos(&self.shared, chaos);
    }

    /// The status now.
    #[must_use]
    pub fn status(&self) -> EndpointStatus {
        status(&self.shared)
    }
}

fn set_chaos(s: &Shared, chaos: Chaos) {
    *s.chaos.lock().expect("chaos lock") = chaos;
    s.down.send_replace(chaos.down);
}

fn status(s: &Shared) -> EndpointStatus {
    let workers = s.books.lock().expect("books lock").clone();
    let samples = s.samples.lock().expect("samples lock");
    let hashrate_hs = match (samples.front(), samples.back()) {
        (Some(a), Some(b)) if b.0 > a.0 => {
            (b.1 - a.1) * hashmesh_telemetry::HASHES_PER_DIFFICULTY / ((b.0 - a.0) as f64 / 1000.0)
        }
        _ => 0.0,
    };
    EndpointStatus {
        endpoint: s.settings.name.clone(),
        connections: s.connections.load(Ordering::Relaxed),
        difficulty: s.settings.difficulty,
        chaos: *s.chaos.lock().expect("chaos lock"),
        hashrate_hs,
        workers,
    }
}

async fn jobs(s: Arc<Shared>) {
    let mut chain = JobChain::new(&s.settings.name);
    let mut n: u32 = 0;
    let mut tick = tokio::time::interval(Duration::from_millis(s.settings.job_ms.max(10)));
    let mut sample = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let block = n % s.settings.jobs_per_block.max(1) == 0;
                n = n.wrapping_add(1);
                let secs = u32::try_from(now_ms() / 1000).unwrap_or(u32::MAX);
                s.job.send_replace(Some(chain.next(secs, block)));
            }
            _ = sample.tick() => {
                let total: f64 = s.books.lock().expect("books lock").values().map(|b| b.accepted_difficulty).sum();
                let mut q = s.samples.lock().expect("samples lock");
                q.push_back((now_ms(), total));
                while q.len() > 11 {
                    q.pop_front();
                }
            }
        }
    }
}

async fn accept(l: TcpListener, s: Arc<Shared>) {
    loop {
        let Ok((stream, _)) = l.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        if *s.down.borrow() {
            drop(stream); // down: refuse by closing at once
            continue;
        }
        let _ = stream.set_nodelay(true);
        tokio::spawn(conn(stream, s.clone()));
    }
}

async fn conn(mut stream: TcpStream, s: Arc<Shared>) {
    s.connections.fetch_add(1, Ordering::Relaxed);
    let index = s.next_index.fetch_add(1, Ordering::Relaxed);
    let mut jobs = s.job.subscribe();
    let mut down = s.down.subscribe();
    let mut c = EndpointConn::new(index, s.settings.difficulty, jobs.borrow_and_update().clone());
    let mut codec = LineCodec::new();
    let mut buf = vec![0u8; 4096];
    'conn: loop {
        let mut out = Vec::new();
        while let Some(l) = c.poll_transmit() {
            out.extend_from_slice(l.as_bytes());
        }
        if !out.is_empty() {
            let latency = s.chaos.lock().expect("chaos lock").latency_ms;
            if latency > 0 {
                tokio::time::sleep(Duration::from_millis(latency)).await;
            }
            if stream.write_all(&out).await.is_err() {
                break;
            }
        }
        tokio::select! {
            (lines, end) = read_lines(&mut stream, &mut codec, &mut buf) => {
                for line in lines {
                    let chaos = *s.chaos.lock().expect("chaos lock");
                    let open = c.handle_line(&line, &chaos, &mut s.books.lock().expect("books lock"));
                    if !open {
                        break 'conn;
                    }
                }
                if end.is_some() {
                    break;
                }
            }
            r = jobs.changed() => {
                if r.is_err() { break; }
                let job = jobs.borrow_and_update().clone();
                if let Some(j) = job {
                    if !s.chaos.lock().expect("chaos lock").refuse {
                        c.handle_job(j);
                    }
                }
            }
            r = down.changed() => {
                if r.is_err() || *down.borrow_and_update() { break; }
            }
        }
    }
    s.connections.fetch_sub(1, Ordering::Relaxed);
}

/// The host's CPU and memory counters in node_exporter's names (`node_cpu_seconds_total` by cpu
/// and mode, `node_memory_{MemTotal,MemAvailable}_bytes`), read from `/proc`: what a pool's node
/// scrapes for its endpoints' CPU and memory (`[scheduler.host_metrics]`). Nothing on a host
/// without `/proc`.
fn host_metrics(r: &mut Registry) {
    type F = Gauge<f64, std::sync::atomic::AtomicU64>;
    if let Ok(stat) = std::fs::read_to_string("/proc/stat") {
        let cpu: Family<Vec<(String, String)>, Counter<f64, std::sync::atomic::AtomicU64>> = Family::default();
        const MODES: [&str; 8] = ["user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"];
        for line in stat.lines().filter(|l| l.starts_with("cpu") && !l.starts_with("cpu ")) {
            let mut f = line.split_whitespace();
            let name = f.next().unwrap_or_default().trim_start_matches("cpu").to_owned();
            // USER_HZ ticks (100 a second on Linux) → seconds.
            for (mode, ticks) in MODES.iter().zip(f) {
                let secs = ticks.parse::<f64>().unwrap_or(0.0) / 100.0;
                cpu.get_or_create(&vec![("cpu".into(), name.clone()), ("mode".into(), (*mode).into())]).inc_by(secs);
            }
        }
        r.register("node_cpu_seconds", "Seconds the CPUs spent in each mode (from /proc/stat)", cpu);
    }
    if let Ok(info) = std::fs::read_to_string("/proc/meminfo") {
        let kb = |key: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        };
        if let (Some(total), Some(avail)) = (kb("MemTotal:"), kb("MemAvailable:")) {
            let (t, a) = (F::default(), F::default());
            t.set(total * 1024.0);
            a.set(avail * 1024.0);
            r.register("node_memory_MemTotal_bytes", "Memory installed (from /proc/meminfo)", t);
            r.register("node_memory_MemAvailable_bytes", "Memory available (from /proc/meminfo)", a);
        }
    }
}

fn metrics_text(s: &Shared) -> String {
    let st = status(s);
    let mut root = Registry::default();
    host_metrics(&mut root);
    let r = root.sub_registry_with_prefix("hashmesh_endpoint");
    let shares: Family<Vec<(String, String)>, Counter> = Family::default();
    let difficulty: Family<Vec<(String, String)>, Counter<f64>> = Family::default();
    for (w, b) in &st.workers {
        for (kind, n) in [("accepted", b.accepted), ("rejected", b.rejected), ("stale", b.stale)] {
            shares.get_or_create(&vec![("worker".into(), w.clone()), ("result".into(), kind.into())]).inc_by(n);
        }
        difficulty.get_or_create(&vec![("worker".into(), w.clone())]).inc_by(b.accepted_difficulty);
    }
    r.register("shares", "Shares answered, by worker and result", shares);
    r.register("accepted_difficulty", "Sum of accepted share difficulty, by worker", difficulty);
    let conns: Gauge = Gauge::default();
    conns.set(i64::try_from(st.connections).unwrap_or(i64::MAX));
    r.register("connections", "Open Stratum connections", conns);
    let rate: Gauge<f64, std::sync::atomic::AtomicU64> = Gauge::default();
    rate.set(st.hashrate_hs);
    r.register("hashrate_hs", "Accepted hashrate over the last 10 s", rate);
    let mut text = String::new();
    encode(&mut text, &root).expect("encoding to a String");
    text
}

fn respond(method: &Method, path: &str, body: &[u8], s: &Shared) -> Response<Full<Bytes>> {
    match (method.clone(), path) {
        (Method::GET, "/status") => {
            reply(StatusCode::OK, "application/json", serde_json::to_string(&status(s)).unwrap_or_default())
        }
        (Method::GET, "/metrics") => reply(StatusCode::OK, http::OPENMETRICS, metrics_text(s)),
        (Method::POST, "/chaos") => match serde_json::from_slice::<Chaos>(body) {
            Ok(c) => {
                set_chaos(s, c);
                reply(StatusCode::OK, "application/json", serde_json::to_string(&c).unwrap_or_default())
            }
            Err(e) => reply(
                StatusCode::BAD_REQUEST,
                "text/plain",
                format!("expected {{\"latency_ms\":…,\"error_bp\":…,\"refuse\":…,\"down\":…}}: {e}\n"),
            ),
        },
        _ => reply(StatusCode::NOT_FOUND, "text/plain", "try GET /status, GET /metrics or POST /chaos\n".into()),
    }
}

async fn serve_http(l: TcpListener, s: Arc<Shared>) {
    http::serve(l, move |method, path, body| {
        let s = s.clone();
        async move { respond(&method, &path, &body, &s) }
    })
    .await;
}
