//! `hashmesh bench plane`: the instruction plane on loopback, in one process.
//!
//! 1. Commit-to-applied: `agents` real agents (each persists its routing table with fsync before
//!    acknowledging) serve one group; each commit sets a new route; latency is from the commit
//!    notice reaching the plane (before the outbox write) to the agent's acknowledgement arriving
//!    back at the node — applied, persisted, and a return trip. Run twice: agent homes on the
//!    work disk (all agents queue on one disk's fsyncs) and on tmpfs (as if each had its own).
//! 2. Throughput over one connection: `instructions` queued instructions delivered to one
//!    client that decodes and acknowledges each, versus a bare quinn stream carrying frames of
//!    the same sizes (same TLS, same endpoint settings), measured side by side.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use ed25519_dalek::SigningKey;
use hashmesh_abci::core::Assignment;
use hashmesh_abci::CommitNotice;
use hashmesh_protocol::plane::{Instruction, PlaneMsg, PLANE_MSG_BYTES_MAX};
use hashmesh_protocol::{AgentId, DirectiveId, GroupId, PoolId, RouteTarget};
use serde::Serialize;

use super::registry::{self, AgentEntry, Registry};
use super::service::{start, PlaneOptions};
use super::store::PlaneStore;
use hashmesh_agent::home as agent_home;
use hashmesh_agent::session::{self as agent, AgentOptions};
use hashmesh_plane::core::node::{Persist, PersistBatch};
use hashmesh_plane::transport::endpoint::{connect, server};
use hashmesh_plane::transport::frame::{read_frame, write_frame, FRAME_MAX};
use hashmesh_plane::transport::identity::tls_identity;
use hashmesh_plane::transport::tls::{Role, Trust, ALPN};

/// What to measure.
#[derive(Debug, Clone, Copy)]
pub struct PlaneBenchOptions {
    /// Agents for the latency run.
    pub agents: usize,
    /// Commits in the latency run.
    pub commits: usize,
    /// Instructions in the throughput run.
    pub instructions: usize,
}

/// Results.
#[derive(Debug, Clone, Serialize)]
pub struct PlaneBenchReport {
    /// Agents in the latency run.
    pub agents: usize,
    /// Commits in the latency run.
    pub commits: usize,
    /// Commit-to-applied p50, ms.
    pub latency_p50_ms: f64,
    /// Commit-to-applied p99, ms.
    pub latency_p99_ms: f64,
    /// Commit-to-applied max, ms.
    pub latency_max_ms: f64,
    /// The same (p50, p99, max) with the agents' homes on tmpfs: without one disk's fsync
    /// queue shared by every agent (real agents each have their own disk).
    pub tmpfs_latency_ms: Option<[f64; 3]>,
    /// Instructions in the throughput run.
    pub instructions: usize,
    /// Encoded instruction size, bytes.
    pub frame_bytes: usize,
    /// Instructions/s through the plane (decoded and acknowledged).
    pub plane_per_sec: f64,
    /// Frames/s on a bare quinn stream.
    pub bare_per_sec: f64,
    /// `plane_per_sec / bare_per_sec`.
    pub ratio: f64,
}

const GROUP: &str = "pool-a/g-1";

fn route(n: u64) -> Assignment {
    Assignment {
        group: GROUP.parse().expect("valid"),
        targets: vec![
            RouteTarget { endpoint: "pool-a/ep-1".parse().expect("valid"), weight_bp: 6000 },
            RouteTarget { endpoint: "pool-a/ep-2".parse().expect("valid"), weight_bp: 4000 },
        ],
        directive: DirectiveId(sha(n)),
        since_height: n,
    }
}

fn sha(n: u64) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::digest(n.to_be_bytes()).into()
}

fn quantile(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let k = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[k - 1].as_secs_f64() * 1000.0
}

