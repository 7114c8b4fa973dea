//! TLS for the plane: TLS 1.3 only, ALPN `hashmesh/1`, and peers pinned by ed25519 key. There is
//! no CA: a peer is trusted when the key in its certificate is one the node trusts (agents the
//! operator registered, pools committed on chain), and the handshake signature proves it holds
//! that key. Anything else fails the handshake, and the reason is logged.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use anyhow::{Context, Result};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls13_signature, CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, Error, SignatureScheme};

use super::identity::{peer_key, TlsIdentity};

/// The plane's ALPN protocol id.
pub const ALPN: &[u8] = b"hashmesh/1";

/// Who a trusted key belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// An agent the operator registered, serving these groups.
    Agent {
        /// Miner groups the agent serves.
        groups: Vec<String>,
    },
    /// Another pool's node (its pool key is committed on chain).
    Node,
}

/// The keys a node or agent accepts, shared with the verifiers (updated while running).
#[derive(Debug, Default, Clone)]
pub struct Trust(Arc<RwLock<BTreeMap<[u8; 32], Role>>>);

impl Trust {
    /// Trust `key` as `role`.
    pub fn insert(&self, key: [u8; 32], role: Role) {
        self.0.write().expect("trust lock").insert(key, role);
    }
    /// Stop trusting `key`.
    pub fn remove(&self, key: &[u8; 32]) {
        self.0.write().expect("trust lock").remove(key);
    }
    /// The role of `key`, if trusted.
    #[must_use]
    pub fn role_of(&self, key: &[u8; 32]) -> Option<Role> {
        self.0.read().expect("trust lock").get(key).cloned()
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Checks a presented certificate against the trust set.
#[derive(Debug)]
struct Pinned {
    trust: Trust,
    algs: WebPkiSupportedAlgorithms,
    side: &'static str,
}

impl Pinned {
    fn check(&self, cert: &CertificateDer<'_>) -> Result<(), Error> {
        let key = peer_key(cert).map_err(|e| {
            tracing::warn!(side = self.side, error = %e, "plane handshake refused: unusable certificate");
            Error::General(format!("unusable certificate: {e}"))
        })?;
        if self.trust.role_of(&key).is_none() {
            tracing::warn!(side = self.side, key = %hex::encode(key), "plane handshake refused: key not trusted");
            return Err(Error::General(format!("key {} is not trusted", hex::encode(key))));
        }
        Ok(())
    }
}

/// Both sides offer TLS 1.3 only, so a TLS 1.2 signature is never legitimately asked for.
fn tls12_refused() -> Result<HandshakeSignatureValid, Error> {
    Err(Error::General("TLS 1.2 is not offered on the hashmesh plane".into()))
}

impl ClientCertVerifier for Pinned {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }
    fn verify_client_cert(
        &self,
        end: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        self.check(end).map(|()| ClientCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        tls12_refused()
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(m, c, d, &self.algs)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        self.check(end).map(|()| ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        tls12_refused()
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(m, c, d, &self.algs)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }
}

fn pinned(trust: &Trust, side: &'static str) -> Arc<Pinned> {
    Arc::new(Pinned { trust: trust.clone(), algs: provider().signature_verification_algorithms, side })
}

/// The server side: TLS 1.3 only, client certificates required and pinned, ALPN `hashmesh/1`.
///
/// # Errors
/// If rustls refuses the identity.
pub fn server_config(id: &TlsIdentity, trust: &Trust) -> Result<rustls::ServerConfig> {
    let mut c = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .context("TLS 1.3")?
        .with_client_cert_verifier(pinned(trust, "server"))
        .with_single_cert(vec![id.cert.clone()], id.key.clone_key())
        .context("server certificate")?;
    c.alpn_protocols = vec![ALPN.to_vec()];
    Ok(c)
}

/// The client side: TLS 1.3 only, the server pinned, our certificate presented, ALPN
/// `alpn` (normally [`ALPN`]).
///
/// # Errors
/// If rustls refuses the identity.
pub fn client_config(id: &TlsIdentity, trust: &Trust, alpn: &[u8]) -> Result<rustls::ClientConfig> {
    let mut c = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .context("TLS 1.3")?
        .dangerous()
        .with_custom_certificate_verifier(pinned(trust, "client"))
        .with_client_auth_cert(vec![id.cert.clone()], id.key.clone_key())
        .context("client certificate")?;
    c.alpn_protocols = vec![alpn.to_vec()];
    Ok(c)
}
