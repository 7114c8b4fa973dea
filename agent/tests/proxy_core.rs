//! The proxy's sans-IO core, driven with virtual time against pool-side sessions (the testnet
//! endpoint's `EndpointConn`) and virtual miners — no sockets, so each failure mode is exact:
//! an endpoint that stops answering, one that sends garbage, one with a different extranonce2
//! size, another pool's endpoint without credentials — and the hashrate the agent measures
//! against the hashrate its miners really do.

use std::collections::BTreeMap;

use hashmesh_agent::proxy::core::{ConnId, MinerId, Output, Proxy, ProxyConfig};
use hashmesh_plane::core::agent::AppliedRoute;
use hashmesh_protocol::plane::WorkerCredential;
use hashmesh_protocol::{DirectiveId, EndpointId, GroupId, RouteTarget};
use hashmesh_stratum::client::{ClientConfig, MinerClient};
use hashmesh_stratum::endpoint::{Books, Chaos, EndpointConn, JobChain};

const DIFFICULTY: f64 = 1.0 / 65_536.0;

fn e(s: &str) -> EndpointId {
    s.parse().unwrap()
}

/// What an endpoint does with what it is sent.
#[derive(Clone, Copy, PartialEq)]
enum Behaviour {
    Normal,
    /// Reads and never answers.
    Silent,
    /// Answers everything with garbage.
    Garbage,
    /// The process is gone: its sessions end and connections are refused.
    Dead,
}

struct Harness {
    proxy: Proxy,
    now: u64,
    chains: BTreeMap<EndpointId, JobChain>,
    /// Extranonce2 size per endpoint (default 8).
    sizes: BTreeMap<EndpointId, usize>,
    behaviour: BTreeMap<EndpointId, Behaviour>,
    conns: BTreeMap<ConnId, (EndpointId, EndpointConn)>,
    books: BTreeMap<EndpointId, Books>,
    miners: BTreeMap<MinerId, MinerClient>,
    reconnected: Vec<MinerId>,
    /// The endpoints' share difficulty.
    difficulty: f64,
}

impl Harness {
    fn new(cfg: ProxyConfig) -> Self {
        Self::with_difficulty(cfg, DIFFICULTY)
    }

    /// Endpoints that ask for shares of `difficulty`.
    fn with_difficulty(cfg: ProxyConfig, difficulty: f64) -> Self {
        let mut h = Self {
            proxy: Proxy::new(cfg, 7),
            now: 1_000_000,
            chains: BTreeMap::new(),
            sizes: BTreeMap::new(),
            behaviour: BTreeMap::new(),
            conns: BTreeMap::new(),
            books: BTreeMap::new(),
            miners: BTreeMap::new(),
            reconnected: Vec::new(),
            difficulty,
        };
        h.proxy.handle_timeout(h.now);
        h.pump();
        h
    }

    fn miner(&mut self, worker: &str, extranonce_subscribe: bool) -> MinerId {
        let id = self.proxy.handle_miner_connected(None, self.now).unwrap();
        let c = MinerClient::new(ClientConfig {
            worker: worker.into(),
            version_mask: 0x1fff_e000,
            extranonce_subscribe,
            user_agent: "test".into(),
        });
        self.miners.insert(id, c);
        self.pump();
        id
    }

