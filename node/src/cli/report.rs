//! `hashmesh tx report`: one epoch of telemetry for one of the pool's endpoints.

use anyhow::{Context, Result};
use clap::Args;
use hashmesh_protocol::{Body, TelemetryReport};

#[derive(Args)]
#[command(
    after_help = "Example:\n  hashmesh tx report --home H --endpoint pool-a/ep-1 --epoch 42 --cpu-bp 3500 --latency-p50-ms 35 --latency-p99-ms 120"
)]
pub(crate) struct ReportArgs {
    /// The endpoint (yours).
    #[arg(long)]
    endpoint: String,
    /// Reporting epoch; must increase with every report for this endpoint.
    #[arg(long)]
    epoch: u64,
    /// Accepted hashrate, H/s.
    #[arg(long, default_value_t = 0)]
    hashrate_hs: u64,
    /// Shares accepted in the epoch.
    #[arg(long, default_value_t = 0)]
    accepted: u64,
    /// Shares rejected in the epoch.
    #[arg(long, default_value_t = 0)]
    rejected: u64,
    /// Shares for stale work in the epoch.
    #[arg(long, default_value_t = 0)]
    stale: u64,
    /// Median submit latency, ms.
    #[arg(long, default_value_t = 0)]
    latency_p50_ms: u32,
    /// 99th percentile submit latency, ms.
    #[arg(long, default_value_t = 0)]
    latency_p99_ms: u32,
    /// CPU utilisation, basis points.
    #[arg(long, default_value_t = 0)]
    cpu_bp: u16,
    /// Memory pressure, basis points.
    #[arg(long, default_value_t = 0)]
    memory_bp: u16,
    /// Error rate over the last minute, basis points.
    #[arg(long, default_value_t = 0)]
    error_bp: u16,
    /// Requests waiting.
    #[arg(long, default_value_t = 0)]
    queue: u32,
    /// Miners connected.
    #[arg(long, default_value_t = 0)]
    miners: u32,
}

impl ReportArgs {
    /// The transaction body these flags describe.
    pub(crate) fn body(&self) -> Result<Body> {
        Ok(Body::ReportTelemetry {
            endpoint: self.endpoint.parse().with_context(|| format!("--endpoint {:?}", self.endpoint))?,
            report: TelemetryReport {
                epoch: self.epoch,
                hashrate_hs: self.hashrate_hs,
                shares_accepted: self.accepted,
                shares_rejected: self.rejected,
                shares_stale: self.stale,
                latency_ms_p50: self.latency_p50_ms,
                latency_ms_p99: self.latency_p99_ms,
                cpu_bp: self.cpu_bp,
                memory_bp: self.memory_bp,
                error_bp: self.error_bp,
                queue_len: self.queue,
                miners: self.miners,
            },
        })
    }
}
