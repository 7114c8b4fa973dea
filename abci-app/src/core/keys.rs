//! The key layout of the state store. One byte prefix per record kind; big-endian numbers
//! so that byte order is numeric order.

use hashmesh_protocol::{AgentId, DirectiveId, EndpointId, GroupId, PoolId};

/// Chain id and params, written once at genesis.
pub const META_GENESIS: &[u8] = b"m:genesis";
/// Running counters.
pub const META_COUNTS: &[u8] = b"m:counts";
/// Last committed `(height, app_hash)`; written by the store, never part of a block's writes.
pub const META_LAST: &[u8] = b"m:last";

/// Prefix of the state tree's nodes (`0x00 'n'` + the node key, borsh): outside the state,
/// never part of a block's writes; no state key starts with 0x00.
pub const TREE_NODE: &[u8] = b"\x00n";
/// Prefix of the state tree's versioned values (`0x00 'v'` + key hash + version, big-endian).
pub const TREE_VALUE: &[u8] = b"\x00v";
/// Prefix of the state tree's key preimages (`0x00 'k'` + key hash).
pub const TREE_PREIMAGE: &[u8] = b"\x00k";
/// Prefix of the index of tree nodes no longer in the newest version (`0x00 's'` + the version
/// that replaced it, big-endian + the node key, borsh): what pruning deletes, oldest first.
pub const TREE_STALE_NODE: &[u8] = b"\x00s";
/// Prefix of the index of replaced tree values (`0x00 'x'` + the version that replaced it,
/// big-endian + key hash + the replaced value's version, big-endian).
pub const TREE_STALE_VALUE: &[u8] = b"\x00x";

/// Prefix of [`pool`] keys.
pub const POOL: &[u8] = b"p:";
/// Prefix of [`nonces`] keys.
pub const NONCE: &[u8] = b"n:";
/// Prefix of [`endpoint`] keys.
pub const ENDPOINT: &[u8] = b"e:";
/// Prefix of [`group`] keys.
pub const GROUP: &[u8] = b"g:";
/// Prefix of [`assignment`] keys.
pub const ASSIGNMENT: &[u8] = b"a:";
/// Prefix of [`directive`] keys.
pub const DIRECTIVE: &[u8] = b"d:";
/// Prefix of [`pending`] keys.
pub const PENDING: &[u8] = b"q:";
/// Prefix of [`offer`] keys.
pub const OFFER: &[u8] = b"o:";
/// Prefix of [`loan`] keys.
pub const LOAN: &[u8] = b"l:";
/// Prefix of [`ledger`] keys.
pub const LEDGER: &[u8] = b"w:";
/// Prefix of [`telemetry`] keys.
pub const TELEMETRY: &[u8] = b"t:";
/// Prefix of [`history`] keys.
pub const HISTORY: &[u8] = b"h:";
/// Prefix of [`receipt`] keys.
pub const RECEIPT: &[u8] = b"r:";

fn join(prefix: &[u8], rest: &[&[u8]]) -> Vec<u8> {
    let mut k = prefix.to_vec();
    for r in rest {
        k.extend_from_slice(r);
    }
    k
}

/// A mining pool record.
#[must_use]
pub fn pool(id: &PoolId) -> Vec<u8> {
    join(POOL, &[id.as_bytes()])
}
/// A pool's replay window: its remembered nonces, ascending (`Vec<u64>`).
#[must_use]
pub fn nonces(pool: &PoolId) -> Vec<u8> {
    join(NONCE, &[pool.as_bytes()])
}
/// An endpoint record.
#[must_use]
pub fn endpoint(id: &EndpointId) -> Vec<u8> {
    join(ENDPOINT, &[id.as_str().as_bytes()])
}
/// A miner group record.
#[must_use]
pub fn group(id: &GroupId) -> Vec<u8> {
    join(GROUP, &[id.as_str().as_bytes()])
}
/// A group's current assignment.
#[must_use]
pub fn assignment(id: &GroupId) -> Vec<u8> {
    join(ASSIGNMENT, &[id.as_str().as_bytes()])
}
/// An endpoint's standing offer.
#[must_use]
pub fn offer(id: &EndpointId) -> Vec<u8> {
    join(OFFER, &[id.as_str().as_bytes()])
}
/// A loan of `endpoint` to `group` (the group id, a 0 byte, the endpoint id: ids hold no 0).
#[must_use]
pub fn loan(group: &GroupId, endpoint: &EndpointId) -> Vec<u8> {
    join(LOAN, &[group.as_str().as_bytes(), &[0], endpoint.as_str().as_bytes()])
}
/// The ledger of lending from `lender` to `borrower`.
#[must_use]
pub fn ledger(lender: &PoolId, borrower: &PoolId) -> Vec<u8> {
    join(LEDGER, &[lender.as_bytes(), borrower.as_bytes()])
}
/// The latest telemetry of an endpoint.
#[must_use]
pub fn telemetry(id: &EndpointId) -> Vec<u8> {
    join(TELEMETRY, &[id.as_str().as_bytes()])
}
/// A directive record.
#[must_use]
pub fn directive(id: &DirectiveId) -> Vec<u8> {
    join(DIRECTIVE, &[id.as_bytes()])
}
/// The value under a [`pending`] key. Never empty: the state tree cannot prove an empty value
/// (ICS-23 refuses one), so no record is empty.
pub const PENDING_MARK: &[u8] = &[1];

/// Marks a directive as pending (value: [`PENDING_MARK`]).
#[must_use]
pub fn pending(id: &DirectiveId) -> Vec<u8> {
    join(PENDING, &[id.as_bytes()])
}
/// History order: the ids of the directives a block applied, in order (`Vec<DirectiveId>`).
#[must_use]
pub fn history(height: u64) -> Vec<u8> {
    join(HISTORY, &[&height.to_be_bytes()])
}
/// An agent's receipt for a directive (`ReceiptRecord`); all receipts of a directive share the
/// prefix [`receipts_of`].
#[must_use]
pub fn receipt(directive: &DirectiveId, agent: &AgentId) -> Vec<u8> {
    join(RECEIPT, &[directive.as_bytes(), agent.as_bytes()])
}
/// The key prefix of every receipt of `directive`.
#[must_use]
pub fn receipts_of(directive: &DirectiveId) -> Vec<u8> {
    join(RECEIPT, &[directive.as_bytes()])
}
