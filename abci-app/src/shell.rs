//! The ABCI shell: implements `tendermint_abci::Application` for CometBFT v0.38.
//!
//! tendermint-abci serves CometBFT's four connections (consensus, mempool, query, snapshot)
//! on their own threads, each with a clone of [`AppHandle`]. The state has one owner behind a
//! mutex; queries read the committed store without taking it. Local faults (a storage error,
//! a broken genesis) stop the process: they must never turn into a transaction result.

use std::sync::{Arc, Mutex, MutexGuard};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use tendermint_abci::Application;
use tendermint_proto::v0_38::abci::{
    response_process_proposal::ProposalStatus, CheckTxType, Event as AbciEvent, EventAttribute, ExecTxResult,
    RequestCheckTx, RequestFinalizeBlock, RequestInfo, RequestInitChain, RequestPrepareProposal,
    RequestProcessProposal, RequestQuery, ResponseCheckTx, ResponseCommit, ResponseFinalizeBlock, ResponseInfo,
    ResponseInitChain, ResponsePrepareProposal, ResponseProcessProposal, ResponseQuery,
};
use tracing::{error, info, warn};

use crate::core::{
    keys, Assignment, BlockInput, CheckMode, EndpointRecord, Event, GenesisAppState, ReceiptRecord, State, TreeUpdate,
    WriteSet,
};
use crate::query;
use crate::store::Store;
use crate::verified::VerifiedMemo;
use hashmesh_protocol::codec;
use sha2::{Digest, Sha256};

/// The application's metrics (Prometheus, through `prometheus-client`); the node registers
/// them with [`AppMetrics::register`] and serves them on `/metrics`.
#[derive(Debug, Clone)]
pub struct AppMetrics {
    /// Blocks committed by this process.
    pub blocks_committed: Counter,
    /// Last committed height.
    pub height: Gauge,
    /// Transactions applied (code 0) in committed blocks.
    pub txs_applied: Counter,
    /// Transactions refused in blocks.
    pub txs_refused: Counter,
    /// `CheckTx` admissions.
    pub checktx_accepted: Counter,
    /// `CheckTx` refusals.
    pub checktx_refused: Counter,
    /// Time spent in `FinalizeBlock`, seconds.
    pub finalize_block_seconds: Histogram,
    /// Proposals this node refused in `ProcessProposal` (transactions no honest proposer makes).
    pub proposals_refused: Counter,
    /// Loan readings settled in committed blocks.
    pub loans_settled: Counter,
    /// Loan readings disputed (the parties' totals more than the tolerance apart) in committed
    /// blocks.
    pub loans_disputed: Counter,
}

impl Default for AppMetrics {
    fn default() -> Self {
        Self {
            blocks_committed: Counter::default(),
            height: Gauge::default(),
            txs_applied: Counter::default(),
            txs_refused: Counter::default(),
            checktx_accepted: Counter::default(),
            checktx_refused: Counter::default(),
            // 50 µs … 1.6 s.
            finalize_block_seconds: Histogram::new(exponential_buckets(0.000_05, 2.0, 16)),
            proposals_refused: Counter::default(),
            loans_settled: Counter::default(),
            loans_disputed: Counter::default(),
        }
    }
}

impl AppMetrics {
    /// Register every metric under the `hashmesh` prefix.
    pub fn register(&self, r: &mut Registry) {
        r.register("hashmesh_blocks_committed", "Blocks committed by this node", self.blocks_committed.clone());
        r.register("hashmesh_height", "Last committed height", self.height.clone());
        r.register("hashmesh_txs_applied", "Transactions applied in committed blocks", self.txs_applied.clone());
        r.register("hashmesh_txs_refused", "Transactions refused in blocks", self.txs_refused.clone());
        r.register("hashmesh_checktx_accepted", "Transactions admitted to the mempool", self.checktx_accepted.clone());
        r.register("hashmesh_checktx_refused", "Transactions refused by CheckTx", self.checktx_refused.clone());
        r.register(
            "hashmesh_finalize_block_seconds",
            "Time spent in FinalizeBlock",
            self.finalize_block_seconds.clone(),
        );
        r.register(
            "hashmesh_proposals_refused",
            "Proposals refused in ProcessProposal (forged, replayed, wrong-chain or undecodable transactions)",
            self.proposals_refused.clone(),
        );
        r.register("hashmesh_loans_settled", "Loan readings settled in committed blocks", self.loans_settled.clone());
        r.register(
            "hashmesh_loans_disputed",
            "Loan readings disputed in committed blocks (the parties' totals beyond the tolerance)",
            self.loans_disputed.clone(),
        );
    }
}

