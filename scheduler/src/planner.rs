//! The hashmesh planner: from a committed view of miner groups and endpoints, propose new
//! group routes — only where the expected gain is worth a move (hysteresis: minimum dwell
//! time, minimum gain, a cap on moves per epoch), and never onto a drained, ejected or
//! unhealthy endpoint.
//!
//! Each group's target split is proportional to each eligible endpoint's *headroom* (capacity
//! × max utilisation × cold-start ramp, minus the load of the other groups) weighted by health
//! and, beyond a latency budget, by `(budget / latency)²`.
//! Because a group's target ignores its own current placement, the same input always gives the
//! same target: a group that already sits on its target has zero gain, so routing does not flap.
//!
//! **Borrowing.** When the owner's usable headroom cannot carry a group (its endpoints dead,
//! drained, unhealthy or full), the deficit goes to other pools' endpoints with open offers
//! ([`PlanOffer`]), cheapest fee first, then healthiest, each within its offer's remaining
//! capacity (less a margin for basis-point rounding), so the route is active without votes;
//! an endpoint another of the pool's groups already borrows is not borrowed again (one loan per
//! borrowing pool and endpoint: agents log in once per endpoint, so the lender could not tell
//! two loans' work apart).
//! Once the owner's endpoints can carry the group again and the dwell has passed, the group
//! comes home whatever the gain.

use crate::weights::to_basis_points;

/// Most endpoints one route may use (the protocol's `ROUTES_PER_GROUP_MAX`).
pub const ROUTE_TARGETS_MAX: usize = 16;

/// An endpoint as the planner sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanEndpoint {
    /// Endpoint id.
    pub id: String,
    /// Owning pool.
    pub owner: String,
    /// Capacity, H/s.
    pub capacity_hs: u64,
    /// Health in [0, 1].
    pub health: f64,
    /// Committed as drained.
    pub drained: bool,
    /// Ejected by outlier detection or judged lost.
    pub ejected: bool,
    /// Cold-start factor in [0, 1].
    pub ramp: f64,
    /// Median submit latency, ms (0 when unknown).
    pub latency_ms: f64,
    /// Load already on the endpoint from groups the planner is not placing (other pools'
    /// groups), H/s.
    pub base_load_hs: f64,
    /// Its owner's open offer, if any (another pool's endpoint the groups may borrow).
    pub offer: Option<PlanOffer>,
    /// Recovered less than a dwell ago: routes on it stay, but no route is moved onto it yet.
    pub settling: bool,
}

/// An open offer on an endpoint, as the planner sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlanOffer {
    /// Most hashrate other pools may place there, H/s.
    pub max_hs: f64,
    /// Fee, bp of the lent work.
    pub fee_bp: u32,
    /// Hashrate other pools than the planner's already borrow there, H/s (the planner's own
    /// groups' shares come on top).
    pub lent_hs: f64,
}

/// Share of an offer's remaining capacity the planner leaves unused, so that rounding weights
/// to basis points cannot take a route outside the offer.
const OFFER_MARGIN: f64 = 0.01;

/// A miner group and its current route.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanGroup {
    /// Group id.
    pub id: String,
    /// Owning pool.
    pub owner: String,
    /// Nominal hashrate, H/s.
    pub hashrate_hs: u64,
    /// Current route: (endpoint index, weight in bp).
    pub route: Vec<(usize, u16)>,
    /// When the route last changed, ms (None: never routed).
    pub changed_at_ms: Option<u64>,
}

/// Planner settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlannerConfig {
    /// A group keeps a route at least this long, ms (unless a target became unusable).
    pub min_dwell_ms: u64,
    /// Smallest improvement worth a move, bp of the current cost.
    pub min_gain_bp: u32,
    /// Most moves proposed per epoch.
    pub max_moves_per_epoch: usize,
    /// Endpoints below this health are not targeted.
    pub health_floor: f64,
    /// Target utilisation ceiling (default 0.8: headroom under the chain's 0.9 refusal line).
    pub max_utilization: f64,
    /// Whether groups may be routed onto other pools' endpoints (as if they were the owner's).
    pub allow_cross_pool: bool,
    /// Whether groups the owner's endpoints cannot carry may borrow offered endpoints.
    pub borrow: bool,
    /// Submit latency beyond which an endpoint's share shrinks with the square of the excess
    /// ratio, ms (stale work grows with latency; the article's first bucket is < 100 ms).
    /// 0 turns latency steering off.
    pub latency_budget_ms: f64,
}

