//! The node side of the plane: accept agents, deliver their outbox in order, take
//! acknowledgements (which become receipts), and watch heartbeats with phi accrual.
//!
//! Runs on its own tokio runtime thread. Input is [`CommitNotice`]s (from the ABCI commit hook,
//! or a test); output is instructions on the wire, receipts in the outbox (a separate thread
//! puts them on chain, see [`super::receipts`]) and a status file.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use hashmesh_abci::core::Assignment;
use hashmesh_abci::CommitNotice;
use hashmesh_protocol::plane::{PlaneMsg, HEARTBEAT_REPORTS_MAX, PLANE_MSG_BYTES_MAX};
use hashmesh_protocol::{AgentId, EndpointId, GroupId, PoolId, TelemetryReport};
use hashmesh_scheduler::phi::PhiAccrual;
use tokio::sync::{mpsc, Notify};
use tracing::{info, warn};

use super::endpoint::{remote_key, server};
use super::frame::{push_frame, read_frame};
use super::identity::TlsIdentity;
use super::outbox::{Outbox, Queued};
use super::peers::{self, PeerConfig};
use super::registry::{self, AgentStatus, Registry};
use super::tls::{Role, Trust};

/// Wall clock, ms since the Unix epoch.
#[must_use]
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Plane counters for `/metrics`.
#[derive(Debug, Default)]
pub struct PlaneMetrics {
    /// Agents with an open connection.
    pub connected: AtomicU64,
    /// Agents judged lost.
    pub lost: AtomicU64,
    /// Instructions written to agents.
    pub instructions_sent: AtomicU64,
    /// Acknowledgements accepted (first time).
    pub acks: AtomicU64,
    /// Receipts seen committed.
    pub receipts_committed: AtomicU64,
    /// Connections closed for a protocol error or a failed identity check.
    pub refused: AtomicU64,
    /// Commit-to-acknowledged latency, µs: sum and count (for the mean in `/metrics`).
    pub ack_latency_us_sum: AtomicU64,
    /// Number of latencies in the sum.
    pub ack_latency_count: AtomicU64,
    /// Recent commit-to-acknowledged latencies (bounded; benchmarks read them).
    pub ack_latencies: Mutex<Vec<Duration>>,
}

/// Most instructions written to one agent at a time (a long-disconnected agent catches up in
/// bounded chunks; QUIC flow control bounds what is in flight).
const WRITE_BATCH_MAX: usize = 512;

/// Most latencies kept in [`PlaneMetrics::ack_latencies`].
const LATENCIES_KEPT: usize = 100_000;

impl PlaneMetrics {
    /// Prometheus text.
    #[must_use]
    pub fn render(&self) -> String {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        hashmesh_abci::prometheus_text(&[
            ("hashmesh_plane_agents_connected", "gauge", "Agents with an open plane connection.", g(&self.connected)),
            ("hashmesh_plane_agents_lost", "gauge", "Agents judged lost by phi accrual.", g(&self.lost)),
            (
                "hashmesh_plane_instructions_sent_total",
                "counter",
                "Instructions written to agents.",
                g(&self.instructions_sent),
            ),
            ("hashmesh_plane_acks_total", "counter", "Instructions acknowledged by agents.", g(&self.acks)),
            (
                "hashmesh_plane_receipts_committed_total",
                "counter",
                "Receipts seen committed on chain.",
                g(&self.receipts_committed),
            ),
            (
                "hashmesh_plane_connections_refused_total",
                "counter",
                "Plane connections closed for a protocol or identity error.",
                g(&self.refused),
            ),
            (
                "hashmesh_plane_ack_latency_microseconds_sum",
                "counter",
                "Sum of commit-to-acknowledgement latencies.",
                g(&self.ack_latency_us_sum),
            ),
            (
                "hashmesh_plane_ack_latency_microseconds_count",
                "counter",
                "Instructions timed from commit to acknowledgement.",
                g(&self.ack_latency_count),
            ),
        ])
    }
}

struct Live {
    /// Open sessions (a reconnecting agent may briefly have two).
    sessions: u32,
    phi: PhiAccrual,
    last_heartbeat_ms: Option<u64>,
    last_directive: Option<String>,
}

