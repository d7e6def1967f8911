//! Throwaway certificate authorities for the TLS tests (of the master and of the LDAP server),
//! made with the `openssl` command.

use std::path::Path;
use std::process::Command;

/// Runs `openssl` in `dir`; panics with its output when it fails.
pub fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run openssl (needed by this test): {e}"));
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A CA `/CN=<ca_name>` (`ca.pem`, `ca.key`, with the key usages `critical,<ca_key_usage>`) and a
/// server certificate for `/CN=localhost` it signed (`server.pem`, `server.key`) with the
/// extensions `server_ext`, both EC keys valid for `days` days, in `dir`.
pub fn ca_and_server(dir: &Path, ca_name: &str, days: &str, ca_key_usage: &str, server_ext: &str) {
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    let subject = format!("/CN={ca_name}");
    let usage = format!("keyUsage=critical,{ca_key_usage}");
    let mut ca = vec!["req", "-x509", "-days", days, "-subj", &subject, "-keyout", "ca.key", "-out", "ca.pem"];
    ca.extend(ec);
    ca.extend(["-addext", "basicConstraints=critical,CA:TRUE", "-addext", &usage]);
    openssl(dir, &ca);
    let mut csr = vec!["req", "-new", "-subj", "/CN=localhost", "-keyout", "server.key", "-out", "server.csr"];
    csr.extend(ec);
    openssl(dir, &csr);
    std::fs::write(dir.join("server.ext"), server_ext).unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-days",
            days,
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-extfile",
            "server.ext",
            "-out",
            "server.pem",
        ],
    );
}
