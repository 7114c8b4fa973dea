//! The node side of the plane, as IO around the sans-IO
//! [`NodePlane`]: one actor task owns the state machine
//! and the plane database; connection tasks only move frames. Every input is an `Event` in
//! one closed enum; after each, the actor makes the machine's writes durable, then hands out
//! what may be transmitted, then publishes what other threads read ([`Plane`]).
//!
//! A storage fault in the actor is the node's own: it stops the process (exit 70) and is never
//! blamed on an agent. An agent that breaks the protocol loses its session, nobody else does.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use hashmesh_abci::core::Assignment;
use hashmesh_abci::CommitNotice;
use hashmesh_plane::core::node::{fresh_reports, AgentView, CommitInput, CommittedRoute, NodePlane};
use hashmesh_plane::host::clock::now_ms;
use hashmesh_plane::transport::endpoint::{remote_key, server};
use hashmesh_plane::transport::frame::{push_frame, read_frame};
use hashmesh_plane::transport::identity::TlsIdentity;
use hashmesh_plane::transport::tls::{Role, Trust};
use hashmesh_plane::PlaneError;
use hashmesh_protocol::limits::COMMIT_NOTICES_QUEUED_MAX;
use hashmesh_protocol::plane::{Instruction, PlaneMsg, WorkerCredential, PLANE_MSG_BYTES_MAX};
use hashmesh_protocol::{AgentId, DirectiveId, EndpointId, PoolId, Receipt, TelemetryReport};
use tokio::sync::{mpsc, oneshot};
use tracing::{error, info, warn};

use super::peers::{self, PeerConfig};
use super::registry::{self, AgentStatus, Registry};
use super::store::PlaneStore;

/// Most events waiting for the actor (connection tasks wait when it is full).
const EVENTS_QUEUED_MAX: usize = 4096;

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
    /// Agent queues compacted because the agent fell too far behind.
    pub resyncs: AtomicU64,
    /// Receipts seen committed.
    pub receipts_committed: AtomicU64,
    /// Connections closed for a protocol error or a failed identity check.
    pub refused: AtomicU64,
    /// Commit-to-acknowledged latency, ms: sum and count (for the mean in `/metrics`).
    pub ack_latency_ms_sum: AtomicU64,
    /// Number of latencies in the sum.
    pub ack_latency_count: AtomicU64,
    /// Recent commit-to-acknowledged latencies, ms (bounded; benchmarks read them).
    pub ack_latencies_ms: Mutex<Vec<u64>>,
}

/// Most latencies kept in [`PlaneMetrics::ack_latencies_ms`].
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
                "hashmesh_plane_resyncs_total",
                "counter",
                "Agent queues compacted to the latest routes.",
                g(&self.resyncs),
            ),
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
                "hashmesh_plane_ack_latency_milliseconds_sum",
                "counter",
                "Sum of commit-to-acknowledgement latencies.",
                g(&self.ack_latency_ms_sum),
            ),
            (
                "hashmesh_plane_ack_latency_milliseconds_count",
                "counter",
                "Instructions timed from commit to acknowledgement.",
                g(&self.ack_latency_count),
            ),
        ])
    }
}

/// Every input of the plane actor.
pub(crate) enum Event {
    /// A block committed.
    Commit(CommitNotice),
    /// An agent's connection passed the handshake and sent its hello.
    Connected { agent: AgentId, to_session: mpsc::Sender<SessionCmd>, reply: oneshot::Sender<Option<u64>> },
    /// A message from an agent.
    Message { agent: AgentId, session: u64, msg: PlaneMsg },
    /// A session finished writing its last batch.
    Sent { agent: AgentId, session: u64 },
    /// A session ended.
    Disconnected { agent: AgentId, session: u64 },
    /// Credentials from a lending pool's node, checked against committed state.
    Credential { directive: DirectiveId, credential: WorkerCredential, reply: oneshot::Sender<()> },
    /// Receipts found on chain by the sender (a duplicate refusal).
    ReceiptsOnChain(Vec<Receipt>),
    /// Once a second: publish status.
    Tick,
}

