//! One miner's session in the proxy, driven line by line: the normal flow with a real share
//! (the genesis block), and every bad input of the data-plane issue — each answered with the
//! right code (or the connection closed), nothing invalid forwarded.

use hashmesh_stratum::message::{code, Id, Notify, ServerMessage};
use hashmesh_stratum::miner::{MinerConfig, MinerEvent, MinerSession, SUBSCRIBES_PER_CONNECTION_MAX};
use serde_json::Value;

const GENESIS_COINBASE: &str = "01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff4d04ffff001d0104455468652054696d65732030332f4a616e2f32303039204368616e63656c6c6f72206f6e206272696e6b206f66207365636f6e64206261696c6f757420666f722062616e6b73ffffffff0100f2052a01000000434104678afdb0fe5548271967f1a67130b7105cd6a828e03909a67962e0ea1f61deb649f6bc3f4cef38c4f35504e51ec112de5c384df7ba0b8d578a4c702b6bf11d5fac00000000";
const NONCE: &str = "7c2bac1d"; // 2083236893
const NTIME: &str = "495fab29"; // 1231006505

/// The genesis block as a job, and a session whose extranonce1 is the 4 coinbase bytes after
/// the cut; the miner's extranonce2 is the next 4 (hex).
fn session() -> (MinerSession, String) {
    let cb = hex::decode(GENESIS_COINBASE).unwrap();
    let job = Notify {
        job_id: "1a".into(),
        prevhash: [0; 32],
        coinb1: cb[..50].to_vec(),
        coinb2: cb[58..].to_vec(),
        merkle_branch: Vec::new(),
        version: 1,
        nbits: 0x1d00_ffff,
        ntime: 1_231_006_505,
        clean_jobs: true,
    };
    let cfg = MinerConfig { extranonce1: cb[50..54].to_vec(), extranonce2_size: 4, pool_version_mask: 0x1fff_e000 };
    let mut s = MinerSession::new(cfg, 1.0);
    s.handle_job(job);
    (s, hex::encode(&cb[54..58]))
}

fn lines(s: &mut MinerSession) -> Vec<Value> {
    std::iter::from_fn(|| s.poll_transmit()).map(|l| serde_json::from_str(&l).unwrap()).collect()
}

fn events(s: &mut MinerSession) -> Vec<MinerEvent> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

fn error_code(v: &Value) -> Option<i64> {
    v["error"][0].as_i64()
}

/// Answer every authorize the session asks about.
fn authorize_all(s: &mut MinerSession) {
    for e in events(s) {
        if let MinerEvent::Authorize { id, worker } = e {
            s.accept_authorize(id, worker);
        }
    }
}