fn gauge_value(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A finalized block's results waiting for `Commit`.
struct Uncommitted {
    height: u64,
    writes: WriteSet,
    tree: TreeUpdate,
    app_hash: [u8; 32],
}

struct Inner {
    state: Option<State>,
    /// Signatures this node verified in `CheckTx` (speed only; see [`VerifiedMemo`]).
    verified: VerifiedMemo,
    /// A finalized block waiting for `Commit`.
    uncommitted: Option<Uncommitted>,
    /// Its loans settled and disputed (counted when it commits).
    uncommitted_loans: (u64, u64),
    /// Test fault: as proposer, add transactions no honest proposer makes
    /// ([`AppHandle::act_byzantine`]); the last applied transaction, to replay.
    byzantine: Option<Option<Vec<u8>>>,
    /// Test fault ([`AppHandle::crash_in_commit`]): abort at this commit, counted from start.
    crash: Option<(CrashPoint, u64)>,
    /// Commits since the process started.
    commits: u64,
}

/// Where in `Commit` the crash-window test fault aborts the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashPoint {
    /// After `FinalizeBlock`, before the block is persisted.
    BeforePersist,
    /// After the block is persisted and flushed, before `Commit` answers CometBFT.
    AfterPersist,
}

/// What a commit changed that the rest of the node acts on (the instruction plane).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommitNotice {
    /// The committed height.
    pub height: u64,
    /// Assignments set by this block (routes that became active).
    pub assignments: Vec<Assignment>,
    /// Receipts recorded by this block.
    pub receipts: Vec<ReceiptRecord>,
    /// Endpoints changed by this block (drained or restored).
    pub endpoints: Vec<EndpointRecord>,
}

impl CommitNotice {
    /// Extract what matters from a committed block's writes.
    #[must_use]
    pub fn from_writes(height: u64, writes: &WriteSet) -> Self {
        let mut n = Self { height, ..Self::default() };
        for (k, v) in writes.iter() {
            let Some(v) = v else { continue };
            if k.starts_with(keys::ASSIGNMENT) {
                n.assignments.push(codec::decode_trusted(v).expect("assignment write decodes"));
            } else if k.starts_with(keys::RECEIPT) {
                n.receipts.push(codec::decode_trusted(v).expect("receipt write decodes"));
            } else if k.starts_with(keys::ENDPOINT) {
                n.endpoints.push(codec::decode_trusted(v).expect("endpoint write decodes"));
            }
        }
        n
    }
}

/// Called after every commit, with the commit persisted.
pub type CommitHook = Arc<dyn Fn(&CommitNotice) + Send + Sync>;

/// The application CometBFT connects to. Cheap to clone.
#[derive(Clone)]
pub struct AppHandle {
    inner: Arc<Mutex<Inner>>,
    store: Store,
    metrics: Arc<AppMetrics>,
    hooks: Arc<Mutex<Vec<CommitHook>>>,
    /// The last committed state, published after each commit ([`AppHandle::committed_state`]);
    /// readers never see a finalized-but-uncommitted block, and never take the state lock.
    committed: Arc<Mutex<Option<Arc<State>>>>,
}

/// Stop the process: a local fault that must not become a result.
fn fatal(msg: &str) -> ! {
    error!("fatal: {msg}");
    eprintln!("hashmesh: fatal: {msg}");
    std::process::exit(70)
}