/// What the actor tells a session.
pub(crate) enum SessionCmd {
    /// Write these instructions.
    Write(Vec<Instruction>),
    /// Close: the agent broke the protocol.
    Close(String),
}

/// What the actor publishes for other threads (one lock, written only by the actor).
#[derive(Default)]
struct Published {
    agents: Vec<AgentView>,
    reports: BTreeMap<EndpointId, (TelemetryReport, u64)>,
    receipts: Vec<Receipt>,
}

/// The plane as the rest of the node sees it.
pub struct Plane {
    /// Counters.
    pub metrics: Arc<PlaneMetrics>,
    published: Mutex<Published>,
    events: mpsc::Sender<Event>,
    /// The node-to-node channel, when configured.
    pub(crate) peers: Option<PeerConfig>,
    /// Wakes the credential sender.
    pub(crate) peer_notify: tokio::sync::Notify,
    /// The plane database (the node-to-node channel's lender keys live here too).
    pub(crate) store: PlaneStore,
    /// Keys the handshake accepts.
    trust: Trust,
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
    /// Shared view.
    pub plane: Arc<Plane>,
    /// Feed commit notices here (bounded: a slow plane makes the commit hook wait).
    pub commits: mpsc::Sender<CommitNotice>,
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
    /// The latest agent measurement of `endpoint` received within `max_age_ms`.
    #[must_use]
    pub fn fresh_report(&self, endpoint: &EndpointId, max_age_ms: u64) -> Option<TelemetryReport> {
        self.fresh_reports(max_age_ms).remove(endpoint)
    }

    /// Every endpoint's latest agent measurement received within `max_age_ms`.
    #[must_use]
    pub fn fresh_reports(&self, max_age_ms: u64) -> BTreeMap<EndpointId, TelemetryReport> {
        fresh_reports(&self.published.lock().expect("published lock").reports, now_ms(), max_age_ms)
    }

    /// Worker credentials this node (as lender) still has to deliver.
    #[must_use]
    pub fn credentials_queued(&self) -> usize {
        peers::credentials_to_send(&self.store).map_or(0, |m| m.values().map(Vec::len).sum())
    }

    /// Receipts waiting to go on chain (as of the last event).
    #[must_use]
    pub fn pending_receipts(&self, max: usize) -> Vec<Receipt> {
        self.published.lock().expect("published lock").receipts.iter().take(max).cloned().collect()
    }

    /// Receipts the chain already has: forget them.
    pub fn receipts_on_chain(&self, receipts: Vec<Receipt>) {
        let _ = self.events.blocking_send(Event::ReceiptsOnChain(receipts));
    }

    pub(crate) async fn send(&self, ev: Event) {
        let _ = self.events.send(ev).await;
    }

