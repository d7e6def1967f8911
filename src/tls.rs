//! TLS: the master's certificate and key (`--tls-cert`, `--tls-key`) and the client's trusted
//! certificates (`--ca-file`), read from PEM files. rustls with the `ring` crypto provider only.
//!
//! - PEM problems are told as sentences ("the file ends before its END line"), and a key file
//!   that holds an encrypted key, or a certificate, says so.
//! - The master refuses a key file that every user of its host can read, unless told to insist
//!   (`tls-key-readable`), and warns about one its group can read (Debian's `ssl-cert` group
//!   convention).
//! - The client trusts, with `--ca-file`, the authorities in that file (a private CA) and also
//!   each certificate in it as itself: a server that presents exactly one of them is trusted
//!   (pinning), so a self-signed certificate works whether or not it says it is a CA (what
//!   `openssl req -x509` makes by default).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::{self, PemObject, SectionKind};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

/// The largest PEM file read (a certificate chain takes a few kilobytes).
const MAX_PEM_BYTES: u64 = 1 << 20;

/// The crypto provider of the master and the client.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// What went wrong with a PEM file, as a sentence.
fn pem_error(e: pem::Error) -> String {
    match e {
        pem::Error::Io(io) => io.to_string(),
        pem::Error::MissingSectionEnd { end_marker } => {
            let marker = String::from_utf8_lossy(&end_marker).trim().to_string();
            let line = if marker.starts_with("-----") { marker } else { format!("-----END {marker}-----") };
            format!("the file ends before its END line ({line}); it was cut short, copy it again whole")
        }
        pem::Error::IllegalSectionStart { line } => format!(
            "a BEGIN line is malformed ({:?}); it should read like -----BEGIN CERTIFICATE-----",
            crate::escape::controls(String::from_utf8_lossy(&line).trim())
        ),
        pem::Error::Base64Decode(why) => {
            format!("the text between a BEGIN and an END line is not valid base64 ({why}); the file is damaged")
        }
        pem::Error::SectionTooLarge => "a section is larger than 256 MB; this is not a PEM file".to_string(),
        pem::Error::NoItemsFound => "there is nothing in PEM form in it".to_string(),
        other => format!("it is not a valid PEM file ({other})"),
    }
}

/// The text of the PEM file `path` (at most [`MAX_PEM_BYTES`]).
fn read_pem(path: &Path) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    file.take(MAX_PEM_BYTES + 1).read_to_end(&mut bytes).map_err(|e| e.to_string())?;
    if bytes.len() as u64 > MAX_PEM_BYTES {
        return Err(format!("it is larger than {} KiB; this is not a PEM file", MAX_PEM_BYTES >> 10));
    }
    Ok(bytes)
}

/// The sections of a PEM text.
fn sections(text: &[u8]) -> Result<Vec<(SectionKind, Vec<u8>)>, String> {
    <(SectionKind, Vec<u8>)>::pem_slice_iter(text).collect::<Result<Vec<_>, _>>().map_err(pem_error)
}

/// Whether `text` contains `needle`.
fn contains(text: &[u8], needle: &str) -> bool {
    text.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// Whether the PEM text has a section with this label.
fn has_label(text: &[u8], label: &str) -> bool {
    contains(text, &format!("-----BEGIN {label}-----"))
}

fn is_key(kind: SectionKind) -> bool {
    matches!(kind, SectionKind::PrivateKey | SectionKind::RsaPrivateKey | SectionKind::EcPrivateKey)
}

/// Every certificate in the PEM file `path` (at least one).
pub fn load_certs(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let fail = |why: String| format!("cannot use {what} {}: {why}", path.display());
    let sections = read_pem(path).and_then(|text| sections(&text)).map_err(fail)?;
    let certs: Vec<CertificateDer<'static>> = sections
        .iter()
        .filter(|(kind, _)| *kind == SectionKind::Certificate)
        .map(|(_, der)| CertificateDer::from(der.clone()))
        .collect();
    if certs.is_empty() {
        return Err(fail(if sections.iter().any(|(k, _)| is_key(*k)) {
            "it holds a private key, not a certificate (were the certificate and the key swapped?)".into()
        } else {
            "there is no certificate (-----BEGIN CERTIFICATE-----) in it".into()
        }));
    }
    Ok(certs)
}

/// The private key in the PEM file `path` (PKCS#8, PKCS#1 or SEC1, not encrypted).
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let fail = |why: String| format!("cannot use the TLS key file {}: {why}", path.display());
    let text = read_pem(path).map_err(fail)?;
    if has_label(&text, "ENCRYPTED PRIVATE KEY") || contains(&text, "Proc-Type: 4,ENCRYPTED") {
        return Err(fail(
            "encrypted keys are not supported; write it decrypted with `openssl pkey -in KEY -out KEY.plain` and \
             keep that file private (chmod 600)"
                .into(),
        ));
    }
    let sections = sections(&text).map_err(fail)?;
    if let Some(key) = sections.into_iter().find_map(|(kind, der)| PrivateKeyDer::from_pem(kind, der)) {
        return Ok(key);
    }
    Err(fail(if has_label(&text, "CERTIFICATE") {
        "it holds a certificate, not a private key (were the certificate and the key swapped?)".into()
    } else {
        "there is no private key (-----BEGIN PRIVATE KEY-----) in it".into()
    }))
}

