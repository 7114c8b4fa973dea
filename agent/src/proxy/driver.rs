//! The proxy's tokio driver: listeners, one task per miner connection and per upstream
//! connection (each only moves bytes through the bounded line codec), and one actor task that
//! owns the sans-IO [`Proxy`] and carries out its outputs. Nothing here decides anything.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use hashmesh_plane::core::agent::AppliedRoute;
use hashmesh_plane::host::clock::now_ms;
use hashmesh_protocol::plane::WorkerCredential;
use hashmesh_protocol::{EndpointId, EndpointWindow, GroupId};
use hashmesh_stratum::codec::LineCodec;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

use super::config::StratumConfig;
use super::core::{ConnId, MinerId, Output, Proxy, ProxyConfig, ProxyStatus};

/// Events queued for the actor.
const EVENTS_QUEUED_MAX: usize = 65_536;
/// Lines queued for one connection's writer (a miner that does not read is closed).
const LINES_QUEUED_PER_CONNECTION_MAX: usize = 256;
/// A miner must finish a line it started within this by default, ms (a one-byte-a-minute
/// trickle is closed); `partial_line_ms` in `stratum.json`.
pub const PARTIAL_LINE_MS_DEFAULT: u64 = 30_000;
/// A miner silent this long is closed, ms.
pub const MINER_IDLE_MS_MAX: u64 = 600_000;
/// Connecting to an endpoint may take this long, ms.
const CONNECT_MS_MAX: u64 = 1_000;
/// How often measurements are cut into a report window for the node, and the status written, ms.
const REPORT_MS: u64 = 2_000;
/// The status file in the agent home.
pub const STATUS_FILE: &str = "proxy.json";

/// Read once from `stream` through `codec`: the complete lines, and why the stream is done
/// (closed, a read error, or bad input: an overlong or non-UTF-8 line) if it is. Lines before a
/// bad one are still returned. Cancel-safe in `select!`: nothing is awaited after the read.
///
/// # Errors
/// Never: the end of the stream is the second value.
pub async fn read_lines<R: tokio::io::AsyncRead + Unpin>(
    stream: &mut R,
    codec: &mut LineCodec,
    buf: &mut [u8],
) -> (Vec<String>, Option<String>) {
    let n = match stream.read(buf).await {
        Ok(0) => return (Vec::new(), Some("the peer closed the connection".into())),
        Ok(n) => n,
        Err(e) => return (Vec::new(), Some(format!("read error: {e}"))),
    };
    if let Err(e) = codec.push(&buf[..n]) {
        return (Vec::new(), Some(format!("bad input: {e}")));
    }
    let mut lines = Vec::new();
    while let Some(line) = codec.next_line() {
        match line {
            Ok(l) => lines.push(l),
            Err(e) => return (lines, Some(format!("bad input: {e}"))),
        }
    }
    (lines, None)
}

enum Ev {
    MinerConnected { group: Option<GroupId>, tx: mpsc::Sender<Cmd>, reply: oneshot::Sender<Option<MinerId>> },
    MinerLine(MinerId, String),
    MinerClosed(MinerId),
    UpConnected(ConnId),
    UpLine(ConnId, String),
    UpClosed(ConnId, String),
    Routes(BTreeMap<GroupId, AppliedRoute>),
    Fallback(Vec<WorkerCredential>),
    Status(oneshot::Sender<ProxyStatus>),
}

enum Cmd {
    Line(String),
    Close,
}

/// Report windows kept for the node while the plane is down (the oldest go first; the node
/// counts only the time its windows cover, so a lost window loses no accuracy, only data).
pub const WINDOWS_QUEUED_MAX: usize = 4096;

type Windows = Arc<Mutex<std::collections::VecDeque<EndpointWindow>>>;

/// A running proxy: give it the routing table; take its measurement windows; read its status.
#[derive(Clone)]
pub struct ProxyHandle {
    events: mpsc::Sender<Ev>,
    windows: Windows,
    /// The addresses miners connect to (the main listener first).
    pub listening: Vec<SocketAddr>,
    /// Where `/metrics` is served, if anywhere.
    pub metrics: Option<SocketAddr>,
}

impl std::fmt::Debug for ProxyHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyHandle").field("listening", &self.listening).finish_non_exhaustive()
    }
}

impl ProxyHandle {
    /// The committed routing table changed.
    pub async fn routes(&self, routes: BTreeMap<GroupId, AppliedRoute>) {
        let _ = self.events.send(Ev::Routes(routes)).await;
    }

    /// The offered endpoints to fall back to changed.
    pub async fn fallback(&self, list: Vec<WorkerCredential>) {
        let _ = self.events.send(Ev::Fallback(list)).await;
    }

