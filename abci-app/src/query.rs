//! Read-only queries over committed state, answered as JSON (ABCI `Query`).
//!
//! | path | data | answer |
//! |---|---|---|
//! | `/status` | — | chain id, height, app hash, counts |
//! | `/pools`, `/endpoints`, `/groups`, `/assignments`, `/pending` | — | lists |
//! | `/offers` | — | standing offers, each with `open` |
//! | `/loans` | — | every loan (open and recently closed) with both sides' readings, what is settled and disputed, and for open ones the routed share |
//! | `/ledger` | — | settled lending per (lender, borrower): work, fees, reward weight |
//! | `/telemetry` | — | latest report per endpoint, its health and freshness |
//! | `/directive` | directive id (hex text) | one directive, with its receipts |
//! | `/history` | [`HistoryFilter`] JSON | a page of directives (with receipts) and a cursor |
//! | `/store` | a raw state key | its raw value at the query's height; with `prove`, an ICS-23 proof against that height's app hash ([`store`]) |
//!
//! Only `/store` answers carry proofs: the others are views over many keys (lists, joins), which
//! a Merkle proof of single keys cannot cover. `hashmesh audit verify` rebuilds those views from
//! proved keys.

use hashmesh_protocol::limits::HISTORY_PAGE_MAX;
use hashmesh_protocol::{codec, Body, DirectiveId, GroupId, PoolId, SignedTx};
use serde::{Deserialize, Serialize};

use crate::core::keys;
use crate::core::model::{
    Assignment, DirectiveRecord, DirectiveStatus, EndpointRecord, GroupRecord, LoanRecord, OfferRecord, PairLedger,
    PoolRecord, ReceiptRecord, TelemetryRecord, TelemetryView,
};
use crate::core::state::{Counts, GenesisMeta};
use crate::store::{Store, StoreError};
use tendermint_proto::v0_38::abci::{RequestQuery, ResponseQuery};

/// The path of raw, provable key lookups.
pub const STORE_PATH: &str = "/store";
/// The longest key a `/store` query may ask for.
pub const STORE_KEY_BYTES_MAX: usize = 1024;

/// Query codes (distinct from transaction codes).
pub mod code {
    /// The path is not one of ours.
    pub const UNKNOWN_PATH: u32 = 1;
    /// The data is malformed.
    pub const BAD_REQUEST: u32 = 2;
    /// Nothing found.
    pub const NOT_FOUND: u32 = 3;
    /// No genesis yet.
    pub const NOT_INITIALIZED: u32 = 4;
    /// The height asked for is older than the state history this node keeps.
    pub const PRUNED: u32 = 5;
}

/// A query failure: a code and a readable message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryError {
    /// One of [`code`].
    pub code: u32,
    /// What went wrong.
    pub log: String,
}

/// Why a query has no answer: the request was refused (a code for the caller), or the store
/// failed (a local fault: the node stops).
#[derive(Debug, thiserror::Error)]
pub enum QueryFailure {
    /// A refusal with a code and a message.
    #[error("query refused ({}): {}", .0.code, .0.log)]
    Refused(QueryError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn fail<T>(code: u32, log: impl Into<String>) -> Result<T, QueryFailure> {
    Err(QueryFailure::Refused(QueryError { code, log: log.into() }))
}

/// Filter and page of a `/history` query. All fields optional.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryFilter {
    /// Only directives signed by this pool.
    pub pool: Option<PoolId>,
    /// Only routes of this miner group.
    pub group: Option<GroupId>,
    /// First height (inclusive).
    pub from_height: Option<u64>,
    /// Last height (inclusive).
    pub to_height: Option<u64>,
    /// Continue after this cursor (from a previous page's `next`).
    pub after: Option<String>,
    /// Page size, at most `HISTORY_PAGE_MAX` (default 100).
    pub limit: Option<u32>,
}

/// A committed directive as users see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectiveView {
    /// SHA-256 of `tx_hex` (the CometBFT tx hash).
    pub id: DirectiveId,
    /// Commit height.
    pub height: u64,
    /// Position among the block's applied transactions.
    pub index: u32,
    /// Block time, ms since the Unix epoch.
    pub time_ms: u64,
    /// Block proposer's validator address (upper-case hex, as CometBFT prints it).
    pub proposer: String,
    /// Signing pool.
    pub signer: PoolId,
    /// `route`, `drain`, `restore` or `vote`.
    pub kind: String,
    /// The decoded body.
    pub body: Body,
    /// Lifecycle status.
    pub status: String,
    /// Pools whose votes a pending route needs.
    pub voters_required: Vec<PoolId>,
    /// Pools that approved.
    pub approvals: Vec<PoolId>,
    /// Last height for votes (0 if none needed).
    pub vote_deadline_height: u64,
    /// Height of the last status change.
    pub decided_height: u64,
    /// Why rejected or expired.
    pub reason: String,
    /// The exact signed bytes, hex: verify them yourself.
    pub tx_hex: String,
    /// Agents that applied it (committed `Receipt`s), by agent key.
    #[serde(default)]
    pub receipts: Vec<ReceiptRecord>,
    /// For a route that became active and was since replaced by a newer route of its group
    /// (`status` then reads `superseded`): the route in effect now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub superseded_by: Option<DirectiveId>,
}

