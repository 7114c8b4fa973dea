//! The in-memory state: everything validation needs, rebuilt from the store on start.
//! History (directive records other than pending ones) stays in the store.

use std::collections::{BTreeMap, BTreeSet};

use bincode::{Decode, Encode};
use hashmesh_protocol::codec;
use hashmesh_protocol::limits::NONCES_RETAINED_PER_POOL;
use hashmesh_protocol::{DirectiveId, EndpointId, GroupId, PoolId, PoolKey};
use serde::Serialize;

use super::commitment;
use super::genesis::GenesisAppState;
use super::keys;
use super::model::{
    Assignment, DirectiveRecord, DirectiveStatus, EndpointRecord, GroupRecord, LoanRecord, OfferRecord, PairLedger,
    Params, PoolRecord, TelemetryRecord,
};
use super::writes::{KvRead, WriteSet};

/// Chain id and params, stored once at genesis.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct GenesisMeta {
    /// The CometBFT chain id every transaction must name.
    pub chain_id: String,
    /// Network parameters.
    pub params: Params,
}

/// Running totals of committed directives by status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct Counts {
    /// Committed transactions recorded in history (all kinds).
    pub directives: u64,
    /// Routes waiting for votes.
    pub pending: u64,
    /// Routes that became active.
    pub active: u64,
    /// Routes voted down (or whose target was drained first).
    pub rejected: u64,
    /// Routes whose vote window passed.
    pub expired: u64,
    /// Drains, restores and votes.
    pub applied: u64,
}

impl Counts {
    pub(crate) fn bump(&mut self, status: DirectiveStatus, up: bool) {
        let slot = match status {
            DirectiveStatus::Pending => &mut self.pending,
            DirectiveStatus::Active => &mut self.active,
            DirectiveStatus::Rejected => &mut self.rejected,
            DirectiveStatus::Expired => &mut self.expired,
            DirectiveStatus::Applied => &mut self.applied,
        };
        *slot = if up { slot.checked_add(1) } else { slot.checked_sub(1) }.expect("status counter in range");
    }
}

/// A registered mining pool with its validated key and replay window.
#[derive(Debug, Clone)]
pub struct PoolEntry {
    /// The record from genesis.
    pub record: PoolRecord,
    /// Its key, validated once.
    pub key: PoolKey,
    /// The most recent nonces (at most `NONCES_RETAINED_PER_POOL`).
    pub nonces: BTreeSet<u64>,
}

/// Why stored state could not be loaded. Always a local fault: the process stops.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A record failed to decode.
    #[error("corrupt record under key {key}: {reason}")]
    Corrupt {
        /// Hex of the key.
        key: String,
        /// Decoder message.
        reason: String,
    },
}

/// The replicated state held in memory.
#[derive(Debug, Clone)]
pub struct State {
    pub(crate) chain_id: String,
    pub(crate) params: Params,
    pub(crate) height: u64,
    pub(crate) app_hash: [u8; 32],
    pub(crate) pools: BTreeMap<PoolId, PoolEntry>,
    pub(crate) endpoints: BTreeMap<EndpointId, EndpointRecord>,
    pub(crate) groups: BTreeMap<GroupId, GroupRecord>,
    pub(crate) assignments: BTreeMap<GroupId, Assignment>,
    pub(crate) pending: BTreeMap<DirectiveId, DirectiveRecord>,
    pub(crate) counts: Counts,
    /// Latest committed telemetry per endpoint.
    pub(crate) telemetry: BTreeMap<EndpointId, TelemetryRecord>,
    /// Standing offers, at most one per endpoint (expired ones stay until replaced or withdrawn).
    pub(crate) offers: BTreeMap<EndpointId, OfferRecord>,
    /// Loans by (borrowing group, lending endpoint), open and recently closed (at most one per
    /// pair: bounded by groups × endpoints).
    pub(crate) loans: BTreeMap<(GroupId, EndpointId), LoanRecord>,
    /// Settled lending per (lender, borrower).
    pub(crate) ledgers: BTreeMap<(PoolId, PoolId), PairLedger>,
    /// Derived from `assignments` (never stored): hashrate routed to each endpoint, H/s.
    pub(crate) endpoint_load_hs: BTreeMap<EndpointId, u128>,
}

fn decode<T: Decode<()>>(key: &[u8], bytes: &[u8]) -> Result<T, LoadError> {
    codec::decode_trusted(bytes).map_err(|e| LoadError::Corrupt { key: hex::encode(key), reason: e.to_string() })
}