    /// The measurement windows closed since the last call, oldest first (for the node).
    #[must_use]
    pub fn take_windows(&self) -> Vec<EndpointWindow> {
        self.windows.lock().expect("windows lock").drain(..).collect()
    }

    /// The status now (`None` if the proxy stopped).
    pub async fn status(&self) -> Option<ProxyStatus> {
        let (tx, rx) = oneshot::channel();
        self.events.send(Ev::Status(tx)).await.ok()?;
        rx.await.ok()
    }
}

/// Bind the listeners and start the proxy.
///
/// # Errors
/// If a listener cannot be bound.
pub async fn start(cfg: &StratumConfig, proxy: ProxyConfig, home: Option<PathBuf>) -> Result<ProxyHandle> {
    let (tx, rx) = mpsc::channel(EVENTS_QUEUED_MAX);
    let mut listening = Vec::new();
    let mut binds: Vec<(SocketAddr, Option<GroupId>)> = vec![(cfg.listen, None)];
    binds.extend(cfg.group_listeners.iter().map(|(a, g)| (*a, Some(g.clone()))));
    for (addr, group) in binds {
        let l = TcpListener::bind(addr).await.with_context(|| {
            format!("cannot listen for miners on {addr}; change \"listen\" in stratum.json or free the port")
        })?;
        let local = l.local_addr()?;
        info!(addr = %local, group = ?group.as_ref().map(GroupId::as_str), "listening for miners");
        listening.push(local);
        tokio::spawn(accept_loop(l, group, tx.clone(), cfg.partial_line_ms));
    }
    let mut metrics = None;
    if let Some(addr) = cfg.metrics_listen {
        let l = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot serve metrics on {addr}; change \"metrics_listen\" in stratum.json"))?;
        metrics = Some(l.local_addr()?);
        info!(addr = %l.local_addr()?, "serving /metrics");
        let events = tx.clone();
        let per_worker = cfg.worker_metrics;
        tokio::spawn(hashmesh_plane::host::http::serve(l, move |method, path, _body| {
            let events = events.clone();
            async move {
                use hashmesh_plane::host::http::{reply, OPENMETRICS};
                use hyper::{Method, StatusCode};
                if method != Method::GET || path != "/metrics" {
                    return reply(StatusCode::NOT_FOUND, "text/plain", "try GET /metrics\n".into());
                }
                let (reply_tx, answer) = oneshot::channel();
                if events.send(Ev::Status(reply_tx)).await.is_err() {
                    return reply(StatusCode::SERVICE_UNAVAILABLE, "text/plain", "the proxy stopped\n".into());
                }
                match answer.await {
                    Ok(s) => reply(StatusCode::OK, OPENMETRICS, super::metrics::render(&s, per_worker)),
                    Err(_) => reply(StatusCode::SERVICE_UNAVAILABLE, "text/plain", "the proxy stopped\n".into()),
                }
            }
        }));
    }
    let handle = ProxyHandle { events: tx.clone(), windows: Windows::default(), listening, metrics };
    let seed = now_ms();
    let actor = Actor {
        proxy: Proxy::new(proxy, seed),
        addresses: cfg.endpoints.clone(),
        miners: HashMap::new(),
        ups: HashMap::new(),
        events: tx,
        windows: handle.windows.clone(),
        home,
    };
    tokio::spawn(actor.run(rx));
    Ok(handle)
}

