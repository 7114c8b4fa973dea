//! What `ProcessProposal` refuses (ADR 0013): transactions no honest proposer makes — forged,
//! for another chain, from an unknown signer, replayed, a nonce used twice, undecodable or
//! oversized — while a transaction that will merely fail a state rule in `FinalizeBlock` is
//! accepted (an honest proposer cannot foresee those).

mod common;

use common::*;
use hashmesh_protocol::limits::TX_BYTES_MAX;
use hashmesh_protocol::RejectCode;

fn refused(c: &Chain, txs: &[Vec<u8>]) -> Vec<(usize, RejectCode)> {
    let bytes: Vec<&[u8]> = txs.iter().map(Vec::as_slice).collect();
    c.state.proposal_refusals(&bytes, &[]).into_iter().map(|(i, r)| (i, r.code)).collect()
}

#[test]
fn a_proposal_is_refused_for_transactions_no_honest_proposer_makes() {
    let mut c = Chain::new();
    let committed = c.sign('a', route("pool-a/g-1", &[("pool-a/ep-1", 10_000)]));
    assert_eq!(c.block(vec![committed.clone()]).txs[0].code, 0);

    let fine = c.sign('b', drain("pool-b/ep-1"));
    // Fails a state rule in FinalizeBlock (not its endpoint), but is honest: accepted.
    let state_rule = c.sign('a', drain("pool-b/ep-1"));
    assert!(refused(&c, &[fine.clone(), state_rule]).is_empty());

    let mut forged = c.sign('a', drain("pool-a/ep-2"));
    let last = forged.len() - 1;
    forged[last] ^= 1;
    let other_chain = sign_with('a', 900, "another-chain", drain("pool-a/ep-2"));
    let stranger = sign_with('z', 901, CHAIN, drain("pool-a/ep-2"));
    let twice_a = sign_with('c', 902, CHAIN, drain("pool-c/ep-1"));
    let twice_b = sign_with('c', 902, CHAIN, restore("pool-c/ep-1"));
    let cases = vec![
        fine,
        forged,
        other_chain,
        stranger,
        committed,
        twice_a,
        twice_b,
        b"junk".to_vec(),
        vec![0xAB; TX_BYTES_MAX + 1],
    ];
    assert_eq!(
        refused(&c, &cases),
        vec![
            (1, RejectCode::BadSignature),
            (2, RejectCode::WrongChainId),
            (3, RejectCode::UnknownSigner),
            (4, RejectCode::NonceReused),
            (6, RejectCode::NonceReused),
            (7, RejectCode::Malformed),
            (8, RejectCode::TxTooLarge),
        ]
    );
    // A signature already verified in CheckTx is not verified again (the memo); the rest still is.
    let bytes: Vec<&[u8]> = cases.iter().map(Vec::as_slice).collect();
    let memo = vec![true; cases.len()];
    let with_memo: Vec<usize> = c.state.proposal_refusals(&bytes, &memo).into_iter().map(|(i, _)| i).collect();
    assert_eq!(with_memo, [2, 3, 4, 6, 7, 8], "only the forged signature goes unseen when the memo vouches for it");
}
