//! The agent's IO driver: connect to the node (reconnecting with full-jitter backoff), and run
//! one session as a single `select!` over the node's stream and the heartbeat timer, around the
//! sans-IO [`AgentPlane`]. The routing table is persisted (off the async workers) before any
//! acknowledgement leaves; a failed write ends the session. Each applied routing table goes to
//! the Stratum proxy, and the proxy's measurements go out in the heartbeats.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use hashmesh_plane::core::agent::AgentPlane;
use hashmesh_plane::host::clock::now_ms;
use hashmesh_plane::transport::endpoint::{closed_cleanly, connect, Connection};
use hashmesh_plane::transport::frame::{push_frame, FrameReader};
use hashmesh_plane::transport::identity::{tls_identity, TlsIdentity};
use hashmesh_plane::transport::tls::{Role, Trust, ALPN};
use hashmesh_plane::PlaneError;
use hashmesh_protocol::plane::{PlaneMsg, PLANE_MSG_BYTES_MAX};
use hashmesh_protocol::{AgentId, PoolId};
use hashmesh_scheduler::phi::Backoff;
use hashmesh_scheduler::rng::Rng;
use tracing::{info, warn};

use crate::home;
use crate::proxy::driver::ProxyHandle;

/// Where and whom to connect to.
#[derive(Debug, Clone)]
pub struct AgentOptions {
    /// The agent home.
    pub home: PathBuf,
    /// The node's plane address.
    pub node: SocketAddr,
    /// The node's pool key (pinned in the handshake).
    pub node_id: PoolId,
    /// Heartbeat interval.
    pub heartbeat: Duration,
    /// The Stratum proxy, when the agent has a `stratum.json`: it gets every routing table the
    /// agent applies, and its measurements go out in the heartbeats.
    pub proxy: Option<ProxyHandle>,
}

/// Run forever: connect, serve the session, back off with full jitter, reconnect.
///
/// # Errors
/// If the key or state cannot be loaded at start, or a local fault (the routing table cannot be
/// saved) ends a session: the agent must not keep acknowledging what it cannot persist.
pub async fn run(opts: AgentOptions) -> Result<()> {
    let key = home::load_key(&opts.home)?;
    let id = tls_identity(&key)?;
    let me = AgentId(key.verifying_key().to_bytes());
    let trust = Trust::default();
    trust.insert(opts.node_id.0, Role::Node);
    let heartbeat_ms = u64::try_from(opts.heartbeat.as_millis()).unwrap_or(u64::MAX);
    let mut plane = AgentPlane::new(me, home::load_state(&opts.home)?, heartbeat_ms);
    if let Some(p) = &opts.proxy {
        // Route by what was committed and applied before this start, until the node says more.
        p.routes(plane.state().routes.clone()).await;
        p.fallback(plane.state().fallback.clone()).await;
    }
    let backoff = Backoff { base_ms: 200, cap_ms: 10_000 };
    let mut rng = Rng::new(u64::from_le_bytes(me.0[..8].try_into().expect("8 bytes")) ^ now_ms());
    let mut attempt = 0u32;
    info!(agent = %me, node = %opts.node, "agent starting");
    loop {
        let started = Instant::now();
        match session(&opts, &id, &trust, &mut plane).await {
            Ok(()) => info!("node closed the plane connection"),
            Err(PlaneError::Peer(e)) => match hint(&e, &opts, &me) {
                Some(what_to_do) => warn!(error = %format!("{e:#}"), "{what_to_do}"),
                None => warn!(error = %format!("{e:#}"), "plane session ended"),
            },
            Err(PlaneError::Local(e)) => return Err(e.context("agent stopped on a local fault")),
        }
        plane.handle_disconnected();
        if started.elapsed() > Duration::from_secs(10) {
            attempt = 0;
        }
        let wait = backoff.delay_ms(attempt, &mut rng);
        attempt = attempt.saturating_add(1);
        tokio::time::sleep(Duration::from_millis(wait)).await;
    }
}

/// Longest the agent waits for the node's handshake before it says so and tries again.
const CONNECT_WAIT: Duration = Duration::from_secs(5);

