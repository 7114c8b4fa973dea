//! Transaction bodies: the directives (`Route`, `Drain`, `Restore`) and `Vote`.
//!
//! Bodies are appended, never renumbered: the encoding of a variant is its position.

use bincode::{Decode, Encode};
use serde::{Deserialize, Serialize};

use crate::ids::{AgentId, DirectiveId, EndpointId, GroupId};
use crate::telemetry::TelemetryEntry;

/// Route weights are basis points and must sum to exactly this.
pub const BASIS_POINTS_TOTAL: u32 = 10_000;

/// One share of a miner group's hashrate sent to one endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct RouteTarget {
    /// The endpoint receiving the share.
    pub endpoint: EndpointId,
    /// Its share, in basis points of the group's hashrate.
    pub weight_bp: u16,
}

/// What a transaction asks the network to do.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Body {
    /// Split a miner group across endpoints.
    Route {
        /// The signer's miner group.
        group: GroupId,
        /// The split; weights sum to [`BASIS_POINTS_TOTAL`].
        targets: Vec<RouteTarget>,
    },
    /// Stop routing new hashrate to one of the signer's endpoints.
    Drain {
        /// The signer's endpoint.
        endpoint: EndpointId,
    },
    /// Undo a `Drain`.
    Restore {
        /// The signer's drained endpoint.
        endpoint: EndpointId,
    },
    /// Approve or reject a pending directive that targets the signer's endpoints.
    Vote {
        /// The pending directive.
        directive: DirectiveId,
        /// `true` approves, `false` rejects.
        approve: bool,
    },
    /// The owner's measurements of one of its endpoints for one epoch (the old single form;
    /// it still decodes and applies, as an owner's view with every value known).
    ReportTelemetry {
        /// The signer's endpoint.
        endpoint: EndpointId,
        /// The measurements.
        report: TelemetryReport,
    },
    /// Agents of the signer's groups applied these directives (acknowledgements from the plane,
    /// batched). Entries are strictly increasing by `(directive, agent)`.
    Receipt {
        /// 1..=[`RECEIPTS_PER_TX_MAX`] entries.
        receipts: Vec<Receipt>,
    },
    /// One epoch of the signer's measured telemetry: its own endpoints (owner views) and other
    /// pools' endpoints its active routes target (observer views). Applied whole or refused whole.
    ReportTelemetryBatch {
        /// Reporting epoch (the node's clock, ms); strictly increasing per endpoint and reporter.
        epoch: u64,
        /// 1..=[`TELEMETRY_ENTRIES_PER_TX_MAX`](crate::telemetry::TELEMETRY_ENTRIES_PER_TX_MAX)
        /// entries, strictly increasing by endpoint.
        entries: Vec<TelemetryEntry>,
    },
    /// A standing offer of spare capacity on one of the signer's endpoints: other pools' routes
    /// that stay within the open offers' remaining capacity are active at once, without votes.
    /// Replaces the endpoint's previous offer.
    Offer {
        /// The signer's endpoint.
        endpoint: EndpointId,
        /// Most hashrate other pools' routes may place there under the offer, H/s (> 0).
        max_hs: u64,
        /// Fee, basis points of the lent work (0..=10 000).
        fee_bp: u16,
        /// Last height at which the offer is open (above the current height, at most
        /// `OFFER_TERM_BLOCKS_MAX` ahead).
        expires_height: u64,
    },
    /// Withdraw the signer's open offer on an endpoint (routes already in place stay).
    Withdraw {
        /// The signer's endpoint.
        endpoint: EndpointId,
    },
    /// The signer's running totals of the work done under loans it is party to: as borrower,
    /// what its agents had accepted at the lender's endpoint; as lender, what its endpoint
    /// accepted under the loan's credentials. The chain compares the two sides (`settle`) and
    /// settles the smaller within the tolerance. Applied whole or refused whole.
    ReportLoanWork {
        /// 1..=[`LOAN_WORK_ENTRIES_MAX`](crate::limits::LOAN_WORK_ENTRIES_MAX) entries,
        /// strictly increasing by `(group, endpoint)`.
        entries: Vec<LoanWork>,
    },
}

