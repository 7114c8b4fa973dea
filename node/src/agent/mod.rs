//! The agent: an edge process beside a Stratum proxy. It connects to its pool's node over the
//! plane (reconnecting with backoff and full jitter), holds the routing table of its groups,
//! applies instructions idempotently (by directive id) and persists them before acknowledging,
//! and sends a heartbeat every second carrying the measurements the Stratum proxy writes to
//! `telemetry.json`. The proxy that moves real miners reads the routing table (`state.json`);
//! it comes in a later issue.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use hashmesh_protocol::plane::{Instruction, PlaneMsg, PLANE_MSG_BYTES_MAX};
use hashmesh_protocol::{AgentId, PoolId, RouteTarget};
use hashmesh_scheduler::phi::Backoff;
use hashmesh_scheduler::rng::Rng;
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::home::{create_secret_file, read_secret_file};
use crate::plane::endpoint::connect;
use crate::plane::frame::{read_frame, write_frame};
use crate::plane::identity::tls_identity;
use crate::plane::service::now_ms;
use crate::plane::tls::{Role, Trust, ALPN};

/// The agent's key file (0600).
pub const KEY_FILE: &str = "agent_key.json";
/// The routing table and delivery cursor.
pub const STATE_FILE: &str = "state.json";
/// Measurements per endpoint, written by the Stratum proxy beside the agent
/// (`{"pool-a/ep-1": TelemetryReport, …}`); forwarded in every heartbeat.
pub const TELEMETRY_FILE: &str = "telemetry.json";

/// The measurements the proxy last wrote (none when the file is absent or unreadable).
#[must_use]
pub fn read_telemetry(home: &Path) -> Vec<(hashmesh_protocol::EndpointId, hashmesh_protocol::TelemetryReport)> {
    std::fs::read(home.join(TELEMETRY_FILE))
        .ok()
        .and_then(|b| {
            serde_json::from_slice::<BTreeMap<hashmesh_protocol::EndpointId, hashmesh_protocol::TelemetryReport>>(&b)
                .ok()
        })
        .map(|m| m.into_iter().take(hashmesh_protocol::plane::HEARTBEAT_REPORTS_MAX).collect())
        .unwrap_or_default()
}

#[derive(Serialize, Deserialize)]
struct KeyFile {
    agent_id: String,
    secret_seed: String,
}

/// Create an agent home with a new key; returns the agent id to register with the node.
///
/// # Errors
/// If the directory cannot be written or already holds a key.
pub fn init(dir: &Path) -> Result<AgentId> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut seed = [0u8; 32];
    OsRng.fill_bytes(&mut seed);
    let key = ed25519_dalek::SigningKey::from_bytes(&seed);
    let id = AgentId(key.verifying_key().to_bytes());
    let path = dir.join(KEY_FILE);
    if path.exists() {
        bail!("{} already exists; refusing to overwrite an agent key (use another --home)", path.display());
    }
    let file = KeyFile { agent_id: id.to_hex(), secret_seed: hex::encode(seed) };
    create_secret_file(&path, &serde_json::to_string_pretty(&file)?)?;
    Ok(id)
}

/// The agent's key.
///
/// # Errors
/// If the key file is missing, malformed or readable by others.
pub fn load_key(dir: &Path) -> Result<ed25519_dalek::SigningKey> {
    let path = dir.join(KEY_FILE);
    let file: KeyFile = serde_json::from_slice(
        &read_secret_file(&path)
            .with_context(|| format!("no agent key; run `hashmesh agent init --home {}` first", dir.display()))?,
    )
    .with_context(|| format!("parsing {}", path.display()))?;
    let mut seed = [0u8; 32];
    hex::decode_to_slice(&file.secret_seed, &mut seed).context("secret_seed must be 64 hex characters")?;
    let key = ed25519_dalek::SigningKey::from_bytes(&seed);
    if hex::encode(key.verifying_key().as_bytes()) != file.agent_id {
        bail!("{}: agent_id does not match secret_seed", path.display());
    }
    Ok(key)
}

/// One group's applied route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedRoute {
    /// The directive that set it.
    pub directive: String,
    /// Its commit height.
    pub height: u64,
    /// The split.
    pub routes: Vec<RouteTarget>,
    /// When this agent applied it, ms since the Unix epoch.
    pub applied_at_ms: u64,
    /// The instruction that carried it.
    pub seq: u64,
    /// Worker credentials for other pools' endpoints in `routes` (cross-pool routes).
    #[serde(default)]
    pub credentials: Vec<hashmesh_protocol::plane::WorkerCredential>,
    /// Endpoints of `routes` that are drained.
    #[serde(default)]
    pub drained: Vec<hashmesh_protocol::EndpointId>,
}

impl AppliedRoute {
    /// The split to use now: the route without its drained endpoints, their weight spread over
    /// the rest in proportion (basis points summing to 10 000). If every endpoint is drained,
    /// the route as committed.
    #[must_use]
    pub fn effective(&self) -> Vec<RouteTarget> {
        let live: Vec<&RouteTarget> = self.routes.iter().filter(|t| !self.drained.contains(&t.endpoint)).collect();
        if live.is_empty() || live.len() == self.routes.len() {
            return self.routes.clone();
        }
        let shares: Vec<f64> = live.iter().map(|t| f64::from(t.weight_bp)).collect();
        hashmesh_scheduler::weights::to_basis_points(&shares)
            .into_iter()
            .zip(live)
            .map(|(w, t)| RouteTarget { endpoint: t.endpoint.clone(), weight_bp: w })
            .collect()
    }
}

