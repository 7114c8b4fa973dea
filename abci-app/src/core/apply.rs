//! Validation and block application: the consensus-critical rules of DESIGN.md §4.
//!
//! `check_tx` and `apply_block` share the same rule functions, in the same order, so a
//! transaction admitted to the mempool fails in a block only because of what committed
//! before it. Signatures in a block are verified in one batch before the rules run.

use std::collections::BTreeSet;

use hashmesh_protocol::limits::{NONCES_RETAINED_PER_POOL, PENDING_DIRECTIVES_MAX, TX_BYTES_MAX};
use hashmesh_protocol::signing::{self, VerifyError};
use hashmesh_protocol::{
    codec, Body, DirectiveId, EndpointId, GroupId, Measurement, PoolId, PoolKey, Receipt, RejectCode, RouteTarget,
    SignedTx, TelemetryEntry, BASIS_POINTS_TOTAL,
};

pub use super::block::{BlockInput, BlockOutcome, Executed, TxOutcome};
use super::commitment::{self, Committed};
use super::events::Event;
use super::keys;
use super::model::{Assignment, DirectiveRecord, DirectiveStatus};
use super::state::State;
use super::writes::{KvRead, WriteSet};

/// A refusal: a stable code and a readable message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The stable code.
    pub code: RejectCode,
    /// What was wrong, for people.
    pub log: String,
}

pub(crate) fn reject<T>(code: RejectCode, log: impl Into<String>) -> Result<T, Rejection> {
    Err(Rejection { code, log: log.into() })
}

/// Whether `check_tx` must verify the signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckMode {
    /// Verify it (a transaction this node has not verified yet).
    VerifySignature,
    /// This node already verified exactly these bytes (a mempool recheck after a commit, or a
    /// batch verification of pipelined `CheckTx` requests). Pool keys never change, so only
    /// the state-dependent rules can have changed their answer.
    SignatureKnown,
}

/// What a valid transaction will do, decided before anything changes.
#[derive(Debug)]
enum Plan {
    RouteActive { group: GroupId, targets: Vec<RouteTarget> },
    RoutePending { voters: Vec<PoolId> },
    Drain(EndpointId),
    Restore(EndpointId),
    Vote { target: DirectiveId, approve: bool },
    Telemetry { epoch: u64, entries: Vec<(EndpointId, Measurement)> },
    Offer(super::model::OfferRecord),
    Withdraw(EndpointId),
    Receipts(Vec<Receipt>),
    LoanWork(Vec<hashmesh_protocol::LoanWork>),
}

impl State {
    /// Decide whether the mempool should admit `bytes`, against committed state.
    ///
    /// # Errors
    /// The [`Rejection`] the transaction would get in a block right now.
    pub fn check_tx(&self, bytes: &[u8], mode: CheckMode, committed: &dyn KvRead) -> Result<SignedTx, Rejection> {
        let (tx, key) = self.precheck(bytes)?;
        if mode == CheckMode::VerifySignature {
            verdict_to_rejection(signing::verify(&key, bytes))?;
        }
        self.check_nonce(&tx)?;
        self.plan(&tx, &WriteSet::default(), committed)?;
        Ok(tx)
    }

    /// Verify the signatures of many transactions in one batch: `true` where the transaction
    /// decodes, names this chain and a registered signer, and its signature verifies.
    #[must_use]
    pub fn verify_signatures(&self, txs: &[&[u8]]) -> Vec<bool> {
        let keys: Vec<Option<PoolKey>> = txs.iter().map(|b| self.precheck(b).ok().map(|(_, k)| k)).collect();
        verify_keyed(&keys, txs).into_iter().map(|v| v.is_some_and(|r| r.is_ok())).collect()
    }

    /// Decide whether a proposal may carry `bytes`: it must decode within limits.
    ///
    /// # Errors
    /// [`Rejection`] with `TxTooLarge` or `Malformed`.
    pub fn check_proposal_tx(bytes: &[u8]) -> Result<(), Rejection> {
        decode(bytes).map(|_| ())
    }

