//! Where the scheduling loop's measurements come from: the [`TelemetrySource`] trait, and
//! [`AgentSource`] — what the pool's agents measured, sent in their heartbeats. An endpoint no
//! agent measured gets no report. (The testnet's synthetic model implements the same trait in
//! `hashmesh-testnet`; the node never links it.)

use std::collections::BTreeMap;

use hashmesh_protocol::{EndpointId, TelemetryReport};

/// Where measurements of this pool's endpoints come from.
pub trait TelemetrySource: Send {
    /// This epoch's measurements of `endpoints` — (id, committed load H/s, capacity H/s) — at
    /// `epoch` (the node's clock, ms). Endpoints nothing measured are absent.
    fn measure(&mut self, endpoints: &[(EndpointId, u128, u64)], epoch: u64) -> BTreeMap<EndpointId, TelemetryReport>;
}

/// Agents' measurements: the latest report any agent sent for the endpoint within
/// `max_age_ms`. An endpoint no agent measured gets nothing (nothing unmeasured goes on chain).
pub struct AgentSource {
    plane: std::sync::Arc<crate::plane::service::Plane>,
    max_age_ms: u64,
}

impl AgentSource {
    /// Reports from `plane`, fresh within `max_age_ms`.
    #[must_use]
    pub fn new(plane: std::sync::Arc<crate::plane::service::Plane>, max_age_ms: u64) -> Self {
        Self { plane, max_age_ms }
    }
}

impl TelemetrySource for AgentSource {
    fn measure(&mut self, endpoints: &[(EndpointId, u128, u64)], epoch: u64) -> BTreeMap<EndpointId, TelemetryReport> {
        let fresh = self.plane.fresh_reports(self.max_age_ms);
        endpoints
            .iter()
            // The epoch is the node's: it must increase on chain whatever the agent's clock says.
            .filter_map(|(e, _, _)| fresh.get(e).map(|r| (e.clone(), TelemetryReport { epoch, ..*r })))
            .collect()
    }
}
