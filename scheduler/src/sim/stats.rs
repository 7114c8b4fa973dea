//! Counters the simulator keeps: a log-linear latency histogram and per-run results.

/// Latency histogram: 0.1 ms buckets below 100 ms, then 1 % wide buckets up to ~16 minutes.
/// Percentiles are exact to the bucket, and the same input always gives the same buckets.
#[derive(Debug, Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    sum_ms: f64,
}

const LINEAR: usize = 1000; // 0.1 ms × 1000 = 100 ms
const LOG_BUCKETS: usize = 930; // 100 ms × 1.01^930 ≈ 10^6 ms

impl Default for Histogram {
    fn default() -> Self {
        Self { counts: vec![0; LINEAR + LOG_BUCKETS + 1], total: 0, sum_ms: 0.0 }
    }
}

fn bucket(ms: f64) -> usize {
    if ms < 100.0 {
        (ms.max(0.0) * 10.0) as usize
    } else {
        (LINEAR + ((ms / 100.0).ln() / 1.01f64.ln()) as usize).min(LINEAR + LOG_BUCKETS)
    }
}

fn lower_edge(b: usize) -> f64 {
    if b < LINEAR {
        b as f64 / 10.0
    } else {
        100.0 * 1.01f64.powi((b - LINEAR) as i32)
    }
}

impl Histogram {
    /// Record one latency, ms.
    pub fn record(&mut self, ms: f64) {
        self.counts[bucket(ms)] += 1;
        self.total += 1;
        self.sum_ms += ms;
    }

    /// Samples recorded.
    #[must_use]
    pub fn count(&self) -> u64 {
        self.total
    }

    /// Mean, ms (0 when empty).
    #[must_use]
    pub fn mean(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.sum_ms / self.total as f64
        }
    }

    /// The `q`-quantile (0..=1), ms: the lower edge of the bucket holding it (0 when empty).
    #[must_use]
    pub fn quantile(&self, q: f64) -> f64 {
        if self.total == 0 {
            return 0.0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (b, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return lower_edge(b);
            }
        }
        lower_edge(self.counts.len() - 1)
    }
}

/// Submit-latency buckets of the article's latency-loss table.
pub const LATENCY_BUCKETS: [(&str, f64); 3] = [("<100ms", 100.0), ("100-300ms", 300.0), (">300ms", f64::INFINITY)];

/// The bucket index of a submit latency.
#[must_use]
pub fn latency_bucket(ms: f64) -> usize {
    LATENCY_BUCKETS.iter().position(|(_, hi)| ms < *hi).unwrap_or(LATENCY_BUCKETS.len() - 1)
}

/// Why a share failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Sent to an endpoint that was down: the submit timed out.
    Dead,
    /// The endpoint's queue was full (queue wait over the limit): rejected.
    Overflow,
    /// The endpoint's own error rate (bad share handling, transient faults).
    Intrinsic,
    /// The strategy had no endpoint to pick.
    NoEndpoint,
}

/// Per-window aggregates for timelines.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct WindowPoint {
    /// Shares submitted in the window.
    pub shares: u64,
    /// Of which failed.
    pub errors: u64,
    /// Sum of latencies of accepted shares, ms.
    pub latency_sum_ms: f64,
    /// Accepted shares.
    pub accepted: u64,
}

/// Everything one run measured.
#[derive(Debug, Clone, Default)]
pub struct RunStats {
    /// Strategy name.
    pub strategy: String,
    /// Shares submitted (after warm-up).
    pub shares: u64,
    /// Latency of accepted shares.
    pub latency: Histogram,
    /// Failures by kind: dead, overflow, intrinsic, no endpoint.
    pub failures: [u64; 4],
    /// Accepted shares that were stale (the job changed before the pool validated them).
    pub stale: u64,
    /// Per latency bucket: accepted shares.
    pub bucket_shares: [u64; 3],
    /// Per latency bucket: stale shares.
    pub bucket_stale: [u64; 3],
    /// Shares served per endpoint, per measurement window.
    pub served: Vec<Vec<u64>>,
    /// Timeline, one point per timeline step.
    pub timeline: Vec<WindowPoint>,
    /// Times (ms after the failure) at which the strategy stopped sending to failed endpoints.
    pub detections_ms: Vec<f64>,
    /// Shares simulated in total, warm-up included (for throughput).
    pub simulated: u64,
}

impl RunStats {
    /// All failed shares.
    #[must_use]
    pub fn errors(&self) -> u64 {
        self.failures.iter().sum()
    }

    /// Failed shares as a percentage of submitted.
    #[must_use]
    pub fn error_pct(&self) -> f64 {
        pct(self.errors(), self.shares)
    }

    /// Stale shares as a percentage of submitted work (failed shares are lost too, but are
    /// counted as errors, not as stale).
    #[must_use]
    pub fn stale_pct(&self) -> f64 {
        pct(self.stale, self.shares)
    }

    /// Request deviation over window `w`: the mean absolute deviation of each endpoint's served
    /// shares from its capacity-proportional share of the total, as a percentage of that share.
    #[must_use]
    pub fn deviation_pct(&self, w: usize, capacities: &[f64]) -> f64 {
        let served: Vec<f64> = self.served.iter().map(|s| s[w] as f64).collect();
        deviation_pct(&served, capacities)
    }
}

/// `part` as a percentage of `whole` (0 when `whole` is 0).
#[must_use]
pub fn pct(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

/// Mean absolute deviation of `served[i]` from `total × cap[i] / Σcap`, as a percentage of that
/// share, over endpoints with positive capacity.
#[must_use]
pub fn deviation_pct(served: &[f64], capacities: &[f64]) -> f64 {
    let total: f64 = served.iter().sum();
    let cap: f64 = capacities.iter().filter(|c| **c > 0.0).sum();
    if total <= 0.0 || cap <= 0.0 {
        return 0.0;
    }
    let devs: Vec<f64> = served
        .iter()
        .zip(capacities)
        .filter(|(_, c)| **c > 0.0)
        .map(|(s, c)| {
            let fair = total * c / cap;
            (s - fair).abs() / fair
        })
        .collect();
    devs.iter().sum::<f64>() / devs.len() as f64 * 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_and_deviation() {
        let mut h = Histogram::default();
        for i in 1..=1000 {
            h.record(f64::from(i) / 10.0);
        }
        assert!((h.mean() - 50.05).abs() < 1e-9);
        assert!((h.quantile(0.5) - 50.0).abs() < 0.11);
        assert!((h.quantile(0.99) - 99.0).abs() < 0.11);
        h.record(1234.0);
        assert!((h.quantile(1.0) - 1234.0).abs() / 1234.0 < 0.011);
        assert_eq!(deviation_pct(&[10.0, 20.0], &[1.0, 2.0]), 0.0);
        // 15/15 vs fair 10/20: |5|/10 and |5|/20 → mean 37.5 %.
        assert!((deviation_pct(&[15.0, 15.0], &[1.0, 2.0]) - 37.5).abs() < 1e-9);
    }
}