impl Default for PlannerConfig {
    fn default() -> Self {
        Self {
            min_dwell_ms: 60_000,
            min_gain_bp: 500,
            max_moves_per_epoch: 4,
            health_floor: 0.3,
            max_utilization: 0.8,
            allow_cross_pool: false,
            borrow: false,
            latency_budget_ms: 100.0,
        }
    }
}

/// A proposed route change.
#[derive(Debug, Clone, PartialEq)]
pub struct Move {
    /// Index of the group.
    pub group: usize,
    /// New route: (endpoint index, weight bp), weights positive and summing to 10 000.
    pub route: Vec<(usize, u16)>,
    /// Expected improvement, bp of the current cost (10 000 when the current route is unusable).
    pub gain_bp: u32,
}

/// How much of its headroom an endpoint is worth given its latency: 1 within the budget, then
/// `(budget / latency)²`.
fn latency_factor(e: &PlanEndpoint, cfg: &PlannerConfig) -> f64 {
    if cfg.latency_budget_ms <= 0.0 || e.latency_ms <= cfg.latency_budget_ms {
        1.0
    } else {
        (cfg.latency_budget_ms / e.latency_ms).powi(2)
    }
}

/// Cost of putting `share_hs` on endpoint `e` on top of `other_load_hs`: grows as the
/// endpoint fills up and as its health falls; unusable endpoints cost a prohibitive amount.
fn penalty(e: &PlanEndpoint, other_load_hs: f64, share_hs: f64, cfg: &PlannerConfig) -> f64 {
    if e.drained || e.ejected || e.health < cfg.health_floor || e.capacity_hs == 0 {
        return 1e9;
    }
    let util = (other_load_hs + share_hs) / e.capacity_hs as f64;
    1.0 / ((e.health * latency_factor(e, cfg)).max(0.01) * (1.0 - util).max(0.05))
}

/// Cost of a group's route: each share's penalty, weighted by its share; on other pools'
/// offered endpoints the fee counts on top (`1 + fee`).
fn route_cost(route: &[(usize, u16)], g: &PlanGroup, eps: &[PlanEndpoint], other: &[f64], cfg: &PlannerConfig) -> f64 {
    let hashrate = g.hashrate_hs as f64;
    route
        .iter()
        .map(|&(e, w)| {
            let share = hashrate * f64::from(w) / 10_000.0;
            let fee = match &eps[e].offer {
                Some(o) if eps[e].owner != g.owner => f64::from(o.fee_bp) / 10_000.0,
                _ => 0.0,
            };
            f64::from(w) / 10_000.0 * penalty(&eps[e], other[e], share, cfg) * (1.0 + fee)
        })
        .sum()
}

fn usable(e: &PlanEndpoint, g: &PlanGroup, cfg: &PlannerConfig) -> bool {
    serviceable(e, cfg) && (cfg.allow_cross_pool || e.owner == g.owner)
}

/// Whether an endpoint can carry work at all (not drained, ejected or below the floor). A route
/// is broken — and changed despite the dwell — only when one of its endpoints is not; another
/// pool's endpoint that a committed (approved) route lends is kept for the dwell even when the
/// planner itself may not choose it.
fn serviceable(e: &PlanEndpoint, cfg: &PlannerConfig) -> bool {
    !e.drained && !e.ejected && e.health >= cfg.health_floor
}

/// Room left on endpoint `i` under the utilisation ceiling, H/s.
fn room(e: &PlanEndpoint, other: f64, cfg: &PlannerConfig) -> f64 {
    (e.capacity_hs as f64 * cfg.max_utilization * e.ramp.clamp(0.0, 1.0) - other).max(0.0)
}

