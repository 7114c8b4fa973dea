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
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use hashmesh_abci::core::Assignment;
use hashmesh_abci::CommitNotice;
use hashmesh_plane::core::node::{AgentView, CommitInput, CommittedRoute, Counters, GroupWork, NodePlane};
use hashmesh_plane::host::clock::now_ms;
use hashmesh_plane::transport::endpoint::{closed_cleanly, remote_key, server};
use hashmesh_plane::transport::frame::{push_frame, read_frame, write_frame, FrameReader};
use hashmesh_plane::transport::identity::TlsIdentity;
use hashmesh_plane::transport::tls::{Role, Trust};
use hashmesh_plane::PlaneError;
use hashmesh_protocol::limits::COMMIT_NOTICES_QUEUED_MAX;
use hashmesh_protocol::plane::{Instruction, PlaneMsg, WorkerCredential, PLANE_MSG_BYTES_MAX};
use hashmesh_protocol::{AgentId, EndpointId, Measurement, PoolId, Receipt};
use tokio::sync::{mpsc, oneshot};
use tracing::{error, info, warn};

pub use super::metrics::PlaneMetrics;
use super::metrics::LATENCIES_KEPT;
use super::peers::{self, PeerConfig, ReceivedCredential};
use super::registry::{self, AgentStatus, Registry};
use super::store::PlaneStore;

/// Most events waiting for the actor (connection tasks wait when it is full).
const EVENTS_QUEUED_MAX: usize = 4096;
/// Most pending receipts the plane publishes for the sender at a time (four transactions' worth).
pub const RECEIPTS_PUBLISHED_MAX: usize = 4 * hashmesh_protocol::RECEIPTS_PER_TX_MAX;
/// How often the actor publishes its view (receipts for the sender, status, reports).
const TICK: Duration = Duration::from_millis(250);
/// Ticks between two writes of `plane-status.json`.
const STATUS_EVERY_TICKS: u64 = 4;
/// Most events the actor handles before it persists and transmits once for all of them.
const EVENTS_COALESCED_MAX: usize = 256;

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
    Credential(ReceivedCredential),
    /// Receipts found on chain by the sender (a duplicate refusal).
    ReceiptsOnChain(Vec<Receipt>),
    /// Once a second: publish status.
    Tick,
    /// The scheduling loop takes this epoch's merged measurements.
    TakeMeasurements(oneshot::Sender<(BTreeMap<EndpointId, Measurement>, Vec<GroupWork>)>),
}

/// What the actor tells a session.
pub(crate) enum SessionCmd {
    /// Write these instructions.
    Write(Vec<Instruction>),
    /// Write the fallback list.
    Fallback(Vec<WorkerCredential>),
    /// Close: the agent broke the protocol.
    Close(String),
}

/// What the actor publishes for other threads (one lock, written only by the actor).
#[derive(Default)]
struct Published {
    agents: Vec<AgentView>,
    receipts: Vec<Receipt>,
}

