//! Where the scheduling loop's measurements come from: the [`TelemetrySource`] trait, and
//! [`AgentSource`] — what the pool's agents measured since the last epoch, merged by the plane
//! (`hashmesh_telemetry::EpochBook`). An endpoint no agent measured gets no report. (The
//! testnet's synthetic model implements the same trait in `hashmesh-testnet`; the node never
//! links it.)

use std::collections::BTreeMap;

use hashmesh_plane::core::node::GroupWork;
use hashmesh_protocol::{EndpointId, Measurement};

/// Where measurements come from.
pub trait TelemetrySource: Send {
    /// This epoch's measurements, at `epoch` (the node's clock, ms): of `endpoints` — the
    /// pool's own, as (id, committed load H/s, capacity H/s) — and of any other endpoint the
    /// pool's agents sent work to. Endpoints nothing measured are absent.
    fn measure(&mut self, endpoints: &[(EndpointId, u128, u64)], epoch: u64) -> BTreeMap<EndpointId, Measurement>;

    /// What each of the pool's groups had accepted per endpoint since the last `measure` (the
    /// borrower's side of loans). Nothing, for a source that moves no work.
    fn group_work(&mut self) -> Vec<GroupWork> {
        Vec::new()
    }
}

/// Agents' measurements since the previous epoch, merged across agents.
pub struct AgentSource {
    plane: std::sync::Arc<crate::plane::service::Plane>,
    /// The work taken with the last measurements.
    work: Vec<GroupWork>,
}

impl AgentSource {
    /// Measurements from `plane`.
    #[must_use]
    pub fn new(plane: std::sync::Arc<crate::plane::service::Plane>) -> Self {
        Self { plane, work: Vec::new() }
    }
}

impl TelemetrySource for AgentSource {
    fn measure(&mut self, _endpoints: &[(EndpointId, u128, u64)], _epoch: u64) -> BTreeMap<EndpointId, Measurement> {
        let (measured, work) = self.plane.take_measurements();
        self.work = work;
        measured
    }

    fn group_work(&mut self) -> Vec<GroupWork> {
        std::mem::take(&mut self.work)
    }
}
