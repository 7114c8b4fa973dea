//! What the pool's own endpoints accepted per Stratum worker, from their share counters
//! (`[scheduler.share_metrics]`: endpoint → a Prometheus page with a counter of accepted share
//! difficulty by `worker`, `[scheduler] share_metric`). The lender's side of its loans: the
//! work done under each loan's worker name. The testnet's endpoints serve
//! `hashmesh_endpoint_accepted_difficulty_total`; a pool's own stats exporter can serve the same.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result};
use hashmesh_protocol::EndpointId;
use hashmesh_scheduler::loans::LenderScrape;
use hashmesh_telemetry::hashes_of;
use tracing::warn;

/// The default counter name (the testnet endpoint's).
pub const SHARE_METRIC: &str = "hashmesh_endpoint_accepted_difficulty_total";

/// How long a scrape may take.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(1);

/// The share counters of the pool's endpoints.
#[derive(Debug, Default)]
pub struct ShareMetrics {
    urls: BTreeMap<EndpointId, String>,
    metric: String,
}

impl ShareMetrics {
    /// From `[scheduler.share_metrics]` and `share_metric`.
    ///
    /// # Errors
    /// A key that is not an endpoint id, or a value that is not an `http://` URL.
    pub fn new(config: &BTreeMap<String, String>, metric: &str) -> Result<Self> {
        let mut urls = BTreeMap::new();
        for (e, url) in config {
            let id: EndpointId =
                e.parse().with_context(|| format!("[scheduler.share_metrics]: {e:?} is not an endpoint id"))?;
            hashmesh_plane::host::http::split_url(url).with_context(|| format!("[scheduler.share_metrics] {e}"))?;
            urls.insert(id, url.clone());
        }
        Ok(Self { urls, metric: metric.to_owned() })
    }

    /// Scrape each of `endpoints` that has a URL (each URL once), stamped with `now_ms()` as read
    /// after the answer; endpoints whose page does not answer or parse are left out (their
    /// loans are not reported this epoch).
    pub fn scrape(&self, endpoints: &[EndpointId], now_ms: &dyn Fn() -> u64) -> BTreeMap<EndpointId, LenderScrape> {
        let mut pages: BTreeMap<&str, Option<LenderScrape>> = BTreeMap::new();
        let mut out = BTreeMap::new();
        for e in endpoints {
            let Some(url) = self.urls.get(e) else { continue };
            let page = pages.entry(url).or_insert_with(|| {
                match hashmesh_plane::host::http::split_url(url).and_then(|(addr, path)| {
                    hashmesh_plane::host::http::request(&addr, "GET", &path, "", SCRAPE_TIMEOUT)
                }) {
                    Ok(text) => match parse(&text, &self.metric) {
                        Ok(workers) => Some(LenderScrape { at_ms: now_ms(), workers }),
                        Err(err) => {
                            warn!(endpoint = %e, url = %url, "share counters unreadable; loans there wait: {err:#}");
                            None
                        }
                    },
                    Err(err) => {
                        warn!(endpoint = %e, url = %url, "share counters unavailable; loans there wait: {err:#}");
                        None
                    }
                }
            });
            if let Some(p) = page {
                out.insert(e.clone(), p.clone());
            }
        }
        out
    }
}

/// The accepted work per worker in an exporter's text, hashes.
///
/// # Errors
/// If the text is not Prometheus text.
pub fn parse(text: &str, metric: &str) -> Result<BTreeMap<String, u128>> {
    let scrape =
        prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).context("not Prometheus text")?;
    let mut out = BTreeMap::new();
    for s in scrape.samples.iter().filter(|s| s.metric == metric) {
        let v = match s.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
            _ => continue,
        };
        if let Some(w) = s.labels.get("worker") {
            *out.entry(w.to_owned()).or_insert(0) += hashes_of(v);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_worker_difficulty_becomes_hashes() {
        let text = "\
# TYPE hashmesh_endpoint_accepted_difficulty counter
hashmesh_endpoint_accepted_difficulty_total{worker=\"a.pool-a/g-1.7\"} 2.5
hashmesh_endpoint_accepted_difficulty_total{worker=\"b\"} 1
# TYPE other counter
other_total{worker=\"a.pool-a/g-1.7\"} 99
";
        let w = parse(text, SHARE_METRIC).unwrap();
        assert_eq!(w.len(), 2);
        assert_eq!(w["a.pool-a/g-1.7"], hashes_of(2.5));
        assert_eq!(w["b"], hashes_of(1.0));
        assert!(
            ShareMetrics::new(&[("x y".to_owned(), "http://127.0.0.1:1/m".to_owned())].into(), SHARE_METRIC).is_err()
        );
    }
}
