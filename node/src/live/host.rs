//! CPU and memory of the pool's own endpoints, from their hosts' exporters
//! (`[scheduler.host_metrics]`: endpoint → `http://HOST:PORT/metrics` of a node_exporter, or
//! anything serving `node_cpu_seconds_total` and `node_memory_{MemTotal,MemAvailable}_bytes`).
//! Only the owner can see them; the agents' measurements leave them unknown. Each epoch the
//! node scrapes every configured host once and fills in what two scrapes tell
//! (`hashmesh_telemetry::host_usage_bp`); an endpoint whose host does not answer stays unknown.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use hashmesh_protocol::{EndpointId, Measurement};
use hashmesh_telemetry::{host_usage_bp, HostSample};
use tracing::warn;

/// A host's (CPU, memory) utilisation, bp, each unknown when unmeasured.
type Usage = (Option<u16>, Option<u16>);

/// How long a scrape may take.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(1);

/// The hosts behind the pool's endpoints and their last samples.
#[derive(Debug, Default)]
pub struct HostMetrics {
    urls: BTreeMap<EndpointId, String>,
    last: BTreeMap<String, HostSample>,
}

impl HostMetrics {
    /// From `[scheduler.host_metrics]`.
    ///
    /// # Errors
    /// A key that is not an endpoint id, or a value that is not an `http://` URL.
    pub fn new(config: &BTreeMap<String, String>) -> Result<Self> {
        let mut urls = BTreeMap::new();
        for (e, url) in config {
            let id: EndpointId =
                e.parse().with_context(|| format!("[scheduler.host_metrics]: {e:?} is not an endpoint id"))?;
            hashmesh_plane::host::http::split_url(url).with_context(|| format!("[scheduler.host_metrics] {e}"))?;
            urls.insert(id, url.clone());
        }
        Ok(Self { urls, last: BTreeMap::new() })
    }

    /// Whether any host is configured.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.urls.is_empty()
    }

    /// Fill in CPU and memory of the measured endpoints `own` says are the pool's, scraping
    /// each host once.
    pub fn fill(&mut self, measured: &mut BTreeMap<EndpointId, Measurement>, own: &dyn Fn(&EndpointId) -> bool) {
        // Each host once per epoch: its (cpu, memory), or `None` when it did not answer.
        let mut now: BTreeMap<String, Option<Usage>> = BTreeMap::new();
        for (e, m) in measured.iter_mut().filter(|(e, _)| own(e)) {
            let Some(url) = self.urls.get(e) else { continue };
            let usage = now.entry(url.clone()).or_insert_with(|| match scrape(url) {
                Ok(sample) => {
                    let usage = host_usage_bp(self.last.get(url), &sample);
                    self.last.insert(url.clone(), sample);
                    Some(usage)
                }
                Err(err) => {
                    warn!(endpoint = %e, url = %url, "host metrics unavailable, CPU and memory stay unknown: {err:#}");
                    self.last.remove(url);
                    None
                }
            });
            if let Some((cpu, memory)) = *usage {
                m.cpu_bp = cpu;
                m.memory_bp = memory;
            }
        }
    }
}

fn scrape(url: &str) -> Result<HostSample> {
    let (addr, path) = hashmesh_plane::host::http::split_url(url)?;
    let text = hashmesh_plane::host::http::request(&addr, "GET", &path, "", SCRAPE_TIMEOUT)?;
    parse(&text)
}

/// The counters in an exporter's text (Prometheus or OpenMetrics format).
///
/// # Errors
/// If the text does not parse or lacks the CPU or memory series.
pub fn parse(text: &str) -> Result<HostSample> {
    let scrape =
        prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).context("not Prometheus text")?;
    let (mut total, mut idle, mut mem_total, mut mem_avail) = (0.0, 0.0, None, None);
    let mut cpu_seen = false;
    for s in &scrape.samples {
        let v = match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => continue,
        };
        match s.metric.as_str() {
            "node_cpu_seconds_total" => {
                cpu_seen = true;
                total += v;
                if matches!(s.labels.get("mode"), Some("idle" | "iowait")) {
                    idle += v;
                }
            }
            "node_memory_MemTotal_bytes" => mem_total = Some(v),
            "node_memory_MemAvailable_bytes" => mem_avail = Some(v),
            _ => {}
        }
    }
    let (Some(memory_total_bytes), Some(memory_available_bytes)) = (mem_total, mem_avail) else {
        bail!("no node_memory_MemTotal_bytes / node_memory_MemAvailable_bytes");
    };
    if !cpu_seen {
        bail!("no node_cpu_seconds_total");
    }
    Ok(HostSample { cpu_total_seconds: total, cpu_idle_seconds: idle, memory_total_bytes, memory_available_bytes })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NODE_EXPORTER: &str = "\
# HELP node_cpu_seconds_total Seconds the CPUs spent in each mode.
# TYPE node_cpu_seconds_total counter
node_cpu_seconds_total{cpu=\"0\",mode=\"idle\"} 700
node_cpu_seconds_total{cpu=\"0\",mode=\"iowait\"} 10
node_cpu_seconds_total{cpu=\"0\",mode=\"system\"} 90
node_cpu_seconds_total{cpu=\"0\",mode=\"user\"} 200
# TYPE node_memory_MemAvailable_bytes gauge
node_memory_MemAvailable_bytes 6e+09
# TYPE node_memory_MemTotal_bytes gauge
node_memory_MemTotal_bytes 8e+09
";

    #[test]
    fn node_exporter_text_parses() {
        let s = parse(NODE_EXPORTER).unwrap();
        assert_eq!((s.cpu_total_seconds, s.cpu_idle_seconds), (1000.0, 710.0));
        assert_eq!((s.memory_total_bytes, s.memory_available_bytes), (8e9, 6e9));
        assert!(parse("# nothing here\n").is_err());
        assert!(parse("node_cpu_seconds_total{mode=\"idle\"} 1\n").is_err(), "no memory series");
    }

    #[test]
    fn bad_settings_are_refused() {
        let bad = |k: &str, v: &str| HostMetrics::new(&[(k.to_owned(), v.to_owned())].into()).is_err();
        assert!(bad("Not An Id", "http://127.0.0.1:9100/metrics"));
        assert!(bad("pool-a/ep-1", "https://127.0.0.1:9100/metrics"));
        assert!(bad("pool-a/ep-1", "http:///metrics"));
        assert!(!bad("pool-a/ep-1", "http://127.0.0.1:9100/metrics"));
    }
}
