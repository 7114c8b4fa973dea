//! docs/protocol.md lists every rejection code with its number and name.

use hashmesh_protocol::RejectCode;

#[test]
fn protocol_doc_lists_every_code() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/protocol.md")).unwrap();
    for c in RejectCode::ALL {
        let row = format!("| {} | `{}` |", c.code(), c.name());
        assert!(doc.contains(&row), "docs/protocol.md is missing the row starting {row:?}");
    }
}