    /// The transactions of a proposal no honest proposer would make (ADR 0013): each must
    /// decode within limits, name this chain and a registered signer, carry a valid signature,
    /// and use a nonce that is neither spent in committed state nor used twice in the proposal.
    /// State rules (a drained target, a full endpoint…) are not judged here: `FinalizeBlock`
    /// records those codes, since an honest proposer cannot foresee them. `verified[i]` says
    /// transaction `i`'s signature was already checked (in `CheckTx`). Returns each refused
    /// transaction's index with why, in order; empty when the proposal is acceptable.
    #[must_use]
    pub fn proposal_refusals(&self, txs: &[&[u8]], verified: &[bool]) -> Vec<(usize, Rejection)> {
        let prechecked: Vec<_> = txs.iter().map(|b| self.precheck(b)).collect();
        let keys: Vec<Option<PoolKey>> = prechecked
            .iter()
            .enumerate()
            .map(|(i, p)| p.as_ref().ok().filter(|_| !verified.get(i).copied().unwrap_or(false)).map(|(_, k)| *k))
            .collect();
        let verdicts = verify_keyed(&keys, txs);
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for (i, (pre, verdict)) in prechecked.into_iter().zip(verdicts).enumerate() {
            let checked = pre.and_then(|(tx, _)| {
                if let Some(v) = verdict {
                    verdict_to_rejection(v)?;
                }
                self.check_nonce(&tx)?;
                if !seen.insert((tx.signer, tx.nonce)) {
                    return reject(
                        RejectCode::NonceReused,
                        format!("nonce {} is used twice in this proposal", tx.nonce),
                    );
                }
                Ok(())
            });
            if let Err(r) = checked {
                out.push((i, r));
            }
        }
        out
    }

    /// Apply a block: expire overdue votes, then run each transaction, then build the state
    /// tree's version `height` (its root is the app hash). Mutates the in-memory state; the
    /// returned writes and tree nodes must be persisted by `Commit`.
    ///
    /// # Panics
    /// If `block.height` is not the next height (CometBFT never does that).
    pub fn apply_block(&mut self, block: &BlockInput<'_>, committed: &dyn Committed) -> BlockOutcome {
        let Executed { height, txs, block_events, writes } = self.execute_block(block, committed);
        let (app_hash, tree) = commitment::update(committed, height, &writes);
        self.app_hash = app_hash;
        BlockOutcome { height, txs, block_events, writes, app_hash, tree }
    }

    /// [`State::apply_block`] without the state tree: the results and writes, with the app
    /// hash left as it was. For measuring the tree's share of the cost; a node always
    /// applies blocks with [`State::apply_block`].
    pub fn execute_block(&mut self, block: &BlockInput<'_>, committed: &dyn KvRead) -> Executed {
        assert_eq!(block.height, self.height + 1, "blocks apply in order");
        let mut writes = WriteSet::default();
        let block_events = self.expire_overdue(block.height, &mut writes);

        let prechecked: Vec<_> = block.txs.iter().map(|b| self.precheck(b)).collect();
        // Verify, in one batch, every signature this node has not already verified in CheckTx.
        let keys: Vec<Option<PoolKey>> = prechecked
            .iter()
            .enumerate()
            .map(|(i, p)| {
                p.as_ref().ok().filter(|_| !block.preverified.get(i).copied().unwrap_or(false)).map(|(_, k)| *k)
            })
            .collect();
        let bytes: Vec<&[u8]> = block.txs.iter().map(Vec::as_slice).collect();
        let verdicts = verify_keyed(&keys, &bytes);

        let mut txs = Vec::with_capacity(block.txs.len());
        let mut applied: Vec<DirectiveId> = Vec::new();
        let mut signers = BTreeSet::new();
        for (i, (pre, bytes)) in prechecked.into_iter().zip(block.txs).enumerate() {
            let index = u32::try_from(applied.len()).expect("a block holds fewer than 2^32 txs");
            let result = pre.and_then(|(tx, _)| {
                if let Some(v) = verdicts[i] {
                    verdict_to_rejection(v)?;
                }
                let signer = tx.signer;
                let done = self.execute(tx, bytes, block, index, &mut writes, committed)?;
                signers.insert(signer);
                Ok(done)
            });
            txs.push(match result {
                Ok((id, log, events)) => {
                    applied.extend(id);
                    TxOutcome { code: 0, log, events }
                }
                Err(r) => TxOutcome { code: r.code.code(), log: r.log, events: Vec::new() },
            });
        }
        // One write per signer's replay window and one history entry per block, rather than
        // keys per transaction: the store's cost is per key.
        for pool in signers {
            let window: Vec<u64> = self.pools[&pool].nonces.iter().copied().collect();
            writes.put(keys::nonces(&pool), codec::encode(&window));
        }
        if !applied.is_empty() {
            writes.put(keys::history(block.height), codec::encode(&applied));
        }
        if !applied.is_empty() || !block_events.is_empty() {
            writes.put(keys::META_COUNTS.to_vec(), codec::encode(&self.counts));
        }
        self.height = block.height;
        Executed { height: block.height, txs, block_events, writes }
    }

