//! Receipts: a pool's node records which of its agents applied which of its active routes —
//! once per (directive, agent), never for another pool's or an inactive directive.

mod common;

use common::*;
use hashmesh_abci::core::{keys, ReceiptRecord};
use hashmesh_protocol::{codec, AgentId, Body, DirectiveId, Receipt, RejectCode, RECEIPTS_PER_TX_MAX};

fn receipt(directive: DirectiveId, agent: u8) -> Receipt {
    Receipt { directive, agent: AgentId([agent; 32]), applied_at_ms: 1_700_000_000_123 }
}

fn send(chain: &mut Chain, who: char, receipts: Vec<Receipt>) -> (u32, String) {
    let tx = chain.sign(who, Body::Receipt { receipts });
    let out = chain.block(vec![tx]);
    (out.txs[0].code, out.txs[0].log.clone())
}

/// Commit `body` signed by `who`; its directive id.
fn commit(chain: &mut Chain, who: char, body: Body) -> DirectiveId {
    let tx = chain.sign(who, body);
    let out = chain.block(vec![tx.clone()]);
    assert_eq!(out.txs[0].code, 0, "{}", out.txs[0].log);
    DirectiveId::of_tx_bytes(&tx)
}

#[test]
fn receipts_are_recorded_once_for_own_active_routes_only() {
    let mut chain = Chain::new();
    let own = commit(&mut chain, 'a', route("pool-a/g-1", &[("pool-a/ep-1", 10_000)]));
    let other = commit(&mut chain, 'b', route("pool-b/g-1", &[("pool-b/ep-1", 10_000)]));
    let pending = commit(&mut chain, 'a', route("pool-a/g-2", &[("pool-b/ep-2", 10_000)]));
    let drain_id = commit(&mut chain, 'a', drain("pool-a/ep-2"));
    let hash_before = chain.state.app_hash();

    // Refusals change nothing.
    for (who, receipts, want) in [
        ('a', vec![], RejectCode::ReceiptInvalid),
        ('a', vec![receipt(own, 2), receipt(own, 1)], RejectCode::ReceiptInvalid),
        ('a', vec![receipt(own, 1), receipt(own, 1)], RejectCode::ReceiptInvalid),
        ('a', (0..=RECEIPTS_PER_TX_MAX as u8).map(|i| receipt(own, i)).collect(), RejectCode::ReceiptInvalid),
        ('a', vec![receipt(DirectiveId([9; 32]), 1)], RejectCode::UnknownDirective),
        ('a', vec![receipt(other, 1)], RejectCode::ReceiptNotOwned),
        ('b', vec![receipt(own, 1)], RejectCode::ReceiptNotOwned),
        ('a', vec![receipt(pending, 1)], RejectCode::ReceiptNotOwned),
        ('a', vec![receipt(drain_id, 1)], RejectCode::ReceiptNotOwned),
    ] {
        let kv_before = chain.kv.kv.iter().filter(|(k, _)| k.starts_with(keys::RECEIPT)).count();
        let (code, log) = send(&mut chain, who, receipts);
        assert_eq!(code, want.code(), "{log}");
        assert_eq!(chain.kv.kv.iter().filter(|(k, _)| k.starts_with(keys::RECEIPT)).count(), kv_before);
    }
    assert_ne!(chain.state.app_hash(), hash_before, "nonces still advance; receipts did not");

    // Two agents applied the route: both recorded, with an event each; not a directive.
    let directives = chain.state.counts().directives;
    let tx = chain.sign('a', Body::Receipt { receipts: vec![receipt(own, 1), receipt(own, 2)] });
    let out = chain.block(vec![tx]);
    assert_eq!(out.txs[0].code, 0, "{}", out.txs[0].log);
    assert_eq!(out.txs[0].events.iter().filter(|e| e.kind == "receipt").count(), 2);
    assert_eq!(chain.state.counts().directives, directives, "receipts are not directives");
    let rec: ReceiptRecord =
        codec::decode_trusted(&chain.kv.kv[&keys::receipt(&own, &AgentId([2; 32]))]).expect("stored receipt");
    assert_eq!((rec.pool, rec.applied_at_ms), (key('a').pool_id(), 1_700_000_000_123));

    // Resending: a batch with one new entry records only that one; all-old is refused.
    let (code, log) = send(&mut chain, 'a', vec![receipt(own, 2), receipt(own, 3)]);
    assert_eq!(code, 0, "{log}");
    assert!(log.starts_with("1 receipt"), "{log}");
    let (code, _) = send(&mut chain, 'a', vec![receipt(own, 1), receipt(own, 3)]);
    assert_eq!(code, RejectCode::ReceiptDuplicate.code());
}

#[test]
fn a_directive_holds_a_bounded_number_of_receipts_even_within_one_block() {
    use hashmesh_protocol::limits::RECEIPTS_PER_DIRECTIVE_MAX;
    let mut chain = Chain::new();
    let own = commit(&mut chain, 'a', route("pool-a/g-1", &[("pool-a/ep-1", 10_000)]));
    let agent = |i: usize| {
        let mut id = [0u8; 32];
        id[..8].copy_from_slice(&(i as u64).to_be_bytes());
        Receipt { directive: own, agent: AgentId(id), applied_at_ms: 1 }
    };
    // Fill up to one below the bound over several blocks.
    let below = RECEIPTS_PER_DIRECTIVE_MAX - 1;
    for chunk in (0..below).collect::<Vec<_>>().chunks(RECEIPTS_PER_TX_MAX) {
        let (code, log) = send(&mut chain, 'a', chunk.iter().map(|i| agent(*i)).collect());
        assert_eq!(code, 0, "{log}");
    }
    // Two more in one transaction pass the bound: refused, nothing recorded.
    let count = |c: &Chain| c.kv.kv.keys().filter(|k| k.starts_with(&keys::receipts_of(&own))).count();
    let (code, log) = send(&mut chain, 'a', vec![agent(below), agent(below + 1)]);
    assert_eq!(code, RejectCode::ReceiptsFull.code(), "{log}");
    assert_eq!(count(&chain), below);
    // Two transactions in one block: the first fills the bound, the second is refused.
    let t1 = chain.sign('a', Body::Receipt { receipts: vec![agent(below)] });
    let t2 = chain.sign('a', Body::Receipt { receipts: vec![agent(below + 1)] });
    let out = chain.block(vec![t1, t2]);
    assert_eq!(out.txs[0].code, 0, "{}", out.txs[0].log);
    assert_eq!(out.txs[1].code, RejectCode::ReceiptsFull.code(), "{}", out.txs[1].log);
    assert_eq!(count(&chain), RECEIPTS_PER_DIRECTIVE_MAX);
}