impl DirectiveView {
    /// The view of a stored record.
    ///
    /// # Panics
    /// If the stored bytes do not decode (they were validated before they were stored).
    #[must_use]
    pub fn from_record(r: &DirectiveRecord) -> Self {
        let tx = SignedTx::decode(&r.tx).expect("stored transaction decodes");
        Self {
            id: r.id,
            height: r.height,
            index: r.index,
            time_ms: r.time_ms,
            proposer: hex::encode_upper(&r.proposer),
            signer: r.signer,
            kind: tx.body.kind().to_owned(),
            body: tx.body,
            status: r.status.name().to_owned(),
            voters_required: r.voters_required.clone(),
            approvals: r.approvals.clone(),
            vote_deadline_height: r.vote_deadline_height,
            decided_height: r.decided_height,
            reason: r.reason.clone(),
            tx_hex: hex::encode(&r.tx),
            receipts: Vec::new(),
            superseded_by: None,
        }
    }
}

/// A page of history.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HistoryPage {
    /// Matching directives in commit order.
    pub directives: Vec<DirectiveView>,
    /// Pass as `after` to get the next page; absent at the end.
    pub next: Option<String>,
}

/// `/status`.
#[derive(Debug, Clone, Serialize)]
pub struct StatusView {
    /// Chain id.
    pub chain_id: String,
    /// Last committed height.
    pub height: u64,
    /// App hash at that height (upper-case hex).
    pub app_hash: String,
    /// Registered pools, endpoints, groups.
    pub pools: u64,
    /// Endpoints.
    pub endpoints: u64,
    /// Miner groups.
    pub groups: u64,
    /// Directive totals by status (`active` counts every route that ever became active).
    pub directives: Counts,
    /// Routes in effect now (one per routed group); the other active routes were superseded.
    pub routes_in_effect: u64,
    /// The network's parameters (vote window, health floor, utilisation ceiling, staleness).
    pub params: crate::core::Params,
}