impl AppHandle {
    /// Load the committed state from `store` (if any).
    ///
    /// # Errors
    /// If the stored state is corrupt.
    pub fn new(store: Store) -> Result<Self, crate::core::LoadError> {
        let state = State::load(&store)?;
        let metrics = Arc::new(AppMetrics::default());
        if let Some(s) = &state {
            metrics.height.set(gauge_value(s.height()));
            info!(height = s.height(), app_hash = %hex::encode_upper(s.app_hash()), "loaded committed state");
        }
        let committed = Arc::new(Mutex::new(state.clone().map(Arc::new)));
        Ok(Self {
            inner: Arc::new(Mutex::new(Inner {
                state,
                verified: VerifiedMemo::default(),
                uncommitted: None,
                uncommitted_loans: (0, 0),
                byzantine: None,
                crash: None,
                commits: 0,
            })),
            store,
            metrics,
            hooks: Arc::default(),
            committed,
        })
    }

    /// The committed state, read at one height (a snapshot: later commits do not change it).
    /// `None` before genesis. Never takes the state lock, so commit hooks may wait on its readers.
    #[must_use]
    pub fn committed_state(&self) -> Option<Arc<State>> {
        self.committed.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    fn publish_state(&self, state: Option<&State>) {
        *self.committed.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = state.cloned().map(Arc::new);
    }

    /// Test fault (`HASHMESH_FAULT_BYZANTINE_PROPOSER`): from now on, as proposer, add to
    /// every proposal a forged transaction (a registered signer, a signature that does not
    /// verify), one for another chain, one over the size limit, and a replay of a committed
    /// transaction. Honest validators refuse such proposals in `ProcessProposal`.
    pub fn act_byzantine(&self) {
        self.lock().byzantine.get_or_insert(None);
    }

    /// Test fault (`HASHMESH_FAULT_CRASH=before:N|after:N`): abort the process (no cleanup, like
    /// `kill -9`) in the `n`th `Commit` after start, before or after the block is persisted — the
    /// store's crash window. CometBFT's handshake must bring the node back to the same app hash.
    pub fn crash_in_commit(&self, point: CrashPoint, n: u64) {
        self.lock().crash = Some((point, n.max(1)));
    }

    /// [`State::proposal_refusals`] on the committed state, trusting the signatures this node
    /// already verified in `CheckTx`.
    fn proposal_refusals(&self, txs: &[impl AsRef<[u8]>]) -> Vec<(usize, crate::core::apply::Rejection)> {
        let inner = self.lock();
        let bytes: Vec<&[u8]> = txs.iter().map(AsRef::as_ref).collect();
        let verified: Vec<bool> = bytes.iter().map(|t| inner.verified.contains(&Sha256::digest(t).into())).collect();
        inner.state.as_ref().map(|s| s.proposal_refusals(&bytes, &verified)).unwrap_or_default()
    }

    fn byzantine_txs(&self) -> Vec<Vec<u8>> {
        let inner = self.lock();
        let (Some(replay), Some(state)) = (inner.byzantine.as_ref(), inner.state.as_ref()) else { return Vec::new() };
        let Some(pool) = state.pools().next() else { return Vec::new() };
        let forged = |chain_id: &str| {
            hashmesh_protocol::SignedTx {
                chain_id: chain_id.to_owned(),
                signer: pool.id,
                nonce: u64::MAX - state.height(),
                body: hashmesh_protocol::Body::Drain { endpoint: "byzantine/ep-1".parse().expect("a valid id") },
                signature: [7; hashmesh_protocol::tx::SIGNATURE_BYTES],
            }
            .encode()
        };
        let mut out = vec![
            forged(state.chain_id()),
            forged("another-chain"),
            vec![0xAB; hashmesh_protocol::limits::TX_BYTES_MAX + 1],
        ];
        out.extend(replay.clone());
        out
    }

    /// Call `hook` after every commit (after the block is on disk). Hooks run on the ABCI
    /// connection's thread: they must be quick (hand work to another thread).
    pub fn on_commit(&self, hook: CommitHook) {
        self.hooks.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(hook);
    }

    /// The metrics this application updates.
    #[must_use]
    pub fn metrics(&self) -> Arc<AppMetrics> {
        Arc::clone(&self.metrics)
    }

    /// The committed store (read-only use).
    #[must_use]
    pub fn store(&self) -> &Store {
        &self.store
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|_| fatal("state lock poisoned by an earlier panic"))
    }

