//! The agent side of the plane as a state machine: instructions in, the routing table to persist
//! and acknowledgements and heartbeats out. No sockets, no disk, no clock.
//!
//! # Invariants
//! - An acknowledgement leaves only after the routing table that contains its instruction was
//!   reported durable ([`AgentPlane::handle_persisted`]).
//! - Applying is idempotent by directive, and a route older than the group's current one never
//!   replaces it.

use std::collections::{BTreeMap, VecDeque};

use hashmesh_protocol::plane::{
    Instruction, PlaneMsg, WorkerCredential, FALLBACK_ENDPOINTS_MAX, MEASUREMENT_WINDOWS_MAX, PLANE_MSG_BYTES_MAX,
};
use hashmesh_protocol::{codec, AgentId, DirectiveId, EndpointId, EndpointWindow, GroupId, RouteTarget};
use serde::{Deserialize, Serialize};

/// One group's applied route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedRoute {
    /// The directive that set it.
    pub directive: DirectiveId,
    /// Its commit height.
    pub height: u64,
    /// The split.
    #[serde(alias = "routes")]
    pub targets: Vec<RouteTarget>,
    /// When this agent applied it, ms since the Unix epoch.
    pub applied_at_ms: u64,
    /// The instruction that carried it.
    pub seq: u64,
    /// Worker credentials for other pools' endpoints in `routes` (cross-pool routes).
    #[serde(default)]
    pub credentials: Vec<WorkerCredential>,
    /// Endpoints of `routes` that are drained.
    #[serde(default)]
    pub drained: Vec<EndpointId>,
}

impl AppliedRoute {
    /// The split to use now: the targets without the drained endpoints, their weight spread over
    /// the rest in proportion (basis points summing to 10 000). If every endpoint is drained,
    /// the route as committed.
    #[must_use]
    pub fn effective(&self) -> Vec<RouteTarget> {
        let live: Vec<&RouteTarget> = self.targets.iter().filter(|t| !self.drained.contains(&t.endpoint)).collect();
        if live.is_empty() || live.len() == self.targets.len() {
            return self.targets.clone();
        }
        let shares: Vec<f64> = live.iter().map(|t| f64::from(t.weight_bp)).collect();
        hashmesh_scheduler::weights::to_basis_points(&shares)
            .into_iter()
            .zip(live)
            .map(|(w, t)| RouteTarget { endpoint: t.endpoint.clone(), weight_bp: w })
            .collect()
    }
}

/// The routing table and the delivery cursor (what the agent persists).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentState {
    /// Highest instruction handled.
    pub applied_seq: u64,
    /// Instructions whose route took effect (not duplicates, not superseded).
    pub applied_count: u64,
    /// Current route per group.
    pub routes: BTreeMap<GroupId, AppliedRoute>,
    /// Other pools' offered endpoints to fall back to, cheapest first, with their standby
    /// credentials (the node's latest `Fallback` list).
    #[serde(default)]
    pub fallback: Vec<WorkerCredential>,
}

impl AgentState {
    /// Apply `i` at `now_ms`; returns the time to acknowledge with. Idempotent by directive: a
    /// directive already in effect keeps its first time (an instruction for it updates its
    /// drained endpoints, and its credentials when it carries some); an instruction older than
    /// the group's current route is acknowledged without changing it.
    pub fn apply(&mut self, i: &Instruction, now_ms: u64) -> u64 {
        self.applied_seq = self.applied_seq.max(i.seq);
        match self.routes.get_mut(&i.group) {
            Some(r) if r.directive == i.directive => {
                if !i.credentials.is_empty() {
                    r.credentials.clone_from(&i.credentials);
                }
                r.drained.clone_from(&i.drained);
                r.applied_at_ms
            }
            Some(r) if r.height > i.height => now_ms,
            _ => {
                self.applied_count += 1;
                self.routes.insert(
                    i.group.clone(),
                    AppliedRoute {
                        directive: i.directive,
                        height: i.height,
                        targets: i.targets.clone(),
                        applied_at_ms: now_ms,
                        seq: i.seq,
                        credentials: i.credentials.clone(),
                        drained: i.drained.clone(),
                    },
                );
                now_ms
            }
        }
    }
}

