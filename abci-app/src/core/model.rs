//! Records kept in state. Each is stored under one key (see [`super::keys`]) in the
//! canonical encoding, and shown to users as JSON.

use bincode::{Decode, Encode};
use hashmesh_protocol::{DirectiveId, EndpointId, GroupId, PoolId, RouteTarget};
use serde::{Deserialize, Serialize};

/// Network parameters fixed at genesis.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Blocks a cross-pool directive may wait for its votes before it expires.
    #[serde(default = "defaults::vote_window_blocks")]
    pub vote_window_blocks: u64,
    /// Routes may not target an endpoint whose committed health is below this, bp.
    #[serde(default = "defaults::health_floor_bp")]
    pub health_floor_bp: u32,
    /// Routes may not load an endpoint beyond capacity × this, bp.
    #[serde(default = "defaults::max_utilization_bp")]
    pub max_utilization_bp: u32,
    /// Telemetry older than this many blocks counts as unknown (no health check).
    #[serde(default = "defaults::telemetry_stale_blocks")]
    pub telemetry_stale_blocks: u64,
}

mod defaults {
    pub fn vote_window_blocks() -> u64 {
        20
    }
    pub fn health_floor_bp() -> u32 {
        3000
    }
    pub fn max_utilization_bp() -> u32 {
        9000
    }
    pub fn telemetry_stale_blocks() -> u64 {
        60
    }
}

impl Default for Params {
    fn default() -> Self {
        Self {
            vote_window_blocks: defaults::vote_window_blocks(),
            health_floor_bp: defaults::health_floor_bp(),
            max_utilization_bp: defaults::max_utilization_bp(),
            telemetry_stale_blocks: defaults::telemetry_stale_blocks(),
        }
    }
}

/// An endpoint owner's standing offer of spare capacity to other pools.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct OfferRecord {
    /// The endpoint.
    pub endpoint: EndpointId,
    /// Its owner (the lender).
    pub owner: PoolId,
    /// Most hashrate other pools' routes may place there under the offer, H/s.
    pub max_hs: u64,
    /// Fee, basis points of the lent work.
    pub fee_bp: u16,
    /// Last height at which the offer is open.
    pub expires_height: u64,
    /// Height at which it was made.
    pub height: u64,
}

/// A loan: a (borrowing group, lending endpoint) pair while a committed route uses it, and
/// what has been settled of it. A closed loan stays (its parties may report their last totals
/// for `LOAN_REPORT_GRACE_BLOCKS`) until the same pair opens a new loan.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct LoanRecord {
    /// The borrowing group.
    pub group: GroupId,
    /// The lending endpoint.
    pub endpoint: EndpointId,
    /// The group's owner.
    pub borrower: PoolId,
    /// The endpoint's owner.
    pub lender: PoolId,
    /// Height of the route that opened it (names the loan in reports).
    pub opened_height: u64,
    /// Height of the route that closed it, if closed.
    pub closed_height: Option<u64>,
    /// Fee, bp of the settled work: the open offer's when the loan opened (0 when the route
    /// was voted in outside an offer).
    pub fee_bp: u16,
    /// Both sides' readings and the work settled so far.
    #[serde(flatten)]
    pub book: hashmesh_protocol::settle::LoanBook,
    /// Fees on it, hashes.
    #[serde(with = "hashmesh_protocol::settle::hashes_json")]
    pub fee_hashes: u128,
    /// Comparisons that settled work.
    pub settlements: u64,
    /// Comparisons beyond the tolerance.
    pub disputes: u64,
    /// The last dispute, if any.
    pub last_dispute: Option<Dispute>,
}

impl LoanRecord {
    /// Whether a route still uses it.
    #[must_use]
    pub fn open(&self) -> bool {
        self.closed_height.is_none()
    }
}

/// Two totals for the same moment that differ beyond the tolerance.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct Dispute {
    /// Height of the report that found it.
    pub height: u64,
    /// The moment compared, ms.
    pub at_ms: u64,
    /// The borrower's total then, hashes.
    #[serde(with = "hashmesh_protocol::settle::hashes_json")]
    pub borrower_hashes: u128,
    /// The lender's total then, hashes.
    #[serde(with = "hashmesh_protocol::settle::hashes_json")]
    pub lender_hashes: u128,
}

/// Settled lending between one lender and one borrower, over all their loans.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct PairLedger {
    /// The lending pool.
    pub lender: PoolId,
    /// The borrowing pool.
    pub borrower: PoolId,
    /// Work settled, hashes.
    #[serde(with = "hashmesh_protocol::settle::hashes_json")]
    pub settled_hashes: u128,
    /// Fees the borrower owes on it, hashes.
    #[serde(with = "hashmesh_protocol::settle::hashes_json")]
    pub fee_hashes: u128,
    /// Settlements.
    pub settlements: u64,
    /// Disputes.
    pub disputes: u64,
    /// Settled work per ledger hour of block time, ascending, within `REWARD_WINDOW_HOURS`.
    pub hours: Vec<hashmesh_protocol::settle::HourWork>,
    /// The ledger hour of the last settlement.
    pub as_of_hour: u64,
    /// Reward weight at `as_of_hour`: Σ work × 0.95^age over `hours`
    /// ([`hashmesh_protocol::settle::reward_weight`]).
    #[serde(with = "hashmesh_protocol::settle::hashes_json")]
    pub reward_weight: u128,
}

