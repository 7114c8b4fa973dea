//! Measured telemetry: what a pool signs about an endpoint each epoch ([`Measurement`], in
//! [`Body::ReportTelemetryBatch`](crate::Body::ReportTelemetryBatch)) and what an agent sends its
//! node about one report window ([`EndpointWindow`], on the plane, never on chain).
//!
//! A value nobody could see is `None` ("unknown"), never 0: an agent sees shares, latency and
//! errors at an endpoint but not the endpoint's CPU or memory. The health rule
//! ([`crate::rules::measurement_health_bp`]) weighs only what is known.

use bincode::{Decode, Encode};
use serde::{Deserialize, Serialize};

use crate::body::{TelemetryReport, TELEMETRY_COUNT_MAX, TELEMETRY_LATENCY_MS_MAX};
use crate::ids::EndpointId;

/// Most entries one `ReportTelemetryBatch` carries (a pool with more measured endpoints sends
/// more than one batch per epoch). 48 entries of the longest ids fit in `TX_BYTES_MAX`.
pub const TELEMETRY_ENTRIES_PER_TX_MAX: usize = 48;
/// Most buckets in one latency histogram on the plane: a 2-significant-digit HDR histogram of
/// 1 µs ..= 600 s has 2959 distinct buckets; this bound rounds up to 24 × 128.
pub const LATENCY_BUCKETS_MAX: usize = 3072;
/// Largest latency a histogram on the plane may hold, µs (the on-chain ceiling, 10 minutes).
pub const LATENCY_US_MAX: u64 = TELEMETRY_LATENCY_MS_MAX as u64 * 1000;

/// Submit latency percentiles, ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct LatencyPercentiles {
    /// Median.
    pub p50: u32,
    /// 99th percentile (≥ p50).
    pub p99: u32,
}

/// One epoch's measurements of one endpoint by one pool, in integers. `None` is "unknown":
/// nothing measured it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct Measurement {
    /// Hashrate from accepted difficulty (difficulty × 2³² per second), H/s.
    pub hashrate_hs: u64,
    /// Shares accepted.
    pub shares_accepted: u64,
    /// Shares rejected.
    pub shares_rejected: u64,
    /// Shares for stale work (or in flight when the endpoint failed).
    pub shares_stale: u64,
    /// Submit → verdict latency percentiles (`None`: no share was answered).
    pub latency_ms: Option<LatencyPercentiles>,
    /// (rejected + stale) / answered, bp; 10 000 for an endpoint that was down and answered
    /// nothing (`None`: up, nothing answered).
    pub error_bp: Option<u16>,
    /// CPU utilisation, bp (`None`: the reporter cannot see it).
    pub cpu_bp: Option<u16>,
    /// Memory pressure, bp (`None`: the reporter cannot see it).
    pub memory_bp: Option<u16>,
    /// Shares waiting for a verdict at the end of the epoch.
    pub queue_len: u32,
    /// Miners whose work went there at the end of the epoch.
    pub miners: u32,
}

impl Measurement {
    /// The first bound the measurement breaks, if any.
    #[must_use]
    pub fn out_of_range(&self) -> Option<&'static str> {
        let bp = |v: Option<u16>| v.is_some_and(|v| v > 10_000);
        if bp(self.cpu_bp) || bp(self.memory_bp) || bp(self.error_bp) {
            Some("cpu, memory and error rate are basis points (0..=10000)")
        } else if self.latency_ms.is_some_and(|l| l.p99 > TELEMETRY_LATENCY_MS_MAX || l.p50 > l.p99) {
            Some("latency must satisfy p50 <= p99 <= 600000 ms")
        } else if self.queue_len > TELEMETRY_COUNT_MAX || self.miners > TELEMETRY_COUNT_MAX {
            Some("queue length and miners are at most 10000000")
        } else {
            None
        }
    }
}

impl From<TelemetryReport> for Measurement {
    /// An old single-endpoint report: every value was claimed, so every value is known.
    fn from(r: TelemetryReport) -> Self {
        Self {
            hashrate_hs: r.hashrate_hs,
            shares_accepted: r.shares_accepted,
            shares_rejected: r.shares_rejected,
            shares_stale: r.shares_stale,
            latency_ms: Some(LatencyPercentiles { p50: r.latency_ms_p50, p99: r.latency_ms_p99 }),
            error_bp: Some(r.error_bp),
            cpu_bp: Some(r.cpu_bp),
            memory_bp: Some(r.memory_bp),
            queue_len: r.queue_len,
            miners: r.miners,
        }
    }
}

