//! The plane's Prometheus metrics (`hashmesh_plane_*`), updated by the service's actor.

use std::sync::{Arc, Mutex};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry as MetricsRegistry;

/// Plane metrics for `/metrics`.
#[derive(Debug, Clone)]
pub struct PlaneMetrics {
    /// Agents with an open connection.
    pub connected: Gauge,
    /// Agents judged lost.
    pub lost: Gauge,
    /// Instructions waiting for agents' acknowledgements, summed over agents.
    pub outstanding: Gauge,
    /// Instructions written to agents.
    pub instructions_sent: Counter,
    /// Acknowledgements accepted (first time).
    pub acks: Counter,
    /// Agent queues compacted because the agent fell too far behind.
    pub resyncs: Counter,
    /// Receipts seen committed.
    pub receipts_committed: Counter,
    /// Agents' measurement windows counted into the epoch's telemetry.
    pub windows_counted: Counter,
    /// Agents' measurement windows not counted (repeated, or over the bound of endpoints).
    pub windows_dropped: Counter,
    /// Connections closed for a protocol error or a failed identity check.
    pub refused: Counter,
    /// Commit-to-acknowledgement latency, seconds (ms resolution: the state machine's clock).
    pub ack_latency_seconds: Histogram,
    /// Recent commit-to-acknowledged latencies, ms (bounded; benchmarks read them).
    pub ack_latencies_ms: Arc<Mutex<Vec<u64>>>,
}

impl Default for PlaneMetrics {
    fn default() -> Self {
        Self {
            connected: Gauge::default(),
            lost: Gauge::default(),
            outstanding: Gauge::default(),
            instructions_sent: Counter::default(),
            acks: Counter::default(),
            resyncs: Counter::default(),
            receipts_committed: Counter::default(),
            windows_counted: Counter::default(),
            windows_dropped: Counter::default(),
            refused: Counter::default(),
            // 1 ms … 16 s.
            ack_latency_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 15)),
            ack_latencies_ms: Arc::default(),
        }
    }
}

/// Most latencies kept in [`PlaneMetrics::ack_latencies_ms`].
pub(crate) const LATENCIES_KEPT: usize = 100_000;

impl PlaneMetrics {
    /// Register every metric under `hashmesh_plane_`.
    pub fn register(&self, r: &mut MetricsRegistry) {
        r.register("hashmesh_plane_agents_connected", "Agents with an open plane connection", self.connected.clone());
        r.register("hashmesh_plane_agents_lost", "Agents judged lost by phi accrual", self.lost.clone());
        r.register(
            "hashmesh_plane_instructions_outstanding",
            "Instructions waiting for agents' acknowledgements, summed over agents",
            self.outstanding.clone(),
        );
        r.register(
            "hashmesh_plane_instructions_sent",
            "Instructions written to agents",
            self.instructions_sent.clone(),
        );
        r.register("hashmesh_plane_acks", "Instructions acknowledged by agents", self.acks.clone());
        r.register("hashmesh_plane_resyncs", "Agent queues compacted to the latest routes", self.resyncs.clone());
        r.register(
            "hashmesh_plane_measurement_windows",
            "Agents' measurement windows counted into the epoch's telemetry",
            self.windows_counted.clone(),
        );
        r.register(
            "hashmesh_plane_measurement_windows_dropped",
            "Agents' measurement windows not counted (repeated, or over the bound of endpoints)",
            self.windows_dropped.clone(),
        );
        r.register(
            "hashmesh_plane_receipts_committed",
            "Receipts seen committed on chain",
            self.receipts_committed.clone(),
        );
        r.register(
            "hashmesh_plane_connections_refused",
            "Plane connections closed for a protocol or identity error",
            self.refused.clone(),
        );
        r.register(
            "hashmesh_plane_ack_latency_seconds",
            "Commit-to-acknowledgement latency of instructions",
            self.ack_latency_seconds.clone(),
        );
    }
}
