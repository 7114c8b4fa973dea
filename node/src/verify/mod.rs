//! `hashmesh audit verify`: check a node's history and state without trusting the node.
//!
//! From a trusted root (a genesis file, or a header hash pinned at some height) it walks the
//! headers one by one with CometBFT's light-client rules ([`checks::HeaderChain`]), checks every
//! block's transactions against its `data_hash` and every result against the next header's
//! `last_results_hash`, and then proves the state after the last checked block — every group's
//! assignment, every endpoint's record, telemetry and offer, every loan and ledger, and the record
//! of every directive the walk saw applied — against the app hash with Merkle proofs. The first
//! header, data or result that fails ends the walk (nothing above it can be trusted); every state
//! answer is checked independently. Each failure names the block and the field.

pub mod checks;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use hashmesh_abci::core::model::{Assignment, DirectiveRecord};
use hashmesh_abci::core::{keys, GenesisAppState, State};
use hashmesh_abci::query::code;
use hashmesh_protocol::{codec, Body, DirectiveId, EndpointId, GroupId, PoolId, SignedTx};
use serde::Serialize;

pub use checks::{check_answer, check_results, check_txs, CommittedResult, Failure, HeaderChain};

use crate::rpc::{ProvedAnswer, Rpc};

/// What the auditor trusts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// A genesis file (CometBFT's `genesis.json`): its validators, time, chain id and app state.
    Genesis(PathBuf),
    /// The hash of the header at `height`, obtained out of band (e.g. from another operator).
    Header {
        /// Its height.
        height: u64,
        /// Its hash.
        hash: tendermint::Hash,
    },
}

impl FromStr for Trust {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        if let Some((h, hash)) = s.split_once(':') {
            if let Ok(height) = h.parse::<u64>() {
                let hash = tendermint::Hash::from_hex_upper(tendermint::hash::Algorithm::Sha256, &hash.to_uppercase())
                    .map_err(|e| anyhow!("--trust {s:?}: {hash:?} is not a 64-hex header hash: {e}"))?;
                if height == 0 {
                    bail!("--trust {s:?}: heights start at 1 (trust the genesis file for height 0)");
                }
                return Ok(Trust::Header { height, hash });
            }
        }
        let path = PathBuf::from(s);
        if !path.is_file() {
            bail!("--trust {s:?}: not a genesis file, nor HEIGHT:HASH (e.g. 120:3F5A…, a header hash from `curl NODE/commit?height=120`)");
        }
        Ok(Trust::Genesis(path))
    }
}

/// How far and what to check.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// The last block to check (default: the node's latest height minus one, so that its
    /// results and state are under a header that exists).
    pub to_height: Option<u64>,
    /// Skip the state proofs (headers, transactions and results only).
    pub no_state: bool,
    /// Print progress to stderr.
    pub progress: bool,
}

/// One proven assignment.
#[derive(Debug, Clone, Serialize)]
pub struct ProvenAssignment {
    /// The group.
    pub group: GroupId,
    /// Its split (endpoint, weight bp); empty when the group has none.
    pub targets: Vec<(EndpointId, u16)>,
    /// The directive that set it.
    pub directive: Option<DirectiveId>,
}

/// What the state proofs covered.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StateReport {
    /// The height whose state was proven (its root is in the next header).
    pub height: u64,
    /// Keys proven, present and absent.
    pub keys_proved: u64,
    /// Of which present.
    pub present: u64,
    /// Every group's assignment.
    pub assignments: Vec<ProvenAssignment>,
    /// Directives the walk saw applied whose records were proven.
    pub directives: u64,
    /// Of which pending (their `q:` marker proven too).
    pub pending: Vec<DirectiveId>,
    /// Endpoints with a proven telemetry report.
    pub telemetry: u64,
    /// Endpoints with a proven offer.
    pub offers: u64,
    /// Proven loan records.
    pub loans: u64,
    /// Proven ledgers between pools.
    pub ledgers: u64,
    /// Total proof bytes received.
    pub proof_bytes: u64,
    /// The directives whose records were proven present.
    #[serde(skip)]
    pub proven_records: std::collections::BTreeSet<DirectiveId>,
}

