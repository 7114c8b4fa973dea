//! Telemetry on chain: keeping each endpoint's latest report with its integer health, and the
//! two routing rules it drives — the health floor and the capacity limit.

use hashmesh_protocol::rules::{load_limit_hs, report_health_bp, share_hs};
use hashmesh_protocol::{codec, EndpointId, PoolId, RejectCode, RouteTarget, TelemetryReport};

use super::apply::{reject, Rejection};
use super::events::Event;
use super::keys;
use super::model::{GroupRecord, TelemetryRecord};
use super::state::State;
use super::writes::WriteSet;

impl State {
    /// Committed health of each target at or above the floor (fresh telemetry only; an
    /// endpoint without fresh telemetry is not judged), and projected load within capacity ×
    /// max utilisation, counting the group's current route as moved.
    pub(crate) fn check_targets_fit(&self, g: &GroupRecord, targets: &[RouteTarget]) -> Result<(), Rejection> {
        let current = self.assignments.get(&g.id);
        for t in targets {
            if let Some(health) = self.fresh_health_bp(&t.endpoint) {
                if health < self.params.health_floor_bp {
                    return reject(
                        RejectCode::HealthBelowFloor,
                        format!(
                            "endpoint {} health {health} bp is below the floor {} bp",
                            t.endpoint, self.params.health_floor_bp
                        ),
                    );
                }
            }
            let ep = &self.endpoints[&t.endpoint];
            let now = self.endpoint_load_hs.get(&t.endpoint).copied().unwrap_or(0);
            let mine = current
                .and_then(|a| a.targets.iter().find(|x| x.endpoint == t.endpoint))
                .map_or(0, |x| share_hs(g.hashrate_hs, x.weight_bp));
            let projected = now - mine + share_hs(g.hashrate_hs, t.weight_bp);
            let limit = load_limit_hs(ep.capacity_hs, self.params.max_utilization_bp);
            if projected > limit {
                return reject(
                    RejectCode::CapacityExceeded,
                    format!("endpoint {} would carry {projected} H/s, over its limit {limit} H/s", t.endpoint),
                );
            }
        }
        Ok(())
    }

    /// Health from telemetry committed within `telemetry_stale_blocks`; `None` when unknown.
    #[must_use]
    pub fn fresh_health_bp(&self, endpoint: &EndpointId) -> Option<u32> {
        self.fresh_telemetry(endpoint).map(|t| t.health_bp)
    }

    /// Keep an endpoint's latest report and its health; emit the `telemetry` event.
    pub(crate) fn record_telemetry(
        &mut self,
        pool: PoolId,
        endpoint: EndpointId,
        report: TelemetryReport,
        height: u64,
        writes: &mut WriteSet,
    ) -> (String, Event) {
        let health_bp = report_health_bp(&report);
        let event = Event::new("telemetry")
            .with("endpoint", endpoint.as_str())
            .with("pool", pool.to_hex())
            .with("epoch", report.epoch.to_string())
            .with("health_bp", health_bp.to_string());
        let log = format!("telemetry epoch {} of {endpoint} recorded; health {health_bp} bp", report.epoch);
        let rec = TelemetryRecord { endpoint: endpoint.clone(), report, height, health_bp };
        writes.put(keys::telemetry(&endpoint), codec::encode(&rec));
        self.telemetry.insert(endpoint, rec);
        (log, event)
    }
}