    fn pump(&mut self) {
        for _ in 0..50 {
            let mut moved = false;
            while let Some(o) = self.proxy.poll_output() {
                moved = true;
                match o {
                    Output::Connect(conn, ep) if self.behaviour.get(&ep) == Some(&Behaviour::Dead) => {
                        self.proxy.handle_upstream_closed(conn, "connection refused", self.now);
                    }
                    Output::Connect(conn, ep) => {
                        let chain = self.chains.entry(ep.clone()).or_insert_with(|| JobChain::new(ep.as_str()));
                        let job = chain.next(1_700_000_000, true);
                        let size = self.sizes.get(&ep).copied().unwrap_or(8);
                        let c = EndpointConn::with_extranonce2_size(
                            u32::try_from(conn).unwrap(),
                            size,
                            self.difficulty,
                            Some(job),
                        );
                        self.conns.insert(conn, (ep, c));
                        self.proxy.handle_upstream_connected(conn, self.now);
                    }
                    Output::ToUpstream(conn, line) => {
                        let Some((ep, c)) = self.conns.get_mut(&conn) else { continue };
                        match self.behaviour.get(ep).copied().unwrap_or(Behaviour::Normal) {
                            Behaviour::Normal => {
                                let books = self.books.entry(ep.clone()).or_default();
                                c.handle_line(&line, &Chaos::default(), books);
                            }
                            Behaviour::Silent | Behaviour::Dead => {}
                            Behaviour::Garbage => self.proxy.handle_upstream_line(conn, "]]garbage[[", self.now),
                        }
                    }
                    Output::CloseUpstream(conn) => {
                        self.conns.remove(&conn);
                    }
                    Output::ToMiner(id, line) => {
                        if let Some(m) = self.miners.get_mut(&id) {
                            m.handle_line(&line);
                        }
                    }
                    Output::CloseMiner(id) => {
                        self.miners.remove(&id);
                        self.reconnected.push(id);
                    }
                }
            }
            let conns: Vec<ConnId> = self.conns.keys().copied().collect();
            for conn in conns {
                let lines: Vec<String> =
                    std::iter::from_fn(|| self.conns.get_mut(&conn).and_then(|(_, c)| c.poll_transmit())).collect();
                for l in lines {
                    moved = true;
                    self.proxy.handle_upstream_line(conn, &l, self.now);
                }
            }
            let ids: Vec<MinerId> = self.miners.keys().copied().collect();
            for id in ids {
                let lines: Vec<String> =
                    std::iter::from_fn(|| self.miners.get_mut(&id).and_then(MinerClient::poll_transmit)).collect();
                for l in lines {
                    moved = true;
                    self.proxy.handle_miner_line(id, &l, self.now);
                }
            }
            if !moved {
                return;
            }
        }
    }

    /// Advance virtual time by `ms`, each miner hashing `hashes` per 100 ms.
    fn run(&mut self, ms: u64, hashes: u64) {
        for _ in 0..ms / 100 {
            self.now += 100;
            for m in self.miners.values_mut() {
                m.work(hashes);
            }
            self.pump();
            self.proxy.handle_timeout(self.now);
            self.pump();
        }
    }

    /// `ep`'s process dies: its sessions end (the agent reads EOF) and it refuses new ones.
    fn kill(&mut self, ep: &str) {
        self.behaviour.insert(e(ep), Behaviour::Dead);
        let conns: Vec<ConnId> = self.conns.iter().filter(|(_, (x, _))| *x == e(ep)).map(|(c, _)| *c).collect();
        for c in conns {
            self.conns.remove(&c);
            self.proxy.handle_upstream_closed(c, "connection reset", self.now);
        }
        self.pump();
    }

    /// Accepted shares at `ep` under `worker`.
    fn accepted_as(&self, ep: &str, worker: &str) -> u64 {
        self.books.get(&e(ep)).and_then(|b| b.get(worker)).map_or(0, |w| w.accepted)
    }

    fn accepted(&self, ep: &str) -> u64 {
        self.books.get(&e(ep)).map_or(0, |b| b.values().map(|w| w.accepted).sum())
    }

    fn miners_at(&self, ep: &str) -> usize {
        self.proxy.status(self.now).endpoints.iter().find(|x| x.endpoint.as_str() == ep).map_or(0, |x| x.miners)
    }
}

fn cfg() -> ProxyConfig {
    ProxyConfig {
        standby: vec![e("pool-a/ep-1"), e("pool-a/ep-2")],
        groups: ["pool-a/g-1".parse().unwrap()].into_iter().collect(),
        own_pools: ["pool-a".to_owned()].into_iter().collect(),
        fail_back_ms: 5_000,
        ..ProxyConfig::default()
    }
}

fn route(targets: &[(&str, u16)], credentials: Vec<WorkerCredential>) -> BTreeMap<GroupId, AppliedRoute> {
    let r = AppliedRoute {
        directive: DirectiveId([1; 32]),
        height: 1,
        targets: targets.iter().map(|(t, w)| RouteTarget { endpoint: e(t), weight_bp: *w }).collect(),
        applied_at_ms: 0,
        seq: 1,
        credentials,
        drained: Vec::new(),
    };
    [("pool-a/g-1".parse().unwrap(), r)].into_iter().collect()
}