/// Who may read the key file besides its owner, from its mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyReaders {
    /// Its owner alone (or root).
    Owner,
    /// Its group too (as Debian's `ssl-cert` group convention has it: 0640).
    Group,
    /// Every user of the host.
    Everyone,
}

/// Who may read a file of this mode.
pub fn key_readers(mode: u32) -> KeyReaders {
    if mode & 0o004 != 0 {
        KeyReaders::Everyone
    } else if mode & 0o040 != 0 {
        KeyReaders::Group
    } else {
        KeyReaders::Owner
    }
}

/// Checks who may read the master's key file: refused when every user may, unless `insist`
/// (then a loud warning); a warning when its group may.
fn check_key_mode(key: &Path, insist: bool) -> Result<(), String> {
    let mode = std::fs::metadata(key)
        .map_err(|e| format!("cannot use the TLS key file {}: {e}", key.display()))?
        .permissions()
        .mode();
    let shown = format!("{:04o}", mode & 0o7777);
    match key_readers(mode) {
        KeyReaders::Owner => {}
        KeyReaders::Group => tracing::warn!(
            "!!! the TLS key file {} can be read by its group (mode {shown}): everyone in that group can \
             impersonate this master; keep only trusted accounts in it, or `chmod 600` it !!!",
            key.display()
        ),
        KeyReaders::Everyone if insist => tracing::warn!(
            "!!! the TLS key file {} can be read by every user of this host (mode {shown}): any of them can \
             impersonate this master; used anyway (--tls-key-readable) !!!",
            key.display()
        ),
        KeyReaders::Everyone => {
            return Err(format!(
                "the TLS key file {} can be read by every user of this host (mode {shown}), so any of them could \
                 impersonate this master: make it private with `chmod 600 {}` (or 640 with a trusted group), or \
                 start with --tls-key-readable to use it anyway",
                key.display(),
                key.display()
            ))
        }
    }
    Ok(())
}

/// The master's TLS settings from its certificate chain file and its key file; `insist` uses a
/// key file that every user can read.
pub fn server_config(cert: &Path, key: &Path, insist: bool) -> Result<rustls::ServerConfig, String> {
    let certs = load_certs(cert, "the TLS certificate file")?;
    let key_der = load_key(key)?;
    check_key_mode(key, insist)?;
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

/// Trusts a server that presents exactly one of `pinned` as its certificate, or else one that
/// the authorities of `signed` vouch for (names, dates, chain: webpki's usual checks). The
/// handshake's signatures are always checked, so the server must hold the certificate's key.
#[derive(Debug)]
pub struct PinnedOrSigned {
    pinned: Vec<CertificateDer<'static>>,
    signed: Option<Arc<WebPkiServerVerifier>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl PinnedOrSigned {
    /// Pins every certificate of `certs` and trusts those that can be authorities as such.
    pub fn new(certs: Vec<CertificateDer<'static>>) -> PinnedOrSigned {
        let provider = provider();
        let mut roots = rustls::RootCertStore::empty();
        roots.add_parsable_certificates(certs.iter().cloned());
        let signed = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone()).build().ok();
        PinnedOrSigned { pinned: certs, signed, algorithms: provider.signature_verification_algorithms }
    }
}

/// The handshake's signature checks of a [`ServerCertVerifier`], one per TLS version: each is
/// rustls's own function of the same name, with the verifier's algorithms.
macro_rules! signature_checks {
    ($($check:ident),+) => {$(
        fn $check(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::$check(message, cert, dss, &self.algorithms)
        }
    )+};
}

impl ServerCertVerifier for PinnedOrSigned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self.pinned.iter().any(|p| p.as_ref() == end_entity.as_ref()) {
            return Ok(ServerCertVerified::assertion());
        }
        match &self.signed {
            Some(v) => v.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now),
            None => Err(rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)),
        }
    }

    signature_checks!(verify_tls12_signature, verify_tls13_signature);

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The client's rustls settings for `--ca-file`'s certificates ([`PinnedOrSigned`]).
pub fn client_config(certs: Vec<CertificateDer<'static>>) -> Result<Arc<rustls::ClientConfig>, String> {
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS set-up failed: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedOrSigned::new(certs)))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// ureq's TLS step for a client with its own rustls settings (ureq builds its own from its
/// root certificates, which cannot pin a certificate): wraps the TCP connection of an
/// `https://` request, as ureq's own rustls connector does.
pub mod connector {
    use std::io::{Read, Write};
    use std::sync::Arc;

