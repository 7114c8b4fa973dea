//! One scheduling epoch, and the thread that runs them.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use hashmesh_protocol::{Body, DirectiveId, RouteTarget, SigningKey, UnsignedTx};
use hashmesh_scheduler::health::{health, HealthWeights};
use hashmesh_scheduler::planner::{plan, PlanEndpoint, PlanGroup, PlannerConfig};
use hashmesh_scheduler::telemetry::Telemetry;
use serde_json::Value;
use tracing::{info, warn};

use super::source::TelemetrySource;
use super::SchedulerSettings;
use crate::rpc::Rpc;

/// Counters of the loop, exported on `/metrics`.
#[derive(Debug, Default)]
pub struct LiveMetrics {
    /// Epochs run.
    pub epochs: AtomicU64,
    /// Telemetry reports broadcast.
    pub reports: AtomicU64,
    /// Route changes proposed.
    pub moves: AtomicU64,
    /// Votes cast.
    pub votes: AtomicU64,
    /// Epochs that failed (node unreachable, …).
    pub errors: AtomicU64,
}

impl LiveMetrics {
    /// Prometheus text.
    #[must_use]
    pub fn render(&self) -> String {
        let g = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        hashmesh_abci::prometheus_text(&[
            ("hashmesh_scheduler_epochs_total", "counter", "Scheduling epochs run.", g(&self.epochs)),
            ("hashmesh_scheduler_reports_total", "counter", "Telemetry reports broadcast.", g(&self.reports)),
            ("hashmesh_scheduler_moves_total", "counter", "Route changes proposed.", g(&self.moves)),
            ("hashmesh_scheduler_votes_total", "counter", "Votes cast on pending directives.", g(&self.votes)),
            ("hashmesh_scheduler_errors_total", "counter", "Epochs that failed.", g(&self.errors)),
        ])
    }
}

/// The loop's memory between epochs.
pub struct Scheduler {
    rpc: Rpc,
    key: SigningKey,
    chain_id: String,
    settings: SchedulerSettings,
    source: Box<dyn TelemetrySource>,
    /// Per group: the directive of its assignment when first seen, and when (ms).
    seen: BTreeMap<String, (String, u64)>,
    metrics: Arc<LiveMetrics>,
    /// Last nonce used (see `tx_cmd::fresh_nonce`).
    last_nonce: u64,
}

fn now_ms() -> u64 {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970");
    u64::try_from(d.as_millis()).expect("ms fit u64")
}

fn text(v: &Value, k: &str) -> String {
    v[k].as_str().unwrap_or_default().to_owned()
}

impl Scheduler {
    /// A scheduler for the pool of `key`, talking to `rpc`.
    #[must_use]
    pub fn new(
        rpc: Rpc,
        key: SigningKey,
        chain_id: String,
        settings: SchedulerSettings,
        source: Box<dyn TelemetrySource>,
        metrics: Arc<LiveMetrics>,
    ) -> Self {
        Self { rpc, key, chain_id, settings, source, seen: BTreeMap::new(), metrics, last_nonce: 0 }
    }

    fn broadcast(&mut self, body: Body) -> Result<()> {
        let nonce = crate::tx_cmd::fresh_nonce(self.last_nonce);
        self.last_nonce = nonce;
        let (_, bytes) =
            self.key.sign(UnsignedTx { chain_id: self.chain_id.clone(), signer: self.key.pool_id(), nonce, body });
        let b = self.rpc.broadcast_sync(&bytes)?;
        if b.code != 0 {
            warn!(code = b.code, log = %b.log, "scheduler transaction refused");
        }
        Ok(())
    }

