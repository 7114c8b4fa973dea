//! Properties of the scheduling core: exact weights, monotone health, bounded ramps, balancers
//! that never pick a down endpoint, and a planner that never targets an unusable endpoint and
//! does not flap under constant input.

use hashmesh_protocol::rules::health_bp;
use hashmesh_scheduler::balancer::{
    ArticleDynamicWeights, ArticleScore, Balancer, EndpointView, EwmaTiers, LeastConnections, PeakEwmaP2c, RoundRobin,
    SmoothWeighted, StaticWeights,
};
use hashmesh_scheduler::health::{health, HealthWeights};
use hashmesh_scheduler::phi::{Backoff, PhiAccrual};
use hashmesh_scheduler::planner::{plan, PlanEndpoint, PlanGroup, PlanOffer, PlannerConfig};
use hashmesh_scheduler::ramp::Ramp;
use hashmesh_scheduler::rng::Rng;
use hashmesh_scheduler::telemetry::Telemetry;
use hashmesh_scheduler::weights::to_basis_points;
use proptest::prelude::*;

fn all_balancers() -> Vec<Box<dyn Balancer>> {
    vec![
        Box::new(RoundRobin::default()),
        Box::new(LeastConnections),
        Box::new(StaticWeights),
        Box::new(SmoothWeighted::default()),
        Box::new(ArticleScore),
        Box::new(ArticleDynamicWeights::default()),
        Box::new(EwmaTiers::default()),
        Box::new(PeakEwmaP2c::default()),
    ]
}

fn view() -> impl Strategy<Value = EndpointView> {
    (any::<bool>(), 1.0..100.0f64, 0.0..1.0f64, 0u32..50, 1.0..400.0f64, 0.0..2000.0f64).prop_map(
        |(up, capacity, health, pending, latency_ms, forecast_qps)| EndpointView {
            up,
            capacity,
            health,
            pending,
            latency_ms,
            hashrate: capacity,
            forecast_qps,
            ramp: 1.0,
        },
    )
}

fn endpoint() -> impl Strategy<Value = PlanEndpoint> {
    (
        (0usize..2, 1u64..1000, 0.0..1.0f64, any::<bool>(), any::<bool>(), 0.0..1.0f64, 0.0..500.0f64),
        proptest::option::of((0u64..600, 0u32..2000, 0u64..200)),
    )
        .prop_map(|((owner, cap, health, drained, ejected, ramp, latency_ms), offer)| PlanEndpoint {
            base_load_hs: 0.0,
            id: String::new(),
            owner: format!("pool-{owner}"),
            capacity_hs: cap * 1_000_000,
            health,
            drained: drained && cap % 3 == 0,
            ejected: ejected && cap % 5 == 0,
            ramp,
            latency_ms,
            offer: offer.map(|(max, fee_bp, lent)| PlanOffer {
                max_hs: (max * 1_000_000) as f64,
                fee_bp,
                lent_hs: (lent * 1_000_000) as f64,
            }),
            settling: false,
        })
}

fn groups(n_eps: usize) -> impl Strategy<Value = Vec<PlanGroup>> {
    proptest::collection::vec((0usize..2, 1u64..400, 0usize..64), 1..8).prop_map(move |gs| {
        gs.into_iter()
            .enumerate()
            .map(|(i, (owner, hr, e))| PlanGroup {
                id: format!("g-{i}"),
                owner: format!("pool-{owner}"),
                hashrate_hs: hr * 1_000_000,
                route: vec![(e % n_eps, 10_000)],
                changed_at_ms: None,
            })
            .collect()
    })
}

fn check_route(route: &[(usize, u16)], eps: &[PlanEndpoint], cfg: &PlannerConfig) -> Result<(), TestCaseError> {
    let sum: u32 = route.iter().map(|r| u32::from(r.1)).sum();
    prop_assert_eq!(sum, 10_000);
    for &(e, w) in route {
        prop_assert!(w > 0);
        let ep = &eps[e];
        prop_assert!(!ep.drained && !ep.ejected && ep.health >= cfg.health_floor, "unusable target {:?}", ep);
    }
    Ok(())
}

