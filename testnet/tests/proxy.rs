//! The data plane end to end in one process, on real sockets: testnet endpoints (real Stratum
//! servers validating SHA-256d shares), the agent's proxy, and a fleet of virtual miners. The
//! committed routes are handed to the proxy as the plane would after a commit (the consensus
//! path is `cluster.rs`'s). Checks the split, failover within 2 s with every share answered,
//! fail-back after the dwell, a cross-pool route under the lender's credentials (which appear
//! in no status), and bad input from miners.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hashmesh_agent::proxy::config::{Login, StratumConfig};
use hashmesh_agent::proxy::driver::{self, ProxyHandle};
use hashmesh_plane::core::agent::AppliedRoute;
use hashmesh_protocol::plane::WorkerCredential;
use hashmesh_protocol::{DirectiveId, EndpointId, GroupId, RouteTarget};
use hashmesh_stratum::endpoint::Chaos;
use hashmesh_testnet::endpoint::{Endpoint, EndpointSettings};
use hashmesh_testnet::fleet::{self, FleetSettings};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const DIFFICULTY: f64 = 1.0 / 1_048_576.0; // 2^-20: 4096 hashes per share

fn any() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn e(s: &str) -> EndpointId {
    s.parse().unwrap()
}

async fn endpoint(name: &str) -> Endpoint {
    Endpoint::start(EndpointSettings {
        name: name.into(),
        stratum: any(),
        http: any(),
        difficulty: DIFFICULTY,
        job_ms: 1000,
        jobs_per_block: 5,
    })
    .await
    .unwrap()
}

fn route(n: u8, targets: &[(&str, u16)], credentials: Vec<WorkerCredential>) -> AppliedRoute {
    AppliedRoute {
        directive: DirectiveId([n; 32]),
        height: u64::from(n),
        targets: targets.iter().map(|(t, w)| RouteTarget { endpoint: e(t), weight_bp: *w }).collect(),
        applied_at_ms: 0,
        seq: u64::from(n),
        credentials,
        drained: Vec::new(),
    }
}

/// Accepted difficulty at `ep` for workers starting with `user`.
fn accepted(ep: &Endpoint, user: &str) -> f64 {
    ep.status().workers.iter().filter(|(w, _)| w.starts_with(user)).map(|(_, b)| b.accepted_difficulty).sum()
}

async fn wait_until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn miners_at(h: &ProxyHandle, ep: &str) -> usize {
    h.status().await.and_then(|s| s.endpoints.into_iter().find(|x| x.endpoint.as_str() == ep)).map_or(0, |x| x.miners)
}

