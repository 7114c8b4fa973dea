//! The source article's strategies: the naive score, dynamic weights, and EWMA tiers.

use super::{up, Balancer, EndpointView, SmoothWeighted};
use crate::forecast::Tier;
use crate::rng::Rng;

/// `hashrate × (1 − latency_ms/100)`, highest wins (ties: lowest index).
#[derive(Debug, Default, Clone)]
pub struct ArticleScore;

impl Balancer for ArticleScore {
    fn name(&self) -> &'static str {
        "article_score"
    }
    fn pick(&mut self, eps: &[EndpointView], _now: u64, _rng: &mut Rng) -> Option<usize> {
        let score = |e: &EndpointView| e.hashrate * (1.0 - e.latency_ms / 100.0);
        up(eps).fold(None, |best: Option<usize>, i| match best {
            Some(b) if score(&eps[b]) >= score(&eps[i]) => Some(b),
            _ => Some(i),
        })
    }
}

/// The article's dynamic weights: capacity × health score × cold-start ramp, spread with
/// smooth weighted round robin.
#[derive(Debug, Default, Clone)]
pub struct ArticleDynamicWeights {
    inner: SmoothWeighted,
}

impl Balancer for ArticleDynamicWeights {
    fn name(&self) -> &'static str {
        "article_dynamic_weights"
    }
    fn pick(&mut self, eps: &[EndpointView], _now: u64, _rng: &mut Rng) -> Option<usize> {
        let w: Vec<f64> = eps.iter().map(|e| if e.up { e.capacity * e.health * e.ramp } else { 0.0 }).collect();
        self.inner.pick_weighted(&w)
    }
}

/// The article's EWMA tiers: weight 5/3/1 by forecast throughput, and a per-tier cool-down
/// (0/10/50 ms) before an endpoint is picked again (ignored when every endpoint is cooling).
#[derive(Debug, Default, Clone)]
pub struct EwmaTiers {
    inner: SmoothWeighted,
    cooling_until: Vec<u64>,
}

impl Balancer for EwmaTiers {
    fn name(&self) -> &'static str {
        "article_ewma_tiers"
    }
    fn pick(&mut self, eps: &[EndpointView], now: u64, _rng: &mut Rng) -> Option<usize> {
        self.cooling_until.resize(eps.len(), 0);
        let weight = |i: usize, respect_cooling: bool| {
            let e = &eps[i];
            if !e.up || (respect_cooling && self.cooling_until[i] > now) {
                0.0
            } else {
                f64::from(Tier::of(e.forecast_qps).weight())
            }
        };
        let mut w: Vec<f64> = (0..eps.len()).map(|i| weight(i, true)).collect();
        if w.iter().all(|x| *x <= 0.0) {
            w = (0..eps.len()).map(|i| weight(i, false)).collect();
        }
        let i = self.inner.pick_weighted(&w)?;
        self.cooling_until[i] = now + Tier::of(eps[i].forecast_qps).cooldown_ms();
        Some(i)
    }
}