    /// Run one epoch; returns the length of the next one, ms.
    ///
    /// # Errors
    /// If the node cannot be queried.
    pub fn epoch(&mut self) -> Result<u64> {
        let now = now_ms();
        let me = self.key.pool_id().to_hex();
        let endpoints = self.rpc.abci_query("/endpoints", b"")?;
        let groups = self.rpc.abci_query("/groups", b"")?;
        let assignments = self.rpc.abci_query("/assignments", b"")?;
        let telemetry = self.rpc.abci_query("/telemetry", b"")?;
        let pending = self.rpc.abci_query("/pending", b"")?;
        let eps: Vec<Value> = endpoints.as_array().cloned().unwrap_or_default();
        let grs: Vec<Value> = groups.as_array().cloned().unwrap_or_default();
        let asg: Vec<Value> = assignments.as_array().cloned().unwrap_or_default();
        let index: BTreeMap<String, usize> = eps.iter().enumerate().map(|(i, e)| (text(e, "id"), i)).collect();
        let hashrate: BTreeMap<String, u64> =
            grs.iter().map(|g| (text(g, "id"), g["hashrate_hs"].as_u64().unwrap_or(0))).collect();

        // Load per endpoint from the committed assignments.
        let mut load = vec![0u128; eps.len()];
        for a in &asg {
            let hr = hashrate.get(&text(a, "group")).copied().unwrap_or(0);
            for t in a["targets"].as_array().into_iter().flatten() {
                if let Some(&i) = index.get(&text(t, "endpoint")) {
                    load[i] += u128::from(hr) * u128::from(t["weight_bp"].as_u64().unwrap_or(0) as u16) / 10_000;
                }
            }
        }

        // Collect: measure our endpoints and report them on chain.
        let mut health_of: Vec<f64> = vec![1.0; eps.len()];
        let mut latency_of: Vec<f64> = vec![0.0; eps.len()];
        for t in telemetry.as_array().into_iter().flatten() {
            if t["fresh"] == true {
                if let Some(&i) = index.get(&text(t, "endpoint")) {
                    health_of[i] = t["health_bp"].as_f64().unwrap_or(10_000.0) / 10_000.0;
                    latency_of[i] = t["report"]["latency_ms_p50"].as_f64().unwrap_or(0.0);
                }
            }
        }
        let mut cpu_sum = 0.0;
        let mut own = 0usize;
        for (i, e) in eps.iter().enumerate() {
            if text(e, "owner") != me {
                continue;
            }
            let capacity = e["capacity_hs"].as_u64().unwrap_or(0);
            let report = self.source.sample(&text(e, "id"), load[i], capacity, now);
            let t = Telemetry {
                cpu: f64::from(report.cpu_bp) / 10_000.0,
                memory: f64::from(report.memory_bp) / 10_000.0,
                latency_ms_p50: report.latency_ms_p50,
                error_rate: f64::from(report.error_bp) / 10_000.0,
                ..Telemetry::default()
            };
            // Evaluate our own endpoints on what we just measured, before the chain has it.
            health_of[i] = health(&t, &HealthWeights::default());
            latency_of[i] = f64::from(report.latency_ms_p50);
            cpu_sum += t.cpu;
            own += 1;
            let endpoint = text(e, "id").parse().context("endpoint id from the chain")?;
            self.broadcast(Body::ReportTelemetry { endpoint, report })?;
            self.metrics.reports.fetch_add(1, Ordering::Relaxed);
        }

        // Decide: plan our groups over our endpoints.
        let plan_eps: Vec<PlanEndpoint> = eps
            .iter()
            .enumerate()
            .map(|(i, e)| PlanEndpoint {
                id: text(e, "id"),
                owner: text(e, "owner"),
                capacity_hs: e["capacity_hs"].as_u64().unwrap_or(0),
                health: health_of[i],
                drained: e["drained"] == true,
                ejected: health_of[i] <= 0.0,
                ramp: 1.0,
                latency_ms: latency_of[i],
            })
            .collect();
        let current: BTreeMap<String, &Value> = asg.iter().map(|a| (text(a, "group"), a)).collect();
        let mut plan_groups = Vec::new();
        for g in grs.iter().filter(|g| text(g, "owner") == me) {
            let id = text(g, "id");
            let (route, directive) = match current.get(&id) {
                Some(a) => (
                    a["targets"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|t| {
                            Some((*index.get(&text(t, "endpoint"))?, t["weight_bp"].as_u64().unwrap_or(0) as u16))
                        })
                        .collect(),
                    text(a, "directive"),
                ),
                None => (Vec::new(), String::new()),
            };
            let changed = match self.seen.get(&id) {
                Some((d, at)) if *d == directive => *at,
                _ => now,
            };
            self.seen.insert(id.clone(), (directive.clone(), changed));
            let changed_at_ms = (!directive.is_empty()).then_some(changed);
            plan_groups.push(PlanGroup {
                id,
                owner: me.clone(),
                hashrate_hs: g["hashrate_hs"].as_u64().unwrap_or(0),
                route,
                changed_at_ms,
            });
        }
        let cfg = PlannerConfig {
            min_dwell_ms: self.settings.min_dwell_ms,
            min_gain_bp: self.settings.min_gain_bp,
            max_moves_per_epoch: self.settings.max_moves_per_epoch,
            health_floor: self.settings.health_floor,
            allow_cross_pool: false,
            ..PlannerConfig::default()
        };
        // Dispatch: every move is a signed route on chain.
        for m in plan(&plan_groups, &plan_eps, &cfg, now) {
            let g = &plan_groups[m.group];
            let targets = m
                .route
                .iter()
                .map(|&(e, w)| Ok(RouteTarget { endpoint: plan_eps[e].id.parse()?, weight_bp: w }))
                .collect::<Result<Vec<_>>>()?;
            info!(group = %g.id, gain_bp = m.gain_bp, route = ?m.route, "proposing a route change");
            self.broadcast(Body::Route { group: g.id.parse()?, targets })?;
            self.metrics.moves.fetch_add(1, Ordering::Relaxed);
        }

        // Vote on routes that want our endpoints: approve if each of ours is healthy and has room.
        for d in pending.as_array().into_iter().flatten() {
            let needs_me = d["voters_required"].as_array().is_some_and(|v| v.iter().any(|p| p == me.as_str()));
            let voted = d["approvals"].as_array().is_some_and(|v| v.iter().any(|p| p == me.as_str()));
            if !needs_me || voted {
                continue;
            }
            let hr = d["body"]["group"].as_str().and_then(|g| hashrate.get(g)).copied().unwrap_or(0);
            let ok = d["body"]["targets"].as_array().into_iter().flatten().all(|t| {
                let Some(&i) = index.get(&text(t, "endpoint")) else { return false };
                if plan_eps[i].owner != me {
                    return true;
                }
                let share = u128::from(hr) * u128::from(t["weight_bp"].as_u64().unwrap_or(0) as u16) / 10_000;
                let room = (plan_eps[i].capacity_hs as f64 * cfg.max_utilization) as u128;
                health_of[i] >= cfg.health_floor && load[i] + share <= room
            });
            let directive: DirectiveId = text(d, "id").parse()?;
            info!(directive = %directive, approve = ok, "voting on a pending route");
            self.broadcast(Body::Vote { directive, approve: ok })?;
            self.metrics.votes.fetch_add(1, Ordering::Relaxed);
        }
        self.metrics.epochs.fetch_add(1, Ordering::Relaxed);
        // Feed back: poll slower while busy (the article's adaptive interval).
        let busy = own > 0 && cpu_sum / own as f64 > 0.8;
        Ok(if busy { self.settings.high_load_epoch_ms } else { self.settings.epoch_ms })
    }

    /// Run epochs forever on this thread.
    pub fn run(mut self) {
        let mut wait = self.settings.epoch_ms;
        loop {
            std::thread::sleep(Duration::from_millis(wait));
            match self.epoch() {
                Ok(next) => wait = next,
                Err(e) => {
                    self.metrics.errors.fetch_add(1, Ordering::Relaxed);
                    warn!("scheduling epoch failed: {e:#}");
                }
            }
        }
    }
}
