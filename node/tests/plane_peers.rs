//! The node-to-node channel, in process: a lending node delivers worker credentials to the
//! borrowing node, which forwards them to its agents; drains and restores reach the agents of
//! routes that use the endpoint; agents' measurements feed the `agents` telemetry source; a
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
use hashmesh_node::plane::peers::{ChainView, PeerConfig};
use hashmesh_node::plane::registry;
use hashmesh_node::plane::service::{start, PlaneOptions};
use hashmesh_node::plane::store::PlaneStore as Outbox;
use hashmesh_plane::transport::endpoint::connect;
use hashmesh_plane::transport::frame::write_frame;
use hashmesh_plane::transport::identity::tls_identity;
use hashmesh_plane::transport::tls::{Role, Trust, ALPN};
use hashmesh_protocol::plane::{PlaneMsg, WorkerCredential};
use hashmesh_protocol::{DirectiveId, EndpointId, GroupId, PoolId, RouteTarget, TelemetryReport};

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
    assert!(c.user.ends_with(".pool-a/g-1") && c.password.len() == 32, "{c:?}");
    let st = agent::load_state(&agent_home).unwrap();
    assert_eq!(st.applied_count, 1, "credentials update the route in effect, they are not a new route");
    wait_until("b's queue drained", || b.plane.credentials_queued() == 0).await;

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

    // The proxy's measurements ride in heartbeats and feed the scheduler's `agents` source;
    // a report on another pool's endpoint is dropped.
    let report = TelemetryReport {
        epoch: 1,
        hashrate_hs: 7,
        shares_accepted: 1,
        shares_rejected: 0,
        shares_stale: 0,
        latency_ms_p50: 42,
        latency_ms_p99: 90,
        cpu_bp: 1234,
        memory_bp: 2000,
        error_bp: 5,
        queue_len: 1,
        miners: 3,
    };
    let file: BTreeMap<&str, TelemetryReport> = [("pool-a/ep-1", report), ("pool-b/ep-1", report)].into();
    std::fs::write(agent_home.join(agent::TELEMETRY_FILE), serde_json::to_vec(&file).unwrap()).unwrap();
    let ours: EndpointId = "pool-a/ep-1".parse().unwrap();
    wait_until("the agent's report at the node", || a.plane.fresh_report(&ours, 60_000).is_some()).await;
    assert!(a.plane.fresh_report(&"pool-b/ep-1".parse().unwrap(), 60_000).is_none());
    let mut source = AgentSource::new(Arc::clone(&a.plane), 60_000);
    let ep2: EndpointId = "pool-a/ep-2".parse().unwrap();
    let measured = source.measure(&[(ours.clone(), 0, 1), (ep2.clone(), 0, 1_000)], 99);
    let m = measured[&ours];
    assert_eq!((m.epoch, m.latency_ms_p50, m.cpu_bp), (99, 42, 1234), "the node's epoch");
    assert!(!measured.contains_key(&ep2), "an endpoint no agent measured gets no report");
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

    agent_task.abort();
    a.close();
    b.close();
}