/// Shared state of the plane.
pub struct Plane {
    /// The outbox (serialized: its read-modify-writes must not interleave).
    pub outbox: Mutex<Outbox>,
    registry: Registry,
    notify: BTreeMap<AgentId, Arc<Notify>>,
    live: Mutex<BTreeMap<AgentId, Live>>,
    /// When each (agent, seq) was queued in this process (for the latency metric).
    queued_at: Mutex<BTreeMap<(AgentId, u64), std::time::Instant>>,
    /// Counters.
    pub metrics: Arc<PlaneMetrics>,
    phi_threshold: f64,
    /// The node-to-node channel, when configured.
    pub(crate) peers: Option<PeerConfig>,
    /// Wakes the credential sender.
    pub(crate) peer_notify: Notify,
    /// Keys the handshake accepts.
    trust: Trust,
    /// The latest measurement of each endpoint from any agent, with the node time it arrived.
    reports: Mutex<BTreeMap<EndpointId, (TelemetryReport, u64)>>,
}

/// Settings of the plane service.
#[derive(Debug, Clone)]
pub struct PlaneOptions {
    /// UDP address to listen on.
    pub listen: SocketAddr,
    /// Phi above which an agent is judged lost.
    pub phi_threshold: f64,
    /// Where to publish `plane-status.json` (the node home); `None` to skip.
    pub status_dir: Option<PathBuf>,
}

/// A running plane service.
pub struct PlaneHandle {
    /// Shared state.
    pub plane: Arc<Plane>,
    /// Feed commit notices here.
    pub commits: mpsc::UnboundedSender<CommitNotice>,
    /// The bound address.
    pub local_addr: SocketAddr,
    endpoint: quinn::Endpoint,
}

impl PlaneHandle {
    /// Close the listening endpoint (connections are closed).
    pub fn close(&self) {
        self.endpoint.close(0u32.into(), b"node stopping");
    }
}

impl Plane {
    /// Queue `assignments` for every agent that serves their groups; as the lender in a
    /// cross-pool route, queue our worker credentials for the borrower's node.
    fn enqueue(&self, assignments: &[Assignment]) -> Result<()> {
        let items: Vec<Queued> = assignments.iter().map(|a| self.queued(a)).collect();
        self.enqueue_items(&items)?;
        if let Some(cfg) = &self.peers {
            let mut any = false;
            for a in assignments {
                any |= peers::queue_for(self, cfg, a)?;
            }
            if any {
                self.peer_notify.notify_one();
            }
        }
        Ok(())
    }

    /// The instruction content for assignment `a`: its route, the credentials received for it,
    /// and which of its endpoints are drained now (when committed state is available).
    pub(crate) fn queued(&self, a: &Assignment) -> Queued {
        let chain = self.peers.as_ref().map(|c| &c.chain);
        let credentials = self.outbox.lock().expect("outbox lock").credentials_of(&a.directive).unwrap_or_default();
        Queued {
            group: a.group.clone(),
            directive: a.directive,
            height: a.since_height,
            routes: a.targets.clone(),
            credentials,
            drained: a
                .targets
                .iter()
                .filter(|t| chain.is_some_and(|c| c.drained(&t.endpoint)))
                .map(|t| t.endpoint.clone())
                .collect(),
        }
    }

    /// An endpoint was drained or restored: re-send the current route of every served group
    /// that targets it, with the new drained list.
    fn on_endpoint_change(&self, e: &EndpointId) -> Result<()> {
        let Some(cfg) = &self.peers else { return Ok(()) };
        let groups: std::collections::BTreeSet<&GroupId> = self.registry.values().flat_map(|a| &a.groups).collect();
        let items: Vec<Queued> = groups
            .into_iter()
            .filter_map(|g| cfg.chain.assignment(g))
            .filter(|a| a.targets.iter().any(|t| t.endpoint == *e))
            .map(|a| self.queued(&a))
            .collect();
        self.enqueue_items(&items)
    }

    /// Queue `items` for every agent that serves their groups (one durable write for all);
    /// wake those agents' writers.
    pub(crate) fn enqueue_items(&self, items: &[Queued]) -> Result<()> {
        let t0 = std::time::Instant::now();
        let outbox = self.outbox.lock().expect("outbox lock");
        let mut wake = Vec::new();
        for (id, entry) in &self.registry {
            let mine: Vec<Queued> = items.iter().filter(|q| entry.groups.contains(&q.group)).cloned().collect();
            if mine.is_empty() {
                continue;
            }
            let seqs: Vec<u64> = outbox.stage(id, &mine)?.into_iter().flatten().collect();
            if seqs.is_empty() {
                continue;
            }
            let mut queued = self.queued_at.lock().expect("queued lock");
            for seq in seqs {
                queued.insert((*id, seq), t0);
            }
            wake.push(*id);
        }
        // Durable before anything is sent: one flush for the whole commit.
        outbox.flush()?;
        for id in wake {
            if let Some(n) = self.notify.get(&id) {
                n.notify_one();
            }
        }
        Ok(())
    }

