//! Stratum messages: lines as real miners and pools send them (BIP310's example, slush's
//! protocol documentation, cgminer's subscribe), round trips, refusals, and arbitrary input
//! that never panics.

use hashmesh_stratum::codec::LineCodec;
use hashmesh_stratum::message::{code, ClientMessage, Id, Notify, ParseError, ServerMessage, Submit};
use proptest::prelude::*;
use serde_json::json;

#[test]
fn bip310_configure_as_the_bip_writes_it() {
    let line = r#"{"method": "mining.configure","id": 1,"params": [["minimum-difficulty", "version-rolling"],{"minimum-difficulty.value": 2048,"version-rolling.mask": "00fff000", "version-rolling.min-bit-count": 2}]}"#;
    let ClientMessage::Configure {
        id,
        extensions,
        version_rolling_mask,
        version_rolling_min_bit_count,
        minimum_difficulty,
    } = ClientMessage::parse(line).unwrap()
    else {
        panic!("not a configure")
    };
    assert_eq!(id, Id::Num(1));
    assert_eq!(extensions, vec!["minimum-difficulty", "version-rolling"]);
    assert_eq!(version_rolling_mask, Some(0x00ff_f000));
    assert_eq!(version_rolling_min_bit_count, Some(2));
    assert_eq!(minimum_difficulty, Some(2048.0));
}

