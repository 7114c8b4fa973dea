//! Table-driven tests of every accept/reject rule, the directive lifecycle, and determinism.

mod common;

use common::*;
use hashmesh_abci::core::{CheckMode, DirectiveStatus};
use hashmesh_protocol::limits::TX_BYTES_MAX;
use hashmesh_protocol::{Body, DirectiveId, RejectCode};

fn code_of(chain: &mut Chain, tx: Vec<u8>) -> u32 {
    chain.block(vec![tx]).txs[0].code
}

#[test]
fn every_rejection_has_its_own_code_and_changes_nothing() {
    let mut chain = Chain::new();
    // A drained endpoint and a used nonce to run into.
    assert_eq!(code_of(&mut chain, sign_with('b', 1, CHAIN, drain("pool-b/ep-2"))), 0);
    let valid_a = route("pool-a/g-1", &[("pool-a/ep-1", 10_000)]);
    assert_eq!(code_of(&mut chain, sign_with('a', 5, CHAIN, valid_a.clone())), 0);

    let mut flipped = sign_with('a', 6, CHAIN, valid_a.clone());
    let last = flipped.len() - 1;
    flipped[last] ^= 0x01;
    let unknown_signer = sign_with('z', 1, CHAIN, valid_a.clone());
    let cases: Vec<(&str, Vec<u8>, RejectCode)> = vec![
        ("garbage bytes", b"\x00\x01garbage".to_vec(), RejectCode::Malformed),
        ("oversized", vec![0u8; TX_BYTES_MAX + 1], RejectCode::TxTooLarge),
        ("wrong chain", sign_with('a', 7, "other-chain", valid_a.clone()), RejectCode::WrongChainId),
        ("unknown signer", unknown_signer, RejectCode::UnknownSigner),
        ("flipped signature", flipped, RejectCode::BadSignature),
        (
            "replayed nonce",
            sign_with('a', 5, CHAIN, route("pool-a/g-2", &[("pool-a/ep-1", 10_000)])),
            RejectCode::NonceReused,
        ),
        (
            "weights 9999",
            sign_with('a', 8, CHAIN, route("pool-a/g-1", &[("pool-a/ep-1", 5000), ("pool-a/ep-2", 4999)])),
            RejectCode::WeightsNotTenThousand,
        ),
        (
            "zero weight",
            sign_with('a', 9, CHAIN, route("pool-a/g-1", &[("pool-a/ep-1", 10_000), ("pool-a/ep-2", 0)])),
            RejectCode::WeightsNotTenThousand,
        ),
        (
            "unknown endpoint",
            sign_with('a', 10, CHAIN, route("pool-a/g-1", &[("pool-x/ep-9", 10_000)])),
            RejectCode::UnknownEndpoint,
        ),
        (
            "unknown group",
            sign_with('a', 11, CHAIN, route("pool-a/g-9", &[("pool-a/ep-1", 10_000)])),
            RejectCode::UnknownGroup,
        ),
        (
            "foreign group",
            sign_with('a', 12, CHAIN, route("pool-b/g-1", &[("pool-a/ep-1", 10_000)])),
            RejectCode::GroupNotOwned,
        ),
        ("drain foreign endpoint", sign_with('a', 13, CHAIN, drain("pool-b/ep-1")), RejectCode::EndpointNotOwned),
        (
            "route onto drained",
            sign_with('a', 14, CHAIN, route("pool-a/g-1", &[("pool-b/ep-2", 10_000)])),
            RejectCode::EndpointDrained,
        ),
        ("restore undrained", sign_with('a', 15, CHAIN, restore("pool-a/ep-1")), RejectCode::EndpointNotDrained),
        (
            "duplicate endpoint",
            sign_with('a', 16, CHAIN, route("pool-a/g-1", &[("pool-a/ep-1", 5000), ("pool-a/ep-1", 5000)])),
            RejectCode::DuplicateEndpoint,
        ),
        (
            "vote on unknown",
            sign_with('a', 17, CHAIN, Body::Vote { directive: DirectiveId([9; 32]), approve: true }),
            RejectCode::UnknownDirective,
        ),
        ("drain twice", sign_with('b', 2, CHAIN, drain("pool-b/ep-2")), RejectCode::EndpointAlreadyDrained),
    ];
    for (name, tx, want) in cases {
        let before_hash = chain.state.app_hash();
        let before_kv = chain.kv.kv.clone();
        // CheckTx refuses it with the same code...
        let checked = chain.state.check_tx(&tx, CheckMode::VerifySignature, &chain.kv);
        assert_eq!(checked.as_ref().err().map(|r| r.code), Some(want), "{name}: CheckTx");
        // ...and in a block it gets the code, and the only write is none at all.
        let out = chain.block(vec![tx]);
        assert_eq!(out.txs[0].code, want.code(), "{name}: {}", out.txs[0].log);
        assert!(out.writes.is_empty(), "{name}: a refused tx wrote {:?}", out.writes);
        assert!(out.txs[0].events.is_empty(), "{name}: a refused tx emitted events");
        assert_eq!(chain.state.app_hash(), before_hash, "nothing written: the state root stays");
        let mut after = chain.kv.kv.clone();
        after.remove(b"m:last".as_slice());
        let mut before = before_kv;
        before.remove(b"m:last".as_slice());
        assert_eq!(after, before, "{name}: state changed");
    }
}

