//! The upstream session: login, jobs and difficulty in, shares out with our ids and verdicts
//! mapped back; a pool that sends garbage or an impossible difficulty is a fault.

use hashmesh_stratum::message::{code, ClientMessage, Submit};
use hashmesh_stratum::pool::{PoolEvent, PoolLogin, PoolSession};

fn login() -> PoolLogin {
    PoolLogin {
        user: "lender.worker".into(),
        password: "secret".into(),
        user_agent: "hashmesh/0.1".into(),
        version_mask: 0x1fff_e000,
    }
}

fn lines(s: &mut PoolSession) -> Vec<ClientMessage> {
    std::iter::from_fn(|| s.poll_transmit()).map(|l| ClientMessage::parse(&l).unwrap()).collect()
}

fn events(s: &mut PoolSession) -> Vec<PoolEvent> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

fn ready() -> PoolSession {
    let mut s = PoolSession::new(login());
    lines(&mut s);
    s.handle_line(r#"{"id":1,"result":{"version-rolling":true,"version-rolling.mask":"1fffe000"},"error":null}"#);
    s.handle_line(r#"{"id":2,"result":[[["mining.notify","ae68"]],"08000002",8],"error":null}"#);
    s.handle_line(r#"{"id":3,"result":true,"error":null}"#);
    s
}

fn share() -> Submit {
    Submit {
        worker: "pool-a/g-1.rig1".into(),
        job_id: "bf".into(),
        extranonce2: vec![0; 6],
        ntime: 1,
        nonce: 2,
        version_bits: None,
    }
}

#[test]
fn logs_in_with_the_given_credentials_and_becomes_ready() {
    let mut s = PoolSession::new(login());
    let hello = lines(&mut s);
    assert!(matches!(&hello[0], ClientMessage::Configure { version_rolling_mask: Some(0x1fff_e000), .. }));
    assert!(matches!(&hello[1], ClientMessage::Subscribe { .. }));
    assert!(
        matches!(&hello[2], ClientMessage::Authorize { user, password, .. } if user == "lender.worker" && password == "secret")
    );
    assert!(!s.ready());
    let mut s = ready();
    assert!(s.ready());
    assert_eq!(
        events(&mut s),
        vec![
            PoolEvent::VersionMask(0x1fff_e000),
            PoolEvent::Ready { extranonce1: vec![8, 0, 0, 2], extranonce2_size: 8 }
        ]
    );
}

#[test]
fn shares_go_out_under_our_ids_and_verdicts_come_back_to_their_tokens() {
    let mut s = ready();
    events(&mut s);
    assert!(s.submit(41, &share()));
    assert!(s.submit(42, &share()));
    let out = lines(&mut s);
    let ClientMessage::Submit { id, submit } = &out[0] else { panic!() };
    assert_eq!(submit.worker, "lender.worker", "upstream sees the session's worker, not the miner's");
    assert_eq!(s.in_flight(), vec![41, 42]);
    let first = serde_json::to_string(&serde_json::json!({"id": match id { hashmesh_stratum::message::Id::Num(n) => *n, _ => 0 }, "result": true, "error": null})).unwrap();
    s.handle_line(&first);
    s.handle_line(r#"{"id":101,"result":null,"error":[23,"Low difficulty share",null]}"#);
    assert_eq!(
        events(&mut s),
        vec![
            PoolEvent::Verdict { token: 41, error: None },
            PoolEvent::Verdict { token: 42, error: Some((code::LOW_DIFFICULTY, "Low difficulty share".into())) },
        ]
    );
    assert!(s.in_flight().is_empty());
}

#[test]
fn jobs_difficulty_pings_and_reconnects() {
    let mut s = ready();
    events(&mut s);
    s.handle_line(r#"{"id":null,"method":"mining.set_difficulty","params":[512]}"#);
    s.handle_line(r#"{"id":7,"method":"mining.ping","params":[]}"#);
    s.handle_line(r#"{"id":null,"method":"client.reconnect","params":["other.pool",3333,0]}"#);
    assert_eq!(
        events(&mut s),
        vec![PoolEvent::Difficulty(512.0), PoolEvent::Reconnect { host: Some("other.pool".into()), port: Some(3333) }]
    );
    assert!(matches!(lines(&mut s).as_slice(), [ClientMessage::Response { .. }]));
}

#[test]
fn garbage_impossible_values_and_refusals_are_faults() {
    for bad in [
        "garbage",
        r#"{"id":null,"method":"mining.set_difficulty","params":[-5]}"#,
        r#"{"id":null,"method":"mining.notify","params":["bf"]}"#,
        r#"{"id":999,"result":true,"error":null}"#,
    ] {
        let mut s = ready();
        events(&mut s);
        s.handle_line(bad);
        assert!(matches!(events(&mut s).as_slice(), [PoolEvent::Fault { .. }]), "{bad}");
        assert!(!s.ready());
        assert!(!s.submit(1, &share()), "a faulted session takes no shares");
    }
    let mut s = PoolSession::new(login());
    s.handle_line(r#"{"id":2,"result":[[],"08000002",8],"error":null}"#);
    s.handle_line(r#"{"id":3,"result":null,"error":[24,"Unauthorized worker",null]}"#);
    assert!(matches!(events(&mut s).as_slice(), [PoolEvent::Fault { .. }]), "wrong credentials");
}
