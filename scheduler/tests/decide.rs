//! `decide` table tests: committed state and measurements in, signed-to-be bodies out — no RPC,
//! no clock.

use std::collections::BTreeMap;

use hashmesh_protocol::{Body, DirectiveId, EndpointId, Measurement, PoolId, RouteTarget, TelemetryReport};
use hashmesh_scheduler::decide::{
    decide, DecideConfig, DecideMemory, Decision, EpochView, ViewEndpoint, ViewGroup, ViewOffer, ViewPending,
};

const ME: PoolId = PoolId([1; 32]);
const OTHER: PoolId = PoolId([2; 32]);
const CFG: DecideConfig =
    DecideConfig { dwell_ms_min: 30_000, gain_bp_min: 500, moves_per_epoch_max: 4, health_floor_bp: 3000 };
const TH: u64 = 1_000_000_000_000;

fn ep(id: &str, owner: PoolId, load_hs: u128, health_bp: Option<u32>) -> ViewEndpoint {
    ViewEndpoint {
        id: id.parse().unwrap(),
        owner,
        capacity_hs: 100 * TH,
        drained: false,
        load_hs,
        health_bp,
        latency_ms_p50: health_bp.map(|_| 20),
        observers: Vec::new(),
    }
}

fn route(targets: &[(&str, u16)]) -> Vec<RouteTarget> {
    targets.iter().map(|(e, w)| RouteTarget { endpoint: e.parse().unwrap(), weight_bp: *w }).collect()
}

/// Pool `ME` with two endpoints and one 40 TH/s group split 50/50 over them since `d1`.
fn view() -> EpochView {
    EpochView {
        height: 10,
        health_floor_bp: 3000,
        max_utilization_bp: 9000,
        endpoints: vec![
            ep("pool-a/ep-1", ME, 20 * u128::from(TH), Some(9000)),
            ep("pool-a/ep-2", ME, 20 * u128::from(TH), Some(9000)),
            ep("pool-b/ep-1", OTHER, 0, Some(9000)),
        ],
        groups: vec![ViewGroup {
            id: "pool-a/g-1".parse().unwrap(),
            owner: ME,
            hashrate_hs: 40 * TH,
            route: Some((DirectiveId([9; 32]), route(&[("pool-a/ep-1", 5000), ("pool-a/ep-2", 5000)]))),
        }],
        pending: Vec::new(),
        offers: Vec::new(),
    }
}

fn report(cpu_bp: u16, latency_ms: u32, error_bp: u16) -> TelemetryReport {
    TelemetryReport {
        epoch: 1,
        hashrate_hs: 20 * TH,
        shares_accepted: 100,
        shares_rejected: 0,
        shares_stale: 0,
        latency_ms_p50: latency_ms,
        latency_ms_p99: latency_ms * 2,
        cpu_bp,
        memory_bp: 3000,
        error_bp,
        queue_len: 0,
        miners: 10,
    }
}

fn routes(d: &Decision) -> Vec<Vec<(String, u16)>> {
    d.bodies
        .iter()
        .filter_map(|b| match b {
            Body::Route { targets, .. } => {
                Some(targets.iter().map(|t| (t.endpoint.to_string(), t.weight_bp)).collect())
            }
            _ => None,
        })
        .collect()
}

fn votes(d: &Decision) -> Vec<bool> {
    d.bodies.iter().filter_map(|b| if let Body::Vote { approve, .. } = b { Some(*approve) } else { None }).collect()
}

fn measured(entries: &[(&str, TelemetryReport)]) -> BTreeMap<EndpointId, Measurement> {
    entries.iter().map(|(e, r)| (e.parse().unwrap(), Measurement::from(*r))).collect()
}

fn batch_endpoints(d: &Decision) -> Vec<Vec<String>> {
    d.bodies
        .iter()
        .filter_map(|b| match b {
            Body::ReportTelemetryBatch { entries, .. } => {
                Some(entries.iter().map(|e| e.endpoint.to_string()).collect())
            }
            _ => None,
        })
        .collect()
}

#[test]
fn a_steady_pool_reports_what_was_measured_and_keeps_its_route() {
    let m = measured(&[("pool-a/ep-1", report(3000, 20, 10)), ("pool-a/ep-2", report(3000, 20, 10))]);
    let d = decide(&ME, &view(), &m, &mut DecideMemory::default(), &CFG, 1_000_000);
    assert_eq!(d.reports, 2);
    assert_eq!(batch_endpoints(&d), vec![vec!["pool-a/ep-1".to_owned(), "pool-a/ep-2".to_owned()]], "one batch");
    assert_eq!(d.moves, 0, "{:?}", d.bodies);
    assert!(!d.busy);
}

#[test]
fn a_degraded_endpoint_loses_its_share_at_once() {
    let m = measured(&[("pool-a/ep-1", report(9900, 400, 9000)), ("pool-a/ep-2", report(8500, 20, 10))]);
    let mut memory = DecideMemory::default();
    // First sight of the route counts as just changed, but ep-1's measured health is below the
    // floor: the route is broken, so it moves at once.
    let d = decide(&ME, &view(), &m, &mut memory, &CFG, 1_000_000);
    assert_eq!(routes(&d), vec![vec![("pool-a/ep-2".to_owned(), 10_000)]]);
    assert!(d.busy, "average CPU above 80 %: the next epoch comes later");
}