impl State {
    /// The state at genesis (height 0), the writes that persist it and the state tree's
    /// version 0 (its root is the genesis app hash).
    ///
    /// # Panics
    /// If `genesis` was not validated (a pool key is unusable).
    #[must_use]
    pub fn genesis(chain_id: &str, genesis: &GenesisAppState) -> (Self, WriteSet, commitment::TreeUpdate) {
        let mut st = State {
            chain_id: chain_id.to_owned(),
            params: genesis.params.clone(),
            height: 0,
            app_hash: [0; 32],
            pools: BTreeMap::new(),
            endpoints: BTreeMap::new(),
            groups: BTreeMap::new(),
            assignments: BTreeMap::new(),
            pending: BTreeMap::new(),
            counts: Counts::default(),
            telemetry: BTreeMap::new(),
            offers: BTreeMap::new(),
            loans: BTreeMap::new(),
            ledgers: BTreeMap::new(),
            endpoint_load_hs: BTreeMap::new(),
        };
        let mut w = WriteSet::default();
        let meta = GenesisMeta { chain_id: chain_id.to_owned(), params: genesis.params.clone() };
        w.put(keys::META_GENESIS.to_vec(), codec::encode(&meta));
        w.put(keys::META_COUNTS.to_vec(), codec::encode(&st.counts));
        for p in &genesis.pools {
            let record = PoolRecord { id: p.id, name: p.name.clone(), validator_address: p.validator_address.clone() };
            w.put(keys::pool(&p.id), codec::encode(&record));
            let key = PoolKey::from_pool_id(&p.id).expect("genesis validated pool keys");
            st.pools.insert(p.id, PoolEntry { record, key, nonces: BTreeSet::new() });
            for e in &p.endpoints {
                let rec = EndpointRecord {
                    id: e.id.clone(),
                    owner: p.id,
                    stratum_url: e.stratum_url.clone(),
                    capacity_hs: e.capacity_hs,
                    region: e.region.clone(),
                    drained: false,
                };
                w.put(keys::endpoint(&e.id), codec::encode(&rec));
                st.endpoints.insert(e.id.clone(), rec);
            }
            for g in &p.groups {
                let rec = GroupRecord { id: g.id.clone(), owner: p.id, hashrate_hs: g.hashrate_hs };
                w.put(keys::group(&g.id), codec::encode(&rec));
                st.groups.insert(g.id.clone(), rec);
            }
        }
        let (root, tree) = commitment::update(&commitment::Memory::default(), 0, &w);
        st.app_hash = root;
        st.check_invariants();
        (st, w, tree)
    }