#[test]
fn own_route_is_active_at_once_and_sets_the_assignment() {
    let mut chain = Chain::new();
    let tx = chain.sign('a', route("pool-a/g-1", &[("pool-a/ep-1", 7000), ("pool-a/ep-2", 3000)]));
    let out = chain.block(vec![tx.clone()]);
    assert_eq!(out.txs[0].code, 0, "{}", out.txs[0].log);
    let ev = &out.txs[0].events[0];
    assert_eq!(ev.kind, "directive");
    assert_eq!(ev.attr("status"), Some("active"));
    assert_eq!(ev.attr("kind"), Some("route"));
    assert_eq!(ev.attr("group"), Some("pool-a/g-1"));
    assert_eq!(ev.attr("id"), Some(DirectiveId::of_tx_bytes(&tx).to_hex().as_str()));
    let a: Vec<_> = chain.state.assignments().collect();
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].targets.len(), 2);
    assert_eq!(chain.state.counts().active, 1);
}

#[test]
fn cross_pool_route_goes_pending_then_active_after_every_vote() {
    let mut chain = Chain::new();
    let tx = chain.sign('a', route("pool-a/g-1", &[("pool-b/ep-1", 5000), ("pool-c/ep-1", 5000)]));
    let id = DirectiveId::of_tx_bytes(&tx);
    let out = chain.block(vec![tx]);
    assert_eq!(out.txs[0].events[0].attr("status"), Some("pending"));
    assert_eq!(chain.state.assignments().count(), 0);

    // The signer's own endpoints are not targeted, so it cannot vote (window is 3 blocks,
    // so the refused votes share blocks with the real ones).
    let self_vote = chain.sign('a', Body::Vote { directive: id, approve: true });
    let vb = chain.sign('b', Body::Vote { directive: id, approve: true });
    let out = chain.block(vec![self_vote, vb]);
    assert_eq!(out.txs[0].code, RejectCode::VoteNotRequired.code());
    assert_eq!(out.txs[1].code, 0);
    assert_eq!(out.txs[1].events[2].attr("status"), Some("pending"), "one of two approvals");

    let again = chain.sign('b', Body::Vote { directive: id, approve: true });
    let vc = chain.sign('c', Body::Vote { directive: id, approve: true });
    let out = chain.block(vec![again, vc]);
    assert_eq!(out.txs[0].code, RejectCode::AlreadyVoted.code());
    let decided = &out.txs[1].events[2];
    assert_eq!((decided.attr("id"), decided.attr("status")), (Some(id.to_hex().as_str()), Some("active")));
    assert_eq!(chain.state.assignments().next().unwrap().directive, id);
    assert_eq!(chain.state.pending().count(), 0);

    let late = chain.sign('b', Body::Vote { directive: id, approve: false });
    assert_eq!(code_of(&mut chain, late), RejectCode::DirectiveNotPending.code());
}

