//! The proxy's sans-IO core: every miner's session, one upstream session per endpoint, the split,
//! failover and the books — with no sockets and no clock (`now_ms` comes in). The tokio driver
//! ([`super::driver`]) feeds it connections, lines and timeouts and carries out its
//! [`Output`]s.
//!
//! How work moves without touching the miners' connections: each miner gets a fixed 2-byte
//! extranonce1 of its own (its *prefix*), and the jobs it is sent carry the upstream's
//! extranonce1 folded into `coinb1`. The coinbase it hashes is then exactly the upstream's,
//! with extranonce2 = prefix ‖ the miner's extranonce2, so any miner can be switched to any
//! upstream with the same extranonce2 size by a `set_difficulty` and a clean `notify` — at a job
//! boundary, with no `set_extranonce` and no reconnect. Only an upstream with a different
//! extranonce2 size takes `mining.set_extranonce` (miners that subscribed to it) or
//! `client.reconnect` (the others).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use hashmesh_plane::core::agent::AppliedRoute;
use hashmesh_protocol::limits::{STRATUM_FAILOVERS_KEPT_MAX, STRATUM_MINERS_PER_AGENT_MAX};
use hashmesh_protocol::{EndpointId, GroupId, TelemetryReport};
use hashmesh_scheduler::phi::{Backoff, PhiAccrual};
use hashmesh_scheduler::rng::Rng;
use hashmesh_stratum::extranonce::ExtranonceSpace;
use hashmesh_stratum::message::{code, Id, Notify, Submit};
use hashmesh_stratum::miner::{MinerConfig, MinerEvent, MinerSession, JOBS_KEPT_MAX};
use hashmesh_stratum::pool::{PoolEvent, PoolLogin, PoolSession};
use serde::Serialize;

use super::meter::{Meter, Outcome};
use super::split::{rebalance, SplitMiner, SplitParams};

/// A miner connection, as the driver names it.
pub type MinerId = u64;
/// An upstream connection, as the driver names it (a new one per connection attempt).
pub type ConnId = u64;

/// Bytes of the per-miner extranonce prefix.
pub const PREFIX_BYTES: usize = 2;
/// Extranonce2 bytes a miner rolls before any upstream told us its size (ckpool's 8, minus
/// the prefix).
pub const MINER_EXTRANONCE2_DEFAULT: usize = 8 - PREFIX_BYTES;
/// Longest an upstream may take from connect to ready, ms.
pub const UPSTREAM_READY_MS_MAX: u64 = 1_500;
/// Longest a share may wait for its verdict whatever the learned response times say, ms.
pub const ANSWER_WAIT_MS_MAX: u64 = 1_500;

/// How the proxy logs in and behaves.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// Our user agent towards pools.
    pub user_agent: String,
    /// Version-rolling mask asked of upstreams and offered to miners.
    pub version_mask: u32,
    /// The pool's own logins per endpoint (cross-pool routes bring the lender's).
    pub logins: BTreeMap<EndpointId, (String, String)>,
    /// Login at an own endpoint with no entry in `logins`: user and password.
    pub default_login: (String, String),
    /// The pool's own endpoints, in order of preference: one is kept hot as the standby, and
    /// takes a group's work when every endpoint of its route is down.
    pub standby: Vec<EndpointId>,
    /// Groups served even before a route for them arrives.
    pub groups: BTreeSet<GroupId>,
    /// The pool's own names (`pool-a`): an endpoint of another pool gets work only with the
    /// credentials its owner handed over.
    pub own_pools: BTreeSet<String>,
    /// Worker-name prefixes (the part before the first `.`) mapped to groups.
    pub worker_groups: BTreeMap<String, GroupId>,
    /// Difficulty miners start at before an upstream set one.
    pub start_difficulty: f64,
    /// How long a recovered endpoint must stay up before work goes back to it, ms.
    pub fail_back_ms: u64,
    /// Rebalance period, ms.
    pub rebalance_ms: u64,
    /// The split's tuning.
    pub split: SplitParams,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        Self {
            user_agent: format!("hashmesh-agent/{}", env!("CARGO_PKG_VERSION")),
            version_mask: hashmesh_stratum::miner::VERSION_MASK_DEFAULT,
            logins: BTreeMap::new(),
            default_login: ("hashmesh".into(), "x".into()),
            standby: Vec::new(),
            groups: BTreeSet::new(),
            own_pools: BTreeSet::new(),
            worker_groups: BTreeMap::new(),
            start_difficulty: 1.0,
            fail_back_ms: 10_000,
            rebalance_ms: 1_000,
            split: SplitParams::default(),
        }
    }
}

/// What the driver must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Write a line to a miner.
    ToMiner(MinerId, String),
    /// Close a miner's connection (after writing what was queued for it).
    CloseMiner(MinerId),
    /// Open a TCP connection to an endpoint's Stratum address.
    Connect(ConnId, EndpointId),
    /// Write a line to an upstream.
    ToUpstream(ConnId, String),
    /// Close an upstream connection.
    CloseUpstream(ConnId),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum Link {
    Connecting,
    Ready,
    Down,
}

