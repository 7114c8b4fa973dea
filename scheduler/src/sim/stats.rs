//! Counters the simulator keeps: the shared latency histogram and per-run results.

/// Submit latency: the same HDR histogram the agents and nodes keep
/// (`hashmesh_telemetry::LatencyHistogram`), so sim and live percentiles mean the same thing.
pub use hashmesh_telemetry::LatencyHistogram as Histogram;

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
            h.record_ms(f64::from(i) / 10.0);
        }
        assert!((h.mean_ms() - 50.05).abs() < 1e-9);
        assert!((h.quantile_ms(0.5) - 50.0).abs() < 0.5, "within the histogram's 1 %");
        assert!((h.quantile_ms(0.99) - 99.0).abs() < 1.0);
        h.record_ms(1234.0);
        assert!((h.quantile_ms(1.0) - 1234.0).abs() / 1234.0 < 0.011);
        assert_eq!(deviation_pct(&[10.0, 20.0], &[1.0, 2.0]), 0.0);
        // 15/15 vs fair 10/20: |5|/10 and |5|/20 → mean 37.5 %.
        assert!((deviation_pct(&[15.0, 15.0], &[1.0, 2.0]) - 37.5).abs() < 1e-9);
    }
}
