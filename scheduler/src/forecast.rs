//! EWMA throughput forecasts and the source article's tiers:
//! > 1000 QPS → weight 5, no delay; 500–1000 → weight 3, 10 ms cool-down; < 500 → weight 1, 50 ms.

/// An exponentially weighted moving average.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ewma {
    alpha: f64,
    value: Option<f64>,
}

impl Ewma {
    /// `alpha` in (0, 1]: the weight of each new sample (the article uses 0.3–0.7).
    ///
    /// # Panics
    /// If `alpha` is outside (0, 1].
    #[must_use]
    pub fn new(alpha: f64) -> Self {
        assert!(alpha > 0.0 && alpha <= 1.0, "alpha must be in (0, 1]");
        Self { alpha, value: None }
    }

    /// Add a sample; the first sample becomes the value.
    pub fn update(&mut self, sample: f64) {
        self.value = Some(match self.value {
            None => sample,
            Some(v) => self.alpha * sample + (1.0 - self.alpha) * v,
        });
    }

    /// The forecast (0 before any sample).
    #[must_use]
    pub fn value(&self) -> f64 {
        self.value.unwrap_or(0.0)
    }
}

/// The article's forecast tiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Tier {
    /// Forecast below 500 QPS.
    Low,
    /// 500–1000 QPS.
    Medium,
    /// Above 1000 QPS.
    High,
}

impl Tier {
    /// The tier of a forecast throughput (QPS).
    #[must_use]
    pub fn of(qps: f64) -> Self {
        if qps > 1000.0 {
            Tier::High
        } else if qps >= 500.0 {
            Tier::Medium
        } else {
            Tier::Low
        }
    }

    /// Scheduling weight of the tier.
    #[must_use]
    pub fn weight(self) -> u32 {
        match self {
            Tier::High => 5,
            Tier::Medium => 3,
            Tier::Low => 1,
        }
    }

    /// Cool-down before the next dispatch, ms.
    #[must_use]
    pub fn cooldown_ms(self) -> u64 {
        match self {
            Tier::High => 0,
            Tier::Medium => 10,
            Tier::Low => 50,
        }
    }
}
