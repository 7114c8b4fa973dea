//! What goes in and out of [`NodePlane`](super::NodePlane): committed routes and commits in;
//! writes to persist, instructions to transmit, faults, counters and status views out.

use std::collections::BTreeMap;

use hashmesh_protocol::plane::{
    Instruction, PlaneMsg, WorkerCredential, HEARTBEAT_REPORTS_MAX, MEASUREMENT_WINDOWS_MAX,
};
use hashmesh_protocol::{AgentId, DirectiveId, EndpointId, GroupId, Receipt, RouteTarget};

/// A committed route as the plane delivers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedRoute {
    /// The miner group.
    pub group: GroupId,
    /// The directive that set the route.
    pub directive: DirectiveId,
    /// Its activation height.
    pub height: u64,
    /// The split.
    pub targets: Vec<RouteTarget>,
}

/// What one agent had accepted at one endpoint in an epoch, with the groups it serves (the
/// borrower's side of loans: the node attributes it to the loan of one of those groups).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupWork {
    /// The groups the agent serves.
    pub groups: Vec<GroupId>,
    /// The endpoint.
    pub endpoint: EndpointId,
    /// Accepted hashes there.
    pub hashes: u128,
    /// The work is complete up to this moment (the agent's latest window), agent clock, ms.
    pub through_ms: u64,
}

/// What one commit changed, for the plane.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CommitInput {
    /// Routes that became active.
    pub routes: Vec<CommittedRoute>,
    /// Endpoints drained (`true`) or restored (`false`).
    pub endpoints: Vec<(EndpointId, bool)>,
    /// Receipts the block recorded.
    pub receipts: Vec<(DirectiveId, AgentId)>,
}

/// One write the driver must make durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Persist {
    /// Keep instruction `instruction.seq` for `agent`.
    Instruction {
        /// The agent.
        agent: AgentId,
        /// The instruction.
        instruction: Instruction,
    },
    /// Forget these instructions of `agent` (acknowledged, or compacted away).
    Prune {
        /// The agent.
        agent: AgentId,
        /// Their sequence numbers, ascending.
        seqs: Vec<u64>,
    },
    /// `agent`'s cursor: the next sequence to assign and the highest acknowledged.
    Cursor {
        /// The agent.
        agent: AgentId,
        /// Next sequence.
        next_seq: u64,
        /// Highest acknowledged sequence.
        acked_seq: u64,
    },
    /// The last route queued for (`agent`, its group), so a restart does not queue it again.
    Last {
        /// The agent.
        agent: AgentId,
        /// The route as queued (its `seq` is the one it was queued with).
        instruction: Instruction,
    },
    /// A receipt to put on chain.
    Receipt(Receipt),
    /// A receipt is on chain.
    ReceiptDone {
        /// Its directive.
        directive: DirectiveId,
        /// Its agent.
        agent: AgentId,
    },
    /// Credentials a lending pool sent for a route of ours.
    Credential {
        /// The route.
        directive: DirectiveId,
        /// The credential.
        credential: WorkerCredential,
    },
}

/// Writes to make durable together, then report with [`NodePlane::handle_persisted`](super::NodePlane::handle_persisted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersistBatch {
    /// Batch number.
    pub id: u64,
    /// The writes, in order.
    pub ops: Vec<Persist>,
    /// Whether it must be on disk (flushed) before [`NodePlane::handle_persisted`](super::NodePlane::handle_persisted):
    /// true when it holds instructions or credentials, which are transmitted next. Batches of
    /// acknowledgements, prunes and receipts only need to be atomic — if a crash loses them, the
    /// instruction is resent, the agent acknowledges again and the receipt is made again.
    pub durable: bool,
}

/// Instructions to write to one session, then report with [`NodePlane::handle_sent`](super::NodePlane::handle_sent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// The agent.
    pub agent: AgentId,
    /// Its session.
    pub session: u64,
    /// In sequence order.
    pub instructions: Vec<Instruction>,
}

/// What a restarted node reloads (everything [`Persist`] wrote).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Restored {
    /// Per agent: (next seq, acked seq) and unacknowledged instructions.
    pub queues: BTreeMap<AgentId, ((u64, u64), Vec<Instruction>)>,
    /// Per agent: the last route queued for each group.
    pub last: BTreeMap<AgentId, Vec<Instruction>>,
    /// Receipts not yet seen on chain.
    pub receipts: Vec<Receipt>,
    /// Credentials received per route.
    pub credentials: BTreeMap<DirectiveId, Vec<WorkerCredential>>,
}

/// Why the node ends an agent's session: the agent broke the protocol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerFault {
    /// The agent is not registered.
    #[error("agent {0} is not registered with this node")]
    UnknownAgent(AgentId),
    /// The first message was not a matching hello.
    #[error("first message must be a hello from the key proved in the handshake ({0})")]
    BadHello(AgentId),
    /// An acknowledgement of something never queued.
    #[error("acknowledgement of seq {seq} / {directive} matches no instruction")]
    UnknownAck {
        /// The sequence.
        seq: u64,
        /// The directive.
        directive: DirectiveId,
    },
    /// Too many reports in one heartbeat.
    #[error("heartbeat with {0} reports (most {HEARTBEAT_REPORTS_MAX})")]
    TooManyReports(usize),
    /// Too many windows in one `Measurements` message.
    #[error("measurements with {0} windows (most {MEASUREMENT_WINDOWS_MAX})")]
    TooManyWindows(usize),
    /// A malformed measurement window.
    #[error("malformed measurement window: {0}")]
    BadWindow(&'static str),
    /// A message only nodes send.
    #[error("agents may not send {0}")]
    Unexpected(&'static str),
}

/// Counters of the plane (exported as metrics by the driver).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counters {
    /// Instructions handed to sessions.
    pub instructions_sent: u64,
    /// First-time acknowledgements.
    pub acks: u64,
    /// Queues compacted because an agent fell too far behind.
    pub resyncs: u64,
    /// Receipts seen committed.
    pub receipts_committed: u64,
    /// Agent measurement windows not counted (repeated, or over the bound of endpoints).
    pub windows_dropped: u64,
    /// Agent measurement windows counted.
    pub windows_recorded: u64,
}

/// An agent as the status shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentView {
    /// The agent.
    pub id: AgentId,
    /// Groups it serves.
    pub groups: Vec<GroupId>,
    /// Has an open session.
    pub connected: bool,
    /// Judged lost by phi accrual.
    pub lost: bool,
    /// Current phi.
    pub phi: f64,
    /// Last heartbeat, ms.
    pub last_heartbeat_ms: Option<u64>,
    /// Highest acknowledged sequence.
    pub acked_seq: u64,
    /// Queued and not acknowledged.
    pub outstanding: u64,
    /// The directive of the last acknowledged instruction.
    pub last_directive: Option<DirectiveId>,
}

/// The name of a message kind, for errors and logs.
#[must_use]
pub fn kind(m: &PlaneMsg) -> &'static str {
    match m {
        PlaneMsg::Hello { .. } => "hello",
        PlaneMsg::Instruction(_) => "instruction",
        PlaneMsg::Ack { .. } => "ack",
        PlaneMsg::Heartbeat { .. } => "heartbeat",
        PlaneMsg::PeerHello { .. } => "peer_hello",
        PlaneMsg::Credentials { .. } => "credentials",
        PlaneMsg::CredentialsAck { .. } => "credentials_ack",
        PlaneMsg::Measurements { .. } => "measurements",
        PlaneMsg::Standby { .. } => "standby",
        PlaneMsg::StandbyAck { .. } => "standby_ack",
        PlaneMsg::Fallback { .. } => "fallback",
    }
}