struct Upstream {
    conn: ConnId,
    session: PoolSession,
    link: Link,
    since_ms: u64,
    /// Work may go there from this time (a recovered endpoint waits out the fail-back dwell).
    usable_from_ms: u64,
    retry_at_ms: u64,
    failures: u32,
    extranonce1: Vec<u8>,
    extranonce2_size: usize,
    difficulty: f64,
    version_mask: u32,
    /// The current job, with the upstream's extranonce1 folded into coinb1 and the proxy's
    /// job id.
    job: Option<Notify>,
    /// A job that came before the session was ready (its extranonce1 is known only then).
    early_job: Option<Notify>,
    /// Proxy job id → the upstream's, for the jobs miners may still submit to.
    job_ids: VecDeque<(String, String)>,
    in_flight: BTreeMap<u64, InFlight>,
    response: PhiAccrual,
    last_error: Option<String>,
}

struct InFlight {
    miner: MinerId,
    id: Id,
    worker: String,
    group: Option<GroupId>,
    difficulty: f64,
    sent_ms: u64,
}

struct Miner {
    session: MinerSession,
    prefix: u64,
    group: Option<GroupId>,
    worker: String,
    at: Option<EndpointId>,
    /// Accepted difficulty, exponentially decayed (time constant [`RATE_TAU_MS`]).
    decayed: f64,
    decayed_at_ms: u64,
    connected_ms: u64,
    closing: bool,
}

const RATE_TAU_MS: f64 = 30_000.0;

impl Miner {
    fn rate(&self, now_ms: u64) -> Option<f64> {
        let age = now_ms.saturating_sub(self.connected_ms) as f64;
        if self.decayed <= 0.0 || age < 1.0 {
            return None;
        }
        let decay = (-(now_ms.saturating_sub(self.decayed_at_ms) as f64) / RATE_TAU_MS).exp();
        // Early on the window is the miner's age, not the time constant.
        Some(self.decayed * decay / (RATE_TAU_MS.min(age) / 1000.0))
    }

    fn credit(&mut self, difficulty: f64, now_ms: u64) {
        let decay = (-(now_ms.saturating_sub(self.decayed_at_ms) as f64) / RATE_TAU_MS).exp();
        self.decayed = self.decayed * decay + difficulty;
        self.decayed_at_ms = now_ms;
    }
}

#[derive(Default)]
struct Group {
    route: Option<AppliedRoute>,
    /// The live targets the accounting below is for: when an endpoint fails or comes back,
    /// the split starts over (a dead endpoint's shortfall is not repaid later).
    live: Vec<EndpointId>,
    /// Accepted difficulty per endpoint since the route took effect.
    accepted: BTreeMap<EndpointId, f64>,
}

/// A failover the agent carried out on its own.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Failover {
    /// When, ms since the Unix epoch.
    pub at_ms: u64,
    /// The endpoint that failed.
    pub endpoint: EndpointId,
    /// Why.
    pub reason: String,
    /// Miners moved off it.
    pub miners: usize,
    /// Shares in flight there, answered as stale.
    pub answered_stale: usize,
}

/// The proxy.
pub struct Proxy {
    cfg: ProxyConfig,
    miners: BTreeMap<MinerId, Miner>,
    next_miner: MinerId,
    prefixes: ExtranonceSpace,
    upstreams: BTreeMap<EndpointId, Upstream>,
    conns: BTreeMap<ConnId, EndpointId>,
    next_conn: ConnId,
    groups: BTreeMap<GroupId, Group>,
    credentials: BTreeMap<EndpointId, (String, String)>,
    next_token: u64,
    next_job: u64,
    out: VecDeque<Output>,
    meter: Meter,
    failovers: VecDeque<Failover>,
    next_rebalance_ms: u64,
    backoff: Backoff,
    rng: Rng,
}

impl Proxy {
    /// A proxy with no miners and no upstreams yet.
    #[must_use]
    pub fn new(cfg: ProxyConfig, seed: u64) -> Self {
        let prefixes = ExtranonceSpace::new(Vec::new(), PREFIX_BYTES + MINER_EXTRANONCE2_DEFAULT, PREFIX_BYTES)
            .expect("the default leaves room");
        let p = Self {
            groups: cfg.groups.iter().map(|g| (g.clone(), Group::default())).collect(),
            cfg,
            miners: BTreeMap::new(),
            next_miner: 1,
            prefixes,
            upstreams: BTreeMap::new(),
            conns: BTreeMap::new(),
            next_conn: 1,
            credentials: BTreeMap::new(),
            next_token: 1,
            next_job: 1,
            out: VecDeque::new(),
            meter: Meter::default(),
            failovers: VecDeque::new(),
            next_rebalance_ms: 0,
            backoff: Backoff { base_ms: 100, cap_ms: 5_000 },
            rng: Rng::new(seed),
        };
        // Sessions open at the first `handle_timeout` (the driver calls it at once).
        p
    }

    // ---- miners -------------------------------------------------------------------------

