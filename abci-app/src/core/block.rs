//! What goes into applying a block and what comes out of it: the block as the core sees it,
//! each transaction's outcome, and the writes and tree nodes a block leaves for `Commit`.

use super::commitment::TreeUpdate;
use super::events::Event;
use super::writes::WriteSet;

/// A block as the core sees it.
#[derive(Debug, Clone)]
pub struct BlockInput<'a> {
    /// Its height; must be the state's height + 1.
    pub height: u64,
    /// Block time from the header, ms since the Unix epoch.
    pub time_ms: u64,
    /// Address of the proposing validator.
    pub proposer: Vec<u8>,
    /// The transactions, in block order.
    pub txs: &'a [Vec<u8>],
    /// Per transaction: whether this node already verified exactly these bytes' signature
    /// (in `CheckTx`). Verification is a pure function of the bytes, so skipping it for those
    /// cannot change any result; an empty slice means "verify everything".
    pub preverified: &'a [bool],
}

/// What became of one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxOutcome {
    /// 0 when applied, else a [`RejectCode`](hashmesh_protocol::RejectCode) number.
    pub code: u32,
    /// Readable result.
    pub log: String,
    /// Events (only for applied transactions).
    pub events: Vec<Event>,
}

/// What a block did.
#[derive(Debug, Clone)]
pub struct BlockOutcome {
    /// Height applied.
    pub height: u64,
    /// One per transaction, in order.
    pub txs: Vec<TxOutcome>,
    /// Events not tied to a transaction (expiries).
    pub block_events: Vec<Event>,
    /// Everything to persist at `Commit`.
    pub writes: WriteSet,
    /// The new app hash: the root of the state tree at this height.
    pub app_hash: [u8; 32],
    /// The state tree's new nodes, persisted with `writes`.
    pub tree: TreeUpdate,
}

/// What a block did, before the state tree is updated ([`State::execute_block`](super::State::execute_block)).
#[derive(Debug, Clone)]
pub struct Executed {
    /// Height applied.
    pub height: u64,
    /// One per transaction, in order.
    pub txs: Vec<TxOutcome>,
    /// Events not tied to a transaction (expiries).
    pub block_events: Vec<Event>,
    /// Everything to persist at `Commit`.
    pub writes: WriteSet,
}
