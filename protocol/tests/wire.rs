//! Protocol tests: round trips, arbitrary bytes, golden signing vectors and tampering.

use hashmesh_protocol::plane::{Instruction, PlaneMsg, WorkerCredential};
use hashmesh_protocol::signing::{self, PoolKey, DOMAIN_TAG};
use hashmesh_protocol::{
    AgentId, Body, DecodeError, DirectiveId, LoanWork, Receipt, RouteTarget, SignedTx, SigningKey, UnsignedTx,
};
use proptest::prelude::*;

fn key(n: u8) -> SigningKey {
    SigningKey::from_seed(&[n; 32])
}

fn route_tx(k: &SigningKey, nonce: u64) -> UnsignedTx {
    UnsignedTx {
        chain_id: "hashmesh-test".into(),
        signer: k.pool_id(),
        nonce,
        body: Body::Route {
            group: "pool-a/g-1".parse().unwrap(),
            targets: vec![
                RouteTarget { endpoint: "pool-a/ep-1".parse().unwrap(), weight_bp: 6000 },
                RouteTarget { endpoint: "pool-b/ep-1".parse().unwrap(), weight_bp: 4000 },
            ],
        },
    }
}

/// Pins the bytes that get signed. If this test fails, the wire format changed: that breaks
/// every signature in existence and needs a new `DOMAIN_TAG` version, not a new vector.
#[test]
fn golden_signing_vector() {
    let k = key(7);
    let (_, bytes) = k.sign(route_tx(&k, 42));
    assert_eq!(k.pool_id().to_hex(), "ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c");
    assert_eq!(hex::encode(&bytes), GOLDEN_TX_HEX);
    assert_eq!(DirectiveId::of_tx_bytes(&bytes).to_hex(), GOLDEN_ID_HEX);
    let payload = signing::signed_payload(&bytes).unwrap();
    assert!(payload.starts_with(DOMAIN_TAG));
    assert_eq!(payload.len(), DOMAIN_TAG.len() + bytes.len() - 64);
    let pk = PoolKey::from_pool_id(&k.pool_id()).unwrap();
    assert_eq!(signing::verify(&pk, &bytes), Ok(()));
}

const GOLDEN_TX_HEX: &str = "0d00000000000000686173686d6573682d74657374ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c2a00000000000000000000000a00000000000000706f6f6c2d612f672d3102000000000000000b00000000000000706f6f6c2d612f65702d3170170b00000000000000706f6f6c2d622f65702d31a00f4b2712c6f9de16d814f653fb2388dbcdc9f11bb755f0f1299cb2eded64b00d9d79891128c1be180f615dac1bdc837578e583dd923e87887bc941c53dd8dfd204";
const GOLDEN_ID_HEX: &str = "f81476edf31b8e61eb358971037354598dcdb60cea4aab2cacfda8a6c4174a9f";

#[test]
fn every_single_byte_flip_is_refused() {
    let k = key(1);
    let pk = PoolKey::from_pool_id(&k.pool_id()).unwrap();
    let (_, bytes) = k.sign(route_tx(&k, 1));
    for i in 0..bytes.len() {
        for bit in [0x01u8, 0x80] {
            let mut t = bytes.clone();
            t[i] ^= bit;
            // Either it no longer decodes, or the signature (or signer) no longer matches.
            if let Ok(tx) = SignedTx::decode(&t) {
                let verdict = PoolKey::from_pool_id(&tx.signer)
                    .map_err(|_| ())
                    .and_then(|pk2| signing::verify(&pk2, &t).map_err(|_| ()));
                assert!(verdict.is_err(), "flip of byte {i} bit {bit:#x} still verifies");
            }
        }
    }
    assert_eq!(signing::verify(&pk, &bytes), Ok(()));
}

#[test]
fn wrong_key_and_truncation_are_refused() {
    let (a, b) = (key(1), key(2));
    let (_, bytes) = a.sign(route_tx(&a, 1));
    let pkb = PoolKey::from_pool_id(&b.pool_id()).unwrap();
    assert_eq!(signing::verify(&pkb, &bytes), Err(signing::VerifyError::BadSignature));
    assert!(SignedTx::decode(&bytes[..bytes.len() - 1]).is_err());
    let mut longer = bytes.clone();
    longer.push(0);
    assert_eq!(SignedTx::decode(&longer), Err(DecodeError::TrailingBytes(1)));
}

#[test]
fn weak_keys_are_refused() {
    // The identity point encodes as 1 followed by zeros: small order.
    let mut id = [0u8; 32];
    id[0] = 1;
    let weak = hashmesh_protocol::PoolId(id);
    assert_eq!(PoolKey::from_pool_id(&weak), Err(signing::VerifyError::WeakKey));
}