    /// Drop a block that was finalized but never committed (CometBFT restarted between the two
    /// and now replays from the committed height): reload the committed state first.
    fn discard_uncommitted(&self, inner: &mut Inner) {
        if let Some(u) = inner.uncommitted.take() {
            warn!(height = u.height, "discarding a finalized but uncommitted block; reloading committed state");
            inner.state = State::load(&self.store).unwrap_or_else(|e| fatal(&e.to_string()));
        }
    }
}

fn to_abci_events(events: &[Event]) -> Vec<AbciEvent> {
    events
        .iter()
        .map(|e| AbciEvent {
            r#type: e.kind.to_owned(),
            attributes: e
                .attrs
                .iter()
                .map(|a| EventAttribute { key: a.key.to_owned(), value: a.value.clone(), index: true })
                .collect(),
        })
        .collect()
}

impl PreverifyBatch for AppHandle {
    fn preverify(&self, txs: &[&[u8]]) {
        let mut inner = self.lock();
        let Some(state) = inner.state.as_ref() else { return };
        let hashes: Vec<[u8; 32]> = txs.iter().map(|t| Sha256::digest(t).into()).collect();
        let fresh: Vec<(&[u8], [u8; 32])> =
            txs.iter().zip(&hashes).filter(|(_, h)| !inner.verified.contains(h)).map(|(t, h)| (*t, *h)).collect();
        let bytes: Vec<&[u8]> = fresh.iter().map(|(t, _)| *t).collect();
        let ok = state.verify_signatures(&bytes);
        for ((_, h), ok) in fresh.iter().zip(ok) {
            if ok {
                inner.verified.insert(*h);
            }
        }
    }
}

/// Batch signature verification ahead of pipelined `CheckTx` requests (see `server.rs`).
pub trait PreverifyBatch {
    /// Verify these `CheckTx` transactions' signatures together and remember the good ones,
    /// so the `CheckTx` calls that follow skip verifying them one by one.
    fn preverify(&self, txs: &[&[u8]]);
}

impl Application for AppHandle {
    /// Reports what is on disk, never a finalized-but-uncommitted block: CometBFT's handshake
    /// replays from here, and `/abci_info` may arrive between `FinalizeBlock` and `Commit`.
    fn info(&self, _req: RequestInfo) -> ResponseInfo {
        let (height, hash) = self
            .store
            .last_committed()
            .unwrap_or_else(|e| fatal(&e.to_string()))
            .map_or((0, Vec::new()), |(h, a)| (h, a.to_vec()));
        ResponseInfo {
            data: "hashmesh".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            app_version: 1,
            last_block_height: i64::try_from(height).expect("height fits i64"),
            last_block_app_hash: hash.into(),
        }
    }

    fn init_chain(&self, req: RequestInitChain) -> ResponseInitChain {
        let mut inner = self.lock();
        if req.initial_height > 1 {
            fatal("hashmesh needs genesis initial_height 1");
        }
        if inner.state.as_ref().is_some_and(|s| s.height() > 0) {
            fatal("InitChain on a store that already has committed blocks; wipe the state directory or use the matching CometBFT home");
        }
        let genesis = GenesisAppState::from_json(&req.app_state_bytes)
            .unwrap_or_else(|e| fatal(&format!("{e}; fix app_state in genesis.json")));
        let (state, writes, tree) = State::genesis(&req.chain_id, &genesis);
        self.store.clear().unwrap_or_else(|e| fatal(&e.to_string()));
        self.store.commit(&writes, &tree, 0, &state.app_hash()).unwrap_or_else(|e| fatal(&e.to_string()));
        info!(chain_id = %req.chain_id, pools = genesis.pools.len(), app_hash = %hex::encode_upper(state.app_hash()), "genesis applied");
        let app_hash = state.app_hash().to_vec();
        inner.state = Some(state);
        inner.uncommitted = None;
        self.publish_state(inner.state.as_ref());
        ResponseInitChain { consensus_params: None, validators: Vec::new(), app_hash: app_hash.into() }
    }

