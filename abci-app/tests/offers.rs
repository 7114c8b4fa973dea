//! Offers: only the owner offers, within bounds; other pools' routes inside the open offers'
//! remaining capacity are active in the block that commits them; outside (over capacity,
//! expired, withdrawn) the vote path stays; health and capacity rules still apply.

mod common;

use common::*;
use hashmesh_protocol::{Body, EndpointId, RejectCode};

fn offer(ep: &str, max_hs: u64, fee_bp: u16, expires_height: u64) -> Body {
    Body::Offer { endpoint: ep.parse().unwrap(), max_hs, fee_bp, expires_height }
}

fn withdraw(ep: &str) -> Body {
    Body::Withdraw { endpoint: ep.parse().unwrap() }
}

fn run(chain: &mut Chain, who: char, body: Body) -> (u32, String, Option<String>) {
    let tx = chain.sign(who, body);
    let out = chain.block(vec![tx]);
    let t = &out.txs[0];
    (t.code, t.log.clone(), t.events.first().and_then(|e| e.attr("status")).map(str::to_owned))
}

const GH: u64 = 1_000_000_000;

#[test]
fn only_the_owner_offers_and_every_field_is_bounded() {
    let mut chain = Chain::new();
    let h = chain.state.height();
    let code = |chain: &mut Chain, who, body| run(chain, who, body).0;
    assert_eq!(
        code(&mut chain, 'a', offer("pool-b/ep-1", 150 * GH, 100, h + 100)),
        RejectCode::EndpointNotOwned.code()
    );
    assert_eq!(code(&mut chain, 'b', offer("pool-b/ep-9", 150 * GH, 100, h + 100)), RejectCode::UnknownEndpoint.code());
    assert_eq!(code(&mut chain, 'b', offer("pool-b/ep-1", 0, 100, h + 100)), RejectCode::OfferInvalid.code());
    assert_eq!(code(&mut chain, 'b', offer("pool-b/ep-1", GH, 10_001, h + 100)), RejectCode::OfferInvalid.code());
    let h = chain.state.height();
    assert_eq!(
        code(&mut chain, 'b', offer("pool-b/ep-1", GH, 100, h)),
        RejectCode::OfferInvalid.code(),
        "already expired"
    );
    let h = chain.state.height();
    assert_eq!(code(&mut chain, 'b', offer("pool-b/ep-1", GH, 100, h + 2_000_000)), RejectCode::OfferInvalid.code());
    assert_eq!(code(&mut chain, 'b', withdraw("pool-b/ep-1")), RejectCode::NoOffer.code());
    let h = chain.state.height();
    let (c, log, status) = run(&mut chain, 'b', offer("pool-b/ep-1", 150 * GH, 100, h + 100));
    assert_eq!((c, status.as_deref()), (0, Some("applied")), "{log}");
    assert!(log.contains("up to 150000000000 H/s at 100 bp"), "{log}");
    assert_eq!(chain.state.offers().count(), 1);
    assert_eq!(code(&mut chain, 'a', withdraw("pool-b/ep-1")), RejectCode::EndpointNotOwned.code());
}

#[test]
fn routes_inside_an_offer_are_active_at_once_and_outside_it_wait_for_votes() {
    let mut chain = Chain::new();
    let h = chain.state.height();
    // pool-b lends up to 150 GH/s on its ep-1; pool-a's groups are 100 GH/s each.
    assert_eq!(run(&mut chain, 'b', offer("pool-b/ep-1", 150 * GH, 100, h + 50)).0, 0);
    let lender: EndpointId = "pool-b/ep-1".parse().unwrap();
    let status = |chain: &mut Chain, who, body| run(chain, who, body).2;

    // 100 GH/s inside 150: active in the block that commits it, no vote.
    assert_eq!(status(&mut chain, 'a', route("pool-a/g-1", &[("pool-b/ep-1", 10_000)])).as_deref(), Some("active"));
    assert_eq!(chain.state.lent_hs(&lender, None), u128::from(100 * GH));
    // Another 100 GH/s would make 200 > 150: the vote path.
    assert_eq!(status(&mut chain, 'a', route("pool-a/g-2", &[("pool-b/ep-1", 10_000)])).as_deref(), Some("pending"));
    // 50 GH/s fits exactly (100 + 50 = 150).
    assert_eq!(
        status(&mut chain, 'a', route("pool-a/g-2", &[("pool-b/ep-1", 5000), ("pool-a/ep-1", 5000)])).as_deref(),
        Some("active")
    );
    // Re-routing g-1 counts its own current share once (150 − 100 + 100).
    assert_eq!(status(&mut chain, 'a', route("pool-a/g-1", &[("pool-b/ep-1", 10_000)])).as_deref(), Some("active"));
    // Another pool's endpoint without an offer still needs its vote.
    assert_eq!(status(&mut chain, 'c', route("pool-c/g-1", &[("pool-a/ep-1", 10_000)])).as_deref(), Some("pending"));

    // Withdrawn: new routes wait for votes; routes in place stay.
    assert_eq!(run(&mut chain, 'b', withdraw("pool-b/ep-1")).0, 0);
    assert_eq!(
        status(&mut chain, 'c', route("pool-c/g-2", &[("pool-b/ep-1", 1000), ("pool-c/ep-1", 9000)])).as_deref(),
        Some("pending")
    );
    assert_eq!(chain.state.lent_hs(&lender, None), u128::from(150 * GH), "the loans stay");
    assert_eq!(run(&mut chain, 'b', withdraw("pool-b/ep-1")).0, RejectCode::NoOffer.code());
}

#[test]
fn an_expired_offer_lends_nothing_and_the_floor_still_applies() {
    let mut chain = Chain::new();
    let h = chain.state.height();
    assert_eq!(run(&mut chain, 'b', offer("pool-b/ep-1", 500 * GH, 0, h + 2)).0, 0);
    assert_eq!(run(&mut chain, 'a', route("pool-a/g-1", &[("pool-b/ep-1", 10_000)])).2.as_deref(), Some("active"));
    chain.block(vec![]);
    // Past its expiry: the vote path again; withdrawing it is refused.
    assert_eq!(run(&mut chain, 'a', route("pool-a/g-2", &[("pool-b/ep-1", 10_000)])).2.as_deref(), Some("pending"));
    assert_eq!(run(&mut chain, 'b', withdraw("pool-b/ep-1")).0, RejectCode::NoOffer.code());

    // An offered endpoint below the health floor is refused like any other.
    let h = chain.state.height();
    assert_eq!(run(&mut chain, 'b', offer("pool-b/ep-2", 500 * GH, 0, h + 100)).0, 0);
    let dead = hashmesh_protocol::Measurement {
        hashrate_hs: 0,
        shares_accepted: 0,
        shares_rejected: 0,
        shares_stale: 0,
        latency_ms: None,
        error_bp: Some(10_000),
        cpu_bp: None,
        memory_bp: None,
        queue_len: 0,
        miners: 0,
    };
    let report = Body::ReportTelemetryBatch {
        epoch: 1,
        entries: vec![hashmesh_protocol::TelemetryEntry {
            endpoint: "pool-b/ep-2".parse().unwrap(),
            measurement: dead,
        }],
    };
    assert_eq!(run(&mut chain, 'b', report).0, 0);
    assert_eq!(
        run(&mut chain, 'a', route("pool-a/g-2", &[("pool-b/ep-2", 10_000)])).0,
        RejectCode::HealthBelowFloor.code()
    );
}
