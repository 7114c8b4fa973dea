//! Property tests: any sequence of transactions keeps the invariants and is deterministic;
//! recheck and the signature memo never change an answer.

mod common;

use common::*;
use hashmesh_abci::core::{BlockInput, CheckMode};
use hashmesh_protocol::{Body, DirectiveId, RejectCode};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Route {
        who: usize,
        group: usize,
        targets: Vec<(usize, usize, u16)>,
    },
    Drain {
        who: usize,
        ep: usize,
    },
    Restore {
        who: usize,
        ep: usize,
    },
    Vote {
        who: usize,
        target: usize,
        approve: bool,
    },
    Offer {
        who: usize,
        ep: usize,
        max_gh: u64,
        expires_in: u64,
    },
    Withdraw {
        who: usize,
        ep: usize,
    },
    LoanWork {
        who: usize,
        borrower: usize,
        group: usize,
        lender: usize,
        ep: usize,
        opened: u64,
        at_ms: u64,
        hashes: u128,
    },
    Garbage(Vec<u8>),
}

const POOLS: [char; 3] = ['a', 'b', 'c'];

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..3usize, 1..=2usize, proptest::collection::vec((0..3usize, 1..=2usize, 1..10_000u16), 1..4))
            .prop_map(|(who, group, targets)| Op::Route { who, group, targets }),
        1 => (0..3usize, 1..=2usize).prop_map(|(who, ep)| Op::Drain { who, ep }),
        1 => (0..3usize, 1..=2usize).prop_map(|(who, ep)| Op::Restore { who, ep }),
        3 => (0..3usize, 0..8usize, any::<bool>()).prop_map(|(who, target, approve)| Op::Vote { who, target, approve }),
        2 => (0..3usize, 1..=2usize, 0..300u64, 0..20u64)
            .prop_map(|(who, ep, max_gh, expires_in)| Op::Offer { who, ep, max_gh, expires_in }),
        1 => (0..3usize, 1..=2usize).prop_map(|(who, ep)| Op::Withdraw { who, ep }),
        3 => (0..3usize, 0..3usize, 1..=2usize, 0..3usize, 1..=2usize, 0..12u64, 0..20u64, 0..2000u128).prop_map(
            |(who, borrower, group, lender, ep, opened, at_s, hashes)| Op::LoanWork {
                who, borrower, group, lender, ep, opened, at_ms: at_s * 1000, hashes
            }
        ),
        1 => proptest::collection::vec(any::<u8>(), 0..64).prop_map(Op::Garbage),
    ]
}

