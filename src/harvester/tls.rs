//! The harvester's TLS identity and client configuration, as chia's `ssl_context_for_client`:
//! present a harvester certificate issued by the farmer's private CA, accept a farmer certificate
//! that chains to that CA, and check no host name. The certificate is read from a chia root
//! (`config/ssl/harvester/private_harvester.{crt,key}`) when there is one, or issued at start from
//! the CA's `private_ca.{crt,key}` (what `chia init -c CA_DIR` does, with an ECDSA P-256 key).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};

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
    let provider = provider();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(identity.ca.clone())?;
    let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| rustls::Error::General(e.to_string()))?;
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(CaOnlyVerifier { inner }))
        .with_client_auth_cert(vec![identity.cert.clone()], identity.key.clone_key())?;
    Ok(config)
}

/// Checks the farmer's chain to the private CA and ignores the name, as chia does
/// (`check_hostname = False`, `CERT_REQUIRED`).
#[derive(Debug)]
struct CaOnlyVerifier {
    inner: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for CaOnlyVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
