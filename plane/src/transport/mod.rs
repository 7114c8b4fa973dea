//! Moving plane messages: QUIC (quinn) with TLS 1.3 (rustls) whose verifiers pin ed25519 keys,
//! and length-prefixed frames on its streams.
//!
//! - [`identity`]: an ed25519 key as a self-signed X.509 certificate, and the key back out of a
//!   peer's certificate.
//! - [`tls`]: TLS 1.3-only rustls configurations, the hashmesh ALPN, verifiers that pin peers
//!   against a [`tls::Trust`] instead of a CA (ADR 0006).
//! - [`endpoint`]: quinn endpoints with deliberate keep-alive and idle timeouts.
//! - [`frame`]: 4-byte length-prefixed frames, bounded by [`frame::FRAME_MAX`].

pub mod endpoint;
pub mod frame;
pub mod identity;
pub mod tls;
