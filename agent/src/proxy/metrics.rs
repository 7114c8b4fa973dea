//! The agent's `/metrics` (`metrics_listen` in `stratum.json`): the proxy's status as
//! OpenMetrics text, built with `prometheus-client` on each scrape.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::core::ProxyStatus;

type Labels = Vec<(String, String)>;

/// `status` as OpenMetrics text.
#[must_use]
pub fn render(status: &ProxyStatus) -> String {
    let mut r = Registry::with_prefix("hashmesh_agent");
    let miners: Gauge = Gauge::default();
    miners.set(i64::try_from(status.miners).unwrap_or(i64::MAX));
    r.register("miners", "Miners connected to this agent", miners);
    let at: Family<Labels, Gauge> = Family::default();
    let up: Family<Labels, Gauge> = Family::default();
    let in_flight: Family<Labels, Gauge> = Family::default();
    let failures: Family<Labels, Counter> = Family::default();
    let shares: Family<Labels, Counter> = Family::default();
    let difficulty: Family<Labels, Counter<f64>> = Family::default();
    for e in &status.endpoints {
        let l = vec![("endpoint".to_owned(), e.endpoint.to_string())];
        at.get_or_create(&l).set(i64::try_from(e.miners).unwrap_or(i64::MAX));
        up.get_or_create(&l).set(i64::from(e.usable));
        in_flight.get_or_create(&l).set(i64::try_from(e.in_flight).unwrap_or(i64::MAX));
        failures.get_or_create(&l).inc_by(u64::from(e.failures));
        difficulty.get_or_create(&l).inc_by(e.totals.accepted_difficulty);
        for (result, n) in [("accepted", e.totals.accepted), ("rejected", e.totals.rejected), ("stale", e.totals.stale)]
        {
            let mut l = l.clone();
            l.push(("result".into(), result.into()));
            shares.get_or_create(&l).inc_by(n);
        }
    }
    r.register("endpoint_miners", "Miners whose work goes to the endpoint", at);
    r.register("endpoint_usable", "1 when work goes to the endpoint (up, and past any fail-back dwell)", up);
    r.register("endpoint_in_flight", "Shares waiting for the endpoint's verdict", in_flight);
    r.register("endpoint_failures", "Times the endpoint failed (closed, refused, garbage, unanswered)", failures);
    r.register("shares", "Shares answered, by endpoint and result", shares);
    r.register("accepted_difficulty", "Sum of the difficulty of accepted shares, by endpoint", difficulty);
    let mut text = String::new();
    encode(&mut text, &r).expect("encoding to a String");
    text
}