/// One pool's latest committed measurements of an endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct TelemetryView {
    /// The reporter's epoch (strictly increasing per endpoint and reporter).
    pub epoch: u64,
    /// What it measured.
    pub measurement: hashmesh_protocol::Measurement,
    /// Height at which it was committed.
    pub height: u64,
}

/// The latest telemetry of an endpoint: its owner's claim and the measurements of the pools
/// whose routes send work there (observers), side by side.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct TelemetryRecord {
    /// The endpoint.
    pub endpoint: EndpointId,
    /// The owner's latest report.
    pub owner: Option<TelemetryView>,
    /// Other pools' latest measurements (at most one per pool).
    pub observers: std::collections::BTreeMap<PoolId, TelemetryView>,
}

impl TelemetryRecord {
    /// The health the floor rule judges from the views committed within `stale_blocks` of
    /// `height` ([`hashmesh_protocol::rules::floor_health`]).
    #[must_use]
    pub fn judged(&self, height: u64, stale_blocks: u64) -> hashmesh_protocol::rules::FloorHealth {
        let (owner, observers) = self.fresh(height, stale_blocks);
        hashmesh_protocol::rules::floor_health(owner, &observers)
    }

    /// The views committed within `stale_blocks` of `height`: the owner's, and the observers'.
    #[must_use]
    pub fn fresh(
        &self,
        height: u64,
        stale_blocks: u64,
    ) -> (Option<&hashmesh_protocol::Measurement>, Vec<&hashmesh_protocol::Measurement>) {
        let fresh = |v: &&TelemetryView| v.height + stale_blocks >= height;
        (
            self.owner.as_ref().filter(fresh).map(|v| &v.measurement),
            self.observers.values().filter(fresh).map(|v| &v.measurement).collect(),
        )
    }
}

/// An agent of `pool` applied `directive` (from a committed `Receipt`).
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct ReceiptRecord {
    /// The directive applied.
    pub directive: hashmesh_protocol::DirectiveId,
    /// The agent that applied it.
    pub agent: hashmesh_protocol::AgentId,
    /// The pool whose node reported it.
    pub pool: PoolId,
    /// When the agent applied it, ms since the Unix epoch (agent clock).
    pub applied_at_ms: u64,
    /// Height at which the receipt was committed.
    pub height: u64,
}

/// A participating mining pool.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct PoolRecord {
    /// Its ed25519 public key.
    pub id: PoolId,
    /// A readable name, e.g. `pool-a`.
    pub name: String,
    /// Its CometBFT validator address (hex), for cross-checking block proposers.
    pub validator_address: String,
}

/// One Stratum server of a mining pool.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct EndpointRecord {
    /// e.g. `pool-a/ep-1`.
    pub id: EndpointId,
    /// The owning mining pool.
    pub owner: PoolId,
    /// e.g. `stratum+tcp://10.0.0.5:3333`.
    pub stratum_url: String,
    /// Capacity in hashes per second.
    pub capacity_hs: u64,
    /// A free-form region label.
    pub region: String,
    /// Drained endpoints cannot be the target of new routes.
    pub drained: bool,
}

/// Miners of one mining pool routed as a unit.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct GroupRecord {
    /// e.g. `pool-a/g-1`.
    pub id: GroupId,
    /// The owning mining pool.
    pub owner: PoolId,
    /// Nominal hashrate in hashes per second.
    pub hashrate_hs: u64,
}

/// The agreed split of one miner group, set by the directive that activated it.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct Assignment {
    /// The miner group.
    pub group: GroupId,
    /// The split; weights sum to 10 000 bp.
    pub targets: Vec<RouteTarget>,
    /// The directive that set it.
    pub directive: DirectiveId,
    /// The height at which it became active.
    pub since_height: u64,
}

/// Where a committed directive is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DirectiveStatus {
    /// A route waiting for the votes of the pools whose endpoints it targets.
    Pending,
    /// A route that set its group's assignment.
    Active,
    /// A route that a targeted pool voted against, or whose target was drained before approval.
    Rejected,
    /// A route whose vote window passed without every approval.
    Expired,
    /// A drain, restore or vote that took effect when committed.
    Applied,
}

impl DirectiveStatus {
    /// The stable name used in events and JSON.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Active => "active",
            Self::Rejected => "rejected",
            Self::Expired => "expired",
            Self::Applied => "applied",
        }
    }
}

/// A committed transaction and what became of it. The exact signed bytes are kept so anyone
/// can re-verify the signature and recompute the id.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct DirectiveRecord {
    /// SHA-256 of `tx`.
    pub id: DirectiveId,
    /// Block height that committed it.
    pub height: u64,
    /// Position in that block.
    pub index: u32,
    /// Block time, milliseconds since the Unix epoch (from the block header).
    pub time_ms: u64,
    /// Address of the validator that proposed the block (20 bytes).
    pub proposer: Vec<u8>,
    /// The signing mining pool.
    pub signer: PoolId,
    /// The exact signed transaction bytes.
    pub tx: Vec<u8>,
    /// Lifecycle status.
    pub status: DirectiveStatus,
    /// Pools whose approval a pending route needs (sorted).
    pub voters_required: Vec<PoolId>,
    /// Pools that approved so far (sorted).
    pub approvals: Vec<PoolId>,
    /// Last height at which votes count (0 when no vote is needed).
    pub vote_deadline_height: u64,
    /// Height at which the status last changed.
    pub decided_height: u64,
    /// Why a route was rejected or expired; empty otherwise.
    pub reason: String,
}
