//! Docs match the code: docs/protocol.md lists every rejection code; docs/scheduling.md every
//! simulator scenario.

use hashmesh_protocol::RejectCode;

#[test]
fn protocol_doc_lists_every_code() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/protocol.md")).unwrap();
    for c in RejectCode::ALL {
        let row = format!("| {} | `{}` |", c.code(), c.name());
        assert!(doc.contains(&row), "docs/protocol.md is missing the row starting {row:?}");
    }
}

#[test]
fn scheduling_doc_describes_every_simulator_scenario() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/scheduling.md")).unwrap();
    for (name, _) in hashmesh_scheduler::sim::SCENARIOS {
        let item = format!("- **`{name}`**");
        assert!(doc.contains(&item), "docs/scheduling.md has no results entry {item:?}");
    }
}
