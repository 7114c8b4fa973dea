//! Proofs of state answers (ADR 0014): the size of a proof and the time to check one, for a
//! present key and an absent one, in a state of 10 000 directives; beside the baseline of
//! verifying one transaction's ed25519 signature (what an auditor already spends per directive).
//! The proof sizes are printed before the timings.
//!
//! Run: `cargo bench -p hashmesh-abci --bench proofs`
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, Criterion};
use hashmesh_abci::core::commitment::{self, Memory};
use hashmesh_abci::core::genesis::{GenesisEndpoint, GenesisGroup, GenesisPool};
use hashmesh_abci::core::{keys, BlockInput, GenesisAppState, Params, State};
use hashmesh_protocol::signing::{self, PoolKey};
use hashmesh_protocol::{Body, RouteTarget, SigningKey, UnsignedTx};

const CHAIN: &str = "bench";

fn bench(c: &mut Criterion) {
    let key = SigningKey::from_seed(&[1; 32]);
    let pool = GenesisPool {
        id: key.pool_id(),
        name: "pool-0".into(),
        validator_address: String::new(),
        endpoints: (0..2)
            .map(|e| GenesisEndpoint {
                id: format!("pool-0/ep-{e}").parse().unwrap(),
                stratum_url: "stratum+tcp://127.0.0.1:3333".into(),
                capacity_hs: 1 << 50,
                region: String::new(),
            })
            .collect(),
        groups: vec![GenesisGroup { id: "pool-0/g-0".parse().unwrap(), hashrate_hs: 1 << 40 }],
    };
    let (mut state, writes, tree) =
        State::genesis(CHAIN, &GenesisAppState { params: Params::default(), pools: vec![pool] });
    let mut memory = Memory::default();
    memory.apply(&writes, &tree);
    let mut last_tx = Vec::new();
    for b in 0..10u64 {
        let txs: Vec<Vec<u8>> = (0..1000u64)
            .map(|n| {
                let w = 1 + (n % 9_000) as u16;
                let body = Body::Route {
                    group: "pool-0/g-0".parse().unwrap(),
                    targets: vec![
                        RouteTarget { endpoint: "pool-0/ep-0".parse().unwrap(), weight_bp: w },
                        RouteTarget { endpoint: "pool-0/ep-1".parse().unwrap(), weight_bp: 10_000 - w },
                    ],
                };
                key.sign(UnsignedTx { chain_id: CHAIN.into(), signer: key.pool_id(), nonce: b * 1000 + n + 1, body }).1
            })
            .collect();
        let h = state.height() + 1;
        let out = state.apply_block(
            &BlockInput { height: h, time_ms: h * 1000, proposer: vec![0; 20], txs: &txs, preverified: &[] },
            &memory,
        );
        assert!(out.txs.iter().all(|t| t.code == 0));
        memory.apply(&out.writes, &out.tree);
        last_tx = txs[999].clone();
    }
    let root = state.app_hash();
    let version = state.height();
    let present = keys::directive(&hashmesh_protocol::SignedTx::id_of(&last_tx));
    let absent = keys::directive(&hashmesh_protocol::DirectiveId::of_tx_bytes(b"never committed"));
    let (value, p) = memory.prove(&present, version).unwrap();
    let value = value.expect("present");
    let present_proof = commitment::encode_proof(&p);
    let (none, p) = memory.prove(&absent, version).unwrap();
    assert!(none.is_none());
    let absent_proof = commitment::encode_proof(&p);
    eprintln!(
        "proofs in a state of {} keys: present {} bytes (value {} bytes), absent {} bytes",
        memory.kv.len(),
        present_proof.len(),
        value.len(),
        absent_proof.len()
    );
    let pk = PoolKey::from_pool_id(&key.pool_id()).unwrap();
    let mut g = c.benchmark_group("proofs");
    g.bench_function("verify_present_answer", |b| {
        b.iter(|| commitment::verify(&root, &present, Some(&value), &present_proof).unwrap());
    });
    g.bench_function("verify_absent_answer", |b| {
        b.iter(|| commitment::verify(&root, &absent, None, &absent_proof).unwrap());
    });
    g.bench_function("baseline_verify_one_signature", |b| b.iter(|| signing::verify(&pk, &last_tx).unwrap()));
    g.bench_function("prove_present_answer", |b| b.iter(|| memory.prove(&present, version).unwrap()));
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