#[test]
fn oversized_and_structural_limits() {
    let k = key(3);
    let mut tx = route_tx(&k, 1);
    if let Body::Route { targets, .. } = &mut tx.body {
        let t = targets[0].clone();
        targets.clear();
        for _ in 0..=hashmesh_protocol::limits::ROUTES_PER_GROUP_MAX {
            targets.push(t.clone());
        }
    }
    let (_, bytes) = k.sign(tx);
    assert!(matches!(SignedTx::decode(&bytes), Err(DecodeError::Structure(_))));
    let huge = vec![0u8; hashmesh_protocol::limits::TX_BYTES_MAX + 1];
    assert!(matches!(SignedTx::decode(&huge), Err(DecodeError::TooLarge { .. })));
}

#[test]
fn batch_verification_matches_single_verification() {
    let keys: Vec<_> = (1..=4).map(key).collect();
    let mut txs = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        for n in 0..8u64 {
            let (_, mut bytes) = k.sign(route_tx(k, n));
            if i == 2 && n == 5 {
                let last = bytes.len() - 1;
                bytes[last] ^= 1;
            }
            txs.push((PoolKey::from_pool_id(&k.pool_id()).unwrap(), bytes));
        }
    }
    let items: Vec<_> = txs.iter().map(|(k, b)| (*k, b.as_slice())).collect();
    let batch = signing::verify_batch(&items);
    let single: Vec<_> = items.iter().map(|(k, b)| signing::verify(k, b)).collect();
    assert_eq!(batch, single);
    assert_eq!(batch.iter().filter(|r| r.is_err()).count(), 1);
    assert!(signing::verify_batch(&items[..8]).iter().all(Result::is_ok));
}

fn arb_id() -> impl Strategy<Value = String> {
    "[a-z0-9][a-z0-9./_-]{0,40}"
}

fn arb_measurement() -> impl Strategy<Value = hashmesh_protocol::Measurement> {
    (any::<[u64; 4]>(), any::<Option<(u32, u32)>>(), any::<[Option<u16>; 3]>(), any::<(u32, u32)>()).prop_map(
        |(n, lat, bp, (queue_len, miners))| hashmesh_protocol::Measurement {
            hashrate_hs: n[0],
            shares_accepted: n[1],
            shares_rejected: n[2],
            shares_stale: n[3],
            latency_ms: lat.map(|(a, b)| hashmesh_protocol::LatencyPercentiles { p50: a.min(b), p99: a.max(b) }),
            error_bp: bp[0],
            cpu_bp: bp[1],
            memory_bp: bp[2],
            queue_len,
            miners,
        },
    )
}

fn arb_body() -> impl Strategy<Value = Body> {
    prop_oneof![
        (any::<u64>(), proptest::collection::btree_map(arb_id(), arb_measurement(), 1..8)).prop_map(|(epoch, m)| {
            Body::ReportTelemetryBatch {
                epoch,
                entries: m
                    .into_iter()
                    .map(|(e, measurement)| hashmesh_protocol::TelemetryEntry {
                        endpoint: e.parse().unwrap(),
                        measurement,
                    })
                    .collect(),
            }
        }),
        (arb_id(), proptest::collection::vec((arb_id(), any::<u16>()), 1..16)).prop_map(|(g, t)| Body::Route {
            group: g.parse().unwrap(),
            targets: t.into_iter().map(|(e, w)| RouteTarget { endpoint: e.parse().unwrap(), weight_bp: w }).collect(),
        }),
        arb_id().prop_map(|e| Body::Drain { endpoint: e.parse().unwrap() }),
        (arb_id(), any::<(u64, u16, u64)>()).prop_map(|(e, (max_hs, fee_bp, expires_height))| Body::Offer {
            endpoint: e.parse().unwrap(),
            max_hs,
            fee_bp,
            expires_height
        }),
        arb_id().prop_map(|e| Body::Withdraw { endpoint: e.parse().unwrap() }),
        proptest::collection::vec((arb_id(), arb_id(), any::<(u64, u64, u128)>()), 1..8).prop_map(|w| {
            Body::ReportLoanWork {
                entries: w
                    .into_iter()
                    .map(|(g, e, (opened_height, at_ms, accepted_hashes))| LoanWork {
                        group: g.parse().unwrap(),
                        endpoint: e.parse().unwrap(),
                        opened_height,
                        at_ms,
                        accepted_hashes,
                    })
                    .collect(),
            }
        }),
        arb_id().prop_map(|e| Body::Restore { endpoint: e.parse().unwrap() }),
        (any::<[u8; 32]>(), any::<bool>()).prop_map(|(d, approve)| Body::Vote { directive: DirectiveId(d), approve }),
        proptest::collection::vec((any::<[u8; 32]>(), any::<[u8; 32]>(), any::<u64>()), 1..8).prop_map(|r| {
            Body::Receipt {
                receipts: r
                    .into_iter()
                    .map(|(d, a, t)| Receipt { directive: DirectiveId(d), agent: AgentId(a), applied_at_ms: t })
                    .collect(),
            }
        }),
    ]
}

