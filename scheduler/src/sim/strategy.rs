//! The strategies the simulator compares: every balancer of the crate, and the hashmesh
//! planner driven the way the node drives it (epochs, commit delay, hysteresis).

use crate::balancer::{
    ArticleDynamicWeights, ArticleScore, Balancer, EndpointView, EwmaTiers, LeastConnections, PeakEwmaP2c, RoundRobin,
    SmoothWeighted, StaticWeights,
};
use crate::forecast::Ewma;
use crate::planner::{plan, Move, PlanEndpoint, PlanGroup, PlannerConfig};
use crate::ramp::Ramp;
use crate::rng::Rng;

/// How a strategy picks endpoints.
pub(crate) enum Kind {
    /// Per share, by a balancer.
    Balancer(Box<dyn Balancer>),
    /// Per group, by committed planner routes; per share, smooth weighted RR inside the route.
    Planner(Box<PlannerDriver>),
}

/// One strategy under test.
pub struct Strategy {
    pub(crate) kind: Kind,
    /// Passive outlier ejection (Envoy: 5 consecutive failures) on top of polled health.
    pub(crate) outlier: bool,
    /// Cold-start ramp it applies to new endpoints.
    pub(crate) ramp: Ramp,
}

/// The strategies, in table order.
pub const NAMES: [&str; 9] = [
    "round_robin",
    "least_connections",
    "static_weights",
    "smooth_weighted_rr",
    "article_score",
    "article_dynamic_weights",
    "article_ewma_tiers",
    "p2c_peak_ewma",
    "hashmesh_planner",
];

/// Which strategies are the source article's (they must be beaten).
#[must_use]
pub fn is_article(name: &str) -> bool {
    matches!(name, "round_robin" | "article_score" | "article_dynamic_weights" | "article_ewma_tiers")
}

impl Strategy {
    /// The strategy called `name` (one of [`NAMES`]).
    #[must_use]
    pub fn named(name: &str) -> Option<Self> {
        let b = |x: Box<dyn Balancer>, outlier: bool, ramp: Ramp| Strategy { kind: Kind::Balancer(x), outlier, ramp };
        Some(match name {
            "round_robin" => b(Box::<RoundRobin>::default(), false, Ramp::None),
            "least_connections" => b(Box::new(LeastConnections), false, Ramp::None),
            "static_weights" => b(Box::new(StaticWeights), false, Ramp::None),
            "smooth_weighted_rr" => b(Box::<SmoothWeighted>::default(), false, Ramp::None),
            "article_score" => b(Box::new(ArticleScore), false, Ramp::None),
            "article_dynamic_weights" => b(Box::<ArticleDynamicWeights>::default(), false, Ramp::article()),
            "article_ewma_tiers" => b(Box::<EwmaTiers>::default(), false, Ramp::None),
            "p2c_peak_ewma" => b(Box::<PeakEwmaP2c>::default(), true, Ramp::envoy(60_000)),
            "hashmesh_planner" => Strategy {
                // The node's settings (see `node/src/live`), across pools.
                kind: Kind::Planner(Box::new(PlannerDriver::new(PlannerConfig {
                    min_dwell_ms: 30_000,
                    allow_cross_pool: true,
                    ..PlannerConfig::default()
                }))),
                outlier: true,
                ramp: Ramp::envoy(60_000),
            },
            _ => return None,
        })
    }

    /// Its name.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match &self.kind {
            Kind::Balancer(b) => b.name(),
            Kind::Planner(_) => "hashmesh_planner",
        }
    }
}

/// Capacities are in shares/s; the planner works in integer H/s, so scale by this.
const UNITS_PER_QPS: f64 = 1000.0;

/// Drives [`plan`] like the node does: every epoch (10 s, 20 s when the fleet averages over
/// 80 % utilisation) plan over the polled view; moves take effect one commit later.
pub(crate) struct PlannerDriver {
    cfg: PlannerConfig,
    /// Consensus delay between proposing a route and agents applying it, ms.
    pub(crate) commit_delay_ms: u64,
    epoch_ms: u64,
    high_load_epoch_ms: u64,
    groups: Vec<PlanGroup>,
    swrr: Vec<SmoothWeighted>,
    fallback: SmoothWeighted,
    group_rate: Vec<Ewma>,
    group_window: Vec<u64>,
    queued: Vec<(u64, Move)>,
    scratch: Vec<f64>,
}

impl PlannerDriver {
    fn new(cfg: PlannerConfig) -> Self {
        Self {
            cfg,
            commit_delay_ms: 1000,
            epoch_ms: 10_000,
            high_load_epoch_ms: 20_000,
            groups: Vec::new(),
            swrr: Vec::new(),
            fallback: SmoothWeighted::default(),
            group_rate: Vec::new(),
            group_window: Vec::new(),
            queued: Vec::new(),
            scratch: Vec::new(),
        }
    }

