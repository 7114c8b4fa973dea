//! Simulator throughput: simulated share submissions per second of run time, per strategy, on
//! the `rr-load` fleet at 10k QPS. The cheapest strategy (round robin) is the engine's floor;
//! the target is ≥ 1 M shares/s for every strategy.
//!
//! `cargo bench -p hashmesh-scheduler --bench sim`

#![allow(missing_docs)] // criterion_group! generates an undocumented function

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use hashmesh_scheduler::sim::engine::run;
use hashmesh_scheduler::sim::model::{fleet, group_weights, RunSpec, Workload};
use hashmesh_scheduler::sim::strategy::Strategy;

fn spec() -> RunSpec {
    RunSpec {
        endpoints: fleet(1, 8, 14_500.0),
        incidents: Vec::new(),
        workload: Workload {
            qps: 10_000.0,
            spikes: Vec::new(),
            job_interval_ms: 10_000.0,
            group_weights: group_weights(1, 16),
        },
        duration_ms: 20_000,
        warmup_ms: 0,
        poll_ms: 10_000,
        windows: vec![(0, 20_000)],
        timeline_step_ms: 5000,
        max_queue_ms: 1000.0,
        timeout_ms: 1000.0,
        seed: 1,
    }
}

fn bench(c: &mut Criterion) {
    let spec = spec();
    let shares = run(&spec, Strategy::named("round_robin").expect("known"), &mut |_| {}).simulated;
    let mut g = c.benchmark_group("sim_shares");
    g.throughput(Throughput::Elements(shares));
    g.sample_size(10);
    for name in ["round_robin", "p2c_peak_ewma", "article_dynamic_weights", "hashmesh_planner"] {
        g.bench_function(name, |b| {
            b.iter_batched(
                || Strategy::named(name).expect("known"),
                |s| run(&spec, s, &mut |_| {}).simulated,
                BatchSize::SmallInput,
            );
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