/// The outcome of a verification.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyReport {
    /// The chain id the headers carry.
    pub chain_id: String,
    /// The trusted root, for people.
    pub trusted: String,
    /// First and last header verified.
    pub headers: (u64, u64),
    /// Blocks whose transactions (and results, up to the last but one header) were checked.
    pub blocks: u64,
    /// Transactions checked against `data_hash`.
    pub txs: u64,
    /// Results checked against `last_results_hash`.
    pub results: u64,
    /// Applied (code 0) and refused transactions among them.
    pub applied: u64,
    /// Refused ones.
    pub refused: u64,
    /// The state proofs (absent with `--no-state`).
    pub state: Option<StateReport>,
    /// Everything that failed; empty when all holds.
    pub failures: Vec<Failure>,
    /// Wall time, ms.
    pub elapsed_ms: u64,
    /// Headers walked per second (the walk alone: headers, blocks and results, not the state
    /// proofs).
    pub blocks_per_second: f64,
    /// Time spent on the state proofs, ms.
    pub state_ms: u64,
    /// Applied directives seen: id → (height, position in the block).
    #[serde(skip)]
    pub applied_ids: BTreeMap<DirectiveId, u64>,
}

impl VerifyReport {
    /// Whether everything verified.
    #[must_use]
    pub fn ok(&self) -> bool {
        self.failures.is_empty()
    }
}

/// The parts of CometBFT's `genesis.json` a verifier trusts.
#[derive(serde::Deserialize)]
struct GenesisFile {
    chain_id: tendermint::chain::Id,
    genesis_time: tendermint::Time,
    #[serde(default)]
    validators: Vec<tendermint::validator::Info>,
    app_state: serde_json::Value,
}

/// The registry the state proofs walk: pools, endpoints and groups.
#[derive(Debug, Default)]
struct Registry {
    pools: Vec<PoolId>,
    endpoints: Vec<(EndpointId, PoolId)>,
    groups: Vec<(GroupId, PoolId)>,
}

impl Registry {
    fn of(g: &GenesisAppState) -> Self {
        let mut r = Registry::default();
        for p in &g.pools {
            r.pools.push(p.id);
            r.endpoints.extend(p.endpoints.iter().map(|e| (e.id.clone(), p.id)));
            r.groups.extend(p.groups.iter().map(|x| (x.id.clone(), p.id)));
        }
        r
    }
}

