//! The farmer endpoint's TLS: a server certificate issued at start from the farmer's private CA
//! (a chia root's `config/ssl/ca/private_ca.{crt,key}`, or a CA the node creates in its data
//! directory for `chia init -c`), and client certificates required and checked against that CA
//! (as chia's farmer does: a harvester without a certificate from the CA is refused).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::server::WebPkiClientVerifier;

use crate::chia::ssl::{self, TlsError};

/// Where the private CA was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaOrigin {
    /// A chia root's CA (`ROOT/config/ssl/ca`).
    ChiaRoot(PathBuf),
    /// A CA the node created in its data directory (now or before).
    DataDir(PathBuf),
}

impl CaOrigin {
    /// The directory holding `private_ca.crt` and `private_ca.key`.
    pub fn dir(&self) -> PathBuf {
        match self {
            CaOrigin::ChiaRoot(root) => root.join("config/ssl/ca"),
            CaOrigin::DataDir(dir) => dir.clone(),
        }
    }
}

/// The chia root chia itself would use: `$CHIA_ROOT`, else `~/.chia/mainnet`.
pub fn default_chia_root() -> Option<PathBuf> {
    if let Some(root) = std::env::var_os("CHIA_ROOT") {
        return Some(PathBuf::from(root));
    }
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".chia/mainnet"))
}

/// Picks the CA: `chia_root`'s when given (it must have one); else the default chia root's if
/// it has one; else the CA in `ca_dir`, created there the first time (then `created` is true).
pub fn resolve_ca(chia_root: Option<&Path>, ca_dir: &Path) -> Result<(CaOrigin, bool), TlsError> {
    let has_ca = |root: &Path| root.join("config/ssl/ca/private_ca.crt").exists();
    if let Some(root) = chia_root {
        ssl::read_cert(&root.join("config/ssl/ca/private_ca.crt"))?;
        return Ok((CaOrigin::ChiaRoot(root.to_owned()), false));
    }
    if let Some(root) = default_chia_root().filter(|r| has_ca(r)) {
        return Ok((CaOrigin::ChiaRoot(root), false));
    }
    if ca_dir.join("private_ca.crt").exists() {
        return Ok((CaOrigin::DataDir(ca_dir.to_owned()), false));
    }
    ssl::create_ca(ca_dir)?;
    Ok((CaOrigin::DataDir(ca_dir.to_owned()), true))
}

/// The TLS server configuration: a certificate issued now from the CA in `ca_dir`, client
/// certificates required and checked against it (TLS 1.2 or 1.3).
pub fn server_config(ca_dir: &Path) -> Result<rustls::ServerConfig, TlsError> {
    let ca_crt = ca_dir.join("private_ca.crt");
    let ca = ssl::read_cert(&ca_crt)?;
    let ca_key = ssl::read_text(&ca_dir.join("private_ca.key"))?;
    let (cert, key) = ssl::issue_node_cert(&ca_crt, &ca_key, &ca)?;
    let provider = ssl::provider();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca)?;
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| rustls::Error::General(e.to_string()))?;
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![cert], key)?;
    Ok(config)
}

/// Why a TLS handshake with a harvester failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TlsRefusal {
    /// The harvester's certificate is not signed by the farmer's private CA (unknown issuer or bad
    /// signature).
    #[error("client certificate not issued by the farmer's CA")]
    ForeignCa,
    /// The harvester's certificate was refused for another reason (any other certificate error
    /// rustls reports, e.g. expired).
    #[error("client certificate refused")]
    BadCertificate,
    /// The harvester sent no certificate (chia's mutual TLS requires one).
    #[error("no client certificate")]
    NoCertificate,
    /// The harvester aborted with a `decrypt_error`, `bad_certificate` or `unknown_ca` alert: it
    /// does not trust the CA that issued this node's server certificate.
    #[error("harvester refused the node's certificate (its CA is another)")]
    PeerDistrustsCa,
    /// The peer's bytes were not a TLS handshake (malformed or unexpected record).
    #[error("not a TLS handshake")]
    NotTls,
    /// The connection reached end of file before the handshake finished.
    #[error("closed during the TLS handshake")]
    Closed,
    /// Any other TLS or I/O failure (protocol version, cipher suite, reset connection).
    #[error("TLS handshake failed")]
    Other,
}

impl TlsRefusal {
    /// Counter name.
    pub fn counter(self) -> &'static str {
        match self {
            TlsRefusal::ForeignCa => "refused_foreign_ca",
            TlsRefusal::BadCertificate => "refused_bad_certificate",
            TlsRefusal::NoCertificate => "refused_no_certificate",
            TlsRefusal::PeerDistrustsCa => "refused_peer_distrusts_ca",
            TlsRefusal::NotTls => "refused_not_tls",
            TlsRefusal::Closed => "refused_tls_closed",
            TlsRefusal::Other => "refused_tls",
        }
    }
}

/// What a failed TLS handshake says about the peer.
pub fn classify(error: &std::io::Error) -> TlsRefusal {
    let rustls_error = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match rustls_error {
        Some(rustls::Error::InvalidCertificate(
            rustls::CertificateError::UnknownIssuer | rustls::CertificateError::BadSignature,
        )) => TlsRefusal::ForeignCa,
        Some(rustls::Error::InvalidCertificate(_)) => TlsRefusal::BadCertificate,
        Some(rustls::Error::NoCertificatesPresented) => TlsRefusal::NoCertificate,
        Some(rustls::Error::AlertReceived(
            rustls::AlertDescription::DecryptError
            | rustls::AlertDescription::BadCertificate
            | rustls::AlertDescription::UnknownCA,
        )) => TlsRefusal::PeerDistrustsCa,
        Some(rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. }) => {
            TlsRefusal::NotTls
        }
        Some(_) => TlsRefusal::Other,
        None if error.kind() == std::io::ErrorKind::UnexpectedEof => TlsRefusal::Closed,
        None => TlsRefusal::Other,
    }
}
