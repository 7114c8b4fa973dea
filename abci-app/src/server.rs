//! The ABCI socket server: CometBFT's length-delimited protobuf protocol over TCP, dispatching
//! to the `tendermint_abci::Application` implementation in [`crate::shell`].
//!
//! Why not `tendermint_abci::Server`: it leaves Nagle's algorithm on and flushes after every
//! response, so pipelined `CheckTx` responses wait for delayed ACKs; it also panics on a
//! request without a value and reads messages of any length. This server sets `TCP_NODELAY`,
//! handles every request already buffered as one batch (verifying the batch's `CheckTx`
//! signatures together first), batches responses (flushing on `Flush` and when the input runs
//! dry), bounds message size, and answers malformed requests with an `Exception` before closing
//! the connection. See docs/adr/0004-abci-server.md.

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::net::{TcpListener, TcpStream};

use prost::Message;
use tendermint_abci::Application;
use tendermint_proto::v0_38::abci::{request, response, CheckTxType, Request, Response, ResponseException};
use tracing::{info, warn};

use crate::shell::PreverifyBatch;

/// Largest ABCI message accepted, in bytes (CometBFT's default block is ~21 MiB).
pub const ABCI_MESSAGE_BYTES_MAX: u64 = 128 * 1024 * 1024;
/// Most already-buffered requests handled as one batch (their `CheckTx` signatures are
/// verified together before each is answered in order).
pub const REQUEST_BATCH_MAX: usize = 512;

/// Serve `app` on `listener` forever, one thread per CometBFT connection.
///
/// # Errors
/// If accepting connections fails.
pub fn serve<A: Application + PreverifyBatch>(listener: TcpListener, app: A) -> std::io::Result<()> {
    for stream in listener.incoming() {
        let stream = stream?;
        let app = app.clone();
        std::thread::Builder::new().name("abci-conn".into()).spawn(move || {
            let peer = stream.peer_addr().map(|a| a.to_string()).unwrap_or_default();
            info!(%peer, "CometBFT connected");
            match handle(stream, &app) {
                Ok(()) => info!(%peer, "CometBFT connection closed"),
                Err(e) => warn!(%peer, "ABCI connection ended: {e}"),
            }
        })?;
    }
    Ok(())
}

/// Read every length-delimited ABCI request in `bytes` as the server reads them from its
/// socket, until the bytes end or a request is malformed; returns how many decoded and whether
/// the bytes ended cleanly between requests. Fuzzing and the corpus replay drive the framing
/// through this.
///
/// # Panics
/// If the batching check (`whole_message_buffered`) and the reader disagree about a request —
/// the property the fuzz target looks for.
#[must_use]
pub fn read_requests(bytes: &[u8]) -> (usize, bool) {
    let mut rest = bytes;
    let mut buf = Vec::new();
    let mut n = 0;
    loop {
        let whole = whole_message_buffered(rest);
        let r = read_request(&mut rest, &mut buf);
        assert!(!whole || r.is_ok(), "a request judged whole could not be read: {r:?}");
        assert!(whole || !matches!(r, Ok(Some(Ok(_)))), "a request judged partial was read");
        match r {
            Ok(None) => return (n, true),
            Ok(Some(Ok(_))) => n += 1,
            Ok(Some(Err(_))) | Err(_) => return (n, false),
        }
    }
}

fn read_varint(r: &mut impl BufRead) -> std::io::Result<Option<u64>> {
    let mut value: u64 = 0;
    for i in 0..10 {
        let mut b = [0u8; 1];
        if r.read(&mut b)? == 0 {
            return if i == 0 { Ok(None) } else { Err(std::io::ErrorKind::UnexpectedEof.into()) };
        }
        value |= u64::from(b[0] & 0x7f) << (7 * i);
        if b[0] & 0x80 == 0 {
            return Ok(Some(value));
        }
    }
    Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "length prefix longer than 10 bytes"))
}

/// Whether `buf` starts with a whole length-delimited message.
fn whole_message_buffered(buf: &[u8]) -> bool {
    let mut len: u64 = 0;
    for (i, b) in buf.iter().take(10).enumerate() {
        len |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return (buf.len() - i - 1) as u64 >= len;
        }
    }
    false
}

