//! `hashmesh start`: the node daemon. Serves the ABCI application to CometBFT (its own
//! threads), and on one tokio runtime the instruction plane (QUIC) and Prometheus `/metrics`
//! (hyper); the scheduling loop and the receipt sender run on their own threads.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use hashmesh_abci::{AppHandle, Store};

use crate::live::epoch::{LiveMetrics, Scheduler};
use crate::live::source::{AgentSource, TelemetrySource};
use crate::live::Source;
use crate::rpc::Rpc;
use crate::signer::Signer;
use tracing::{error, info, warn};

use crate::home::Home;
use crate::plane::peers::{ChainView, OpenOffer, PeerConfig};
use crate::plane::service::{self, PlaneHandle, PlaneOptions};
use crate::plane::store::PlaneStore;
use crate::plane::{receipts, registry};
use hashmesh_abci::core::Assignment;
use hashmesh_plane::transport::identity::tls_identity;
use hashmesh_protocol::{EndpointId, GroupId, PoolId};

/// Start the daemon (`hashmesh start`) and block until the ABCI server stops. Measurements come
/// from the pool's agents; a config that asks for the testnet's synthetic source is refused.
///
/// # Errors
/// If the state cannot be opened or a port cannot be bound.
pub fn run(home: &Home) -> Result<()> {
    run_with(home, None)
}

/// Like [`run`], with a telemetry source for `scheduler.source = "synthetic"` supplied by the
/// caller (the testnet's model, `hashmesh-testnet start`). The node says loudly when it runs.
///
/// # Errors
/// As [`run`].
pub fn run_with(home: &Home, synthetic: Option<Box<dyn TelemetrySource>>) -> Result<()> {
    exit_on_panic();
    inject_panic_if_asked()?;
    let dir = home.state_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let options = home.config.store.options()?;
    let store = Store::open_with(&dir, options)
        .with_context(|| format!("opening state in {}; is another `hashmesh start` using this home?", dir.display()))?;
    let app = AppHandle::new(store).context("loading committed state")?;
    if std::env::var_os("HASHMESH_FAULT_BYZANTINE_PROPOSER").is_some() {
        // The fault suite's byzantine validator. Never set in production.
        warn!("fault injection: this node proposes transactions no honest proposer makes");
        app.act_byzantine();
    }
    if let Some(spec) = std::env::var_os("HASHMESH_FAULT_CRASH") {
        // The fault suite's crash window (`before:N` / `after:N`). Never set in production.
        let spec = spec.to_string_lossy().into_owned();
        let (point, n) = spec.split_once(':').context("HASHMESH_FAULT_CRASH is before:N or after:N")?;
        let point = match point {
            "before" => hashmesh_abci::CrashPoint::BeforePersist,
            "after" => hashmesh_abci::CrashPoint::AfterPersist,
            _ => anyhow::bail!("HASHMESH_FAULT_CRASH is before:N or after:N, not {spec:?}"),
        };
        let n: u64 = n.parse().with_context(|| format!("HASHMESH_FAULT_CRASH {spec:?}: N is a commit count"))?;
        warn!(?point, n, "fault injection: this node aborts in its {n}th Commit");
        app.crash_in_commit(point, n);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("node")
        .enable_all()
        .build()
        .context("starting the node's tokio runtime")?;
    let live = LiveMetrics::default();
    let signer = Arc::new(Signer::new(home.signing_key()?, Rpc::new(&home.config.rpc), home.config.chain_id.clone()));
    let plane = match home.config.plane.listen {
        Some(listen) => Some(start_plane(home, listen, &app, Arc::clone(&signer), rt.handle())?),
        None => None,
    };
    if let Some(metrics_listen) = home.config.metrics_listen {
        let mut registry = prometheus_client::registry::Registry::default();
        app.metrics().register(&mut registry);
        live.register(&mut registry);
        if let Some(p) = &plane {
            p.plane.metrics.register(&mut registry);
        }
        crate::metrics::serve(rt.handle(), metrics_listen, Arc::new(registry))?;
    }
    if home.config.scheduler.enabled {
        start_scheduler(home, &app, signer, live, plane.as_ref().map(|p| Arc::clone(&p.plane)), synthetic)?;
    }
    let listener = TcpListener::bind(home.config.abci_listen)
        .with_context(|| format!("binding ABCI on {}; is another node using it?", home.config.abci_listen))?;
    info!(abci = %home.config.abci_listen, metrics = ?home.config.metrics_listen, moniker = %home.config.moniker, "hashmesh node started; waiting for CometBFT");
    eprintln!(
        "hashmesh: ABCI listening on {} (set CometBFT proxy_app = \"tcp://{}\")",
        home.config.abci_listen, home.config.abci_listen
    );
    let served = hashmesh_abci::server::serve(listener, app).context("ABCI server stopped");
    if let Some(p) = plane {
        p.close();
    }
    rt.shutdown_timeout(Duration::from_secs(2));
    served
}

/// Start the instruction plane: outbox, QUIC listener, commit hook, receipt sender.
///
/// # Errors
/// If the key, registry or outbox cannot be loaded, or the UDP address cannot be bound.
fn start_plane(
    home: &Home,
    listen: std::net::SocketAddr,
    app: &AppHandle,
    signer: Arc<Signer>,
    rt: &tokio::runtime::Handle,
) -> Result<PlaneHandle> {
    let key = home.signing_key()?;
    let id = tls_identity(&ed25519_dalek::SigningKey::from_bytes(&key.seed()))?;
    let registry = registry::load(&home.dir)?;
    let store = PlaneStore::open(&home.state_dir().with_file_name("plane"))?;
    let assignments: Vec<Assignment> =
        app.committed_state().map(|s| s.assignments().cloned().collect()).unwrap_or_default();
    let opts =
        PlaneOptions { listen, phi_threshold: home.config.plane.phi_threshold, status_dir: Some(home.dir.clone()) };
    let agents = registry.len();
    let peers = PeerConfig {
        me: key.pool_id(),
        addrs: home.config.plane.peers.clone(),
        chain: Arc::new(CommittedView(app.clone())),
        identity: id.clone(),
    };
    let handle = service::start(store, registry, &id, &assignments, opts, Some(peers), rt)?;
    let commits = handle.commits.clone();
    app.on_commit(Arc::new(move |n| {
        // Bounded: a plane that falls behind makes the commit wait; a stopped plane is fatal.
        if commits.blocking_send(n.clone()).is_err() {
            error!("the instruction plane stopped; stopping the node");
            std::process::exit(70);
        }
    }));
    receipts::spawn_sender(Arc::clone(&handle.plane), signer)?;
    eprintln!("hashmesh: instruction plane on udp {} ({agents} registered agents)", handle.local_addr);
    Ok(handle)
}

/// A panic on any thread of the node is a broken invariant: stop the whole process (exit 70)
/// rather than run on with a dead thread.
fn exit_on_panic() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default(info);
        eprintln!("hashmesh: fatal: a thread panicked; stopping the node (exit 70)");
        std::process::exit(70);
    }));
}

