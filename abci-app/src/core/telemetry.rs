//! Telemetry on chain: each endpoint's latest owner report and observer measurements, the
//! health the floor rule judges from them, and the two routing rules it drives — the health
//! floor and the capacity limit.

use std::collections::BTreeMap;

use hashmesh_protocol::rules::{load_limit_hs, share_hs, FloorHealth};
use hashmesh_protocol::{codec, EndpointId, Measurement, PoolId, RejectCode, RouteTarget, TelemetryEntry};

use super::apply::{reject, Rejection};
use super::events::Event;
use super::keys;
use super::model::{GroupRecord, TelemetryRecord, TelemetryView};
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

    /// Health for the floor from telemetry committed within `telemetry_stale_blocks`; `None`
    /// when unknown.
    #[must_use]
    pub fn fresh_health_bp(&self, endpoint: &EndpointId) -> Option<u32> {
        self.fresh_health(endpoint).health_bp
    }

    /// The floor rule's view of an endpoint: owner's claim, observers, flag.
    #[must_use]
    pub fn fresh_health(&self, endpoint: &EndpointId) -> FloorHealth {
        match self.telemetry.get(endpoint) {
            Some(t) => t.judged(self.height, self.params.telemetry_stale_blocks),
            None => hashmesh_protocol::rules::floor_health(None, &[]),
        }
    }

    /// Check every entry of a telemetry report (the old single form is one owner entry): in
    /// range, a known endpoint, the signer's own or one its active routes target, and an
    /// epoch above the signer's last for that endpoint. The first failure refuses the whole
    /// report.
    pub(crate) fn check_telemetry(
        &self,
        signer: PoolId,
        epoch: u64,
        entries: &[TelemetryEntry],
    ) -> Result<(), Rejection> {
        for (i, e) in entries.iter().enumerate() {
            let at = |why: String| if entries.len() > 1 { format!("entry {i} ({}): {why}", e.endpoint) } else { why };
            if let Some(why) = e.measurement.out_of_range() {
                return reject(RejectCode::TelemetryOutOfRange, at(why.into()));
            }
            let Some(ep) = self.endpoints.get(&e.endpoint) else {
                return reject(RejectCode::UnknownEndpoint, at(format!("no endpoint {}", e.endpoint)));
            };
            let last = self.telemetry.get(&e.endpoint);
            let last_epoch = if ep.owner == signer {
                last.and_then(|t| t.owner.as_ref()).map(|v| v.epoch)
            } else {
                if !self.routes_to(signer, &e.endpoint) {
                    return reject(
                        RejectCode::NotObserver,
                        at(format!(
                            "endpoint {} belongs to another pool and no active route of yours targets it; \
                             report only your own endpoints and those your routes send work to",
                            e.endpoint
                        )),
                    );
                }
                last.and_then(|t| t.observers.get(&signer)).map(|v| v.epoch)
            };
            if let Some(last) = last_epoch.filter(|l| epoch <= *l) {
                return reject(
                    RejectCode::TelemetryEpochNotIncreasing,
                    at(format!("epoch {epoch} is not above the last reported epoch {last}")),
                );
            }
        }
        Ok(())
    }

    /// Whether an active route of one of `pool`'s groups targets `endpoint`.
    fn routes_to(&self, pool: PoolId, endpoint: &EndpointId) -> bool {
        self.assignments.iter().any(|(g, a)| {
            self.groups.get(g).is_some_and(|g| g.owner == pool) && a.targets.iter().any(|t| t.endpoint == *endpoint)
        })
    }

    /// Keep checked entries as the signer's latest views; emit one `telemetry` event per entry.
    pub(crate) fn record_telemetry(
        &mut self,
        pool: PoolId,
        epoch: u64,
        entries: Vec<(EndpointId, Measurement)>,
        height: u64,
        writes: &mut WriteSet,
    ) -> (String, Vec<Event>) {
        let mut events = Vec::with_capacity(entries.len());
        let mut flagged = Vec::new();
        let n = entries.len();
        for (endpoint, measurement) in entries {
            let owned = self.endpoints.get(&endpoint).is_some_and(|e| e.owner == pool);
            let rec = self.telemetry.entry(endpoint.clone()).or_insert_with(|| TelemetryRecord {
                endpoint: endpoint.clone(),
                owner: None,
                observers: BTreeMap::new(),
            });
            let view = TelemetryView { epoch, measurement, height };
            if owned {
                rec.owner = Some(view);
            } else {
                rec.observers.insert(pool, view);
            }
            writes.put(keys::telemetry(&endpoint), codec::encode(&*rec));
            let judged = rec.judged(height, self.params.telemetry_stale_blocks);
            if judged.flagged {
                flagged.push(endpoint.to_string());
            }
            let health = judged.health_bp.map_or_else(|| "unknown".to_owned(), |h| h.to_string());
            events.push(
                Event::new("telemetry")
                    .with("endpoint", endpoint.as_str())
                    .with("pool", pool.to_hex())
                    .with("view", if owned { "owner" } else { "observer" })
                    .with("epoch", epoch.to_string())
                    .with("health_bp", health)
                    .with("flagged", judged.flagged.to_string()),
            );
        }
        let mut log = format!("telemetry epoch {epoch}: {n} endpoint(s) recorded");
        if !flagged.is_empty() {
            log.push_str(&format!("; owner claims disagree with observers at {}", flagged.join(", ")));
        }
        (log, events)
    }
}
