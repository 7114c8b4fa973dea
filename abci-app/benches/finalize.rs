//! `FinalizeBlock` throughput on one core: a block of signed route directives applied by the
//! pure core (decode, batch signature verification, rules, writes, app hash), beside the
//! baseline of verifying the same signatures one at a time with `verify_strict`. A third row
//! shows the block when every signature was already verified by this node's `CheckTx` (the
//! verified-signature memo hits), which is the common case on a live validator.
//!
//! The `with_settlement` rows add, to the same block, both parties' `ReportLoanWork` for
//! `LOANS` open loans (each loan compared and settled in the block): the settlement's cost per
//! loan is the difference over `LOANS`.
//!
//! The `hash_chain` rows run the same blocks through `execute_block` and then the app hash of
//! ADR 0003 (a SHA-256 chain over the sorted write set) instead of the state tree of ADR 0014:
//! the difference to `hashmesh_apply_block` is what the Merkle state costs. The committed tree
//! holds `PREFILL_BLOCKS` earlier blocks of routes, so the new leaves land in a populated tree.
//!
//! Run: `cargo bench -p hashmesh-abci --bench finalize`
#![allow(missing_docs)]

use sha2::{Digest, Sha256};

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use hashmesh_abci::core::genesis::{GenesisEndpoint, GenesisGroup, GenesisPool};
use hashmesh_abci::core::{BlockInput, GenesisAppState, Memory, Params, State, WriteSet};
use hashmesh_protocol::signing::{self, PoolKey};
use hashmesh_protocol::{Body, RouteTarget, SigningKey, UnsignedTx};

const CHAIN: &str = "bench";
/// Loans settled in the `with_settlement` rows.
const LOANS: usize = 64;
/// Blocks of 1000 routes committed before the measured block.
const PREFILL_BLOCKS: u64 = 10;

/// The app hash of ADR 0003, the baseline: `SHA-256(tag ‖ previous ‖ height ‖ writes)`.
fn hash_chain(previous: &[u8; 32], height: u64, writes: &WriteSet) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"hashmesh/apphash/v1");
    h.update(previous);
    h.update(height.to_be_bytes());
    for (k, v) in writes.iter() {
        h.update((k.len() as u64).to_be_bytes());
        h.update(k);
        match v {
            Some(v) => {
                h.update([1u8]);
                h.update((v.len() as u64).to_be_bytes());
                h.update(v);
            }
            None => h.update([0u8]),
        }
    }
    h.finalize().into()
}

/// `count` signed routes from the 4 pools, nonces from `nonce_base + 1`.
fn routes(keys: &[SigningKey], count: usize, nonce_base: u64) -> Vec<Vec<u8>> {
    (0..count)
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
            k.sign(UnsignedTx { chain_id: CHAIN.into(), signer: k.pool_id(), nonce: nonce_base + n as u64 + 1, body }).1
        })
        .collect()
}

/// Apply `txs` as the next block and commit it into `memory`.
fn commit(s: &mut State, memory: &mut Memory, txs: &[Vec<u8>]) {
    let h = s.height() + 1;
    let out = s.apply_block(
        &BlockInput { height: h, time_ms: h * 1000, proposer: vec![0; 20], txs, preverified: &[] },
        &*memory,
    );
    assert!(out.txs.iter().all(|t| t.code == 0), "{:?}", out.txs.iter().find(|t| t.code != 0));
    memory.apply(&out.writes, &out.tree);
}

fn setup(block_txs: usize) -> (State, Memory, Vec<Vec<u8>>, Vec<PoolKey>) {
    let keys: Vec<SigningKey> = (1..=4u8).map(|i| SigningKey::from_seed(&[i; 32])).collect();
    let pools =
        keys.iter()
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
                    .chain((0..if i == 0 { LOANS } else { 0 }).map(|l| GenesisGroup {
                        id: format!("pool-0/l-{l:03}").parse().unwrap(),
                        hashrate_hs: 1 << 30,
                    }))
                    .collect(),
            })
            .collect();
    let (mut state, writes, tree) = State::genesis(CHAIN, &GenesisAppState { params: Params::default(), pools });
    let mut memory = Memory::default();
    memory.apply(&writes, &tree);
    for b in 0..PREFILL_BLOCKS {
        commit(&mut state, &mut memory, &routes(&keys, 1000, b * 1000));
    }
    let txs = routes(&keys, block_txs, PREFILL_BLOCKS * 1000);
    let pks = keys.iter().map(|k| PoolKey::from_pool_id(&k.pool_id()).unwrap()).collect();
    (state, memory, txs, pks)
}

fn sign(k: &SigningKey, nonce: u64, body: Body) -> Vec<u8> {
    k.sign(UnsignedTx { chain_id: CHAIN.into(), signer: k.pool_id(), nonce, body }).1
}

