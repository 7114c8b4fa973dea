//! The instruction plane (issue 6, in progress): QUIC with TLS 1.3 between nodes and agents.
//!
//! - [`identity`]: an ed25519 key as a self-signed X.509 certificate, and the key back out of a
//!   peer's certificate.
//! - [`tls`]: rustls configurations — TLS 1.3 only, the hashmesh ALPN, and certificate verifiers
//!   that pin peers by ed25519 key against a [`tls::Trust`] instead of a CA.
//! - [`endpoint`]: quinn endpoints built from them, with deliberate keep-alive and idle timeouts.
//! - [`frame`]: length-prefixed, size-limited frames on plane streams.

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
