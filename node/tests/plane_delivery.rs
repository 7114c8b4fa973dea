//! Delivery over the plane, in process (no CometBFT): committed routes reach every agent of the
//! group, in order, exactly once in effect — across agent and node restarts; acknowledgements
//! become receipts; bad frames and lying peers lose their connection, nobody else does.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use hashmesh_abci::core::{Assignment, ReceiptRecord};
use hashmesh_abci::CommitNotice;
use hashmesh_agent::home as agent;
use hashmesh_agent::session::{run as run_agent, AgentOptions};
use hashmesh_node::plane::registry::{self, Registry};
use hashmesh_node::plane::service::{start, PlaneHandle, PlaneOptions};
use hashmesh_node::plane::store::PlaneStore as Outbox;
use hashmesh_plane::core::agent::AgentState;
use hashmesh_plane::transport::endpoint::connect;
use hashmesh_plane::transport::frame::write_frame;
use hashmesh_plane::transport::identity::tls_identity;
use hashmesh_plane::transport::tls::{Role, Trust, ALPN};
use hashmesh_protocol::plane::PlaneMsg;
use hashmesh_protocol::{AgentId, DirectiveId, PoolId, RouteTarget};

const NODE_SEED: [u8; 32] = [5; 32];

fn assignment(n: u8, height: u64) -> Assignment {
    Assignment {
        group: "pool-a/g-1".parse().unwrap(),
        targets: vec![RouteTarget { endpoint: format!("pool-a/ep-{n}").parse().unwrap(), weight_bp: 10_000 }],
        directive: DirectiveId([n; 32]),
        since_height: height,
    }
}

fn start_node(dir: &Path, reg: &Registry, initial: &[Assignment]) -> PlaneHandle {
    let deadline = Instant::now() + Duration::from_secs(10);
    let outbox = loop {
        // The previous node's database is released when its runtime winds down.
        match Outbox::open(&dir.join("outbox")) {
            Ok(o) => break o,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("outbox: {e:#}"),
        }
    };
    let id = tls_identity(&SigningKey::from_bytes(&NODE_SEED)).unwrap();
    let opts =
        PlaneOptions { listen: "127.0.0.1:0".parse().unwrap(), phi_threshold: 8.0, status_dir: Some(dir.into()) };
    start(outbox, reg.clone(), &id, initial, opts, None, &tokio::runtime::Handle::current()).expect("plane starts")
}

fn spawn_agent(home: &Path, node: SocketAddr) -> tokio::task::JoinHandle<()> {
    let opts = AgentOptions {
        home: home.into(),
        node,
        node_id: PoolId(SigningKey::from_bytes(&NODE_SEED).verifying_key().to_bytes()),
        heartbeat: Duration::from_millis(200),
        proxy: None,
    };
    tokio::spawn(async move {
        let _ = run_agent(opts).await;
    })
}

async fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn state(home: &Path) -> AgentState {
    agent::load_state(home).unwrap_or_default()
}