/// Why the agent ends a session: the node broke the protocol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeFault {
    /// Something other than an instruction or a fallback list.
    #[error("the node may only send instructions and fallback lists, got {0}")]
    Unexpected(&'static str),
    /// A fallback list over the bound.
    #[error("a fallback list of {0} endpoints (at most {max})", max = FALLBACK_ENDPOINTS_MAX)]
    TooManyFallbacks(usize),
    /// Sequence numbers went backwards within a session.
    #[error("instruction {seq} after {after}: out of order")]
    OutOfOrder {
        /// The instruction's sequence.
        seq: u64,
        /// The last one seen in this session.
        after: u64,
    },
}

/// The agent side of the plane.
pub struct AgentPlane {
    me: AgentId,
    state: AgentState,
    dirty: bool,
    /// Acknowledgements waiting for the state that contains them to be durable.
    unsaved_acks: Vec<PlaneMsg>,
    /// Acknowledgements whose state is durable but which were not yet handed out.
    durable_acks: Vec<PlaneMsg>,
    out: VecDeque<PlaneMsg>,
    connected: bool,
    last_seq_in_session: u64,
    heartbeat_every_ms: u64,
    next_heartbeat_ms: u64,
}

impl AgentPlane {
    /// An agent `me` resuming from `state`, beating every `heartbeat_every_ms`.
    #[must_use]
    pub fn new(me: AgentId, state: AgentState, heartbeat_every_ms: u64) -> Self {
        Self {
            me,
            state,
            dirty: false,
            unsaved_acks: Vec::new(),
            durable_acks: Vec::new(),
            out: VecDeque::new(),
            connected: false,
            last_seq_in_session: 0,
            heartbeat_every_ms: heartbeat_every_ms.max(1),
            next_heartbeat_ms: 0,
        }
    }

    /// The routing table.
    #[must_use]
    pub fn state(&self) -> &AgentState {
        &self.state
    }

    /// A session to the node opened: say hello, beat at once.
    pub fn handle_connected(&mut self, now_ms: u64) {
        self.connected = true;
        self.last_seq_in_session = 0;
        self.out.clear();
        self.out.push_back(PlaneMsg::Hello { agent: self.me, applied_seq: self.state.applied_seq });
        self.next_heartbeat_ms = now_ms;
    }

    /// The session ended: nothing more goes out until the next one (the node resends what was
    /// not acknowledged).
    pub fn handle_disconnected(&mut self) {
        self.connected = false;
        self.out.clear();
        self.durable_acks.clear();
        self.unsaved_acks.clear();
    }

    /// A message from the node.
    ///
    /// # Errors
    /// A [`NodeFault`]: the driver ends the session; nothing was applied.
    pub fn handle_message(&mut self, msg: PlaneMsg, now_ms: u64) -> Result<(), NodeFault> {
        let i = match msg {
            PlaneMsg::Instruction(i) => i,
            PlaneMsg::Fallback { credentials } => {
                if credentials.len() > FALLBACK_ENDPOINTS_MAX {
                    return Err(NodeFault::TooManyFallbacks(credentials.len()));
                }
                if credentials != self.state.fallback {
                    self.state.fallback = credentials;
                    self.dirty = true;
                }
                return Ok(());
            }
            other => return Err(NodeFault::Unexpected(crate::core::node::kind(&other))),
        };
        if i.seq <= self.last_seq_in_session {
            return Err(NodeFault::OutOfOrder { seq: i.seq, after: self.last_seq_in_session });
        }
        self.last_seq_in_session = i.seq;
        let applied_at_ms = self.state.apply(&i, now_ms);
        self.dirty = true;
        self.unsaved_acks.push(PlaneMsg::Ack { seq: i.seq, directive: i.directive, applied_at_ms });
        Ok(())
    }

    /// The routing table to persist, when it changed.
    pub fn poll_persist(&mut self) -> Option<AgentState> {
        if !self.dirty {
            return None;
        }
        self.dirty = false;
        self.durable_acks.append(&mut self.unsaved_acks);
        Some(self.state.clone())
    }

    /// The last state from [`AgentPlane::poll_persist`] is durable: its acknowledgements may go.
    pub fn handle_persisted(&mut self) {
        if self.connected {
            self.out.extend(self.durable_acks.drain(..));
        } else {
            self.durable_acks.clear();
        }
    }