#[test]
fn a_reject_vote_rejects_and_an_unvoted_route_expires() {
    let mut chain = Chain::new();
    let t1 = chain.sign('a', route("pool-a/g-1", &[("pool-b/ep-1", 10_000)]));
    let t2 = chain.sign('a', route("pool-a/g-2", &[("pool-b/ep-2", 10_000)]));
    let (id1, id2) = (DirectiveId::of_tx_bytes(&t1), DirectiveId::of_tx_bytes(&t2));
    let start = chain.state.height() + 1;
    chain.block(vec![t1, t2]);
    let no = chain.sign('b', Body::Vote { directive: id1, approve: false });
    let out = chain.block(vec![no]);
    assert_eq!(out.txs[0].events[2].attr("status"), Some("rejected"));
    // Vote window is 3 blocks: deadline = start + 3; expiry happens in the block after.
    while chain.state.height() < start + 3 {
        let out = chain.block(vec![]);
        assert!(out.block_events.is_empty());
    }
    let out = chain.block(vec![]);
    assert_eq!(out.block_events.len(), 1);
    assert_eq!(out.block_events[0].attr("id"), Some(id2.to_hex().as_str()));
    assert_eq!(out.block_events[0].attr("status"), Some("expired"));
    assert_eq!(chain.state.counts().expired, 1);
    assert_eq!(chain.state.counts().rejected, 1);
}

#[test]
fn drained_target_before_approval_rejects_the_route() {
    let mut chain = Chain::new();
    let t = chain.sign('a', route("pool-a/g-1", &[("pool-b/ep-1", 10_000)]));
    let id = DirectiveId::of_tx_bytes(&t);
    chain.block(vec![t]);
    // pool-b approves in the same block in which... it first drains its endpoint.
    let d = chain.sign('b', drain("pool-b/ep-1"));
    let v = chain.sign('b', Body::Vote { directive: id, approve: true });
    let out = chain.block(vec![d, v]);
    assert_eq!(out.txs[1].events[2].attr("status"), Some("rejected"));
    assert_eq!(chain.state.assignments().count(), 0);
    // Restore makes it routable again.
    let r = chain.sign('b', restore("pool-b/ep-1"));
    assert_eq!(code_of(&mut chain, r), 0);
    assert!(!chain.state.endpoint(&"pool-b/ep-1".parse().unwrap()).unwrap().drained);
}

#[test]
fn nonce_window_refuses_old_nonces_once_full() {
    let mut chain = Chain::new();
    let window = hashmesh_protocol::limits::NONCES_RETAINED_PER_POOL as u64;
    let txs: Vec<_> = (1..=window + 1).map(|n| sign_with('a', n * 10, CHAIN, drain_restore(n))).collect();
    let out = chain.block(txs);
    assert!(out.txs.iter().all(|t| t.code == 0), "{:?}", out.txs.iter().find(|t| t.code != 0));
    // Nonce 10 fell out of the window; 15 is below the smallest retained (20).
    let old = sign_with('a', 15, CHAIN, route("pool-a/g-1", &[("pool-a/ep-1", 10_000)]));
    assert_eq!(code_of(&mut chain, old), RejectCode::NonceReused.code());
    let fresh = sign_with('a', 25, CHAIN, route("pool-a/g-1", &[("pool-a/ep-1", 10_000)]));
    assert_eq!(code_of(&mut chain, fresh), 0, "gaps above the window floor are fine");
}

fn drain_restore(n: u64) -> Body {
    if n % 2 == 1 {
        drain("pool-a/ep-2")
    } else {
        restore("pool-a/ep-2")
    }
}

#[test]
fn duplicate_in_one_block_second_copy_is_refused() {
    let mut chain = Chain::new();
    let t = chain.sign('a', route("pool-a/g-1", &[("pool-a/ep-1", 10_000)]));
    let out = chain.block(vec![t.clone(), t]);
    assert_eq!(out.txs[0].code, 0);
    assert_eq!(out.txs[1].code, RejectCode::NonceReused.code());
}

#[test]
fn the_same_blocks_on_two_instances_give_the_same_hashes() {
    let blocks = scripted_blocks();
    let mut a = Chain::new();
    let mut b = Chain::new();
    for txs in &blocks {
        let ha = a.block(txs.clone()).app_hash;
        let hb = b.block(txs.clone()).app_hash;
        assert_eq!(ha, hb);
    }
    assert_eq!(a.kv.kv, b.kv.kv);
    // A different block changes the hash.
    let mut c = Chain::new();
    for txs in &blocks[..blocks.len() - 1] {
        c.block(txs.clone());
    }
    c.block(vec![]);
    assert_ne!(c.state.app_hash(), a.state.app_hash());
    let status: Vec<_> = a.state.pending().map(|d| d.status).collect();
    assert!(status.iter().all(|s| *s == DirectiveStatus::Pending));
}
