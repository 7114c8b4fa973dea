//! Transaction bodies: the directives (`Route`, `Drain`, `Restore`) and `Vote`.
//!
//! Bodies are appended, never renumbered: the encoding of a variant is its position.
//! `ReportTelemetry`, `Receipt`, `Lend` and `SetPolicy` will take the next tags.

use bincode::{Decode, Encode};
use serde::{Deserialize, Serialize};

use crate::ids::{DirectiveId, EndpointId, GroupId};

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
