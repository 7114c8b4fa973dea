//! The node side of the plane as a state machine (quinn-proto style): committed routes,
//! agents' sessions and messages go in through `handle_*`; writes to persist and instructions to
//! transmit come out of `poll_*`. No sockets, no disk, no clock — `now_ms` is an argument — so
//! every delivery rule is tested without a network.
//!
//! # Invariants
//! - An instruction is transmitted only after the batch that persists it was reported durable
//!   ([`NodePlane::handle_persisted`]): a crash never loses what an agent may have applied.
//! - Each agent receives its instructions in sequence order, at most [`WRITES_IN_FLIGHT_MAX`]
//!   write batches in flight per session (the next is ready while one is written); a new session resumes after the last acknowledged sequence.
//! - Acknowledged instructions are pruned; at most [`INSTRUCTIONS_OUTSTANDING_PER_AGENT_MAX`]
//!   wait per agent — beyond it the queue is compacted to the latest route of each group (a
//!   resynchronisation from committed state, not an endless backlog).
//! - Every map is bounded: agents by the registry, groups per agent by
//!   [`GROUPS_PER_AGENT_MAX`], measured endpoints by
//!   `REPORTS_KEPT_MAX` (the epoch book), receipts by [`RECEIPTS_PENDING_MAX`], latencies by the outstanding bound.

use std::collections::{BTreeMap, BTreeSet};

use hashmesh_protocol::limits::{
    GROUPS_PER_AGENT_MAX, INSTRUCTIONS_OUTSTANDING_PER_AGENT_MAX, RECEIPTS_PENDING_MAX, WRITE_BATCH_INSTRUCTIONS_MAX,
};
use hashmesh_protocol::plane::{
    Instruction, PlaneMsg, WorkerCredential, HEARTBEAT_REPORTS_MAX, MEASUREMENT_WINDOWS_MAX,
};
use hashmesh_protocol::{AgentId, DirectiveId, EndpointId, GroupId, Measurement, Receipt};
use hashmesh_scheduler::phi::PhiAccrual;
use hashmesh_telemetry::EpochBook;

mod types;
pub use types::{
    kind, AgentView, CommitInput, CommittedRoute, Counters, GroupWork, PeerFault, Persist, PersistBatch, Restored,
    Transmit,
};

