//! The node's side of the instruction plane, as IO around `hashmesh_plane`'s sans-IO
//! `NodePlane`: committed routes delivered to agents, acknowledgements turned into on-chain
//! receipts, worker credentials between pools' nodes.
//!
//! - [`service`]: the actor that owns the state machine and the database, and the connection
//!   tasks (reader and writer in one `select!`).
//! - [`metrics`]: `hashmesh_plane_*` Prometheus metrics.
//! - [`store`]: the node-local plane database (sled), applying the machine's `Persist` batches.
//! - [`receipts`]: acknowledgements become `Receipt` transactions.
//! - [`peers`]: the node-to-node channel for cross-pool worker credentials.
//! - [`registry`]: registered agents and the published status.
//! - [`bench`](mod@bench): `hashmesh bench plane`.

pub mod bench;
pub mod metrics;
pub mod peers;
pub mod receipts;
pub mod registry;
pub mod service;
pub mod store;
