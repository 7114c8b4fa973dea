//! What each fuzz target checks, one function per decoder: it must never panic on any input,
//! and what it accepts must be exactly what the encoder writes. libFuzzer drives these
//! (`fuzz/fuzz_targets`, `fuzz/run`); `tests/corpus.rs` replays the inputs kept in
//! `fuzz/corpus/<target>/` in every `cargo test`.

use hashmesh_plane::transport::frame::{push_frame, take_frame};
use hashmesh_protocol::plane::{PlaneMsg, PLANE_MSG_BYTES_MAX};
use hashmesh_protocol::SignedTx;
use hashmesh_stratum::codec::LineCodec;
use hashmesh_stratum::message::{ClientMessage, ServerMessage};

/// A target's check.
pub type Check = fn(&[u8]);

/// The targets, by the name of their corpus directory.
pub const TARGETS: [(&str, Check); 4] =
    [("tx", tx), ("plane_frames", plane_frames), ("abci_framing", abci_framing), ("stratum_lines", stratum_lines)];

/// The transaction decoder (`CheckTx` and `FinalizeBlock` run it on untrusted bytes): a
/// transaction it accepts encodes back to exactly the same bytes (canonical), and its id is
/// the hash of those bytes.
pub fn tx(data: &[u8]) {
    if let Ok(t) = SignedTx::decode(data) {
        assert_eq!(t.encode(), data, "accepted bytes that are not the canonical encoding");
    }
}

/// The plane's framing and message decoder (what a node reads from agents and peers): frames
/// are taken off a stream's bytes in order, each decoded message re-encodes to its frame, and
/// re-framing the frames gives back the bytes consumed.
pub fn plane_frames(data: &[u8]) {
    let mut buf = data.to_vec();
    let mut frames = Vec::new();
    while let Ok(Some(f)) = take_frame(&mut buf, PLANE_MSG_BYTES_MAX) {
        if let Ok(m) = PlaneMsg::decode(&f) {
            assert_eq!(m.encode(), f, "accepted a frame that is not the canonical encoding");
        }
        frames.push(f);
    }
    let mut again = Vec::new();
    for f in &frames {
        push_frame(&mut again, f).expect("frames taken are within the bound");
    }
    again.extend_from_slice(&buf);
    assert_eq!(again, data, "framing lost or reordered bytes");
}

/// The ABCI socket framing (varint length, protobuf request) as the server reads CometBFT's
/// connection: never panics, and its batching check agrees with its reader.
pub fn abci_framing(data: &[u8]) {
    let _ = hashmesh_abci::server::read_requests(data);
}

/// The Stratum line codec and message parsers (what an agent reads from miners and pools):
/// lines come out in order within the bound, and parsing any of them never panics.
pub fn stratum_lines(data: &[u8]) {
    let mut codec = LineCodec::new();
    // Feed in two pieces: a line split across reads must come out the same.
    let cut = data.first().map_or(0, |b| usize::from(*b) % (data.len() + 1));
    for piece in [&data[..cut], &data[cut..]] {
        if codec.push(piece).is_err() {
            return;
        }
        while let Some(line) = codec.next_line() {
            let Ok(line) = line else { return };
            let _ = ClientMessage::parse(&line);
            let _ = ServerMessage::parse(&line);
        }
    }
}
