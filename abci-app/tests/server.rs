//! The ABCI socket server: answers pipelined requests in order, batches CheckTx signatures,
//! and answers garbage or oversized frames with an exception and a closed connection.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use common::*;
use hashmesh_abci::{AppHandle, Store};
use prost::Message;
use tendermint_proto::v0_38::abci::{
    request, response, Request, RequestCheckTx, RequestEcho, RequestFlush, RequestInitChain, Response,
};

fn start() -> (String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let app = AppHandle::new(Store::open(dir.path()).unwrap()).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    // The server thread lives as long as the test process; it owns only this listener.
    std::thread::spawn(move || hashmesh_abci::server::serve(listener, app));
    (addr, dir)
}

fn send(s: &mut TcpStream, v: request::Value) {
    s.write_all(&Request { value: Some(v) }.encode_length_delimited_to_vec()).unwrap();
}

fn recv(s: &mut TcpStream) -> Option<response::Value> {
    let mut len = 0u64;
    for i in 0..10 {
        let mut b = [0u8; 1];
        if s.read(&mut b).ok()? == 0 {
            return None;
        }
        len |= u64::from(b[0] & 0x7f) << (7 * i);
        if b[0] & 0x80 == 0 {
            break;
        }
    }
    let mut buf = vec![0u8; len as usize];
    s.read_exact(&mut buf).ok()?;
    Response::decode(buf.as_slice()).unwrap().value
}

fn connect(addr: &str) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

#[test]
fn pipelined_checktx_answers_in_order_with_the_right_codes() {
    let (addr, _dir) = start();
    let mut s = connect(&addr);
    send(
        &mut s,
        request::Value::InitChain(RequestInitChain {
            chain_id: CHAIN.into(),
            app_state_bytes: serde_json::to_vec(&genesis()).unwrap().into(),
            initial_height: 1,
            ..Default::default()
        }),
    );
    assert!(matches!(recv(&mut s), Some(response::Value::InitChain(_))));
    let good: Vec<Vec<u8>> =
        (1..=20).map(|n| sign_with('a', n, CHAIN, route("pool-a/g-1", &[("pool-a/ep-1", 10_000)]))).collect();
    let mut bad = good[5].clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    let mut txs = good.clone();
    txs[5] = bad;
    // Write everything at once so the server sees one buffered batch.
    let mut wire = Vec::new();
    for t in &txs {
        wire.extend(
            Request { value: Some(request::Value::CheckTx(RequestCheckTx { tx: t.clone().into(), r#type: 0 })) }
                .encode_length_delimited_to_vec(),
        );
    }
    wire.extend(Request { value: Some(request::Value::Flush(RequestFlush {})) }.encode_length_delimited_to_vec());
    s.write_all(&wire).unwrap();
    for (i, _) in txs.iter().enumerate() {
        let Some(response::Value::CheckTx(r)) = recv(&mut s) else { panic!("response {i} is not CheckTx") };
        let want = if i == 5 { 5 } else { 0 };
        assert_eq!(r.code, want, "tx {i}: {}", r.log);
    }
    assert!(matches!(recv(&mut s), Some(response::Value::Flush(_))));
}

#[test]
fn garbage_and_oversized_frames_get_an_exception_and_a_closed_connection() {
    let (addr, _dir) = start();
    let mut s = connect(&addr);
    // A length of 3 followed by bytes that are not a Request.
    s.write_all(&[3, 0xff, 0xff, 0xff]).unwrap();
    assert!(matches!(recv(&mut s), Some(response::Value::Exception(_))));
    assert!(recv(&mut s).is_none(), "connection must close");

    let mut s = connect(&addr);
    // Claims 2^40 bytes.
    s.write_all(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x20]).unwrap();
    let Some(response::Value::Exception(e)) = recv(&mut s) else { panic!("no exception") };
    assert!(e.error.contains("exceeds"), "{}", e.error);

    // The server still serves others.
    let mut s = connect(&addr);
    send(&mut s, request::Value::Echo(RequestEcho { message: "still here".into() }));
    let Some(response::Value::Echo(e)) = recv(&mut s) else { panic!("no echo") };
    assert_eq!(e.message, "still here");
}
