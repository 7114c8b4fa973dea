//! The commit path through the ABCI shell and sled: reopen, crash before commit, wipe and replay.

mod common;

use common::*;
use hashmesh_abci::{AppHandle, Store};
use tendermint_abci::Application;
use tendermint_proto::v0_38::abci::{RequestFinalizeBlock, RequestInfo, RequestInitChain, RequestQuery};

/// Open the store in `dir`. Reopening in the same process right after dropping it can find
/// sled's file lock still held for a moment by its background flusher thread (a real restart is
/// a new process, whose lock the kernel released): retry for up to 5 s.
fn open(dir: &std::path::Path) -> AppHandle {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match Store::open(dir) {
            Ok(store) => return AppHandle::new(store).unwrap(),
            Err(e) if std::time::Instant::now() < deadline && format!("{e:?}").contains("could not acquire lock") => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => panic!("opening {}: {e:?}", dir.display()),
        }
    }
}

fn init(app: &AppHandle) -> Vec<u8> {
    let resp = app.init_chain(RequestInitChain {
        chain_id: CHAIN.into(),
        app_state_bytes: serde_json::to_vec(&genesis()).unwrap().into(),
        initial_height: 1,
        ..Default::default()
    });
    resp.app_hash.to_vec()
}

fn run_block(app: &AppHandle, height: i64, txs: &[Vec<u8>], commit: bool) -> Vec<u8> {
    let resp = app.finalize_block(RequestFinalizeBlock {
        txs: txs.iter().map(|t| t.clone().into()).collect(),
        height,
        proposer_address: vec![7u8; 20].into(),
        time: Some(tendermint_proto::google::protobuf::Timestamp { seconds: 1_700_000_000 + height, nanos: 0 }),
        ..Default::default()
    });
    assert_eq!(resp.tx_results.len(), txs.len());
    if commit {
        app.commit();
    }
    resp.app_hash.to_vec()
}

/// Finalize and commit every block in order; the app hash after the last.
fn run_all(app: &AppHandle, blocks: &[Vec<Vec<u8>>]) -> Vec<u8> {
    let mut hash = Vec::new();
    for (i, txs) in blocks.iter().enumerate() {
        hash = run_block(app, i as i64 + 1, txs, true);
    }
    hash
}

fn info(app: &AppHandle) -> (i64, Vec<u8>) {
    let r = app.info(RequestInfo::default());
    (r.last_block_height, r.last_block_app_hash.to_vec())
}

#[test]
fn commit_reopen_and_info_agree() {
    let dir = tempfile::tempdir().unwrap();
    let blocks = scripted_blocks();
    let mut hashes = Vec::new();
    {
        let app = open(dir.path());
        assert_eq!(info(&app), (0, Vec::new()));
        hashes.push(init(&app));
        for (i, txs) in blocks.iter().enumerate() {
            hashes.push(run_block(&app, i as i64 + 1, txs, true));
        }
        assert_eq!(info(&app), (blocks.len() as i64, hashes.last().unwrap().clone()));
    }
    let app = open(dir.path());
    assert_eq!(info(&app), (blocks.len() as i64, hashes.last().unwrap().clone()));
    // History survives the restart.
    let r = app.query(RequestQuery { path: "/history".into(), ..Default::default() });
    assert_eq!(r.code, 0, "{}", r.log);
    let page: serde_json::Value = serde_json::from_slice(&r.value).unwrap();
    assert_eq!(page["directives"].as_array().unwrap().len(), 6);

    // Same blocks, same hashes, on a second instance.
    let dir2 = tempfile::tempdir().unwrap();
    let other = open(dir2.path());
    assert_eq!(init(&other), hashes[0]);
    for (i, txs) in blocks.iter().enumerate() {
        assert_eq!(run_block(&other, i as i64 + 1, txs, true), hashes[i + 1]);
    }
}

#[test]
fn a_block_finalized_but_not_committed_is_replayed_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let blocks = scripted_blocks();
    let reference = {
        let d = tempfile::tempdir().unwrap();
        let app = open(d.path());
        init(&app);
        run_all(&app, &blocks)
    };
    {
        let app = open(dir.path());
        init(&app);
        for (i, txs) in blocks.iter().enumerate().take(3) {
            run_block(&app, i as i64 + 1, txs, true);
        }
        // Crash after FinalizeBlock of height 4, before Commit.
        run_block(&app, 4, &blocks[3], false);
        // CometBFT restarting without the app restarting: Info must report height 3...
        assert_eq!(info(&app).0, 3);
        // ...and Info (e.g. an RPC /abci_info) must not disturb the pending block's Commit.
        app.commit();
        assert_eq!(info(&app).0, 4);
        // CometBFT restarts again after finalizing 5 but before committing it, and replays 5.
        run_block(&app, 5, &blocks[4], false);
        assert_eq!(info(&app).0, 4);
        run_block(&app, 5, &blocks[4], true);
        assert_eq!(info(&app).1, reference, "in-process replay of an uncommitted block");
    }
    // The process restarts: same committed state.
    let app = open(dir.path());
    assert_eq!(info(&app), (5, reference));
}