async fn wait_for_miners(h: &ProxyHandle, ep: &str, secs: u64, ok: impl Fn(usize) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !ok(miners_at(h, ep).await) {
        assert!(Instant::now() < deadline, "timed out waiting for the miners at {ep}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_routes_move_real_shares_and_failover_is_local() {
    let ep1 = endpoint("pool-a/ep-1").await;
    let ep2 = endpoint("pool-a/ep-2").await;
    let lender = endpoint("pool-b/ep-1").await;
    let g1: GroupId = "pool-a/g-1".parse().unwrap();
    let g2: GroupId = "pool-a/g-2".parse().unwrap();
    let cfg = StratumConfig {
        listen: any(),
        group_listeners: BTreeMap::new(),
        endpoints: [("pool-a/ep-1", ep1.stratum), ("pool-a/ep-2", ep2.stratum), ("pool-b/ep-1", lender.stratum)]
            .into_iter()
            .map(|(n, a)| (e(n), a))
            .collect(),
        login: Login { user: "pool-a.agent-1".into(), password: "x".into() },
        logins: BTreeMap::new(),
        standby: vec![e("pool-a/ep-1"), e("pool-a/ep-2")],
        groups: [g1.clone(), g2.clone()].into_iter().collect(),
        worker_groups: BTreeMap::new(),
        fail_back_ms: 2_000,
        start_difficulty: 1.0,
        metrics_listen: Some(any()),
        partial_line_ms: 1_000,
        workers_max: 100,
        worker_metrics: true,
    };
    let proxy = driver::start(&cfg, cfg.proxy_config(), None).await.unwrap();
    let secret = "lenders-secret-password";
    let cred =
        WorkerCredential { endpoint: e("pool-b/ep-1"), user: "pool-b.lent-to-pool-a".into(), password: secret.into() };
    proxy
        .routes(
            [
                (g1.clone(), route(1, &[("pool-a/ep-1", 7000), ("pool-a/ep-2", 3000)], Vec::new())),
                (g2.clone(), route(2, &[("pool-b/ep-1", 10_000)], vec![cred])),
            ]
            .into_iter()
            .collect(),
        )
        .await;
    let settings = |prefix: &str, miners| FleetSettings {
        target: proxy.listening[0],
        miners,
        hashrate_hs: 20_000.0,
        worker_prefix: prefix.into(),
        version_rolling: true,
        extranonce_subscribe: true,
        tick_ms: 100,
    };
    let fleet1 = fleet::start(&settings("pool-a/g-1.rig", 20));
    let fleet2 = fleet::start(&settings("pool-a/g-2.rig", 2));

    // The split: 7000/3000 of the accepted difficulty (loosely here; `bench proxy` measures it).
    wait_until("both endpoints of g-1 to accept shares", 20, || {
        accepted(&ep1, "pool-a.agent-1") > 0.0 && accepted(&ep2, "pool-a.agent-1") > 0.0
    })
    .await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    let (a1, a2) = (accepted(&ep1, "pool-a.agent-1"), accepted(&ep2, "pool-a.agent-1"));
    let share = a1 / (a1 + a2);
    assert!(
        (0.55..=0.85).contains(&share),
        "ep-1's share of g-1's accepted difficulty: {share:.3}\n{}",
        serde_json::to_string_pretty(&proxy.status().await).unwrap()
    );

    // The cross-pool route logs in with the lender's credentials; they appear in no status.
    wait_until("the lender's endpoint to count the borrowed miners", 10, || {
        accepted(&lender, "pool-b.lent-to-pool-a") > 0.0
    })
    .await;
    let status = serde_json::to_string(&proxy.status().await.unwrap()).unwrap();
    assert!(!status.contains(secret), "credentials leaked into the proxy status");
    assert!(!serde_json::to_string(&lender.status()).unwrap().contains(secret));

    // Kill ep-1: its work is accepted at ep-2 within 2 s, miners keep their connections.
    let before = accepted(&ep2, "pool-a.agent-1");
    let rate_before = fleet1.totals();
    let killed = Instant::now();
    ep1.set_chaos(Chaos { down: true, ..Chaos::default() });
    wait_for_miners(&proxy, "pool-a/ep-1", 5, |n| n == 0).await;
    // ep-2 must now take more than its old 30 %: wait until the increase shows.
    let mut moved = None;
    while killed.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(25)).await;
        if miners_at(&proxy, "pool-a/ep-2").await == 20 && accepted(&ep2, "pool-a.agent-1") > before {
            moved = Some(killed.elapsed());
            break;
        }
    }
    let moved = moved.expect("ep-1's work never reached ep-2");
    eprintln!("failover: ep-1 killed → its work accepted at ep-2 after {moved:?}");
    assert!(moved < Duration::from_secs(2), "failover took {moved:?}");
    let failover = proxy.status().await.unwrap().failovers;
    assert!(failover.iter().any(|f| f.endpoint.as_str() == "pool-a/ep-1"), "{failover:?}");

    // Fail-back after the dwell.
    ep1.set_chaos(Chaos::default());
    wait_for_miners(&proxy, "pool-a/ep-1", 15, |n| n > 0).await;

    // Prometheus metrics of the agent: per endpoint shares, miners, failures.
    let mut m = TcpStream::connect(proxy.metrics.unwrap()).await.unwrap();
    m.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut text = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut m, &mut text).await.unwrap();
    assert!(text.contains("hashmesh_agent_shares_total{endpoint=\"pool-a/ep-2\",result=\"accepted\"}"), "{text}");
    assert!(text.contains("hashmesh_agent_endpoint_failures_total{endpoint=\"pool-a/ep-1\"}"), "{text}");
    // Submit latency as a histogram, hashrate per endpoint, and (worker_metrics on) per worker.
    let inf = text
        .lines()
        .find(|l| l.starts_with("hashmesh_agent_submit_latency_seconds_bucket{le=\"+Inf\",endpoint=\"pool-a/ep-2\"}"))
        .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok());
    let count = text
        .lines()
        .find(|l| l.starts_with("hashmesh_agent_submit_latency_seconds_count{endpoint=\"pool-a/ep-2\"}"))
        .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok());
    assert!(inf.is_some_and(|n| n > 0) && inf == count, "{text}");
    assert!(text.contains("# TYPE hashmesh_agent_submit_latency_seconds histogram"), "{text}");
    assert!(text.contains("hashmesh_agent_endpoint_hashrate{endpoint=\"pool-a/ep-2\"}"), "{text}");
    assert!(text.contains("hashmesh_agent_worker_shares_total{worker=\""), "{text}");
    assert!(text.contains("hashmesh_agent_worker_hashrate{worker=\""), "{text}");
    assert!(text.contains("hashmesh_agent_worker_miners{worker=\""), "{text}");
    assert!(!text.contains(secret));

    // Bad input: none of it reaches an endpoint, each gets an answer or a close, others go on.
    bad_input(proxy.listening[0]).await;

    // Every share answered exactly once, none lost: stop hashing, let answers drain.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let t = fleet1.totals();
    assert_eq!(t.connected, 20, "miners kept their connections: {t:?}");
    assert_eq!(t.reconnects, 0, "{t:?}");
    assert_eq!(t.unexpected, 0, "{t:?}");
    assert_eq!(t.lost, 0, "{t:?}");
    assert!(t.submitted > rate_before.submitted);
    let answered = t.accepted + t.rejected + t.stale;
    assert!(t.submitted - answered < 50, "answers lag far behind: {t:?}");
    let st = serde_json::to_string_pretty(&proxy.status().await).unwrap();
    assert_eq!(t.rejected, 0, "no valid share refused: {t:?}\n{st}");
    assert!(t.stale * 20 < t.submitted, "few stale (moves, and the shares in flight at the kill): {t:?}\n{st}");
    assert_eq!(fleet2.totals().rejected, 0);
}

