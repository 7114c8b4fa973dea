//! The agent's `/metrics` (`metrics_listen` in `stratum.json`): the proxy's status as
//! OpenMetrics text, built with `prometheus-client` on each scrape. Per endpoint always; per
//! worker when `worker_metrics` is on (at most `workers_max` workers).

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::{Registry, Unit};

use super::core::LatencySummary;
use super::core::ProxyStatus;

type Labels = Vec<(String, String)>;

/// Submit latency histograms by endpoint, from the HDR histograms the proxy keeps (the
/// Prometheus buckets are read off them at scrape time).
#[derive(Debug, Default)]
struct LatencyFamily(Vec<(Labels, LatencySummary)>);

impl TypedMetric for LatencyFamily {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for LatencyFamily {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        for (labels, s) in &self.0 {
            // Per-bucket counts (the encoder accumulates them), then +Inf.
            let mut buckets = Vec::with_capacity(s.buckets.len() + 1);
            let mut below = 0;
            for &(le, cumulative) in &s.buckets {
                buckets.push((le, cumulative - below));
                below = cumulative;
            }
            buckets.push((f64::INFINITY, s.count - below));
            encoder.encode_family(labels)?.encode_histogram::<NoLabelSet>(s.sum_seconds, s.count, &buckets, None)?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

fn gauge(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn shares(family: &Family<Labels, Counter>, labels: &Labels, totals: &super::meter::Counts) {
    for (result, n) in [("accepted", totals.accepted), ("rejected", totals.rejected), ("stale", totals.stale)] {
        let mut l = labels.clone();
        l.push(("result".into(), result.into()));
        family.get_or_create(&l).inc_by(n);
    }
}

/// `status` as OpenMetrics text; per-worker series when `per_worker`.
#[must_use]
pub fn render(status: &ProxyStatus, per_worker: bool) -> String {
    let mut r = Registry::with_prefix("hashmesh_agent");
    let miners: Gauge = Gauge::default();
    miners.set(gauge(status.miners as u64));
    r.register("miners", "Miners connected to this agent", miners);
    let at: Family<Labels, Gauge> = Family::default();
    let up: Family<Labels, Gauge> = Family::default();
    let in_flight: Family<Labels, Gauge> = Family::default();
    let failures: Family<Labels, Counter> = Family::default();
    let share_family: Family<Labels, Counter> = Family::default();
    let difficulty: Family<Labels, Counter<f64>> = Family::default();
    let hashrate: Family<Labels, Gauge> = Family::default();
    let last_share: Family<Labels, Gauge> = Family::default();
    let job_age: Family<Labels, Gauge<f64, std::sync::atomic::AtomicU64>> = Family::default();
    let mut latency = LatencyFamily::default();
    for e in &status.endpoints {
        let l = vec![("endpoint".to_owned(), e.endpoint.to_string())];
        at.get_or_create(&l).set(gauge(e.miners as u64));
        up.get_or_create(&l).set(i64::from(e.usable));
        in_flight.get_or_create(&l).set(gauge(e.in_flight as u64));
        failures.get_or_create(&l).inc_by(u64::from(e.failures));
        difficulty.get_or_create(&l).inc_by(e.totals.accepted_difficulty);
        hashrate.get_or_create(&l).set(gauge(e.hashrate_hs));
        if let Some(t) = e.totals.last_share_ms {
            last_share.get_or_create(&l).set(gauge(t / 1000));
        }
        if let Some(age) = e.last_job_age_ms {
            job_age.get_or_create(&l).set(age as f64 / 1000.0);
        }
        shares(&share_family, &l, &e.totals);
        latency.0.push((l, e.submit_latency.clone()));
    }
    let window = status.hashrate_window_secs;
    r.register("endpoint_miners", "Miners whose work goes to the endpoint", at);
    r.register("endpoint_usable", "1 when work goes to the endpoint (up, and past any fail-back dwell)", up);
    r.register("endpoint_in_flight", "Shares waiting for the endpoint's verdict", in_flight);
    r.register("endpoint_failures", "Times the endpoint failed (closed, refused, garbage, unanswered)", failures);
    r.register("shares", "Shares answered, by endpoint and result", share_family);
    r.register("accepted_difficulty", "Sum of the difficulty of accepted shares, by endpoint", difficulty);
    r.register(
        "endpoint_hashrate",
        format!("Hashrate from accepted difficulty (difficulty x 2^32 per second) over the last {window} s, H/s"),
        hashrate,
    );
    r.register("endpoint_last_share_timestamp", "When the endpoint last answered a share, Unix seconds", last_share);
    r.register_with_unit("endpoint_last_job_age", "Time since the endpoint's last job", Unit::Seconds, job_age);
    r.register_with_unit("submit_latency", "Share submit to the endpoint's verdict", Unit::Seconds, latency);

    if per_worker {
        let w_shares: Family<Labels, Counter> = Family::default();
        let w_difficulty: Family<Labels, Counter<f64>> = Family::default();
        let w_hashrate: Family<Labels, Gauge> = Family::default();
        let w_last: Family<Labels, Gauge> = Family::default();
        let w_miners: Family<Labels, Gauge> = Family::default();
        for (name, w) in &status.workers {
            let l = vec![("worker".to_owned(), name.clone())];
            shares(&w_shares, &l, &w.totals);
            w_difficulty.get_or_create(&l).inc_by(w.totals.accepted_difficulty);
            w_hashrate.get_or_create(&l).set(gauge(w.hashrate_hs));
            w_miners.get_or_create(&l).set(gauge(w.miners as u64));
            if let Some(t) = w.totals.last_share_ms {
                w_last.get_or_create(&l).set(gauge(t / 1000));
            }
        }
        r.register("worker_shares", "Shares answered, by worker and result", w_shares);
        r.register("worker_accepted_difficulty", "Sum of the difficulty of accepted shares, by worker", w_difficulty);
        r.register(
            "worker_hashrate",
            format!("Hashrate from accepted difficulty over the last {window} s, H/s"),
            w_hashrate,
        );
        r.register("worker_last_share_timestamp", "When the worker's last share was answered, Unix seconds", w_last);
        r.register("worker_miners", "Connections working under the worker name now", w_miners);
    }
    let mut text = String::new();
    encode(&mut text, &r).expect("encoding to a String");
    text
}
