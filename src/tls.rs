//! TLS: the master's certificate and key (`--tls-cert`, `--tls-key`) and the client's extra
//! certificate authority (`--ca-file`), read from PEM files. rustls with the `ring` crypto
//! provider only.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The crypto provider of the master and the client.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// What went wrong with a PEM file, in a few words.
fn pem_error(e: pem::Error) -> String {
    match e {
        pem::Error::Io(io) => io.to_string(),
        other => format!("not a valid PEM file ({other})"),
    }
}

/// Every certificate in the PEM file `path` (at least one).
pub fn load_certs(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let fail = |why: String| format!("cannot use {what} {}: {why}", path.display());
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| fail(pem_error(e)))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(pem_error(e)))?;
    if certs.is_empty() {
        return Err(fail("no certificate (-----BEGIN CERTIFICATE-----) in it".into()));
    }
    Ok(certs)
}

/// The private key in the PEM file `path` (PKCS#8, PKCS#1 or SEC1).
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| {
        let why = match e {
            pem::Error::NoItemsFound => "no private key (-----BEGIN PRIVATE KEY-----) in it".to_string(),
            other => pem_error(other),
        };
        format!("cannot use the TLS key file {}: {why}", path.display())
    })
}

/// The master's TLS settings from its certificate chain file and its key file.
pub fn server_config(cert: &Path, key: &Path) -> Result<rustls::ServerConfig, String> {
    let certs = load_certs(cert, "the TLS certificate file")?;
    let key_der = load_key(key)?;
    rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS set-up failed: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map_err(|e| {
            format!("cannot use the TLS key file {} with the certificate file {}: {e}", key.display(), cert.display())
        })
}

/// Whether an I/O error from a TLS connection is rustls refusing the server's certificate; the
/// reason when it is.
pub fn certificate_error(e: &std::io::Error) -> Option<String> {
    let inner = e.get_ref()?.downcast_ref::<rustls::Error>()?;
    match inner {
        rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented => Some(inner.to_string()),
        _ => None,
    }
}