/// The routing table and the delivery cursor, persisted in `state.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentState {
    /// Highest instruction handled.
    pub applied_seq: u64,
    /// Instructions whose route took effect (not duplicates, not superseded).
    pub applied_count: u64,
    /// Current route per group.
    pub routes: BTreeMap<String, AppliedRoute>,
}

impl AgentState {
    /// Load `state.json` (empty when absent).
    ///
    /// # Errors
    /// If it exists and does not parse.
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join(STATE_FILE);
        if !path.exists() {
            return Ok(Self::default());
        }
        serde_json::from_slice(&std::fs::read(&path)?).with_context(|| format!("parsing {}", path.display()))
    }

    /// Persist atomically and durably (write, fsync, rename).
    ///
    /// # Errors
    /// If the file cannot be written.
    pub fn save(&self, dir: &Path) -> Result<()> {
        use std::io::Write;
        let tmp = dir.join(format!("{STATE_FILE}.tmp"));
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&serde_json::to_vec_pretty(self)?)?;
        f.sync_all()?;
        std::fs::rename(&tmp, dir.join(STATE_FILE))?;
        Ok(())
    }

    /// Apply `i` at `now_ms`; returns the time to acknowledge with. Idempotent by directive: a
    /// directive already in effect keeps its first time (an instruction for it updates its
    /// drained endpoints, and its credentials when it carries some); an instruction older than
    /// the group's current route is acknowledged without changing it.
    pub fn apply(&mut self, i: &Instruction, now_ms: u64) -> u64 {
        self.applied_seq = self.applied_seq.max(i.seq);
        let directive = i.directive.to_hex();
        match self.routes.get_mut(i.group.as_str()) {
            Some(r) if r.directive == directive => {
                if !i.credentials.is_empty() {
                    r.credentials.clone_from(&i.credentials);
                }
                r.drained.clone_from(&i.drained);
                r.applied_at_ms
            }
            Some(r) if r.height > i.height => now_ms,
            _ => {
                self.applied_count += 1;
                self.routes.insert(
                    i.group.to_string(),
                    AppliedRoute {
                        directive,
                        height: i.height,
                        routes: i.routes.clone(),
                        applied_at_ms: now_ms,
                        seq: i.seq,
                        credentials: i.credentials.clone(),
                        drained: i.drained.clone(),
                    },
                );
                now_ms
            }
        }
    }
}

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
}

/// Run forever: connect, serve the session, back off with full jitter, reconnect.
///
/// # Errors
/// Only if the key or state cannot be loaded at start.
pub async fn run(opts: AgentOptions) -> Result<()> {
    let key = load_key(&opts.home)?;
    let id = tls_identity(&key)?;
    let me = AgentId(key.verifying_key().to_bytes());
    let trust = Trust::default();
    trust.insert(opts.node_id.0, Role::Node);
    let mut state = AgentState::load(&opts.home)?;
    let backoff = Backoff { base_ms: 200, cap_ms: 10_000 };
    let mut rng = Rng::new(u64::from_le_bytes(me.0[..8].try_into().expect("8 bytes")) ^ now_ms());
    let mut attempt = 0u32;
    info!(agent = %me, node = %opts.node, "agent starting");
    loop {
        let started = Instant::now();
        match session(&opts, &id, &trust, me, &mut state).await {
            Ok(()) => info!("node closed the plane connection"),
            Err(e) => warn!(error = %format!("{e:#}"), "plane session ended"),
        }
        if started.elapsed() > Duration::from_secs(10) {
            attempt = 0;
        }
        let wait = backoff.delay_ms(attempt, &mut rng);
        attempt = attempt.saturating_add(1);
        tokio::time::sleep(Duration::from_millis(wait)).await;
    }
}

async fn session(
    opts: &AgentOptions,
    id: &crate::plane::identity::TlsIdentity,
    trust: &Trust,
    me: AgentId,
    state: &mut AgentState,
) -> Result<()> {
    let conn = connect(opts.node, id, trust, ALPN).await?;
    let (send, mut recv) = conn.open_bi().await.context("opening the plane stream")?;
    let send = Arc::new(tokio::sync::Mutex::new(send));
    write_frame(&mut *send.lock().await, &PlaneMsg::Hello { agent: me, applied_seq: state.applied_seq }.encode())
        .await?;
    info!(node = %opts.node, applied_seq = state.applied_seq, "connected to node");
    // Aborted when the session ends or is cancelled (a dropped session must not keep beating).
    let _beats = {
        let (send, every, home) = (Arc::clone(&send), opts.heartbeat, opts.home.clone());
        AbortOnDrop(tokio::spawn(async move {
            loop {
                let msg = PlaneMsg::Heartbeat { at_ms: now_ms(), reports: read_telemetry(&home) }.encode();
                if write_frame(&mut *send.lock().await, &msg).await.is_err() {
                    return;
                }
                tokio::time::sleep(every).await;
            }
        }))
    };
    let result = async {
        while let Some(bytes) = read_frame(&mut recv, PLANE_MSG_BYTES_MAX).await? {
            let PlaneMsg::Instruction(i) =
                PlaneMsg::decode(&bytes).context("unknown or malformed message from node")?
            else {
                bail!("the node may only send instructions");
            };
            let applied_at_ms = state.apply(&i, now_ms());
            // Durable before the acknowledgement; off the async workers (fsync blocks).
            let (snapshot, home) = (state.clone(), opts.home.clone());
            tokio::task::spawn_blocking(move || snapshot.save(&home)).await.context("state writer")??;
            info!(seq = i.seq, directive = %i.directive, group = %i.group, "instruction applied");
            let ack = PlaneMsg::Ack { seq: i.seq, directive: i.directive, applied_at_ms };
            write_frame(&mut *send.lock().await, &ack.encode()).await?;
        }
        Ok(())
    }
    .await;
    result
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