    use rustls::pki_types::ServerName;
    use rustls::{ClientConnection, StreamOwned};
    use ureq::unversioned::transport::{
        Buffers, ConnectionDetails, Connector, Either, LazyBuffers, NextTimeout, Transport, TransportAdapter,
    };

    /// Connects with `config`.
    #[derive(Debug)]
    pub struct RustlsWith(pub Arc<rustls::ClientConfig>);

    impl<In: Transport> Connector<In> for RustlsWith {
        type Out = Either<In, TlsTransport>;

        fn connect(&self, details: &ConnectionDetails, chained: Option<In>) -> Result<Option<Self::Out>, ureq::Error> {
            let Some(transport) = chained else { return Ok(None) };
            if !details.needs_tls() || transport.is_tls() {
                return Ok(Some(Either::A(transport)));
            }
            let host = details.uri.host().unwrap_or_default().trim_start_matches('[').trim_end_matches(']');
            let name = ServerName::try_from(host.to_string()).map_err(|_| ureq::Error::Tls("invalid server name"))?;
            let mut conn = ClientConnection::new(self.0.clone(), name)?;
            let mut sock = TransportAdapter::new(transport.boxed(), details.current_time.clone());
            sock.set_timeout(details.timeout);
            conn.complete_io(&mut sock)?;
            let buffers = LazyBuffers::new(details.config.input_buffer_size(), details.config.output_buffer_size());
            Ok(Some(Either::B(TlsTransport { buffers, stream: StreamOwned { conn, sock } })))
        }
    }

    /// An open TLS connection.
    pub struct TlsTransport {
        buffers: LazyBuffers,
        stream: StreamOwned<ClientConnection, TransportAdapter>,
    }

    impl std::fmt::Debug for TlsTransport {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("TlsTransport").finish()
        }
    }

    impl Transport for TlsTransport {
        fn buffers(&mut self) -> &mut dyn Buffers {
            &mut self.buffers
        }

        fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
            self.stream.get_mut().set_timeout(timeout);
            let output = &self.buffers.output()[..amount];
            self.stream.write_all(output)?;
            Ok(())
        }

        fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
            self.stream.get_mut().set_timeout(timeout);
            let input = self.buffers.input_append_buf();
            let amount = self.stream.read(input)?;
            self.buffers.input_appended(amount);
            Ok(amount > 0)
        }

        fn is_open(&mut self) -> bool {
            self.stream.get_mut().get_mut().is_open()
        }

        fn is_tls(&self) -> bool {
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn who_may_read_a_key_file() {
        assert_eq!(key_readers(0o100600), KeyReaders::Owner);
        assert_eq!(key_readers(0o400), KeyReaders::Owner);
        assert_eq!(key_readers(0o640), KeyReaders::Group);
        assert_eq!(key_readers(0o644), KeyReaders::Everyone);
        assert_eq!(key_readers(0o604), KeyReaders::Everyone);
    }

    fn pem_file(name: &str, text: &str) -> std::path::PathBuf {
        let path = std::env::temp_dir().join(format!("zoe-tls-{}-{name}.pem", std::process::id()));
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn pem_problems_are_sentences() {
        let cut = pem_file("cut", "-----BEGIN CERTIFICATE-----\nMIIB\n");
        let e = load_certs(&cut, "the CA file").unwrap_err();
        assert!(
            e.ends_with(
                "the file ends before its END line (-----END CERTIFICATE-----); it was cut short, copy it again whole"
            ),
            "{e}"
        );
        let e = load_key(&cut).unwrap_err();
        assert!(e.contains("the file ends before its END line"), "{e}");
        let bad = pem_file("b64", "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n");
        assert!(load_certs(&bad, "x").unwrap_err().contains("is not valid base64"));
        let enc = pem_file("enc", "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n");
        assert!(load_key(&enc).unwrap_err().contains("encrypted keys are not supported"));
        let old = pem_file(
            "old-enc",
            "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nMIIB\n-----END RSA PRIVATE KEY-----\n",
        );
        assert!(load_key(&old).unwrap_err().contains("encrypted keys are not supported"));
        let cert_only = pem_file("cert", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
        assert!(load_key(&cert_only).unwrap_err().contains("holds a certificate, not a private key"));
        let key_only = pem_file("key", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n");
        assert!(load_certs(&key_only, "x").unwrap_err().contains("holds a private key, not a certificate"));
        let empty = pem_file("empty", "hello\n");
        assert!(load_certs(&empty, "x").unwrap_err().contains("there is no certificate"));
        for p in [cut, bad, enc, old, cert_only, key_only, empty] {
            std::fs::remove_file(p).unwrap();
        }
        // No byte lists: nothing of `[80, 82, 73, ...]`.
        for marker in [&b"PRIVATE KEY"[..], b"-----END PRIVATE KEY-----"] {
            let e = pem_error(pem::Error::MissingSectionEnd { end_marker: marker.to_vec() });
            assert!(!e.contains('[') && e.contains("(-----END PRIVATE KEY-----)"), "{e}");
        }
    }
}