#[test]
fn an_endpoint_that_stops_answering_is_failed_over_and_its_shares_answered() {
    let mut h = Harness::new(cfg());
    h.proxy.handle_routes(&route(&[("pool-a/ep-1", 5000), ("pool-a/ep-2", 5000)], Vec::new()), h.now);
    h.pump();
    let miners: Vec<MinerId> = (0..4).map(|i| h.miner(&format!("pool-a/g-1.rig{i}"), true)).collect();
    h.run(3_000, 100_000);
    assert!(h.accepted("pool-a/ep-1") > 0 && h.accepted("pool-a/ep-2") > 0);
    // ep-1 goes silent: it reads shares and never answers.
    h.behaviour.insert(e("pool-a/ep-1"), Behaviour::Silent);
    let silent_at = h.now;
    let before = h.accepted("pool-a/ep-2");
    let mut moved_at = None;
    for _ in 0..30 {
        h.run(100, 100_000);
        if moved_at.is_none() && h.miners_at("pool-a/ep-1") == 0 {
            moved_at = Some(h.now);
        }
    }
    let moved_at = moved_at.expect("ep-1's miners never moved");
    assert!(moved_at - silent_at <= 2_000, "failover after {} ms", moved_at - silent_at);
    assert!(h.accepted("pool-a/ep-2") > before, "its work is accepted elsewhere");
    let f = h.proxy.status(h.now).failovers;
    assert!(f.iter().any(|f| f.endpoint.as_str() == "pool-a/ep-1" && f.reason.contains("unanswered")), "{f:?}");
    // Every share each miner sent got exactly one answer (accepted, or stale for those in
    // flight at ep-1).
    for id in miners {
        let m = &h.miners[&id];
        let c = m.counts();
        assert_eq!(c.unexpected, 0, "{c:?}");
        assert_eq!(c.submitted, c.accepted + c.rejected + c.stale + m.unanswered() as u64, "{c:?}");
        assert_eq!(c.rejected, 0, "{c:?}");
        assert!(m.unanswered() <= 1, "at most the share of the last step is unanswered: {c:?}");
    }
}

#[test]
fn an_endpoint_that_sends_garbage_is_dead_and_nothing_is_forwarded_there() {
    let mut h = Harness::new(cfg());
    h.proxy.handle_routes(&route(&[("pool-a/ep-1", 10_000)], Vec::new()), h.now);
    h.pump();
    h.miner("pool-a/g-1.rig0", true);
    h.run(1_000, 200_000);
    assert_eq!(h.miners_at("pool-a/ep-1"), 1);
    h.behaviour.insert(e("pool-a/ep-1"), Behaviour::Garbage);
    h.run(500, 200_000);
    assert_eq!(h.miners_at("pool-a/ep-1"), 0, "the garbage endpoint lost its miner");
    assert_eq!(h.miners_at("pool-a/ep-2"), 1, "to the standby, as the route has no other endpoint");
}

#[test]
fn a_miner_is_moved_by_set_extranonce_or_reconnect_when_extranonce_sizes_differ() {
    let mut h = Harness::new(cfg());
    h.sizes.insert(e("pool-a/ep-2"), 4);
    h.proxy.handle_routes(&route(&[("pool-a/ep-1", 10_000)], Vec::new()), h.now);
    h.pump();
    let subscribed = h.miner("pool-a/g-1.can-set", true);
    let plain = h.miner("pool-a/g-1.cannot", false);
    h.run(1_000, 100_000);
    assert_eq!(h.miners_at("pool-a/ep-1"), 2);
    // The route moves to ep-2, whose extranonce2 is 4 bytes (2 for the miner after its prefix).
    let mut r = route(&[("pool-a/ep-2", 10_000)], Vec::new());
    r.values_mut().for_each(|r| r.directive = DirectiveId([2; 32]));
    h.proxy.handle_routes(&r, h.now);
    h.pump();
    h.run(2_000, 100_000);
    assert!(h.reconnected.contains(&plain), "a miner without extranonce.subscribe is asked to reconnect");
    assert!(!h.reconnected.contains(&subscribed));
    assert!(h.accepted("pool-a/ep-2") > 0, "the subscribed miner's shares, with its new extranonce, are valid there");
    assert_eq!(h.miners[&subscribed].counts().rejected, 0);
}

