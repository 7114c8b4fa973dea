//! The proxy's upstream side: sessions to endpoints — hello, jobs folded and renumbered for
//! miners, verdicts back to the shares they answer, failure and retry, which endpoints to keep
//! a session with, and whose credentials to log in with.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use hashmesh_protocol::limits::STRATUM_FAILOVERS_KEPT_MAX;
use hashmesh_protocol::EndpointId;
use hashmesh_scheduler::phi::PhiAccrual;
use hashmesh_stratum::message::{code, Notify};
use hashmesh_stratum::miner::{MinerSession, JOBS_KEPT_MAX};
use hashmesh_stratum::pool::{PoolEvent, PoolLogin, PoolSession};

use hashmesh_plane::core::agent::AppliedRoute;

use super::{ConnId, Failover, Group, InFlight, Link, MinerId, Output, Proxy, Upstream, PREFIX_BYTES};
use crate::proxy::meter::Outcome;

impl Proxy {
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

    pub(super) fn upstream_event(&mut self, e: &EndpointId, ev: PoolEvent, now_ms: u64) {
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
                u.usable_from_ms = if u.recovering { now_ms + self.cfg.fail_back_ms } else { now_ms };
                u.recovering = false;
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
                u.last_job_ms = Some(now_ms);
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
                if outcome == Outcome::Accepted && f.standby {
                    self.meter.standby(e, f.difficulty, now_ms);
                }
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

    pub(super) fn each_miner_at(&mut self, e: &EndpointId, f: impl Fn(&mut MinerSession)) {
        let on: Vec<MinerId> =
            self.miners.iter().filter(|(_, m)| m.at.as_ref() == Some(e)).map(|(id, _)| *id).collect();
        for id in on {
            f(&mut self.miners.get_mut(&id).expect("listed").session);
            self.flush_miner(id);
        }
    }

    pub(super) fn flush_upstream(&mut self, e: &EndpointId) {
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
    pub(super) fn fail(&mut self, e: &EndpointId, reason: &str, now_ms: u64) {
        self.end_session(e, reason, now_ms, true);
    }

    /// Close `e`'s session to log in again at once with credentials that changed (the lender's
    /// books must show them): its work moves meanwhile, like a failover without the blame — no
    /// failure counted, no backoff, no fail-back dwell.
    pub(super) fn relogin(&mut self, e: &EndpointId, now_ms: u64) {
        self.end_session(e, "logging in again with new credentials", now_ms, false);
        if let Some(u) = self.upstreams.get_mut(e) {
            u.retry_at_ms = now_ms;
        }
    }

    /// End `e`'s session: answer its shares in flight as stale, take its miners off it (the
    /// rebalance moves them), and — for a failure — count it, back off and remember it.
    fn end_session(&mut self, e: &EndpointId, reason: &str, now_ms: u64, failed: bool) {
        let Some(u) = self.upstreams.get_mut(e) else { return };
        if u.link == Link::Down {
            return;
        }
        let conn = u.conn;
        u.link = Link::Down;
        u.job = None;
        u.job_ids.clear();
        if failed {
            u.failures = u.failures.saturating_add(1);
            u.recovering = true;
            u.retry_at_ms = now_ms + self.backoff.delay_ms(u.failures.min(16) - 1, &mut self.rng).max(50);
            u.last_error = Some(reason.to_owned());
        }
        let stale: Vec<InFlight> = std::mem::take(&mut u.in_flight).into_values().collect();
        self.conns.remove(&conn);
        self.out.push_back(Output::CloseUpstream(conn));
        let answered_stale = stale.len();
        for f in stale {
            self.meter.count(Some(e), &f.worker, Outcome::Stale, f.difficulty, now_ms);
            if let Some(m) = self.miners.get_mut(&f.miner) {
                m.session.answer_share(
                    f.id,
                    Some((code::JOB_NOT_FOUND, format!("Stale: the session to {e} ended with the share in flight"))),
                );
                self.flush_miner(f.miner);
            }
        }
        let moved: Vec<MinerId> =
            self.miners.iter().filter(|(_, m)| m.at.as_ref() == Some(e)).map(|(id, _)| *id).collect();
        for id in &moved {
            self.miners.get_mut(id).expect("listed").at = None;
        }
        if failed {
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
        } else {
            tracing::info!(endpoint = %e, %reason, miners = moved.len(), "ending an upstream session");
        }
        self.rebalance_all(now_ms);
    }

    /// Whether we can log in at `e`: our own endpoints always, another pool's only with the
    /// credentials its owner handed over — a loan's, or the standby credential of its offer
    /// (else its owner would not take our work).
    pub(super) fn may_log_in(&self, e: &EndpointId) -> bool {
        let pool = e.as_str().split('/').next().unwrap_or_default();
        self.cfg.own_pools.is_empty()
            || self.cfg.own_pools.contains(pool)
            || self.credentials.contains_key(e)
            || self.standby_logins.contains_key(e)
    }

    /// Whether a session at `e` logs in with the standby credential of the lender's offer (no
    /// loan's credentials yet): its accepted work is no loan's.
    pub(super) fn standby_login(&self, e: &EndpointId) -> bool {
        !self.credentials.contains_key(e) && self.standby_logins.contains_key(e)
    }

    pub(super) fn login_for(&self, e: &EndpointId) -> PoolLogin {
        let (user, password) = self
            .credentials
            .get(e)
            .or_else(|| self.standby_logins.get(e))
            .or_else(|| self.cfg.logins.get(e))
            .cloned()
            .unwrap_or_else(|| self.cfg.default_login.clone());
        PoolLogin { user, password, user_agent: self.cfg.user_agent.clone(), version_mask: self.cfg.version_mask }
    }

    pub(super) fn connect(&mut self, e: &EndpointId, now_ms: u64) {
        let conn = self.next_conn;
        self.next_conn += 1;
        let session = PoolSession::new(self.login_for(e));
        let standby = self.standby_login(e);
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
            recovering: false,
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
            last_job_ms: None,
            standby: false,
        });
        u.standby = standby;
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

    /// The endpoints that should have an upstream session: every target of every route, one
    /// standby of the pool's own, and — while some group has none of those working — the
    /// offered endpoints to fall back to, in order, up to the first that is not down.
    pub(super) fn wanted(&self) -> BTreeSet<EndpointId> {
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
        if self.groups.values().any(|g| self.stranded(g)) {
            for e in &self.fallback {
                w.insert(e.clone());
                if self.upstreams.get(e).is_none_or(|u| u.link != Link::Down) {
                    break;
                }
            }
        }
        w
    }

    /// Whether none of a group's route targets and none of the pool's standby endpoints has a
    /// working session (a session not yet tried counts as working: it is about to be).
    pub(super) fn stranded(&self, g: &Group) -> bool {
        let working = |e: &EndpointId| {
            self.may_log_in(e) && self.upstreams.get(e).is_none_or(|u| u.link != Link::Down && !u.recovering)
        };
        let route = g.route.as_ref().map(AppliedRoute::effective).unwrap_or_default();
        !route.iter().any(|t| working(&t.endpoint)) && !self.cfg.standby.iter().any(working)
    }

    /// Open sessions that should exist, retry failed ones that are due, close unwanted idle ones.
    pub(super) fn reconcile(&mut self, now_ms: u64) {
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
}