fn directive_of(home: &Path) -> Option<String> {
    state(home).routes.get(&"pool-a/g-1".parse().unwrap()).map(|r| r.directive.to_hex())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_reach_every_agent_once_across_restarts_and_become_receipts() {
    let tmp = tempfile::tempdir().unwrap();
    let node_dir = tmp.path().join("node");
    std::fs::create_dir_all(&node_dir).unwrap();
    let homes: Vec<_> = (0..2).map(|i| tmp.path().join(format!("agent-{i}"))).collect();
    let mut ids = Vec::new();
    for h in &homes {
        let id = agent::init(h).unwrap();
        registry::add(&node_dir, id, vec!["pool-a/g-1".parse().unwrap()]).unwrap();
        ids.push(id);
    }
    let reg = registry::load(&node_dir).unwrap();

    // A route committed before the node's plane started is delivered on start.
    let mut node = start_node(&node_dir, &reg, &[assignment(1, 10)]);
    let mut agents: Vec<_> = homes.iter().map(|h| spawn_agent(h, node.local_addr)).collect();
    let d1 = DirectiveId([1; 32]).to_hex();
    wait_until("both agents apply route 1", || homes.iter().all(|h| directive_of(h).as_deref() == Some(&d1))).await;

    // A commit while connected: delivered at once.
    node.commits
        .send(CommitNotice { height: 11, assignments: vec![assignment(2, 11)], receipts: vec![], ..Default::default() })
        .await
        .unwrap();
    let d2 = DirectiveId([2; 32]).to_hex();
    wait_until("both agents apply route 2", || homes.iter().all(|h| directive_of(h).as_deref() == Some(&d2))).await;

    // Kill agent 0: phi accrual over its heartbeats judges it lost, in the published status.
    agents[0].abort();
    let id0 = ids[0].to_hex();
    let deadline = Instant::now() + Duration::from_secs(15);
    while !registry::read_status(&node_dir).unwrap().iter().any(|s| s.id == id0 && s.lost) {
        assert!(Instant::now() < deadline, "agent 0 not judged lost: {:?}", registry::read_status(&node_dir).unwrap());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(node.plane.metrics.lost.get() >= 1);
    // Commit route 3 while it is down; it comes back and catches up, applying it once.
    node.commits
        .send(CommitNotice { height: 12, assignments: vec![assignment(3, 12)], receipts: vec![], ..Default::default() })
        .await
        .unwrap();
    let d3 = DirectiveId([3; 32]).to_hex();
    wait_until("agent 1 applies route 3", || directive_of(&homes[1]).as_deref() == Some(&d3)).await;
    agents[0] = spawn_agent(&homes[0], node.local_addr);
    wait_until("agent 0 catches up", || directive_of(&homes[0]).as_deref() == Some(&d3)).await;

    // Kill the node with route 4 queued but undelivered (agents down too), restart it and them.
    for a in &agents {
        a.abort();
    }
    node.commits
        .send(CommitNotice { height: 13, assignments: vec![assignment(4, 13)], receipts: vec![], ..Default::default() })
        .await
        .unwrap();
    let queued = || Outbox::open(&node_dir.join("outbox")).is_err();
    assert!(queued(), "the running node holds its outbox");
    tokio::time::sleep(Duration::from_millis(200)).await;
    node.close();
    drop(node);
    node = start_node(&node_dir, &reg, &[assignment(4, 13)]);
    agents = homes.iter().map(|h| spawn_agent(h, node.local_addr)).collect();
    let d4 = DirectiveId([4; 32]).to_hex();
    wait_until("both agents apply route 4 after the node restart", || {
        homes.iter().all(|h| directive_of(h).as_deref() == Some(&d4))
    })
    .await;
    for h in &homes {
        let s = state(h);
        assert_eq!(s.applied_count, 4, "four routes, each in effect once: {s:?}");
    }

    // Every (directive, agent) pair became one receipt; committing them clears the queue.
    let pending = {
        let p = &node.plane;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let r = p.pending_receipts(64);
            if r.len() == 8 || Instant::now() > deadline {
                break r;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    assert_eq!(pending.len(), 8, "4 directives × 2 agents: {pending:?}");
    let receipts: Vec<ReceiptRecord> = pending
        .iter()
        .map(|r| ReceiptRecord {
            directive: r.directive,
            agent: r.agent,
            pool: PoolId([0; 32]),
            applied_at_ms: r.applied_at_ms,
            height: 14,
        })
        .collect();
    node.commits.send(CommitNotice { height: 14, assignments: vec![], receipts, ..Default::default() }).await.unwrap();
    let plane = std::sync::Arc::clone(&node.plane);
    wait_until("receipts cleared", || plane.pending_receipts(64).is_empty()).await;

    // The published status shows both agents connected and the last directive.
    wait_until("status file", || {
        registry::read_status(&node_dir)
            .unwrap()
            .iter()
            .all(|s| s.connected && s.last_directive.as_deref() == Some(&d4) && s.outstanding == 0)
    })
    .await;

    // A registered agent that claims another identity, and one that sends garbage, lose their
    // connection; the others keep being served.
    let trust = Trust::default();
    trust.insert(SigningKey::from_bytes(&NODE_SEED).verifying_key().to_bytes(), Role::Node);
    let key0 = agent::load_key(&homes[0]).unwrap();
    let refused_before = node.plane.metrics.refused.get();
    for bad in [PlaneMsg::Hello { agent: AgentId([9; 32]), applied_seq: 0 }.encode(), vec![0xff, 0xff, 0xff]] {
        let conn = connect(node.local_addr, &tls_identity(&key0).unwrap(), &trust, ALPN).await.unwrap();
        let (mut send, _recv) = conn.open_bi().await.unwrap();
        write_frame(&mut send, &bad).await.unwrap();
        let reason = tokio::time::timeout(Duration::from_secs(10), conn.closed()).await.expect("closed by the node");
        assert!(format!("{reason}").contains("protocol error"), "{reason}");
    }
    // A truncated frame: a header promising 100 bytes, 10 bytes, then the end of the stream.
    let conn = connect(node.local_addr, &tls_identity(&key0).unwrap(), &trust, ALPN).await.unwrap();
    let (mut send, _recv) = conn.open_bi().await.unwrap();
    write_frame(&mut send, &PlaneMsg::Hello { agent: ids[0], applied_seq: 0 }.encode()).await.unwrap();
    send.write_all(&100u32.to_be_bytes()).await.unwrap();
    send.write_all(&[0; 10]).await.unwrap();
    send.finish().unwrap();
    tokio::time::timeout(Duration::from_secs(10), conn.closed()).await.expect("closed by the node");
    // An oversized frame header.
    let conn = connect(node.local_addr, &tls_identity(&key0).unwrap(), &trust, ALPN).await.unwrap();
    let (mut send, _recv) = conn.open_bi().await.unwrap();
    send.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), conn.closed()).await.expect("closed by the node");
    assert_eq!(node.plane.metrics.refused.get(), refused_before + 4);

    node.commits
        .send(CommitNotice { height: 15, assignments: vec![assignment(5, 15)], receipts: vec![], ..Default::default() })
        .await
        .unwrap();
    let d5 = DirectiveId([5; 32]).to_hex();
    wait_until("others still served", || homes.iter().all(|h| directive_of(h).as_deref() == Some(&d5))).await;

    for a in &agents {
        a.abort();
    }
    node.close();
}
