//! The source article's health score:
//! `0.3·(1−cpu) + 0.3·(1−mem) + 0.2·(1−latency/200 ms) + 0.2·(1−error_rate)`,
//! each term clamped to [0, 1], with the weights configurable. Its integer form, the one on chain,
//! is `hashmesh_protocol::rules::health_bp`; `tests/properties.rs` shows the two agree within 1 bp.

use crate::telemetry::Telemetry;

/// Weights of the four health terms. They need not sum to 1; the score is normalised.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HealthWeights {
    /// Weight of `1 − cpu`.
    pub cpu: f64,
    /// Weight of `1 − memory`.
    pub memory: f64,
    /// Weight of `1 − latency / latency_ms_ceiling`.
    pub latency: f64,
    /// Weight of `1 − error_rate`.
    pub errors: f64,
    /// Latency at which the latency term reaches 0 (the article uses 200 ms).
    pub latency_ms_ceiling: f64,
}

impl Default for HealthWeights {
    fn default() -> Self {
        Self { cpu: 0.3, memory: 0.3, latency: 0.2, errors: 0.2, latency_ms_ceiling: 200.0 }
    }
}

fn unit(x: f64) -> f64 {
    if x.is_nan() {
        0.0
    } else {
        x.clamp(0.0, 1.0)
    }
}

/// Health in [0, 1]; higher is healthier. Uses the p50 submit latency.
#[must_use]
pub fn health(t: &Telemetry, w: &HealthWeights) -> f64 {
    let total = w.cpu + w.memory + w.latency + w.errors;
    if total <= 0.0 {
        return 0.0;
    }
    let latency = 1.0 - f64::from(t.latency_ms_p50) / w.latency_ms_ceiling.max(1.0);
    let s = w.cpu * unit(1.0 - t.cpu)
        + w.memory * unit(1.0 - t.memory)
        + w.latency * unit(latency)
        + w.errors * unit(1.0 - t.error_rate);
    unit(s / total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_article_formula() {
        let t = Telemetry { cpu: 0.5, memory: 0.2, latency_ms_p50: 50, error_rate: 0.1, ..Telemetry::default() };
        let expected = 0.3 * 0.5 + 0.3 * 0.8 + 0.2 * 0.75 + 0.2 * 0.9;
        assert!((health(&t, &HealthWeights::default()) - expected).abs() < 1e-12);
    }
}
