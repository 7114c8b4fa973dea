//! On-chain telemetry and the routing rules it drives: owner-only reports with increasing
//! epochs and bounded values, integer health, the health floor, staleness, and capacity.

mod common;

use common::*;
use hashmesh_abci::core::GenesisAppState;
use hashmesh_protocol::{Body, DirectiveId, RejectCode, TelemetryReport};

fn report(epoch: u64, cpu_bp: u16, latency_ms_p50: u32) -> TelemetryReport {
    TelemetryReport {
        epoch,
        hashrate_hs: 90_000_000_000,
        shares_accepted: 1000,
        shares_rejected: 3,
        shares_stale: 2,
        latency_ms_p50,
        latency_ms_p99: latency_ms_p50 * 2,
        cpu_bp,
        memory_bp: 2000,
        error_bp: 10,
        queue_len: 4,
        miners: 120,
    }
}

fn tele(endpoint: &str, r: TelemetryReport) -> Body {
    Body::ReportTelemetry { endpoint: endpoint.parse().unwrap(), report: r }
}

fn code(chain: &mut Chain, who: char, body: Body) -> u32 {
    let tx = chain.sign(who, body);
    chain.block(vec![tx]).txs[0].code
}

#[test]
fn reports_are_owner_only_increasing_and_bounded_and_not_directives() {
    let mut chain = Chain::new();
    let tx = chain.sign('a', tele("pool-a/ep-1", report(1, 3000, 40)));
    let out = chain.block(vec![tx]);
    assert_eq!(out.txs[0].code, 0, "{}", out.txs[0].log);
    let ev = &out.txs[0].events[0];
    assert_eq!(ev.kind, "telemetry");
    // 0.3·0.7 + 0.3·0.8 + 0.2·(1 − 40/200) + 0.2·(1 − 0.001) = 0.80980 → 8098 bp
    assert_eq!(ev.attr("health_bp"), Some("8098"));
    assert_eq!(chain.state.counts().directives, 0, "telemetry is not a directive");
    assert_eq!(chain.state.fresh_health_bp(&"pool-a/ep-1".parse().unwrap()), Some(8098));

    assert_eq!(code(&mut chain, 'b', tele("pool-a/ep-1", report(2, 0, 1))), RejectCode::EndpointNotOwned.code());
    assert_eq!(
        code(&mut chain, 'a', tele("pool-a/ep-1", report(1, 0, 1))),
        RejectCode::TelemetryEpochNotIncreasing.code()
    );
    assert_eq!(code(&mut chain, 'a', tele("pool-a/ep-9", report(2, 0, 1))), RejectCode::UnknownEndpoint.code());
    let mut bad = report(2, 10_001, 1);
    assert_eq!(code(&mut chain, 'a', tele("pool-a/ep-1", bad)), RejectCode::TelemetryOutOfRange.code());
    bad = report(2, 0, 10);
    bad.latency_ms_p99 = 5;
    assert_eq!(code(&mut chain, 'a', tele("pool-a/ep-1", bad)), RejectCode::TelemetryOutOfRange.code());
    assert_eq!(code(&mut chain, 'a', tele("pool-a/ep-1", report(2, 0, 1))), 0);
}

#[test]
fn routes_avoid_unhealthy_endpoints_until_their_telemetry_goes_stale() {
    let mut chain = Chain::new();
    let mut sick = report(1, 10_000, 200);
    sick.memory_bp = 10_000;
    sick.error_bp = 10_000;
    sick.latency_ms_p99 = 400;
    assert_eq!(code(&mut chain, 'a', tele("pool-a/ep-2", sick)), 0);
    assert_eq!(chain.state.fresh_health_bp(&"pool-a/ep-2".parse().unwrap()), Some(0));
    let onto_sick = route("pool-a/g-1", &[("pool-a/ep-2", 10_000)]);
    assert_eq!(code(&mut chain, 'a', onto_sick.clone()), RejectCode::HealthBelowFloor.code());
    // Healthy again: allowed.
    assert_eq!(code(&mut chain, 'a', tele("pool-a/ep-2", report(2, 1000, 20))), 0);
    assert_eq!(code(&mut chain, 'a', onto_sick.clone()), 0);
    // Sick again, then silent for longer than telemetry_stale_blocks: unknown, so allowed.
    sick.epoch = 3;
    assert_eq!(code(&mut chain, 'a', tele("pool-a/ep-2", sick)), 0);
    assert_eq!(
        code(&mut chain, 'a', route("pool-a/g-2", &[("pool-a/ep-2", 10_000)])),
        RejectCode::HealthBelowFloor.code()
    );
    let stale = chain.state.params().telemetry_stale_blocks;
    for _ in 0..=stale {
        chain.block(vec![]);
    }
    assert_eq!(chain.state.fresh_health_bp(&"pool-a/ep-2".parse().unwrap()), None);
    assert_eq!(code(&mut chain, 'a', route("pool-a/g-2", &[("pool-a/ep-2", 10_000)])), 0);
}

#[test]
fn routes_may_not_load_an_endpoint_past_capacity_times_max_utilisation() {
    let mut g: GenesisAppState = genesis();
    // pool-a/ep-1: 150 GH/s, max utilisation 90 % → 135 GH/s; groups are 100 GH/s each.
    g.pools[0].endpoints[0].capacity_hs = 150_000_000_000;
    let mut chain = Chain::with_genesis(&g);
    assert_eq!(code(&mut chain, 'a', route("pool-a/g-1", &[("pool-a/ep-1", 10_000)])), 0);
    let full = route("pool-a/g-2", &[("pool-a/ep-1", 10_000)]);
    assert_eq!(code(&mut chain, 'a', full), RejectCode::CapacityExceeded.code());
    // Moving g-1 onto the same endpoint again counts its own share once.
    assert_eq!(code(&mut chain, 'a', route("pool-a/g-1", &[("pool-a/ep-1", 10_000)])), 0);
    // 30 % of g-2 fits (100 + 30 ≤ 135).
    assert_eq!(code(&mut chain, 'a', route("pool-a/g-2", &[("pool-a/ep-1", 3000), ("pool-a/ep-2", 7000)])), 0);
    // Moving g-1 away frees room for all of g-2.
    assert_eq!(code(&mut chain, 'a', route("pool-a/g-1", &[("pool-a/ep-2", 10_000)])), 0);
    assert_eq!(code(&mut chain, 'a', route("pool-a/g-2", &[("pool-a/ep-1", 10_000)])), 0);
}

#[test]
fn a_pending_route_is_rejected_if_its_target_turns_unhealthy_before_approval() {
    let mut chain = Chain::new();
    let tx = chain.sign('a', route("pool-a/g-1", &[("pool-b/ep-1", 10_000)]));
    let id = DirectiveId::of_tx_bytes(&tx);
    assert_eq!(chain.block(vec![tx]).txs[0].events[0].attr("status"), Some("pending"));
    let mut sick = report(1, 10_000, 200);
    sick.memory_bp = 10_000;
    sick.latency_ms_p99 = 400;
    let t = chain.sign('b', tele("pool-b/ep-1", sick));
    let v = chain.sign('b', Body::Vote { directive: id, approve: true });
    let out = chain.block(vec![t, v]);
    assert_eq!(out.txs[1].code, 0);
    assert_eq!(out.txs[1].events[2].attr("status"), Some("rejected"));
    assert_eq!(chain.state.assignments().count(), 0);
}
