//! Cold start: how much of its weight a newly joined endpoint gets.

/// A ramp setting.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Ramp {
    /// No ramp: full weight at once.
    None,
    /// The article: `min(uptime, window)/window × (1 − cpu_load)`, window 10 minutes.
    ArticleLinear {
        /// Ramp length, ms.
        window_ms: u64,
    },
    /// Envoy slow start: `max(min_weight, (t/window)^(1/aggression))`.
    EnvoySlowStart {
        /// Ramp length, ms.
        window_ms: u64,
        /// Curve exponent (1 = linear; larger ramps up faster).
        aggression: f64,
        /// Floor as a fraction (Envoy default 0.1).
        min_weight: f64,
    },
}

impl Ramp {
    /// The article's 10-minute linear ramp.
    #[must_use]
    pub fn article() -> Self {
        Ramp::ArticleLinear { window_ms: 600_000 }
    }

    /// Envoy's defaults with this window.
    #[must_use]
    pub fn envoy(window_ms: u64) -> Self {
        Ramp::EnvoySlowStart { window_ms, aggression: 1.0, min_weight: 0.1 }
    }

    /// The fraction (0..=1) of full weight after `uptime_ms`, at `cpu_load` (0..=1; only the
    /// article's ramp uses it).
    #[must_use]
    pub fn factor(&self, uptime_ms: u64, cpu_load: f64) -> f64 {
        let f = match *self {
            Ramp::None => 1.0,
            Ramp::ArticleLinear { window_ms } => {
                let t = uptime_ms.min(window_ms) as f64 / window_ms.max(1) as f64;
                t * (1.0 - cpu_load.clamp(0.0, 1.0))
            }
            Ramp::EnvoySlowStart { window_ms, aggression, min_weight } => {
                if uptime_ms >= window_ms {
                    1.0
                } else {
                    let t = uptime_ms as f64 / window_ms.max(1) as f64;
                    t.powf(1.0 / aggression.max(f64::MIN_POSITIVE)).max(min_weight)
                }
            }
        };
        if f.is_nan() {
            0.0
        } else {
            f.clamp(0.0, 1.0)
        }
    }
}
