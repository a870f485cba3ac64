//! TLS towards credential upstreams: rustls with the ring provider,
//! trusting the system's store (`/etc/ssl/certs`, `SSL_CERT_FILE`) plus
//! any CA files the operator names (`--upstream-ca`, for a private or
//! test CA). Certificates are always verified, with the credential's
//! domain as the name; there is no switch to turn that off.
//!
//! CONNECT tunnels carry the client's own TLS end to end; the proxy
//! terminates none.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;

/// Why no TLS client could be made.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading CA file {path}: {why}")]
    CaFile { path: String, why: String },
    #[error("no trusted CA certificate: the system store is empty and no --upstream-ca was given")]
    NoRoots,
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// The client configuration for upstream TLS (HTTP/1.1 by ALPN).
pub fn client_config(extra_ca: &[PathBuf]) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    // Unreadable entries in the system store are skipped, as curl does;
    // an empty store is an error below.
    let native = rustls_native_certs::load_native_certs();
    let _ = roots.add_parsable_certificates(native.certs);
    for path in extra_ca {
        let err = |why: String| TlsError::CaFile { path: path.display().to_string(), why };
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|e| err(e.to_string()))?
            .collect::<Result<_, _>>()
            .map_err(|e| err(e.to_string()))?;
        if certs.is_empty() {
            return Err(err("no PEM certificate in it".to_owned()));
        }
        for c in certs {
            roots.add(c).map_err(|e| err(e.to_string()))?;
        }
    }
    if roots.is_empty() {
        return Err(TlsError::NoRoots);
    }
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The crypto provider: *ring*, which builds with the C compiler alone
/// (aws-lc-rs, rustls' post-quantum default, needs a larger native
/// build). Key exchange is therefore classical (X25519, P-256).
#[must_use]
#[expect(deprecated, reason = "rustls 0.23.48 deprecates ring's provider for lacking post-quantum key exchange; see above")]
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}