    fn query(&self, req: RequestQuery) -> ResponseQuery {
        let height = self.store.last_committed().unwrap_or_else(|e| fatal(&e.to_string())).map_or(0, |(h, _)| h);
        if req.path == query::STORE_PATH {
            return query::store(&self.store, &req, height).unwrap_or_else(|e| fatal(&e.to_string()));
        }
        let height = i64::try_from(height).expect("height fits i64");
        if req.prove {
            return ResponseQuery {
                code: query::code::BAD_REQUEST,
                log: format!(
                    "proofs are given for single keys only: query {} with the key as data (hashmesh audit verify does this)",
                    query::STORE_PATH
                ),
                height,
                ..Default::default()
            };
        }
        match query::handle(&self.store, &req.path, &req.data) {
            Ok(value) => ResponseQuery { value: value.into(), height, ..Default::default() },
            Err(query::QueryFailure::Refused(e)) => {
                ResponseQuery { code: e.code, log: e.log, height, ..Default::default() }
            }
            Err(query::QueryFailure::Store(e)) => fatal(&e.to_string()),
        }
    }

    fn check_tx(&self, req: RequestCheckTx) -> ResponseCheckTx {
        let mut inner = self.lock();
        let Some(state) = inner.state.as_ref() else {
            return ResponseCheckTx { code: 1, log: "no genesis yet".into(), ..Default::default() };
        };
        let hash: [u8; 32] = Sha256::digest(&req.tx).into();
        let known = req.r#type == CheckTxType::Recheck as i32 || inner.verified.contains(&hash);
        let mode = if known { CheckMode::SignatureKnown } else { CheckMode::VerifySignature };
        match state.check_tx(&req.tx, mode, &self.store) {
            Ok(_) => {
                if !known {
                    inner.verified.insert(hash);
                }
                self.metrics.checktx_accepted.inc();
                ResponseCheckTx { gas_wanted: 1, ..Default::default() }
            }
            Err(r) => {
                self.metrics.checktx_refused.inc();
                ResponseCheckTx { code: r.code.code(), log: r.log, codespace: "hashmesh".into(), ..Default::default() }
            }
        }
    }

    fn prepare_proposal(&self, req: RequestPrepareProposal) -> ResponsePrepareProposal {
        let max = usize::try_from(req.max_tx_bytes).unwrap_or(0);
        let mut total = 0usize;
        let mut txs = Vec::with_capacity(req.txs.len());
        // Leave out what the other validators' ProcessProposal would refuse (a nonce spent since
        // the transaction entered the mempool, a second use of a nonce).
        let refused: std::collections::BTreeSet<usize> =
            self.proposal_refusals(&req.txs).into_iter().map(|(i, _)| i).collect();
        let injected = self.byzantine_txs();
        for (i, tx) in req.txs.into_iter().enumerate() {
            if refused.contains(&i) || State::check_proposal_tx(&tx).is_err() {
                continue;
            }
            // CometBFT counts each tx with its protobuf overhead; a few bytes of margin keep us under.
            let size = tx.len() + 8;
            if total + size > max {
                break;
            }
            total += size;
            txs.push(tx);
        }
        if !injected.is_empty() {
            warn!(
                height = req.height,
                count = injected.len(),
                "byzantine proposer (test fault): injecting transactions"
            );
            txs.extend(injected.into_iter().map(Into::into));
        }
        ResponsePrepareProposal { txs }
    }

    fn process_proposal(&self, req: RequestProcessProposal) -> ResponseProcessProposal {
        let refusals = self.proposal_refusals(&req.txs);
        if let Some((i, why)) = refusals.first() {
            self.metrics.proposals_refused.inc();
            warn!(
                height = req.height,
                refused = refusals.len(),
                first = i,
                code = why.code.name(),
                reason = %why.log,
                "rejecting a proposal: it carries transactions no honest proposer makes"
            );
        }
        let ok = refusals.is_empty();
        ResponseProcessProposal { status: if ok { ProposalStatus::Accept } else { ProposalStatus::Reject } as i32 }
    }