fn read_request(
    reader: &mut impl BufRead,
    buf: &mut Vec<u8>,
) -> std::io::Result<Option<Result<request::Value, String>>> {
    let Some(len) = read_varint(reader)? else {
        return Ok(None);
    };
    if len > ABCI_MESSAGE_BYTES_MAX {
        return Ok(Some(Err(format!("ABCI message of {len} bytes exceeds {ABCI_MESSAGE_BYTES_MAX}"))));
    }
    buf.resize(usize::try_from(len).expect("bounded length fits usize"), 0);
    reader.read_exact(buf)?;
    Ok(Some(
        Request::decode(buf.as_slice()).ok().and_then(|r| r.value).ok_or_else(|| "undecodable ABCI request".into()),
    ))
}

fn handle<A: Application + PreverifyBatch>(stream: TcpStream, app: &A) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut reader = BufReader::with_capacity(1 << 16, stream.try_clone()?);
    let mut writer = BufWriter::with_capacity(1 << 16, stream);
    let mut buf = Vec::new();
    loop {
        // One request (blocking), then every further request already buffered.
        let mut batch = Vec::new();
        loop {
            match read_request(&mut reader, &mut buf)? {
                None if batch.is_empty() => return Ok(()),
                None => break,
                Some(Ok(v)) => batch.push(v),
                Some(Err(msg)) => {
                    write_response(&mut writer, &exception(&msg))?;
                    writer.flush()?;
                    return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, msg));
                }
            }
            if batch.len() >= REQUEST_BATCH_MAX || !whole_message_buffered(reader.buffer()) {
                break;
            }
        }
        let new_txs: Vec<&[u8]> = batch
            .iter()
            .filter_map(|v| match v {
                request::Value::CheckTx(r) if r.r#type == CheckTxType::New as i32 => Some(r.tx.as_ref()),
                _ => None,
            })
            .collect();
        if new_txs.len() > 1 {
            app.preverify(&new_txs);
        }
        let mut flush = reader.buffer().is_empty();
        for value in batch {
            flush |= matches!(value, request::Value::Flush(_));
            write_response(&mut writer, &dispatch(app, value))?;
        }
        // Keep batching responses while CometBFT has already sent more; flush when asked or idle.
        if flush {
            writer.flush()?;
        }
    }
}

fn exception(msg: &str) -> Response {
    Response { value: Some(response::Value::Exception(ResponseException { error: msg.to_owned() })) }
}

fn write_response(w: &mut impl Write, r: &Response) -> std::io::Result<()> {
    w.write_all(&r.encode_length_delimited_to_vec())
}

fn dispatch<A: Application>(app: &A, value: request::Value) -> Response {
    use request::Value as Q;
    use response::Value as R;
    let value = match value {
        Q::Echo(r) => R::Echo(app.echo(r)),
        Q::Flush(_) => R::Flush(app.flush()),
        Q::Info(r) => R::Info(app.info(r)),
        Q::InitChain(r) => R::InitChain(app.init_chain(r)),
        Q::Query(r) => R::Query(app.query(r)),
        Q::CheckTx(r) => R::CheckTx(app.check_tx(r)),
        Q::Commit(_) => R::Commit(app.commit()),
        Q::ListSnapshots(_) => R::ListSnapshots(app.list_snapshots()),
        Q::OfferSnapshot(r) => R::OfferSnapshot(app.offer_snapshot(r)),
        Q::LoadSnapshotChunk(r) => R::LoadSnapshotChunk(app.load_snapshot_chunk(r)),
        Q::ApplySnapshotChunk(r) => R::ApplySnapshotChunk(app.apply_snapshot_chunk(r)),
        Q::PrepareProposal(r) => R::PrepareProposal(app.prepare_proposal(r)),
        Q::ProcessProposal(r) => R::ProcessProposal(app.process_proposal(r)),
        Q::ExtendVote(r) => R::ExtendVote(app.extend_vote(r)),
        Q::VerifyVoteExtension(r) => R::VerifyVoteExtension(app.verify_vote_extension(r)),
        Q::FinalizeBlock(r) => R::FinalizeBlock(app.finalize_block(r)),
    };
    Response { value: Some(value) }
}