    /// When the next heartbeat is due, ms.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<u64> {
        self.connected.then_some(self.next_heartbeat_ms)
    }

    /// Time passed: beat if due, and send the proxy's measurement windows closed since the
    /// last beat (in as many `Measurements` messages as the bounds need).
    pub fn handle_timeout(&mut self, now_ms: u64, windows: impl FnOnce() -> Vec<EndpointWindow>) {
        if self.connected && now_ms >= self.next_heartbeat_ms {
            self.out.push_back(PlaneMsg::Heartbeat { at_ms: now_ms, reports: Vec::new() });
            self.next_heartbeat_ms = now_ms + self.heartbeat_every_ms;
            for msg in measurement_messages(now_ms, windows()) {
                self.out.push_back(msg);
            }
        }
    }

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<PlaneMsg> {
        self.out.pop_front()
    }

    /// Directives in effect, by group.
    #[must_use]
    pub fn directives(&self) -> BTreeMap<GroupId, DirectiveId> {
        self.state.routes.iter().map(|(g, r)| (g.clone(), r.directive)).collect()
    }
}

/// Bytes kept free in a `Measurements` frame for the envelope.
const MEASUREMENTS_ENVELOPE_BYTES: usize = 64;

/// `windows` as `Measurements` messages, each within [`MEASUREMENT_WINDOWS_MAX`] windows and
/// [`PLANE_MSG_BYTES_MAX`] bytes, with at most one window per endpoint (a later window of the
/// same endpoint starts a new message, so the node counts them in order).
#[must_use]
pub fn measurement_messages(at_ms: u64, windows: Vec<EndpointWindow>) -> Vec<PlaneMsg> {
    let mut out = Vec::new();
    let mut batch: Vec<EndpointWindow> = Vec::new();
    let mut bytes = MEASUREMENTS_ENVELOPE_BYTES;
    for w in windows {
        let size = codec::encode(&w).len();
        let repeat = batch.iter().any(|b| b.endpoint == w.endpoint);
        if !batch.is_empty() && (repeat || batch.len() == MEASUREMENT_WINDOWS_MAX || bytes + size > PLANE_MSG_BYTES_MAX)
        {
            out.push(PlaneMsg::Measurements { at_ms, windows: std::mem::take(&mut batch) });
            bytes = MEASUREMENTS_ENVELOPE_BYTES;
        }
        bytes += size;
        batch.push(w);
    }
    if !batch.is_empty() {
        out.push(PlaneMsg::Measurements { at_ms, windows: batch });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cred(ep: &str) -> WorkerCredential {
        WorkerCredential { endpoint: ep.parse().unwrap(), user: "a.standby".into(), password: "p".into() }
    }

    #[test]
    fn a_fallback_list_replaces_the_last_is_persisted_and_is_not_acknowledged() {
        let mut p = AgentPlane::new(AgentId([1; 32]), AgentState::default(), 1000);
        p.handle_connected(0);
        let _hello: Vec<PlaneMsg> = std::iter::from_fn(|| p.poll_transmit()).collect();
        p.handle_message(PlaneMsg::Fallback { credentials: vec![cred("pool-b/ep-1"), cred("pool-c/ep-1")] }, 5)
            .unwrap();
        let saved = p.poll_persist().expect("changed");
        assert_eq!(saved.fallback.len(), 2);
        p.handle_persisted();
        assert!(std::iter::from_fn(|| p.poll_transmit()).all(|m| !matches!(m, PlaneMsg::Ack { .. })));
        // The same list again changes nothing; a new one replaces it.
        p.handle_message(PlaneMsg::Fallback { credentials: vec![cred("pool-b/ep-1"), cred("pool-c/ep-1")] }, 6)
            .unwrap();
        assert!(p.poll_persist().is_none());
        p.handle_message(PlaneMsg::Fallback { credentials: vec![cred("pool-c/ep-1")] }, 7).unwrap();
        assert_eq!(p.poll_persist().unwrap().fallback, vec![cred("pool-c/ep-1")]);
        // Over the bound: refused, nothing changes.
        let many = (0..=FALLBACK_ENDPOINTS_MAX).map(|i| cred(&format!("pool-b/ep-{i}"))).collect();
        assert_eq!(
            p.handle_message(PlaneMsg::Fallback { credentials: many }, 8),
            Err(NodeFault::TooManyFallbacks(FALLBACK_ENDPOINTS_MAX + 1))
        );
        assert_eq!(p.state().fallback, vec![cred("pool-c/ep-1")]);
        // A state file from before the fallback list still loads.
        let old: AgentState = serde_json::from_str(r#"{"applied_seq":3,"applied_count":1,"routes":{}}"#).unwrap();
        assert!(old.fallback.is_empty());
    }
}