#[test]
fn another_pools_endpoint_gets_work_only_with_its_owners_credentials() {
    let mut h = Harness::new(cfg());
    h.proxy.handle_routes(&route(&[("pool-b/ep-1", 10_000)], Vec::new()), h.now);
    h.pump();
    h.miner("pool-a/g-1.rig0", true);
    h.run(1_000, 100_000);
    assert_eq!(h.accepted("pool-b/ep-1"), 0, "no login at the lender without its credentials");
    assert!(h.accepted("pool-a/ep-1") + h.accepted("pool-a/ep-2") > 0, "the work stays home meanwhile");
    let cred =
        WorkerCredential { endpoint: e("pool-b/ep-1"), user: "lent.pool-a/g-1".into(), password: "s3cret".into() };
    h.proxy.handle_routes(&route(&[("pool-b/ep-1", 10_000)], vec![cred]), h.now);
    h.pump();
    h.run(1_000, 100_000);
    let books = &h.books[&e("pool-b/ep-1")];
    assert!(books.get("lent.pool-a/g-1").is_some_and(|b| b.accepted > 0), "{books:?}");
    assert!(!serde_json::to_string(&h.proxy.status(h.now)).unwrap().contains("s3cret"));
}

fn standby(ep: &str) -> WorkerCredential {
    WorkerCredential { endpoint: e(ep), user: "a1b2c3d4e5f6.standby".into(), password: format!("standby-{ep}") }
}

#[test]
fn with_every_own_endpoint_dead_miners_fall_back_to_an_offered_endpoint_within_2_s() {
    let mut h = Harness::new(cfg());
    h.proxy.handle_routes(&route(&[("pool-a/ep-1", 10_000)], Vec::new()), h.now);
    h.proxy.handle_fallback(&[standby("pool-b/ep-1"), standby("pool-c/ep-1")], h.now);
    h.pump();
    let miners: Vec<MinerId> = (0..4).map(|i| h.miner(&format!("pool-a/g-1.rig{i}"), true)).collect();
    h.run(2_000, 30_000);
    assert!(h.accepted("pool-a/ep-1") > 0);
    assert!(!h.books.contains_key(&e("pool-b/ep-1")), "no session at a fallback while the pool's own work");
    let _ = h.proxy.windows(h.now);

    // Both of the pool's endpoints die; the borrow has not committed yet.
    let died = h.now;
    h.kill("pool-a/ep-1");
    h.kill("pool-a/ep-2");
    let mut first = None;
    for _ in 0..30 {
        h.run(100, 30_000);
        if first.is_none() && h.accepted_as("pool-b/ep-1", "a1b2c3d4e5f6.standby") > 0 {
            first = Some(h.now);
        }
    }
    let first = first.expect("no share accepted at the fallback");
    assert!(first - died <= 2_000, "first share at the lender {} ms after both endpoints died", first - died);
    assert_eq!(h.accepted("pool-c/ep-1"), 0, "the cheapest live offer only");
    let status = h.proxy.status(h.now);
    let at_b = status.endpoints.iter().find(|x| x.endpoint.as_str() == "pool-b/ep-1").unwrap();
    assert!(at_b.standby_login && at_b.miners == 4, "{at_b:?}");
    // Measured like any work, and marked as no loan's.
    let w = h.proxy.windows(h.now).into_iter().find(|w| w.endpoint.as_str() == "pool-b/ep-1").unwrap();
    assert!(w.accepted_hashes > 0 && w.standby_hashes == w.accepted_hashes, "{w:?}");

    // The lender dies too: the next offer.
    h.kill("pool-b/ep-1");
    h.run(2_000, 30_000);
    assert!(h.accepted_as("pool-c/ep-1", "a1b2c3d4e5f6.standby") > 0);
    h.behaviour.remove(&e("pool-b/ep-1"));

    // The borrow commits with the loan's credentials: the session logs in again with them and
    // its work is the loan's.
    let loan = WorkerCredential {
        endpoint: e("pool-c/ep-1"),
        user: "a1b2c3d4e5f6.pool-a/g-1.40".into(),
        password: "loan".into(),
    };
    let mut r = route(&[("pool-c/ep-1", 10_000)], vec![loan]);
    r.values_mut().for_each(|r| r.directive = DirectiveId([2; 32]));
    h.proxy.handle_routes(&r, h.now);
    h.pump();
    let _ = h.proxy.windows(h.now);
    let standby_before = h.accepted_as("pool-c/ep-1", "a1b2c3d4e5f6.standby");
    h.run(2_000, 30_000);
    assert!(h.accepted_as("pool-c/ep-1", "a1b2c3d4e5f6.pool-a/g-1.40") > 0);
    assert_eq!(h.accepted_as("pool-c/ep-1", "a1b2c3d4e5f6.standby"), standby_before);
    let w = h.proxy.windows(h.now).into_iter().find(|w| w.endpoint.as_str() == "pool-c/ep-1").unwrap();
    assert!(w.accepted_hashes > 0 && w.standby_hashes == 0, "{w:?}");

    // Home again: the loan's credentials end with the route; ep-1 takes the work after its
    // dwell and no session stays at the lenders.
    h.behaviour.clear();
    let mut home = route(&[("pool-a/ep-1", 10_000)], Vec::new());
    home.values_mut().for_each(|r| r.directive = DirectiveId([3; 32]));
    h.proxy.handle_routes(&home, h.now);
    // (ep-1 is retried with backoff, then must stay up for the fail-back dwell.)
    h.run(15_000, 30_000);
    let status = h.proxy.status(h.now);
    assert_eq!(h.miners_at("pool-a/ep-1"), 4, "{:?}", status.endpoints);
    assert!(status.endpoints.iter().all(|x| x.endpoint.as_str().starts_with("pool-a/")), "{:?}", status.endpoints);
    for id in miners {
        let c = h.miners[&id].counts();
        assert_eq!((c.unexpected, c.rejected), (0, 0), "{c:?}");
    }
}

