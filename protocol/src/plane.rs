//! Messages on the instruction plane (QUIC streams between a node and its agents). One message
//! per length-prefixed frame, in the same canonical bincode as transactions; these never go on
//! chain. Variants are appended, never renumbered.

use bincode::{Decode, Encode};
use serde::{Deserialize, Serialize};

use crate::body::{RouteTarget, TelemetryReport};
use crate::codec::{self, DecodeError};
use crate::ids::{AgentId, DirectiveId, EndpointId, GroupId, PoolId};
use crate::telemetry::EndpointWindow;

/// Largest encoded plane message, bytes.
pub const PLANE_MSG_BYTES_MAX: usize = 64 * 1024;
/// Most endpoint reports in one heartbeat.
pub const HEARTBEAT_REPORTS_MAX: usize = 64;
/// Most offered endpoints in one `Fallback` list (the cheapest ones; an agent tries them in
/// order).
pub const FALLBACK_ENDPOINTS_MAX: usize = 16;
/// Most endpoint windows in one `Measurements` message (an agent with more sends more
/// messages; each also stays within [`PLANE_MSG_BYTES_MAX`]).
pub const MEASUREMENT_WINDOWS_MAX: usize = 64;

/// A committed route, as an agent applies it. Valid from `height`; a later instruction for the
/// same group (higher height) supersedes it, an earlier one is ignored; another instruction for
/// the same directive updates its credentials and drained endpoints.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct Instruction {
    /// Position in this agent's outbox; delivered in increasing order.
    pub seq: u64,
    /// The directive that set the route.
    pub directive: DirectiveId,
    /// The height at which it became active.
    pub height: u64,
    /// The miner group.
    pub group: GroupId,
    /// The split, basis points summing to 10 000.
    #[serde(alias = "routes")]
    pub targets: Vec<RouteTarget>,
    /// Worker credentials for other pools' endpoints in `routes` (cross-pool routes), as the
    /// lending pools' nodes sent them. Never on chain.
    pub credentials: Vec<WorkerCredential>,
    /// Endpoints of `routes` drained since the route was set: send no new hashrate there (the
    /// agent spreads their share over the rest of the route).
    pub drained: Vec<EndpointId>,
}

/// What a borrowing pool's miners use to log in to a lending pool's endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct WorkerCredential {
    /// The lending pool's endpoint.
    pub endpoint: EndpointId,
    /// Stratum worker name.
    pub user: String,
    /// Stratum password.
    pub password: String,
}

/// What travels on a plane stream.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub enum PlaneMsg {
    /// Agent → node, first message: who the agent says it is (must be the key it proved in the
    /// handshake) and the last instruction it applied.
    Hello {
        /// The agent's key.
        agent: AgentId,
        /// Highest `seq` applied and persisted (0: none).
        applied_seq: u64,
    },
    /// Node → agent.
    Instruction(Instruction),
    /// Agent → node: instruction `seq` is applied and persisted.
    Ack {
        /// The instruction.
        seq: u64,
        /// Its directive.
        directive: DirectiveId,
        /// When it was applied, ms since the Unix epoch.
        applied_at_ms: u64,
    },
    /// Agent → node, every second: liveness. (`reports` is the pre-histogram form of the
    /// agent's measurements; nodes ignore it and agents send it empty — see `Measurements`.)
    Heartbeat {
        /// Agent clock, ms since the Unix epoch.
        at_ms: u64,
        /// Up to [`HEARTBEAT_REPORTS_MAX`] endpoint reports (ignored).
        reports: Vec<(EndpointId, TelemetryReport)>,
    },
    /// Node → node, first: the sending pool (must equal the handshake key).
    PeerHello {
        /// The sending pool.
        pool: PoolId,
    },
    /// Lending node → borrowing node: credentials for one of the lender's endpoints in an
    /// active cross-pool route of the borrower's group.
    Credentials {
        /// The active route.
        directive: DirectiveId,
        /// The borrower's group.
        group: GroupId,
        /// The credential.
        credential: WorkerCredential,
    },
    /// Borrowing node → lending node: stored and forwarded to the group's agents.
    CredentialsAck {
        /// The route.
        directive: DirectiveId,
        /// The endpoint.
        endpoint: EndpointId,
    },
    /// Agent → node, once per report window: what the agent measured at each endpoint it
    /// sent work to, with mergeable latency histograms (the node sums windows across agents).
    Measurements {
        /// Agent clock, ms since the Unix epoch.
        at_ms: u64,
        /// Up to [`MEASUREMENT_WINDOWS_MAX`] windows, at most one per endpoint.
        windows: Vec<EndpointWindow>,
    },
    /// Lending node → another pool's node: the *standby credential* for one of the lender's
    /// offered endpoints. The other pool's agents log in with it only when every endpoint of a
    /// group's route and every own standby is down, before a loan commits; work under it is
    /// not settled (there is no loan yet), and the loan's own credentials replace it.
    Standby {
        /// The credential (the offered endpoint, worker `<pool id 12 hex>.standby`).
        credential: WorkerCredential,
    },
    /// Receiving node → lending node: the standby credential is stored.
    StandbyAck {
        /// The endpoint.
        endpoint: EndpointId,
    },
    /// Node → agent: the other pools' offered endpoints its miners may fall back to, cheapest
    /// first, each with its standby credential; replaces the previous list (sent at every
    /// session start and whenever it changes). At most [`FALLBACK_ENDPOINTS_MAX`].
    Fallback {
        /// The endpoints in order of preference.
        credentials: Vec<WorkerCredential>,
    },
}

impl PlaneMsg {
    /// Encode for a frame.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// Decode one frame: canonical, size-limited; unknown message types are errors.
    ///
    /// # Errors
    /// If the bytes are not exactly one canonical message.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        codec::decode_canonical_within::<Self, PLANE_MSG_BYTES_MAX>(bytes, PLANE_MSG_BYTES_MAX)
    }
}
