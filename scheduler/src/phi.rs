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
    /// Silence tolerated on top of the learned intervals, ms (Akka's "acceptable heartbeat
    /// pause"): it absorbs retries and short stalls without hiding a real failure for long.
    pub acceptable_pause_ms: f64,
    /// Interval assumed before any was observed, ms (0: none, so a peer that sends a single
    /// heartbeat and dies is never suspected). Akka's "first heartbeat estimate".
    pub first_estimate_ms: f64,
}

impl PhiAccrual {
    /// A detector with this threshold (e.g. 8) and standard-deviation floor (e.g. 100 ms).
    #[must_use]
    pub fn new(threshold: f64, min_std_ms: f64) -> Self {
        Self {
            intervals: std::collections::VecDeque::new(),
            last_ms: None,
            min_std_ms,
            threshold,
            acceptable_pause_ms: 0.0,
            first_estimate_ms: 0.0,
        }
    }

    /// The same detector, tolerating `pause_ms` of extra silence.
    #[must_use]
    pub fn with_acceptable_pause(mut self, pause_ms: f64) -> Self {
        self.acceptable_pause_ms = pause_ms.max(0.0);
        self
    }

    /// The same detector, assuming `interval_ms` between heartbeats until it has seen one.
    #[must_use]
    pub fn with_first_estimate(mut self, interval_ms: f64) -> Self {
        self.first_estimate_ms = interval_ms.max(0.0);
        self
    }

    /// Forget everything (a monitored peer came back as a new incarnation).
    pub fn reset(&mut self) {
        self.intervals.clear();
        self.last_ms = None;
    }

    fn mean_std(&self) -> Option<(f64, f64)> {
        let n = self.intervals.len();
        if n == 0 {
            return None;
        }
        let mean = self.intervals.iter().sum::<f64>() / n as f64;
        let var = self.intervals.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        Some((mean + self.acceptable_pause_ms, var.sqrt().max(self.min_std_ms)))
    }

    /// When, given the heartbeats so far, the peer becomes suspected if nothing else arrives
    /// (ms, absolute); `None` before two heartbeats. Phi grows monotonically with silence, so
    /// this is the one crossing point of the threshold.
    #[must_use]
    pub fn deadline_ms(&self) -> Option<f64> {
        let last = self.last_ms? as f64;
        let (mean, std) = self.mean_std()?;
        // Solve phi(y) = threshold for y = (elapsed − mean) / std by bisection on [-10, 60].
        let target = self.threshold;
        let (mut lo, mut hi) = (-10.0f64, 60.0f64);
        for _ in 0..60 {
            let mid = (lo + hi) / 2.0;
            if phi_of_y(mid) > target {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        Some(last + mean + hi * std)
    }

    /// A heartbeat arrived at `now_ms`.
    pub fn heartbeat(&mut self, now_ms: u64) {
        if let Some(last) = self.last_ms {
            if self.intervals.len() == PHI_WINDOW_MAX {
                self.intervals.pop_front();
            }
            self.intervals.push_back(now_ms.saturating_sub(last) as f64);
        } else if self.first_estimate_ms > 0.0 && self.intervals.is_empty() {
            self.intervals.push_back(self.first_estimate_ms);
        }
        self.last_ms = Some(now_ms);
    }

    /// Record one observed duration directly (e.g. a response time, ms) instead of an
    /// interval between heartbeats: the detector then judges how unlikely an elapsed wait is.
    pub fn sample(&mut self, duration_ms: f64) {
        if self.intervals.len() == PHI_WINDOW_MAX {
            self.intervals.pop_front();
        }
        self.intervals.push_back(duration_ms.max(0.0));
    }

    /// Whether a wait of `elapsed_ms` is past the threshold given the samples so far (or the
    /// first estimate when there are none; `false` with neither).
    #[must_use]
    pub fn overdue(&self, elapsed_ms: f64) -> bool {
        let (mean, std) = match self.mean_std() {
            Some(ms) => ms,
            None if self.first_estimate_ms > 0.0 => {
                (self.first_estimate_ms + self.acceptable_pause_ms, self.min_std_ms.max(1.0))
            }
            None => return false,
        };
        phi_of_y((elapsed_ms - mean) / std) > self.threshold
    }

    /// Phi at `now_ms` (0 before two heartbeats).
    #[must_use]
    pub fn phi(&self, now_ms: u64) -> f64 {
        let Some(last) = self.last_ms else { return 0.0 };
        let Some((mean, std)) = self.mean_std() else { return 0.0 };
        let elapsed = now_ms.saturating_sub(last) as f64;
        phi_of_y((elapsed - mean) / std)
    }

    /// Whether the peer is suspected at `now_ms`.
    #[must_use]
    pub fn suspected(&self, now_ms: u64) -> bool {
        self.phi(now_ms) > self.threshold
    }
}

/// Phi for a silence `y` standard deviations past the mean: −log10 P(interval > elapsed), with
/// the logistic approximation of the normal CDF. Monotone in `y`.
fn phi_of_y(y: f64) -> f64 {
    let e = (-y * (1.5976 + 0.070566 * y * y)).exp();
    let p_later = if y > 0.0 { e / (1.0 + e) } else { 1.0 - 1.0 / (1.0 + e) };
    -p_later.max(f64::MIN_POSITIVE).log10()
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