struct Slot {
    groups: BTreeSet<GroupId>,
    next_seq: u64,
    acked_seq: u64,
    /// Highest sequence known durable.
    durable_seq: u64,
    unacked: BTreeMap<u64, Instruction>,
    /// When each unacknowledged instruction was queued (for the commit-to-ack latency).
    queued_at_ms: BTreeMap<u64, u64>,
    /// Last (directive, height, credentials+drained) queued per group, so nothing is queued twice.
    last: BTreeMap<GroupId, (DirectiveId, u64, Vec<WorkerCredential>, Vec<EndpointId>)>,
    sessions: BTreeMap<u64, Session>,
    phi: PhiAccrual,
    last_heartbeat_ms: Option<u64>,
    last_directive: Option<DirectiveId>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Session {
    sent_seq: u64,
    /// Writes handed out and not yet reported done (at most [`WRITES_IN_FLIGHT_MAX`]).
    in_flight: u32,
}

/// Most write batches handed to one session and not yet reported written.
pub const WRITES_IN_FLIGHT_MAX: u32 = 2;

/// The node side of the plane.
pub struct NodePlane {
    agents: BTreeMap<AgentId, Slot>,
    /// Latest committed route per group served by some agent.
    routes: BTreeMap<GroupId, CommittedRoute>,
    drained: BTreeSet<EndpointId>,
    credentials: BTreeMap<DirectiveId, Vec<WorkerCredential>>,
    receipts: BTreeMap<(DirectiveId, AgentId), u64>,
    /// Agents' measurement windows since the scheduling loop last took them.
    book: EpochBook,
    staged: Vec<Persist>,
    /// Per unfinished batch: the highest sequence it persists per agent.
    batches: BTreeMap<u64, BTreeMap<AgentId, u64>>,
    staged_seqs: BTreeMap<AgentId, u64>,
    next_batch: u64,
    next_session: u64,
    phi_threshold: f64,
    counters: Counters,
    /// Recent commit-to-acknowledgement latencies, ms (bounded; drained by the driver).
    latencies_ms: Vec<u64>,
}

impl NodePlane {
    /// A plane for the registered `agents` (key → groups), resuming from `restored`.
    ///
    /// # Panics
    /// If an agent serves more than [`GROUPS_PER_AGENT_MAX`] groups (the registry refuses that).
    #[must_use]
    pub fn new(agents: &BTreeMap<AgentId, Vec<GroupId>>, restored: Restored, phi_threshold: f64) -> Self {
        let mut queues = restored.queues;
        let mut lasts = restored.last;
        let agents = agents
            .iter()
            .map(|(id, groups)| {
                assert!(
                    groups.len() <= GROUPS_PER_AGENT_MAX,
                    "agent {id} serves more than {GROUPS_PER_AGENT_MAX} groups"
                );
                let ((next_seq, acked_seq), unacked) = queues.remove(id).unwrap_or(((1, 0), Vec::new()));
                let mut last = BTreeMap::new();
                for i in lasts.remove(id).unwrap_or_default().iter().chain(&unacked) {
                    last.insert(i.group.clone(), (i.directive, i.height, i.credentials.clone(), i.drained.clone()));
                }
                let slot = Slot {
                    groups: groups.iter().cloned().collect(),
                    next_seq,
                    acked_seq,
                    durable_seq: next_seq - 1,
                    unacked: unacked.into_iter().map(|i| (i.seq, i)).collect(),
                    queued_at_ms: BTreeMap::new(),
                    last,
                    sessions: BTreeMap::new(),
                    // Agents beat every second by default; assume so until two beats are seen.
                    phi: PhiAccrual::new(phi_threshold, 200.0).with_first_estimate(1000.0),
                    last_heartbeat_ms: None,
                    last_directive: None,
                };
                (*id, slot)
            })
            .collect();
        Self {
            agents,
            routes: BTreeMap::new(),
            drained: BTreeSet::new(),
            credentials: restored.credentials,
            receipts: restored.receipts.into_iter().map(|r| ((r.directive, r.agent), r.applied_at_ms)).collect(),
            book: EpochBook::default(),
            staged: Vec::new(),
            batches: BTreeMap::new(),
            staged_seqs: BTreeMap::new(),
            next_batch: 1,
            next_session: 1,
            phi_threshold,
            counters: Counters::default(),
            latencies_ms: Vec::new(),
        }
    }

    /// A block committed (or, at start, the committed state as one input): queue each new route
    /// for the agents that serve its group, re-send routes whose endpoints were drained or
    /// restored, and forget receipts now on chain.
    pub fn handle_commit(&mut self, input: &CommitInput, now_ms: u64) {
        for (e, drained) in &input.endpoints {
            if *drained {
                self.drained.insert(e.clone());
            } else {
                self.drained.remove(e);
            }
        }
        let mut touched: BTreeSet<GroupId> = BTreeSet::new();
        for r in &input.routes {
            if self.agents.values().any(|s| s.groups.contains(&r.group)) {
                self.routes.insert(r.group.clone(), r.clone());
                touched.insert(r.group.clone());
            }
        }
        for (e, _) in &input.endpoints {
            for (g, r) in &self.routes {
                if r.targets.iter().any(|t| t.endpoint == *e) {
                    touched.insert(g.clone());
                }
            }
        }
        for g in touched {
            self.queue_group(&g, now_ms);
        }
        for key in &input.receipts {
            if self.receipts.remove(key).is_some() {
                self.staged.push(Persist::ReceiptDone { directive: key.0, agent: key.1 });
                self.counters.receipts_committed += 1;
            }
        }
    }

    /// The lending pool's node sent credentials for route `directive` (already checked against
    /// committed state by the driver): keep them and re-send the route with them.
    pub fn handle_credential(&mut self, directive: DirectiveId, credential: WorkerCredential, now_ms: u64) {
        let list = self.credentials.entry(directive).or_default();
        list.retain(|c| c.endpoint != credential.endpoint);
        list.push(credential.clone());
        list.sort_by(|a, b| a.endpoint.cmp(&b.endpoint));
        list.truncate(hashmesh_protocol::limits::ROUTES_PER_GROUP_MAX);
        self.staged.push(Persist::Credential { directive, credential });
        let groups: Vec<GroupId> =
            self.routes.values().filter(|r| r.directive == directive).map(|r| r.group.clone()).collect();
        for g in groups {
            self.queue_group(&g, now_ms);
        }
    }

