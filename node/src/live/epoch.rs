//! One scheduling epoch, and the thread that runs them: gather committed state at one height
//! (in process — the node holds it) and this epoch's measurements, call the pure
//! [`decide`], sign and broadcast what it returns.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use hashmesh_abci::core::State;
use hashmesh_abci::AppHandle;
use hashmesh_plane::host::clock::now_ms;
use hashmesh_protocol::{Body, SignedTx};
use hashmesh_scheduler::decide::{
    decide, DecideConfig, DecideMemory, EpochView, ViewEndpoint, ViewGroup, ViewOffer, ViewPending,
};
use hashmesh_scheduler::loans::{loan_reports, AgentWork, LoanInputs, LoanMemory, ViewLoan};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use tracing::{info, warn};

use super::source::TelemetrySource;
use super::SchedulerSettings;
use crate::signer::Signer;

/// Counters of the loop, exported on `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct LiveMetrics {
    /// Epochs run.
    pub epochs: Counter,
    /// Telemetry reports broadcast.
    pub reports: Counter,
    /// Route changes proposed.
    pub moves: Counter,
    /// Votes cast.
    pub votes: Counter,
    /// Epochs that failed (no committed state yet, CometBFT unreachable, …).
    pub errors: Counter,
    /// Loan work reports broadcast.
    pub loan_reports: Counter,
}

impl LiveMetrics {
    /// Register every metric under `hashmesh_scheduler_`.
    pub fn register(&self, r: &mut Registry) {
        r.register("hashmesh_scheduler_epochs", "Scheduling epochs run", self.epochs.clone());
        r.register(
            "hashmesh_scheduler_reports",
            "Endpoints reported in telemetry batches (owner and observer entries)",
            self.reports.clone(),
        );
        r.register("hashmesh_scheduler_moves", "Route changes proposed", self.moves.clone());
        r.register("hashmesh_scheduler_votes", "Votes cast on pending directives", self.votes.clone());
        r.register("hashmesh_scheduler_errors", "Epochs that failed", self.errors.clone());
        r.register("hashmesh_scheduler_loan_reports", "Loan work reports broadcast", self.loan_reports.clone());
    }
}

/// Committed state as `decide` reads it.
#[must_use]
pub fn epoch_view(state: &State) -> EpochView {
    let params = state.params();
    EpochView {
        height: state.height(),
        health_floor_bp: params.health_floor_bp,
        max_utilization_bp: params.max_utilization_bp,
        endpoints: state
            .endpoints()
            .map(|e| {
                let judged = state.fresh_health(&e.id);
                let observers = state
                    .telemetry(&e.id)
                    .map(|t| t.fresh(state.height(), params.telemetry_stale_blocks).1.into_iter().copied().collect())
                    .unwrap_or_default();
                ViewEndpoint {
                    id: e.id.clone(),
                    owner: e.owner,
                    capacity_hs: e.capacity_hs,
                    drained: e.drained,
                    load_hs: state.endpoint_load_hs(&e.id),
                    health_bp: judged.health_bp,
                    latency_ms_p50: judged.latency_ms_p50,
                    observers,
                }
            })
            .collect(),
        groups: state
            .groups()
            .map(|g| ViewGroup {
                id: g.id.clone(),
                owner: g.owner,
                hashrate_hs: g.hashrate_hs,
                route: state.assignment(&g.id).map(|a| (a.directive, a.targets.clone())),
            })
            .collect(),
        pending: state
            .pending()
            .filter_map(|d| match SignedTx::decode(&d.tx).ok()?.body {
                Body::Route { group, targets } => Some(ViewPending {
                    id: d.id,
                    group,
                    targets,
                    voters_required: d.voters_required.clone(),
                    approvals: d.approvals.clone(),
                }),
                _ => None,
            })
            .collect(),
        offers: state
            .offers()
            .filter(|o| state.offer_open(o))
            .map(|o| ViewOffer {
                endpoint: o.endpoint.clone(),
                max_hs: o.max_hs,
                fee_bp: o.fee_bp,
                lent_hs: state.lent_hs(&o.endpoint, None),
            })
            .collect(),
    }
}

/// Every loan in committed state, as the loop reports on them.
#[must_use]
pub fn loan_views(state: &State) -> Vec<ViewLoan> {
    state
        .loans()
        .map(|l| ViewLoan {
            group: l.group.clone(),
            endpoint: l.endpoint.clone(),
            borrower: l.borrower,
            lender: l.lender,
            opened_height: l.opened_height,
            closed_height: l.closed_height,
            borrower_last: l.book.borrower_readings.last,
            lender_last: l.book.lender_readings.last,
        })
        .collect()
}

/// The loop's memory between epochs.
pub struct Scheduler {
    app: AppHandle,
    signer: Arc<Signer>,
    settings: SchedulerSettings,
    source: Box<dyn TelemetrySource>,
    hosts: super::host::HostMetrics,
    shares: super::shares::ShareMetrics,
    memory: DecideMemory,
    loans: LoanMemory,
    metrics: LiveMetrics,
}

