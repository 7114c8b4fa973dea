//! The integer rules every party computes the same way: an endpoint's health in basis points
//! from a telemetry report, the health the floor rule judges when owner and observers both
//! report ([`floor_health`]), the hashrate one route target carries, and an endpoint's load
//! limit. The chain (`hashmesh-abci`) enforces them; the scheduling loop plans with them, so a
//! plan never targets what the chain would refuse.

use crate::body::{TelemetryReport, BASIS_POINTS_TOTAL};
use crate::telemetry::Measurement;

/// Latency at which the health score's latency term reaches 0, ms (the source article's 200 ms).
pub const HEALTH_LATENCY_MS_CEILING: u32 = 200;

/// Health in basis points (0..=10 000) from integer inputs — cpu, memory and error rate in
/// basis points, latency in ms — with the source article's weights (30/30/20/20 %) and a
/// [`HEALTH_LATENCY_MS_CEILING`]. No floats, no rounding surprises: this is the form on chain.
#[must_use]
pub fn health_bp(cpu_bp: u32, memory_bp: u32, latency_ms: u32, error_bp: u32) -> u32 {
    let inv = |x: u32| 10_000 - x.min(10_000);
    (3 * inv(cpu_bp) + 3 * inv(memory_bp) + 2 * latency_term(latency_ms) + 2 * inv(error_bp)) / 10
}

/// [`health_bp`] of a report (its p50 latency).
#[must_use]
pub fn report_health_bp(r: &TelemetryReport) -> u32 {
    health_bp(u32::from(r.cpu_bp), u32::from(r.memory_bp), r.latency_ms_p50, u32::from(r.error_bp))
}

/// Health weights of cpu, memory, latency and error rate (the article's 30/30/20/20 %).
const WEIGHTS: [u32; 4] = [3, 3, 2, 2];

fn latency_term(latency_ms: u32) -> u32 {
    10_000u32.saturating_sub(latency_ms.min(HEALTH_LATENCY_MS_CEILING) * (10_000 / HEALTH_LATENCY_MS_CEILING))
}

/// [`health_bp`] over the known terms only, re-weighted (`None` when nothing is known). With
/// every term known it equals [`health_bp`]; an agent's view (no cpu, no memory) is judged by
/// latency and error rate, 50/50. One gate on top: an endpoint that failed every share (error
/// rate 10 000 bp — down, or refusing everything) is unusable, health 0, however idle its host.
#[must_use]
pub fn known_health_bp(
    cpu_bp: Option<u32>,
    memory_bp: Option<u32>,
    latency_ms: Option<u32>,
    error_bp: Option<u32>,
) -> Option<u32> {
    if error_bp.is_some_and(|e| e >= 10_000) {
        return Some(0);
    }
    let inv = |x: u32| 10_000 - x.min(10_000);
    let terms = [cpu_bp.map(inv), memory_bp.map(inv), latency_ms.map(latency_term), error_bp.map(inv)];
    let (mut sum, mut weight) = (0u32, 0u32);
    for (t, w) in terms.iter().zip(WEIGHTS) {
        if let Some(t) = t {
            sum += w * t;
            weight += w;
        }
    }
    sum.checked_div(weight)
}

/// The health of one measurement (its p50 latency), over what it knows.
#[must_use]
pub fn measurement_health_bp(m: &Measurement) -> Option<u32> {
    known_health_bp(
        m.cpu_bp.map(u32::from),
        m.memory_bp.map(u32::from),
        m.latency_ms.map(|l| l.p50),
        m.error_bp.map(u32::from),
    )
}

/// An observer's median latency above `owner × DIVERGENCE_LATENCY_FACTOR +
/// DIVERGENCE_LATENCY_SLACK_MS` disagrees with the owner (the slack covers the observer's own
/// network path to the endpoint).
pub const DIVERGENCE_LATENCY_FACTOR: u32 = 2;
/// See [`DIVERGENCE_LATENCY_FACTOR`], ms.
pub const DIVERGENCE_LATENCY_SLACK_MS: u32 = 50;
/// An observer's error rate more than this above the owner's disagrees with the owner, bp.
pub const DIVERGENCE_ERROR_SLACK_BP: u32 = 1000;

/// Whether an observer measured the endpoint clearly worse than its owner claims (beyond the
/// named tolerances). Only claims that flatter the endpoint count: an owner that reports worse
/// than its observers gains nothing.
#[must_use]
pub fn diverges(owner: &Measurement, observer: &Measurement) -> bool {
    let latency = match (owner.latency_ms, observer.latency_ms) {
        (Some(o), Some(b)) => {
            u64::from(b.p50)
                > u64::from(o.p50) * u64::from(DIVERGENCE_LATENCY_FACTOR) + u64::from(DIVERGENCE_LATENCY_SLACK_MS)
        }
        _ => false,
    };
    let error = match (owner.error_bp, observer.error_bp) {
        (Some(o), Some(b)) => u32::from(b) > u32::from(o) + DIVERGENCE_ERROR_SLACK_BP,
        (None, Some(b)) => u32::from(b) > DIVERGENCE_ERROR_SLACK_BP,
        _ => false,
    };
    latency || error
}