    fn instruction_for(&self, r: &CommittedRoute, seq: u64) -> Instruction {
        Instruction {
            seq,
            directive: r.directive,
            height: r.height,
            group: r.group.clone(),
            targets: r.targets.clone(),
            credentials: self.credentials.get(&r.directive).cloned().unwrap_or_default(),
            drained: r
                .targets
                .iter()
                .filter(|t| self.drained.contains(&t.endpoint))
                .map(|t| t.endpoint.clone())
                .collect(),
        }
    }

    /// Queue group `g`'s current route for every agent that serves it, unless that agent was
    /// already given the same (or a newer) route with the same credentials and drained list.
    fn queue_group(&mut self, g: &GroupId, now_ms: u64) {
        let Some(route) = self.routes.get(g).cloned() else { return };
        let template = self.instruction_for(&route, 0);
        let ids: Vec<AgentId> = self.agents.iter().filter(|(_, s)| s.groups.contains(g)).map(|(id, _)| *id).collect();
        for id in ids {
            let slot = self.agents.get_mut(&id).expect("agent listed above");
            let skip = slot.last.get(g).is_some_and(|(d, h, c, dr)| {
                (*d == template.directive && *c == template.credentials && *dr == template.drained)
                    || *h > template.height
            });
            if skip {
                continue;
            }
            let seq = slot.next_seq;
            slot.next_seq += 1;
            let instruction = Instruction { seq, ..template.clone() };
            slot.last.insert(
                g.clone(),
                (template.directive, template.height, template.credentials.clone(), template.drained.clone()),
            );
            slot.unacked.insert(seq, instruction.clone());
            slot.queued_at_ms.insert(seq, now_ms);
            self.staged.push(Persist::Last { agent: id, instruction: instruction.clone() });
            self.staged.push(Persist::Instruction { agent: id, instruction });
            self.staged.push(Persist::Cursor { agent: id, next_seq: slot.next_seq, acked_seq: slot.acked_seq });
            self.staged_seqs.insert(id, seq);
            if slot.unacked.len() > INSTRUCTIONS_OUTSTANDING_PER_AGENT_MAX {
                self.resync(id, now_ms);
            }
        }
    }

    /// `agent` fell too far behind: drop its backlog and queue only the latest route of each of
    /// its groups (the agent applies by directive, so nothing it needs is lost).
    fn resync(&mut self, id: AgentId, now_ms: u64) {
        self.counters.resyncs += 1;
        let routes: Vec<CommittedRoute> = {
            let slot = &self.agents[&id];
            slot.groups.iter().filter_map(|g| self.routes.get(g).cloned()).collect()
        };
        let fresh: Vec<Instruction> = routes.iter().map(|r| self.instruction_for(r, 0)).collect();
        let slot = self.agents.get_mut(&id).expect("agent exists");
        let seqs: Vec<u64> = std::mem::take(&mut slot.unacked).into_keys().collect();
        slot.queued_at_ms.clear();
        self.staged.push(Persist::Prune { agent: id, seqs });
        for mut i in fresh {
            i.seq = slot.next_seq;
            slot.next_seq += 1;
            slot.queued_at_ms.insert(i.seq, now_ms);
            slot.unacked.insert(i.seq, i.clone());
            self.staged.push(Persist::Instruction { agent: id, instruction: i });
        }
        self.staged.push(Persist::Cursor { agent: id, next_seq: slot.next_seq, acked_seq: slot.acked_seq });
        self.staged_seqs.insert(id, slot.next_seq - 1);
    }

    /// Writes waiting to be made durable, as one batch.
    pub fn poll_persist(&mut self) -> Option<PersistBatch> {
        if self.staged.is_empty() {
            return None;
        }
        let id = self.next_batch;
        self.next_batch += 1;
        self.batches.insert(id, std::mem::take(&mut self.staged_seqs));
        let ops = std::mem::take(&mut self.staged);
        let durable = ops.iter().any(|o| matches!(o, Persist::Instruction { .. } | Persist::Credential { .. }));
        Some(PersistBatch { id, ops, durable })
    }

    /// Batch `id` is durable: what it persisted may be transmitted.
    pub fn handle_persisted(&mut self, id: u64) {
        for (agent, seq) in self.batches.remove(&id).unwrap_or_default() {
            if let Some(s) = self.agents.get_mut(&agent) {
                s.durable_seq = s.durable_seq.max(seq);
            }
        }
    }