#[test]
fn a_healthy_route_dwells_before_a_better_one_is_proposed() {
    // ep-2 is much slower than ep-1 but above the floor: a gain, not a broken route.
    let m = measured(&[("pool-a/ep-1", report(1000, 10, 0)), ("pool-a/ep-2", report(6000, 180, 500))]);
    let mut memory = DecideMemory::default();
    let first = decide(&ME, &view(), &m, &mut memory, &CFG, 1_000_000);
    assert_eq!(first.moves, 0, "the route was first seen now: dwell");
    let later = decide(&ME, &view(), &m, &mut memory, &CFG, 1_000_000 + CFG.dwell_ms_min);
    assert_eq!(later.moves, 1, "{:?}", later.bodies);
    let r = &routes(&later)[0];
    assert!(r[0].1 > 5000, "the healthier endpoint gets more: {r:?}");
}

#[test]
fn a_drained_target_is_routed_around() {
    let mut v = view();
    v.endpoints[1].drained = true;
    let d = decide(&ME, &v, &BTreeMap::new(), &mut DecideMemory::default(), &CFG, 1_000_000);
    assert_eq!(d.reports, 0, "nothing measured, nothing reported");
    assert_eq!(routes(&d), vec![vec![("pool-a/ep-1".to_owned(), 10_000)]]);
}

#[test]
fn a_stale_report_is_not_judged_and_nothing_unmeasured_is_reported() {
    let mut v = view();
    // No fresh committed telemetry for ep-2 (stale): the chain does not judge it, nor do we.
    v.endpoints[1].health_bp = None;
    v.endpoints[1].latency_ms_p50 = None;
    let m = measured(&[("pool-a/ep-1", report(3000, 20, 10)), ("pool-b/ep-1", report(0, 1, 0))]);
    let d = decide(&ME, &v, &m, &mut DecideMemory::default(), &CFG, 1_000_000);
    assert_eq!(d.reports, 1, "only our own measured endpoint: {:?}", d.bodies);
    assert_eq!(d.moves, 0);
}

#[test]
fn the_committed_integer_health_decides_at_the_floor() {
    // Committed health exactly at the floor is usable (the chain accepts >= floor) ...
    let mut v = view();
    v.endpoints[1].health_bp = Some(3000);
    let d = decide(&ME, &v, &BTreeMap::new(), &mut DecideMemory::default(), &CFG, 1_000_000);
    assert!(routes(&d).iter().all(|r| r.iter().any(|(e, _)| e == "pool-a/ep-2")), "{:?}", d.bodies);
    // ... one basis point below it is not.
    v.endpoints[1].health_bp = Some(2999);
    let d = decide(&ME, &v, &BTreeMap::new(), &mut DecideMemory::default(), &CFG, 1_000_000);
    assert_eq!(routes(&d), vec![vec![("pool-a/ep-1".to_owned(), 10_000)]]);
}

#[test]
fn a_pending_vote_is_approved_only_with_health_and_room() {
    let pending = |targets| ViewPending {
        id: DirectiveId([5; 32]),
        group: "pool-b/g-1".parse().unwrap(),
        targets,
        voters_required: vec![ME],
        approvals: Vec::new(),
    };
    let mut v = view();
    v.groups.push(ViewGroup { id: "pool-b/g-1".parse().unwrap(), owner: OTHER, hashrate_hs: 80 * TH, route: None });
    v.pending = vec![pending(route(&[("pool-a/ep-1", 5000), ("pool-b/ep-1", 5000)]))];
    let d = decide(&ME, &v, &BTreeMap::new(), &mut DecideMemory::default(), &CFG, 1_000_000);
    assert_eq!(votes(&d), vec![true], "40 TH/s on top of 20 fits under 90 of 100");
    v.pending = vec![pending(route(&[("pool-a/ep-1", 10_000)]))];
    let d = decide(&ME, &v, &BTreeMap::new(), &mut DecideMemory::default(), &CFG, 1_000_000);
    assert_eq!(votes(&d), vec![false], "80 on top of 20 exceeds 90 % of 100");
    v.pending = vec![pending(route(&[("pool-a/ep-1", 5000), ("pool-b/ep-1", 5000)]))];
    v.endpoints[0].health_bp = Some(1000);
    let d = decide(&ME, &v, &BTreeMap::new(), &mut DecideMemory::default(), &CFG, 1_000_000);
    assert_eq!(votes(&d), vec![false], "below the floor");
    v.pending[0].approvals = vec![ME];
    let d = decide(&ME, &v, &BTreeMap::new(), &mut DecideMemory::default(), &CFG, 1_000_000);
    assert!(votes(&d).is_empty(), "never votes twice");
}