/// Turn ops into signed transactions. Route weights are normalised to 10 000 most of the time
/// so that many routes are valid; votes point at earlier routes.
fn to_txs(ops: &[Op]) -> Vec<Vec<u8>> {
    let mut routes: Vec<DirectiveId> = Vec::new();
    let mut out = Vec::new();
    for (n, op) in ops.iter().enumerate() {
        let nonce = n as u64 + 1;
        let tx = match op {
            Op::Route { who, group, targets } => {
                let total: u32 = targets.iter().map(|t| u32::from(t.2)).sum();
                let mut ts: Vec<(String, u16)> = targets
                    .iter()
                    .map(|(p, e, w)| (format!("pool-{}/ep-{e}", POOLS[*p]), (u32::from(*w) * 10_000 / total) as u16))
                    .collect();
                let sum: u32 = ts.iter().map(|t| u32::from(t.1)).sum();
                if n % 5 != 0 {
                    ts[0].1 += (10_000 - sum) as u16;
                }
                let refs: Vec<(&str, u16)> = ts.iter().map(|(e, w)| (e.as_str(), *w)).collect();
                let tx = sign_with(POOLS[*who], nonce, CHAIN, route(&format!("pool-{}/g-{group}", POOLS[*who]), &refs));
                routes.push(DirectiveId::of_tx_bytes(&tx));
                tx
            }
            Op::Drain { who, ep } => {
                sign_with(POOLS[*who], nonce, CHAIN, drain(&format!("pool-{}/ep-{ep}", POOLS[*who])))
            }
            Op::Restore { who, ep } => {
                sign_with(POOLS[*who], nonce, CHAIN, restore(&format!("pool-{}/ep-{ep}", POOLS[*who])))
            }
            Op::Vote { who, target, approve } => {
                let directive = routes.get(*target % routes.len().max(1)).copied().unwrap_or(DirectiveId([0; 32]));
                sign_with(POOLS[*who], nonce, CHAIN, Body::Vote { directive, approve: *approve })
            }
            Op::Offer { who, ep, max_gh, expires_in } => sign_with(
                POOLS[*who],
                nonce,
                CHAIN,
                Body::Offer {
                    endpoint: format!("pool-{}/ep-{ep}", POOLS[*who]).parse().unwrap(),
                    max_hs: max_gh * 1_000_000_000,
                    fee_bp: 100,
                    // Heights are small here: some offers are already expired, some open.
                    expires_height: *expires_in,
                },
            ),
            Op::Withdraw { who, ep } => sign_with(
                POOLS[*who],
                nonce,
                CHAIN,
                Body::Withdraw { endpoint: format!("pool-{}/ep-{ep}", POOLS[*who]).parse().unwrap() },
            ),
            // Heights and times are small: some reports name a loan that is open, some not;
            // some totals agree, some dispute, some go backwards.
            Op::LoanWork { who, borrower, group, lender, ep, opened, at_ms, hashes } => sign_with(
                POOLS[*who],
                nonce,
                CHAIN,
                Body::ReportLoanWork {
                    entries: vec![hashmesh_protocol::LoanWork {
                        group: format!("pool-{}/g-{group}", POOLS[*borrower]).parse().unwrap(),
                        endpoint: format!("pool-{}/ep-{ep}", POOLS[*lender]).parse().unwrap(),
                        opened_height: *opened,
                        at_ms: *at_ms,
                        accepted_hashes: *hashes,
                    }],
                },
            ),
            Op::Garbage(b) => b.clone(),
        };
        out.push(tx);
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn any_sequence_keeps_invariants_and_is_deterministic(ops in proptest::collection::vec(op(), 1..40), split in 1..6usize) {
        let txs = to_txs(&ops);
        let mut a = Chain::new();
        let mut b = Chain::new();
        for chunk in txs.chunks(split) {
            // Chain::block runs check_invariants after every block.
            let oa = a.block(chunk.to_vec());
            let ob = b.block(chunk.to_vec());
            prop_assert_eq!(oa.app_hash, ob.app_hash);
            for (t, bytes) in oa.txs.iter().zip(chunk) {
                // What CheckTx would have said before the block agrees with codes that do not
                // depend on earlier transactions of the same block.
                if t.code == RejectCode::Malformed.code() || t.code == RejectCode::BadSignature.code() {
                    prop_assert!(a.state.check_tx(bytes, CheckMode::VerifySignature, &a.kv).is_err());
                }
            }
        }
        prop_assert_eq!(a.kv.kv, b.kv.kv);
    }

    #[test]
    fn the_signature_memo_never_changes_results(ops in proptest::collection::vec(op(), 1..20)) {
        let txs = to_txs(&ops);
        let mut cold = Chain::new();
        let mut warm = Chain::new();
        let out_cold = cold.block(txs.clone());
        // The shell marks exactly the transactions whose signature verified in CheckTx.
        // Signatures are checked after decoding, chain id and signer, before every state rule.
        let pre: Vec<bool> = txs
            .iter()
            .map(|t| match warm.state.check_tx(t, CheckMode::VerifySignature, &warm.kv) {
                Ok(_) => true,
                Err(r) => r.code.code() > RejectCode::BadSignature.code(),
            })
            .collect();
        let input = BlockInput { height: 1, time_ms: 1_700_000_001_000, proposer: vec![7; 20], txs: &txs, preverified: &pre };
        let out_warm = warm.state.apply_block(&input, &warm.kv);
        prop_assert_eq!(out_cold.app_hash, out_warm.app_hash);
        prop_assert_eq!(out_cold.txs, out_warm.txs);
    }
}

#[test]
fn recheck_skips_the_signature_but_not_the_state_rules() {
    let mut chain = Chain::new();
    let tx = sign_with('a', 1, CHAIN, route("pool-a/g-1", &[("pool-a/ep-1", 10_000)]));
    assert!(chain.state.check_tx(&tx, CheckMode::VerifySignature, &chain.kv).is_ok());
    chain.block(vec![tx.clone()]);
    // After the commit the same bytes fail recheck on their nonce.
    let r = chain.state.check_tx(&tx, CheckMode::SignatureKnown, &chain.kv).unwrap_err();
    assert_eq!(r.code, RejectCode::NonceReused);
    // A flipped signature still fails a New check.
    let mut bad = sign_with('a', 2, CHAIN, route("pool-a/g-1", &[("pool-a/ep-1", 10_000)]));
    let last = bad.len() - 1;
    bad[last] ^= 1;
    assert_eq!(
        chain.state.check_tx(&bad, CheckMode::VerifySignature, &chain.kv).unwrap_err().code,
        RejectCode::BadSignature
    );
}
