//! Per-endpoint measurements, as a pool reports them each epoch.

/// One endpoint's measurements over the last reporting window.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Telemetry {
    /// Accepted hashrate, H/s.
    pub hashrate_hs: u64,
    /// Shares accepted in the window.
    pub shares_accepted: u64,
    /// Shares rejected in the window.
    pub shares_rejected: u64,
    /// Shares that arrived for stale work.
    pub shares_stale: u64,
    /// Median share-submit latency, ms.
    pub latency_ms_p50: u32,
    /// 99th percentile share-submit latency, ms.
    pub latency_ms_p99: u32,
    /// CPU utilisation, 0..=1.
    pub cpu: f64,
    /// Memory pressure (including GC frequency), 0..=1.
    pub memory: f64,
    /// Errors per request over the last minute, 0..=1.
    pub error_rate: f64,
    /// Requests waiting to be served.
    pub queue_len: u32,
    /// Miners connected.
    pub miners: u32,
}

impl Telemetry {
    /// Fraction of submitted shares that were accepted (1 when nothing was submitted).
    #[must_use]
    pub fn acceptance(&self) -> f64 {
        let total = self.shares_accepted + self.shares_rejected + self.shares_stale;
        if total == 0 {
            1.0
        } else {
            self.shares_accepted as f64 / total as f64
        }
    }
}
