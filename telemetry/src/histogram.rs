//! Submit latency as an HDR histogram: fixed bounds and precision everywhere, so histograms
//! from any process merge exactly.

use hashmesh_protocol::telemetry::{LatencyBuckets, LATENCY_US_MAX};
use hdrhistogram::Histogram;

/// Significant decimal digits every latency histogram keeps (values within 1 %).
pub const SIGNIFICANT_DIGITS: u8 = 2;

/// A latency histogram in microseconds, 1 µs ..= 600 s (slower samples are clamped to the
/// ceiling), with the exact sum for the mean.
#[derive(Debug, Clone)]
pub struct LatencyHistogram {
    h: Histogram<u64>,
    sum_us: u64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self { h: Histogram::new_with_bounds(1, LATENCY_US_MAX, SIGNIFICANT_DIGITS).expect("valid bounds"), sum_us: 0 }
    }
}

impl PartialEq for LatencyHistogram {
    fn eq(&self, other: &Self) -> bool {
        self.to_wire() == other.to_wire()
    }
}

impl LatencyHistogram {
    /// Record one sample, µs.
    pub fn record_us(&mut self, us: u64) {
        let us = us.clamp(1, LATENCY_US_MAX);
        self.h.saturating_record(us);
        self.sum_us = self.sum_us.saturating_add(us);
    }

    /// Record one sample, ms (fractions kept to the µs).
    pub fn record_ms(&mut self, ms: f64) {
        self.record_us((ms.max(0.0) * 1000.0).round() as u64);
    }

    /// Add every sample of `other`.
    pub fn merge(&mut self, other: &LatencyHistogram) {
        self.h.add(&other.h).expect("same bounds and precision");
        self.sum_us = self.sum_us.saturating_add(other.sum_us);
    }

    /// Samples recorded.
    #[must_use]
    pub fn count(&self) -> u64 {
        self.h.len()
    }

