//! The plane's handshake: only pinned ed25519 keys get in, only over TLS 1.3 with the hashmesh
//! ALPN; a stranger who connects gets nothing.

use std::net::SocketAddr;
use std::time::Duration;

use ed25519_dalek::SigningKey;
use hashmesh_plane::transport::endpoint::{connect, remote_key, server};
use hashmesh_plane::transport::identity::tls_identity;
use hashmesh_plane::transport::tls::{Role, Trust, ALPN};
use tokio::time::timeout;

const LIMIT: Duration = Duration::from_secs(10);

/// Ask the echo server; `None` when the connection or the request fails.
async fn ask(key: &SigningKey, server_addr: SocketAddr, trust: &Trust, alpn: &[u8]) -> Option<Vec<u8>> {
    let id = tls_identity(key).expect("identity");
    let conn = timeout(LIMIT, connect(server_addr, &id, trust, alpn)).await.expect("bounded").ok()?;
    let (mut send, mut recv) = conn.open_bi().await.ok()?;
    send.write_all(b"hello").await.ok()?;
    send.finish().ok()?;
    let out = timeout(LIMIT, recv.read_to_end(1024)).await.expect("bounded").ok()?;
    conn.close(0u32.into(), b"done");
    Some(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_pinned_keys_over_tls13_with_our_alpn_get_in() {
    let node = SigningKey::from_bytes(&[1; 32]);
    let agent = SigningKey::from_bytes(&[2; 32]);
    let stranger = SigningKey::from_bytes(&[3; 32]);

    let server_trust = Trust::default();
    server_trust.insert(agent.verifying_key().to_bytes(), Role::Agent { groups: vec!["pool-a/g-1".into()] });
    let ep = server("127.0.0.1:0".parse().unwrap(), &tls_identity(&node).unwrap(), &server_trust).expect("listen");
    let addr = ep.local_addr().unwrap();
    let accepted = tokio::spawn({
        let ep = ep.clone();
        async move {
            let mut seen = Vec::new();
            while let Some(incoming) = ep.accept().await {
                let Ok(conn) = incoming.await else { continue };
                let who = remote_key(&conn).expect("pinned peer has a key");
                seen.push(who);
                if let Ok((mut send, mut recv)) = conn.accept_bi().await {
                    let body = recv.read_to_end(1024).await.unwrap_or_default();
                    let _ = send.write_all(&[b"ok:".as_slice(), &body].concat()).await;
                    let _ = send.finish();
                    let _ = conn.closed().await;
                }
            }
            seen
        }
    });

    let client_trust = Trust::default();
    client_trust.insert(node.verifying_key().to_bytes(), Role::Node);

    // The registered agent, trusting the node's key: served.
    assert_eq!(ask(&agent, addr, &client_trust, ALPN).await.as_deref(), Some(b"ok:hello".as_slice()));
    // A stranger with a valid handshake of its own: nothing.
    assert_eq!(ask(&stranger, addr, &client_trust, ALPN).await, None);
    // The right key with another protocol's ALPN: nothing.
    assert_eq!(ask(&agent, addr, &client_trust, b"h3").await, None);
    // A client that pins a different server key refuses the node (no man in the middle).
    let wrong = Trust::default();
    wrong.insert(stranger.verifying_key().to_bytes(), Role::Node);
    assert_eq!(ask(&agent, addr, &wrong, ALPN).await, None);
    // Revoking the agent shuts it out for new connections.
    server_trust.remove(&agent.verifying_key().to_bytes());
    assert_eq!(ask(&agent, addr, &client_trust, ALPN).await, None);

    ep.close(0u32.into(), b"test over");
    let seen = timeout(LIMIT, accepted).await.expect("bounded").expect("accept task");
    assert_eq!(seen, vec![agent.verifying_key().to_bytes()], "only the registered agent completed a handshake");
}

#[test]
fn the_server_offers_tls13_only() {
    let id = tls_identity(&SigningKey::from_bytes(&[9; 32])).unwrap();
    let cfg = hashmesh_plane::transport::tls::server_config(&id, &Trust::default()).unwrap();
    assert!(cfg.alpn_protocols == vec![ALPN.to_vec()]);
    // A TLS 1.2-only client cannot agree on a version with this server: drive a handshake in
    // memory and expect the server to refuse it.
    let client =
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS12])
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(std::sync::Arc::new(AcceptAny))
            .with_no_client_auth();
    let mut c = rustls::ClientConnection::new(std::sync::Arc::new(client), "hashmesh".try_into().unwrap()).unwrap();
    let mut s = rustls::ServerConnection::new(std::sync::Arc::new(cfg)).unwrap();
    let mut buf = Vec::new();
    c.write_tls(&mut buf).unwrap();
    s.read_tls(&mut buf.as_slice()).unwrap();
    let err = s.process_new_packets().unwrap_err();
    assert!(format!("{err:?}").contains("Tls12NotOfferedOrEnabled"), "{err:?}");
}

#[derive(Debug)]
struct AcceptAny;

impl rustls::client::danger::ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        vec![rustls::SignatureScheme::ED25519]
    }
}
