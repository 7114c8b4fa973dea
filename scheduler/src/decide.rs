//! The scheduling loop's decision, as one pure function: from the committed state read at one
//! height ([`EpochView`]), this epoch's measurements of the pool's own endpoints and the loop's
//! memory, the transaction bodies to sign — telemetry reports, route changes, votes. The node's
//! epoch only gathers the inputs, calls [`decide`], signs and broadcasts.
//!
//! Every endpoint is judged by the integer health the chain judges it by
//! (`hashmesh_protocol::rules`): the committed health of fresh telemetry, or for the pool's own
//! endpoints the health of the report about to be committed. Loads are the chain's derived loads;
//! room is the chain's load limit. So a plan never targets what the chain would refuse for
//! health or capacity.

use std::collections::BTreeMap;

use hashmesh_protocol::rules::{floor_health, load_limit_hs, share_hs};
use hashmesh_protocol::telemetry::TELEMETRY_ENTRIES_PER_TX_MAX;
use hashmesh_protocol::{Body, DirectiveId, EndpointId, GroupId, Measurement, PoolId, RouteTarget, TelemetryEntry};

use crate::planner::{plan, PlanEndpoint, PlanGroup, PlanOffer, PlannerConfig};

/// An endpoint in committed state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewEndpoint {
    /// Its id.
    pub id: EndpointId,
    /// The pool that owns it.
    pub owner: PoolId,
    /// Capacity, H/s.
    pub capacity_hs: u64,
    /// Committed as drained.
    pub drained: bool,
    /// Hashrate the committed assignments route to it, H/s (the chain's derived load).
    pub load_hs: u128,
    /// Committed health of fresh telemetry as the floor rule judges it (owner and observers),
    /// bp (`None`: nothing fresh; the chain does not judge it).
    pub health_bp: Option<u32>,
    /// The worst fresh median submit latency (owner or observers), ms.
    pub latency_ms_p50: Option<u32>,
    /// Fresh observer measurements (other pools' agents at this endpoint).
    pub observers: Vec<Measurement>,
}

/// A miner group in committed state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewGroup {
    /// Its id.
    pub id: GroupId,
    /// The pool that owns it.
    pub owner: PoolId,
    /// Nominal hashrate, H/s.
    pub hashrate_hs: u64,
    /// Its committed route and the directive that set it (`None`: never routed).
    pub route: Option<(DirectiveId, Vec<RouteTarget>)>,
}

/// A directive waiting for votes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewPending {
    /// The directive.
    pub id: DirectiveId,
    /// The group it routes.
    pub group: GroupId,
    /// The route it proposes.
    pub targets: Vec<RouteTarget>,
    /// Pools whose approval it needs.
    pub voters_required: Vec<PoolId>,
    /// Pools that approved it.
    pub approvals: Vec<PoolId>,
}

/// Committed state as the scheduling loop needs it, read at one height.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EpochView {
    /// The height it was read at.
    pub height: u64,
    /// The chain's health floor, bp.
    pub health_floor_bp: u32,
    /// The chain's utilisation ceiling, bp of capacity.
    pub max_utilization_bp: u32,
    /// Every endpoint.
    pub endpoints: Vec<ViewEndpoint>,
    /// Every miner group.
    pub groups: Vec<ViewGroup>,
    /// Every directive waiting for votes.
    pub pending: Vec<ViewPending>,
    /// Every open offer.
    pub offers: Vec<ViewOffer>,
}

/// An open offer in committed state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewOffer {
    /// The offered endpoint.
    pub endpoint: EndpointId,
    /// Most hashrate other pools may place there under it, H/s.
    pub max_hs: u64,
    /// Fee, bp of the lent work.
    pub fee_bp: u16,
    /// Hashrate other pools' committed routes place there now, H/s.
    pub lent_hs: u128,
}

/// What the loop remembers between epochs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DecideMemory {
    /// Per group: the directive of its route when first seen, and when (ms). Bounded by the
    /// pool's groups (entries of groups no longer ours are dropped each epoch).
    seen: BTreeMap<GroupId, (DirectiveId, u64)>,
    /// Own endpoints seen unusable (`None`) or recovered since (`Some(ms)`) less than a dwell
    /// ago. Bounded by the pool's endpoints.
    recovering: BTreeMap<EndpointId, Option<u64>>,
}

/// Settings of the decision (from `[scheduler]`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DecideConfig {
    /// A group keeps a route at least this long unless a target becomes unusable, ms.
    pub dwell_ms_min: u64,
    /// Smallest improvement worth a move, bp.
    pub gain_bp_min: u32,
    /// Most route changes proposed per epoch.
    pub moves_per_epoch_max: usize,
    /// The pool's own health floor, bp (the chain's floor applies too).
    pub health_floor_bp: u32,
}