/// The plane as the rest of the node sees it.
pub struct Plane {
    /// Counters.
    pub metrics: Arc<PlaneMetrics>,
    published: Mutex<Published>,
    events: mpsc::Sender<Event>,
    /// The node-to-node channel, when configured.
    pub(crate) peers: Option<Arc<PeerConfig>>,
    /// Wakes the credential sender.
    pub(crate) peer_notify: Arc<tokio::sync::Notify>,
    /// Credentials received from lending nodes, for the actor.
    credentials: mpsc::Sender<ReceivedCredential>,
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
    /// This epoch's measurements: every endpoint some agent sent a window for since the last
    /// call, merged across agents (counts summed, latency histograms merged), and each group's
    /// accepted work per endpoint (the borrower's side of loans). Blocks until the
    /// actor answers; empty if the plane stopped. Call from a thread outside the runtime.
    #[must_use]
    pub fn take_measurements(&self) -> (BTreeMap<EndpointId, Measurement>, Vec<GroupWork>) {
        let (tx, rx) = oneshot::channel();
        if self.events.blocking_send(Event::TakeMeasurements(tx)).is_err() {
            return (BTreeMap::new(), Vec::new());
        }
        rx.blocking_recv().unwrap_or_default()
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
/// crash left out), listen, and serve agents from tasks on `rt` until the handle is closed.
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
    rt: &tokio::runtime::Handle,
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
        peers::queue_standby(&store, cfg)?;
    }
    let (events_tx, mut events) = mpsc::channel::<Event>(EVENTS_QUEUED_MAX);
    let (commits_tx, mut commits) = mpsc::channel::<CommitNotice>(COMMIT_NOTICES_QUEUED_MAX);
    let (credentials_tx, mut credentials) = mpsc::channel::<ReceivedCredential>(EVENTS_QUEUED_MAX);
    let plane = Arc::new(Plane {
        metrics: Arc::new(PlaneMetrics::default()),
        published: Mutex::new(Published::default()),
        events: events_tx,
        peers: peers.map(Arc::new),
        peer_notify: Arc::new(tokio::sync::Notify::new()),
        credentials: credentials_tx,
        store: store.clone(),
        trust: trust.clone(),
    });
    plane.trust_pools();
    let endpoint = {
        let _guard = rt.enter();
        server(opts.listen, id, &trust)?
    };
    let local_addr = endpoint.local_addr()?;
    let (p, ep) = (Arc::clone(&plane), endpoint.clone());
    rt.spawn(async move {
        let actor = {
            let p = Arc::clone(&p);
            tokio::spawn(async move {
                let mut actor = Actor {
                    core,
                    counted: Counters::default(),
                    ticks: 0,
                    store,
                    sessions: BTreeMap::new(),
                    plane: p,
                    status_dir: opts.status_dir,
                    fallback: Vec::new(),
                };
                actor.refresh_fallback();
                actor.drain();
                actor.publish();
                let mut tick = tokio::time::interval(TICK);
                loop {
                    let ev = tokio::select! {
                        Some(n) = commits.recv() => Event::Commit(n),
                        Some(c) = credentials.recv() => Event::Credential(c),
                        Some(ev) = events.recv() => ev,
                        _ = tick.tick() => Event::Tick,
                        else => break,
                    };
                    actor.handle(ev);
                    // Take what else is already waiting (a burst of acknowledgements) before
                    // persisting and transmitting once for all of it.
                    for _ in 0..EVENTS_COALESCED_MAX {
                        match events.try_recv() {
                            Ok(ev) => actor.handle(ev),
                            Err(_) => break,
                        }
                    }
                    actor.drain();
                }
            })
        };
        if let Some(cfg) = &p.peers {
            tokio::spawn(peers::sender_loop(p.store.clone(), Arc::clone(cfg), Arc::clone(&p.peer_notify)));
        }
        while let Some(incoming) = ep.accept().await {
            let p = Arc::clone(&p);
            tokio::spawn(async move {
                match incoming.await {
                    Ok(conn) => {
                        match serve(Arc::clone(&p), conn.clone()).await {
                            Ok(()) => {}
                            // The peer hung up on purpose (code 0): a session's normal end.
                            Err(_) if closed_cleanly(&conn) => {
                                info!(peer = %conn.remote_address(), "plane connection closed by the peer")
                            }
                            Err(e) => {
                                p.metrics.refused.inc();
                                warn!(peer = %conn.remote_address(), error = %e, "plane connection closed");
                                conn.close(1u32.into(), b"protocol error");
                            }
                        }
                    }
                    Err(e) => info!(error = %e, "plane handshake failed"),
                }
            });
        }
        actor.abort();
    });
    info!(listen = %local_addr, "instruction plane listening (QUIC, TLS 1.3)");
    Ok(PlaneHandle { plane, commits: commits_tx, local_addr, endpoint })
}

struct Actor {
    core: NodePlane,
    /// Ticks so far.
    ticks: u64,
    /// Counters already added to the metrics.
    counted: Counters,
    store: PlaneStore,
    sessions: BTreeMap<(AgentId, u64), mpsc::Sender<SessionCmd>>,
    plane: Arc<Plane>,
    status_dir: Option<PathBuf>,
    /// The agents' fallback list as last sent.
    fallback: Vec<WorkerCredential>,
}