/// What an operator should do about a session that failed this way, when the error says.
fn hint(e: &anyhow::Error, opts: &AgentOptions, me: &AgentId) -> Option<String> {
    let text = format!("{e:#}");
    if text.contains("aborted by peer") && text.contains("is not trusted") {
        // The node's check of our key refused it: not registered there.
        return Some(format!(
            "the node at {} refused this agent's key: register it there with `hashmesh agents add --home NODE_HOME --key {me} --groups GROUPS`, then restart that node",
            opts.node
        ));
    }
    if let Some(at) = text.find("key ").filter(|_| text.contains("is not trusted")) {
        // Our own check of the node's key refused it: the wrong --node-id.
        let proved: String = text[at + 4..].chars().take_while(char::is_ascii_hexdigit).collect();
        return Some(format!(
            "the node at {} proved pool key {proved}, but --node-id is {}: pass the node's pool id (`hashmesh keys show --home NODE_HOME` prints it)",
            opts.node, opts.node_id
        ));
    }
    if text.contains("no answer within") || text.contains("timed out") {
        return Some(format!(
            "no answer from the node at {}: is `hashmesh start` running there with `[plane] listen` on that address, and UDP open between here and there? retrying",
            opts.node
        ));
    }
    None
}

async fn session(
    opts: &AgentOptions,
    id: &TlsIdentity,
    trust: &Trust,
    plane: &mut AgentPlane,
) -> Result<(), PlaneError> {
    let conn = tokio::time::timeout(CONNECT_WAIT, connect(opts.node, id, trust, ALPN))
        .await
        .map_err(|_| {
            PlaneError::Peer(anyhow::anyhow!("handshake with {}: no answer within {CONNECT_WAIT:?}", opts.node))
        })?
        .map_err(PlaneError::Peer)?;
    let result = serve(opts, &conn, plane).await;
    match result {
        // The node ended the session on purpose (code 0: it is stopping): not a fault.
        Err(PlaneError::Peer(_)) if closed_cleanly(&conn) => Ok(()),
        r => r,
    }
}

async fn serve(opts: &AgentOptions, conn: &Connection, plane: &mut AgentPlane) -> Result<(), PlaneError> {
    let (mut send, mut recv) = conn.open_bi().await.context("opening the plane stream").map_err(PlaneError::Peer)?;
    // Cancel-safe: a heartbeat timer winning the select never loses a partial frame.
    let mut frames = FrameReader::new(&mut recv, PLANE_MSG_BYTES_MAX);
    plane.handle_connected(now_ms());
    // The handshake finishes on our side before the node has checked our key: "connected" is
    // said when the node's first message arrives (it sends the fallback list at once).
    let mut greeted = false;
    loop {
        // Outputs first: persist, then write whatever may go.
        if let Some(state) = plane.poll_persist() {
            let dir = opts.home.clone();
            tokio::task::spawn_blocking(move || home::save_state(&dir, &state))
                .await
                .context("state writer task")
                .and_then(|r| r)
                .map_err(PlaneError::Local)?;
            plane.handle_persisted();
        }
        let mut buf = Vec::new();
        while let Some(msg) = plane.poll_transmit() {
            push_frame(&mut buf, &msg.encode()).context("framing").map_err(PlaneError::Local)?;
        }
        if !buf.is_empty() {
            send.write_all(&buf).await.context("writing to the node").map_err(PlaneError::Peer)?;
        }
        let wait = plane.poll_timeout().map_or(1000, |at| at.saturating_sub(now_ms()));
        tokio::select! {
            frame = frames.next() => {
                let Some(bytes) = frame.context("reading from the node").map_err(PlaneError::Peer)? else {
                    return Ok(());
                };
                if !greeted {
                    greeted = true;
                    info!(node = %opts.node, applied_seq = plane.state().applied_seq, "connected to node");
                }
                let msg = PlaneMsg::decode(&bytes).context("unknown or malformed message from node").map_err(PlaneError::Peer)?;
                let what = match &msg {
                    PlaneMsg::Instruction(i) => Some((i.seq, i.directive, i.group.clone())),
                    _ => None,
                };
                let fallback = matches!(msg, PlaneMsg::Fallback { .. });
                plane.handle_message(msg, now_ms()).map_err(|e| PlaneError::Peer(e.into()))?;
                if fallback {
                    let list = plane.state().fallback.clone();
                    info!(endpoints = list.len(), "fallback list from the node");
                    if let Some(p) = &opts.proxy {
                        p.fallback(list).await;
                    }
                }
                if let Some((seq, directive, group)) = what {
                    info!(seq, directive = %directive, group = %group, "instruction applied");
                    if let Some(p) = &opts.proxy {
                        p.routes(plane.state().routes.clone()).await;
                    }
                }
            }
            () = tokio::time::sleep(Duration::from_millis(wait)) => {
                // Only a proxying agent measures anything; without one, heartbeats carry liveness.
                let proxy = opts.proxy.as_ref();
                plane.handle_timeout(now_ms(), || proxy.map(|p| p.take_windows()).unwrap_or_default());
            }
        }
    }
}