    fn precheck(&self, bytes: &[u8]) -> Result<(SignedTx, PoolKey), Rejection> {
        let tx = decode(bytes)?;
        if tx.chain_id != self.chain_id {
            return reject(
                RejectCode::WrongChainId,
                format!("transaction is for chain {:?}, this is {:?}", tx.chain_id, self.chain_id),
            );
        }
        let Some(pool) = self.pools.get(&tx.signer) else {
            return reject(RejectCode::UnknownSigner, format!("signer {} is not a registered mining pool", tx.signer));
        };
        Ok((tx, pool.key))
    }

    fn check_nonce(&self, tx: &SignedTx) -> Result<(), Rejection> {
        let nonces = &self.pools[&tx.signer].nonces;
        if nonces.contains(&tx.nonce) {
            return reject(RejectCode::NonceReused, format!("nonce {} was already used by this pool", tx.nonce));
        }
        if nonces.len() >= NONCES_RETAINED_PER_POOL && nonces.first().is_some_and(|&min| tx.nonce <= min) {
            return reject(
                RejectCode::NonceReused,
                format!("nonce {} is older than the replay window; use a larger nonce", tx.nonce),
            );
        }
        Ok(())
    }

    fn plan(&self, tx: &SignedTx, writes: &WriteSet, committed: &dyn KvRead) -> Result<Plan, Rejection> {
        match &tx.body {
            Body::Route { group, targets } => self.plan_route(tx.signer, group, targets),
            Body::Drain { endpoint } => {
                let ep = self.owned_endpoint(tx.signer, endpoint)?;
                if ep.drained {
                    return reject(
                        RejectCode::EndpointAlreadyDrained,
                        format!("endpoint {endpoint} is already drained"),
                    );
                }
                Ok(Plan::Drain(endpoint.clone()))
            }
            Body::Restore { endpoint } => {
                let ep = self.owned_endpoint(tx.signer, endpoint)?;
                if !ep.drained {
                    return reject(RejectCode::EndpointNotDrained, format!("endpoint {endpoint} is not drained"));
                }
                Ok(Plan::Restore(endpoint.clone()))
            }
            Body::ReportTelemetry { endpoint, report } => {
                // The old single form: the owner's report, every value known.
                self.owned_endpoint(tx.signer, endpoint)?;
                let entry = TelemetryEntry { endpoint: endpoint.clone(), measurement: Measurement::from(*report) };
                self.check_telemetry(tx.signer, report.epoch, std::slice::from_ref(&entry))?;
                Ok(Plan::Telemetry { epoch: report.epoch, entries: vec![(entry.endpoint, entry.measurement)] })
            }
            Body::Offer { endpoint, max_hs, fee_bp, expires_height } => {
                Ok(Plan::Offer(self.check_offer(tx.signer, endpoint, *max_hs, *fee_bp, *expires_height)?))
            }
            Body::Withdraw { endpoint } => {
                self.check_withdraw(tx.signer, endpoint)?;
                Ok(Plan::Withdraw(endpoint.clone()))
            }
            Body::ReportTelemetryBatch { epoch, entries } => {
                self.check_telemetry(tx.signer, *epoch, entries)?;
                Ok(Plan::Telemetry {
                    epoch: *epoch,
                    entries: entries.iter().map(|e| (e.endpoint.clone(), e.measurement)).collect(),
                })
            }
            Body::Receipt { receipts } => {
                Ok(Plan::Receipts(self.check_receipts(tx.signer, receipts, writes, committed)?))
            }
            Body::ReportLoanWork { entries } => {
                self.check_loan_work(tx.signer, entries)?;
                Ok(Plan::LoanWork(entries.clone()))
            }
            Body::Vote { directive, approve } => {
                let Some(target) = self.pending.get(directive) else {
                    let known = writes.read_through(committed, &keys::directive(directive)).is_some();
                    return if known {
                        reject(RejectCode::DirectiveNotPending, format!("directive {directive} is not pending"))
                    } else {
                        reject(RejectCode::UnknownDirective, format!("no directive {directive}"))
                    };
                };
                if !target.voters_required.contains(&tx.signer) {
                    return reject(
                        RejectCode::VoteNotRequired,
                        "this pool's endpoints are not targeted by the directive",
                    );
                }
                if target.approvals.contains(&tx.signer) {
                    return reject(RejectCode::AlreadyVoted, "this pool already approved the directive");
                }
                Ok(Plan::Vote { target: *directive, approve: *approve })
            }
        }
    }

