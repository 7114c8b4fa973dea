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
use hashmesh_protocol::limits::STRATUM_MINERS_PER_AGENT_MAX;
use hashmesh_protocol::plane::WorkerCredential;
use hashmesh_protocol::{EndpointId, GroupId};
use hashmesh_scheduler::phi::{Backoff, PhiAccrual};
use hashmesh_scheduler::rng::Rng;
use hashmesh_stratum::extranonce::ExtranonceSpace;
use hashmesh_stratum::message::{code, Id, Notify, Submit};
use hashmesh_stratum::miner::{MinerConfig, MinerEvent, MinerSession};
use hashmesh_stratum::pool::PoolSession;
use serde::Serialize;

use super::meter::{Meter, Outcome};
use super::split::SplitParams;

mod placement;
mod status;
mod upstream;

pub use status::{EndpointStatus, GroupStatus, LatencySummary, ProxyStatus, WorkerStatus, LATENCY_BUCKETS_SECONDS};

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
    /// Most workers with statistics of their own (0: per-worker statistics off; at most
    /// `STRATUM_WORKERS_TRACKED_MAX`).
    pub workers_max: usize,
}

/// Workers with statistics of their own unless configured otherwise.
pub const WORKERS_MAX_DEFAULT: usize = 10_000;

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
            workers_max: WORKERS_MAX_DEFAULT,
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
    /// It failed since it was last ready: when it is ready again, work waits out the dwell.
    recovering: bool,
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
    /// When its last job arrived, ms.
    last_job_ms: Option<u64>,
    /// Logged in with the standby credential of a lender's offer (a fallback, no loan yet).
    standby: bool,
}

struct InFlight {
    miner: MinerId,
    id: Id,
    worker: String,
    group: Option<GroupId>,
    difficulty: f64,
    sent_ms: u64,
    /// Sent through a session logged in with a standby credential.
    standby: bool,
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
    /// Other pools' offered endpoints to fall back to, cheapest first.
    fallback: Vec<EndpointId>,
    /// Their standby credentials.
    standby_logins: BTreeMap<EndpointId, (String, String)>,
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
        let meter = Meter::new(cfg.workers_max);
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
            fallback: Vec::new(),
            standby_logins: BTreeMap::new(),
            next_token: 1,
            next_job: 1,
            out: VecDeque::new(),
            meter,
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
            let standby = up.standby;
            up.in_flight
                .insert(token, InFlight { miner: id, id: req, worker, group, difficulty, sent_ms: now_ms, standby });
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
        // A loan's credentials end with the last route through its endpoint (the lender
        // rotated them). A session still logged in with them finishes its shares in flight
        // (they are the loan's) and closes when idle — unless the endpoint is a fallback in use
        // now: then it logs in again at once with the offer's standby credential.
        let routed: BTreeSet<EndpointId> = self
            .groups
            .values()
            .filter_map(|g| g.route.as_ref())
            .flat_map(|r| r.targets.iter().map(|t| t.endpoint.clone()))
            .collect();
        let ended: Vec<EndpointId> = self.credentials.keys().filter(|e| !routed.contains(*e)).cloned().collect();
        for e in &ended {
            self.credentials.remove(e);
        }
        if !ended.is_empty() {
            let wanted = self.wanted();
            relogin.extend(ended.into_iter().filter(|e| self.upstreams.contains_key(e) && wanted.contains(e)));
        }
        let relogged = !relogin.is_empty();
        for e in relogin {
            self.relogin(&e, now_ms);
        }
        if changed.is_empty() && !relogged {
            return;
        }
        self.reconcile(now_ms);
        for g in changed {
            self.rebalance_group(&g, now_ms);
        }
    }

    /// The node's list of other pools' offered endpoints to fall back to (cheapest first, with
    /// their standby credentials): used only while a group has no working route target and no
    /// working own standby. A session logged in with a standby credential that changed logs in
    /// again.
    pub fn handle_fallback(&mut self, list: &[WorkerCredential], now_ms: u64) {
        let logins: BTreeMap<EndpointId, (String, String)> =
            list.iter().map(|c| (c.endpoint.clone(), (c.user.clone(), c.password.clone()))).collect();
        let order: Vec<EndpointId> = list.iter().map(|c| c.endpoint.clone()).collect();
        if order == self.fallback && logins == self.standby_logins {
            return;
        }
        let changed: Vec<EndpointId> = self
            .upstreams
            .iter()
            .filter(|(e, u)| u.standby && logins.get(*e) != self.standby_logins.get(*e))
            .map(|(e, _)| e.clone())
            .collect();
        self.fallback = order;
        self.standby_logins = logins;
        for e in changed {
            self.relogin(&e, now_ms);
        }
        self.reconcile(now_ms);
        self.rebalance_all(now_ms);
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
}
