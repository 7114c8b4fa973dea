//! The simulator: deterministic, conserving, and faithful to the incidents it is given.

use hashmesh_scheduler::sim::engine::run;
use hashmesh_scheduler::sim::model::{fleet, group_weights, Incident, RunSpec, Workload};
use hashmesh_scheduler::sim::strategy::{Strategy, NAMES};
use hashmesh_scheduler::sim::{run_scenario, Options, SCENARIOS};

fn small(seed: u64) -> Options {
    Options { seed, endpoints: Some(6), miners: Some(800), duration_ms: Some(30_000) }
}

fn files(name: &str, o: &Options) -> Vec<String> {
    let r = run_scenario(name, o, &mut |_| {}).expect("scenario runs");
    r.tables.iter().map(|t| t.to_csv()).chain(r.charts.iter().map(|c| c.to_svg())).collect()
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    for name in ["mixed", "failover"] {
        let a = files(name, &small(7));
        assert_eq!(a, files(name, &small(7)), "{name}: same seed must give identical CSV and SVG");
        assert_ne!(a, files(name, &small(8)), "{name}: another seed must change the workload");
    }
    let hb = Options { seed: 3, endpoints: Some(5), miners: None, duration_ms: Some(3_600_000) };
    assert_eq!(files("heartbeat", &hb), files("heartbeat", &hb));
}

#[test]
fn every_scenario_runs_and_reports_every_strategy() {
    for (name, _) in SCENARIOS {
        let o = match name {
            "heartbeat" => Options { seed: 1, endpoints: Some(4), miners: None, duration_ms: Some(3_600_000) },
            "polling" => Options { seed: 1, endpoints: None, miners: Some(20), duration_ms: Some(3_600_000) },
            _ => small(1),
        };
        let r = run_scenario(name, &o, &mut |_| {}).expect("scenario runs");
        assert_eq!(r.scenario, name);
        assert!(!r.tables.is_empty() && !r.charts.is_empty(), "{name}: tables and charts");
        for t in &r.tables {
            assert!(t.rows.iter().all(|row| row.len() == t.columns.len()), "{name}: ragged table");
        }
        if !matches!(name, "heartbeat" | "polling") {
            let first: Vec<&str> = r.tables[0].rows.iter().map(|row| row[0].as_str()).collect();
            for s in NAMES {
                assert!(first.contains(&s), "{name}: no row for {s}");
            }
        }
    }
}

#[test]
fn bad_options_are_refused_with_the_reason() {
    let err = run_scenario("nope", &Options::default(), &mut |_| {}).unwrap_err();
    assert!(err.contains("rr-load") && err.contains("mixed"), "{err}");
    let err = run_scenario("mixed", &Options { endpoints: Some(1), ..Options::default() }, &mut |_| {}).unwrap_err();
    assert!(err.contains("--endpoints"), "{err}");
    let err = run_scenario("mixed", &Options { miners: Some(0), ..Options::default() }, &mut |_| {}).unwrap_err();
    assert!(err.contains("--miners"), "{err}");
}

fn spec(incidents: Vec<Incident>) -> RunSpec {
    RunSpec {
        endpoints: fleet(5, 5, 6000.0),
        incidents,
        workload: Workload {
            qps: 3000.0,
            spikes: Vec::new(),
            job_interval_ms: 10_000.0,
            group_weights: group_weights(5, 8),
        },
        duration_ms: 60_000,
        warmup_ms: 5000,
        poll_ms: 10_000,
        windows: vec![(0, 60_000)],
        timeline_step_ms: 5000,
        max_queue_ms: 1000.0,
        timeout_ms: 1000.0,
        seed: 5,
    }
}

#[test]
fn every_share_is_accepted_or_failed_and_dead_endpoints_are_found() {
    let dead_from = 20_300;
    let s = spec(vec![Incident::Fail { endpoint: 1, from_ms: dead_from, to_ms: 60_000 }]);
    for name in NAMES {
        let r = run(&s, Strategy::named(name).expect("known"), &mut |_| {});
        assert_eq!(r.shares, r.latency.count() + r.errors(), "{name}: shares must be conserved");
        assert!(r.simulated > r.shares, "{name}: warm-up shares are simulated but not measured");
        assert_eq!(r.detections_ms.len(), 1, "{name}: the failure must be noticed once");
        let bound = if matches!(name, "p2c_peak_ewma" | "hashmesh_planner") { 2_000.0 } else { 10_000.0 };
        assert!(r.detections_ms[0] <= bound, "{name}: noticed after {} ms", r.detections_ms[0]);
    }
}

#[test]
fn an_endpoint_down_from_the_start_gets_nothing() {
    let s = spec(vec![Incident::Fail { endpoint: 2, from_ms: 0, to_ms: 60_000 }]);
    for name in NAMES {
        let r = run(&s, Strategy::named(name).expect("known"), &mut |_| {});
        assert_eq!(r.failures[0], 0, "{name} sent shares to a known-dead endpoint");
        assert_eq!(r.served[2][0], 0, "{name}");
    }
}
