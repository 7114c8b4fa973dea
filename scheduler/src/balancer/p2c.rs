//! Power of two choices with peak-EWMA cost (Finagle, Linkerd, Envoy): sample two endpoints,
//! take the one with the lower `cost × (pending + 1)`. The cost jumps to every new latency
//! peak and decays toward recent samples with time constant τ (10 s), so a stalled endpoint
//! cannot look fast for long.

use super::{Balancer, EndpointView};
use crate::rng::Rng;

/// Peak-EWMA power of two choices.
#[derive(Debug, Clone)]
pub struct PeakEwmaP2c {
    /// Decay time constant, ms.
    pub tau_ms: f64,
    /// Cost of an endpoint never measured, ms.
    pub initial_cost_ms: f64,
    cost: Vec<(f64, u64)>,
}

impl Default for PeakEwmaP2c {
    fn default() -> Self {
        Self { tau_ms: 10_000.0, initial_cost_ms: 50.0, cost: Vec::new() }
    }
}

impl PeakEwmaP2c {
    fn cost_of(&self, i: usize, e: &EndpointView) -> f64 {
        let c = self.cost.get(i).map_or(self.initial_cost_ms, |c| c.0);
        c * f64::from(e.pending + 1)
    }
}

impl Balancer for PeakEwmaP2c {
    fn name(&self) -> &'static str {
        "p2c_peak_ewma"
    }
    fn pick(&mut self, eps: &[EndpointView], _now: u64, rng: &mut Rng) -> Option<usize> {
        let up: Vec<usize> = eps.iter().enumerate().filter(|(_, e)| e.up).map(|(i, _)| i).collect();
        match up.len() {
            0 => None,
            1 => Some(up[0]),
            n => {
                let a = up[rng.below(n as u64) as usize];
                let mut b = up[rng.below(n as u64 - 1) as usize];
                if b == a {
                    b = up[n - 1];
                }
                Some(if self.cost_of(b, &eps[b]) < self.cost_of(a, &eps[a]) { b } else { a })
            }
        }
    }
    fn observe(&mut self, i: usize, latency_ms: f64, now_ms: u64) {
        if self.cost.len() <= i {
            self.cost.resize(i + 1, (self.initial_cost_ms, now_ms));
        }
        self.cost[i] = peak_ewma(self.cost[i], latency_ms, now_ms, self.tau_ms);
    }
}

/// One peak-EWMA step: `(cost, at)` after observing `latency_ms` at `now_ms`. The cost jumps to
/// any new peak and otherwise decays toward the samples with time constant `tau_ms`.
#[must_use]
pub fn peak_ewma((cost, at): (f64, u64), latency_ms: f64, now_ms: u64, tau_ms: f64) -> (f64, u64) {
    let next = if latency_ms > cost {
        latency_ms
    } else {
        let w = (-(now_ms.saturating_sub(at) as f64) / tau_ms).exp();
        cost * w + latency_ms * (1.0 - w)
    };
    (next, now_ms)
}