async fn accept_loop(l: TcpListener, group: Option<GroupId>, events: mpsc::Sender<Ev>, partial_line_ms: u64) {
    loop {
        match l.accept().await {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                tokio::spawn(miner_conn(stream, peer, group.clone(), events.clone(), partial_line_ms));
            }
            Err(e) => {
                // Out of file descriptors and the like: wait, do not spin.
                warn!(error = %e, "accepting a miner failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn miner_conn(
    mut stream: TcpStream,
    peer: SocketAddr,
    group: Option<GroupId>,
    events: mpsc::Sender<Ev>,
    partial_line_ms: u64,
) {
    let (tx, mut rx) = mpsc::channel(LINES_QUEUED_PER_CONNECTION_MAX);
    let (reply, answer) = oneshot::channel();
    if events.send(Ev::MinerConnected { group, tx, reply }).await.is_err() {
        return;
    }
    let Ok(Some(id)) = answer.await else {
        warn!(%peer, "refusing a miner: this agent serves its maximum number of miners");
        return;
    };
    let mut codec = LineCodec::new();
    let mut buf = vec![0u8; 4096];
    let mut last_line = tokio::time::Instant::now();
    let mut partial_since: Option<tokio::time::Instant> = None;
    let why = loop {
        let deadline = match partial_since {
            Some(t) => t + Duration::from_millis(partial_line_ms),
            None => last_line + Duration::from_millis(MINER_IDLE_MS_MAX),
        };
        tokio::select! {
            (lines, end) = read_lines(&mut stream, &mut codec, &mut buf) => {
                for l in lines {
                    last_line = tokio::time::Instant::now();
                    if events.send(Ev::MinerLine(id, l)).await.is_err() {
                        return;
                    }
                }
                if let Some(why) = end {
                    break why;
                }
                partial_since = if codec.pending() > 0 { partial_since.or_else(|| Some(tokio::time::Instant::now())) } else { None };
            }
            cmd = rx.recv() => match cmd {
                Some(Cmd::Line(l)) => match write_queued(&mut stream, l, &mut rx).await {
                    Ok(false) => {}
                    Ok(true) => {
                        let _ = stream.shutdown().await;
                        break "closed by the proxy".to_owned();
                    }
                    Err(e) => break format!("write error: {e}"),
                },
                Some(Cmd::Close) | None => {
                    // Write what is still queued, then close.
                    while let Ok(Cmd::Line(l)) = rx.try_recv() {
                        let _ = stream.write_all(l.as_bytes()).await;
                    }
                    let _ = stream.shutdown().await;
                    break "closed by the proxy".to_owned();
                }
            },
            () = tokio::time::sleep_until(deadline) => {
                break if partial_since.is_some() {
                    format!("a line took longer than {partial_line_ms} ms to arrive")
                } else {
                    format!("silent for {MINER_IDLE_MS_MAX} ms")
                };
            }
        }
    };
    info!(miner = id, %peer, reason = %why, "miner disconnected");
    let _ = events.send(Ev::MinerClosed(id)).await;
}

/// Write `first` and every line already queued behind it in one write; `true` if a close was
/// queued among them (the lines before it are written).
async fn write_queued(stream: &mut TcpStream, first: String, rx: &mut mpsc::Receiver<Cmd>) -> std::io::Result<bool> {
    let mut buf = first.into_bytes();
    let mut close = false;
    while buf.len() < 64 * 1024 {
        match rx.try_recv() {
            Ok(Cmd::Line(l)) => buf.extend_from_slice(l.as_bytes()),
            Ok(Cmd::Close) => {
                close = true;
                break;
            }
            Err(_) => break,
        }
    }
    stream.write_all(&buf).await?;
    Ok(close)
}

async fn upstream_conn(conn: ConnId, addr: SocketAddr, events: mpsc::Sender<Ev>, mut rx: mpsc::Receiver<Cmd>) {
    let connect = tokio::time::timeout(Duration::from_millis(CONNECT_MS_MAX), TcpStream::connect(addr)).await;
    let mut stream = match connect {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            let _ = events.send(Ev::UpClosed(conn, format!("cannot connect to {addr}: {e}"))).await;
            return;
        }
        Err(_) => {
            let _ =
                events.send(Ev::UpClosed(conn, format!("connecting to {addr} took over {CONNECT_MS_MAX} ms"))).await;
            return;
        }
    };
    let _ = stream.set_nodelay(true);
    if events.send(Ev::UpConnected(conn)).await.is_err() {
        return;
    }
    let mut codec = LineCodec::new();
    let mut buf = vec![0u8; 16 * 1024];
    let why = loop {
        tokio::select! {
            (lines, end) = read_lines(&mut stream, &mut codec, &mut buf) => {
                for l in lines {
                    if events.send(Ev::UpLine(conn, l)).await.is_err() {
                        return;
                    }
                }
                if let Some(why) = end {
                    break format!("endpoint: {why}");
                }
            }
            cmd = rx.recv() => match cmd {
                Some(Cmd::Line(l)) => match write_queued(&mut stream, l, &mut rx).await {
                    Ok(false) => {}
                    Ok(true) => return,
                    Err(e) => break format!("write error: {e}"),
                },
                Some(Cmd::Close) | None => return,
            },
        }
    };
    let _ = events.send(Ev::UpClosed(conn, why)).await;
}

struct Actor {
    proxy: Proxy,
    addresses: BTreeMap<EndpointId, SocketAddr>,
    miners: HashMap<MinerId, mpsc::Sender<Cmd>>,
    ups: HashMap<ConnId, mpsc::Sender<Cmd>>,
    events: mpsc::Sender<Ev>,
    windows: Windows,
    home: Option<PathBuf>,
}

impl Actor {
    async fn run(mut self, mut rx: mpsc::Receiver<Ev>) {
        let mut next_report = now_ms() + REPORT_MS;
        loop {
            self.drain();
            let now = now_ms();
            let wake = self.proxy.poll_timeout().min(next_report).max(now);
            tokio::select! {
                ev = rx.recv() => {
                    let Some(ev) = ev else { return };
                    self.handle(ev);
                    // Take what else is queued, handing each event's output to its connection
                    // at once (a share waits for no other event).
                    for _ in 0..1024 {
                        self.drain();
                        match rx.try_recv() {
                            Ok(ev) => self.handle(ev),
                            Err(_) => break,
                        }
                    }
                }
                () = tokio::time::sleep(Duration::from_millis(wake - now)) => {}
            }
            let now = now_ms();
            if now >= self.proxy.poll_timeout() {
                self.proxy.handle_timeout(now);
            }
            if now >= next_report {
                next_report = now + REPORT_MS;
                let closed = self.proxy.windows(now);
                let mut q = self.windows.lock().expect("windows lock");
                q.extend(closed);
                let over = q.len().saturating_sub(WINDOWS_QUEUED_MAX);
                if over > 0 {
                    q.drain(..over);
                    warn!(dropped = over, "measurement windows dropped: the node has not taken them (plane down?)");
                }
                if let Some(home) = &self.home {
                    let status = self.proxy.status(now);
                    if let Ok(bytes) = serde_json::to_vec_pretty(&status) {
                        let path = home.join(STATUS_FILE);
                        tokio::task::spawn_blocking(move || {
                            if let Err(e) = hashmesh_plane::host::files::write_atomic(&path, &bytes) {
                                warn!(error = %format!("{e:#}"), "writing the proxy status");
                            }
                        });
                    }
                }
            }
        }
    }

    fn handle(&mut self, ev: Ev) {
        let now = now_ms();
        match ev {
            Ev::MinerConnected { group, tx, reply } => {
                let id = self.proxy.handle_miner_connected(group, now);
                if let Some(id) = id {
                    self.miners.insert(id, tx);
                }
                let _ = reply.send(id);
            }
            Ev::MinerLine(id, line) => self.proxy.handle_miner_line(id, &line, now),
            Ev::MinerClosed(id) => {
                self.miners.remove(&id);
                self.proxy.handle_miner_closed(id);
            }
            Ev::UpConnected(c) => self.proxy.handle_upstream_connected(c, now),
            Ev::UpLine(c, line) => self.proxy.handle_upstream_line(c, &line, now),
            Ev::UpClosed(c, why) => {
                self.ups.remove(&c);
                self.proxy.handle_upstream_closed(c, &why, now);
            }
            Ev::Routes(r) => self.proxy.handle_routes(&r, now),
            Ev::Fallback(list) => self.proxy.handle_fallback(&list, now),
            Ev::Status(reply) => {
                let _ = reply.send(self.proxy.status(now));
            }
        }
    }

    fn drain(&mut self) {
        while let Some(o) = self.proxy.poll_output() {
            match o {
                Output::ToMiner(id, line) => {
                    let Some(tx) = self.miners.get(&id) else { continue };
                    if let Err(mpsc::error::TrySendError::Full(_)) = tx.try_send(Cmd::Line(line)) {
                        warn!(miner = id, "closing a miner that does not read what it is sent");
                        self.miners.remove(&id);
                        self.proxy.handle_miner_closed(id);
                    }
                }
                Output::CloseMiner(id) => {
                    if let Some(tx) = self.miners.remove(&id) {
                        let _ = tx.try_send(Cmd::Close);
                    }
                }
                Output::Connect(conn, e) => match self.addresses.get(&e) {
                    Some(addr) => {
                        let (tx, rx) = mpsc::channel(LINES_QUEUED_PER_CONNECTION_MAX * 16);
                        self.ups.insert(conn, tx);
                        tokio::spawn(upstream_conn(conn, *addr, self.events.clone(), rx));
                    }
                    None => {
                        let why = format!("no address for {e} in stratum.json \"endpoints\"");
                        self.proxy.handle_upstream_closed(conn, &why, now_ms());
                    }
                },
                Output::ToUpstream(conn, line) => {
                    let Some(tx) = self.ups.get(&conn) else { continue };
                    if let Err(mpsc::error::TrySendError::Full(_)) = tx.try_send(Cmd::Line(line)) {
                        self.ups.remove(&conn);
                        self.proxy.handle_upstream_closed(conn, "the endpoint does not read what it is sent", now_ms());
                    }
                }
                Output::CloseUpstream(conn) => {
                    if let Some(tx) = self.ups.remove(&conn) {
                        let _ = tx.try_send(Cmd::Close);
                    }
                }
            }
        }
    }
}
