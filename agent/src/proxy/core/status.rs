//! What the proxy tells others: measurements for the heartbeats, and the status snapshot
//! (`proxy.json`, `hashmesh-agent status`) — in which credentials never appear.

use std::collections::BTreeMap;

use hashmesh_protocol::{EndpointId, GroupId, TelemetryReport};
use serde::Serialize;

use super::{Failover, Link, Proxy};
use crate::proxy::meter::Counts;

impl Proxy {
    // ---- what the agent tells others ------------------------------------------------------

    /// Measurements per endpoint since the previous call (for the next heartbeat).
    pub fn reports(&mut self, now_ms: u64) -> Vec<(EndpointId, TelemetryReport)> {
        let ups = &self.upstreams;
        let miners = &self.miners;
        self.meter.reports(
            now_ms,
            &|e| ups.get(e).is_none_or(|u| u.link != Link::Ready),
            &|e| u32::try_from(miners.values().filter(|m| m.at.as_ref() == Some(e)).count()).unwrap_or(u32::MAX),
            &|e| ups.get(e).map_or(0, |u| u32::try_from(u.in_flight.len()).unwrap_or(u32::MAX)),
        )
    }

    /// A snapshot for `hashmesh-agent status`, tests and the status file. Credentials never
    /// appear in it.
    #[must_use]
    pub fn status(&self, now_ms: u64) -> ProxyStatus {
        let endpoints = self
            .upstreams
            .iter()
            .map(|(e, u)| {
                let totals = self.meter.endpoints().get(e).map(|m| m.total).unwrap_or_default();
                EndpointStatus {
                    endpoint: e.clone(),
                    link: u.link,
                    usable: self.usable(e, now_ms),
                    miners: self.miners.values().filter(|m| m.at.as_ref() == Some(e)).count(),
                    difficulty: u.difficulty,
                    in_flight: u.in_flight.len(),
                    failures: u.failures,
                    last_error: u.last_error.clone(),
                    totals,
                }
            })
            .collect();
        let groups = self
            .groups
            .iter()
            .map(|(gid, g)| GroupStatus {
                group: gid.clone(),
                directive: g.route.as_ref().map(|r| r.directive.to_hex()),
                targets: g
                    .route
                    .as_ref()
                    .map(|r| r.effective().into_iter().map(|t| (t.endpoint, t.weight_bp)).collect())
                    .unwrap_or_default(),
                live: self.live_targets(g, now_ms).into_iter().map(|(e, _)| e).collect(),
                miners: self.miners.values().filter(|m| m.group.as_ref() == Some(gid)).count(),
                accepted_difficulty: g.accepted.clone(),
            })
            .collect();
        ProxyStatus {
            miners: self.miners.len(),
            endpoints,
            groups,
            failovers: self.failovers.iter().cloned().collect(),
            workers: self.meter.workers().iter().map(|(w, c)| (w.clone(), *c)).collect(),
        }
    }
}

/// One upstream in [`ProxyStatus`].
#[derive(Debug, Clone, Serialize)]
pub struct EndpointStatus {
    /// The endpoint.
    pub endpoint: EndpointId,
    /// Its connection.
    link: Link,
    /// Whether work goes there now.
    pub usable: bool,
    /// Miners whose work goes there.
    pub miners: usize,
    /// Its share difficulty.
    pub difficulty: f64,
    /// Shares waiting for its verdict.
    pub in_flight: usize,
    /// Times it failed since the agent started.
    pub failures: u32,
    /// Why it last failed.
    pub last_error: Option<String>,
    /// Shares and difficulty since the agent started.
    pub totals: Counts,
}

/// One group in [`ProxyStatus`].
#[derive(Debug, Clone, Serialize)]
pub struct GroupStatus {
    /// The group.
    pub group: GroupId,
    /// The directive of its route (hex), if one arrived.
    pub directive: Option<String>,
    /// The route in effect (drained endpoints removed).
    pub targets: Vec<(EndpointId, u16)>,
    /// Where its work can go now.
    pub live: Vec<EndpointId>,
    /// Its miners.
    pub miners: usize,
    /// Accepted difficulty per endpoint since its route took effect.
    pub accepted_difficulty: BTreeMap<EndpointId, f64>,
}

/// The proxy at a glance.
#[derive(Debug, Clone, Serialize)]
pub struct ProxyStatus {
    /// Miners connected.
    pub miners: usize,
    /// Upstreams.
    pub endpoints: Vec<EndpointStatus>,
    /// Groups.
    pub groups: Vec<GroupStatus>,
    /// Recent failovers, oldest first.
    pub failovers: Vec<Failover>,
    /// Per-worker totals.
    pub workers: BTreeMap<String, Counts>,
}