proptest! {
    #[test]
    fn basis_points_always_sum_to_ten_thousand(shares in proptest::collection::vec(0.0..1e9f64, 1..40)) {
        let bp = to_basis_points(&shares);
        prop_assert_eq!(bp.len(), shares.len());
        prop_assert_eq!(bp.iter().map(|x| u32::from(*x)).sum::<u32>(), 10_000);
    }

    #[test]
    fn health_is_monotone_in_each_input(cpu in 0.0..1.0f64, mem in 0.0..1.0f64, lat in 0u32..400, err in 0.0..1.0f64,
                                        d in 0.0..0.5f64, dl in 0u32..100) {
        let w = HealthWeights::default();
        let base = Telemetry { cpu, memory: mem, latency_ms_p50: lat, error_rate: err, ..Telemetry::default() };
        let h = health(&base, &w);
        prop_assert!((0.0..=1.0).contains(&h));
        let worse = [
            Telemetry { cpu: cpu + d, ..base },
            Telemetry { memory: mem + d, ..base },
            Telemetry { latency_ms_p50: lat + dl, ..base },
            Telemetry { error_rate: err + d, ..base },
        ];
        for t in worse {
            prop_assert!(health(&t, &w) <= h + 1e-12, "{:?} scored above {}", t, h);
        }
        let (c, m, e) = ((cpu * 1e4) as u32, (mem * 1e4) as u32, (err * 1e4) as u32);
        let hb = health_bp(c, m, lat, e);
        prop_assert!(hb <= 10_000);
        let di = (d * 1e4) as u32;
        prop_assert!(health_bp(c + di, m, lat, e) <= hb);
        prop_assert!(health_bp(c, m + di, lat, e) <= hb);
        prop_assert!(health_bp(c, m, lat + dl, e) <= hb);
        prop_assert!(health_bp(c, m, lat, e + di) <= hb);
    }

    #[test]
    fn float_and_integer_health_agree_within_one_bp(c in 0u32..=10_000, m in 0u32..=10_000, lat in 0u32..1000,
                                                     e in 0u32..=10_000) {
        let t = Telemetry {
            cpu: f64::from(c) / 1e4,
            memory: f64::from(m) / 1e4,
            latency_ms_p50: lat,
            error_rate: f64::from(e) / 1e4,
            ..Telemetry::default()
        };
        let float_bp = health(&t, &HealthWeights::default()) * 1e4;
        let int_bp = f64::from(health_bp(c, m, lat, e));
        prop_assert!((float_bp - int_bp).abs() <= 1.0, "float {} vs integer {}", float_bp, int_bp);
    }

    #[test]
    fn ramps_never_exceed_full_weight_and_never_shrink_with_uptime(t in 0u64..2_000_000, dt in 0u64..600_000,
                                                                    cpu in 0.0..1.0f64, aggr in 0.1..10.0f64) {
        for r in [Ramp::None, Ramp::article(), Ramp::envoy(300_000),
                  Ramp::EnvoySlowStart { window_ms: 300_000, aggression: aggr, min_weight: 0.1 }] {
            let a = r.factor(t, cpu);
            let b = r.factor(t + dt, cpu);
            prop_assert!((0.0..=1.0).contains(&a) && (0.0..=1.0).contains(&b));
            prop_assert!(b + 1e-12 >= a, "{r:?}: {a} then {b}");
        }
    }

    #[test]
    fn balancers_never_pick_a_down_endpoint(eps in proptest::collection::vec(view(), 1..12), seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        for mut b in all_balancers() {
            for now in 0..50u64 {
                match b.pick(&eps, now * 7, &mut rng) {
                    Some(i) => {
                        prop_assert!(eps[i].up, "{} picked a down endpoint", b.name());
                        b.observe(i, eps[i].latency_ms, now * 7);
                    }
                    // Weighted strategies may find every up endpoint at weight 0 (health 0).
                    None => prop_assert!(
                        !eps.iter().any(|e| e.up && e.health > 0.0) || b.name().starts_with("article_dynamic"),
                        "{} picked nothing although endpoints are up", b.name()
                    ),
                }
            }
        }
    }

    #[test]
    fn planner_targets_only_usable_endpoints_with_exact_weights(
        eps in proptest::collection::vec(endpoint(), 1..20),
        gs in groups(64), cross in any::<bool>()
    ) {
        let cfg = PlannerConfig { allow_cross_pool: cross, min_gain_bp: 0, ..PlannerConfig::default() };
        let mut gs = gs;
        for g in &mut gs {
            g.route[0].0 %= eps.len();
        }
        let moves = plan(&gs, &eps, &cfg, 1_000_000);
        prop_assert!(moves.len() <= cfg.max_moves_per_epoch);
        for m in &moves {
            check_route(&m.route, &eps, &cfg)?;
            prop_assert!(m.route.len() <= hashmesh_scheduler::planner::ROUTE_TARGETS_MAX);
            if !cross {
                for &(e, _) in &m.route {
                    prop_assert_eq!(&eps[e].owner, &gs[m.group].owner);
                }
            }
        }
    }

    /// Borrowing: a borrowed share is only on another pool's serviceable endpoint with an open
    /// offer, within that offer's remaining capacity (counting the planner's other groups
    /// there), and only when the owner's own room could not carry the group.
    #[test]
    fn borrowed_shares_stay_inside_the_offers(
        eps in proptest::collection::vec(endpoint(), 1..20),
        gs in groups(64)
    ) {
        let cfg = PlannerConfig { borrow: true, min_gain_bp: 0, ..PlannerConfig::default() };
        let mut gs = gs;
        for g in &mut gs {
            g.route[0].0 %= eps.len();
            g.changed_at_ms = None;
        }
        let moves = plan(&gs, &eps, &cfg, 1_000_000);
        // Apply the moves to see each offer's final use by the planner's pool(s).
        let mut routes: Vec<Vec<(usize, u16)>> = gs.iter().map(|g| g.route.clone()).collect();
        for m in &moves {
            check_route(&m.route, &eps, &cfg)?;
            routes[m.group] = m.route.clone();
        }
        for m in &moves {
            let g = &gs[m.group];
            for &(e, _) in m.route.iter().filter(|(e, _)| eps[*e].owner != g.owner) {
                let o = eps[e].offer.expect("borrowed only where offered");
                let used: f64 = gs
                    .iter()
                    .zip(&routes)
                    .filter(|(h, _)| h.owner == g.owner)
                    .flat_map(|(h, r)| r.iter().filter(|(x, _)| *x == e).map(move |(_, w)| h.hashrate_hs as f64 * f64::from(*w) / 10_000.0))
                    .sum();
                // Groups that did not move may already sit there beyond the offer (random
                // starting routes); the planner cannot be held to those.
                let unmoved_there = gs.iter().enumerate().any(|(i, h)| {
                    h.owner == g.owner && !moves.iter().any(|n| n.group == i) && h.route.iter().any(|(x, _)| *x == e)
                });
                prop_assert!(unmoved_there || o.lent_hs + used <= o.max_hs * 1.0001,
                    "endpoint {e}: lent {} + ours {used} over the offer {}", o.lent_hs, o.max_hs);
            }
        }
    }

    #[test]
    fn planner_does_not_flap_under_constant_input(eps in proptest::collection::vec(endpoint(), 2..12), gs in groups(64)) {
        let cfg = PlannerConfig { allow_cross_pool: true, ..PlannerConfig::default() };
        let mut gs = gs;
        for g in &mut gs {
            g.route[0].0 %= eps.len();
        }
        let mut now = 0u64;
        let mut late_moves = 0;
        for epoch in 0..30 {
            now += cfg.min_dwell_ms;
            let moves = plan(&gs, &eps, &cfg, now);
            if epoch >= 20 {
                late_moves += moves.len();
            }
            for m in moves {
                gs[m.group].route = m.route;
                gs[m.group].changed_at_ms = Some(now);
            }
        }
        prop_assert_eq!(late_moves, 0, "routing still moving after 20 epochs of constant input");
    }
}

