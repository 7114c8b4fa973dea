//! Phi-accrual failure detection (Hayashibara et al.) and exponential backoff with full jitter.
//!
//! Instead of "lost after a fixed timeout", phi measures how unlikely the current silence is
//! given the recent heartbeat intervals (modelled as a normal distribution); a node is
//! suspected when phi exceeds a threshold (≈ 8 means about 1 chance in 10^8 of a false alarm
//! under the model).

use crate::rng::Rng;

/// Most intervals remembered.
pub const PHI_WINDOW_MAX: usize = 100;

/// A phi-accrual detector for one monitored peer.
#[derive(Debug, Clone)]
pub struct PhiAccrual {
    intervals: std::collections::VecDeque<f64>,
    last_ms: Option<u64>,
    /// Floor on the standard deviation, ms (guards against perfectly regular heartbeats).
    pub min_std_ms: f64,
    /// Suspicion threshold.
    pub threshold: f64,
}

impl PhiAccrual {
    /// A detector with this threshold (e.g. 8) and standard-deviation floor (e.g. 100 ms).
    #[must_use]
    pub fn new(threshold: f64, min_std_ms: f64) -> Self {
        Self { intervals: std::collections::VecDeque::new(), last_ms: None, min_std_ms, threshold }
    }

    /// A heartbeat arrived at `now_ms`.
    pub fn heartbeat(&mut self, now_ms: u64) {
        if let Some(last) = self.last_ms {
            if self.intervals.len() == PHI_WINDOW_MAX {
                self.intervals.pop_front();
            }
            self.intervals.push_back(now_ms.saturating_sub(last) as f64);
        }
        self.last_ms = Some(now_ms);
    }

    /// Phi at `now_ms` (0 before two heartbeats).
    #[must_use]
    pub fn phi(&self, now_ms: u64) -> f64 {
        let (Some(last), n) = (self.last_ms, self.intervals.len()) else { return 0.0 };
        if n == 0 {
            return 0.0;
        }
        let mean = self.intervals.iter().sum::<f64>() / n as f64;
        let var = self.intervals.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        let std = var.sqrt().max(self.min_std_ms);
        let elapsed = now_ms.saturating_sub(last) as f64;
        // P(interval > elapsed) with the logistic approximation of the normal CDF.
        let y = (elapsed - mean) / std;
        let e = (-y * (1.5976 + 0.070566 * y * y)).exp();
        let p_later = if elapsed > mean { e / (1.0 + e) } else { 1.0 - 1.0 / (1.0 + e) };
        -p_later.max(f64::MIN_POSITIVE).log10()
    }

    /// Whether the peer is suspected at `now_ms`.
    #[must_use]
    pub fn suspected(&self, now_ms: u64) -> bool {
        self.phi(now_ms) > self.threshold
    }
}

/// Exponential backoff with full jitter: attempt `n` waits uniformly in `[0, min(cap, base·2^n))`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// First ceiling, ms.
    pub base_ms: u64,
    /// Largest ceiling, ms.
    pub cap_ms: u64,
}

impl Backoff {
    /// The wait before retry `attempt` (0-based).
    pub fn delay_ms(&self, attempt: u32, rng: &mut Rng) -> u64 {
        let ceiling = self.base_ms.saturating_mul(1u64 << attempt.min(32)).min(self.cap_ms).max(1);
        rng.below(ceiling)
    }
}