    /// A miner connected (to a listener that maps to `group`, if any). `None`: the agent is
    /// full and the connection must be closed.
    pub fn handle_miner_connected(&mut self, group: Option<GroupId>, now_ms: u64) -> Option<MinerId> {
        if self.miners.len() >= STRATUM_MINERS_PER_AGENT_MAX {
            return None;
        }
        let (extranonce1, _, prefix) = self.prefixes.allocate()?;
        let extranonce2_size = self
            .upstreams
            .values()
            .find(|u| u.link == Link::Ready)
            .map_or(MINER_EXTRANONCE2_DEFAULT, |u| u.extranonce2_size.saturating_sub(PREFIX_BYTES));
        let cfg = MinerConfig { extranonce1, extranonce2_size, pool_version_mask: self.cfg.version_mask };
        let id = self.next_miner;
        self.next_miner += 1;
        let session = MinerSession::new(cfg, self.cfg.start_difficulty);
        self.miners.insert(
            id,
            Miner {
                session,
                prefix,
                group,
                worker: String::new(),
                at: None,
                decayed: 0.0,
                decayed_at_ms: now_ms,
                connected_ms: now_ms,
                closing: false,
            },
        );
        Some(id)
    }

    /// A line from miner `id`.
    pub fn handle_miner_line(&mut self, id: MinerId, line: &str, now_ms: u64) {
        let Some(m) = self.miners.get_mut(&id) else { return };
        m.session.handle_line(line);
        self.miner_events(id, now_ms);
    }

    /// Miner `id`'s connection closed. Shares it has in flight are still counted when their
    /// verdicts come; there is no one left to answer.
    pub fn handle_miner_closed(&mut self, id: MinerId) {
        if let Some(m) = self.miners.remove(&id) {
            self.prefixes.release(m.prefix);
        }
    }

    fn miner_events(&mut self, id: MinerId, now_ms: u64) {
        while let Some(ev) = self.miners.get_mut(&id).and_then(|m| m.session.poll_event()) {
            match ev {
                MinerEvent::Authorize { id: req, worker } => self.authorize(id, req, worker, now_ms),
                MinerEvent::Share { id: req, submit, difficulty, .. } => {
                    self.forward(id, req, submit, difficulty, now_ms);
                }
                MinerEvent::Refused { code: c, .. } => {
                    let m = &self.miners[&id];
                    let outcome = if c == code::JOB_NOT_FOUND { Outcome::Stale } else { Outcome::Rejected };
                    let (at, worker) = (m.at.clone(), m.worker.clone());
                    self.meter.count(at.as_ref(), &worker, outcome, 0.0, now_ms);
                }
                MinerEvent::Close { reason } => {
                    tracing::info!(miner = id, %reason, "closing a miner connection");
                    if let Some(m) = self.miners.get_mut(&id) {
                        m.closing = true;
                    }
                }
            }
        }
        self.flush_miner(id);
    }

    fn flush_miner(&mut self, id: MinerId) {
        let Some(m) = self.miners.get_mut(&id) else { return };
        while let Some(line) = m.session.poll_transmit() {
            self.out.push_back(Output::ToMiner(id, line));
        }
        if m.closing {
            self.out.push_back(Output::CloseMiner(id));
            self.handle_miner_closed(id);
        }
    }

    /// The group a worker name belongs to.
    fn group_of(&self, listener: Option<&GroupId>, worker: &str) -> Option<GroupId> {
        if let Some(g) = listener {
            return Some(g.clone());
        }
        let head = worker.split('.').next().unwrap_or_default();
        if let Some(g) = self.cfg.worker_groups.get(head) {
            return Some(g.clone());
        }
        head.parse::<GroupId>().ok().filter(|g| self.groups.contains_key(g))
    }

    fn authorize(&mut self, id: MinerId, req: Id, worker: String, now_ms: u64) {
        let listener = self.miners[&id].group.clone();
        match self.group_of(listener.as_ref(), &worker) {
            Some(g) => {
                let m = self.miners.get_mut(&id).expect("present");
                m.session.accept_authorize(req, worker.clone());
                m.group = Some(g.clone());
                m.worker = worker;
                self.groups.entry(g.clone()).or_default();
                self.rebalance_group(&g, now_ms);
            }
            None => {
                let known: Vec<&str> = self.groups.keys().map(GroupId::as_str).collect();
                let msg = format!(
                    "unknown miner group in worker {worker:?}: name the worker <group>.<name> with a group this agent serves ({})",
                    known.join(", ")
                );
                tracing::warn!(miner = id, %worker, "authorize refused: unknown miner group");
                self.miners.get_mut(&id).expect("present").session.refuse_authorize(req, &msg);
            }
        }
    }

