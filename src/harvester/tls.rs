//! The harvester's TLS identity and client configuration, as chia's `ssl_context_for_client`:
//! present a harvester certificate issued by the farmer's private CA, accept a farmer certificate
//! that chains to that CA, and check no host name. The certificate is read from a chia root
//! (`config/ssl/harvester/private_harvester.{crt,key}`) when there is one, or issued at start from
//! the CA's `private_ca.{crt,key}` (what `chia init -c CA_DIR` does, with an ECDSA P-256 key).

use std::path::{Path, PathBuf};

use rustls::pki_types::{CertificateDer, PrivateKeyDer};

pub use crate::chia::ssl::provider;
pub use crate::chia::ssl::TlsError;
use crate::chia::ssl::{issue_node_cert, read_cert, read_key, read_text};

/// Where the harvester's certificates come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertSource {
    /// A chia root: its private CA, and its harvester certificate when present.
    ChiaRoot(PathBuf),
    /// A directory holding the farmer's `private_ca.crt` and `private_ca.key`.
    CaDir(PathBuf),
}

/// The private CA and the harvester's certificate and key.
#[derive(Debug)]
pub struct Identity {
    /// The farmer's private CA (the only trust anchor).
    pub ca: CertificateDer<'static>,
    /// The harvester certificate.
    pub cert: CertificateDer<'static>,
    /// Its key.
    pub key: PrivateKeyDer<'static>,
}

impl Identity {
    /// Loads (or issues) the identity from `source`.
    pub fn load(source: &CertSource) -> Result<Identity, TlsError> {
        let ca_dir = match source {
            CertSource::ChiaRoot(root) => root.join("config/ssl/ca"),
            CertSource::CaDir(dir) => dir.clone(),
        };
        let (ca_crt, ca_key) = (ca_dir.join("private_ca.crt"), ca_dir.join("private_ca.key"));
        let ca = read_cert(&ca_crt)?;
        if let CertSource::ChiaRoot(root) = source {
            let dir = root.join("config/ssl/harvester");
            let (crt, key) = (
                dir.join("private_harvester.crt"),
                dir.join("private_harvester.key"),
            );
            if crt.exists() && key.exists() {
                tracing::info!(cert = %crt.display(), "using the chia root's harvester certificate");
                return Ok(Identity {
                    ca,
                    cert: read_cert(&crt)?,
                    key: read_key(&key)?,
                });
            }
        }
        let (cert, key) = issue_harvester_cert(&ca_crt, &read_text(&ca_key)?, &ca)?;
        tracing::info!(ca = %ca_crt.display(), "issued a harvester certificate from the private CA");
        Ok(Identity { ca, cert, key })
    }
}

/// Issues a harvester certificate signed by the CA (see [`issue_node_cert`]).
pub fn issue_harvester_cert(
    ca_path: &Path,
    ca_key_pem: &str,
    ca: &CertificateDer<'_>,
) -> Result<(CertificateDer<'static>, PrivateKeyDer<'static>), TlsError> {
    issue_node_cert(ca_path, ca_key_pem, ca)
}

/// A TLS 1.3 client configuration presenting `identity` and trusting only its CA.
pub fn client_config(identity: &Identity) -> Result<rustls::ClientConfig, TlsError> {
    crate::chia::ssl::client_config(&identity.ca, &identity.cert, &identity.key)
}