/// One entry of a `ReportTelemetryBatch`: the signer's own endpoint (the owner's view) or
/// another pool's endpoint that one of the signer's active routes targets (an observer's view).
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct TelemetryEntry {
    /// The endpoint.
    pub endpoint: EndpointId,
    /// What was measured there.
    pub measurement: Measurement,
}

/// A mergeable latency histogram on the plane: the non-empty buckets of an HDR histogram
/// (1 µs ..= [`LATENCY_US_MAX`], 2 significant digits), each as the highest value it holds and
/// its count, strictly increasing by value. Merging is adding counts, so percentiles of merged
/// histograms are the percentiles of all the samples together.
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, Decode, Serialize, Deserialize)]
pub struct LatencyBuckets {
    /// Sum of the samples, µs (for the mean; saturating).
    pub sum_us: u64,
    /// `(value µs, count)`, at most [`LATENCY_BUCKETS_MAX`].
    pub buckets: Vec<(u64, u64)>,
}

impl LatencyBuckets {
    /// Why the buckets are not well-formed, if they are not.
    #[must_use]
    pub fn malformed(&self) -> Option<&'static str> {
        if self.buckets.len() > LATENCY_BUCKETS_MAX {
            return Some("more histogram buckets than LATENCY_BUCKETS_MAX");
        }
        let mut last = 0;
        for &(v, n) in &self.buckets {
            if v <= last || v > LATENCY_US_MAX || n == 0 {
                return Some("histogram buckets must be non-empty, strictly increasing, within 1..=600000000 µs");
            }
            last = v;
        }
        None
    }
}

/// An agent's measurements of one endpoint over one report window `(start_ms, end_ms]` (agent
/// clock). Windows of one agent and endpoint do not overlap; the node sums them.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct EndpointWindow {
    /// The endpoint (the pool's own, or a lender's in a cross-pool route).
    pub endpoint: EndpointId,
    /// Window start, ms since the Unix epoch.
    pub start_ms: u64,
    /// Window end, ms since the Unix epoch (> `start_ms`).
    pub end_ms: u64,
    /// Shares accepted.
    pub accepted: u64,
    /// Shares rejected.
    pub rejected: u64,
    /// Shares stale.
    pub stale: u64,
    /// Sum of the difficulty of accepted shares, in 2⁻³² units of difficulty 1 (an integer,
    /// so the plane carries no floats): hashes, in expectation.
    pub accepted_hashes: u128,
    /// Submit → verdict latency.
    pub latency: LatencyBuckets,
    /// The upstream was down at the end of the window.
    pub down: bool,
    /// Miners whose work goes there at the end of the window.
    pub miners: u32,
    /// Shares waiting for a verdict at the end of the window.
    pub in_flight: u32,
    /// The part of `accepted_hashes` done under a lender's standby credential (an agent's
    /// fallback before a loan commits): measured, but no loan's work.
    pub standby_hashes: u128,
}

impl EndpointWindow {
    /// Why the window is not well-formed, if it is not.
    #[must_use]
    pub fn malformed(&self) -> Option<&'static str> {
        if self.end_ms <= self.start_ms {
            Some("a window must end after it starts")
        } else if self.miners > TELEMETRY_COUNT_MAX || self.in_flight > TELEMETRY_COUNT_MAX {
            Some("miners and in-flight shares are at most 10000000")
        } else if self.standby_hashes > self.accepted_hashes {
            Some("standby work is part of the accepted work")
        } else {
            self.latency.malformed()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_checked() {
        let ok = LatencyBuckets { sum_us: 3, buckets: vec![(1, 1), (2, 1)] };
        assert_eq!(ok.malformed(), None);
        for bad in [vec![(2, 1), (2, 1)], vec![(2, 1), (1, 1)], vec![(1, 0)], vec![(LATENCY_US_MAX + 1, 1)]] {
            assert!(LatencyBuckets { sum_us: 0, buckets: bad }.malformed().is_some());
        }
    }

    #[test]
    fn an_old_report_is_fully_known() {
        let r = TelemetryReport {
            epoch: 1,
            hashrate_hs: 5,
            shares_accepted: 1,
            shares_rejected: 0,
            shares_stale: 0,
            latency_ms_p50: 10,
            latency_ms_p99: 20,
            cpu_bp: 100,
            memory_bp: 200,
            error_bp: 0,
            queue_len: 0,
            miners: 1,
        };
        let m = Measurement::from(r);
        assert_eq!((m.cpu_bp, m.memory_bp, m.error_bp), (Some(100), Some(200), Some(0)));
        assert_eq!(m.latency_ms, Some(LatencyPercentiles { p50: 10, p99: 20 }));
    }
}