    fn plan_endpoints(views: &[EndpointView], joined: &[bool]) -> Vec<PlanEndpoint> {
        views
            .iter()
            .zip(joined)
            .enumerate()
            .map(|(i, (v, j))| PlanEndpoint {
                base_load_hs: 0.0,
                id: i.to_string(),
                owner: "pool".into(),
                capacity_hs: (v.capacity * UNITS_PER_QPS) as u64,
                health: v.health,
                drained: false,
                ejected: !j || !v.up,
                ramp: v.ramp,
                latency_ms: v.latency_ms,
                offer: None,
                settling: false,
            })
            .collect()
    }

    /// The genesis routes: every group placed at once on the initial view.
    pub(crate) fn start(&mut self, expected_qps: &[f64], views: &[EndpointView], joined: &[bool]) {
        self.groups = expected_qps
            .iter()
            .enumerate()
            .map(|(i, q)| PlanGroup {
                id: i.to_string(),
                owner: "pool".into(),
                hashrate_hs: (q * UNITS_PER_QPS) as u64,
                route: Vec::new(),
                changed_at_ms: None,
            })
            .collect();
        self.swrr = vec![SmoothWeighted::default(); self.groups.len()];
        self.group_rate = expected_qps
            .iter()
            .map(|q| {
                let mut e = Ewma::new(0.5);
                e.update(q * UNITS_PER_QPS);
                e
            })
            .collect();
        self.group_window = vec![0; self.groups.len()];
        let cfg = PlannerConfig { max_moves_per_epoch: self.groups.len(), ..self.cfg };
        for m in plan(&self.groups, &Self::plan_endpoints(views, joined), &cfg, 0) {
            self.groups[m.group].route = m.route;
            self.groups[m.group].changed_at_ms = Some(0);
        }
    }

    /// Epoch length for the current fleet utilisation (the article's adaptive polling).
    pub(crate) fn epoch_for(&self, mean_utilization: f64) -> u64 {
        if mean_utilization > 0.8 {
            self.high_load_epoch_ms
        } else {
            self.epoch_ms
        }
    }

    /// One epoch: update group rates from the last `elapsed_ms`, plan, queue the moves.
    pub(crate) fn epoch(&mut self, now_ms: u64, elapsed_ms: u64, views: &[EndpointView], joined: &[bool]) {
        for (g, n) in self.group_window.iter_mut().enumerate() {
            // The live estimator: accepted hashes over the window (each modelled share stands
            // for UNITS_PER_QPS hashes), smoothed across epochs.
            let hs = hashmesh_telemetry::hashrate_hs(u128::from(*n) * UNITS_PER_QPS as u128, elapsed_ms.max(1));
            self.group_rate[g].update(hs as f64);
            self.groups[g].hashrate_hs = self.group_rate[g].value() as u64;
            *n = 0;
        }
        let eps = Self::plan_endpoints(views, joined);
        for m in plan(&self.groups, &eps, &self.cfg, now_ms) {
            self.queued.push((now_ms + self.commit_delay_ms, m));
        }
    }

    /// Apply moves whose commit has happened by `now_ms`.
    pub(crate) fn apply_due(&mut self, now_ms: u64) {
        let mut i = 0;
        while i < self.queued.len() {
            if self.queued[i].0 <= now_ms {
                let (at, m) = self.queued.remove(i);
                self.groups[m.group].route = m.route;
                self.groups[m.group].changed_at_ms = Some(at);
            } else {
                i += 1;
            }
        }
    }

    /// The endpoint for a share of `group`: smooth weighted RR over the group's committed
    /// route, skipping endpoints the agent sees down (ejected); if none is left, any endpoint
    /// that is up.
    pub(crate) fn pick(&mut self, group: usize, views: &[EndpointView]) -> Option<usize> {
        self.group_window[group] += 1;
        self.scratch.clear();
        self.scratch.resize(views.len(), 0.0);
        for &(e, w) in &self.groups[group].route {
            if views[e].up {
                self.scratch[e] = f64::from(w);
            }
        }
        if let Some(i) = self.swrr[group].pick_weighted(&self.scratch) {
            return Some(i);
        }
        for (s, v) in self.scratch.iter_mut().zip(views) {
            *s = if v.up { v.capacity } else { 0.0 };
        }
        self.fallback.pick_weighted(&self.scratch)
    }
}

/// What a strategy does for one share.
pub(crate) fn pick(
    s: &mut Strategy,
    group: usize,
    views: &[EndpointView],
    now_ms: u64,
    rng: &mut Rng,
) -> Option<usize> {
    match &mut s.kind {
        Kind::Balancer(b) => b.pick(views, now_ms, rng),
        Kind::Planner(p) => p.pick(group, views),
    }
}