    /// An authenticated connection from `agent` opened: returns its session number.
    ///
    /// # Errors
    /// [`PeerFault::UnknownAgent`] if it is not registered.
    pub fn handle_connect(&mut self, agent: AgentId) -> Result<u64, PeerFault> {
        let slot = self.agents.get_mut(&agent).ok_or(PeerFault::UnknownAgent(agent))?;
        let id = self.next_session;
        self.next_session += 1;
        slot.sessions.insert(id, Session { sent_seq: slot.acked_seq, in_flight: 0 });
        Ok(id)
    }

    /// Session `session` of `agent` ended.
    pub fn handle_disconnect(&mut self, agent: AgentId, session: u64) {
        if let Some(s) = self.agents.get_mut(&agent) {
            s.sessions.remove(&session);
        }
    }

    /// A message from `agent` on `session`.
    ///
    /// # Errors
    /// A [`PeerFault`]: the driver closes the session (nothing was changed).
    pub fn handle_message(
        &mut self,
        agent: AgentId,
        session: u64,
        msg: PlaneMsg,
        now_ms: u64,
    ) -> Result<(), PeerFault> {
        match msg {
            PlaneMsg::Hello { agent: claimed, .. } if claimed == agent => Ok(()),
            PlaneMsg::Hello { .. } => Err(PeerFault::BadHello(agent)),
            PlaneMsg::Ack { seq, directive, applied_at_ms } => {
                self.ack(agent, session, seq, directive, applied_at_ms, now_ms)
            }
            PlaneMsg::Heartbeat { reports, .. } => {
                // `reports` is the pre-histogram form of measurements: bounded, then ignored.
                if reports.len() > HEARTBEAT_REPORTS_MAX {
                    return Err(PeerFault::TooManyReports(reports.len()));
                }
                let slot = self.agents.get_mut(&agent).ok_or(PeerFault::UnknownAgent(agent))?;
                slot.phi.heartbeat(now_ms);
                slot.last_heartbeat_ms = Some(now_ms);
                Ok(())
            }
            PlaneMsg::Measurements { windows, .. } => {
                if windows.len() > MEASUREMENT_WINDOWS_MAX {
                    return Err(PeerFault::TooManyWindows(windows.len()));
                }
                if !self.agents.contains_key(&agent) {
                    return Err(PeerFault::UnknownAgent(agent));
                }
                // All or nothing: a malformed window refuses the message before any is counted.
                if let Some(why) = windows.iter().find_map(|w| w.malformed()) {
                    return Err(PeerFault::BadWindow(why));
                }
                for w in &windows {
                    match self.book.record(agent, w) {
                        Ok(()) => self.counters.windows_recorded += 1,
                        Err(_) => self.counters.windows_dropped += 1,
                    }
                }
                Ok(())
            }
            other => Err(PeerFault::Unexpected(kind(&other))),
        }
    }

    fn ack(
        &mut self,
        agent: AgentId,
        session: u64,
        seq: u64,
        directive: DirectiveId,
        applied_at_ms: u64,
        now_ms: u64,
    ) -> Result<(), PeerFault> {
        let slot = self.agents.get_mut(&agent).ok_or(PeerFault::UnknownAgent(agent))?;
        if seq <= slot.acked_seq {
            return Ok(()); // a repeat: acknowledgements are idempotent
        }
        let sent = slot.sessions.get(&session).map_or(0, |s| s.sent_seq);
        match slot.unacked.get(&seq) {
            Some(i) if i.directive == directive && seq <= sent => {}
            _ => return Err(PeerFault::UnknownAck { seq, directive }),
        }
        let rest = slot.unacked.split_off(&(seq + 1));
        let pruned: Vec<u64> = std::mem::replace(&mut slot.unacked, rest).into_keys().collect();
        let rest = slot.queued_at_ms.split_off(&(seq + 1));
        if let Some(at) = slot.queued_at_ms.get(&seq) {
            if self.latencies_ms.len() < INSTRUCTIONS_OUTSTANDING_PER_AGENT_MAX {
                self.latencies_ms.push(now_ms.saturating_sub(*at));
            }
        }
        slot.queued_at_ms = rest;
        slot.acked_seq = seq;
        slot.last_directive = Some(directive);
        self.counters.acks += 1;
        self.staged.push(Persist::Prune { agent, seqs: pruned });
        self.staged.push(Persist::Cursor { agent, next_seq: slot.next_seq, acked_seq: seq });
        let receipt = Receipt { directive, agent, applied_at_ms };
        if self.receipts.len() < RECEIPTS_PENDING_MAX && !self.receipts.contains_key(&(directive, agent)) {
            self.receipts.insert((directive, agent), applied_at_ms);
            self.staged.push(Persist::Receipt(receipt));
        }
        Ok(())
    }