fn subscribed(s: &mut MinerSession) {
    s.handle_line(r#"{"id":1,"method":"mining.subscribe","params":["cgminer/4.10.0"]}"#);
    s.handle_line(r#"{"id":2,"method":"mining.authorize","params":["pool-a/g-1.rig1","x"]}"#);
    authorize_all(s);
    lines(s);
    events(s);
}

fn submit(s: &mut MinerSession, id: u64, job: &str, en2: &str, nonce: &str) {
    s.handle_line(&format!(
        r#"{{"id":{id},"method":"mining.submit","params":["pool-a/g-1.rig1","{job}","{en2}","{NTIME}","{nonce}"]}}"#
    ));
}

#[test]
fn subscribe_authorize_and_a_real_share_is_forwarded_once() {
    let (mut s, en2) = session();
    s.handle_line(
        r#"{"method":"mining.configure","id":0,"params":[["version-rolling"],{"version-rolling.mask":"ffffffff"}]}"#,
    );
    s.handle_line(r#"{"id":1,"method":"mining.subscribe","params":["cgminer/4.10.0"]}"#);
    s.handle_line(r#"{"id":2,"method":"mining.authorize","params":["pool-a/g-1.rig1","x"]}"#);
    assert_eq!(
        events(&mut s),
        vec![MinerEvent::Authorize { id: Id::Num(2), worker: "pool-a/g-1.rig1".into() }],
        "the proxy decides the group"
    );
    s.accept_authorize(Id::Num(2), "pool-a/g-1.rig1".into());
    let out = lines(&mut s);
    assert_eq!(out[0]["result"]["version-rolling.mask"], "1fffe000", "pool mask ∧ miner mask");
    assert_eq!(out[1]["result"][2], 4, "extranonce2 size");
    assert_eq!(out[2]["method"], "mining.set_difficulty");
    assert_eq!(out[3]["method"], "mining.notify", "the current job right after subscribing");
    assert_eq!(out[4]["result"], true);

    submit(&mut s, 3, "1a", &en2, NONCE);
    assert!(lines(&mut s).is_empty(), "the verdict comes from upstream");
    let ev = events(&mut s);
    let [MinerEvent::Share { id, checked, .. }] = ev.as_slice() else { panic!("{ev:?}") };
    assert_eq!(*id, Id::Num(3));
    assert!(checked.difficulty > 2500.0);
    s.answer_share(Id::Num(3), None);
    assert_eq!(lines(&mut s)[0]["result"], true);

    // The same share again: a duplicate, answered here.
    submit(&mut s, 4, "1a", &en2, NONCE);
    assert_eq!(error_code(&lines(&mut s)[0]), Some(code::DUPLICATE));
    assert!(matches!(events(&mut s).as_slice(), [MinerEvent::Refused { code: 22, .. }]));
}

#[test]
fn every_bad_submit_gets_the_right_code_and_is_not_forwarded() {
    let (mut s, en2) = session();
    // Before subscribing and authorizing.
    submit(&mut s, 1, "1a", &en2, NONCE);
    assert_eq!(error_code(&lines(&mut s)[0]), Some(code::NOT_SUBSCRIBED));
    s.handle_line(r#"{"id":2,"method":"mining.subscribe","params":[]}"#);
    lines(&mut s);
    submit(&mut s, 3, "1a", &en2, NONCE);
    assert_eq!(error_code(&lines(&mut s)[0]), Some(code::UNAUTHORIZED));
    s.handle_line(r#"{"id":4,"method":"mining.authorize","params":["w","x"]}"#);
    authorize_all(&mut s);
    lines(&mut s);
    events(&mut s);
    // Unknown job, share above target, wrong extranonce2 size, version bits outside the mask.
    submit(&mut s, 5, "ff", &en2, NONCE);
    assert_eq!(error_code(&lines(&mut s)[0]), Some(code::JOB_NOT_FOUND));
    submit(&mut s, 6, "1a", &en2, "00000001");
    assert_eq!(error_code(&lines(&mut s)[0]), Some(code::LOW_DIFFICULTY));
    submit(&mut s, 7, "1a", "0000", NONCE);
    assert_eq!(error_code(&lines(&mut s)[0]), Some(code::OTHER));
    s.handle_line(&format!(
        r#"{{"id":8,"method":"mining.submit","params":["w","1a","{en2}","{NTIME}","{NONCE}","80000000"]}}"#
    ));
    assert_eq!(error_code(&lines(&mut s)[0]), Some(code::OTHER), "no mask was negotiated");
    // An unknown method is answered; the connection lives on.
    s.handle_line(r#"{"id":9,"method":"mining.fly","params":[]}"#);
    assert_eq!(error_code(&lines(&mut s)[0]), Some(code::OTHER));
    assert!(events(&mut s).iter().all(|e| !matches!(e, MinerEvent::Share { .. })), "nothing forwarded");
}

#[test]
fn unreadable_lines_and_subscribe_floods_close_the_connection() {
    let (mut s, _) = session();
    s.handle_line("this is not json");
    assert!(matches!(events(&mut s).as_slice(), [MinerEvent::Close { .. }]));

    let (mut s, _) = session();
    for i in 0..=SUBSCRIBES_PER_CONNECTION_MAX {
        s.handle_line(&format!(r#"{{"id":{i},"method":"mining.subscribe","params":[]}}"#));
    }
    assert!(matches!(events(&mut s).as_slice(), [MinerEvent::Close { .. }]));
}

#[test]
fn a_clean_job_makes_earlier_ones_stale_and_difficulty_changes_are_sent() {
    let (mut s, en2) = session();
    subscribed(&mut s);
    let mut next = Notify {
        job_id: "2b".into(),
        prevhash: [1; 32],
        coinb1: vec![1],
        coinb2: vec![2],
        merkle_branch: Vec::new(),
        version: 1,
        nbits: 0x1d00_ffff,
        ntime: 1,
        clean_jobs: true,
    };
    s.handle_job(next.clone());
    s.handle_difficulty(8.0);
    let out = lines(&mut s);
    assert_eq!(out[0]["method"], "mining.notify");
    assert_eq!(ServerMessage::parse(&out[1].to_string()).unwrap(), ServerMessage::SetDifficulty(8.0));
    submit(&mut s, 10, "1a", &en2, NONCE);
    assert_eq!(error_code(&lines(&mut s)[0]), Some(code::JOB_NOT_FOUND), "stale after a clean job");
    next.clean_jobs = false;
    s.handle_difficulty(f64::NAN);
    assert!(lines(&mut s).is_empty(), "an impossible difficulty is ignored");
}
