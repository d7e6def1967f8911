//! HTTPS: a master with `--tls-cert`/`--tls-key` (a throwaway certificate authority and server
//! certificate made with the `openssl` tool at test time), reached by a client that trusts that
//! authority, refused in plain HTTP and by a client that does not; and the start-up errors.

#![allow(clippy::unwrap_used)] // a test fails by panicking, with the value in the message

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::common::{temp_dir, zoe_bin, Master, ADMIN};

/// Runs `openssl` in `dir`; panics with its output when it fails.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run openssl (needed by this test): {e}"));
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Files of a throwaway PKI.
struct Pki {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

/// A certificate authority (`ca.pem`) and a server certificate for 127.0.0.1 and localhost
/// signed by it (`server.pem`, `server.key`), valid for a day, in `dir`.
fn make_pki(dir: &Path) -> Pki {
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    let mut ca = vec!["req", "-x509", "-days", "1", "-subj", "/CN=zoe test CA", "-keyout", "ca.key", "-out", "ca.pem"];
    ca.extend(ec);
    ca.extend(["-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"]);
    openssl(dir, &ca);
    let mut csr = vec!["req", "-new", "-subj", "/CN=localhost", "-keyout", "server.key", "-out", "server.csr"];
    csr.extend(ec);
    openssl(dir, &csr);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
         keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            "server.ext",
            "-out",
            "server.pem",
        ],
    );
    Pki { ca: dir.join("ca.pem"), cert: dir.join("server.pem"), key: dir.join("server.key") }
}

/// A master serving HTTPS with `pki`'s certificate (no Docker).
fn tls_master(dir: &Path, pki: &Pki) -> Master {
    let (cert, key) = (pki.cert.to_str().unwrap(), pki.key.to_str().unwrap());
    Master::start_in(&dir.join("state"), &["--no-docker", "--tls-cert", cert, "--tls-key", key])
}

/// Runs the client; returns its exit code and stderr.
fn cli(url: &str, ca_file: Option<&Path>, args: &[&str]) -> (i32, String, String) {
    let mut cmd = Command::new(zoe_bin());
    cmd.args(["--url", url, "--user", ADMIN.0, "--password", ADMIN.1]).env_remove("ZOE_CA_FILE");
    if let Some(ca) = ca_file {
        cmd.arg("--ca-file").arg(ca);
    }
    let out = cmd.args(args).output().unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

#[test]
fn https_with_the_ca_trusted_works_and_plain_http_or_untrusted_does_not() {
    let dir = temp_dir("tls");
    let pki = make_pki(&dir);
    let mut m = tls_master(&dir, &pki);
    assert!(m.url.starts_with("https://127.0.0.1:"), "{}", m.url);
    let port = m.url.rsplit(':').next().unwrap().to_string();

    // (a) HTTPS, trusting the test CA.
    let ca = ureq::tls::Certificate::from_pem(&std::fs::read(&pki.ca).unwrap()).unwrap();
    let tls = ureq::tls::TlsConfig::builder().root_certs(ureq::tls::RootCerts::new_with_certs(&[ca])).build();
    m.agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .tls_config(tls)
        .build()
        .into();
    let (status, info) = m.get("/api/0.6/info", ADMIN);
    assert_eq!(status, 200, "{info}");
    assert_eq!(info["api_version"], "0.6");

    // (b) Plain HTTP on the same port gets no answer.
    let plain = ureq::Agent::config_builder().timeout_global(Some(Duration::from_secs(10))).build();
    let plain: ureq::Agent = plain.into();
    let res = plain.get(format!("http://127.0.0.1:{port}/api/0.6/info")).call();
    assert!(res.is_err(), "plain HTTP to the HTTPS port answered: {:?}", res.map(|r| r.status()));

    // (c) The client, with and without the CA.
    let (code, out, err) = cli(&m.url, Some(&pki.ca), &["user-ls"]);
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    assert!(out.contains("zoeadmin"), "{out}");
    let (code, _, err) = cli(&m.url, None, &["user-ls"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("certificate is not trusted") && err.contains("--ca-file"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    m.kill();
}

#[test]
fn a_missing_or_lone_key_stops_the_master_with_one_line() {
    let dir = temp_dir("tls-bad");
    let pki = make_pki(&dir);
    let missing = dir.join("missing.key");
    let (cert, missing_s) = (pki.cert.to_str().unwrap(), missing.to_str().unwrap());
    let Err(err) =
        Master::try_start_in(&dir.join("state"), &["--no-docker", "--tls-cert", cert, "--tls-key", missing_s])
    else {
        panic!("the master started without its key");
    };
    let lines: Vec<&str> = err.lines().skip(1).filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(lines[0].starts_with("zoe master: ") && lines[0].contains(missing_s), "{err}");
    // Nothing was written to the state directory.
    assert!(!dir.join("state").join("checkpoints").exists(), "{err}");

    // One of the two alone is refused too.
    let err = Master::try_start_in(&dir.join("state"), &["--no-docker", "--tls-cert", cert]).err().unwrap();
    assert!(err.contains("--tls-cert needs --tls-key"), "{err}");
}