    fn forward(&mut self, id: MinerId, req: Id, submit: Submit, difficulty: f64, now_ms: u64) {
        let m = &self.miners[&id];
        let (worker, group, prefix) = (m.worker.clone(), m.group.clone(), m.prefix);
        let target = m.at.clone().filter(|e| self.upstreams.get(e).is_some_and(|u| u.link == Link::Ready));
        let Some(endpoint) = target else {
            self.answer_locally(id, req, &worker, None, "Stale: no upstream carries this job any more", now_ms);
            return;
        };
        let token = self.next_token;
        self.next_token += 1;
        let mut extranonce2 = prefix.to_be_bytes()[8 - PREFIX_BYTES..].to_vec();
        extranonce2.extend_from_slice(&submit.extranonce2);
        let up = self.upstreams.get_mut(&endpoint).expect("checked");
        let Some(job_id) = up.job_ids.iter().find(|(ours, _)| *ours == submit.job_id).map(|(_, theirs)| theirs.clone())
        else {
            self.answer_locally(id, req, &worker, Some(&endpoint), "Stale: the job was replaced", now_ms);
            return;
        };
        if up.session.submit(token, &Submit { extranonce2, job_id, ..submit }) {
            up.in_flight.insert(token, InFlight { miner: id, id: req, worker, group, difficulty, sent_ms: now_ms });
            self.flush_upstream(&endpoint);
        } else {
            self.answer_locally(id, req, &worker, Some(&endpoint), "upstream cannot take shares now", now_ms);
        }
    }

    fn answer_locally(
        &mut self,
        id: MinerId,
        req: Id,
        worker: &str,
        endpoint: Option<&EndpointId>,
        why: &str,
        now_ms: u64,
    ) {
        self.meter.count(endpoint, worker, Outcome::Stale, 0.0, now_ms);
        if let Some(m) = self.miners.get_mut(&id) {
            m.session.answer_share(req, Some((code::JOB_NOT_FOUND, why.to_owned())));
        }
        self.flush_miner(id);
    }

    // ---- upstreams ----------------------------------------------------------------------

    /// Upstream connection `conn` is open: say hello.
    pub fn handle_upstream_connected(&mut self, conn: ConnId, now_ms: u64) {
        let Some(e) = self.conns.get(&conn).cloned() else { return };
        if let Some(u) = self.upstreams.get_mut(&e) {
            u.since_ms = now_ms;
        }
        self.flush_upstream(&e);
    }

    /// A line from upstream connection `conn`.
    pub fn handle_upstream_line(&mut self, conn: ConnId, line: &str, now_ms: u64) {
        let Some(e) = self.conns.get(&conn).cloned() else { return };
        let Some(u) = self.upstreams.get_mut(&e) else { return };
        u.session.handle_line(line);
        while let Some(ev) = self.upstreams.get_mut(&e).and_then(|u| u.session.poll_event()) {
            self.upstream_event(&e, ev, now_ms);
        }
        self.flush_upstream(&e);
    }

    /// Upstream connection `conn` closed or could not be opened.
    pub fn handle_upstream_closed(&mut self, conn: ConnId, reason: &str, now_ms: u64) {
        if let Some(e) = self.conns.get(&conn).cloned() {
            self.fail(&e, reason, now_ms);
        }
    }

    fn upstream_event(&mut self, e: &EndpointId, ev: PoolEvent, now_ms: u64) {
        let u = self.upstreams.get_mut(e).expect("present");
        match ev {
            PoolEvent::Ready { extranonce1, extranonce2_size } => {
                if extranonce2_size < PREFIX_BYTES + hashmesh_stratum::extranonce::MINER_EXTRANONCE2_BYTES_MIN {
                    let why = format!("extranonce2 of {extranonce2_size} bytes leaves miners no room to roll");
                    return self.fail(e, &why, now_ms);
                }
                u.extranonce1 = extranonce1;
                u.extranonce2_size = extranonce2_size;
                u.link = Link::Ready;
                u.since_ms = now_ms;
                u.usable_from_ms = if u.failures > 0 { now_ms + self.cfg.fail_back_ms } else { now_ms };
                tracing::info!(endpoint = %e, "upstream ready");
                if let Some(job) = u.early_job.take() {
                    self.upstream_event(e, PoolEvent::Job(job), now_ms);
                }
            }
            PoolEvent::Job(n) if u.link != Link::Ready => u.early_job = Some(n),
            PoolEvent::Job(n) => {
                let mut coinb1 = n.coinb1.clone();
                coinb1.extend_from_slice(&u.extranonce1);
                // Upstreams number their jobs alike: miners see the proxy's own ids, so a
                // share for one upstream's job can never match another's.
                let job_id = format!("{:x}", self.next_job);
                self.next_job += 1;
                if n.clean_jobs {
                    u.job_ids.clear();
                }
                if u.job_ids.len() >= 2 * JOBS_KEPT_MAX {
                    u.job_ids.pop_front();
                }
                u.job_ids.push_back((job_id.clone(), n.job_id.clone()));
                let job = Notify { coinb1, job_id, ..n };
                let first = u.job.is_none();
                u.job = Some(job.clone());
                let on: Vec<MinerId> =
                    self.miners.iter().filter(|(_, m)| m.at.as_ref() == Some(e)).map(|(id, _)| *id).collect();
                for id in on {
                    self.miners.get_mut(&id).expect("listed").session.handle_job(job.clone());
                    self.flush_miner(id);
                }
                if first {
                    self.rebalance_all(now_ms);
                }
            }
            PoolEvent::Difficulty(d) => {
                u.difficulty = d;
                self.each_miner_at(e, |s| s.handle_difficulty(d));
            }
            PoolEvent::VersionMask(mask) => {
                u.version_mask = mask;
                self.each_miner_at(e, |s| s.set_version_mask(mask));
            }
            PoolEvent::Verdict { token, error } => {
                let Some(f) = u.in_flight.remove(&token) else { return };
                let took = now_ms.saturating_sub(f.sent_ms);
                u.response.sample(took as f64);
                self.meter.latency(e, took, now_ms);
                let outcome = match &error {
                    None => Outcome::Accepted,
                    Some((c, _)) if *c == code::JOB_NOT_FOUND => Outcome::Stale,
                    Some(_) => Outcome::Rejected,
                };
                self.meter.count(Some(e), &f.worker, outcome, f.difficulty, now_ms);
                if outcome == Outcome::Accepted {
                    if let Some(g) = f.group.as_ref().and_then(|g| self.groups.get_mut(g)) {
                        *g.accepted.entry(e.clone()).or_insert(0.0) += f.difficulty;
                    }
                }
                if let Some(m) = self.miners.get_mut(&f.miner) {
                    if outcome == Outcome::Accepted {
                        m.credit(f.difficulty, now_ms);
                    }
                    m.session.answer_share(f.id, error);
                    self.flush_miner(f.miner);
                }
            }
            PoolEvent::Reconnect { .. } => self.fail(e, "the endpoint asked us to reconnect", now_ms),
            PoolEvent::Fault { reason } => self.fail(e, &reason, now_ms),
        }
    }