fn arb_plane() -> impl Strategy<Value = PlaneMsg> {
    prop_oneof![
        (any::<[u8; 32]>(), any::<u64>()).prop_map(|(a, s)| PlaneMsg::Hello { agent: AgentId(a), applied_seq: s }),
        (
            any::<u64>(),
            any::<[u8; 32]>(),
            any::<u64>(),
            arb_id(),
            proptest::collection::vec((arb_id(), any::<u16>()), 0..16)
        )
            .prop_map(|(seq, d, height, g, t)| PlaneMsg::Instruction(Instruction {
                seq,
                directive: DirectiveId(d),
                height,
                group: g.parse().unwrap(),
                targets: t.iter().map(|(e, w)| RouteTarget { endpoint: e.parse().unwrap(), weight_bp: *w }).collect(),
                credentials: t
                    .iter()
                    .take(2)
                    .map(|(e, w)| WorkerCredential {
                        endpoint: e.parse().unwrap(),
                        user: e.clone(),
                        password: w.to_string()
                    })
                    .collect(),
                drained: t.iter().skip(2).take(1).map(|(e, _)| e.parse().unwrap()).collect(),
            })),
        (any::<u64>(), any::<[u8; 32]>(), any::<u64>()).prop_map(|(seq, d, t)| PlaneMsg::Ack {
            seq,
            directive: DirectiveId(d),
            applied_at_ms: t
        }),
        any::<u64>().prop_map(|at_ms| PlaneMsg::Heartbeat { at_ms, reports: Vec::new() }),
        (any::<u64>(), proptest::collection::vec((arb_id(), any::<(u64, u64, u64, u64)>(), any::<bool>()), 0..4))
            .prop_map(|(at_ms, w)| PlaneMsg::Measurements {
                at_ms,
                windows: w
                    .into_iter()
                    .map(|(e, (start, accepted, sum_us, v), down)| hashmesh_protocol::EndpointWindow {
                        endpoint: e.parse().unwrap(),
                        start_ms: start,
                        end_ms: start.saturating_add(2000),
                        accepted,
                        rejected: 0,
                        stale: accepted / 3,
                        accepted_hashes: u128::from(accepted) << 20,
                        latency: hashmesh_protocol::LatencyBuckets { sum_us, buckets: vec![(v % 1_000_000 + 1, 3)] },
                        down,
                        miners: 2,
                        in_flight: 1,
                        standby_hashes: u128::from(accepted / 2) << 20,
                    })
                    .collect(),
            }),
        (arb_id(), "[a-z0-9.]{1,20}").prop_map(|(e, w)| PlaneMsg::Standby {
            credential: WorkerCredential { endpoint: e.parse().unwrap(), user: format!("{w}.standby"), password: w }
        }),
        arb_id().prop_map(|e| PlaneMsg::StandbyAck { endpoint: e.parse().unwrap() }),
        proptest::collection::vec((arb_id(), "[a-z0-9]{1,8}"), 0..4).prop_map(|v| PlaneMsg::Fallback {
            credentials: v
                .into_iter()
                .map(|(e, w)| WorkerCredential { endpoint: e.parse().unwrap(), user: w.clone(), password: w })
                .collect()
        }),
    ]
}

proptest! {
    #[test]
    fn plane_messages_round_trip_and_garbage_never_panics(msg in arb_plane(),
                                                          bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        prop_assert_eq!(PlaneMsg::decode(&msg.encode()).unwrap(), msg);
        if let Ok(m) = PlaneMsg::decode(&bytes) {
            prop_assert_eq!(m.encode(), bytes);
        }
    }

    #[test]
    fn decode_of_encode_is_identity(seed in any::<[u8; 32]>(), nonce in any::<u64>(), body in arb_body(),
                                    chain in "[a-z0-9-]{1,50}") {
        let k = SigningKey::from_seed(&seed);
        let (tx, bytes) = k.sign(UnsignedTx { chain_id: chain, signer: k.pool_id(), nonce, body });
        prop_assert_eq!(SignedTx::decode(&bytes).unwrap(), tx);
        let pk = PoolKey::from_pool_id(&k.pool_id()).unwrap();
        prop_assert_eq!(signing::verify(&pk, &bytes), Ok(()));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        if let Ok(tx) = SignedTx::decode(&bytes) {
            // Anything that decodes is canonical.
            prop_assert_eq!(tx.encode(), bytes);
        }
    }

    #[test]
    fn mutated_valid_txs_never_panic(seed in any::<[u8; 32]>(), idx in any::<usize>(), val in any::<u8>()) {
        let k = SigningKey::from_seed(&seed);
        let (_, mut bytes) = k.sign(route_tx_for(&k));
        let i = idx % bytes.len();
        bytes[i] = val;
        let _ = SignedTx::decode(&bytes);
    }
}

fn route_tx_for(k: &SigningKey) -> UnsignedTx {
    route_tx(k, 9)
}
