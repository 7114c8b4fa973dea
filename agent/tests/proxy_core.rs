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
                            Behaviour::Silent => {}
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
