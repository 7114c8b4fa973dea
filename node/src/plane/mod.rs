//! The instruction plane: committed routes delivered over QUIC with TLS 1.3 to agents (and
//! worker credentials between pools' nodes), acknowledgements turned into on-chain receipts.
//!
//! - [`identity`]: an ed25519 key as a self-signed X.509 certificate, and the key back out of a
//!   peer's certificate.
//! - [`tls`]: rustls configurations — TLS 1.3 only, the hashmesh ALPN, and certificate verifiers
//!   that pin peers by ed25519 key against a [`tls::Trust`] instead of a CA.
//! - [`endpoint`]: quinn endpoints built from them, with deliberate keep-alive and idle timeouts.
//! - [`frame`]: length-prefixed, size-limited frames on plane streams.
//! - [`outbox`]: the node-local persistent outbox (per-agent instructions, acks, receipts,
//!   credentials).
//! - [`service`]: the node side — delivery, acknowledgements, heartbeats and liveness.
//! - [`receipts`]: acknowledgements become `Receipt` transactions.
//! - [`peers`]: the node-to-node channel for cross-pool worker credentials.
//! - [`registry`]: registered agents and the published status.
//! - [`bench`](mod@bench): `hashmesh bench plane`.

pub mod bench;
pub mod endpoint;
pub mod frame;
pub mod identity;
pub mod outbox;
pub mod peers;
pub mod receipts;
pub mod registry;
pub mod service;
pub mod tls;
