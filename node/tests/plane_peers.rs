//! The node-to-node channel, in process: a lending node delivers worker credentials to the
//! borrowing node, which forwards them to its agents; drains and restores reach the agents of
//! routes that use the endpoint; agents' measurement windows feed the `agents` telemetry source,
//! merged; a
//! peer that lies about who it is, or sends
//! credentials it has no business sending, loses its connection.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use hashmesh_abci::core::{Assignment, EndpointRecord};
use hashmesh_abci::CommitNotice;
use hashmesh_agent::home as agent;
use hashmesh_agent::session::{run as run_agent, AgentOptions};
use hashmesh_node::live::source::{AgentSource, TelemetrySource};
use hashmesh_node::plane::peers::{standby_worker, ChainView, OpenOffer, PeerConfig};
use hashmesh_node::plane::registry;
use hashmesh_node::plane::service::{start, PlaneOptions};
use hashmesh_node::plane::store::PlaneStore as Outbox;
use hashmesh_plane::transport::endpoint::connect;
use hashmesh_plane::transport::frame::write_frame;
use hashmesh_plane::transport::identity::tls_identity;
use hashmesh_plane::transport::tls::{Role, Trust, ALPN};
use hashmesh_protocol::plane::{PlaneMsg, WorkerCredential};
use hashmesh_protocol::{DirectiveId, EndpointId, EndpointWindow, GroupId, PoolId, RouteTarget};

fn key(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n; 32])
}
fn pool(n: u8) -> PoolId {
    PoolId(key(n).verifying_key().to_bytes())
}

/// Pools a (1) and b (2); a's group g-1 is routed onto b/ep-1 and a/ep-1; `DRAINED` lists
/// drained endpoints.
struct Chain;

static DRAINED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

impl ChainView for Chain {
    fn pools(&self) -> Vec<PoolId> {
        vec![pool(1), pool(2)]
    }
    fn group_owner(&self, g: &GroupId) -> Option<PoolId> {
        g.as_str().starts_with("pool-a/").then(|| pool(1))
    }
    fn endpoint_owner(&self, e: &EndpointId) -> Option<PoolId> {
        match &e.as_str()[..6] {
            "pool-a" => Some(pool(1)),
            "pool-b" => Some(pool(2)),
            _ => None,
        }
    }
    fn assignment(&self, g: &GroupId) -> Option<Assignment> {
        (g.as_str() == "pool-a/g-1").then(cross)
    }
    fn drained(&self, e: &EndpointId) -> bool {
        DRAINED.lock().unwrap().iter().any(|d| d == e.as_str())
    }
    fn loan_opened(&self, g: &GroupId, e: &EndpointId) -> Option<u64> {
        (g.as_str() == "pool-a/g-1" && e.as_str() == "pool-b/ep-1").then_some(9)
    }
    fn offers(&self) -> Vec<OpenOffer> {
        let offer =
            |e: &str, owner: u8, fee_bp: u16| OpenOffer { endpoint: e.parse().unwrap(), owner: pool(owner), fee_bp };
        vec![offer("pool-a/ep-2", 1, 50), offer("pool-b/ep-2", 2, 200), offer("pool-b/ep-3", 2, 100)]
    }
}

fn cross() -> Assignment {
    Assignment {
        group: "pool-a/g-1".parse().unwrap(),
        targets: vec![
            RouteTarget { endpoint: "pool-a/ep-1".parse().unwrap(), weight_bp: 3000 },
            RouteTarget { endpoint: "pool-b/ep-1".parse().unwrap(), weight_bp: 7000 },
        ],
        directive: DirectiveId([7; 32]),
        since_height: 9,
    }
}

async fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_and_measurements_cross_the_plane_and_liars_are_cut_off() {
    let tmp = tempfile::tempdir().unwrap();
    let (a_dir, b_dir, agent_home) = (tmp.path().join("a"), tmp.path().join("b"), tmp.path().join("agent"));
    std::fs::create_dir_all(&a_dir).unwrap();
    std::fs::create_dir_all(&b_dir).unwrap();
    let agent_id = agent::init(&agent_home).unwrap();
    registry::add(&a_dir, agent_id, vec!["pool-a/g-1".parse().unwrap()]).unwrap();
    let opts = || PlaneOptions { listen: "127.0.0.1:0".parse().unwrap(), phi_threshold: 8.0, status_dir: None };
    let peers = |me: u8, addrs: BTreeMap<PoolId, std::net::SocketAddr>| PeerConfig {
        me: pool(me),
        addrs,
        chain: Arc::new(Chain),
        identity: tls_identity(&key(me)).unwrap(),
    };

    // Borrower a, with its agent.
    let a = start(
        Outbox::open(&a_dir.join("outbox")).unwrap(),
        registry::load(&a_dir).unwrap(),
        &tls_identity(&key(1)).unwrap(),
        &[cross()],
        opts(),
        Some(peers(1, BTreeMap::new())),
        &tokio::runtime::Handle::current(),
    )
    .unwrap();
    let ao = AgentOptions {
        home: agent_home.clone(),
        node: a.local_addr,
        node_id: pool(1),
        heartbeat: Duration::from_secs(1),
        proxy: None,
    };
    let agent_task = tokio::spawn(async move {
        let _ = run_agent(ao).await;
    });
    // Lender b: the committed cross route makes it send credentials for b/ep-1 to a.
    let b = start(
        Outbox::open(&b_dir.join("outbox")).unwrap(),
        registry::Registry::new(),
        &tls_identity(&key(2)).unwrap(),
        &[cross()],
        opts(),
        Some(peers(2, BTreeMap::from([(pool(1), a.local_addr)]))),
        &tokio::runtime::Handle::current(),
    )
    .unwrap();
    let creds = || {
        agent::load_state(&agent_home)
            .unwrap_or_default()
            .routes
            .get(&"pool-a/g-1".parse().unwrap())
            .map(|r| r.credentials.clone())
            .unwrap_or_default()
    };
    wait_until("credentials at a's agent", || creds().len() == 1).await;
    let c = creds()[0].clone();
    assert_eq!(c.endpoint.as_str(), "pool-b/ep-1");
    assert!(c.user.ends_with(".pool-a/g-1.9") && c.password.len() == 32, "{c:?}");
    let st = agent::load_state(&agent_home).unwrap();
    assert_eq!(st.applied_count, 1, "credentials update the route in effect, they are not a new route");
    // Where passwords rest, only this user reads: the agent's state file, the plane databases.
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&agent_home.join("state.json")), 0o600);
    assert_eq!(mode(&a_dir.join("outbox")), 0o700);
    assert_eq!(mode(&b_dir.join("outbox")), 0o700);
    wait_until("b's queue drained", || b.plane.credentials_queued() == 0).await;
    // Ahead of any loan, b's open offers reach a's agent as its fallback, cheapest first, with
    // standby credentials for a (a's own offer is not a fallback).
    wait_until("the fallback list at a's agent", || agent::load_state(&agent_home).unwrap().fallback.len() == 2).await;
    let fallback = agent::load_state(&agent_home).unwrap().fallback;
    let order: Vec<&str> = fallback.iter().map(|c| c.endpoint.as_str()).collect();
    assert_eq!(order, ["pool-b/ep-3", "pool-b/ep-2"]);
    assert!(fallback.iter().all(|c| c.user == standby_worker(&pool(1)) && c.password.len() == 32), "{fallback:?}");
    assert_ne!(fallback[0].password, fallback[1].password, "a password per offered endpoint");

    // Lies on the peer channel: each closes that connection, with b's real key.
    let trust = Trust::default();
    trust.insert(pool(1).0, Role::Node);
    let b_id = tls_identity(&key(2)).unwrap();
    let refused = a.plane.metrics.refused.get();
    let cred = |endpoint: &str| WorkerCredential {
        endpoint: endpoint.parse().unwrap(),
        user: "u".into(),
        password: "p".into(),
    };
    let lies = [
        vec![PlaneMsg::PeerHello { pool: pool(3) }],
        vec![
            PlaneMsg::PeerHello { pool: pool(2) },
            PlaneMsg::Credentials {
                directive: DirectiveId([7; 32]),
                group: "pool-a/g-1".parse().unwrap(),
                credential: cred("pool-a/ep-1"),
            },
        ],
        vec![
            PlaneMsg::PeerHello { pool: pool(2) },
            PlaneMsg::Credentials {
                directive: DirectiveId([7; 32]),
                group: "pool-b/g-1".parse().unwrap(),
                credential: cred("pool-b/ep-1"),
            },
        ],
        vec![PlaneMsg::PeerHello { pool: pool(2) }, PlaneMsg::Heartbeat { at_ms: 1, reports: vec![] }],
        // Standby credentials for another pool's endpoint, and for one with no open offer.
        vec![PlaneMsg::PeerHello { pool: pool(2) }, PlaneMsg::Standby { credential: cred("pool-a/ep-2") }],
        vec![PlaneMsg::PeerHello { pool: pool(2) }, PlaneMsg::Standby { credential: cred("pool-b/ep-1") }],
    ];
    for msgs in &lies {
        let conn = connect(a.local_addr, &b_id, &trust, ALPN).await.unwrap();
        let (mut send, _recv) = conn.open_bi().await.unwrap();
        for m in msgs {
            write_frame(&mut send, &m.encode()).await.unwrap();
        }
        let why = tokio::time::timeout(Duration::from_secs(10), conn.closed()).await.expect("closed by a");
        assert!(format!("{why}").contains("protocol error"), "{why}");
    }
    assert_eq!(a.plane.metrics.refused.get(), refused + lies.len() as u64);
    // A pool that is not on chain cannot even complete the handshake into a session.
    let stranger = connect(a.local_addr, &tls_identity(&key(3)).unwrap(), &trust, ALPN).await;
    // (The client may see its side of the handshake finish before the node's refusal arrives.)
    if let Ok(conn) = stranger {
        if let Ok((mut send, mut recv)) = conn.open_bi().await {
            let _ = write_frame(&mut send, &PlaneMsg::PeerHello { pool: pool(3) }.encode()).await;
            assert!(recv.read_to_end(64).await.is_err(), "the stranger got an answer");
        }
    }
    // The credentials stayed as they were.
    assert_eq!(creds(), vec![c]);
    assert_eq!(agent::load_state(&agent_home).unwrap().fallback, fallback);

    // Draining a/ep-1 re-sends the route with it marked: the agent spreads its share over the
    // rest; restoring it undoes that. Neither is a new route in effect.
    let record = |drained: bool| EndpointRecord {
        id: "pool-a/ep-1".parse().unwrap(),
        owner: pool(1),
        stratum_url: "stratum+tcp://127.0.0.1:3333".into(),
        capacity_hs: 1,
        region: "local".into(),
        drained,
    };
    let in_effect = || {
        agent::load_state(&agent_home).unwrap().routes[&"pool-a/g-1".parse::<hashmesh_protocol::GroupId>().unwrap()]
            .effective()
    };
    DRAINED.lock().unwrap().push("pool-a/ep-1".into());
    a.commits.send(CommitNotice { height: 20, endpoints: vec![record(true)], ..Default::default() }).await.unwrap();
    let only_b = vec![RouteTarget { endpoint: "pool-b/ep-1".parse().unwrap(), weight_bp: 10_000 }];
    wait_until("the drain at the agent", || in_effect() == only_b).await;
    DRAINED.lock().unwrap().clear();
    a.commits.send(CommitNotice { height: 21, endpoints: vec![record(false)], ..Default::default() }).await.unwrap();
    wait_until("the restore at the agent", || in_effect() == cross().targets).await;
    let st = agent::load_state(&agent_home).unwrap();
    assert_eq!(st.applied_count, 1, "drains and restores change the route in effect, not the route");
    assert_eq!(
        st.routes[&"pool-a/g-1".parse::<hashmesh_protocol::GroupId>().unwrap()].credentials.len(),
        1,
        "credentials kept across the re-sends"
    );

    // Agents' measurement windows feed the scheduler's `agents` source, merged: the pool's own
    // endpoint and the lender's it routes to (an observer view). Sent here by hand as the
    // agent (its proxy would send them; the agent without one sends none).
    agent_task.abort();
    let agent_key = agent::load_key(&agent_home).unwrap();
    let as_agent = tls_identity(&agent_key).unwrap();
    let window = |e: &str, end: u64, latencies_ms: &[u64]| {
        let mut h = hashmesh_telemetry::LatencyHistogram::default();
        for l in latencies_ms {
            h.record_us(l * 1000);
        }
        EndpointWindow {
            endpoint: e.parse().unwrap(),
            start_ms: end - 2000,
            end_ms: end,
            accepted: latencies_ms.len() as u64,
            rejected: 0,
            stale: 0,
            accepted_hashes: 4096 * latencies_ms.len() as u128,
            latency: h.to_wire(),
            down: false,
            miners: 3,
            in_flight: 0,
            standby_hashes: 0,
        }
    };
    let conn = connect(a.local_addr, &as_agent, &trust, ALPN).await.unwrap();
    let (mut send, _recv) = conn.open_bi().await.unwrap();
    let hello = PlaneMsg::Hello { agent: agent_id, applied_seq: 0 };
    let first = PlaneMsg::Measurements {
        at_ms: 2000,
        windows: vec![window("pool-a/ep-1", 2000, &[10, 20]), window("pool-b/ep-1", 2000, &[400])],
    };
    let second = PlaneMsg::Measurements { at_ms: 4000, windows: vec![window("pool-a/ep-1", 4000, &[30, 40])] };
    for m in [hello, first, second] {
        write_frame(&mut send, &m.encode()).await.unwrap();
    }
    let ours: EndpointId = "pool-a/ep-1".parse().unwrap();
    let lent: EndpointId = "pool-b/ep-1".parse().unwrap();
    let take = || {
        let plane = Arc::clone(&a.plane);
        tokio::task::spawn_blocking(move || AgentSource::new(plane).measure(&[], 0))
    };
    let (mut accepted, mut own, mut observed) = (0, None, None);
    let deadline = Instant::now() + Duration::from_secs(20);
    while accepted < 4 {
        assert!(Instant::now() < deadline, "timed out waiting for the windows at the node");
        tokio::time::sleep(Duration::from_millis(50)).await;
        let more = take().await.unwrap();
        if let Some(m) = more.get(&ours) {
            accepted += m.shares_accepted;
            own = Some(*m);
        }
        observed = observed.or(more.get(&lent).copied());
    }
    assert_eq!(accepted, 4);
    let own = own.unwrap();
    assert_eq!((own.cpu_bp, own.memory_bp), (None, None), "agents cannot see cpu or memory");
    assert_eq!(observed.unwrap().latency_ms.unwrap().p50, 400, "the lender's endpoint, as observed");
    let empty = take().await.unwrap();
    assert!(empty.is_empty(), "an epoch with no windows measures nothing: {empty:?}");
    // A malformed window closes the session and counts nothing.
    let mut bad = window("pool-a/ep-1", 6000, &[5]);
    bad.start_ms = bad.end_ms;
    write_frame(&mut send, &PlaneMsg::Measurements { at_ms: 6000, windows: vec![bad] }.encode()).await.unwrap();
    let why = tokio::time::timeout(Duration::from_secs(10), conn.closed()).await.expect("closed by a");
    assert!(format!("{why}").contains("protocol error"), "{why}");
    let after = take().await.unwrap();
    assert!(after.is_empty(), "{after:?}");

    a.close();
    b.close();
}
