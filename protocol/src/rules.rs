//! The integer rules every party computes the same way: an endpoint's health in basis points
//! from a telemetry report, the hashrate one route target carries, and an endpoint's load
//! limit. The chain (`hashmesh-abci`) enforces them; the scheduling loop plans with them, so a
//! plan never targets what the chain would refuse.

use crate::body::{TelemetryReport, BASIS_POINTS_TOTAL};

/// Latency at which the health score's latency term reaches 0, ms (the source article's 200 ms).
pub const HEALTH_LATENCY_MS_CEILING: u32 = 200;

/// Health in basis points (0..=10 000) from integer inputs — cpu, memory and error rate in
/// basis points, latency in ms — with the source article's weights (30/30/20/20 %) and a
/// [`HEALTH_LATENCY_MS_CEILING`]. No floats, no rounding surprises: this is the form on chain.
#[must_use]
pub fn health_bp(cpu_bp: u32, memory_bp: u32, latency_ms: u32, error_bp: u32) -> u32 {
    let inv = |x: u32| 10_000 - x.min(10_000);
    let per_ms = 10_000 / HEALTH_LATENCY_MS_CEILING;
    let latency_term = 10_000u32.saturating_sub(latency_ms.min(HEALTH_LATENCY_MS_CEILING) * per_ms);
    (3 * inv(cpu_bp) + 3 * inv(memory_bp) + 2 * latency_term + 2 * inv(error_bp)) / 10
}

/// [`health_bp`] of a report (its p50 latency).
#[must_use]
pub fn report_health_bp(r: &TelemetryReport) -> u32 {
    health_bp(u32::from(r.cpu_bp), u32::from(r.memory_bp), r.latency_ms_p50, u32::from(r.error_bp))
}

/// The hashrate a route target of weight `weight_bp` carries for a group of `hashrate_hs`, H/s.
#[must_use]
pub fn share_hs(hashrate_hs: u64, weight_bp: u16) -> u128 {
    u128::from(hashrate_hs) * u128::from(weight_bp) / u128::from(BASIS_POINTS_TOTAL)
}

/// The most an endpoint of `capacity_hs` may carry at `max_utilization_bp`, H/s.
#[must_use]
pub fn load_limit_hs(capacity_hs: u64, max_utilization_bp: u32) -> u128 {
    u128::from(capacity_hs) * u128::from(max_utilization_bp) / u128::from(BASIS_POINTS_TOTAL)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_articles_weights_in_integers() {
        assert_eq!(health_bp(5000, 2000, 50, 1000), 7200);
        assert_eq!(health_bp(0, 0, 0, 0), 10_000);
        assert_eq!(health_bp(10_000, 10_000, 500, 10_000), 0);
        assert_eq!(health_bp(20_000, 0, u32::MAX, 0), 5000, "inputs beyond range clamp");
    }

    #[test]
    fn shares_and_limits() {
        assert_eq!(share_hs(1000, 7000), 700);
        assert_eq!(share_hs(u64::MAX, 10_000), u128::from(u64::MAX));
        assert_eq!(load_limit_hs(1000, 9000), 900);
    }
}