    /// The status of every registered agent.
    #[must_use]
    pub fn status(&self) -> Vec<AgentStatus> {
        let p = self.published.lock().expect("published lock");
        p.agents
            .iter()
            .map(|a| AgentStatus {
                id: a.id.to_hex(),
                groups: a.groups.iter().map(ToString::to_string).collect(),
                connected: a.connected,
                lost: a.lost,
                phi: if a.phi.is_finite() { (a.phi * 100.0).round() / 100.0 } else { 1e9 },
                last_heartbeat_ms: a.last_heartbeat_ms,
                acked_seq: a.acked_seq,
                last_directive: a.last_directive.map(|d| d.to_hex()),
                outstanding: a.outstanding,
            })
            .collect()
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
}

fn route_of(a: &Assignment) -> CommittedRoute {
    CommittedRoute {
        group: a.group.clone(),
        directive: a.directive,
        height: a.since_height,
        targets: a.targets.clone(),
    }
}

/// Stop the process: a local fault of the plane (its database) must not be blamed on a peer
/// nor let the node run on without durable delivery.
fn fatal(what: &str, e: &anyhow::Error) -> ! {
    error!(error = %format!("{e:#}"), "fatal: {what}");
    eprintln!("hashmesh: fatal: {what}: {e:#}");
    std::process::exit(70)
}

/// Start the plane: queue what the committed `assignments` require (recovering anything a
/// crash left out), listen, and serve agents until the handle is closed.
///
/// # Errors
/// If the database cannot be read or the address cannot be bound.
pub fn start(
    store: PlaneStore,
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
    let agents = registry.values().map(|e| (e.id, e.groups.clone())).collect();
    let mut core = NodePlane::new(&agents, store.load().context("loading the plane database")?, opts.phi_threshold);
    let initial = CommitInput {
        routes: assignments.iter().map(route_of).collect(),
        endpoints: peers
            .as_ref()
            .map(|c| {
                assignments
                    .iter()
                    .flat_map(|a| &a.targets)
                    .filter(|t| c.chain.drained(&t.endpoint))
                    .map(|t| (t.endpoint.clone(), true))
                    .collect()
            })
            .unwrap_or_default(),
        receipts: Vec::new(),
    };
    core.handle_commit(&initial, now_ms());
    if let Some(cfg) = &peers {
        // As the lender, (re)queue credentials for the committed cross-pool routes.
        for a in assignments {
            peers::queue_for(&store, cfg, a)?;
        }
    }
    let (events_tx, mut events) = mpsc::channel::<Event>(EVENTS_QUEUED_MAX);
    let (commits_tx, mut commits) = mpsc::channel::<CommitNotice>(COMMIT_NOTICES_QUEUED_MAX);
    let plane = Arc::new(Plane {
        metrics: Arc::new(PlaneMetrics::default()),
        published: Mutex::new(Published::default()),
        events: events_tx,
        peers,
        peer_notify: tokio::sync::Notify::new(),
        store: store.clone(),
        trust: trust.clone(),
    });
    plane.trust_pools();
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
    let (p, ep) = (Arc::clone(&plane), endpoint.clone());
    std::thread::Builder::new().name("plane".into()).spawn(move || {
        rt.block_on(async move {
            let actor = {
                let p = Arc::clone(&p);
                tokio::spawn(async move {
                    let mut actor =
                        Actor { core, store, sessions: BTreeMap::new(), plane: p, status_dir: opts.status_dir };
                    actor.drain();
                    let mut tick = tokio::time::interval(Duration::from_secs(1));
                    loop {
                        let ev = tokio::select! {
                            Some(n) = commits.recv() => Event::Commit(n),
                            Some(ev) = events.recv() => ev,
                            _ = tick.tick() => Event::Tick,
                            else => break,
                        };
                        actor.handle(ev);
                        actor.drain();
                    }
                })
            };
            tokio::spawn(peers::sender_loop(Arc::clone(&p)));
            while let Some(incoming) = ep.accept().await {
                let p = Arc::clone(&p);
                tokio::spawn(async move {
                    match incoming.await {
                        Ok(conn) => {
                            if let Err(e) = serve(Arc::clone(&p), conn.clone()).await {
                                p.metrics.refused.fetch_add(1, Ordering::Relaxed);
                                warn!(peer = %conn.remote_address(), error = %e, "plane connection closed");
                                conn.close(1u32.into(), b"protocol error");
                            }
                        }
                        Err(e) => info!(error = %e, "plane handshake failed"),
                    }
                });
            }
            actor.abort();
        });
    })?;
    info!(listen = %local_addr, "instruction plane listening (QUIC, TLS 1.3)");
    Ok(PlaneHandle { plane, commits: commits_tx, local_addr, endpoint })
}

struct Actor {
    core: NodePlane,
    store: PlaneStore,
    sessions: BTreeMap<(AgentId, u64), mpsc::Sender<SessionCmd>>,
    plane: Arc<Plane>,
    status_dir: Option<PathBuf>,
}

impl Actor {
    fn handle(&mut self, ev: Event) {
        let now = now_ms();
        match ev {
            Event::Commit(n) => {
                self.plane.trust_pools();
                let input = CommitInput {
                    routes: n.assignments.iter().map(route_of).collect(),
                    endpoints: n.endpoints.iter().map(|e| (e.id.clone(), e.drained)).collect(),
                    receipts: n.receipts.iter().map(|r| (r.directive, r.agent)).collect(),
                };
                self.core.handle_commit(&input, now);
                if let Some(cfg) = &self.plane.peers {
                    let mut any = false;
                    for a in &n.assignments {
                        any |= peers::queue_for(&self.plane.store, cfg, a)
                            .unwrap_or_else(|e| fatal("queueing credentials", &e));
                    }
                    if any {
                        self.plane.peer_notify.notify_one();
                    }
                }
            }
            Event::Connected { agent, to_session, reply } => {
                let session = self.core.handle_connect(agent).ok();
                if let Some(s) = session {
                    self.sessions.insert((agent, s), to_session);
                    info!(agent = %agent, "agent connected");
                }
                let _ = reply.send(session);
            }
            Event::Message { agent, session, mut msg } => {
                if let (PlaneMsg::Heartbeat { reports, .. }, Some(cfg)) = (&mut msg, &self.plane.peers) {
                    // An agent measures only its own pool's endpoints.
                    reports.retain(|(e, _)| {
                        let ours = cfg.chain.endpoint_owner(e) == Some(cfg.me);
                        if !ours {
                            warn!(agent = %agent, endpoint = %e, "agent reported another pool's endpoint; dropped");
                        }
                        ours
                    });
                }
                if let Err(fault) = self.core.handle_message(agent, session, msg, now) {
                    if let Some(tx) = self.sessions.remove(&(agent, session)) {
                        let _ = tx.try_send(SessionCmd::Close(fault.to_string()));
                    }
                    self.core.handle_disconnect(agent, session);
                }
            }
            Event::Sent { agent, session } => self.core.handle_sent(agent, session),
            Event::Disconnected { agent, session } => {
                self.sessions.remove(&(agent, session));
                self.core.handle_disconnect(agent, session);
            }
            Event::Credential { directive, credential, reply } => {
                self.core.handle_credential(directive, credential, now);
                self.drain();
                let _ = reply.send(());
            }
            Event::ReceiptsOnChain(rs) => {
                let input = CommitInput {
                    receipts: rs.iter().map(|r| (r.directive, r.agent)).collect(),
                    ..CommitInput::default()
                };
                self.core.handle_commit(&input, now);
            }
            Event::Tick => {
                if let Some(dir) = &self.status_dir {
                    let _ = registry::write_status(dir, &self.plane.status());
                }
            }
        }
    }