/// Run both measurements.
///
/// # Errors
/// If a component cannot start or a run stalls for 60 s.
pub fn run(o: PlaneBenchOptions) -> Result<PlaneBenchReport> {
    let tmp = tempfile::tempdir()?;
    let node_key = SigningKey::from_bytes(&[42; 32]);
    let node_id = tls_identity(&node_key)?;

    // 1. Latency with real agents: homes on the work disk, then on tmpfs when there is one.
    let on_disk = latency_run(o, tmp.path(), &node_key)?;
    let shm = std::path::Path::new("/dev/shm");
    let on_tmpfs = if shm.is_dir() {
        let t = tempfile::tempdir_in(shm)?;
        Some(latency_run(o, t.path(), &node_key)?)
    } else {
        None
    };
    let group: GroupId = GROUP.parse()?;

    // 2. Throughput over one connection, then a bare stream with the same frames.
    let client_key = SigningKey::from_bytes(&[43; 32]);
    let client = AgentId(client_key.verifying_key().to_bytes());
    // A backlog of `instructions` written straight into the plane database (a node restarting
    // with an agent that has been away), so the run measures delivery alone.
    let out = PlaneStore::open(&tmp.path().join("outbox-throughput"))?;
    let mut ops: Vec<Persist> = (1..=o.instructions as u64)
        .map(|n| {
            let a = route(n);
            let instruction = Instruction {
                seq: n,
                directive: a.directive,
                height: a.since_height,
                group: a.group,
                targets: a.targets,
                credentials: vec![],
                drained: vec![],
            };
            Persist::Instruction { agent: client, instruction }
        })
        .collect();
    ops.push(Persist::Cursor { agent: client, next_seq: o.instructions as u64 + 1, acked_seq: 0 });
    out.apply(&PersistBatch { id: 0, ops, durable: true })?;
    let sample = PlaneMsg::Instruction(Instruction {
        seq: 1,
        directive: route(1).directive,
        height: 1,
        group: group.clone(),
        targets: route(1).targets,
        credentials: Vec::new(),
        drained: Vec::new(),
    })
    .encode();
    let mut reg = Registry::new();
    reg.insert(client, AgentEntry { id: client, groups: vec![group] });
    let opts = PlaneOptions { listen: "127.0.0.1:0".parse()?, phi_threshold: 8.0, status_dir: None };
    // The node's plane on its own runtime, as in `hashmesh start`; the client on another.
    let node_rt = node_runtime()?;
    let plane = start(out, reg, &node_id, &[], opts, None, node_rt.handle())?;
    let trust = Trust::default();
    trust.insert(node_key.verifying_key().to_bytes(), Role::Node);
    let client_id = tls_identity(&client_key)?;
    let n = o.instructions;
    let addr = plane.local_addr;
    let plane_secs = rt_block(async {
        let conn = connect(addr, &client_id, &trust, ALPN).await?;
        let (mut send, mut recv) = conn.open_bi().await?;
        let t0 = Instant::now();
        write_frame(&mut send, &PlaneMsg::Hello { agent: client, applied_seq: 0 }.encode()).await?;
        for _ in 0..n {
            let f = read_frame(&mut recv, PLANE_MSG_BYTES_MAX).await?.context("plane closed early")?;
            let PlaneMsg::Instruction(i) = PlaneMsg::decode(&f)? else { bail!("expected an instruction") };
            write_frame(&mut send, &PlaneMsg::Ack { seq: i.seq, directive: i.directive, applied_at_ms: 0 }.encode())
                .await?;
        }
        let secs = t0.elapsed().as_secs_f64();
        conn.close(0u32.into(), b"done");
        Ok(secs)
    })?;
    plane.close();

    let bare_secs = rt_block(async {
        let server_trust = Trust::default();
        server_trust.insert(client.0, Role::Agent { groups: Vec::new() });
        let ep = server("127.0.0.1:0".parse()?, &node_id, &server_trust)?;
        let addr = ep.local_addr()?;
        let frame = sample.clone();
        let srv = tokio::spawn(async move {
            let conn = ep.accept().await.context("no connection")?.await?;
            let (mut send, mut recv) = conn.accept_bi().await?;
            read_frame(&mut recv, FRAME_MAX).await?;
            for _ in 0..n {
                write_frame(&mut send, &frame).await?;
            }
            send.finish()?;
            conn.closed().await;
            Ok::<(), anyhow::Error>(())
        });
        let conn = connect(addr, &client_id, &trust, ALPN).await?;
        let (mut send, mut recv) = conn.open_bi().await?;
        let t0 = Instant::now();
        write_frame(&mut send, b"go").await?;
        for _ in 0..n {
            read_frame(&mut recv, FRAME_MAX).await?.context("bare stream closed early")?;
        }
        let secs = t0.elapsed().as_secs_f64();
        conn.close(0u32.into(), b"done");
        let _ = srv.await;
        Ok(secs)
    })?;
    let (plane_per_sec, bare_per_sec) = (n as f64 / plane_secs, n as f64 / bare_secs);
    Ok(PlaneBenchReport {
        agents: o.agents,
        commits: o.commits,
        latency_p50_ms: quantile(&on_disk, 0.5),
        latency_p99_ms: quantile(&on_disk, 0.99),
        latency_max_ms: quantile(&on_disk, 1.0),
        tmpfs_latency_ms: on_tmpfs.map(|l| [quantile(&l, 0.5), quantile(&l, 0.99), quantile(&l, 1.0)]),
        instructions: n,
        frame_bytes: sample.len(),
        plane_per_sec,
        bare_per_sec,
        ratio: plane_per_sec / bare_per_sec,
    })
}

