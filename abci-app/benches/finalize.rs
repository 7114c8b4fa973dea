//! `FinalizeBlock` throughput on one core: a block of signed route directives applied by the
//! pure core (decode, batch signature verification, rules, writes, app hash), beside the
//! baseline of verifying the same signatures one at a time with `verify_strict`. A third row
//! shows the block when every signature was already verified by this node's `CheckTx` (the
//! verified-signature memo hits), which is the common case on a live validator.
//!
//! Run: `cargo bench -p hashmesh-abci --bench finalize`
#![allow(missing_docs)]

use std::collections::BTreeMap;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use hashmesh_abci::core::genesis::{GenesisEndpoint, GenesisGroup, GenesisPool};
use hashmesh_abci::core::{BlockInput, GenesisAppState, Params, State};
use hashmesh_protocol::signing::{self, PoolKey};
use hashmesh_protocol::{Body, RouteTarget, SigningKey, UnsignedTx};

const CHAIN: &str = "bench";

fn setup(block_txs: usize) -> (State, Vec<Vec<u8>>, Vec<PoolKey>) {
    let keys: Vec<SigningKey> = (1..=4u8).map(|i| SigningKey::from_seed(&[i; 32])).collect();
    let pools = keys
        .iter()
        .enumerate()
        .map(|(i, k)| GenesisPool {
            id: k.pool_id(),
            name: format!("pool-{i}"),
            validator_address: String::new(),
            endpoints: (0..2)
                .map(|e| GenesisEndpoint {
                    id: format!("pool-{i}/ep-{e}").parse().unwrap(),
                    stratum_url: "stratum+tcp://127.0.0.1:3333".into(),
                    capacity_hs: 1 << 50,
                    region: String::new(),
                })
                .collect(),
            groups: (0..2)
                .map(|g| GenesisGroup { id: format!("pool-{i}/g-{g}").parse().unwrap(), hashrate_hs: 1 << 40 })
                .collect(),
        })
        .collect();
    let (state, _) = State::genesis(CHAIN, &GenesisAppState { params: Params::default(), pools });
    let txs = (0..block_txs)
        .map(|n| {
            let p = n % 4;
            let k = &keys[p];
            let body = Body::Route {
                group: format!("pool-{p}/g-{}", n % 2).parse().unwrap(),
                targets: vec![
                    RouteTarget {
                        endpoint: format!("pool-{p}/ep-0").parse().unwrap(),
                        weight_bp: 5000 + (n % 100) as u16,
                    },
                    RouteTarget {
                        endpoint: format!("pool-{p}/ep-1").parse().unwrap(),
                        weight_bp: 5000 - (n % 100) as u16,
                    },
                ],
            };
            k.sign(UnsignedTx { chain_id: CHAIN.into(), signer: k.pool_id(), nonce: n as u64 + 1, body }).1
        })
        .collect();
    let pks = keys.iter().map(|k| PoolKey::from_pool_id(&k.pool_id()).unwrap()).collect();
    (state, txs, pks)
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("finalize_block");
    for block_txs in [250usize, 1000] {
        let (state, txs, pks) = setup(block_txs);
        let committed: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        g.throughput(Throughput::Elements(block_txs as u64));
        g.bench_with_input(BenchmarkId::new("hashmesh_apply_block", block_txs), &txs, |b, txs| {
            b.iter_batched(
                || state.clone(),
                |mut s| {
                    let out = s.apply_block(
                        &BlockInput { height: 1, time_ms: 0, proposer: vec![0; 20], txs, preverified: &[] },
                        &committed,
                    );
                    assert!(out.txs.iter().all(|t| t.code == 0));
                    out
                },
                BatchSize::LargeInput,
            );
        });
        let all_verified = vec![true; block_txs];
        g.bench_with_input(BenchmarkId::new("hashmesh_apply_block_memo_hits", block_txs), &txs, |b, txs| {
            b.iter_batched(
                || state.clone(),
                |mut s| {
                    let input =
                        BlockInput { height: 1, time_ms: 0, proposer: vec![0; 20], txs, preverified: &all_verified };
                    let out = s.apply_block(&input, &committed);
                    assert!(out.txs.iter().all(|t| t.code == 0));
                    out
                },
                BatchSize::LargeInput,
            );
        });
        g.bench_with_input(BenchmarkId::new("baseline_verify_strict_each", block_txs), &txs, |b, txs| {
            b.iter(|| {
                for (i, t) in txs.iter().enumerate() {
                    assert!(signing::verify(&pks[i % 4], t).is_ok());
                }
            });
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(8));
    targets = bench
}
criterion_main!(benches);