    /// Rebuild the state from committed storage, or `None` if nothing was ever committed.
    ///
    /// # Errors
    /// [`LoadError`] if a record does not decode (the store is corrupt).
    pub fn load(kv: &dyn KvRead) -> Result<Option<Self>, LoadError> {
        let Some(meta_bytes) = kv.get(keys::META_GENESIS) else {
            return Ok(None);
        };
        let meta: GenesisMeta = decode(keys::META_GENESIS, &meta_bytes)?;
        let last = kv.get(keys::META_LAST).expect("store writes m:last with m:genesis");
        let (height, app_hash): (u64, [u8; 32]) = decode(keys::META_LAST, &last)?;
        let counts = match kv.get(keys::META_COUNTS) {
            Some(b) => decode(keys::META_COUNTS, &b)?,
            None => Counts::default(),
        };
        let mut st = State {
            chain_id: meta.chain_id,
            params: meta.params,
            height,
            app_hash,
            pools: BTreeMap::new(),
            endpoints: BTreeMap::new(),
            groups: BTreeMap::new(),
            assignments: BTreeMap::new(),
            pending: BTreeMap::new(),
            counts,
            telemetry: BTreeMap::new(),
            offers: BTreeMap::new(),
            loans: BTreeMap::new(),
            ledgers: BTreeMap::new(),
            endpoint_load_hs: BTreeMap::new(),
        };
        for (k, v) in kv.scan_prefix(keys::POOL) {
            let record: PoolRecord = decode(&k, &v)?;
            let key = PoolKey::from_pool_id(&record.id)
                .map_err(|e| LoadError::Corrupt { key: hex::encode(&k), reason: e.to_string() })?;
            st.pools.insert(record.id, PoolEntry { record, key, nonces: BTreeSet::new() });
        }
        for (k, v) in kv.scan_prefix(keys::NONCE) {
            let corrupt =
                || LoadError::Corrupt { key: hex::encode(&k), reason: "nonce window of an unknown pool".into() };
            let pool = PoolId(k[keys::NONCE.len()..].try_into().map_err(|_| corrupt())?);
            let window: Vec<u64> = decode(&k, &v)?;
            st.pools.get_mut(&pool).ok_or_else(corrupt)?.nonces = window.into_iter().collect();
        }
        for (k, v) in kv.scan_prefix(keys::ENDPOINT) {
            let r: EndpointRecord = decode(&k, &v)?;
            st.endpoints.insert(r.id.clone(), r);
        }
        for (k, v) in kv.scan_prefix(keys::GROUP) {
            let r: GroupRecord = decode(&k, &v)?;
            st.groups.insert(r.id.clone(), r);
        }
        for (k, v) in kv.scan_prefix(keys::ASSIGNMENT) {
            let r: Assignment = decode(&k, &v)?;
            st.add_load(&r, true);
            st.assignments.insert(r.group.clone(), r);
        }
        for (k, v) in kv.scan_prefix(keys::TELEMETRY) {
            let r: TelemetryRecord = decode(&k, &v)?;
            st.telemetry.insert(r.endpoint.clone(), r);
        }
        for (k, v) in kv.scan_prefix(keys::OFFER) {
            let r: OfferRecord = decode(&k, &v)?;
            st.offers.insert(r.endpoint.clone(), r);
        }
        for (k, v) in kv.scan_prefix(keys::LOAN) {
            let r: LoanRecord = decode(&k, &v)?;
            st.loans.insert((r.group.clone(), r.endpoint.clone()), r);
        }
        for (k, v) in kv.scan_prefix(keys::LEDGER) {
            let r: PairLedger = decode(&k, &v)?;
            st.ledgers.insert((r.lender, r.borrower), r);
        }
        for (k, _) in kv.scan_prefix(keys::PENDING) {
            let id = DirectiveId(
                k[keys::PENDING.len()..]
                    .try_into()
                    .map_err(|_| LoadError::Corrupt { key: hex::encode(&k), reason: "bad pending key".into() })?,
            );
            let dk = keys::directive(&id);
            let bytes = kv.get(&dk).ok_or_else(|| LoadError::Corrupt {
                key: hex::encode(&dk),
                reason: "pending directive has no record".into(),
            })?;
            st.pending.insert(id, decode(&dk, &bytes)?);
        }
        st.check_invariants();
        Ok(Some(st))
    }

    /// Add (or remove) an assignment's shares to the derived endpoint loads.
    pub(crate) fn add_load(&mut self, a: &Assignment, add: bool) {
        let hashrate = self.groups.get(&a.group).map_or(0, |g| g.hashrate_hs);
        for t in &a.targets {
            let share = hashmesh_protocol::rules::share_hs(hashrate, t.weight_bp);
            let slot = self.endpoint_load_hs.entry(t.endpoint.clone()).or_insert(0);
            *slot =
                if add { slot.checked_add(share) } else { slot.checked_sub(share) }.expect("endpoint load in range");
        }
    }

