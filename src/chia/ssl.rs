//! Chia's private-CA certificates, shared by the harvester (a TLS client) and the farmer
//! endpoint (a TLS server): reading PEM files, issuing a node certificate from a CA as chia's
//! `generate_ca_signed_cert` does, and creating a new private CA.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};

/// Why the TLS identity or configuration could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A certificate or key file is missing or unreadable.
    #[error("cannot read {path}: {reason}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The CA certificate is not an X.509 certificate.
    #[error("bad CA certificate {path}: {reason}")]
    BadCa {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A certificate could not be issued from the CA key.
    #[error("cannot issue a certificate: {0}")]
    Issue(#[from] rcgen::Error),
    /// rustls refused the certificates or key.
    #[error("bad TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// A TLS client's trust anchor, certificate and key.
#[derive(Debug)]
pub struct ClientIdentity {
    /// The only CA trusted for the server.
    pub ca: CertificateDer<'static>,
    /// The certificate presented.
    pub cert: CertificateDer<'static>,
    /// Its key.
    pub key: PrivateKeyDer<'static>,
}

/// Writes a certificate and its key as PEM files (the key readable by its owner only),
/// creating their directory.
pub fn write_pem_pair(
    crt_path: &Path,
    key_path: &Path,
    cert: &CertificateDer<'_>,
    key: &PrivateKeyDer<'_>,
) -> Result<(), TlsError> {
    let write_err = |path: &Path, e: std::io::Error| TlsError::Read {
        path: path.to_owned(),
        reason: format!("cannot write: {e}"),
    };
    if let Some(dir) = crt_path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| write_err(dir, e))?;
    }
    let label = match key {
        PrivateKeyDer::Pkcs1(_) => "RSA PRIVATE KEY",
        PrivateKeyDer::Sec1(_) => "EC PRIVATE KEY",
        _ => "PRIVATE KEY",
    };
    std::fs::write(crt_path, pem("CERTIFICATE", cert.as_ref()))
        .map_err(|e| write_err(crt_path, e))?;
    write_private(key_path, pem(label, key.secret_der()).as_bytes())
        .map_err(|e| write_err(key_path, e))
}

fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// A PEM certificate.
pub fn read_cert(path: &Path) -> Result<CertificateDer<'static>, TlsError> {
    CertificateDer::from_pem_file(path).map_err(|e| TlsError::Read {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

/// A PEM private key.
pub fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| TlsError::Read {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

/// A text file.
pub fn read_text(path: &Path) -> Result<String, TlsError> {
    std::fs::read_to_string(path).map_err(|e| TlsError::Read {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

/// Issues a node certificate (harvester or farmer) signed by the CA (subject and SAN as chia's
/// `generate_ca_signed_cert`: CN "Chia", O "Chia", OU "Organic Farming Division", DNS "chia.net").
pub fn issue_node_cert(
    ca_path: &Path,
    ca_key_pem: &str,
    ca: &CertificateDer<'_>,
) -> Result<(CertificateDer<'static>, PrivateKeyDer<'static>), TlsError> {
    let bad_ca = |reason: String| TlsError::BadCa {
        path: ca_path.to_owned(),
        reason,
    };
    let (_, parsed) = x509_parser::parse_x509_certificate(ca).map_err(|e| bad_ca(e.to_string()))?;
    // The issuer name must be the CA's subject, attribute for attribute.
    let mut ca_name = rcgen::DistinguishedName::new();
    for attr in parsed.subject().iter_attributes() {
        let oid: Vec<u64> = attr
            .attr_type()
            .iter()
            .ok_or_else(|| bad_ca("subject attribute with an oversize OID".into()))?
            .collect();
        let value = attr
            .as_str()
            .map_err(|e| bad_ca(format!("subject attribute: {e}")))?;
        ca_name.push(
            rcgen::DnType::from_oid(&oid),
            rcgen::DnValue::Utf8String(value.to_owned()),
        );
    }
    let ca_key = rcgen::KeyPair::from_pem(ca_key_pem)?;
    let mut ca_params = rcgen::CertificateParams::default();
    ca_params.distinguished_name = ca_name;
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let issuer = ca_params.self_signed(&ca_key)?;

    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(vec!["chia.net".to_owned()])?;
    let mut name = rcgen::DistinguishedName::new();
    name.push(rcgen::DnType::CommonName, "Chia");
    name.push(rcgen::DnType::OrganizationName, "Chia");
    name.push(
        rcgen::DnType::OrganizationalUnitName,
        "Organic Farming Division",
    );
    params.distinguished_name = name;
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2100, 8, 2);
    // The CA's key identifier (if any) is computed another way than rcgen's; a mismatched
    // authority key identifier would break the chain in OpenSSL, and chia sets none.
    params.use_authority_key_identifier_extension = false;
    let cert = params.signed_by(&key, &issuer, &ca_key)?;
    Ok((
        cert.der().clone(),
        PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    ))
}

/// The crypto provider used throughout (ring).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A new private CA (ECDSA P-256, self-signed, subject as chia's `make_ca_cert`: CN "Chia CA",
/// O "Chia", OU "Organic Farming Division"), written as `private_ca.crt` and `private_ca.key`
/// in `dir` (created; the key file readable by its owner only). `chia init -c DIR` copies it
/// into a chia root and issues that root's certificates from it.
pub fn create_ca(dir: &Path) -> Result<(), TlsError> {
    let write_err = |path: &Path, e: std::io::Error| TlsError::Read {
        path: path.to_owned(),
        reason: format!("cannot write: {e}"),
    };
    std::fs::create_dir_all(dir).map_err(|e| write_err(dir, e))?;
    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::default();
    let mut name = rcgen::DistinguishedName::new();
    name.push(rcgen::DnType::CommonName, "Chia CA");
    name.push(rcgen::DnType::OrganizationName, "Chia");
    name.push(
        rcgen::DnType::OrganizationalUnitName,
        "Organic Farming Division",
    );
    params.distinguished_name = name;
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2100, 8, 2);
    let cert = params.self_signed(&key)?;
    let (crt_path, key_path) = (dir.join("private_ca.crt"), dir.join("private_ca.key"));
    std::fs::write(&crt_path, cert.pem()).map_err(|e| write_err(&crt_path, e))?;
    write_private(&key_path, key.serialize_pem().as_bytes())
        .map_err(|e| write_err(&key_path, e))?;
    Ok(())
}

/// Writes a file only its owner can read (on Unix).
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(bytes)
}

/// A TLS 1.3 client configuration presenting `cert` and trusting only `ca`, checking no host
/// name (chia's `ssl_context_for_client`: `check_hostname = False`, `CERT_REQUIRED`).
pub fn client_config(
    ca: &CertificateDer<'static>,
    cert: &CertificateDer<'static>,
    key: &PrivateKeyDer<'static>,
) -> Result<rustls::ClientConfig, TlsError> {
    let provider = provider();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone())?;
    let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| rustls::Error::General(e.to_string()))?;
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(CaOnlyVerifier { inner }))
        .with_client_auth_cert(vec![cert.clone()], key.clone_key())?;
    Ok(config)
}

/// Checks the peer's chain to the CA and ignores the name, as chia does
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