/// Verify what `rpc` serves from `trust` up to the options' height.
///
/// # Errors
/// When the node cannot be reached or the trust root cannot be read; a node that answers but
/// lies is not an error: the report's `failures` name what failed.
pub fn run(rpc: &Rpc, trust: &Trust, opts: &VerifyOptions) -> Result<VerifyReport> {
    let started = Instant::now();
    let mut report = VerifyReport::default();
    let (_, latest, _) = rpc.status()?;
    let to = match opts.to_height {
        Some(t) if t + 1 > latest => {
            bail!(
                "--to-height {t}: the node is at height {latest}; its state and results need header {} (wait a block)",
                t + 1
            )
        }
        Some(t) => t,
        None => {
            latest.checked_sub(1).filter(|t| *t > 0).context("the chain has fewer than 2 blocks; wait and retry")?
        }
    };

    // The trusted root.
    let (mut chain, registry, genesis_root) = match trust {
        Trust::Genesis(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            let g: GenesisFile = serde_json::from_str(&text)
                .with_context(|| format!("{} is not a CometBFT genesis file", path.display()))?;
            let app = GenesisAppState::from_json(g.app_state.to_string().as_bytes())
                .map_err(|e| anyhow!("{}: app_state: {e}", path.display()))?;
            let (state, _, _) = State::genesis(g.chain_id.as_str(), &app);
            report.trusted = format!("genesis {} ({} validators)", path.display(), g.validators.len());
            let validators = tendermint::validator::Set::without_proposer(g.validators);
            (
                HeaderChain::from_genesis(g.chain_id, validators, g.genesis_time),
                Registry::of(&app),
                Some(state.app_hash()),
            )
        }
        Trust::Header { height, hash } => {
            if *height > to {
                bail!("the trusted header {height} is above the last height to check ({to})");
            }
            let signed = rpc.signed_header(*height)?;
            let validators = rpc.validator_set(*height)?;
            let next = rpc.validator_set(height + 1)?;
            report.trusted = format!("header {height} {hash}");
            match HeaderChain::from_header(*hash, signed, &validators, next) {
                Ok(c) => {
                    // The registry is what genesis wrote; its entries are proven one by one below.
                    let g = rpc.genesis_app_state()?;
                    let app = GenesisAppState::from_json(g.to_string().as_bytes())
                        .map_err(|e| anyhow!("the node's genesis app_state: {e}"))?;
                    (c, Registry::of(&app), None)
                }
                Err(f) => {
                    report.failures.push(f);
                    return Ok(finish(report, started));
                }
            }
        }
    };
    let first = chain.next_height();
    report.headers = (first, first.saturating_sub(1));
    let total = (to + 2).saturating_sub(first);
    let mut last_progress = Instant::now();
    // Results of the block below, checked once the header above it is verified.
    let mut results_below: Option<(u64, Vec<CommittedResult>)> = None;
    for h in first..=to + 1 {
        let block = rpc.raw_block(h)?;
        let signed = rpc.signed_header(h)?;
        if block.header.hash() != signed.header.hash() {
            report.failures.push(Failure {
                height: h,
                field: "header".into(),
                detail: "/block and /commit serve different headers".into(),
            });
            break;
        }
        let next_validators = if signed.header.next_validators_hash == signed.header.validators_hash
            && chain.next_validators().hash() == signed.header.validators_hash
        {
            chain.next_validators().clone()
        } else {
            rpc.validator_set(h + 1)?
        };
        let now = tendermint::Time::now();
        if let Err(f) = chain.advance(signed, next_validators, now) {
            report.failures.push(f);
            break;
        }
        report.headers.1 = h;
        let header = chain.last().expect("just verified").clone();
        if h == 1 {
            if let Some(root) = genesis_root {
                if header.app_hash.as_bytes() != root {
                    report.failures.push(Failure {
                        height: 1,
                        field: "app_hash".into(),
                        detail: "is not the root of the genesis file's app_state".into(),
                    });
                    break;
                }
            }
        }
        if let Some((below, results)) = results_below.take() {
            if let Err(f) = check_results(below, &header, &results) {
                report.failures.push(f);
                break;
            }
            report.results += results.len() as u64;
        }
        if h == to + 1 {
            break;
        }
        if let Err(f) = check_txs(&header, &block.data) {
            report.failures.push(f);
            break;
        }
        let results = rpc.committed_results(h)?;
        if results.len() != block.data.len() {
            report.failures.push(Failure {
                height: h,
                field: "last_results_hash".into(),
                detail: format!("{} results served for {} transactions", results.len(), block.data.len()),
            });
            break;
        }
        for (tx, r) in block.data.iter().zip(&results) {
            if r.code == 0 {
                report.applied += 1;
                if let Ok(t) = SignedTx::decode(tx) {
                    if makes_record(&t.body) {
                        report.applied_ids.insert(SignedTx::id_of(tx), h);
                    }
                }
            } else {
                report.refused += 1;
            }
        }
        report.txs += block.data.len() as u64;
        report.blocks += 1;
        results_below = Some((h, results));
        if opts.progress && last_progress.elapsed().as_secs() >= 2 {
            last_progress = Instant::now();
            eprintln!("verified {}/{} headers (height {h})", h + 1 - first, total);
        }
    }
    let walk = started.elapsed().as_secs_f64().max(1e-9);
    report.blocks_per_second = (report.headers.1 + 1).saturating_sub(report.headers.0) as f64 / walk;
    if report.failures.is_empty() && !opts.no_state {
        let proving = Instant::now();
        let next = chain.last().expect("header to+1 verified").clone();
        report.state = Some(prove_state(rpc, to, &next, &registry, &report.applied_ids, &mut report.failures)?);
        report.state_ms = u64::try_from(proving.elapsed().as_millis()).unwrap_or(u64::MAX);
    }
    report.chain_id = chain.last().map(|h| h.chain_id.to_string()).unwrap_or_default();
    Ok(finish(report, started))
}