    fn each_miner_at(&mut self, e: &EndpointId, f: impl Fn(&mut MinerSession)) {
        let on: Vec<MinerId> =
            self.miners.iter().filter(|(_, m)| m.at.as_ref() == Some(e)).map(|(id, _)| *id).collect();
        for id in on {
            f(&mut self.miners.get_mut(&id).expect("listed").session);
            self.flush_miner(id);
        }
    }

    fn flush_upstream(&mut self, e: &EndpointId) {
        let Some(u) = self.upstreams.get_mut(e) else { return };
        if u.link == Link::Down {
            return;
        }
        while let Some(line) = u.session.poll_transmit() {
            self.out.push_back(Output::ToUpstream(u.conn, line));
        }
    }

    /// The endpoint is dead for now: answer its in-flight shares as stale, move its miners to
    /// the route's other live endpoints (now, not after consensus), retry it with backoff.
    fn fail(&mut self, e: &EndpointId, reason: &str, now_ms: u64) {
        let Some(u) = self.upstreams.get_mut(e) else { return };
        if u.link == Link::Down {
            return;
        }
        let conn = u.conn;
        u.link = Link::Down;
        u.failures = u.failures.saturating_add(1);
        u.job = None;
        u.job_ids.clear();
        u.retry_at_ms = now_ms + self.backoff.delay_ms(u.failures.min(16) - 1, &mut self.rng).max(50);
        u.last_error = Some(reason.to_owned());
        let stale: Vec<InFlight> = std::mem::take(&mut u.in_flight).into_values().collect();
        self.conns.remove(&conn);
        self.out.push_back(Output::CloseUpstream(conn));
        let answered_stale = stale.len();
        for f in stale {
            self.meter.count(Some(e), &f.worker, Outcome::Stale, f.difficulty, now_ms);
            if let Some(m) = self.miners.get_mut(&f.miner) {
                m.session.answer_share(
                    f.id,
                    Some((code::JOB_NOT_FOUND, format!("Stale: endpoint {e} failed with the share in flight"))),
                );
                self.flush_miner(f.miner);
            }
        }
        let moved: Vec<MinerId> =
            self.miners.iter().filter(|(_, m)| m.at.as_ref() == Some(e)).map(|(id, _)| *id).collect();
        for id in &moved {
            self.miners.get_mut(id).expect("listed").at = None;
        }
        tracing::warn!(endpoint = %e, %reason, miners = moved.len(), answered_stale, "upstream failed; moving its work");
        if self.failovers.len() >= STRATUM_FAILOVERS_KEPT_MAX {
            self.failovers.pop_front();
        }
        self.failovers.push_back(Failover {
            at_ms: now_ms,
            endpoint: e.clone(),
            reason: reason.to_owned(),
            miners: moved.len(),
            answered_stale,
        });
        self.rebalance_all(now_ms);
    }

    /// Whether we can log in at `e`: our own endpoints always, another pool's only with the
    /// credentials its owner handed over (else its owner would not credit our work).
    fn may_log_in(&self, e: &EndpointId) -> bool {
        let pool = e.as_str().split('/').next().unwrap_or_default();
        self.cfg.own_pools.is_empty() || self.cfg.own_pools.contains(pool) || self.credentials.contains_key(e)
    }

