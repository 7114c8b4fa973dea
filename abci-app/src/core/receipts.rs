//! Receipts on chain: which agents applied which directive, reported (batched) by the node of
//! the pool that owns the directive's group.

use hashmesh_protocol::limits::RECEIPTS_PER_DIRECTIVE_MAX;
use hashmesh_protocol::{codec, Body, PoolId, Receipt, RejectCode, SignedTx, RECEIPTS_PER_TX_MAX};

use super::apply::{reject, Rejection};
use super::events::Event;
use super::keys;
use super::model::{DirectiveRecord, DirectiveStatus, ReceiptRecord};
use super::state::State;
use super::writes::{KvRead, WriteSet};

impl State {
    /// The entries of a `Receipt` that are not recorded yet.
    ///
    /// Refused when the list is empty, too long or not strictly increasing by (directive,
    /// agent); when a directive is unknown, or is not an active route of one of the signer's
    /// groups; when a directive would pass `RECEIPTS_PER_DIRECTIVE_MAX` receipts; and when every
    /// entry is already recorded (a resent batch that only partly committed is accepted for its
    /// new entries).
    pub(crate) fn check_receipts(
        &self,
        signer: PoolId,
        receipts: &[Receipt],
        writes: &WriteSet,
        committed: &dyn KvRead,
    ) -> Result<Vec<Receipt>, Rejection> {
        if receipts.is_empty() || receipts.len() > RECEIPTS_PER_TX_MAX {
            return reject(
                RejectCode::ReceiptInvalid,
                format!("a receipt carries 1..={RECEIPTS_PER_TX_MAX} entries, got {}", receipts.len()),
            );
        }
        if !receipts.windows(2).all(|w| (w[0].directive, w[0].agent) < (w[1].directive, w[1].agent)) {
            return reject(RejectCode::ReceiptInvalid, "entries must be strictly increasing by (directive, agent)");
        }
        let mut fresh = Vec::new();
        for r in receipts {
            let Some(bytes) = writes.read_through(committed, &keys::directive(&r.directive)) else {
                return reject(RejectCode::UnknownDirective, format!("no directive {}", r.directive));
            };
            let rec: DirectiveRecord = codec::decode_trusted(&bytes).expect("directive records decode");
            let group = match SignedTx::decode(&rec.tx).map(|t| t.body) {
                Ok(Body::Route { group, .. }) if rec.status == DirectiveStatus::Active => group,
                _ => {
                    return reject(
                        RejectCode::ReceiptNotOwned,
                        format!("directive {} is not an active route", r.directive),
                    )
                }
            };
            if self.groups.get(&group).is_none_or(|g| g.owner != signer) {
                return reject(
                    RejectCode::ReceiptNotOwned,
                    format!("directive {} routes group {group}, which is not this pool's", r.directive),
                );
            }
            if writes.read_through(committed, &keys::receipt(&r.directive, &r.agent)).is_none() {
                fresh.push(*r);
            }
        }
        if fresh.is_empty() {
            return reject(RejectCode::ReceiptDuplicate, "every receipt in this transaction is already recorded");
        }
        // Entries are sorted by directive: count each directive's new entries in one run.
        for run in fresh.chunk_by(|a, b| a.directive == b.directive) {
            let d = &run[0].directive;
            let recorded = writes.count_through(committed, &keys::receipts_of(d));
            if recorded + run.len() > RECEIPTS_PER_DIRECTIVE_MAX {
                return reject(
                    RejectCode::ReceiptsFull,
                    format!("directive {d} has {recorded} receipts; at most {RECEIPTS_PER_DIRECTIVE_MAX} are recorded"),
                );
            }
        }
        Ok(fresh)
    }

    /// Record receipts; one `receipt` event each.
    pub(crate) fn record_receipts(
        pool: PoolId,
        receipts: &[Receipt],
        height: u64,
        writes: &mut WriteSet,
    ) -> (String, Vec<Event>) {
        let mut events = Vec::new();
        for r in receipts {
            let rec =
                ReceiptRecord { directive: r.directive, agent: r.agent, pool, applied_at_ms: r.applied_at_ms, height };
            writes.put(keys::receipt(&r.directive, &r.agent), codec::encode(&rec));
            events.push(
                Event::new("receipt")
                    .with("directive", r.directive.to_hex())
                    .with("agent", r.agent.to_hex())
                    .with("pool", pool.to_hex())
                    .with("applied_at_ms", r.applied_at_ms.to_string()),
            );
        }
        (format!("{} receipt(s) recorded", receipts.len()), events)
    }
}
