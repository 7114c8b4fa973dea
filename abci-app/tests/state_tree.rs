//! The state tree (ADR 0014): one root on every validator, the same roots on a replay from
//! height 0, and proofs from the sled store that hold against those roots — and fail when
//! anything in them is changed.

mod common;

use common::*;
use hashmesh_abci::core::commitment::{self, ProofError};
use hashmesh_abci::core::keys;
use hashmesh_abci::query::{code, STORE_PATH};
use hashmesh_abci::{AppHandle, Store};
use hashmesh_protocol::Body;
use proptest::prelude::*;
use tendermint_abci::Application;
use tendermint_proto::v0_38::abci::{RequestFinalizeBlock, RequestInitChain, RequestQuery, ResponseQuery};

/// `count` random directives (own and cross-pool routes, drains, restores, some refused) in
/// blocks of 1..=40, each signed with a fresh nonce.
fn random_blocks(seed: u64, count: usize) -> Vec<Vec<Vec<u8>>> {
    let mut rng = Rng(seed);
    let pools = ['a', 'b', 'c'];
    let mut nonces = [0u64; 3];
    let mut blocks = Vec::new();
    let mut made = 0;
    while made < count {
        let size = (1 + rng.below(40) as usize).min(count - made);
        let mut block = Vec::with_capacity(size);
        for _ in 0..size {
            let p = rng.below(3) as usize;
            let who = pools[p];
            let other = pools[rng.below(3) as usize];
            let w = 1 + rng.below(9_999) as u16;
            let body: Body = match rng.below(10) {
                0..=5 => route(
                    &format!("pool-{who}/g-{}", 1 + rng.below(2)),
                    &[(&format!("pool-{who}/ep-1"), w), (&format!("pool-{other}/ep-2"), 10_000 - w)],
                ),
                6 | 7 => drain(&format!("pool-{who}/ep-{}", 1 + rng.below(2))),
                _ => restore(&format!("pool-{who}/ep-{}", 1 + rng.below(2))),
            };
            nonces[p] += 1;
            block.push(sign_with(who, nonces[p], CHAIN, body));
        }
        made += size;
        blocks.push(block);
    }
    blocks
}

fn shell(dir: &std::path::Path) -> AppHandle {
    let app = AppHandle::new(Store::open(dir).unwrap()).unwrap();
    app.init_chain(RequestInitChain {
        chain_id: CHAIN.into(),
        app_state_bytes: serde_json::to_vec(&genesis()).unwrap().into(),
        initial_height: 1,
        ..Default::default()
    });
    app
}

/// Finalize and commit one block through the shell (the same block time and proposer as
/// `Chain::block`); the app hash.
fn shell_block(app: &AppHandle, height: u64, txs: &[Vec<u8>]) -> [u8; 32] {
    let resp = app.finalize_block(RequestFinalizeBlock {
        txs: txs.iter().map(|t| t.clone().into()).collect(),
        height: height as i64,
        proposer_address: vec![7u8; 20].into(),
        time: Some(tendermint_proto::google::protobuf::Timestamp { seconds: 1_700_000_000 + height as i64, nanos: 0 }),
        ..Default::default()
    });
    app.commit();
    resp.app_hash.to_vec().try_into().unwrap()
}

fn store_query(app: &AppHandle, key: &[u8], height: u64) -> ResponseQuery {
    app.query(RequestQuery { path: STORE_PATH.into(), data: key.to_vec().into(), height: height as i64, prove: true })
}