    /// Assert every structural invariant; a failure is a bug, so it panics.
    ///
    /// # Panics
    /// On any broken invariant.
    pub fn check_invariants(&self) {
        for e in self.endpoints.values() {
            assert!(self.pools.contains_key(&e.owner), "endpoint {} has an unknown owner", e.id);
        }
        for g in self.groups.values() {
            assert!(self.pools.contains_key(&g.owner), "group {} has an unknown owner", g.id);
        }
        for a in self.assignments.values() {
            assert!(self.groups.contains_key(&a.group), "assignment for unknown group {}", a.group);
            let sum: u32 = a.targets.iter().map(|t| u32::from(t.weight_bp)).sum();
            assert_eq!(sum, hashmesh_protocol::BASIS_POINTS_TOTAL, "assignment {} weights", a.group);
            for t in &a.targets {
                assert!(self.endpoints.contains_key(&t.endpoint), "assignment to unknown endpoint");
            }
        }
        for p in self.pools.values() {
            assert!(p.nonces.len() <= NONCES_RETAINED_PER_POOL, "nonce window of {} overflows", p.record.name);
        }
        for d in self.pending.values() {
            assert_eq!(d.status, DirectiveStatus::Pending, "non-pending record {} in pending set", d.id);
            assert!(!d.voters_required.is_empty(), "pending directive {} needs no voter", d.id);
        }
        assert_eq!(self.counts.pending, self.pending.len() as u64, "pending counter");
        let mut load: BTreeMap<&EndpointId, u128> = BTreeMap::new();
        for a in self.assignments.values() {
            let hashrate = self.groups[&a.group].hashrate_hs;
            for t in &a.targets {
                *load.entry(&t.endpoint).or_insert(0) += hashmesh_protocol::rules::share_hs(hashrate, t.weight_bp);
            }
        }
        for (e, l) in &self.endpoint_load_hs {
            assert_eq!(load.get(e).copied().unwrap_or(0), *l, "derived load of {e}");
        }
        for t in self.telemetry.values() {
            assert!(self.endpoints.contains_key(&t.endpoint), "telemetry for unknown endpoint");
        }
        for o in self.offers.values() {
            assert_eq!(self.endpoints.get(&o.endpoint).map(|e| e.owner), Some(o.owner), "offer by a non-owner");
        }
        for ((group, endpoint), loan) in &self.loans {
            let (g, e) = (&self.groups[group], &self.endpoints[endpoint]);
            assert!(g.owner == loan.borrower && e.owner == loan.lender && loan.borrower != loan.lender, "loan parties");
            let routed = self.assignments.get(group).is_some_and(|a| a.targets.iter().any(|t| t.endpoint == *endpoint));
            assert_eq!(loan.open(), routed, "loan of {endpoint} to {group} open iff routed");
            assert!(loan.fee_hashes <= loan.book.settled_hashes, "fees within the settled work");
        }
        for a in self.assignments.values() {
            let owner = self.groups[&a.group].owner;
            for t in a.targets.iter().filter(|t| self.endpoints[&t.endpoint].owner != owner) {
                assert!(
                    self.loans.contains_key(&(a.group.clone(), t.endpoint.clone())),
                    "cross-pool route without a loan"
                );
            }
        }
        for l in self.ledgers.values() {
            assert!(l.hours.len() as u64 <= hashmesh_protocol::limits::REWARD_WINDOW_HOURS, "ledger window");
        }
        assert!(self.pending.len() <= hashmesh_protocol::limits::PENDING_DIRECTIVES_MAX);
    }

    /// Last committed (or last applied) height.
    #[must_use]
    pub fn height(&self) -> u64 {
        self.height
    }
    /// App hash at [`State::height`].
    #[must_use]
    pub fn app_hash(&self) -> [u8; 32] {
        self.app_hash
    }
    /// The chain id transactions must carry.
    #[must_use]
    pub fn chain_id(&self) -> &str {
        &self.chain_id
    }
    /// Network parameters.
    #[must_use]
    pub fn params(&self) -> &Params {
        &self.params
    }
    /// Directive totals.
    #[must_use]
    pub fn counts(&self) -> &Counts {
        &self.counts
    }
    /// Registered mining pools.
    pub fn pools(&self) -> impl Iterator<Item = &PoolRecord> {
        self.pools.values().map(|p| &p.record)
    }
    /// Current assignments.
    pub fn assignments(&self) -> impl Iterator<Item = &Assignment> {
        self.assignments.values()
    }
    /// Directives waiting for votes.
    pub fn pending(&self) -> impl Iterator<Item = &DirectiveRecord> {
        self.pending.values()
    }
    /// One endpoint.
    #[must_use]
    pub fn endpoint(&self, id: &EndpointId) -> Option<&EndpointRecord> {
        self.endpoints.get(id)
    }
    /// Every endpoint.
    pub fn endpoints(&self) -> impl Iterator<Item = &EndpointRecord> {
        self.endpoints.values()
    }
    /// One miner group.
    #[must_use]
    pub fn group(&self, id: &GroupId) -> Option<&GroupRecord> {
        self.groups.get(id)
    }
    /// Every miner group.
    pub fn groups(&self) -> impl Iterator<Item = &GroupRecord> {
        self.groups.values()
    }
    /// One group's assignment.
    #[must_use]
    pub fn assignment(&self, group: &GroupId) -> Option<&Assignment> {
        self.assignments.get(group)
    }
    /// An endpoint's latest telemetry (owner and observer views), fresh or not.
    #[must_use]
    pub fn telemetry(&self, endpoint: &EndpointId) -> Option<&TelemetryRecord> {
        self.telemetry.get(endpoint)
    }
    /// Hashrate the committed assignments route to `endpoint`, H/s.
    #[must_use]
    pub fn endpoint_load_hs(&self, endpoint: &EndpointId) -> u128 {
        self.endpoint_load_hs.get(endpoint).copied().unwrap_or(0)
    }
}