    /// Persist, then transmit, then publish.
    fn drain(&mut self) {
        while let Some(batch) = self.core.poll_persist() {
            self.store.apply(&batch).unwrap_or_else(|e| fatal("writing the plane database", &e));
            self.core.handle_persisted(batch.id);
        }
        while let Some(t) = self.core.poll_transmit() {
            let delivered = self
                .sessions
                .get(&(t.agent, t.session))
                .is_some_and(|tx| tx.try_send(SessionCmd::Write(t.instructions)).is_ok());
            if !delivered {
                // The session is gone (or closing): what it did not get is sent to the next one.
                self.core.handle_disconnect(t.agent, t.session);
            }
        }
        let now = now_ms();
        let c = self.core.counters();
        let m = &self.plane.metrics;
        m.instructions_sent.store(c.instructions_sent, Ordering::Relaxed);
        m.acks.store(c.acks, Ordering::Relaxed);
        m.resyncs.store(c.resyncs, Ordering::Relaxed);
        m.receipts_committed.store(c.receipts_committed, Ordering::Relaxed);
        let lat = self.core.take_latencies_ms();
        if !lat.is_empty() {
            m.ack_latency_ms_sum.fetch_add(lat.iter().sum(), Ordering::Relaxed);
            m.ack_latency_count.fetch_add(lat.len() as u64, Ordering::Relaxed);
            let mut kept = m.ack_latencies_ms.lock().expect("latency lock");
            let room = LATENCIES_KEPT.saturating_sub(kept.len());
            kept.extend(lat.into_iter().take(room));
        }
        let agents = self.core.agents(now);
        m.connected.store(agents.iter().filter(|a| a.connected).count() as u64, Ordering::Relaxed);
        m.lost.store(agents.iter().filter(|a| a.lost).count() as u64, Ordering::Relaxed);
        let mut p = self.plane.published.lock().expect("published lock");
        p.agents = agents;
        p.receipts = self.core.pending_receipts(hashmesh_protocol::limits::RECEIPTS_PENDING_MAX);
        p.reports = self.core.reports().clone();
    }
}

/// One connection: a registered agent's session, or a peer node's.
async fn serve(p: Arc<Plane>, conn: quinn::Connection) -> Result<(), PlaneError> {
    let key = remote_key(&conn).map_err(PlaneError::Peer)?;
    let agent = AgentId(key);
    let (mut send, mut recv) = tokio::time::timeout(Duration::from_secs(10), conn.accept_bi())
        .await
        .context("no stream within 10 s")
        .and_then(|r| r.context("accepting the stream"))
        .map_err(PlaneError::Peer)?;
    let hello = read_frame(&mut recv, PLANE_MSG_BYTES_MAX)
        .await
        .context("reading hello")
        .and_then(|f| f.context("stream closed before hello"))
        .map_err(PlaneError::Peer)?;
    let first = PlaneMsg::decode(&hello).context("first message").map_err(PlaneError::Peer)?;
    if matches!(first, PlaneMsg::PeerHello { .. }) {
        // The handshake only admits registered agents and committed pools.
        return peers::serve_peer(&p, PoolId(key), first, &mut send, &mut recv).await.map_err(PlaneError::Peer);
    }
    match &first {
        PlaneMsg::Hello { agent: claimed, .. } if *claimed == agent => {}
        PlaneMsg::Hello { agent: claimed, .. } => {
            return Err(PlaneError::Peer(anyhow::anyhow!(
                "agent claims to be {claimed} but proved key {agent} in the handshake"
            )))
        }
        other => {
            return Err(PlaneError::Peer(anyhow::anyhow!(
                "first message must be hello, got {}",
                hashmesh_plane::core::node::kind(other)
            )))
        }
    }
    let (to_session, mut cmds) = mpsc::channel::<SessionCmd>(2);
    let (reply, session) = oneshot::channel();
    p.send(Event::Connected { agent, to_session, reply }).await;
    let Some(session) = session.await.ok().flatten() else {
        return Err(PlaneError::Peer(anyhow::anyhow!("agent {agent} is not registered with this node")));
    };
    // Reader and writer in one select: whichever fails ends the session.
    let result: Result<(), PlaneError> = async {
        loop {
            tokio::select! {
                frame = read_frame(&mut recv, PLANE_MSG_BYTES_MAX) => {
                    let Some(bytes) = frame.context("reading from the agent").map_err(PlaneError::Peer)? else { return Ok(()) };
                    let msg = PlaneMsg::decode(&bytes).context("unknown or malformed message").map_err(PlaneError::Peer)?;
                    p.send(Event::Message { agent, session, msg }).await;
                }
                cmd = cmds.recv() => match cmd {
                    Some(SessionCmd::Write(batch)) => {
                        let mut buf = Vec::new();
                        for i in batch {
                            push_frame(&mut buf, &PlaneMsg::Instruction(i).encode()).context("framing").map_err(PlaneError::Local)?;
                        }
                        send.write_all(&buf).await.context("writing to the agent").map_err(PlaneError::Peer)?;
                        p.send(Event::Sent { agent, session }).await;
                    }
                    Some(SessionCmd::Close(why)) => return Err(PlaneError::Peer(anyhow::anyhow!(why))),
                    None => return Ok(()),
                },
            }
        }
    }
    .await;
    p.send(Event::Disconnected { agent, session }).await;
    result
}