    fn login_for(&self, e: &EndpointId) -> PoolLogin {
        let (user, password) = self
            .credentials
            .get(e)
            .or_else(|| self.cfg.logins.get(e))
            .cloned()
            .unwrap_or_else(|| self.cfg.default_login.clone());
        PoolLogin { user, password, user_agent: self.cfg.user_agent.clone(), version_mask: self.cfg.version_mask }
    }

    fn connect(&mut self, e: &EndpointId, now_ms: u64) {
        let conn = self.next_conn;
        self.next_conn += 1;
        let session = PoolSession::new(self.login_for(e));
        let u = self.upstreams.entry(e.clone()).or_insert_with(|| Upstream {
            conn,
            session: PoolSession::new(PoolLogin {
                user: String::new(),
                password: String::new(),
                user_agent: String::new(),
                version_mask: 0,
            }),
            link: Link::Down,
            since_ms: now_ms,
            usable_from_ms: now_ms,
            retry_at_ms: now_ms,
            failures: 0,
            extranonce1: Vec::new(),
            extranonce2_size: 0,
            difficulty: 1.0,
            version_mask: 0,
            job: None,
            early_job: None,
            job_ids: VecDeque::new(),
            in_flight: BTreeMap::new(),
            response: PhiAccrual::new(8.0, 50.0).with_acceptable_pause(100.0).with_first_estimate(300.0),
            last_error: None,
        });
        u.conn = conn;
        u.session = session;
        u.link = Link::Connecting;
        u.since_ms = now_ms;
        u.job = None;
        u.early_job = None;
        u.job_ids.clear();
        u.version_mask = self.cfg.version_mask;
        self.conns.insert(conn, e.clone());
        self.out.push_back(Output::Connect(conn, e.clone()));
    }

    /// The endpoints that should have an upstream session: every target of every route, and
    /// one standby of the pool's own.
    fn wanted(&self) -> BTreeSet<EndpointId> {
        let mut w: BTreeSet<EndpointId> = self
            .groups
            .values()
            .filter_map(|g| g.route.as_ref())
            .flat_map(|r| r.effective().into_iter().map(|t| t.endpoint))
            .filter(|e| self.may_log_in(e))
            .collect();
        if let Some(s) = self.cfg.standby.iter().find(|s| !w.contains(*s)).or_else(|| self.cfg.standby.first()) {
            w.insert(s.clone());
        }
        w
    }

    /// Open sessions that should exist, retry failed ones that are due, close unwanted idle ones.
    fn reconcile(&mut self, now_ms: u64) {
        let wanted = self.wanted();
        for e in &wanted {
            let due = self.upstreams.get(e).is_none_or(|u| u.link == Link::Down && u.retry_at_ms <= now_ms);
            if due {
                self.connect(e, now_ms);
            }
        }
        let idle: Vec<EndpointId> = self
            .upstreams
            .iter()
            .filter(|(e, u)| {
                !wanted.contains(*e)
                    && u.in_flight.is_empty()
                    && !self.miners.values().any(|m| m.at.as_ref() == Some(*e))
            })
            .map(|(e, _)| e.clone())
            .collect();
        for e in idle {
            let u = self.upstreams.remove(&e).expect("listed");
            self.conns.remove(&u.conn);
            if u.link != Link::Down {
                self.out.push_back(Output::CloseUpstream(u.conn));
            }
        }
    }

    fn usable(&self, e: &EndpointId, now_ms: u64) -> bool {
        self.may_log_in(e)
            && self
                .upstreams
                .get(e)
                .is_some_and(|u| u.link == Link::Ready && u.job.is_some() && now_ms >= u.usable_from_ms)
    }

    /// Where a group's work goes now: its route's live targets with their weights; else the
    /// first live standby endpoint; else nowhere.
    fn live_targets(&self, g: &Group, now_ms: u64) -> Vec<(EndpointId, f64)> {
        let live: Vec<(EndpointId, f64)> = g
            .route
            .as_ref()
            .map(|r| {
                r.effective()
                    .into_iter()
                    .filter(|t| self.usable(&t.endpoint, now_ms))
                    .map(|t| (t.endpoint, f64::from(t.weight_bp)))
                    .collect()
            })
            .unwrap_or_default();
        if !live.is_empty() {
            return live;
        }
        self.cfg.standby.iter().find(|s| self.usable(s, now_ms)).map(|s| vec![(s.clone(), 1.0)]).unwrap_or_default()
    }

    fn rebalance_all(&mut self, now_ms: u64) {
        let groups: Vec<GroupId> = self.groups.keys().cloned().collect();
        for g in groups {
            self.rebalance_group(&g, now_ms);
        }
    }