#[test]
fn smooth_weighted_round_robin_interleaves_exactly() {
    let mut s = SmoothWeighted::default();
    let picks: Vec<usize> = (0..7).map(|_| s.pick_weighted(&[5.0, 1.0, 1.0]).unwrap()).collect();
    assert_eq!(picks, vec![0, 0, 1, 0, 2, 0, 0], "nginx's documented sequence for 5/1/1");
}

#[test]
fn static_weights_follow_capacity() {
    let mk = |capacity| EndpointView {
        up: true,
        capacity,
        health: 1.0,
        pending: 0,
        latency_ms: 10.0,
        hashrate: 1.0,
        forecast_qps: 0.0,
        ramp: 1.0,
    };
    let eps = vec![mk(3.0), mk(1.0)];
    let mut rng = Rng::new(11);
    let first = (0..10_000).filter(|_| StaticWeights.pick(&eps, 0, &mut rng) == Some(0)).count();
    assert!((7_200..7_800).contains(&first), "3:1 weights gave {first} of 10000");
}

#[test]
fn peak_ewma_p2c_avoids_a_slow_endpoint() {
    let eps = vec![
        EndpointView {
            up: true,
            capacity: 1.0,
            health: 1.0,
            pending: 0,
            latency_ms: 10.0,
            hashrate: 1.0,
            forecast_qps: 0.0,
            ramp: 1.0
        };
        4
    ];
    let mut b = PeakEwmaP2c::default();
    let mut rng = Rng::new(7);
    for i in 0..4 {
        b.observe(i, if i == 2 { 500.0 } else { 10.0 }, 0);
    }
    let slow = (0..1000).filter(|_| b.pick(&eps, 1, &mut rng) == Some(2)).count();
    assert_eq!(slow, 0, "a 50x slower endpoint loses every pairwise comparison");
}