/// Commit-to-applied latencies (sorted) with `o.agents` agents whose homes are under `dir`.
fn latency_run(o: PlaneBenchOptions, dir: &std::path::Path, node_key: &SigningKey) -> Result<Vec<Duration>> {
    let node_id = tls_identity(node_key)?;
    let group: GroupId = GROUP.parse()?;
    let node_dir = dir.join("node");
    std::fs::create_dir_all(&node_dir)?;
    let mut homes = Vec::new();
    for i in 0..o.agents {
        let h = dir.join(format!("agent-{i}"));
        let id = agent_home::init(&h)?;
        registry::add(&node_dir, id, vec![group.clone()])?;
        homes.push(h);
    }
    let opts = PlaneOptions { listen: "127.0.0.1:0".parse()?, phi_threshold: 8.0, status_dir: None };
    let node_rt = node_runtime()?;
    let plane = start(
        PlaneStore::open(&node_dir.join("outbox"))?,
        registry::load(&node_dir)?,
        &node_id,
        &[],
        opts,
        None,
        node_rt.handle(),
    )?;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    for h in &homes {
        let ao = AgentOptions {
            home: h.clone(),
            node: plane.local_addr,
            node_id: PoolId(node_key.verifying_key().to_bytes()),
            heartbeat: Duration::from_secs(1),
            proxy: None,
        };
        rt.spawn(async move {
            let _ = agent::run(ao).await;
        });
    }
    let m = Arc::clone(&plane.plane.metrics);
    wait(|| m.connected.get() == o.agents as i64, "agents to connect")?;
    for c in 1..=o.commits as u64 {
        plane.commits.blocking_send(CommitNotice {
            height: c,
            assignments: vec![route(c)],
            receipts: vec![],
            ..Default::default()
        })?;
        wait(|| m.acks.get() == c * o.agents as u64, "acknowledgements")?;
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut lat: Vec<Duration> = std::mem::take(&mut *m.ack_latencies_ms.lock().expect("latency lock"))
        .into_iter()
        .map(Duration::from_millis)
        .collect();
    lat.sort();
    plane.close();
    rt.shutdown_timeout(Duration::from_secs(2));
    drop(plane);
    node_rt.shutdown_timeout(Duration::from_secs(2));
    Ok(lat)
}

/// A runtime like the node's (two workers).
fn node_runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().worker_threads(2).thread_name("node").enable_all().build()?)
}

fn rt_block<T>(f: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(async { tokio::time::timeout(Duration::from_secs(120), f).await.context("benchmark run stalled")? })
}

fn wait(mut f: impl FnMut() -> bool, what: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f() {
        if Instant::now() > deadline {
            bail!("timed out waiting for {what}");
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    Ok(())
}

/// The report as a table.
#[must_use]
pub fn render(r: &PlaneBenchReport) -> String {
    let tmpfs = r.tmpfs_latency_ms.map_or(String::new(), |[a, b, c]| {
        format!("  same, agent homes on tmpfs:              p50 {a:.2} ms  p99 {b:.2} ms  max {c:.2} ms\n")
    });
    format!(
        "commit-to-applied, {} agents, {} commits (target p99 <= 20 ms):\n  agent homes on one shared disk (fsync): p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms\n{tmpfs}\
         one connection, {} instructions of {} bytes:\n\
         {:<28}{:>14}\n{:<28}{:>14.0}\n{:<28}{:>14.0}\n{:<28}{:>14.2}\n",
        r.agents,
        r.commits,
        r.latency_p50_ms,
        r.latency_p99_ms,
        r.latency_max_ms,
        r.instructions,
        r.frame_bytes,
        "path",
        "per second",
        "hashmesh plane (ack each)",
        r.plane_per_sec,
        "bare quinn stream",
        r.bare_per_sec,
        "ratio plane / bare",
        r.ratio
    )
}