/// One side's running total for one loan.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct LoanWork {
    /// The borrowing group.
    pub group: GroupId,
    /// The lending endpoint.
    pub endpoint: EndpointId,
    /// The height the loan opened at (names the loan: a later loan of the same pair is another).
    pub opened_height: u64,
    /// When the total was read, ms since the Unix epoch (the reporter's clock); strictly
    /// increasing per loan and side.
    pub at_ms: u64,
    /// Accepted work since the loan opened, hashes (difficulty × 2³²); never decreasing.
    pub accepted_hashes: u128,
}

/// Most entries one `Receipt` transaction may carry.
pub const RECEIPTS_PER_TX_MAX: usize = 16;

/// One agent applied one directive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Encode, Decode, Serialize, Deserialize)]
pub struct Receipt {
    /// The directive (an active route of the signer's group).
    pub directive: DirectiveId,
    /// The agent that applied it.
    pub agent: AgentId,
    /// When the agent applied it, ms since the Unix epoch (the agent's clock).
    pub applied_at_ms: u64,
}

/// Most miners or queued requests a report may claim.
pub const TELEMETRY_COUNT_MAX: u32 = 10_000_000;
/// Largest latency a report may claim, ms (10 minutes).
pub const TELEMETRY_LATENCY_MS_MAX: u32 = 600_000;

/// One epoch of endpoint measurements, in integers (basis points, ms, H/s).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct TelemetryReport {
    /// Reporting epoch; strictly increasing per endpoint.
    pub epoch: u64,
    /// Accepted hashrate, H/s.
    pub hashrate_hs: u64,
    /// Shares accepted in the epoch.
    pub shares_accepted: u64,
    /// Shares rejected in the epoch.
    pub shares_rejected: u64,
    /// Shares for stale work in the epoch.
    pub shares_stale: u64,
    /// Median submit latency, ms.
    pub latency_ms_p50: u32,
    /// 99th percentile submit latency, ms (≥ p50).
    pub latency_ms_p99: u32,
    /// CPU utilisation, bp (0..=10 000).
    pub cpu_bp: u16,
    /// Memory pressure, bp (0..=10 000).
    pub memory_bp: u16,
    /// Error rate over the last minute, bp (0..=10 000).
    pub error_bp: u16,
    /// Requests waiting.
    pub queue_len: u32,
    /// Miners connected.
    pub miners: u32,
}

impl TelemetryReport {
    /// The first bound the report breaks, if any.
    #[must_use]
    pub fn out_of_range(&self) -> Option<&'static str> {
        if self.cpu_bp > 10_000 || self.memory_bp > 10_000 || self.error_bp > 10_000 {
            Some("cpu, memory and error rate are basis points (0..=10000)")
        } else if self.latency_ms_p99 > TELEMETRY_LATENCY_MS_MAX || self.latency_ms_p50 > self.latency_ms_p99 {
            Some("latency must satisfy p50 <= p99 <= 600000 ms")
        } else if self.queue_len > TELEMETRY_COUNT_MAX || self.miners > TELEMETRY_COUNT_MAX {
            Some("queue length and miners are at most 10000000")
        } else {
            None
        }
    }
}

impl Body {
    /// The stable kind name used in events, queries and the CLI.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Body::Route { .. } => "route",
            Body::Drain { .. } => "drain",
            Body::Restore { .. } => "restore",
            Body::Vote { .. } => "vote",
            Body::ReportTelemetry { .. } => "report_telemetry",
            Body::Receipt { .. } => "receipt",
            Body::ReportTelemetryBatch { .. } => "report_telemetry_batch",
            Body::Offer { .. } => "offer",
            Body::Withdraw { .. } => "withdraw",
            Body::ReportLoanWork { .. } => "report_loan_work",
        }
    }

    /// The miner group this body concerns, if any.
    #[must_use]
    pub fn group(&self) -> Option<&GroupId> {
        match self {
            Body::Route { group, .. } => Some(group),
            _ => None,
        }
    }
}
