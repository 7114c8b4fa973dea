//! quinn endpoints for the plane. Keep-alive every 5 s keeps NAT bindings and lets both sides
//! notice a dead peer; a connection idle for 30 s (no keep-alive answered) is closed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};

use super::identity::{peer_key, TlsIdentity};
use super::tls::{client_config, server_config, Trust};

/// Keep-alive interval.
pub const KEEP_ALIVE: Duration = Duration::from_secs(5);
/// Idle timeout.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

fn transport() -> Arc<quinn::TransportConfig> {
    let mut t = quinn::TransportConfig::default();
    t.keep_alive_interval(Some(KEEP_ALIVE));
    t.max_idle_timeout(Some(IDLE_TIMEOUT.try_into().expect("30 s fits a QUIC varint")));
    // One control stream and one instruction stream per peer are all the plane needs.
    t.max_concurrent_bidi_streams(8u32.into());
    t.max_concurrent_uni_streams(0u32.into());
    Arc::new(t)
}

/// A listening endpoint that accepts only trusted peers.
///
/// # Errors
/// If the address cannot be bound or the TLS configuration is refused.
pub fn server(bind: SocketAddr, id: &TlsIdentity, trust: &Trust) -> Result<quinn::Endpoint> {
    let tls = QuicServerConfig::try_from(server_config(id, trust)?).context("QUIC server TLS")?;
    let mut cfg = quinn::ServerConfig::with_crypto(Arc::new(tls));
    cfg.transport_config(transport());
    quinn::Endpoint::server(cfg, bind).with_context(|| format!("cannot listen on {bind} (udp)"))
}

/// Connect to `addr` as `id`, accepting only a server whose key `trust` holds.
///
/// # Errors
/// If the handshake fails (untrusted server, refused client, wrong ALPN, unreachable).
pub async fn connect(addr: SocketAddr, id: &TlsIdentity, trust: &Trust, alpn: &[u8]) -> Result<quinn::Connection> {
    let bind: SocketAddr = if addr.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }.parse().expect("literal");
    let mut ep = quinn::Endpoint::client(bind).context("client endpoint")?;
    let tls = QuicClientConfig::try_from(client_config(id, trust, alpn)?).context("QUIC client TLS")?;
    let mut cfg = quinn::ClientConfig::new(Arc::new(tls));
    cfg.transport_config(transport());
    ep.set_default_client_config(cfg);
    let conn =
        ep.connect(addr, "hashmesh").context("connect")?.await.with_context(|| format!("handshake with {addr}"))?;
    Ok(conn)
}

/// The ed25519 key the peer of `conn` proved during the handshake.
///
/// # Errors
/// If the connection has no peer certificate (cannot happen with these configs).
pub fn remote_key(conn: &quinn::Connection) -> Result<[u8; 32]> {
    let certs = conn
        .peer_identity()
        .and_then(|i| i.downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>().ok())
        .context("peer presented no certificate")?;
    peer_key(certs.first().context("empty certificate chain")?)
}

/// Whether the connection ended on purpose: the peer closed it with application code 0 (a
/// goodbye, such as a node stopping), or this side closed it.
#[must_use]
pub fn closed_cleanly(conn: &quinn::Connection) -> bool {
    match conn.close_reason() {
        Some(quinn::ConnectionError::ApplicationClosed(c)) => c.error_code == quinn::VarInt::from_u32(0),
        Some(quinn::ConnectionError::LocallyClosed) => true,
        _ => false,
    }
}

/// A plane connection (the QUIC connection type, for the crates that drive one).
pub type Connection = quinn::Connection;
