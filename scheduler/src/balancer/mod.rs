//! Per-request endpoint choice. Every balancer sees the same [`EndpointView`]s and picks one
//! index; the simulator drives them all on the same seeded workload.

mod article;
mod basic;
mod p2c;

pub use article::{ArticleDynamicWeights, ArticleScore, EwmaTiers};
pub use basic::{LeastConnections, RoundRobin, SmoothWeighted, StaticWeights};
pub use p2c::{peak_ewma, PeakEwmaP2c};

use crate::rng::Rng;

/// What a balancer may know about one endpoint when it picks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EndpointView {
    /// Passes health checks (not failed, not ejected).
    pub up: bool,
    /// Configured capacity (any unit; only ratios matter).
    pub capacity: f64,
    /// Health score in [0, 1].
    pub health: f64,
    /// Requests in flight.
    pub pending: u32,
    /// Last reported submit latency, ms.
    pub latency_ms: f64,
    /// Reported hashrate (the article's score uses it).
    pub hashrate: f64,
    /// EWMA forecast throughput, QPS.
    pub forecast_qps: f64,
    /// Cold-start factor in [0, 1].
    pub ramp: f64,
}

/// A load-balancing strategy.
pub trait Balancer {
    /// A short stable name for tables.
    fn name(&self) -> &'static str;
    /// Choose an endpoint, or `None` if none is up.
    fn pick(&mut self, endpoints: &[EndpointView], now_ms: u64, rng: &mut Rng) -> Option<usize>;
    /// Learn a request's outcome (latency in ms). Default: ignore.
    fn observe(&mut self, _endpoint: usize, _latency_ms: f64, _now_ms: u64) {}
}

/// Indices of endpoints that are up.
fn up(endpoints: &[EndpointView]) -> impl Iterator<Item = usize> + '_ {
    endpoints.iter().enumerate().filter(|(_, e)| e.up).map(|(i, _)| i)
}