/// `state` with `LOANS` open loans — pool-0's `l-*` groups on pools 1–3's endpoints, inside
/// their offers — each with one reading from both sides; and the reports of the next block
/// (both sides, every loan).
fn with_loans(state: &State, memory: &Memory) -> (State, Memory, Vec<Vec<u8>>) {
    let keys: Vec<SigningKey> = (1..=4u8).map(|i| SigningKey::from_seed(&[i; 32])).collect();
    let mut s = state.clone();
    let mut m = memory.clone();
    let mut nonce = 1_000_000u64;
    let mut next = |k: &SigningKey, body| {
        nonce += 1;
        sign(k, nonce, body)
    };
    let lender_ep = |l: usize| format!("pool-{}/ep-{}", 1 + l % 3, (l / 3) % 2);
    let mut setup = Vec::new();
    for (p, k) in keys.iter().enumerate().skip(1) {
        for e in 0..2 {
            let endpoint = format!("pool-{p}/ep-{e}").parse().unwrap();
            setup.push(next(k, Body::Offer { endpoint, max_hs: 1 << 50, fee_bp: 100, expires_height: 1000 }));
        }
    }
    for l in 0..LOANS {
        let targets = vec![RouteTarget { endpoint: lender_ep(l).parse().unwrap(), weight_bp: 10_000 }];
        setup.push(next(&keys[0], Body::Route { group: format!("pool-0/l-{l:03}").parse().unwrap(), targets }));
    }
    commit(&mut s, &mut m, &setup);
    let opened_height = s.height();
    let reports = |at_ms: u64, hashes: u128, next: &mut dyn FnMut(&SigningKey, Body) -> Vec<u8>| {
        let work = |l: usize| hashmesh_protocol::LoanWork {
            group: format!("pool-0/l-{l:03}").parse().unwrap(),
            endpoint: lender_ep(l).parse().unwrap(),
            opened_height,
            at_ms,
            accepted_hashes: hashes,
        };
        let mut txs = Vec::new();
        let borrower: Vec<_> = (0..LOANS).map(work).collect();
        for chunk in borrower.chunks(hashmesh_protocol::limits::LOAN_WORK_ENTRIES_MAX) {
            txs.push(next(&keys[0], Body::ReportLoanWork { entries: chunk.to_vec() }));
        }
        for (p, k) in keys.iter().enumerate().skip(1) {
            let mut entries: Vec<_> = (0..LOANS).filter(|l| 1 + l % 3 == p).map(work).collect();
            entries.sort_by(|a, b| (&a.group, &a.endpoint).cmp(&(&b.group, &b.endpoint)));
            txs.push(next(k, Body::ReportLoanWork { entries }));
        }
        txs
    };
    let first = reports(1_000, 1 << 40, &mut next);
    commit(&mut s, &mut m, &first);
    let second = reports(2_000, 2 << 40, &mut next);
    (s, m, second)
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("finalize_block");
    for block_txs in [250usize, 1000] {
        let (state, committed, txs, pks) = setup(block_txs);
        let h = state.height() + 1;
        g.throughput(Throughput::Elements(block_txs as u64));
        g.bench_with_input(BenchmarkId::new("hashmesh_apply_block", block_txs), &txs, |b, txs| {
            b.iter_batched(
                || state.clone(),
                |mut s| {
                    let out = s.apply_block(
                        &BlockInput { height: h, time_ms: h * 1000, proposer: vec![0; 20], txs, preverified: &[] },
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
                    let input = BlockInput {
                        height: h,
                        time_ms: h * 1000,
                        proposer: vec![0; 20],
                        txs,
                        preverified: &all_verified,
                    };
                    let out = s.apply_block(&input, &committed);
                    assert!(out.txs.iter().all(|t| t.code == 0));
                    out
                },
                BatchSize::LargeInput,
            );
        });
        // The same blocks with the app hash of ADR 0003 instead of the state tree.
        for (name, pre) in
            [("hash_chain_apply_block", &[][..]), ("hash_chain_apply_block_memo_hits", &all_verified[..])]
        {
            g.bench_with_input(BenchmarkId::new(name, block_txs), &txs, |b, txs| {
                b.iter_batched(
                    || state.clone(),
                    |mut s| {
                        let input =
                            BlockInput { height: h, time_ms: h * 1000, proposer: vec![0; 20], txs, preverified: pre };
                        let out = s.execute_block(&input, &committed);
                        assert!(out.txs.iter().all(|t| t.code == 0));
                        (hash_chain(&s.app_hash(), h, &out.writes), out)
                    },
                    BatchSize::LargeInput,
                );
            });
        }
        // The same block with both parties' reports for every loan: each loan settles in it.
        let (loaned, loaned_memory, reports) = with_loans(&state, &committed);
        let mut mixed = txs.clone();
        mixed.extend(reports);
        let only: Vec<Vec<u8>> = mixed[txs.len()..].to_vec();
        let h = loaned.height() + 1;
        // Apply `txs` to a clone of the loaned state; `settled` loans must settle.
        let on_loaned = |b: &mut criterion::Bencher<'_>, txs: &Vec<Vec<u8>>, settled: usize| {
            b.iter_batched(
                || loaned.clone(),
                |mut s| {
                    let input =
                        BlockInput { height: h, time_ms: h * 1000, proposer: vec![0; 20], txs, preverified: &[] };
                    let out = s.apply_block(&input, &loaned_memory);
                    assert!(out.txs.iter().all(|t| t.code == 0));
                    let n = out.txs.iter().flat_map(|t| &t.events).filter(|e| e.attr("status") == Some("settled"));
                    assert_eq!(n.count(), settled);
                    out
                },
                BatchSize::LargeInput,
            );
        };
        g.bench_with_input(BenchmarkId::new("hashmesh_apply_block_with_settlement", block_txs), &mixed, |b, t| {
            on_loaned(b, t, LOANS);
        });
        if block_txs == 250 {
            // Only the reports: both parties of every loan, each loan settled (per-loan cost).
            g.throughput(Throughput::Elements(LOANS as u64));
            g.bench_with_input(BenchmarkId::new("settlement_only_loans", LOANS), &only, |b, t| on_loaned(b, t, LOANS));
            g.throughput(Throughput::Elements(block_txs as u64));
        }
        g.bench_with_input(BenchmarkId::new("hashmesh_apply_block_loaned_state", block_txs), &txs, |b, t| {
            on_loaned(b, t, 0);
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