/// Fault injection for the test that a panicking thread stops the node:
/// `HASHMESH_FAULT_PANIC_AFTER_MS=N` panics a worker thread after N ms. Never set in production.
fn inject_panic_if_asked() -> Result<()> {
    let Ok(ms) = std::env::var("HASHMESH_FAULT_PANIC_AFTER_MS") else { return Ok(()) };
    let ms: u64 = ms.parse().context("HASHMESH_FAULT_PANIC_AFTER_MS must be a number of ms")?;
    warn!(ms, "fault injection: a worker thread will panic");
    std::thread::Builder::new().name("fault-injection".into()).spawn(move || {
        std::thread::sleep(Duration::from_millis(ms));
        panic!("injected fault (HASHMESH_FAULT_PANIC_AFTER_MS)");
    })?;
    Ok(())
}

/// Start the live scheduling loop on its own thread. Epochs before genesis or before CometBFT
/// answers fail and are retried, so it can start before the chain does.
///
/// # Errors
/// If the telemetry source cannot be built.
fn start_scheduler(
    home: &Home,
    app: &AppHandle,
    signer: Arc<Signer>,
    metrics: LiveMetrics,
    plane: Option<Arc<service::Plane>>,
    synthetic: Option<Box<dyn TelemetrySource>>,
) -> Result<()> {
    let settings = home.config.scheduler.clone();
    let source: Box<dyn TelemetrySource> = match (settings.source, plane) {
        (Source::Synthetic, _) => {
            let Some(model) = synthetic else {
                anyhow::bail!(
                    "scheduler.source = \"synthetic\" is the testnet's model, not a measurement: run this node with \
                     `hashmesh-testnet start --home {}`, or set source = \"agents\"",
                    home.dir.display()
                );
            };
            warn!("scheduler.source = \"synthetic\": the telemetry this node signs on chain is MODELLED, NOT MEASURED (a testnet setting)");
            eprintln!("hashmesh: WARNING: scheduler.source = \"synthetic\" signs modelled telemetry on chain; use it on a testnet only");
            model
        }
        // Reports older than three epochs are stale.
        (Source::Agents, Some(plane)) => Box::new(AgentSource::new(plane)),
        (Source::Agents, None) => anyhow::bail!("scheduler.source = \"agents\" needs the plane: set [plane] listen"),
    };
    let app = app.clone();
    let scheduler = Scheduler::new(app, signer, settings.clone(), source, metrics)?;
    std::thread::Builder::new().name("scheduler".into()).spawn(move || {
        info!(epoch_ms = settings.epoch_ms, source = ?settings.source, hosts = settings.host_metrics.len(), "scheduling loop started");
        scheduler.run();
    })?;
    Ok(())
}

/// Committed state as the plane reads it: the application's committed snapshot (in memory,
/// typed; empty before genesis).
struct CommittedView(AppHandle);

impl ChainView for CommittedView {
    fn pools(&self) -> Vec<PoolId> {
        self.0.committed_state().map(|s| s.pools().map(|p| p.id).collect()).unwrap_or_default()
    }
    fn group_owner(&self, g: &GroupId) -> Option<PoolId> {
        self.0.committed_state()?.group(g).map(|r| r.owner)
    }
    fn endpoint_owner(&self, e: &EndpointId) -> Option<PoolId> {
        self.0.committed_state()?.endpoint(e).map(|r| r.owner)
    }
    fn assignment(&self, g: &GroupId) -> Option<Assignment> {
        self.0.committed_state()?.assignment(g).cloned()
    }
    fn drained(&self, e: &EndpointId) -> bool {
        self.0.committed_state().and_then(|s| s.endpoint(e).map(|r| r.drained)).unwrap_or(false)
    }
    fn loan_opened(&self, g: &GroupId, e: &EndpointId) -> Option<u64> {
        self.0.committed_state()?.loan(g, e).filter(|l| l.open()).map(|l| l.opened_height)
    }
    fn offers(&self) -> Vec<OpenOffer> {
        let Some(s) = self.0.committed_state() else { return Vec::new() };
        s.offers()
            .filter(|o| s.offer_open(o) && !s.endpoint(&o.endpoint).is_some_and(|e| e.drained))
            .map(|o| OpenOffer { endpoint: o.endpoint.clone(), owner: o.owner, fee_bp: o.fee_bp })
            .collect()
    }
}
