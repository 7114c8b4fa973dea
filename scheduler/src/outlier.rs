//! Envoy-style outlier ejection: eject an endpoint after N consecutive failures for a base
//! time that grows with each ejection, never ejecting more than a fraction of endpoints.

/// Settings (Envoy's defaults).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OutlierConfig {
    /// Consecutive failures that eject (5).
    pub consecutive_failures: u32,
    /// First ejection length, ms (30 s); the n-th ejection lasts n × this.
    pub base_ejection_ms: u64,
    /// Most endpoints ejected at once, as a percentage (10 %, at least one).
    pub max_ejection_pct: u32,
}

impl Default for OutlierConfig {
    fn default() -> Self {
        Self { consecutive_failures: 5, base_ejection_ms: 30_000, max_ejection_pct: 10 }
    }
}

#[derive(Debug, Clone, Default)]
struct Slot {
    failures: u32,
    ejections: u32,
    ejected_until_ms: Option<u64>,
}

/// Tracks every endpoint of one balancer.
#[derive(Debug, Clone)]
pub struct OutlierDetector {
    config: OutlierConfig,
    slots: Vec<Slot>,
}

impl OutlierDetector {
    /// A detector for `endpoints` endpoints.
    #[must_use]
    pub fn new(config: OutlierConfig, endpoints: usize) -> Self {
        Self { config, slots: vec![Slot::default(); endpoints] }
    }

    fn ejected_now(&self, now_ms: u64) -> usize {
        self.slots.iter().filter(|s| s.ejected_until_ms.is_some_and(|u| u > now_ms)).count()
    }

    /// Record a result for endpoint `i`.
    pub fn record(&mut self, i: usize, ok: bool, now_ms: u64) {
        let limit = (self.slots.len() * self.config.max_ejection_pct as usize / 100).max(1);
        let ejected = self.ejected_now(now_ms);
        let slot = &mut self.slots[i];
        if ok {
            slot.failures = 0;
            return;
        }
        slot.failures += 1;
        let already = slot.ejected_until_ms.is_some_and(|u| u > now_ms);
        if slot.failures >= self.config.consecutive_failures && !already && ejected < limit {
            slot.ejections += 1;
            slot.failures = 0;
            slot.ejected_until_ms = Some(now_ms + self.config.base_ejection_ms * u64::from(slot.ejections));
        }
    }

    /// Whether endpoint `i` is ejected at `now_ms`.
    #[must_use]
    pub fn is_ejected(&self, i: usize, now_ms: u64) -> bool {
        self.slots[i].ejected_until_ms.is_some_and(|u| u > now_ms)
    }
}
