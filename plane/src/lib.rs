//! The hashmesh instruction plane, shared by the node (`hashmesh`) and the agent
//! (`hashmesh-agent`): committed routes delivered over QUIC with TLS 1.3 to agents,
//! acknowledgements back, heartbeats with the agents' measurements.
//!
//! - [`core`]: the sans-IO state machines, [`core::node::NodePlane`] and
//!   [`core::agent::AgentPlane`] (quinn-proto style: `handle_*` in, `poll_*` out, `now_ms` in).
//! - [`transport`]: the quinn/rustls transport with pinned ed25519 keys, and frames.
//! - [`host`]: the one clock, atomic file writer and key-file type of both binaries.
//! - [`PlaneError`]: a local fault is never blamed on the peer.

pub mod core;
pub mod host;
pub mod transport;

/// Why a plane session ended.
#[derive(Debug, thiserror::Error)]
pub enum PlaneError {
    /// This process failed (storage, a task): not the peer's fault; the process may stop.
    #[error("local fault: {0:#}")]
    Local(anyhow::Error),
    /// The peer broke the protocol or the connection failed: the session ends, the peer may
    /// reconnect.
    #[error("peer: {0:#}")]
    Peer(anyhow::Error),
}