#[test]
fn the_measured_hashrate_is_within_5_percent_of_the_fleets_over_5_minutes() {
    use hashmesh_telemetry::{hashrate_hs, EpochBook};
    const MINERS: u64 = 10;
    const HASHES_PER_100MS: u64 = 200; // 2 kH/s per miner, 20 kH/s for the fleet
    let fleet_hs = (MINERS * HASHES_PER_100MS * 10) as f64;
    // 2^-22: ~1000 hashes a share, ~6000 shares in 5 minutes.
    let mut h = Harness::with_difficulty(cfg(), 1.0 / 4_194_304.0);
    h.proxy.handle_routes(&route(&[("pool-a/ep-1", 5000), ("pool-a/ep-2", 5000)], Vec::new()), h.now);
    for i in 0..MINERS {
        h.miner(&format!("pool-a/g-1.rig-{i}"), false);
    }
    h.run(1_000, 0); // everyone subscribed, authorized and holding a job
                     // The agent cuts a window every 2 s (the driver's REPORT_MS); its node merges them every 10 s.
    let agent = hashmesh_protocol::AgentId([1; 32]);
    let mut book = EpochBook::default();
    let mut last_cut = h.now;
    let _ = h.proxy.windows(h.now);
    let (mut epochs, mut total_hashes, mut total_ms) = (Vec::new(), 0u128, 0u64);
    for step in 1..=150 {
        h.run(2_000, HASHES_PER_100MS);
        for w in h.proxy.windows(h.now) {
            total_hashes += w.accepted_hashes;
            book.record(agent, &w).unwrap();
        }
        if step % 5 == 0 {
            let m = book.take();
            epochs.push(m.values().map(|m| m.hashrate_hs).sum::<u64>());
        }
        total_ms += h.now - last_cut;
        last_cut = h.now;
    }
    let measured = hashrate_hs(total_hashes, total_ms) as f64;
    eprintln!("fleet {fleet_hs} H/s, measured over 5 minutes {measured} H/s, per 10 s epoch {epochs:?}");
    assert!((measured / fleet_hs - 1.0).abs() < 0.05, "measured {measured} vs fleet {fleet_hs}");
    // Each epoch's merged report is an estimate from ~200 shares: within 25 %.
    assert!(epochs.iter().all(|e| (*e as f64 / fleet_hs - 1.0).abs() < 0.25), "{epochs:?}");
    // The agent's own gauge (the last minute) agrees too.
    let gauge: u64 = h.proxy.status(h.now).endpoints.iter().map(|e| e.hashrate_hs).sum();
    assert!((gauge as f64 / fleet_hs - 1.0).abs() < 0.10, "gauge {gauge} vs fleet {fleet_hs}");
}