    fn rebalance_group(&mut self, gid: &GroupId, now_ms: u64) {
        let Some(g) = self.groups.get(gid) else { return };
        let targets = self.live_targets(g, now_ms);
        let live: Vec<EndpointId> = targets.iter().map(|(e, _)| e.clone()).collect();
        if live != g.live {
            let g = self.groups.get_mut(gid).expect("present");
            g.live = live;
            g.accepted.clear();
        }
        let g = &self.groups[gid];
        let members: Vec<(MinerId, Option<EndpointId>, Option<f64>)> = self
            .miners
            .iter()
            .filter(|(_, m)| m.group.as_ref() == Some(gid) && !m.worker.is_empty())
            .map(|(id, m)| (*id, m.at.clone(), m.rate(now_ms)))
            .collect();
        if members.is_empty() {
            return;
        }
        if targets.is_empty() {
            for (id, at, _) in members {
                if at.is_some() {
                    self.miners.get_mut(&id).expect("listed").at = None;
                }
            }
            return;
        }
        let known: Vec<f64> = members.iter().filter_map(|(_, _, r)| *r).collect();
        let typical = if known.is_empty() { 1.0 } else { known.iter().sum::<f64>() / known.len() as f64 };
        let split: Vec<SplitMiner> = members
            .iter()
            .map(|(id, at, r)| SplitMiner { id: *id, at: at.clone(), rate: r.unwrap_or(typical) })
            .collect();
        for (id, to) in rebalance(&targets, &g.accepted, &split, self.cfg.split) {
            self.move_miner(id, &to);
        }
    }

    /// Switch a miner's work to `e` at a job boundary: difficulty and a clean job from there.
    fn move_miner(&mut self, id: MinerId, e: &EndpointId) {
        let u = &self.upstreams[e];
        let (size, difficulty, mask, job) =
            (u.extranonce2_size - PREFIX_BYTES, u.difficulty, u.version_mask, u.job.clone().expect("usable"));
        let m = self.miners.get_mut(&id).expect("member");
        if m.session.extranonce2_size() != size {
            let en1 = m.session.extranonce1().to_vec();
            if !m.session.set_extranonce(en1, size) {
                m.session.reconnect();
                self.flush_miner(id);
                return;
            }
        }
        m.session.set_version_mask(mask);
        m.session.handle_difficulty(difficulty);
        m.session.handle_job(Notify { clean_jobs: true, ..job });
        m.at = Some(e.clone());
        self.flush_miner(id);
    }

    // ---- routes and time ------------------------------------------------------------------

    /// The committed routing table (after an instruction was applied): new routes take effect
    /// now — moved miners get the new endpoint's job at once — and their split starts over.
    pub fn handle_routes(&mut self, routes: &BTreeMap<GroupId, AppliedRoute>, now_ms: u64) {
        let mut changed = Vec::new();
        let mut relogin = Vec::new();
        for (gid, r) in routes {
            let g = self.groups.entry(gid.clone()).or_default();
            let same = g.route.as_ref().is_some_and(|old| old.directive == r.directive && old.drained == r.drained);
            for c in &r.credentials {
                let new = (c.user.clone(), c.password.clone());
                if self.credentials.insert(c.endpoint.clone(), new.clone()).as_ref() != Some(&new) {
                    relogin.push(c.endpoint.clone());
                }
            }
            if !same {
                g.route = Some(r.clone());
                g.accepted.clear();
                changed.push(gid.clone());
            }
        }
        let relogged = !relogin.is_empty();
        for e in relogin {
            // Log in again with the credentials the lender handed over (its books must show
            // them); the session's miners move meanwhile, like a failover without blame.
            if let Some(u) = self.upstreams.get_mut(&e) {
                let failures = u.failures;
                self.fail(&e, "logging in again with new credentials", now_ms);
                let u = self.upstreams.get_mut(&e).expect("present");
                u.failures = failures;
                u.retry_at_ms = now_ms;
                self.failovers.pop_back();
            }
        }
        if changed.is_empty() && !relogged {
            return;
        }
        self.reconcile(now_ms);
        for g in changed {
            self.rebalance_group(&g, now_ms);
        }
    }

    /// Time passed: overdue answers and slow hellos fail their upstream; failed upstreams are
    /// retried; the split is rebalanced every [`ProxyConfig::rebalance_ms`].
    pub fn handle_timeout(&mut self, now_ms: u64) {
        let overdue: Vec<(EndpointId, String)> = self
            .upstreams
            .iter()
            .filter_map(|(e, u)| match u.link {
                Link::Connecting if now_ms.saturating_sub(u.since_ms) > UPSTREAM_READY_MS_MAX => {
                    Some((e.clone(), format!("not ready within {UPSTREAM_READY_MS_MAX} ms")))
                }
                Link::Ready => {
                    let oldest = u.in_flight.values().map(|f| f.sent_ms).min()?;
                    let waited = now_ms.saturating_sub(oldest);
                    (u.response.overdue(waited as f64) || waited > ANSWER_WAIT_MS_MAX)
                        .then(|| (e.clone(), format!("a share went unanswered for {waited} ms")))
                }
                _ => None,
            })
            .collect();
        for (e, why) in overdue {
            self.fail(&e, &why, now_ms);
        }
        self.reconcile(now_ms);
        if now_ms >= self.next_rebalance_ms {
            self.next_rebalance_ms = now_ms + self.cfg.rebalance_ms;
            self.rebalance_all(now_ms);
        }
    }