#[test]
fn a_cgminer_session_subscribes_authorizes_and_submits() {
    let sub = ClientMessage::parse(r#"{"id": 1, "method": "mining.subscribe", "params": ["cgminer/4.10.0"]}"#).unwrap();
    assert_eq!(sub, ClientMessage::Subscribe { id: Id::Num(1), user_agent: Some("cgminer/4.10.0".into()) });
    let auth =
        ClientMessage::parse(r#"{"params": ["slush.miner1", "password"], "id": 2, "method": "mining.authorize"}"#)
            .unwrap();
    assert_eq!(
        auth,
        ClientMessage::Authorize { id: Id::Num(2), user: "slush.miner1".into(), password: "password".into() }
    );
    let submit = ClientMessage::parse(
        r#"{"params": ["slush.miner1", "bf", "00000001", "504e86ed", "b2957c02"], "id": 4, "method": "mining.submit"}"#,
    )
    .unwrap();
    let want = Submit {
        worker: "slush.miner1".into(),
        job_id: "bf".into(),
        extranonce2: vec![0, 0, 0, 1],
        ntime: 0x504e_86ed,
        nonce: 0xb295_7c02,
        version_bits: None,
    };
    assert_eq!(submit, ClientMessage::Submit { id: Id::Num(4), submit: want });
    // With BIP310 version bits.
    let rolled = ClientMessage::parse(
        r#"{"params":["w","1a","0000000000000001","504e86ed","b2957c02","1fffe000"],"id":5,"method":"mining.submit"}"#,
    )
    .unwrap();
    assert!(matches!(rolled, ClientMessage::Submit { submit: Submit { version_bits: Some(0x1fff_e000), .. }, .. }));
}

#[test]
fn slushs_notify_example_parses_and_round_trips() {
    let line = r#"{"params": ["bf", "4d16b6f85af6e2198f44ae2a6de67f78487ae5611b77c6c0440b921e00000000", "01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff20020862062f503253482f04b8864e5008", "072f736c7573682f000000000100f2052a010000001976a914d23fcdf86f7e756a64a7a9688ef9903327048ed988ac00000000", [], "00000002", "1c2ac4af", "504e86b9", false], "id": null, "method": "mining.notify"}"#;
    let ServerMessage::Notify(n) = ServerMessage::parse(line).unwrap() else { panic!("not a notify") };
    assert_eq!(
        (n.job_id.as_str(), n.version, n.nbits, n.ntime, n.clean_jobs),
        ("bf", 2, 0x1c2a_c4af, 0x504e_86b9, false)
    );
    assert_eq!(n.prevhash[0], 0x4d);
    assert!(n.merkle_branch.is_empty());
    assert_eq!(ServerMessage::parse(&ServerMessage::Notify(n.clone()).to_line()).unwrap(), ServerMessage::Notify(n));
}

#[test]
fn pool_answers_and_controls() {
    let sub = ServerMessage::parse(
        r#"{"id": 1, "result": [ [ ["mining.set_difficulty", "b4b6693b72a50c7116db18d6497cac52"], ["mining.notify", "ae6812eb4cd7735a302a8a9dd95cf71f"]], "08000002", 4], "error": null}"#,
    )
    .unwrap();
    let ServerMessage::Response { id, result, error } = sub else { panic!() };
    assert_eq!((id, error), (Id::Num(1), None));
    assert_eq!(result[1], "08000002");
    let refused =
        ServerMessage::parse(r#"{"id": 4, "result": null, "error": [23, "Low difficulty share", null]}"#).unwrap();
    assert_eq!(refused, ServerMessage::error(Id::Num(4), code::LOW_DIFFICULTY, "Low difficulty share"));
    assert_eq!(
        ServerMessage::parse(r#"{"id":null,"method":"mining.set_difficulty","params":[1024]}"#).unwrap(),
        ServerMessage::SetDifficulty(1024.0)
    );
    assert_eq!(
        ServerMessage::parse(r#"{"id":null,"method":"mining.set_extranonce","params":["af4c0000",4]}"#).unwrap(),
        ServerMessage::SetExtranonce { extranonce1: vec![0xaf, 0x4c, 0, 0], extranonce2_size: 4 }
    );
    assert_eq!(
        ServerMessage::parse(r#"{"id":null,"method":"client.reconnect","params":["pool.example",3333,5]}"#).unwrap(),
        ServerMessage::Reconnect { host: Some("pool.example".into()), port: Some(3333), wait_secs: Some(5) }
    );
    for m in [
        ServerMessage::SetVersionMask(0x1fff_e000),
        ServerMessage::Ping { id: Id::Str("p1".into()) },
        ServerMessage::ok(Id::Num(9), json!(true)),
        ServerMessage::error(Id::Num(9), code::JOB_NOT_FOUND, "Job not found"),
    ] {
        assert_eq!(ServerMessage::parse(&m.to_line()).unwrap(), m);
    }
    let answer = ServerMessage::error(Id::Num(7), code::DUPLICATE, "Duplicate share").to_line();
    assert_eq!(answer, "{\"error\":[22,\"Duplicate share\",null],\"id\":7,\"result\":null}\n");
}

#[test]
fn bad_input_is_refused_with_a_reason() {
    let refuse = |line: &str| ClientMessage::parse(line).unwrap_err();
    assert!(matches!(refuse("not json"), ParseError::NotJson(_)));
    assert!(matches!(refuse("[1,2]"), ParseError::NotJson(_)));
    assert!(matches!(refuse(r#"{"id":1,"method":"mining.fly","params":[]}"#), ParseError::UnknownMethod(_)));
    assert!(matches!(refuse(r#"{"method":"mining.subscribe","params":[]}"#), ParseError::BadId));
    // Wrong sizes and shapes in a submit.
    for p in [
        r#"["w","zz","00","504e86ed","b2957c02"]"#,         // job id not hex
        r#"["w","bf","0g","504e86ed","b2957c02"]"#,         // extranonce2 not hex
        r#"["w","bf","00","504e86","b2957c02"]"#,           // short ntime
        r#"["w","bf","00","504e86ed","b2957c0200"]"#,       // long nonce
        r#"["w","bf","00","504e86ed"]"#,                    // too few
        r#"["w","bf","00","504e86ed","b2957c02","1","2"]"#, // too many
    ] {
        let line = format!(r#"{{"id":3,"method":"mining.submit","params":{p}}}"#);
        assert!(matches!(refuse(&line), ParseError::BadParams { .. }), "{p}");
    }
    let long = "x".repeat(300);
    assert!(matches!(
        refuse(&format!(r#"{{"id":2,"method":"mining.authorize","params":["{long}","p"]}}"#)),
        ParseError::BadParams { .. }
    ));
    // A pool's impossible difficulty or short prevhash.
    for line in [
        r#"{"id":null,"method":"mining.set_difficulty","params":[-1]}"#,
        r#"{"id":null,"method":"mining.set_difficulty","params":[0]}"#,
        r#"{"id":null,"method":"mining.set_difficulty","params":["lots"]}"#,
        r#"{"id":null,"method":"mining.notify","params":["bf","4d16","","",[],"00000002","1c2ac4af","504e86b9",false]}"#,
        r#"{"id":null,"method":"mining.set_extranonce","params":["af4c0000",0]}"#,
    ] {
        assert!(ServerMessage::parse(line).is_err(), "{line}");
    }
}

fn hash() -> impl Strategy<Value = [u8; 32]> {
    any::<[u8; 32]>()
}

proptest! {
    #[test]
    fn submits_and_notifies_round_trip(
        worker in "[a-z0-9._]{1,40}", job in "[0-9a-f]{1,16}", en2 in proptest::collection::vec(any::<u8>(), 0..16),
        ntime in any::<u32>(), nonce in any::<u32>(), vb in proptest::option::of(any::<u32>()),
        prev in hash(), branch in proptest::collection::vec(hash(), 0..16), clean in any::<bool>(),
        coinb1 in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        let submit = ClientMessage::Submit {
            id: Id::Num(7),
            submit: Submit { worker, job_id: job.clone(), extranonce2: en2, ntime, nonce, version_bits: vb },
        };
        prop_assert_eq!(ClientMessage::parse(&submit.to_line()).unwrap(), submit);
        let n = Notify {
            job_id: job, prevhash: prev, coinb1, coinb2: vec![1, 2, 3], merkle_branch: branch,
            version: nonce, nbits: ntime, ntime, clean_jobs: clean,
        };
        let m = ServerMessage::Notify(n);
        prop_assert_eq!(ServerMessage::parse(&m.to_line()).unwrap(), m);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let mut c = LineCodec::new();
        let _ = c.push(&bytes);
        let _ = c.push(b"\n");
        while let Some(line) = c.next_line() {
            if let Ok(line) = line {
                let _ = ClientMessage::parse(&line);
                let _ = ServerMessage::parse(&line);
            }
        }
    }

    #[test]
    fn arbitrary_json_shapes_never_panic(method in prop::sample::select(vec![
        "mining.configure", "mining.subscribe", "mining.authorize", "mining.extranonce.subscribe", "mining.submit",
        "mining.suggest_difficulty", "mining.notify", "mining.set_difficulty", "mining.set_extranonce",
        "mining.set_version_mask", "client.reconnect", "client.get_version", "mining.ping",
    ]), params in proptest::collection::vec(prop_oneof![
        Just(json!(null)), any::<i64>().prop_map(|n| json!(n)), "[0-9a-fz]{0,70}".prop_map(|s| json!(s)),
        Just(json!([])), Just(json!({})), any::<bool>().prop_map(|b| json!(b)), any::<f64>().prop_map(|f| json!(f)),
    ], 0..10)) {
        let line = json!({"id": 1, "method": method, "params": params}).to_string();
        let _ = ClientMessage::parse(&line);
        let _ = ServerMessage::parse(&line);
    }
}