/// The target route of group `gi` given the load of every other group.
fn target(g: &PlanGroup, eps: &[PlanEndpoint], other: &[f64], cfg: &PlannerConfig) -> Option<Vec<(usize, u16)>> {
    let hr = g.hashrate_hs as f64;
    if cfg.borrow {
        let own_room: f64 = eps
            .iter()
            .enumerate()
            .filter(|(_, e)| e.owner == g.owner && usable(e, g, cfg) && !e.settling)
            .map(|(i, e)| room(e, other[i], cfg))
            .sum();
        if own_room < hr {
            if let Some(route) = borrowed(g, eps, other, cfg, hr - own_room) {
                return Some(route);
            }
        }
    }
    let mut cands: Vec<(usize, f64)> = eps
        .iter()
        .enumerate()
        .filter(|(_, e)| usable(e, g, cfg) && !e.settling)
        .map(|(i, e)| (i, room(e, other[i], cfg) * e.health * latency_factor(e, cfg)))
        .collect();
    if cands.is_empty() {
        return None;
    }
    if cands.iter().all(|c| c.1 <= 0.0) {
        // Everything is full: spread by health-weighted capacity.
        for c in &mut cands {
            c.1 = eps[c.0].capacity_hs as f64 * eps[c.0].health * latency_factor(&eps[c.0], cfg);
        }
    }
    cands.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    cands.truncate(ROUTE_TARGETS_MAX);
    let bp = to_basis_points(&cands.iter().map(|c| c.1).collect::<Vec<_>>());
    let mut route: Vec<(usize, u16)> = cands.iter().zip(bp).filter(|(_, w)| *w > 0).map(|(c, w)| (c.0, w)).collect();
    route.sort_unstable();
    Some(route)
}

/// A route that fills the owner's endpoints to their room and borrows `deficit` H/s from
/// offered endpoints of other pools (cheapest fee, then healthiest, then by index), or `None`
/// when the offers cannot cover it.
fn borrowed(
    g: &PlanGroup,
    eps: &[PlanEndpoint],
    other: &[f64],
    cfg: &PlannerConfig,
    deficit: f64,
) -> Option<Vec<(usize, u16)>> {
    let mut shares: Vec<(usize, f64)> = eps
        .iter()
        .enumerate()
        .filter(|(_, e)| e.owner == g.owner && usable(e, g, cfg) && !e.settling)
        .map(|(i, e)| (i, room(e, other[i], cfg)))
        .filter(|(_, r)| *r > 0.0)
        .collect();
    let mut offered: Vec<(usize, &PlanOffer)> = eps
        .iter()
        .enumerate()
        .filter(|(_, e)| e.owner != g.owner && serviceable(e, cfg) && !e.settling)
        .filter_map(|(i, e)| Some((i, e.offer.as_ref()?)))
        .collect();
    offered.sort_by(|a, b| {
        a.1.fee_bp.cmp(&b.1.fee_bp).then(eps[b.0].health.total_cmp(&eps[a.0].health)).then(a.0.cmp(&b.0))
    });
    let mut left = deficit;
    for (i, o) in offered.into_iter().take(ROUTE_TARGETS_MAX.saturating_sub(shares.len())) {
        if left <= 0.0 {
            break;
        }
        // One loan per borrowing pool and endpoint: an endpoint another of the pool's groups
        // already borrows is left to it (agents log in once per endpoint, so the lender could
        // not tell two loans' work apart).
        if other[i] - eps[i].base_load_hs > 0.5 {
            continue;
        }
        let offer_room = (o.max_hs - o.lent_hs).max(0.0) * (1.0 - OFFER_MARGIN);
        let take = offer_room.min(room(&eps[i], other[i], cfg)).min(left);
        if take > 0.0 {
            shares.push((i, take));
            left -= take;
        }
    }
    if left > 0.0 || shares.is_empty() {
        return None;
    }
    // Floor the borrowed shares' basis points (so they stay inside the offers) and give the
    // remainder to the owner's endpoints, or to the first borrowed one when there is none.
    let total: f64 = shares.iter().map(|s| s.1).sum();
    let mut route: Vec<(usize, u16)> =
        shares.iter().map(|&(i, s)| (i, ((s / total) * 10_000.0).floor() as u16)).filter(|(_, w)| *w > 0).collect();
    let sum: u32 = route.iter().map(|r| u32::from(r.1)).sum();
    let slot = route.iter().position(|(i, _)| eps[*i].owner == g.owner).unwrap_or(0);
    route.get_mut(slot)?.1 += (10_000 - sum) as u16;
    route.sort_unstable();
    Some(route)
}