async fn bad_input(agent: SocketAddr) {
    // An unknown group is refused at authorize with what to fix; the connection stays.
    let mut s = BufReader::new(TcpStream::connect(agent).await.unwrap());
    s.get_mut()
        .write_all(b"{\"id\":1,\"method\":\"mining.subscribe\",\"params\":[]}\n{\"id\":2,\"method\":\"mining.authorize\",\"params\":[\"nobody.rig\",\"x\"]}\n")
        .await
        .unwrap();
    let mut answer = String::new();
    loop {
        answer.clear();
        tokio::time::timeout(Duration::from_secs(5), s.read_line(&mut answer)).await.unwrap().unwrap();
        if answer.contains("\"id\":2") {
            break;
        }
    }
    assert!(answer.contains("24") && answer.contains("unknown miner group"), "{answer}");
    // A submit without a job: answered, not forwarded.
    s.get_mut()
        .write_all(b"{\"id\":3,\"method\":\"mining.submit\",\"params\":[\"nobody.rig\",\"1\",\"00000000\",\"00000000\",\"00000000\"]}\n")
        .await
        .unwrap();
    answer.clear();
    tokio::time::timeout(Duration::from_secs(5), s.read_line(&mut answer)).await.unwrap().unwrap();
    assert!(answer.contains("\"error\":[24"), "{answer}");

    // A connection that trickles one byte at a time is closed once a line takes longer than
    // `partial_line_ms` (1 s here; 30 s by default), while the fleet mines on.
    let mut s = TcpStream::connect(agent).await.unwrap();
    let started = Instant::now();
    let mut closed = false;
    for b in b"{\"id\":1,\"method\":\"mining.subscribe\",\"params\":[]}".iter() {
        if s.write_all(&[*b]).await.is_err() {
            closed = true;
            break;
        }
        let mut buf = [0u8; 64];
        if let Ok(Ok(0) | Err(_)) =
            tokio::time::timeout(Duration::from_millis(300), tokio::io::AsyncReadExt::read(&mut s, &mut buf)).await
        {
            closed = true;
            break;
        }
    }
    assert!(closed, "the trickling connection was never closed");
    assert!(started.elapsed() < Duration::from_secs(5), "closed after {:?}", started.elapsed());

    // Garbage without an id, and a line over the limit: the connection is closed.
    for junk in [b"this is not json\n".to_vec(), vec![b'x'; 17 * 1024]] {
        let mut s = TcpStream::connect(agent).await.unwrap();
        let _ = s.write_all(&junk).await;
        let mut buf = Vec::new();
        let r =
            tokio::time::timeout(Duration::from_secs(5), tokio::io::AsyncReadExt::read_to_end(&mut s, &mut buf)).await;
        assert!(r.is_ok(), "the agent must close a connection that sends garbage");
    }
}