    /// When [`Proxy::handle_timeout`] should run next, ms.
    #[must_use]
    pub fn poll_timeout(&self) -> u64 {
        let mut at = self.next_rebalance_ms;
        for u in self.upstreams.values() {
            match u.link {
                Link::Down => at = at.min(u.retry_at_ms),
                Link::Connecting => at = at.min(u.since_ms + UPSTREAM_READY_MS_MAX + 1),
                Link::Ready => {
                    if let Some(oldest) = u.in_flight.values().map(|f| f.sent_ms).min() {
                        at = at.min(oldest + 50);
                    }
                }
            }
        }
        at
    }

    /// The next thing for the driver to do.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    // ---- what the agent tells others ------------------------------------------------------

    /// Measurements per endpoint since the previous call (for the next heartbeat).
    pub fn reports(&mut self, now_ms: u64) -> Vec<(EndpointId, TelemetryReport)> {
        let ups = &self.upstreams;
        let miners = &self.miners;
        self.meter.reports(
            now_ms,
            &|e| ups.get(e).is_none_or(|u| u.link != Link::Ready),
            &|e| u32::try_from(miners.values().filter(|m| m.at.as_ref() == Some(e)).count()).unwrap_or(u32::MAX),
            &|e| ups.get(e).map_or(0, |u| u32::try_from(u.in_flight.len()).unwrap_or(u32::MAX)),
        )
    }

    /// A snapshot for `hashmesh-agent status`, tests and the status file. Credentials never
    /// appear in it.
    #[must_use]
    pub fn status(&self, now_ms: u64) -> ProxyStatus {
        let endpoints = self
            .upstreams
            .iter()
            .map(|(e, u)| {
                let totals = self.meter.endpoints().get(e).map(|m| m.total).unwrap_or_default();
                EndpointStatus {
                    endpoint: e.clone(),
                    link: u.link,
                    usable: self.usable(e, now_ms),
                    miners: self.miners.values().filter(|m| m.at.as_ref() == Some(e)).count(),
                    difficulty: u.difficulty,
                    in_flight: u.in_flight.len(),
                    failures: u.failures,
                    last_error: u.last_error.clone(),
                    totals,
                }
            })
            .collect();
        let groups = self
            .groups
            .iter()
            .map(|(gid, g)| GroupStatus {
                group: gid.clone(),
                directive: g.route.as_ref().map(|r| r.directive.to_hex()),
                targets: g
                    .route
                    .as_ref()
                    .map(|r| r.effective().into_iter().map(|t| (t.endpoint, t.weight_bp)).collect())
                    .unwrap_or_default(),
                live: self.live_targets(g, now_ms).into_iter().map(|(e, _)| e).collect(),
                miners: self.miners.values().filter(|m| m.group.as_ref() == Some(gid)).count(),
                accepted_difficulty: g.accepted.clone(),
            })
            .collect();
        ProxyStatus {
            miners: self.miners.len(),
            endpoints,
            groups,
            failovers: self.failovers.iter().cloned().collect(),
            workers: self.meter.workers().iter().map(|(w, c)| (w.clone(), *c)).collect(),
        }
    }
}

/// One upstream in [`ProxyStatus`].
#[derive(Debug, Clone, Serialize)]
pub struct EndpointStatus {
    /// The endpoint.
    pub endpoint: EndpointId,
    /// Its connection.
    link: Link,
    /// Whether work goes there now.
    pub usable: bool,
    /// Miners whose work goes there.
    pub miners: usize,
    /// Its share difficulty.
    pub difficulty: f64,
    /// Shares waiting for its verdict.
    pub in_flight: usize,
    /// Times it failed since the agent started.
    pub failures: u32,
    /// Why it last failed.
    pub last_error: Option<String>,
    /// Shares and difficulty since the agent started.
    pub totals: super::meter::Counts,
}

/// One group in [`ProxyStatus`].
#[derive(Debug, Clone, Serialize)]
pub struct GroupStatus {
    /// The group.
    pub group: GroupId,
    /// The directive of its route (hex), if one arrived.
    pub directive: Option<String>,
    /// The route in effect (drained endpoints removed).
    pub targets: Vec<(EndpointId, u16)>,
    /// Where its work can go now.
    pub live: Vec<EndpointId>,
    /// Its miners.
    pub miners: usize,
    /// Accepted difficulty per endpoint since its route took effect.
    pub accepted_difficulty: BTreeMap<EndpointId, f64>,
}

/// The proxy at a glance.
#[derive(Debug, Clone, Serialize)]
pub struct ProxyStatus {
    /// Miners connected.
    pub miners: usize,
    /// Upstreams.
    pub endpoints: Vec<EndpointStatus>,
    /// Groups.
    pub groups: Vec<GroupStatus>,
    /// Recent failovers, oldest first.
    pub failovers: Vec<Failover>,
    /// Per-worker totals.
    pub workers: BTreeMap<String, super::meter::Counts>,
}
