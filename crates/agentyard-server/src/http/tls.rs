//! HTTPS: a certificate chain and its private key (PEM files, as `--tls-cert` / `--tls-key`
//! name them) turned into the rustls configuration every accepted connection shakes hands with.
//! The handshake counts against the header timeout (see `connections`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// A loaded certificate and key, ready to accept TLS connections. Cheap to clone.
#[derive(Clone)]
pub struct Tls {
    config: Arc<rustls::ServerConfig>,
}

/// Why a certificate or key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {}: {source}", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} holds no PEM certificate")]
    NoCertificate { what: String },
    #[error("{what} is not a PEM certificate chain: {detail}")]
    BadCertificate { what: String, detail: String },
    #[error("{what} holds no PEM private key (PKCS#8, PKCS#1 or SEC1): {detail}")]
    BadKey { what: String, detail: String },
    #[error("the certificate and key cannot be used together: {0}")]
    Rejected(#[from] rustls::Error),
}

impl Tls {
    /// Reads a PEM certificate chain (the server's certificate first) and a PEM private key.
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let read = |path: &Path| {
            std::fs::read(path).map_err(|source| TlsError::Read {
                path: path.to_owned(),
                source,
            })
        };
        Self::parse(
            &read(cert)?,
            &cert.display().to_string(),
            &read(key)?,
            &key.display().to_string(),
        )
    }

    /// As [`Tls::from_pem_files`], from the files' contents.
    pub fn from_pem(cert: &[u8], key: &[u8]) -> Result<Self, TlsError> {
        Self::parse(cert, "the certificate", key, "the key")
    }

    fn parse(cert: &[u8], cert_name: &str, key: &[u8], key_name: &str) -> Result<Self, TlsError> {
        let chain = CertificateDer::pem_slice_iter(cert)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TlsError::BadCertificate {
                what: cert_name.to_owned(),
                detail: e.to_string(),
            })?;
        if chain.is_empty() {
            return Err(TlsError::NoCertificate {
                what: cert_name.to_owned(),
            });
        }
        let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| TlsError::BadKey {
            what: key_name.to_owned(),
            detail: e.to_string(),
        })?;
        // ring, named rather than taken from the process default, so another crate enabling
        // aws-lc-rs cannot make the choice ambiguous.
        #[allow(
            deprecated,
            reason = "ring lacks post-quantum key exchange (hence the deprecation), but builds in seconds where aws-lc-sys takes minutes"
        )]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key)?;
        // The server speaks HTTP/1.1 only.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            config: Arc::new(config),
        })
    }

    pub(crate) fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.config.clone())
    }
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").finish_non_exhaustive()
    }
}

/// The same loaded configuration (keys are not compared).
impl PartialEq for Tls {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.config, &other.config)
    }
}