/// Answer one query against committed state.
///
/// # Errors
/// [`QueryFailure::Refused`] for unknown paths, bad data, missing records;
/// [`QueryFailure::Store`] when the store fails.
pub fn handle(store: &Store, path: &str, data: &[u8]) -> Result<Vec<u8>, QueryFailure> {
    let Some(meta) = store.record::<GenesisMeta>(keys::META_GENESIS)? else {
        return fail(code::NOT_INITIALIZED, "no genesis has been applied yet");
    };
    match path {
        "/status" => {
            let (height, hash) = store.last_committed()?.unwrap_or((0, [0; 32]));
            let counts: Counts = store.record(keys::META_COUNTS)?.unwrap_or_default();
            Ok(json(&StatusView {
                chain_id: meta.chain_id,
                height,
                app_hash: hex::encode_upper(hash),
                pools: store.try_scan_prefix(keys::POOL)?.len() as u64,
                endpoints: store.try_scan_prefix(keys::ENDPOINT)?.len() as u64,
                groups: store.try_scan_prefix(keys::GROUP)?.len() as u64,
                directives: counts,
                routes_in_effect: store.try_scan_prefix(keys::ASSIGNMENT)?.len() as u64,
                params: meta.params,
            }))
        }
        "/pools" => Ok(json(&store.records::<PoolRecord>(keys::POOL)?)),
        "/telemetry" => {
            let height = store.last_committed()?.map_or(0, |(h, _)| h);
            let stale = meta.params.telemetry_stale_blocks;
            let view = |pool: Option<PoolId>, v: &TelemetryView| {
                serde_json::json!({
                    "pool": pool, "epoch": v.epoch, "height": v.height,
                    "fresh": v.height + stale >= height,
                    "health_bp": hashmesh_protocol::rules::measurement_health_bp(&v.measurement),
                    "measurement": v.measurement,
                })
            };
            let views: Vec<serde_json::Value> = store
                .records::<TelemetryRecord>(keys::TELEMETRY)?
                .into_iter()
                .map(|t| {
                    let judged = t.judged(height, stale);
                    let fresh = t.owner.iter().chain(t.observers.values()).any(|v| v.height + stale >= height);
                    serde_json::json!({
                        "endpoint": t.endpoint, "health_bp": judged.health_bp,
                        "owner_health_bp": judged.owner_health_bp, "flagged": judged.flagged, "fresh": fresh,
                        "owner": t.owner.as_ref().map(|v| view(None, v)),
                        "observers": t.observers.iter().map(|(p, v)| view(Some(*p), v)).collect::<Vec<_>>(),
                    })
                })
                .collect();
            Ok(json(&views))
        }
        "/offers" => {
            let height = store.last_committed()?.map_or(0, |(h, _)| h);
            let views: Vec<serde_json::Value> = store
                .records::<OfferRecord>(keys::OFFER)?
                .into_iter()
                .map(|o| {
                    let open = o.expires_height > height;
                    let mut v = serde_json::to_value(&o).unwrap_or_default();
                    v["open"] = serde_json::json!(open);
                    v
                })
                .collect();
            Ok(json(&views))
        }
        "/loans" => {
            let groups: std::collections::BTreeMap<_, _> =
                store.records::<GroupRecord>(keys::GROUP)?.into_iter().map(|g| (g.id.clone(), g)).collect();
            let routes: std::collections::BTreeMap<_, _> =
                store.records::<Assignment>(keys::ASSIGNMENT)?.into_iter().map(|a| (a.group.clone(), a)).collect();
            let loans: Vec<serde_json::Value> = store
                .records::<LoanRecord>(keys::LOAN)?
                .into_iter()
                .map(|l| {
                    let mut v = serde_json::to_value(&l).unwrap_or_default();
                    v["open"] = serde_json::json!(l.open());
                    let routed = routes.get(&l.group).and_then(|a| {
                        let t = a.targets.iter().find(|t| t.endpoint == l.endpoint)?;
                        Some((a, t.weight_bp))
                    });
                    if let (Some((a, weight_bp)), Some(g)) = (routed, groups.get(&l.group)) {
                        v["weight_bp"] = serde_json::json!(weight_bp);
                        v["hashrate_hs"] =
                            serde_json::json!(hashmesh_protocol::rules::share_hs(g.hashrate_hs, weight_bp).to_string());
                        v["directive"] = serde_json::json!(a.directive);
                    }
                    v
                })
                .collect();
            Ok(json(&loans))
        }
        "/ledger" => Ok(json(&store.records::<PairLedger>(keys::LEDGER)?)),
        "/endpoints" => Ok(json(&store.records::<EndpointRecord>(keys::ENDPOINT)?)),
        "/groups" => Ok(json(&store.records::<GroupRecord>(keys::GROUP)?)),
        "/assignments" => Ok(json(&store.records::<Assignment>(keys::ASSIGNMENT)?)),
        "/pending" => {
            let mut views: Vec<DirectiveView> = Vec::new();
            for (k, _) in store.try_scan_prefix(keys::PENDING)? {
                views.extend(directive(store, &k[keys::PENDING.len()..])?);
            }
            Ok(json(&views))
        }
        "/directive" => {
            let text = std::str::from_utf8(data).unwrap_or("").trim();
            let id: DirectiveId = text.parse().or_else(|_| fail(code::BAD_REQUEST, "data must be a 64-hex-character directive id"))?;
            match directive(store, id.as_bytes())? {
                Some(v) => Ok(json(&v)),
                None => fail(code::NOT_FOUND, format!("no committed directive {id}")),
            }
        }
        "/history" => {
            let filter: HistoryFilter = if data.is_empty() {
                HistoryFilter::default()
            } else {
                serde_json::from_slice(data).or_else(|e| fail(code::BAD_REQUEST, format!("bad history filter: {e}")))?
            };
            Ok(json(&history(store, &filter)?))
        }
        other => fail(
            code::UNKNOWN_PATH,
            format!("unknown query path {other:?}; try /status, /pools, /endpoints, /groups, /assignments, /pending, /telemetry, /offers, /loans, /ledger, /directive, /history"),
        ),
    }
}

fn json<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("views serialize")
}

fn directive(store: &Store, id: &[u8]) -> Result<Option<DirectiveView>, StoreError> {
    let Ok(id) = id.try_into().map(DirectiveId) else { return Ok(None) };
    let Some(rec) = store.record::<DirectiveRecord>(&keys::directive(&id))? else { return Ok(None) };
    let mut view = DirectiveView::from_record(&rec);
    view.receipts = store.records::<ReceiptRecord>(&keys::receipts_of(&id))?;
    // An active route stays `active` in its record; the view says when a newer route of its
    // group replaced it.
    if let (DirectiveStatus::Active, Body::Route { group, .. }) = (rec.status, &view.body) {
        if let Some(now) = store.record::<Assignment>(&keys::assignment(group))?.filter(|a| a.directive != id) {
            view.status = "superseded".into();
            view.superseded_by = Some(now.directive);
        }
    }
    Ok(Some(view))
}

