//! Chia's private-CA certificates, shared by the harvester (a TLS client) and the farmer
//! endpoint (a TLS server): reading PEM files, issuing a node certificate from a CA as chia's
//! `generate_ca_signed_cert` does, and creating a new private CA.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

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