/// Propose moves for this epoch.
#[must_use]
pub fn plan(groups: &[PlanGroup], eps: &[PlanEndpoint], cfg: &PlannerConfig, now_ms: u64) -> Vec<Move> {
    let mut load: Vec<f64> = eps.iter().map(|e| e.base_load_hs).collect();
    let add = |load: &mut Vec<f64>, g: &PlanGroup, route: &[(usize, u16)], sign: f64| {
        for &(e, w) in route {
            load[e] += sign * g.hashrate_hs as f64 * f64::from(w) / 10_000.0;
        }
    };
    for g in groups {
        add(&mut load, g, &g.route, 1.0);
    }
    // Worst-placed groups first; ties by index, so the order is deterministic.
    let mut order: Vec<(usize, f64)> = groups
        .iter()
        .enumerate()
        .map(|(i, g)| {
            let mut other = load.clone();
            add(&mut other, g, &g.route, -1.0);
            (i, route_cost(&g.route, g, eps, &other, cfg))
        })
        .collect();
    order.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));

    let mut moves = Vec::new();
    for (gi, _) in order {
        if moves.len() >= cfg.max_moves_per_epoch {
            break;
        }
        let g = &groups[gi];
        let mut other = load.clone();
        add(&mut other, g, &g.route, -1.0);
        let broken = g.route.is_empty() || g.route.iter().any(|&(e, _)| !serviceable(&eps[e], cfg));
        let dwelling = g.changed_at_ms.is_some_and(|t| now_ms.saturating_sub(t) < cfg.min_dwell_ms);
        if dwelling && !broken {
            continue;
        }
        let Some(new_route) = target(g, eps, &other, cfg) else { continue };
        if new_route == g.route {
            continue;
        }
        let old_cost = route_cost(&g.route, g, eps, &other, cfg);
        let new_cost = route_cost(&new_route, g, eps, &other, cfg);
        // A borrowing group whose own endpoints carry it again comes home whatever the gain.
        let abroad = |r: &[(usize, u16)]| r.iter().any(|&(e, _)| eps[e].owner != g.owner);
        let home = cfg.borrow && abroad(&g.route) && !abroad(&new_route);
        let gain_bp = if broken || home || old_cost <= 0.0 {
            10_000
        } else {
            (((old_cost - new_cost) / old_cost) * 10_000.0).clamp(0.0, 10_000.0) as u32
        };
        if broken || home || gain_bp >= cfg.min_gain_bp {
            add(&mut load, g, &g.route, -1.0);
            add(&mut load, g, &new_route, 1.0);
            moves.push(Move { group: gi, route: new_route, gain_bp });
        }
    }
    moves
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(id: &str, owner: &str) -> PlanEndpoint {
        PlanEndpoint {
            id: id.into(),
            owner: owner.into(),
            capacity_hs: 1_000,
            health: 0.9,
            drained: false,
            ejected: false,
            ramp: 1.0,
            latency_ms: 20.0,
            base_load_hs: 0.0,
            offer: None,
            settling: false,
        }
    }

    /// A committed route that borrows another pool's healthy endpoint stays for the dwell (the
    /// planner would not choose it, but it is not broken); an unhealthy one is replaced at once.
    #[test]
    fn a_borrowed_route_is_kept_for_the_dwell_unless_broken() {
        let mut eps = vec![ep("a/ep-1", "a"), ep("b/ep-1", "b")];
        let g = PlanGroup {
            id: "a/g-1".into(),
            owner: "a".into(),
            hashrate_hs: 100,
            route: vec![(1, 10_000)],
            changed_at_ms: Some(1_000),
        };
        let cfg = PlannerConfig { min_dwell_ms: 10_000, allow_cross_pool: false, ..PlannerConfig::default() };
        eps[1].health = 0.5; // worse than home, still above the floor
        assert!(plan(std::slice::from_ref(&g), &eps, &cfg, 5_000).is_empty(), "dwelling on a borrowed route");
        assert_eq!(plan(std::slice::from_ref(&g), &eps, &cfg, 20_000).len(), 1, "home after the dwell, for the gain");
        eps[1].health = 0.1;
        assert_eq!(plan(std::slice::from_ref(&g), &eps, &cfg, 5_000).len(), 1, "an unhealthy lender breaks it");
    }
}
