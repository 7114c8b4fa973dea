//! The hashmesh agent: the edge process of a mining pool. It connects to its pool's node over
//! the instruction plane, applies committed routes idempotently into its routing table
//! (persisted before it acknowledges), and sends heartbeats with its measurements. The Stratum
//! proxy that moves miners by that table is the next step (issue 11).
//!
//! Depends on `hashmesh-protocol`, `hashmesh-plane` and `hashmesh-scheduler` only: never on the
//! ABCI application, tendermint or sled (`agent/tests/tidy.rs`).
//!
//! - [`home`]: key, routing table, measurements file.
//! - [`session`]: the tokio driver around `hashmesh_plane::core::agent::AgentPlane`.
//! - [`cli`]: the `hashmesh-agent` commands (also `hashmesh agent …`).

pub mod cli;
pub mod home;
pub mod proxy;
pub mod session;