    /// The next write for a session: instructions that are durable and not yet sent, at most
    /// [`WRITE_BATCH_INSTRUCTIONS_MAX`], at most [`WRITES_IN_FLIGHT_MAX`] batches in flight per session.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        for (id, slot) in &mut self.agents {
            for (sid, s) in &mut slot.sessions {
                if s.in_flight >= WRITES_IN_FLIGHT_MAX || s.sent_seq >= slot.durable_seq {
                    continue;
                }
                let instructions: Vec<Instruction> = slot
                    .unacked
                    .range(s.sent_seq + 1..=slot.durable_seq)
                    .take(WRITE_BATCH_INSTRUCTIONS_MAX)
                    .map(|(_, i)| i.clone())
                    .collect();
                let Some(last) = instructions.last() else {
                    // Everything up to durable was acknowledged or compacted away.
                    s.sent_seq = slot.durable_seq;
                    continue;
                };
                s.sent_seq = last.seq;
                s.in_flight += 1;
                self.counters.instructions_sent += instructions.len() as u64;
                return Some(Transmit { agent: *id, session: *sid, instructions });
            }
        }
        None
    }

    /// The driver finished writing the last [`Transmit`] of `session`.
    pub fn handle_sent(&mut self, agent: AgentId, session: u64) {
        if let Some(s) = self.agents.get_mut(&agent).and_then(|a| a.sessions.get_mut(&session)) {
            s.in_flight = s.in_flight.saturating_sub(1);
        }
    }

    /// Receipts waiting to go on chain, ordered by (directive, agent).
    #[must_use]
    pub fn pending_receipts(&self, max: usize) -> Vec<Receipt> {
        self.receipts
            .iter()
            .take(max)
            .map(|((d, a), at)| Receipt { directive: *d, agent: *a, applied_at_ms: *at })
            .collect()
    }

    /// This epoch's measurement of every endpoint some agent sent a window for (counts
    /// summed, latency histograms merged), and start the next epoch.
    pub fn take_measurements(&mut self) -> BTreeMap<EndpointId, Measurement> {
        self.take_measurements_and_work().0
    }

    /// [`NodePlane::take_measurements`], and what each agent had accepted per endpoint, with
    /// the groups it serves.
    pub fn take_measurements_and_work(&mut self) -> (BTreeMap<EndpointId, Measurement>, Vec<GroupWork>) {
        let (measured, work) = self.book.take_with_work();
        let work = work
            .into_iter()
            .filter_map(|w| {
                let slot = self.agents.get(&w.agent)?;
                Some(GroupWork {
                    groups: slot.groups.iter().cloned().collect(),
                    endpoint: w.endpoint,
                    hashes: w.hashes,
                    through_ms: w.through_ms,
                })
            })
            .collect();
        (measured, work)
    }

    /// Every registered agent as the status shows it.
    #[must_use]
    pub fn agents(&self, now_ms: u64) -> Vec<AgentView> {
        self.agents
            .iter()
            .map(|(id, s)| {
                let phi = s.phi.phi(now_ms);
                AgentView {
                    id: *id,
                    groups: s.groups.iter().cloned().collect(),
                    connected: !s.sessions.is_empty(),
                    lost: s.last_heartbeat_ms.is_some() && phi > self.phi_threshold,
                    phi,
                    last_heartbeat_ms: s.last_heartbeat_ms,
                    acked_seq: s.acked_seq,
                    outstanding: s.unacked.len() as u64,
                    last_directive: s.last_directive,
                }
            })
            .collect()
    }

    /// Counters so far.
    #[must_use]
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Commit-to-acknowledgement latencies measured since the last call, ms.
    pub fn take_latencies_ms(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.latencies_ms)
    }
}