    fn plan_route(&self, signer: PoolId, group: &GroupId, targets: &[RouteTarget]) -> Result<Plan, Rejection> {
        let Some(g) = self.groups.get(group) else {
            return reject(RejectCode::UnknownGroup, format!("no miner group {group}"));
        };
        if g.owner != signer {
            return reject(RejectCode::GroupNotOwned, format!("miner group {group} belongs to another pool"));
        }
        let sum: u32 = targets.iter().map(|t| u32::from(t.weight_bp)).sum();
        if sum != BASIS_POINTS_TOTAL || targets.iter().any(|t| t.weight_bp == 0) {
            return reject(
                RejectCode::WeightsNotTenThousand,
                format!("weights must be positive and sum to {BASIS_POINTS_TOTAL} bp, got {sum}"),
            );
        }
        let mut seen = BTreeSet::new();
        let mut voters = BTreeSet::new();
        for t in targets {
            if !seen.insert(&t.endpoint) {
                return reject(RejectCode::DuplicateEndpoint, format!("endpoint {} listed twice", t.endpoint));
            }
            let Some(ep) = self.endpoints.get(&t.endpoint) else {
                return reject(RejectCode::UnknownEndpoint, format!("no endpoint {}", t.endpoint));
            };
            if ep.drained {
                return reject(RejectCode::EndpointDrained, format!("endpoint {} is drained", t.endpoint));
            }
            if ep.owner != signer {
                voters.insert(ep.owner);
            }
        }
        self.check_targets_fit(g, targets)?;
        // Own endpoints only, or every other pool's endpoint within its open offer: no votes.
        if voters.is_empty() || self.within_offers(group, signer, g.hashrate_hs, targets) {
            return Ok(Plan::RouteActive { group: group.clone(), targets: targets.to_vec() });
        }
        if self.pending.len() >= PENDING_DIRECTIVES_MAX {
            return reject(RejectCode::TooManyPending, "too many directives are waiting for votes; retry later");
        }
        Ok(Plan::RoutePending { voters: voters.into_iter().collect() })
    }

    fn owned_endpoint(&self, signer: PoolId, id: &EndpointId) -> Result<&super::model::EndpointRecord, Rejection> {
        let Some(ep) = self.endpoints.get(id) else {
            return reject(RejectCode::UnknownEndpoint, format!("no endpoint {id}"));
        };
        if ep.owner != signer {
            return reject(RejectCode::EndpointNotOwned, format!("endpoint {id} belongs to another pool"));
        }
        Ok(ep)
    }