/// The health the floor rule judges, and whether the owner's claims are flagged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FloorHealth {
    /// Health for the floor, bp (`None`: nothing known).
    pub health_bp: Option<u32>,
    /// The owner's own claim, bp.
    pub owner_health_bp: Option<u32>,
    /// An observer measured the endpoint clearly worse than the owner claims.
    pub flagged: bool,
    /// The median submit latency the rule judged: the worst of owner and observers, ms.
    pub latency_ms_p50: Option<u32>,
}

/// Health for the floor from the owner's report and its observers' (fresh views only):
/// - no observers: the owner's claim;
/// - otherwise the worse latency and the worse error rate of owner and observers, with the
///   owner's cpu and memory — unless an observer [`diverges`] from the owner: then the owner's
///   unverifiable cpu and memory claims count as the worst (10 000 bp). A pool caught
///   flattering what others can check is not believed about what they cannot.
#[must_use]
pub fn floor_health(owner: Option<&Measurement>, observers: &[&Measurement]) -> FloorHealth {
    let owner_health_bp = owner.and_then(measurement_health_bp);
    let worst = |f: &dyn Fn(&Measurement) -> Option<u32>| {
        owner.into_iter().chain(observers.iter().copied()).filter_map(f).max()
    };
    let latency = worst(&|m| m.latency_ms.map(|l| l.p50));
    if observers.is_empty() {
        return FloorHealth { health_bp: owner_health_bp, owner_health_bp, flagged: false, latency_ms_p50: latency };
    }
    let flagged = owner.is_some_and(|o| observers.iter().any(|b| diverges(o, b)));
    let error = worst(&|m| m.error_bp.map(u32::from));
    let (cpu, memory) = if flagged {
        (Some(10_000), Some(10_000))
    } else {
        (owner.and_then(|o| o.cpu_bp).map(u32::from), owner.and_then(|o| o.memory_bp).map(u32::from))
    };
    FloorHealth {
        health_bp: known_health_bp(cpu, memory, latency, error),
        owner_health_bp,
        flagged,
        latency_ms_p50: latency,
    }
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

    fn seen(p50: u32, error_bp: u16) -> Measurement {
        Measurement {
            hashrate_hs: 0,
            shares_accepted: 1,
            shares_rejected: 0,
            shares_stale: 0,
            latency_ms: Some(crate::LatencyPercentiles { p50, p99: p50 }),
            error_bp: Some(error_bp),
            cpu_bp: None,
            memory_bp: None,
            queue_len: 0,
            miners: 1,
        }
    }

    #[test]
    fn unknown_terms_are_left_out_not_counted_as_perfect() {
        assert_eq!(known_health_bp(Some(5000), Some(2000), Some(50), Some(1000)), Some(7200));
        assert_eq!(known_health_bp(None, None, None, None), None);
        assert_eq!(known_health_bp(None, None, None, Some(10_000)), Some(0), "down and silent: 0, not 8000");
        assert_eq!(
            known_health_bp(Some(0), Some(0), None, Some(10_000)),
            Some(0),
            "an idle host does not revive a dead endpoint"
        );
        assert_eq!(known_health_bp(Some(0), Some(0), Some(0), Some(9_999)), Some(8000));
        assert_eq!(known_health_bp(None, None, Some(0), Some(0)), Some(10_000));
        assert_eq!(measurement_health_bp(&seen(100, 0)), Some(7500));
    }

    #[test]
    fn a_lying_owner_is_flagged_and_falls_below_the_floor() {
        let owner = Measurement { cpu_bp: Some(0), memory_bp: Some(0), ..seen(10, 0) };
        let f = floor_health(Some(&owner), &[&seen(400, 0)]);
        assert!(f.flagged);
        assert_eq!(f.owner_health_bp, Some(9900));
        assert_eq!(f.health_bp, Some(2000), "worst cpu/memory, the observed latency");
        assert_eq!(f.latency_ms_p50, Some(400));
        // An honest owner: observers a little slower (their own network path) are not a dispute.
        let owner = Measurement { cpu_bp: Some(2000), memory_bp: Some(2000), ..seen(40, 100) };
        let f = floor_health(Some(&owner), &[&seen(90, 100)]);
        assert!(!f.flagged);
        assert_eq!(f.health_bp, known_health_bp(Some(2000), Some(2000), Some(90), Some(100)));
        // No observers: the owner's word.
        assert_eq!(floor_health(Some(&owner), &[]).health_bp, measurement_health_bp(&owner));
    }

    #[test]
    fn shares_and_limits() {
        assert_eq!(share_hs(1000, 7000), 700);
        assert_eq!(share_hs(u64::MAX, 10_000), u128::from(u64::MAX));
        assert_eq!(load_limit_hs(1000, 9000), 900);
    }
}