#[test]
fn a_wiped_store_rebuilt_by_replay_reaches_the_same_hash() {
    let blocks = scripted_blocks();
    let dir = tempfile::tempdir().unwrap();
    let first = {
        let app = open(dir.path());
        init(&app);
        run_all(&app, &blocks)
    };
    std::fs::remove_dir_all(dir.path()).unwrap();
    let app = open(dir.path());
    assert_eq!(info(&app), (0, Vec::new()), "wiped store starts from nothing");
    init(&app);
    let replayed = run_all(&app, &blocks);
    assert_eq!(replayed, first);
}

#[test]
fn queries_answer_json_and_refuse_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let app = open(dir.path());
    let q = |path: &str, data: &[u8]| {
        app.query(RequestQuery { path: path.into(), data: data.to_vec().into(), ..Default::default() })
    };
    assert_eq!(q("/status", b"").code, 4, "not initialized yet");
    init(&app);
    for (i, txs) in scripted_blocks().iter().enumerate() {
        run_block(&app, i as i64 + 1, txs, true);
    }
    let status: serde_json::Value = serde_json::from_slice(&q("/status", b"").value).unwrap();
    assert_eq!(status["height"], 5);
    assert_eq!(status["pools"], 3);
    assert_eq!(q("/nope", b"").code, 1);
    assert_eq!(q("/directive", b"zz").code, 2);
    assert_eq!(q("/directive", "00".repeat(32).as_bytes()).code, 3);
    assert_eq!(q("/history", b"{\"limit\":0}").code, 2);
    assert_eq!(q("/history", b"{\"bogus\":1}").code, 2);
    // Paging: two at a time walks all six in order.
    let mut after: Option<String> = None;
    let mut seen = Vec::new();
    loop {
        let filter = serde_json::json!({"limit": 2, "after": after});
        let page: serde_json::Value =
            serde_json::from_slice(&q("/history", filter.to_string().as_bytes()).value).unwrap();
        for d in page["directives"].as_array().unwrap() {
            seen.push((d["height"].as_u64().unwrap(), d["index"].as_u64().unwrap()));
        }
        match page["next"].as_str() {
            Some(n) => after = Some(n.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 6);
    assert!(seen.windows(2).all(|w| w[0] < w[1]));
    // Filter by group and by pool.
    let f = serde_json::json!({"group": "pool-a/g-1"});
    let page: serde_json::Value = serde_json::from_slice(&q("/history", f.to_string().as_bytes()).value).unwrap();
    assert_eq!(page["directives"].as_array().unwrap().len(), 1);
    assert_eq!(page["directives"][0]["status"], "active");
    let f = serde_json::json!({"pool": key('c').pool_id().to_hex(), "from_height": 3});
    let page: serde_json::Value = serde_json::from_slice(&q("/history", f.to_string().as_bytes()).value).unwrap();
    assert_eq!(page["directives"].as_array().unwrap().len(), 2);
}

#[test]
fn a_route_replaced_by_a_newer_one_reads_superseded() {
    let dir = tempfile::tempdir().unwrap();
    let app = open(dir.path());
    let q = |path: &str, data: &[u8]| -> serde_json::Value {
        let r = app.query(RequestQuery { path: path.into(), data: data.to_vec().into(), ..Default::default() });
        assert_eq!(r.code, 0, "{}", r.log);
        serde_json::from_slice(&r.value).unwrap()
    };
    init(&app);
    let blocks = scripted_blocks();
    for (i, txs) in blocks.iter().enumerate() {
        run_block(&app, i as i64 + 1, txs, true);
    }
    let first = hashmesh_protocol::DirectiveId::of_tx_bytes(&blocks[0][0]);
    assert_eq!(q("/directive", first.to_hex().as_bytes())["status"], "active");
    let before = q("/status", b"");
    let newer = sign_with('a', 100, CHAIN, route("pool-a/g-2", &[("pool-a/ep-2", 10_000)]));
    let newer_id = hashmesh_protocol::DirectiveId::of_tx_bytes(&newer);
    run_block(&app, 6, &[newer], true);
    let old = q("/directive", first.to_hex().as_bytes());
    assert_eq!(old["status"], "superseded", "{old}");
    assert_eq!(old["superseded_by"], newer_id.to_hex());
    let new = q("/directive", newer_id.to_hex().as_bytes());
    assert_eq!(new["status"], "active");
    assert!(new.get("superseded_by").is_none(), "{new}");
    let page = q("/history", serde_json::json!({"group": "pool-a/g-2"}).to_string().as_bytes());
    let statuses: Vec<&str> =
        page["directives"].as_array().unwrap().iter().map(|d| d["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["superseded", "active"]);
    // Status: one more route became active; the routes in effect stay one per routed group.
    let after = q("/status", b"");
    assert_eq!(after["directives"]["active"], before["directives"]["active"].as_u64().unwrap() + 1);
    assert_eq!(after["routes_in_effect"], before["routes_in_effect"]);
    assert_eq!(after["routes_in_effect"], q("/assignments", b"").as_array().unwrap().len());
}
