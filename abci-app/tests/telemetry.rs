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

// ---- one report per pool per epoch; owner and observer views ------------------------------

use hashmesh_protocol::{LatencyPercentiles, Measurement, TelemetryEntry};

/// What an agent measures: no cpu, no memory.
fn measured(p50: u32, error_bp: u16) -> Measurement {
    Measurement {
        hashrate_hs: 1_000_000,
        shares_accepted: 100,
        shares_rejected: 0,
        shares_stale: 0,
        latency_ms: Some(LatencyPercentiles { p50, p99: p50 * 2 }),
        error_bp: Some(error_bp),
        cpu_bp: None,
        memory_bp: None,
        queue_len: 0,
        miners: 10,
    }
}

fn batch(epoch: u64, entries: &[(&str, Measurement)]) -> Body {
    Body::ReportTelemetryBatch {
        epoch,
        entries: entries
            .iter()
            .map(|(e, m)| TelemetryEntry { endpoint: e.parse().unwrap(), measurement: *m })
            .collect(),
    }
}

#[test]
fn a_batch_reports_every_endpoint_in_one_transaction_and_is_refused_whole() {
    let mut chain = Chain::new();
    let tx = chain.sign('a', batch(1, &[("pool-a/ep-1", measured(40, 0)), ("pool-a/ep-2", measured(10, 0))]));
    let out = chain.block(vec![tx]);
    assert_eq!(out.txs[0].code, 0, "{}", out.txs[0].log);
    assert_eq!(out.txs[0].events.len(), 2, "one telemetry event per entry");
    // Agent view: latency and error rate only, 50/50: (2·8000 + 2·10000) / 4.
    assert_eq!(chain.state.fresh_health_bp(&"pool-a/ep-1".parse().unwrap()), Some(9000));

    // One entry out of range: nothing of the batch is recorded.
    let mut bad = measured(10, 0);
    bad.error_bp = Some(10_001);
    let tx = chain.sign('a', batch(2, &[("pool-a/ep-1", measured(150, 0)), ("pool-a/ep-2", bad)]));
    let out = chain.block(vec![tx]);
    assert_eq!(out.txs[0].code, RejectCode::TelemetryOutOfRange.code());
    assert!(out.txs[0].log.contains("entry 1 (pool-a/ep-2)"), "{}", out.txs[0].log);
    assert_eq!(chain.state.fresh_health_bp(&"pool-a/ep-1".parse().unwrap()), Some(9000), "entry 0 not applied");
    // Another pool's endpoint that no route of ours targets: refused whole.
    let tx = chain.sign('a', batch(3, &[("pool-a/ep-1", measured(150, 0)), ("pool-b/ep-1", measured(10, 0))]));
    assert_eq!(chain.block(vec![tx]).txs[0].code, RejectCode::NotObserver.code());
    // Unknown endpoint, repeated epoch: refused.
    assert_eq!(code(&mut chain, 'a', batch(4, &[("pool-a/ep-9", measured(1, 0))])), RejectCode::UnknownEndpoint.code());
    assert_eq!(
        code(&mut chain, 'a', batch(1, &[("pool-a/ep-1", measured(1, 0))])),
        RejectCode::TelemetryEpochNotIncreasing.code()
    );
    // Unsorted or empty entries do not decode.
    let unsorted = chain.sign('a', batch(5, &[("pool-a/ep-2", measured(1, 0)), ("pool-a/ep-1", measured(1, 0))]));
    assert_eq!(chain.block(vec![unsorted]).txs[0].code, RejectCode::Malformed.code());
    assert_eq!(code(&mut chain, 'a', batch(5, &[])), RejectCode::Malformed.code());
    // The old single-endpoint form still decodes and applies.
    assert_eq!(code(&mut chain, 'a', tele("pool-a/ep-1", report(6, 3000, 40))), 0);
    assert_eq!(chain.state.fresh_health_bp(&"pool-a/ep-1".parse().unwrap()), Some(8098));
}

#[test]
fn a_lying_owner_is_flagged_by_its_observers_and_falls_below_the_floor() {
    let mut chain = Chain::new();
    // pool-a routes g-1 to pool-b/ep-1 (pool-b approves).
    let tx = chain.sign('a', route("pool-a/g-1", &[("pool-b/ep-1", 10_000)]));
    let id = DirectiveId::of_tx_bytes(&tx);
    chain.block(vec![tx]);
    assert_eq!(code(&mut chain, 'b', Body::Vote { directive: id, approve: true }), 0);
    assert_eq!(chain.state.assignments().count(), 1);
    let ep: hashmesh_protocol::EndpointId = "pool-b/ep-1".parse().unwrap();

    // The owner claims 10 ms and idle machines; pool-a's agents measure 400 ms there.
    let owner = Measurement { cpu_bp: Some(0), memory_bp: Some(0), ..measured(10, 0) };
    assert_eq!(code(&mut chain, 'b', batch(1, &[("pool-b/ep-1", owner)])), 0);
    assert_eq!(chain.state.fresh_health_bp(&ep), Some(9900), "the owner's word alone");
    let tx = chain.sign('a', batch(1, &[("pool-a/ep-1", measured(20, 0)), ("pool-b/ep-1", measured(400, 0))]));
    let out = chain.block(vec![tx]);
    assert_eq!(out.txs[0].code, 0, "{}", out.txs[0].log);
    assert_eq!(out.txs[0].events[1].attr("view"), Some("observer"));
    assert_eq!(out.txs[0].events[1].attr("flagged"), Some("true"));
    assert!(out.txs[0].log.contains("disagree with observers at pool-b/ep-1"), "{}", out.txs[0].log);
    let judged = chain.state.fresh_health(&ep);
    assert!(judged.flagged);
    assert_eq!(judged.owner_health_bp, Some(9900));
    let floor = chain.state.params().health_floor_bp;
    assert!(judged.health_bp.unwrap() < floor, "{judged:?} vs floor {floor}");
    // So no route may target it now.
    assert_eq!(
        code(&mut chain, 'a', route("pool-a/g-2", &[("pool-b/ep-1", 10_000)])),
        RejectCode::HealthBelowFloor.code()
    );

    // An owner whose claim matches its observers is not flagged.
    let honest = Measurement { cpu_bp: Some(2000), memory_bp: Some(2000), ..measured(380, 0) };
    assert_eq!(code(&mut chain, 'b', batch(2, &[("pool-b/ep-1", honest)])), 0);
    assert!(!chain.state.fresh_health(&ep).flagged);
}