fn parse_cursor(c: &str) -> Option<(u64, u32)> {
    let (h, i) = c.split_once(':')?;
    Some((h.parse().ok()?, i.parse().ok()?))
}

fn history(store: &Store, f: &HistoryFilter) -> Result<HistoryPage, QueryFailure> {
    let limit = f.limit.unwrap_or(100);
    if limit == 0 || limit > HISTORY_PAGE_MAX {
        return fail(code::BAD_REQUEST, format!("limit must be 1..={HISTORY_PAGE_MAX}"));
    }
    let after = match &f.after {
        Some(c) => Some(parse_cursor(c).ok_or_else(|| {
            QueryFailure::Refused(QueryError { code: code::BAD_REQUEST, log: format!("bad cursor {c:?}") })
        })?),
        None => None,
    };
    let from = f.from_height.unwrap_or(0).max(after.map_or(0, |(h, _)| h));
    let start = keys::history(from);
    let end = match f.to_height {
        Some(h) => keys::history(h.saturating_add(1)),
        None => keys::history(u64::MAX),
    };
    let mut out: Vec<DirectiveView> = Vec::new();
    let mut next = None;
    'blocks: for kv in store.range(&start, &end) {
        let (k, v) = kv?;
        let height = u64::from_be_bytes(k[keys::HISTORY.len()..].try_into().expect("history key is h: + 8 bytes"));
        let ids: Vec<DirectiveId> = codec::decode_trusted(&v).map_err(|e| store.corrupt(&k, e))?;
        for (index, id) in ids.iter().enumerate() {
            let index = u32::try_from(index).expect("index fits u32");
            if after.is_some_and(|cursor| (height, index) <= cursor) {
                continue;
            }
            let Some(view) = directive(store, id.as_bytes())? else { continue };
            if f.pool.is_some_and(|p| p != view.signer)
                || f.group.as_ref().is_some_and(|g| view.body.group() != Some(g))
            {
                continue;
            }
            if out.len() == limit as usize {
                let last = out.last().expect("non-empty page");
                next = Some(format!("{}:{}", last.height, last.index));
                break 'blocks;
            }
            out.push(view);
        }
    }
    Ok(HistoryPage { directives: out, next })
}

/// `/store`: the raw value under the key in `data` at `req.height` (0: the last committed
/// height), with an ICS-23 proof against the app hash of that height (in the header of the
/// next block) when `prove` is set. An absent key answers `NOT_FOUND` with an absence proof.
///
/// # Errors
/// [`StoreError`] on a storage fault (the node stops).
pub fn store(store: &Store, req: &RequestQuery, last: u64) -> Result<ResponseQuery, StoreError> {
    let refuse = |code, log: String| ResponseQuery { code, log, ..Default::default() };
    let version = match u64::try_from(req.height) {
        Ok(0) => last,
        Ok(h) if h <= last => h,
        _ => {
            return Ok(refuse(
                code::BAD_REQUEST,
                format!("height {} is not a committed height (0..={last}; 0 means the last)", req.height),
            ))
        }
    };
    if req.data.is_empty() || req.data.len() > STORE_KEY_BYTES_MAX {
        return Ok(refuse(code::BAD_REQUEST, format!("the key (query data) must be 1..={STORE_KEY_BYTES_MAX} bytes")));
    }
    let Some((value, proof)) = store.prove(&req.data, version)? else {
        let oldest = store.oldest_provable(last);
        return Ok(refuse(
            code::PRUNED,
            format!(
                "height {version} is no longer in this node's state history: it proves heights {oldest}..={last} \
                 ([store] keep_heights); ask a node that keeps every height (keep_heights = 0)"
            ),
        ));
    };
    let proof_ops = req.prove.then(|| tendermint_proto::v0_38::crypto::ProofOps {
        ops: vec![tendermint_proto::v0_38::crypto::ProofOp {
            r#type: crate::core::commitment::PROOF_OP_TYPE.into(),
            key: req.data.to_vec(),
            data: crate::core::commitment::encode_proof(&proof),
        }],
    });
    let (code, log) = match &value {
        Some(_) => (0, String::new()),
        None => (code::NOT_FOUND, "no value under this key".to_owned()),
    };
    Ok(ResponseQuery {
        code,
        log,
        key: req.data.clone(),
        value: value.unwrap_or_default().into(),
        proof_ops,
        height: i64::try_from(version).expect("height fits i64"),
        ..Default::default()
    })
}