fn finish(mut report: VerifyReport, started: Instant) -> VerifyReport {
    report.elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    report
}

/// Whether an applied transaction of this kind writes a directive record.
fn makes_record(body: &Body) -> bool {
    !matches!(
        body,
        Body::ReportTelemetry { .. }
            | Body::ReportTelemetryBatch { .. }
            | Body::Receipt { .. }
            | Body::ReportLoanWork { .. }
    )
}

/// Ask for `key` at `height` and check the answer against `next`'s app hash: the proven
/// value, `None` if proven absent.
fn proved(
    rpc: &Rpc,
    height: u64,
    next: &tendermint::block::Header,
    key: &[u8],
    st: &mut StateReport,
    failures: &mut Vec<Failure>,
) -> Result<Option<Vec<u8>>> {
    let a: ProvedAnswer = rpc.proved_key(key, height)?;
    let fail = |detail: String| Failure { height, field: "app_hash".into(), detail };
    if a.height != height {
        failures.push(fail(format!("key {}: answered at height {} instead", checks::printable(key), a.height)));
        return Ok(None);
    }
    let value = match a.code {
        0 => Some(a.value.as_slice()),
        code::NOT_FOUND => None,
        code::PRUNED => anyhow::bail!(
            "the node no longer keeps the state at height {height} to prove it: {}; verify an earlier \
             --to-height against a node that keeps every height ([store] keep_heights = 0), or pass --no-state",
            a.log
        ),
        c => {
            failures.push(fail(format!("key {}: refused (code {c}): {}", checks::printable(key), a.log)));
            return Ok(None);
        }
    };
    let Some((_, proof)) = a.proof.iter().find(|(t, _)| t == hashmesh_abci::core::commitment::PROOF_OP_TYPE) else {
        failures.push(fail(format!("key {}: no proof served", checks::printable(key))));
        return Ok(None);
    };
    st.proof_bytes += proof.len() as u64;
    if let Err(f) = check_answer(height, next, key, value, proof) {
        failures.push(f);
        return Ok(None);
    }
    st.keys_proved += 1;
    if value.is_some() {
        st.present += 1;
    }
    Ok(value.map(<[u8]>::to_vec))
}