/// What one epoch decided.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Decision {
    /// Bodies to sign and broadcast, in order: reports, routes, votes.
    pub bodies: Vec<Body>,
    /// Endpoints reported in them (owner and observer entries).
    pub reports: u64,
    /// Route changes among them.
    pub moves: u64,
    /// Votes among them.
    pub votes: u64,
    /// The pool's measured endpoints average above 80 % CPU (the article: poll slower).
    pub busy: bool,
}

/// Decide one epoch for pool `me`.
///
/// `measured` holds this epoch's measurements by `me`'s agents (endpoints nobody measured are
/// absent and get no report: nothing unmeasured goes on chain). They are reported in one
/// `ReportTelemetryBatch` (more only past [`TELEMETRY_ENTRIES_PER_TX_MAX`] entries): `me`'s
/// own endpoints as owner, and other pools' endpoints that `me`'s committed routes target as
/// observer; measurements of any other endpoint are left out (the chain would refuse them).
#[must_use]
pub fn decide(
    me: &PoolId,
    view: &EpochView,
    measured: &BTreeMap<EndpointId, Measurement>,
    memory: &mut DecideMemory,
    cfg: &DecideConfig,
    now_ms: u64,
) -> Decision {
    let mut out = Decision::default();
    let floor_bp = cfg.health_floor_bp.max(view.health_floor_bp);

    // Collect: report what was measured, and judge our endpoints by it.
    let mut health_bp: Vec<Option<u32>> = view.endpoints.iter().map(|e| e.health_bp).collect();
    let mut latency_ms: Vec<Option<u32>> = view.endpoints.iter().map(|e| e.latency_ms_p50).collect();
    let routed: std::collections::BTreeSet<&EndpointId> = view
        .groups
        .iter()
        .filter(|g| g.owner == *me)
        .flat_map(|g| g.route.iter().flat_map(|(_, r)| r.iter().map(|t| &t.endpoint)))
        .collect();
    let (mut cpu_bp_sum, mut cpu_known) = (0u64, 0u64);
    let mut entries = Vec::new();
    for (i, e) in view.endpoints.iter().enumerate() {
        let Some(m) = measured.get(&e.id) else { continue };
        if e.owner == *me {
            let observers: Vec<&Measurement> = e.observers.iter().collect();
            let judged = floor_health(Some(m), &observers);
            health_bp[i] = judged.health_bp;
            latency_ms[i] = judged.latency_ms_p50;
            if let Some(c) = m.cpu_bp {
                cpu_bp_sum += u64::from(c);
                cpu_known += 1;
            }
        } else if !routed.contains(&e.id) {
            continue;
        }
        entries.push(TelemetryEntry { endpoint: e.id.clone(), measurement: *m });
    }
    entries.sort_by(|a, b| a.endpoint.cmp(&b.endpoint));
    out.reports = entries.len() as u64;
    for chunk in entries.chunks(TELEMETRY_ENTRIES_PER_TX_MAX) {
        out.bodies.push(Body::ReportTelemetryBatch { epoch: now_ms, entries: chunk.to_vec() });
    }
    out.busy = cpu_known > 0 && cpu_bp_sum / cpu_known > 8000;

    // Evaluate: endpoints as the planner sees them, with the load of groups that are not ours.
    let index: BTreeMap<&EndpointId, usize> = view.endpoints.iter().enumerate().map(|(i, e)| (&e.id, i)).collect();
    let mut base_load: Vec<u128> = view.endpoints.iter().map(|e| e.load_hs).collect();
    for g in view.groups.iter().filter(|g| g.owner == *me) {
        for t in g.route.iter().flat_map(|(_, r)| r) {
            if let Some(&i) = index.get(&t.endpoint) {
                base_load[i] = base_load[i].saturating_sub(share_hs(g.hashrate_hs, t.weight_bp));
            }
        }
    }
    // Offers on other pools' endpoints, with what other pools than us borrow there.
    let offers: BTreeMap<&EndpointId, &ViewOffer> = view.offers.iter().map(|o| (&o.endpoint, o)).collect();
    let mut mine_on: BTreeMap<&EndpointId, u128> = BTreeMap::new();
    for g in view.groups.iter().filter(|g| g.owner == *me) {
        for t in g.route.iter().flat_map(|(_, r)| r) {
            *mine_on.entry(&t.endpoint).or_insert(0) += share_hs(g.hashrate_hs, t.weight_bp);
        }
    }
    // Own endpoints that were unusable come back only after a dwell of health.
    for (i, e) in view.endpoints.iter().enumerate().filter(|(_, e)| e.owner == *me) {
        let unusable = e.drained || health_bp[i].is_some_and(|h| h < floor_bp);
        match memory.recovering.get(&e.id).copied() {
            _ if unusable => {
                memory.recovering.insert(e.id.clone(), None);
            }
            Some(None) => {
                memory.recovering.insert(e.id.clone(), Some(now_ms));
            }
            Some(Some(since)) if now_ms.saturating_sub(since) >= cfg.dwell_ms_min => {
                memory.recovering.remove(&e.id);
            }
            _ => {}
        }
    }
    memory.recovering.retain(|id, _| view.endpoints.iter().any(|e| e.id == *id && e.owner == *me));
    let plan_eps: Vec<PlanEndpoint> = view
        .endpoints
        .iter()
        .enumerate()
        .map(|(i, e)| PlanEndpoint {
            id: e.id.to_string(),
            owner: e.owner.to_hex(),
            capacity_hs: e.capacity_hs,
            // Unjudged endpoints count as healthy, as the chain counts them.
            health: f64::from(health_bp[i].unwrap_or(10_000)) / 10_000.0,
            drained: e.drained,
            ejected: health_bp[i].is_some_and(|h| h < floor_bp),
            ramp: 1.0,
            latency_ms: f64::from(latency_ms[i].unwrap_or(0)),
            base_load_hs: base_load[i] as f64,
            offer: offers.get(&e.id).filter(|_| e.owner != *me).map(|o| PlanOffer {
                max_hs: o.max_hs as f64,
                fee_bp: u32::from(o.fee_bp),
                lent_hs: o.lent_hs.saturating_sub(mine_on.get(&e.id).copied().unwrap_or(0)) as f64,
            }),
            settling: memory.recovering.contains_key(&e.id),
        })
        .collect();

    // Decide: plan our groups over our endpoints, with hysteresis.
    let mine: Vec<&ViewGroup> = view.groups.iter().filter(|g| g.owner == *me).collect();
    memory.seen.retain(|id, _| mine.iter().any(|g| g.id == *id));
    let plan_groups: Vec<PlanGroup> = mine
        .iter()
        .map(|g| {
            let (route, changed_at_ms) = match &g.route {
                Some((directive, targets)) => {
                    let seen = memory.seen.entry(g.id.clone()).or_insert((*directive, now_ms));
                    if seen.0 != *directive {
                        *seen = (*directive, now_ms);
                    }
                    let route = targets.iter().filter_map(|t| Some((*index.get(&t.endpoint)?, t.weight_bp))).collect();
                    (route, Some(seen.1))
                }
                None => (Vec::new(), None),
            };
            PlanGroup { id: g.id.to_string(), owner: me.to_hex(), hashrate_hs: g.hashrate_hs, route, changed_at_ms }
        })
        .collect();
    let planner = PlannerConfig {
        min_dwell_ms: cfg.dwell_ms_min,
        min_gain_bp: cfg.gain_bp_min,
        max_moves_per_epoch: cfg.moves_per_epoch_max,
        health_floor: f64::from(floor_bp) / 10_000.0,
        allow_cross_pool: false,
        borrow: true,
        ..PlannerConfig::default()
    };
    for m in plan(&plan_groups, &plan_eps, &planner, now_ms) {
        let targets = m
            .route
            .iter()
            .map(|&(e, w)| RouteTarget { endpoint: view.endpoints[e].id.clone(), weight_bp: w })
            .collect();
        out.bodies.push(Body::Route { group: mine[m.group].id.clone(), targets });
        out.moves += 1;
    }

    // Vote on routes that want our endpoints: approve when each of ours is healthy and has room.
    let hashrate: BTreeMap<&GroupId, u64> = view.groups.iter().map(|g| (&g.id, g.hashrate_hs)).collect();
    for d in &view.pending {
        if !d.voters_required.contains(me) || d.approvals.contains(me) {
            continue;
        }
        let hr = hashrate.get(&d.group).copied().unwrap_or(0);
        let approve = d.targets.iter().all(|t| {
            let Some(&i) = index.get(&t.endpoint) else { return false };
            let e = &view.endpoints[i];
            if e.owner != *me {
                return true;
            }
            let healthy = health_bp[i].is_none_or(|h| h >= floor_bp);
            let room = load_limit_hs(e.capacity_hs, view.max_utilization_bp);
            healthy && !e.drained && e.load_hs.saturating_add(share_hs(hr, t.weight_bp)) <= room
        });
        out.bodies.push(Body::Vote { directive: d.id, approve });
        out.votes += 1;
    }
    out
}