#[test]
fn a_borrowed_endpoint_is_reported_as_observer_and_observers_judge_our_own() {
    let mut v = view();
    v.groups[0].route = Some((DirectiveId([9; 32]), route(&[("pool-a/ep-1", 5000), ("pool-b/ep-1", 5000)])));
    // Another pool measured ep-2 far slower than we are about to claim.
    let mut seen = Measurement::from(report(0, 400, 0));
    (seen.cpu_bp, seen.memory_bp) = (None, None);
    v.endpoints[1].observers = vec![seen];
    let m = measured(&[("pool-a/ep-2", report(0, 10, 0)), ("pool-b/ep-1", report(0, 30, 0))]);
    let d = decide(&ME, &v, &m, &mut DecideMemory::default(), &CFG, 1_000_000);
    assert_eq!(batch_endpoints(&d), vec![vec!["pool-a/ep-2".to_owned(), "pool-b/ep-1".to_owned()]]);
    // ep-2 is flagged by its observer: below the floor, so no route of ours goes there.
    assert!(routes(&d).iter().flatten().all(|(e, _)| e != "pool-a/ep-2"), "{:?}", d.bodies);
}

/// Both own endpoints dead: the group borrows the offered endpoint at once, within the offer
/// (cheapest fee first), without waiting for the dwell; when its endpoints are healthy again,
/// it comes home only after they have stayed healthy for a dwell.
#[test]
fn a_pool_that_cannot_carry_a_group_borrows_offered_capacity_and_comes_home_after_a_dwell() {
    let mut v = view();
    v.endpoints.push(ep("pool-c/ep-1", PoolId([3; 32]), 0, Some(9000)));
    v.offers = vec![
        ViewOffer { endpoint: "pool-b/ep-1".parse().unwrap(), max_hs: 60 * TH, fee_bp: 100, lent_hs: 0 },
        ViewOffer { endpoint: "pool-c/ep-1".parse().unwrap(), max_hs: 60 * TH, fee_bp: 300, lent_hs: 0 },
    ];
    let dead = measured(&[("pool-a/ep-1", report(1000, 10, 10_000)), ("pool-a/ep-2", report(1000, 10, 10_000))]);
    let mut memory = DecideMemory::default();
    let d = decide(&ME, &v, &dead, &mut memory, &CFG, 1_000_000);
    assert_eq!(routes(&d), vec![vec![("pool-b/ep-1".to_owned(), 10_000)]], "the cheaper offer, whole");
    // Committed (in one block: inside the offer); the endpoints stay dead a while.
    v.groups[0].route = Some((DirectiveId([10; 32]), route(&[("pool-b/ep-1", 10_000)])));
    v.endpoints[2].load_hs = 40 * u128::from(TH);
    v.offers[0].lent_hs = 40 * u128::from(TH);
    assert_eq!(decide(&ME, &v, &dead, &mut memory, &CFG, 1_010_000).moves, 0);
    // Healthy again at 1 020 000: not home before a dwell of health (and of the route).
    let ok = measured(&[("pool-a/ep-1", report(1000, 10, 0)), ("pool-a/ep-2", report(1000, 10, 0))]);
    for t in [1_020_000, 1_040_000] {
        assert_eq!(decide(&ME, &v, &ok, &mut memory, &CFG, t).moves, 0, "at {t}");
    }
    let home = decide(&ME, &v, &ok, &mut memory, &CFG, 1_020_000 + CFG.dwell_ms_min);
    assert_eq!(routes(&home), vec![vec![("pool-a/ep-1".to_owned(), 5000), ("pool-a/ep-2".to_owned(), 5000)]]);
}

/// An offer smaller than the deficit: the rest spreads over the other offers; nothing offered
/// at all: the group stays where it is (no route the chain would refuse).
#[test]
fn borrowing_stays_inside_the_offers() {
    let mut v = view();
    v.endpoints.push(ep("pool-c/ep-1", PoolId([3; 32]), 0, Some(9000)));
    v.offers = vec![
        ViewOffer { endpoint: "pool-b/ep-1".parse().unwrap(), max_hs: 10 * TH, fee_bp: 0, lent_hs: 0 },
        ViewOffer { endpoint: "pool-c/ep-1".parse().unwrap(), max_hs: 60 * TH, fee_bp: 0, lent_hs: 0 },
    ];
    let dead = measured(&[("pool-a/ep-1", report(1000, 10, 10_000)), ("pool-a/ep-2", report(1000, 10, 10_000))]);
    let d = decide(&ME, &v, &dead, &mut DecideMemory::default(), &CFG, 1_000_000);
    let r = &routes(&d)[0];
    assert_eq!(r.len(), 2, "{r:?}");
    let b = r.iter().find(|(e, _)| e == "pool-b/ep-1").unwrap().1;
    assert!(u64::from(b) * 40 * TH / 10_000 <= 10 * TH, "{b} bp of 40 TH/s fits in 10 TH/s");
    v.offers.clear();
    assert_eq!(decide(&ME, &v, &dead, &mut DecideMemory::default(), &CFG, 1_000_000).moves, 0);
}
