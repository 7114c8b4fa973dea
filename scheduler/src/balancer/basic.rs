//! Round robin, least connections, static weights (weighted random) and smooth weighted
//! round robin (nginx), the last two over the configured capacities.

use super::{up, Balancer, EndpointView};
use crate::rng::Rng;

/// Plain round robin over endpoints that are up; blind to load.
#[derive(Debug, Default, Clone)]
pub struct RoundRobin {
    next: usize,
}

impl Balancer for RoundRobin {
    fn name(&self) -> &'static str {
        "round_robin"
    }
    fn pick(&mut self, eps: &[EndpointView], _now: u64, _rng: &mut Rng) -> Option<usize> {
        for k in 0..eps.len() {
            let i = (self.next + k) % eps.len();
            if eps[i].up {
                self.next = i + 1;
                return Some(i);
            }
        }
        None
    }
}

/// Fewest requests in flight; ties go to the lowest index.
#[derive(Debug, Default, Clone)]
pub struct LeastConnections;

impl Balancer for LeastConnections {
    fn name(&self) -> &'static str {
        "least_connections"
    }
    fn pick(&mut self, eps: &[EndpointView], _now: u64, _rng: &mut Rng) -> Option<usize> {
        up(eps).min_by_key(|&i| (eps[i].pending, i))
    }
}

/// nginx's smooth weighted round robin: deterministic, evenly interleaved weighted splits.
#[derive(Debug, Default, Clone)]
pub struct SmoothWeighted {
    current: Vec<f64>,
}

impl SmoothWeighted {
    /// Pick by the given weights (non-positive weights are never picked).
    pub fn pick_weighted(&mut self, weights: &[f64]) -> Option<usize> {
        self.current.resize(weights.len(), 0.0);
        let total: f64 = weights.iter().filter(|w| **w > 0.0).sum();
        if total <= 0.0 {
            return None;
        }
        let mut best: Option<usize> = None;
        for (i, w) in weights.iter().enumerate() {
            if *w > 0.0 {
                self.current[i] += w;
                if best.is_none_or(|b| self.current[i] > self.current[b]) {
                    best = Some(i);
                }
            }
        }
        let b = best?;
        self.current[b] -= total;
        Some(b)
    }
}

impl Balancer for SmoothWeighted {
    fn name(&self) -> &'static str {
        "smooth_weighted_rr"
    }
    /// Weights are the configured capacities: a deterministic, evenly interleaved split that is
    /// blind to health and load.
    fn pick(&mut self, eps: &[EndpointView], _now: u64, _rng: &mut Rng) -> Option<usize> {
        let w: Vec<f64> = eps.iter().map(|e| if e.up { e.capacity } else { 0.0 }).collect();
        self.pick_weighted(&w)
    }
}

/// Fixed weights from configured capacity, sampled at random per request; blind to health and
/// load (the classic weighted balancer, without the smooth interleaving).
#[derive(Debug, Default, Clone)]
pub struct StaticWeights;

impl Balancer for StaticWeights {
    fn name(&self) -> &'static str {
        "static_weights"
    }
    fn pick(&mut self, eps: &[EndpointView], _now: u64, rng: &mut Rng) -> Option<usize> {
        let up = || eps.iter().enumerate().filter(|(_, e)| e.up && e.capacity > 0.0);
        let total: f64 = up().map(|(_, e)| e.capacity).sum();
        if total <= 0.0 {
            return None;
        }
        let mut x = rng.unit() * total;
        let mut last = None;
        for (i, e) in up() {
            last = Some(i);
            if x < e.capacity {
                return Some(i);
            }
            x -= e.capacity;
        }
        last
    }
}