    /// No samples.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.h.is_empty()
    }

    /// The `q`-quantile (0..=1), µs: the middle of the bucket holding it (within 1 % of every
    /// sample in the bucket; 0 when empty).
    #[must_use]
    pub fn quantile_us(&self, q: f64) -> u64 {
        if self.h.is_empty() {
            0
        } else {
            self.h.median_equivalent(self.h.value_at_quantile(q.clamp(0.0, 1.0)))
        }
    }

    /// The `q`-quantile, ms.
    #[must_use]
    pub fn quantile_ms(&self, q: f64) -> f64 {
        self.quantile_us(q) as f64 / 1000.0
    }

    /// The `q`-quantile in whole ms, rounded to the nearest (what goes on chain; 0 when empty).
    #[must_use]
    pub fn quantile_ms_round(&self, q: f64) -> u32 {
        u32::try_from((self.quantile_us(q) + 500) / 1000).unwrap_or(u32::MAX)
    }

    /// Mean, ms (exact; 0 when empty).
    #[must_use]
    pub fn mean_ms(&self) -> f64 {
        if self.h.is_empty() {
            0.0
        } else {
            self.sum_us as f64 / 1000.0 / self.h.len() as f64
        }
    }

    /// Sum of the samples, seconds.
    #[must_use]
    pub fn sum_seconds(&self) -> f64 {
        self.sum_us as f64 / 1e6
    }

    /// Samples at or below `us` (for Prometheus `le` buckets; a bucket straddling `us` counts
    /// when its highest value is at or below it).
    #[must_use]
    pub fn count_at_or_below_us(&self, us: u64) -> u64 {
        self.h.iter_recorded().take_while(|v| v.value_iterated_to() <= us).map(|v| v.count_at_value()).sum()
    }

    /// Forget every sample.
    pub fn reset(&mut self) {
        self.h.reset();
        self.sum_us = 0;
    }

    /// The wire form: the non-empty buckets, each named by the lowest value it holds.
    #[must_use]
    pub fn to_wire(&self) -> LatencyBuckets {
        LatencyBuckets {
            sum_us: self.sum_us,
            buckets: self
                .h
                .iter_recorded()
                .map(|v| (self.h.lowest_equivalent(v.value_iterated_to()), v.count_at_value()))
                .collect(),
        }
    }

    /// From the wire form, refusing malformed buckets.
    ///
    /// # Errors
    /// What is wrong with the buckets.
    pub fn from_wire(w: &LatencyBuckets) -> Result<Self, &'static str> {
        if let Some(why) = w.malformed() {
            return Err(why);
        }
        let mut out = Self::default();
        for &(v, n) in &w.buckets {
            out.h.saturating_record_n(v, n);
        }
        out.sum_us = w.sum_us;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The nearest-rank quantile of raw samples.
    fn exact(samples: &mut [u64], q: f64) -> u64 {
        samples.sort_unstable();
        let rank = ((q * samples.len() as f64).ceil() as usize).max(1);
        samples[rank - 1]
    }

    proptest! {
        /// Percentiles of merged histograms are the percentiles of the merged raw samples:
        /// equal to one histogram of all of them, and within the histogram's 1 % of the exact
        /// nearest-rank value.
        #[test]
        fn merged_percentiles_are_percentiles_of_the_merged_samples(
            parts in proptest::collection::vec(proptest::collection::vec(1u64..5_000_000, 1..200), 1..6),
            q in prop_oneof![Just(0.5), Just(0.9), Just(0.99), Just(0.999), 0.0f64..=1.0],
        ) {
            let mut merged = LatencyHistogram::default();
            let mut all = LatencyHistogram::default();
            let mut raw = Vec::new();
            for p in &parts {
                let mut h = LatencyHistogram::default();
                for &s in p {
                    h.record_us(s);
                    all.record_us(s);
                    raw.push(s);
                }
                // Through the wire form, as agents send it.
                merged.merge(&LatencyHistogram::from_wire(&h.to_wire()).unwrap());
            }
            prop_assert_eq!(merged.quantile_us(q), all.quantile_us(q));
            prop_assert_eq!(merged.count(), raw.len() as u64);
            let e = exact(&mut raw, q.max(1e-9)) as f64;
            let got = merged.quantile_us(q) as f64;
            prop_assert!((got - e).abs() <= e * 0.01 + 1.0, "q {} exact {} histogram {}", q, e, got);
        }
    }

    #[test]
    fn wire_form_is_bounded_and_exact() {
        let mut h = LatencyHistogram::default();
        for us in (1..LATENCY_US_MAX).step_by(997) {
            h.record_us(us);
        }
        h.record_us(u64::MAX);
        let w = h.to_wire();
        assert!(w.buckets.len() <= hashmesh_protocol::telemetry::LATENCY_BUCKETS_MAX, "{}", w.buckets.len());
        assert_eq!(LatencyHistogram::from_wire(&w).unwrap(), h);
        assert!(h.quantile_ms_round(1.0).abs_diff(600_000) < 6000);
        let bad = hashmesh_protocol::LatencyBuckets { sum_us: 0, buckets: vec![(5, 1), (5, 1)] };
        assert!(LatencyHistogram::from_wire(&bad).is_err());
    }

    #[test]
    fn every_bucket_fits_the_wire_bound() {
        // One sample in every bucket: the most distinct buckets a histogram can have.
        let mut h = LatencyHistogram::default();
        let mut v = 1;
        while v <= LATENCY_US_MAX {
            h.record_us(v);
            v = h.h.next_non_equivalent(v);
        }
        let n = h.to_wire().buckets.len();
        assert!(n > 2900 && n <= hashmesh_protocol::telemetry::LATENCY_BUCKETS_MAX, "{n}");
        assert_eq!(LatencyHistogram::from_wire(&h.to_wire()).unwrap(), h);
    }
}