    fn finalize_block(&self, req: RequestFinalizeBlock) -> ResponseFinalizeBlock {
        let started = std::time::Instant::now();
        let mut inner = self.lock();
        self.discard_uncommitted(&mut inner);
        let txs: Vec<Vec<u8>> = req.txs.iter().map(|t| t.to_vec()).collect();
        let preverified: Vec<bool> = txs.iter().map(|t| inner.verified.contains(&Sha256::digest(t).into())).collect();
        let Some(state) = inner.state.as_mut() else { fatal("FinalizeBlock before InitChain") };
        let time_ms = req.time.map_or(0, |t| {
            u64::try_from(t.seconds).unwrap_or(0).saturating_mul(1000) + u64::try_from(t.nanos / 1_000_000).unwrap_or(0)
        });
        let block = BlockInput {
            height: u64::try_from(req.height).unwrap_or_else(|_| fatal("negative block height")),
            time_ms,
            proposer: req.proposer_address.to_vec(),
            txs: &txs,
            preverified: &preverified,
        };
        let out = state.apply_block(&block, &self.store);
        let tx_results: Vec<ExecTxResult> = out
            .txs
            .iter()
            .map(|t| ExecTxResult {
                code: t.code,
                log: t.log.clone(),
                events: to_abci_events(&t.events),
                codespace: if t.code == 0 { String::new() } else { "hashmesh".into() },
                ..Default::default()
            })
            .collect();
        let loan_status = |status: &str| {
            out.txs
                .iter()
                .flat_map(|t| &t.events)
                .filter(|e| e.kind == "loan" && e.attrs.iter().any(|a| a.key == "status" && a.value == status))
                .count() as u64
        };
        inner.uncommitted_loans = (loan_status("settled"), loan_status("disputed"));
        if let Some(slot) = inner.byzantine.as_mut() {
            if let Some(i) = out.txs.iter().position(|t| t.code == 0) {
                *slot = Some(txs[i].clone());
            }
        }
        let applied = out.txs.iter().filter(|t| t.code == 0).count() as u64;
        self.metrics.txs_applied.inc_by(applied);
        self.metrics.txs_refused.inc_by(out.txs.len() as u64 - applied);
        let response = ResponseFinalizeBlock {
            events: to_abci_events(&out.block_events),
            tx_results,
            validator_updates: Vec::new(),
            consensus_param_updates: None,
            app_hash: out.app_hash.to_vec().into(),
        };
        inner.uncommitted =
            Some(Uncommitted { height: out.height, writes: out.writes, tree: out.tree, app_hash: out.app_hash });
        self.metrics.finalize_block_seconds.observe(started.elapsed().as_secs_f64());
        response
    }

    fn commit(&self) -> ResponseCommit {
        let mut inner = self.lock();
        let Some(Uncommitted { height, writes, tree, app_hash }) = inner.uncommitted.take() else {
            fatal("Commit without a finalized block");
        };
        inner.commits += 1;
        let crash_at = |point| {
            if inner.crash == Some((point, inner.commits)) {
                error!(height, ?point, "test fault: aborting in Commit");
                std::process::abort();
            }
        };
        crash_at(CrashPoint::BeforePersist);
        self.store.commit(&writes, &tree, height, &app_hash).unwrap_or_else(|e| fatal(&e.to_string()));
        crash_at(CrashPoint::AfterPersist);
        self.publish_state(inner.state.as_ref());
        let hooks = self.hooks.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        if !hooks.is_empty() {
            let notice = CommitNotice::from_writes(height, &writes);
            for h in &hooks {
                h(&notice);
            }
        }
        if cfg!(debug_assertions) {
            if let Some(s) = inner.state.as_ref() {
                s.check_invariants();
            }
        }
        self.metrics.blocks_committed.inc();
        self.metrics.height.set(gauge_value(height));
        let (settled, disputed) = std::mem::take(&mut inner.uncommitted_loans);
        self.metrics.loans_settled.inc_by(settled);
        self.metrics.loans_disputed.inc_by(disputed);
        ResponseCommit { retain_height: 0 }
    }
}