    /// Run the stateful rules for one signature-checked transaction and apply it.
    fn execute(
        &mut self,
        tx: SignedTx,
        bytes: &[u8],
        block: &BlockInput<'_>,
        index: u32,
        writes: &mut WriteSet,
        committed: &dyn KvRead,
    ) -> Result<(Option<DirectiveId>, String, Vec<Event>), Rejection> {
        self.check_nonce(&tx)?;
        let plan = self.plan(&tx, writes, committed)?;
        self.record_nonce(tx.signer, tx.nonce);
        if let Plan::Telemetry { epoch, entries } = plan {
            // Telemetry is state, not a directive: it replaces the signer's last views of the
            // endpoints and stays out of the directive history.
            let (log, events) = self.record_telemetry(tx.signer, epoch, entries, block.height, writes);
            return Ok((None, log, events));
        }
        if let Plan::Receipts(receipts) = plan {
            // Receipts are state beside the directive they acknowledge, not directives.
            let (log, events) = Self::record_receipts(tx.signer, &receipts, block.height, writes);
            return Ok((None, log, events));
        }
        if let Plan::LoanWork(entries) = plan {
            // Loan reports are state beside the loan, like telemetry.
            let (log, events) = self.record_loan_work(tx.signer, &entries, block.height, block.time_ms, writes);
            return Ok((None, log, events));
        }

        let id = DirectiveId::of_tx_bytes(bytes);
        let mut record = DirectiveRecord {
            id,
            height: block.height,
            index,
            time_ms: block.time_ms,
            proposer: block.proposer.clone(),
            signer: tx.signer,
            tx: bytes.to_vec(),
            status: DirectiveStatus::Applied,
            voters_required: Vec::new(),
            approvals: Vec::new(),
            vote_deadline_height: 0,
            decided_height: block.height,
            reason: String::new(),
        };
        let mut events = Vec::new();
        let log = match plan {
            Plan::RouteActive { group, targets } => {
                record.status = DirectiveStatus::Active;
                events.extend(self.set_assignment(group, targets, id, block.height, writes));
                "route active".to_owned()
            }
            Plan::RoutePending { voters } => {
                record.status = DirectiveStatus::Pending;
                record.vote_deadline_height = block.height + self.params.vote_window_blocks;
                record.voters_required = voters;
                self.pending.insert(id, record.clone());
                writes.put(keys::pending(&id), keys::PENDING_MARK.to_vec());
                format!(
                    "route pending: waits for {} pool(s) to vote by height {}",
                    record.voters_required.len(),
                    record.vote_deadline_height
                )
            }
            Plan::Drain(ep) => {
                self.set_drained(&ep, true, writes);
                format!("endpoint {ep} drained")
            }
            Plan::Restore(ep) => {
                self.set_drained(&ep, false, writes);
                format!("endpoint {ep} restored")
            }
            Plan::Offer(o) => {
                let log = format!(
                    "offer on {}: up to {} H/s at {} bp until height {}",
                    o.endpoint, o.max_hs, o.fee_bp, o.expires_height
                );
                events.push(
                    Event::new("offer")
                        .with("endpoint", o.endpoint.as_str())
                        .with("pool", o.owner.to_hex())
                        .with("max_hs", o.max_hs.to_string())
                        .with("fee_bp", o.fee_bp.to_string())
                        .with("expires_height", o.expires_height.to_string()),
                );
                self.set_offer(o, writes);
                log
            }
            Plan::Withdraw(ep) => {
                self.drop_offer(&ep, writes);
                events.push(
                    Event::new("offer")
                        .with("endpoint", ep.as_str())
                        .with("pool", tx.signer.to_hex())
                        .with("withdrawn", "true"),
                );
                format!("offer on {ep} withdrawn")
            }
            Plan::Telemetry { .. } | Plan::Receipts(_) | Plan::LoanWork(_) => unreachable!("handled above"),
            Plan::Vote { target, approve } => {
                events.push(
                    Event::new("vote")
                        .with("directive", target.to_hex())
                        .with("pool", tx.signer.to_hex())
                        .with("approve", approve.to_string()),
                );
                let (decided, loans) = self.count_vote(target, tx.signer, approve, block.height, writes);
                events.push(directive_event(&decided));
                events.extend(loans);
                format!("vote recorded; directive {target} is {}", decided.status.name())
            }
        };
        events.insert(0, directive_event_with(&record, &tx.body));
        self.counts.directives += 1;
        self.counts.bump(record.status, true);
        writes.put(keys::directive(&id), codec::encode(&record));
        Ok((Some(id), log, events))
    }