    /// Trust every committed pool's key for the node-to-node channel (the pools are known only
    /// once the chain has its genesis, which may be after the plane started).
    fn trust_pools(&self) {
        if let Some(cfg) = &self.peers {
            for pool in cfg.chain.pools().into_iter().filter(|p| *p != cfg.me) {
                if self.trust.role_of(&pool.0).is_none() {
                    self.trust.insert(pool.0, Role::Node);
                }
            }
        }
    }

    fn on_commit(&self, n: &CommitNotice) -> Result<()> {
        self.trust_pools();
        self.enqueue(&n.assignments)?;
        for e in &n.endpoints {
            self.on_endpoint_change(&e.id)?;
        }
        let outbox = self.outbox.lock().expect("outbox lock");
        for r in &n.receipts {
            outbox.receipt_committed(&r.directive, &r.agent)?;
            self.metrics.receipts_committed.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Keep agents' measurements of this pool's endpoints (others' and out-of-range reports are
    /// dropped with a warning: an agent measures only its own pool's endpoints).
    fn record_reports(&self, agent: AgentId, reports: Vec<(EndpointId, TelemetryReport)>, now: u64) {
        let me = self.peers.as_ref().map(|c| (c.me, Arc::clone(&c.chain)));
        let mut kept = self.reports.lock().expect("reports lock");
        for (endpoint, r) in reports {
            let ours = me.as_ref().is_none_or(|(me, chain)| chain.endpoint_owner(&endpoint) == Some(*me));
            if !ours {
                warn!(agent = %agent, endpoint = %endpoint, "agent reported another pool's endpoint; dropped");
            } else if let Some(why) = r.out_of_range() {
                warn!(agent = %agent, endpoint = %endpoint, why, "agent report out of range; dropped");
            } else {
                kept.insert(endpoint, (r, now));
            }
        }
    }

    /// The latest agent measurement of `endpoint` received within `max_age_ms`.
    #[must_use]
    pub fn fresh_report(&self, endpoint: &EndpointId, max_age_ms: u64) -> Option<TelemetryReport> {
        let kept = self.reports.lock().expect("reports lock");
        kept.get(endpoint).filter(|(_, at)| now_ms().saturating_sub(*at) <= max_age_ms).map(|(r, _)| *r)
    }

    /// The status of every registered agent.
    #[must_use]
    pub fn status(&self) -> Vec<AgentStatus> {
        let now = now_ms();
        let live = self.live.lock().expect("live lock");
        let outbox = self.outbox.lock().expect("outbox lock");
        let mut lost = 0;
        let out = self
            .registry
            .values()
            .map(|e| {
                let l = live.get(&e.id);
                let phi = l.map_or(0.0, |l| l.phi.phi(now));
                let is_lost = l.is_some_and(|l| l.last_heartbeat_ms.is_some()) && phi > self.phi_threshold;
                lost += u64::from(is_lost);
                AgentStatus {
                    id: e.id.to_hex(),
                    groups: e.groups.iter().map(ToString::to_string).collect(),
                    connected: l.is_some_and(|l| l.sessions > 0),
                    lost: is_lost,
                    phi: if phi.is_finite() { (phi * 100.0).round() / 100.0 } else { 1e9 },
                    last_heartbeat_ms: l.and_then(|l| l.last_heartbeat_ms),
                    acked_seq: outbox.acked(&e.id).unwrap_or(0),
                    last_directive: l.and_then(|l| l.last_directive.clone()),
                    outstanding: outbox.outstanding(&e.id).unwrap_or(0),
                }
            })
            .collect();
        self.metrics.lost.store(lost, Ordering::Relaxed);
        out
    }
}

/// Start the plane: queue what the committed `assignments` require (recovering anything a
/// crash left out), listen, and serve agents until the handle is closed.
///
/// # Errors
/// If the outbox cannot be opened or the address cannot be bound.
pub fn start(
    outbox: Outbox,
    registry: Registry,
    id: &TlsIdentity,
    assignments: &[Assignment],
    opts: PlaneOptions,
    peers: Option<PeerConfig>,
) -> Result<PlaneHandle> {
    let trust = Trust::default();
    for e in registry.values() {
        trust.insert(e.id.0, Role::Agent { groups: e.groups.iter().map(ToString::to_string).collect() });
    }

    let notify = registry.keys().map(|k| (*k, Arc::new(Notify::new()))).collect();
    let plane = Arc::new(Plane {
        outbox: Mutex::new(outbox),
        registry,
        notify,
        live: Mutex::new(BTreeMap::new()),
        queued_at: Mutex::new(BTreeMap::new()),
        metrics: Arc::new(PlaneMetrics::default()),
        phi_threshold: opts.phi_threshold,
        peers,
        peer_notify: Notify::new(),
        trust: trust.clone(),
        reports: Mutex::new(BTreeMap::new()),
    });
    plane.trust_pools();
    plane.enqueue(assignments)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("plane")
        .enable_all()
        .build()
        .context("plane runtime")?;
    let endpoint = {
        let _guard = rt.enter();
        server(opts.listen, id, &trust)?
    };
    let local_addr = endpoint.local_addr()?;
    let (tx, mut rx) = mpsc::unbounded_channel::<CommitNotice>();
    let (p, ep) = (Arc::clone(&plane), endpoint.clone());
    std::thread::Builder::new().name("plane".into()).spawn(move || {
        rt.block_on(async move {
            let commits = {
                let p = Arc::clone(&p);
                tokio::spawn(async move {
                    while let Some(n) = rx.recv().await {
                        if let Err(e) = p.on_commit(&n) {
                            warn!(error = %e, height = n.height, "plane could not queue a commit's instructions");
                        }
                    }
                })
            };
            tokio::spawn(peers::sender_loop(Arc::clone(&p)));
            if let Some(dir) = opts.status_dir.clone() {
                let p = Arc::clone(&p);
                tokio::spawn(async move {
                    loop {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        let _ = registry::write_status(&dir, &p.status());
                    }
                });
            }
            while let Some(incoming) = ep.accept().await {
                let p = Arc::clone(&p);
                tokio::spawn(async move {
                    match incoming.await {
                        Ok(conn) => {
                            if let Err(e) = serve(Arc::clone(&p), conn.clone()).await {
                                p.metrics.refused.fetch_add(1, Ordering::Relaxed);
                                warn!(peer = %conn.remote_address(), error = %format!("{e:#}"), "plane connection closed");
                                conn.close(1u32.into(), b"protocol error");
                            }
                        }
                        Err(e) => info!(error = %e, "plane handshake failed"),
                    }
                });
            }
            commits.abort();
        });
    })?;
    info!(listen = %local_addr, "instruction plane listening (QUIC, TLS 1.3)");
    Ok(PlaneHandle { plane, commits: tx, local_addr, endpoint })
}

async fn serve(p: Arc<Plane>, conn: quinn::Connection) -> Result<()> {
    let key = remote_key(&conn)?;
    let agent = AgentId(key);
    let (mut send, mut recv) =
        tokio::time::timeout(Duration::from_secs(10), conn.accept_bi()).await.context("no stream within 10 s")??;
    let hello = read_frame(&mut recv, PLANE_MSG_BYTES_MAX).await?.context("stream closed before hello")?;
    let first = PlaneMsg::decode(&hello).context("first message")?;
    if !p.registry.contains_key(&agent) {
        // The handshake only admits registered agents and committed pools.
        return peers::serve_peer(&p, PoolId(key), first, &mut send, &mut recv).await;
    }
    match first {
        PlaneMsg::Hello { agent: claimed, .. } if claimed == agent => {}
        PlaneMsg::Hello { agent: claimed, .. } => {
            bail!("agent claims to be {claimed} but proved key {agent} in the handshake")
        }
        other => bail!("first message must be hello, got {}", kind(&other)),
    }
    info!(agent = %agent, "agent connected");
    let notify = Arc::clone(&p.notify[&agent]);
    {
        let mut live = p.live.lock().expect("live lock");
        let l = live.entry(agent).or_insert_with(|| Live {
            sessions: 0,
            // Agents beat every second by default; assume so until two beats are seen.
            phi: PhiAccrual::new(p.phi_threshold, 200.0).with_first_estimate(1000.0),
            last_heartbeat_ms: None,
            last_directive: None,
        });
        if l.sessions == 0 {
            p.metrics.connected.fetch_add(1, Ordering::Relaxed);
        }
        l.sessions += 1;
    }
    let writer = {
        let p = Arc::clone(&p);
        // Runs until the connection fails (a write error) or the session ends (aborted below).
        tokio::spawn(async move {
            let mut sent = p.outbox.lock().expect("outbox lock").acked(&agent)?;
            loop {
                let batch = p.outbox.lock().expect("outbox lock").after(&agent, sent, WRITE_BATCH_MAX)?;
                // What is pending (up to WRITE_BATCH_MAX) goes out in one stream write.
                let mut buf = Vec::new();
                for i in &batch {
                    push_frame(&mut buf, &PlaneMsg::Instruction(i.clone()).encode())?;
                }
                if let Some(last) = batch.last() {
                    send.write_all(&buf).await?;
                    sent = last.seq;
                    p.metrics.instructions_sent.fetch_add(batch.len() as u64, Ordering::Relaxed);
                }
                if batch.len() < WRITE_BATCH_MAX {
                    let _ = tokio::time::timeout(Duration::from_secs(1), notify.notified()).await;
                }
            }
            #[allow(unreachable_code)]
            Ok::<(), anyhow::Error>(()) // the loop only ends by `?`; this names the task's type
        })
    };
    let result = read_loop(&p, agent, &mut recv).await;
    writer.abort();
    if let Some(l) = p.live.lock().expect("live lock").get_mut(&agent) {
        l.sessions = l.sessions.saturating_sub(1);
        if l.sessions == 0 {
            p.metrics.connected.fetch_sub(1, Ordering::Relaxed);
        }
    }
    result
}

async fn read_loop(p: &Plane, agent: AgentId, recv: &mut quinn::RecvStream) -> Result<()> {
    while let Some(bytes) = read_frame(recv, PLANE_MSG_BYTES_MAX).await? {
        match PlaneMsg::decode(&bytes).context("unknown or malformed message")? {
            PlaneMsg::Ack { seq, directive, applied_at_ms } => {
                // Lock order: never hold the outbox while taking `live` (status() takes `live` first).
                let (before, matched) = {
                    let outbox = p.outbox.lock().expect("outbox lock");
                    let before = outbox.acked(&agent)?;
                    (before, outbox.ack(&agent, seq, &directive, applied_at_ms)?)
                };
                if !matched {
                    bail!("acknowledgement of seq {seq} / {directive} matches no instruction");
                }
                if seq > before {
                    p.metrics.acks.fetch_add(1, Ordering::Relaxed);
                    if let Some(t) = p.queued_at.lock().expect("queued lock").remove(&(agent, seq)) {
                        let d = t.elapsed();
                        let m = &p.metrics;
                        m.ack_latency_us_sum
                            .fetch_add(u64::try_from(d.as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
                        m.ack_latency_count.fetch_add(1, Ordering::Relaxed);
                        let mut kept = m.ack_latencies.lock().expect("latency lock");
                        if kept.len() < LATENCIES_KEPT {
                            kept.push(d);
                        }
                    }
                    if let Some(l) = p.live.lock().expect("live lock").get_mut(&agent) {
                        l.last_directive = Some(directive.to_hex());
                    }
                }
            }
            PlaneMsg::Heartbeat { reports, .. } => {
                let now = now_ms();
                if let Some(l) = p.live.lock().expect("live lock").get_mut(&agent) {
                    l.phi.heartbeat(now);
                    l.last_heartbeat_ms = Some(now);
                }
                if reports.len() > HEARTBEAT_REPORTS_MAX {
                    bail!("heartbeat with {} reports (most {HEARTBEAT_REPORTS_MAX})", reports.len());
                }
                p.record_reports(agent, reports, now);
            }
            other => bail!("agents may not send {}", kind(&other)),
        }
    }
    Ok(())
}

fn kind(m: &PlaneMsg) -> &'static str {
    match m {
        PlaneMsg::Hello { .. } => "hello",
        PlaneMsg::Instruction(_) => "instruction",
        PlaneMsg::Ack { .. } => "ack",
        PlaneMsg::Heartbeat { .. } => "heartbeat",
        PlaneMsg::PeerHello { .. } => "peer_hello",
        PlaneMsg::Credentials { .. } => "credentials",
        PlaneMsg::CredentialsAck { .. } => "credentials_ack",
    }
}
