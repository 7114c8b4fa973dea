//! The plane's sans-IO core: [`node::NodePlane`] and [`agent::AgentPlane`]. Inputs are
//! `handle_*` calls, outputs `poll_*` results, time an argument. Never names tokio, quinn, sled,
//! `std::fs`, `std::net` or a clock (`plane/tests/tidy.rs`).

pub mod agent;
pub mod node;