fn prove_state(
    rpc: &Rpc,
    height: u64,
    next: &tendermint::block::Header,
    registry: &Registry,
    applied: &BTreeMap<DirectiveId, u64>,
    failures: &mut Vec<Failure>,
) -> Result<StateReport> {
    let mut st = StateReport { height, ..StateReport::default() };
    for key in [keys::META_GENESIS.to_vec(), keys::META_COUNTS.to_vec()] {
        proved(rpc, height, next, &key, &mut st, failures)?;
    }
    for p in &registry.pools {
        proved(rpc, height, next, &keys::pool(p), &mut st, failures)?;
        for q in &registry.pools {
            if p != q && proved(rpc, height, next, &keys::ledger(p, q), &mut st, failures)?.is_some() {
                st.ledgers += 1;
            }
        }
    }
    for (e, _) in &registry.endpoints {
        proved(rpc, height, next, &keys::endpoint(e), &mut st, failures)?;
        if proved(rpc, height, next, &keys::telemetry(e), &mut st, failures)?.is_some() {
            st.telemetry += 1;
        }
        if proved(rpc, height, next, &keys::offer(e), &mut st, failures)?.is_some() {
            st.offers += 1;
        }
    }
    for (g, owner) in &registry.groups {
        proved(rpc, height, next, &keys::group(g), &mut st, failures)?;
        let a = proved(rpc, height, next, &keys::assignment(g), &mut st, failures)?
            .map(|v| codec::decode_trusted::<Assignment>(&v))
            .transpose()
            .map_err(|e| anyhow!("a proven assignment of {g} does not decode: {e}"))?;
        st.assignments.push(ProvenAssignment {
            group: g.clone(),
            targets: a
                .as_ref()
                .map(|a| a.targets.iter().map(|t| (t.endpoint.clone(), t.weight_bp)).collect())
                .unwrap_or_default(),
            directive: a.map(|a| a.directive),
        });
        for (e, lender) in &registry.endpoints {
            if lender != owner && proved(rpc, height, next, &keys::loan(g, e), &mut st, failures)?.is_some() {
                st.loans += 1;
            }
        }
    }
    for (id, at) in applied {
        match proved(rpc, height, next, &keys::directive(id), &mut st, failures)? {
            Some(v) => {
                st.directives += 1;
                st.proven_records.insert(*id);
                let rec: DirectiveRecord = codec::decode_trusted(&v)
                    .map_err(|e| anyhow!("a proven directive record {id} does not decode: {e}"))?;
                if rec.status == hashmesh_abci::core::DirectiveStatus::Pending {
                    if proved(rpc, height, next, &keys::pending(id), &mut st, failures)?.is_some() {
                        st.pending.push(*id);
                    } else {
                        failures.push(Failure {
                            height,
                            field: "app_hash".into(),
                            detail: format!("directive {id} is pending but its pending marker is proven absent"),
                        });
                    }
                }
            }
            None if failures.iter().any(|f| f.detail.contains(&id.to_hex())) => {}
            None => failures.push(Failure {
                height,
                field: "app_hash".into(),
                detail: format!("directive {id}, applied at height {at}, has no record in the proven state"),
            }),
        }
    }
    Ok(st)
}

/// The report for people.
#[must_use]
pub fn render(r: &VerifyReport) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(s, "trusted: {}", r.trusted);
    let _ = writeln!(
        s,
        "headers {}..={} verified (commits signed by >2/3 of the voting power, validator sets followed)",
        r.headers.0, r.headers.1
    );
    let _ = writeln!(
        s,
        "blocks {}: {} transactions match their data_hash; {} results match last_results_hash ({} applied, {} refused)",
        r.blocks, r.txs, r.results, r.applied, r.refused
    );
    if let Some(st) = &r.state {
        let _ = writeln!(
            s,
            "state at height {} proven against header {}'s app_hash: {} keys ({} present, {} absent), {} proof bytes",
            st.height,
            st.height + 1,
            st.keys_proved,
            st.present,
            st.keys_proved - st.present,
            st.proof_bytes
        );
        let _ = writeln!(
            s,
            "  {} directives ({} pending), {} assignments, {} telemetry reports, {} offers, {} loans, {} ledgers",
            st.directives,
            st.pending.len(),
            st.assignments.iter().filter(|a| a.directive.is_some()).count(),
            st.telemetry,
            st.offers,
            st.loans,
            st.ledgers
        );
        for a in &st.assignments {
            let split: Vec<String> = a.targets.iter().map(|(e, w)| format!("{e}={w}")).collect();
            let _ = writeln!(
                s,
                "  {:<20} {}",
                a.group.as_str(),
                if split.is_empty() { "-".into() } else { split.join(" ") }
            );
        }
    }
    let _ = writeln!(
        s,
        "walk {:.0} headers/s; state proofs {} ms; {} ms in all",
        r.blocks_per_second, r.state_ms, r.elapsed_ms
    );
    if r.failures.is_empty() {
        let _ = writeln!(s, "VERIFIED: nothing the node served contradicts the trusted root");
    } else {
        for f in &r.failures {
            let _ = writeln!(s, "FAILED {f}");
        }
    }
    s
}