#[test]
fn phi_rises_with_silence_and_backoff_is_bounded_and_seeded() {
    let mut d = PhiAccrual::new(8.0, 100.0);
    for k in 0..20 {
        d.heartbeat(k * 5_000);
    }
    let last = 19 * 5_000;
    assert!(d.phi(last + 5_000) < 1.0, "on schedule: {}", d.phi(last + 5_000));
    assert!(!d.suspected(last + 5_500));
    assert!(d.phi(last + 6_000) < d.phi(last + 8_000));
    assert!(d.suspected(last + 15_000), "three missed beats: {}", d.phi(last + 15_000));
    // The deadline is the one crossing of the threshold.
    let deadline = d.deadline_ms().expect("two beats seen");
    assert!(!d.suspected(deadline as u64 - 1) && d.suspected(deadline as u64 + 1), "deadline {deadline}");
    // A peer that beats once and dies: never suspected without a first estimate, soon with one.
    let mut once = PhiAccrual::new(8.0, 100.0);
    once.heartbeat(0);
    assert!(!once.suspected(3_600_000));
    let mut once = PhiAccrual::new(8.0, 100.0).with_first_estimate(1000.0);
    once.heartbeat(0);
    assert!(!once.suspected(1000) && once.suspected(3000), "phi at 3 s: {}", once.phi(3000));
    // An acceptable pause moves the deadline by exactly that much.
    let mut paused = PhiAccrual::new(8.0, 100.0).with_acceptable_pause(2000.0);
    for k in 0..20 {
        paused.heartbeat(k * 5_000);
    }
    assert!((paused.deadline_ms().unwrap() - deadline - 2000.0).abs() < 1e-6);
    let b = Backoff { base_ms: 100, cap_ms: 10_000 };
    let (mut r1, mut r2) = (Rng::new(1), Rng::new(1));
    for attempt in 0..20 {
        let x = b.delay_ms(attempt, &mut r1);
        assert_eq!(x, b.delay_ms(attempt, &mut r2));
        assert!(x < 10_000.min(100u64 << attempt.min(32)).max(1));
    }
}

fn ep(id: &str, owner: &str, health: f64) -> PlanEndpoint {
    PlanEndpoint {
        base_load_hs: 0.0,
        id: id.into(),
        owner: owner.into(),
        capacity_hs: 1_000_000,
        health,
        drained: false,
        ejected: false,
        ramp: 1.0,
        latency_ms: 40.0,
        offer: None,
        settling: false,
    }
}

#[test]
fn planner_moves_groups_off_a_degraded_endpoint_and_respects_hysteresis() {
    let mut eps = vec![ep("a/ep-1", "a", 1.0), ep("a/ep-2", "a", 1.0), ep("a/ep-3", "a", 1.0)];
    let group = |i: usize, e: usize| PlanGroup {
        id: format!("a/g-{i}"),
        owner: "a".into(),
        hashrate_hs: 200_000,
        route: vec![(e, 10_000)],
        changed_at_ms: Some(0),
    };
    let mut gs: Vec<PlanGroup> = (0..4).map(|i| group(i, 0)).collect();
    let cfg = PlannerConfig { max_moves_per_epoch: 2, ..PlannerConfig::default() };
    // Within the dwell time nothing moves, even though ep-1 carries 80 % and the others nothing.
    assert!(plan(&gs, &eps, &cfg, 1_000).is_empty());
    // After it, at most two groups move per epoch, each spreading onto the idle endpoints.
    let moves = plan(&gs, &eps, &cfg, cfg.min_dwell_ms);
    assert_eq!(moves.len(), 2);
    assert!(moves.iter().all(|m| m.gain_bp >= cfg.min_gain_bp));
    // A drained target forces a move at once, dwell or not.
    eps[0].drained = true;
    gs = (0..4).map(|i| group(i, 0)).collect();
    let moves = plan(&gs, &eps, &cfg, 1_000);
    assert_eq!(moves.len(), 2);
    for m in &moves {
        assert!(m.route.iter().all(|&(e, _)| e != 0));
        assert_eq!(m.gain_bp, 10_000);
    }
    // A degraded endpoint (below the health floor) is left, and never chosen.
    eps[0].drained = false;
    eps[1].health = 0.1;
    let gs: Vec<PlanGroup> = vec![group(0, 1)];
    let moves = plan(&gs, &eps, &cfg, 1_000);
    assert_eq!(moves.len(), 1);
    assert!(moves[0].route.iter().all(|&(e, _)| e != 1), "{:?}", moves[0].route);
}
