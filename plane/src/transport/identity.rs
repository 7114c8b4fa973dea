//! Identities on the plane are ed25519 keys (pool keys for nodes, agent keys for agents). TLS
//! wants certificates, so each side presents a self-signed certificate over its key; the peer
//! ignores everything in it except the key, which it pins.

use anyhow::{bail, Context, Result};
use ed25519_dalek::SigningKey;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// PKCS#8 v2 (RFC 8410/5958) framing of an ed25519 key: prefix ‖ seed ‖ middle ‖ public key.
const PKCS8_PREFIX: [u8; 16] =
    [0x30, 0x51, 0x02, 0x01, 0x01, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];
const PKCS8_MIDDLE: [u8; 3] = [0x81, 0x21, 0x00];
/// The ed25519 algorithm identifier (1.3.101.112).
const ED25519_OID: &str = "1.3.101.112";

/// A certificate and its private key, ready for rustls.
#[derive(Debug)]
pub struct TlsIdentity {
    /// Self-signed certificate over the key.
    pub cert: CertificateDer<'static>,
    /// The key, PKCS#8.
    pub key: PrivateKeyDer<'static>,
    /// The ed25519 public key.
    pub public: [u8; 32],
}

impl Clone for TlsIdentity {
    fn clone(&self) -> Self {
        Self { cert: self.cert.clone(), key: self.key.clone_key(), public: self.public }
    }
}

fn pkcs8(key: &SigningKey) -> Vec<u8> {
    let mut v = Vec::with_capacity(83);
    v.extend_from_slice(&PKCS8_PREFIX);
    v.extend_from_slice(key.as_bytes());
    v.extend_from_slice(&PKCS8_MIDDLE);
    v.extend_from_slice(key.verifying_key().as_bytes());
    v
}

/// A self-signed certificate for `key`.
///
/// # Errors
/// If the certificate cannot be built (should not happen for a valid key).
pub fn tls_identity(key: &SigningKey) -> Result<TlsIdentity> {
    let der = pkcs8(key);
    let kp = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&PrivatePkcs8KeyDer::from(der.clone()), &rcgen::PKCS_ED25519)
        .context("ed25519 key for the certificate")?;
    let mut params = rcgen::CertificateParams::new(vec!["hashmesh".to_string()]).context("certificate parameters")?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(rcgen::DnType::CommonName, hex::encode(key.verifying_key().as_bytes()));
    let cert = params.self_signed(&kp).context("self-signed certificate")?;
    Ok(TlsIdentity {
        cert: cert.der().clone(),
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(der)),
        public: key.verifying_key().to_bytes(),
    })
}

/// The ed25519 public key a certificate carries.
///
/// # Errors
/// If the certificate does not parse or its key is not ed25519.
pub fn peer_key(cert: &CertificateDer<'_>) -> Result<[u8; 32]> {
    let (_, x) = x509_parser::parse_x509_certificate(cert.as_ref()).context("peer certificate does not parse")?;
    let spki = x.public_key();
    if spki.algorithm.algorithm.to_id_string() != ED25519_OID {
        bail!("peer certificate key is not ed25519 ({})", spki.algorithm.algorithm.to_id_string());
    }
    let raw: &[u8] = &spki.subject_public_key.data;
    raw.try_into().context("ed25519 key must be 32 bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_goes_in_and_comes_back_out() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let id = tls_identity(&key).unwrap();
        assert_eq!(peer_key(&id.cert).unwrap(), key.verifying_key().to_bytes());
        assert!(peer_key(&CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x00])).is_err());
    }
}