impl Actor {
    /// Recompute the agents' fallback list (kept standby credentials of open offers) and send it
    /// to every session when it changed.
    fn refresh_fallback(&mut self) {
        let Some(cfg) = &self.plane.peers else { return };
        let list = peers::fallback_list(&self.store, &cfg.me, &cfg.chain.offers())
            .unwrap_or_else(|e| fatal("reading standby credentials", &e));
        if list != self.fallback {
            info!(endpoints = list.len(), "agents' fallback list changed");
            self.fallback = list;
            for tx in self.sessions.values() {
                // A full session is busy writing; it gets the list again at its next start.
                let _ = tx.try_send(SessionCmd::Fallback(self.fallback.clone()));
            }
        }
    }

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
                    any |= peers::queue_standby(&self.plane.store, cfg)
                        .unwrap_or_else(|e| fatal("queueing standby credentials", &e));
                    if any {
                        self.plane.peer_notify.notify_one();
                    }
                }
                self.refresh_fallback();
            }
            Event::Connected { agent, to_session, reply } => {
                let session = self.core.handle_connect(agent).ok();
                if let Some(s) = session {
                    let _ = to_session.try_send(SessionCmd::Fallback(self.fallback.clone()));
                    self.sessions.insert((agent, s), to_session);
                    info!(agent = %agent, "agent connected");
                }
                let _ = reply.send(session);
                self.publish();
            }
            Event::Message { agent, session, msg } => {
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
                self.publish();
            }
            Event::Credential(c) => {
                match c.directive {
                    Some(d) => {
                        self.core.handle_credential(d, c.credential, now);
                        self.drain();
                    }
                    None => {
                        peers::keep_standby(&self.store, &c.credential)
                            .unwrap_or_else(|e| fatal("keeping standby credentials", &e));
                        self.refresh_fallback();
                    }
                }
                let _ = c.stored.send(());
            }
            Event::ReceiptsOnChain(rs) => {
                let input = CommitInput {
                    receipts: rs.iter().map(|r| (r.directive, r.agent)).collect(),
                    ..CommitInput::default()
                };
                self.core.handle_commit(&input, now);
            }
            Event::TakeMeasurements(reply) => {
                let _ = reply.send(self.core.take_measurements_and_work());
            }
            Event::Tick => {
                self.publish();
                self.ticks += 1;
                if let Some(dir) = self.status_dir.as_ref().filter(|_| self.ticks % STATUS_EVERY_TICKS == 0) {
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
        let c = self.core.counters();
        let (m, was) = (&self.plane.metrics, self.counted);
        m.instructions_sent.inc_by(c.instructions_sent - was.instructions_sent);
        m.acks.inc_by(c.acks - was.acks);
        m.resyncs.inc_by(c.resyncs - was.resyncs);
        m.windows_counted.inc_by(c.windows_recorded - was.windows_recorded);
        m.windows_dropped.inc_by(c.windows_dropped - was.windows_dropped);
        m.receipts_committed.inc_by(c.receipts_committed - was.receipts_committed);
        self.counted = c;
        let lat = self.core.take_latencies_ms();
        for ms in &lat {
            m.ack_latency_seconds.observe(*ms as f64 / 1000.0);
        }
        if !lat.is_empty() {
            let mut kept = m.ack_latencies_ms.lock().expect("latency lock");
            let room = LATENCIES_KEPT.saturating_sub(kept.len());
            kept.extend(lat.into_iter().take(room));
        }
    }

    /// Refresh what other threads read (on every tick and when sessions open or close; not per
    /// acknowledgement, which would copy the view thousands of times a second).
    fn publish(&mut self) {
        let agents = self.core.agents(now_ms());
        let count =
            |f: fn(&AgentView) -> bool| i64::try_from(agents.iter().filter(|a| f(a)).count()).unwrap_or(i64::MAX);
        let m = &self.plane.metrics;
        m.connected.set(count(|a| a.connected));
        m.lost.set(count(|a| a.lost));
        m.outstanding.set(i64::try_from(agents.iter().map(|a| a.outstanding).sum::<u64>()).unwrap_or(i64::MAX));
        let mut p = self.plane.published.lock().expect("published lock");
        p.agents = agents;
        // The sender takes a few transactions' worth at a time; publish only those.
        p.receipts = self.core.pending_receipts(RECEIPTS_PUBLISHED_MAX);
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
        return peers::serve_peer(p.peers.as_deref(), &p.credentials, PoolId(key), first, &mut send, &mut recv)
            .await
            .map_err(PlaneError::Peer);
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
    // Room for every write in flight and a close.
    let writes = usize::try_from(hashmesh_plane::core::node::WRITES_IN_FLIGHT_MAX).expect("small");
    let (to_session, mut cmds) = mpsc::channel::<SessionCmd>(writes + 1);
    let (reply, session) = oneshot::channel();
    p.send(Event::Connected { agent, to_session, reply }).await;
    let Some(session) = session.await.ok().flatten() else {
        return Err(PlaneError::Peer(anyhow::anyhow!("agent {agent} is not registered with this node")));
    };
    // Reader and writer in one select: whichever fails ends the session. The reader keeps
    // partial frames, so losing the race to a write loses no bytes.
    let mut frames = FrameReader::new(&mut recv, PLANE_MSG_BYTES_MAX);
    let result: Result<(), PlaneError> = async {
        loop {
            tokio::select! {
                frame = frames.next() => {
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
                    Some(SessionCmd::Fallback(credentials)) => {
                        let frame = PlaneMsg::Fallback { credentials }.encode();
                        write_frame(&mut send, &frame).await.context("writing to the agent").map_err(PlaneError::Peer)?;
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