impl Scheduler {
    /// A scheduler for the pool of `signer`, reading committed state from `app`.
    ///
    /// # Errors
    /// If `[scheduler.host_metrics]` or `[scheduler.share_metrics]` is malformed.
    pub fn new(
        app: AppHandle,
        signer: Arc<Signer>,
        settings: SchedulerSettings,
        source: Box<dyn TelemetrySource>,
        metrics: LiveMetrics,
    ) -> Result<Self> {
        let hosts = super::host::HostMetrics::new(&settings.host_metrics)?;
        let shares = super::shares::ShareMetrics::new(&settings.share_metrics, &settings.share_metric)?;
        Ok(Self {
            app,
            signer,
            settings,
            source,
            hosts,
            shares,
            memory: DecideMemory::default(),
            loans: LoanMemory::default(),
            metrics,
        })
    }

    /// Run one epoch; returns the length of the next one, ms.
    ///
    /// # Errors
    /// If there is no committed state yet or CometBFT cannot be reached.
    pub fn epoch(&mut self) -> Result<u64> {
        let now = now_ms();
        let me = self.signer.pool_id();
        let state = self.app.committed_state().context("no committed state yet (waiting for genesis)")?;
        let view = epoch_view(&state);
        let own: Vec<(hashmesh_protocol::EndpointId, u128, u64)> =
            view.endpoints.iter().filter(|e| e.owner == me).map(|e| (e.id.clone(), e.load_hs, e.capacity_hs)).collect();
        let mut measured: BTreeMap<_, _> = self.source.measure(&own, now);
        if !self.hosts.is_empty() {
            let owned: std::collections::BTreeSet<_> = own.iter().map(|(e, _, _)| e.clone()).collect();
            self.hosts.fill(&mut measured, &|e| owned.contains(e));
        }
        let cfg = DecideConfig {
            dwell_ms_min: self.settings.dwell_ms_min,
            gain_bp_min: self.settings.gain_bp_min,
            moves_per_epoch_max: self.settings.moves_per_epoch_max as usize,
            health_floor_bp: (self.settings.health_floor.clamp(0.0, 1.0) * 10_000.0).round() as u32,
        };
        let d = decide(&me, &view, &measured, &mut self.memory, &cfg, now);
        // Loans as committed now, after the agents' work was taken: work at a loan's endpoint
        // can only follow the loan's commit, so none of it finds no loan.
        let loan_bodies = match self.app.committed_state() {
            Some(now) => self.loan_reports(now.height(), &loan_views(&now)),
            None => Vec::new(),
        };
        self.metrics.loan_reports.inc_by(loan_bodies.len() as u64);
        for body in d.bodies.into_iter().chain(loan_bodies) {
            match &body {
                Body::Route { group, targets } => info!(group = %group, route = ?targets, "proposing a route change"),
                Body::Vote { directive, approve } => {
                    info!(directive = %directive, approve, "voting on a pending route")
                }
                _ => {}
            }
            let b = self.signer.broadcast(body)?;
            if b.code != 0 {
                warn!(code = b.code, log = %b.log, "scheduler transaction refused");
            }
        }
        self.metrics.reports.inc_by(d.reports);
        self.metrics.moves.inc_by(d.moves);
        self.metrics.votes.inc_by(d.votes);
        self.metrics.epochs.inc();
        // Feed back: poll slower while busy (the article's adaptive interval).
        Ok(if d.busy { self.settings.epoch_ms_high_load } else { self.settings.epoch_ms })
    }

    /// This epoch's loan reports: the work the pool's groups did at other pools' endpoints
    /// (from the agents' windows), and what the pool's endpoints counted for other pools'
    /// groups (from their share counters).
    fn loan_reports(&mut self, height: u64, loans: &[ViewLoan]) -> Vec<Body> {
        let me = self.signer.pool_id();
        let work = self
            .source
            .group_work()
            .into_iter()
            .map(|w| AgentWork { groups: w.groups, endpoint: w.endpoint, hashes: w.hashes, through_ms: w.through_ms })
            .collect();
        let lent: Vec<_> = loans.iter().filter(|l| l.lender == me).map(|l| l.endpoint.clone()).collect();
        let scrapes = if lent.is_empty() { Default::default() } else { self.shares.scrape(&lent, &now_ms) };
        loan_reports(&me, height, loans, &LoanInputs { work, scrapes }, &mut self.loans)
    }

    /// Run epochs forever on this thread.
    pub fn run(mut self) {
        let mut wait = self.settings.epoch_ms;
        loop {
            std::thread::sleep(Duration::from_millis(wait));
            match self.epoch() {
                Ok(next) => wait = next,
                Err(e) => {
                    self.metrics.errors.inc();
                    warn!("scheduling epoch failed: {e:#}");
                }
            }
        }
    }
}