    /// Remember a nonce in memory; `apply_block` writes each signer's window once per block.
    fn record_nonce(&mut self, pool: PoolId, nonce: u64) {
        let nonces = &mut self.pools.get_mut(&pool).expect("prechecked signer").nonces;
        nonces.insert(nonce);
        if nonces.len() > NONCES_RETAINED_PER_POOL {
            nonces.pop_first();
        }
    }

    /// Set a group's route; returns the `loan` events of the loans it opened and closed.
    pub(crate) fn set_assignment(
        &mut self,
        group: GroupId,
        targets: Vec<RouteTarget>,
        id: DirectiveId,
        height: u64,
        writes: &mut WriteSet,
    ) -> Vec<Event> {
        let old = self.assignments.get(&group).map(|a| a.targets.clone()).unwrap_or_default();
        let events = self.update_loans(&group, &old, &targets, height, writes);
        let a = Assignment { group: group.clone(), targets, directive: id, since_height: height };
        writes.put(keys::assignment(&group), codec::encode(&a));
        self.add_load(&a, true);
        if let Some(old) = self.assignments.insert(group, a) {
            self.add_load(&old, false);
        }
        events
    }

    fn set_drained(&mut self, id: &EndpointId, drained: bool, writes: &mut WriteSet) {
        let ep = self.endpoints.get_mut(id).expect("planned endpoint exists");
        ep.drained = drained;
        writes.put(keys::endpoint(id), codec::encode(&*ep));
    }
}

/// The `directive` event for a stored record (decodes its bytes for kind and group).
#[must_use]
pub fn directive_event(rec: &DirectiveRecord) -> Event {
    let tx = SignedTx::decode(&rec.tx).expect("stored directive bytes decode");
    directive_event_with(rec, &tx.body)
}

/// The `directive` event: indexed by id, pool, kind, group (routes) and status.
fn directive_event_with(rec: &DirectiveRecord, body: &Body) -> Event {
    let mut ev =
        Event::new("directive").with("id", rec.id.to_hex()).with("pool", rec.signer.to_hex()).with("kind", body.kind());
    if let Some(g) = body.group() {
        ev = ev.with("group", g.as_str());
    }
    ev.with("status", rec.status.name())
}

fn decode(bytes: &[u8]) -> Result<SignedTx, Rejection> {
    if bytes.len() > TX_BYTES_MAX {
        return reject(
            RejectCode::TxTooLarge,
            format!("transaction is {} bytes; the limit is {TX_BYTES_MAX}", bytes.len()),
        );
    }
    SignedTx::decode(bytes).or_else(|e| reject(RejectCode::Malformed, format!("cannot decode transaction: {e}")))
}

/// Batch-verify the transactions that have a key; `None` where there is none to check.
fn verify_keyed(keys: &[Option<PoolKey>], txs: &[&[u8]]) -> Vec<Option<Result<(), VerifyError>>> {
    let batch: Vec<(PoolKey, &[u8])> = keys.iter().zip(txs).filter_map(|(k, b)| k.map(|k| (k, *b))).collect();
    let mut verdicts = signing::verify_batch(&batch).into_iter();
    keys.iter().map(|k| k.map(|_| verdicts.next().expect("one verdict per keyed tx"))).collect()
}

fn verdict_to_rejection(v: Result<(), VerifyError>) -> Result<(), Rejection> {
    v.or_else(|e| reject(RejectCode::BadSignature, format!("signature refused: {e}")))
}