fn proof_bytes(r: &ResponseQuery) -> Vec<u8> {
    let ops = r.proof_ops.as_ref().expect("a proved answer carries proof ops");
    assert_eq!(ops.ops.len(), 1);
    assert_eq!(ops.ops[0].r#type, commitment::PROOF_OP_TYPE);
    ops.ops[0].data.clone()
}

#[test]
fn a_thousand_random_directives_give_one_root_everywhere_and_on_replay_and_every_answer_proves() {
    let blocks = random_blocks(0x5EED_0001, 1000);
    // Three validators in memory and one on sled through the ABCI shell.
    let mut memory: Vec<Chain> = (0..3).map(|_| Chain::new()).collect();
    let dir = tempfile::tempdir().unwrap();
    let app = shell(dir.path());
    let mut roots = vec![memory[0].state.app_hash()];
    let (mut applied, mut refused) = (0, 0);
    for (i, txs) in blocks.iter().enumerate() {
        let height = i as u64 + 1;
        let outs: Vec<_> = memory.iter_mut().map(|c| c.block(txs.clone())).collect();
        let on_sled = shell_block(&app, height, txs);
        for o in &outs {
            assert_eq!(o.app_hash, on_sled, "height {height}: validators disagree");
        }
        applied += outs[0].txs.iter().filter(|t| t.code == 0).count();
        refused += outs[0].txs.iter().filter(|t| t.code != 0).count();
        roots.push(on_sled);
    }
    assert!(applied > 300 && refused > 50, "a mix of applied ({applied}) and refused ({refused}) directives");

    // Replay from height 0 on a wiped store: the same root at every height.
    let replay_dir = tempfile::tempdir().unwrap();
    let replay = shell(replay_dir.path());
    for (i, txs) in blocks.iter().enumerate() {
        assert_eq!(shell_block(&replay, i as u64 + 1, txs), roots[i + 1], "replay differs at height {}", i + 1);
    }

    // Every key of the final state proves against the last root; a sample at earlier heights
    // proves against theirs (values are kept per version).
    let last = blocks.len() as u64;
    let kv = memory[0].kv.kv.clone();
    let mut proved = 0;
    for (key, value) in kv.iter().filter(|(k, _)| k.as_slice() != keys::META_LAST) {
        let r = store_query(&app, key, last);
        assert_eq!(r.code, 0, "{}", r.log);
        assert_eq!(r.height, last as i64);
        assert_eq!(&r.value.to_vec(), value);
        let proof = proof_bytes(&r);
        commitment::verify(&roots[last as usize], key, Some(value), &proof).unwrap_or_else(|e| {
            panic!(
                "key {:?}: {e}; memory proof: {:?}",
                String::from_utf8_lossy(key),
                memory[0].kv.prove(key, last).map(|(v, p)| (
                    v.is_some(),
                    commitment::verify(&roots[last as usize], key, Some(value), &commitment::encode_proof(&p))
                ))
            )
        });
        let mut forged = value.clone();
        forged.push(0);
        assert!(commitment::verify(&roots[last as usize], key, Some(&forged), &proof).is_err());
        assert!(commitment::verify(&roots[last as usize], key, None, &proof).is_err());
        proved += 1;
    }
    assert!(proved > 400, "{proved} keys proved");
    for height in [1u64, last / 3, last / 2] {
        for key in kv.keys().filter(|k| k.starts_with(keys::ASSIGNMENT) || k.starts_with(keys::ENDPOINT)) {
            let r = store_query(&app, key, height);
            let value = (r.code == 0).then(|| r.value.to_vec());
            commitment::verify(&roots[height as usize], key, value.as_deref(), &proof_bytes(&r))
                .unwrap_or_else(|e| panic!("height {height}: {e}"));
        }
    }
    // Absence: a key nobody wrote answers NOT_FOUND with a proof of absence.
    let r = store_query(&app, &keys::assignment(&"pool-z/g-9".parse().unwrap()), last);
    assert_eq!(r.code, code::NOT_FOUND);
    let proof = proof_bytes(&r);
    commitment::verify(&roots[last as usize], &keys::assignment(&"pool-z/g-9".parse().unwrap()), None, &proof).unwrap();
    // Refusals: a height not committed, an empty key, a list query with prove.
    assert_eq!(store_query(&app, b"g:", last + 1).code, code::BAD_REQUEST);
    assert_eq!(store_query(&app, b"", last).code, code::BAD_REQUEST);
    let r = app.query(RequestQuery { path: "/assignments".into(), prove: true, ..Default::default() });
    assert_eq!(r.code, code::BAD_REQUEST, "{}", r.log);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Any change to a proof's bytes makes it prove nothing: it no longer decodes, or it does
    /// not lead to the root (flipping bits can never make it prove another answer).
    #[test]
    fn a_tampered_proof_proves_nothing(flip in any::<prop::sample::Index>(), bit in 0u8..8, absent in any::<bool>()) {
        let mut chain = Chain::new();
        chain.block(vec![chain_tx()]);
        let root = chain.state.app_hash();
        let key = if absent { b"g:pool-z/none".to_vec() } else { keys::assignment(&"pool-a/g-1".parse().unwrap()) };
        let (value, proof) = chain.kv.prove(&key, 1).unwrap();
        prop_assert_eq!(value.is_none(), absent);
        let mut bytes = commitment::encode_proof(&proof);
        commitment::verify(&root, &key, value.as_deref(), &bytes).unwrap();
        let i = flip.index(bytes.len());
        bytes[i] ^= 1 << bit;
        // Never another answer: not a different value, not the opposite of present/absent.
        prop_assert!(commitment::verify(&root, &key, Some(b"another value"), &bytes).is_err());
        if value.is_some() {
            prop_assert!(commitment::verify(&root, &key, None, &bytes).is_err());
        }
        // The true answer still verifies only if the flip hit a field the check does not use
        // (a non-existence proof repeats the key for information): its hashing path is intact.
        match commitment::verify(&root, &key, value.as_deref(), &bytes) {
            Err(ProofError::Malformed(_) | ProofError::Mismatch(_)) => {}
            Ok(()) => {
                let strip = |b: &[u8]| {
                    let mut p: ics23::CommitmentProof = prost013::Message::decode(b).unwrap();
                    if let Some(ics23::commitment_proof::Proof::Nonexist(n)) = p.proof.as_mut() {
                        n.key.clear();
                    }
                    p
                };
                prop_assert_eq!(strip(&bytes), strip(&commitment::encode_proof(&proof)), "byte {} bit {} changed the path and still proves", i, bit);
            }
        }
    }
}

fn chain_tx() -> Vec<u8> {
    sign_with('a', 1, CHAIN, route("pool-a/g-1", &[("pool-a/ep-1", 6_000), ("pool-a/ep-2", 4_000)]))
}
