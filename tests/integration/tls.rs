//! HTTPS: a master with `--tls-cert`/`--tls-key` (a throwaway certificate authority and server
//! certificate made with the `openssl` tool at test time), reached by a client that trusts that
//! authority, refused in plain HTTP and by a client that does not; applications on HTTPS origins
//! of their own with `Secure`, `__Host-` cookies; and the start-up errors.

#![allow(clippy::unwrap_used)] // a test fails by panicking, with the value in the message

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::common::docker::{application, require_docker, service, wait_status, Cleanup};
use crate::common::pki::{ca_and_server, openssl};
use crate::common::{temp_dir, zoe_bin, Master, ADMIN};

/// Files of a throwaway PKI.
struct Pki {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

/// A certificate authority (`ca.pem`) and a server certificate for 127.0.0.1, localhost and the
/// application hosts under `apps.localhost` signed by it (`server.pem`, `server.key`), valid for a day, in `dir`.
fn make_pki(dir: &Path) -> Pki {
    let ext = "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:*.apps.localhost\nbasicConstraints=CA:FALSE\n\
               keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n";
    ca_and_server(dir, "zoe test CA", "1", "keyCertSign,cRLSign", ext);
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
    // Workspace files go through TLS too (not the plain-HTTP way of src/cli/bulk.rs), whole.
    let data: Vec<u8> = (0..5_000_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    std::fs::write(dir.join("up.bin"), &data).unwrap();
    let up = dir.join("up.bin");
    let (code, out, err) = cli(&m.url, Some(&pki.ca), &["ws", "put", up.to_str().unwrap(), "over-tls.bin"]);
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    let back = dir.join("back.bin");
    let (code, out, err) = cli(&m.url, Some(&pki.ca), &["ws", "get", "over-tls.bin", back.to_str().unwrap()]);
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    assert!(std::fs::read(&back).unwrap() == data, "the file came back as it went");
    let (code, _, err) = cli(&m.url, None, &["user-ls"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("certificate is not trusted") && err.contains("--ca-file"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    m.kill();
}

/// `curl -i` with the test CA and extra arguments: (status, head, body).
fn curl(ca: &Path, args: &[&str]) -> (u16, String, String) {
    let out = Command::new("curl")
        .args(["-sS", "-i", "--max-time", "30", "--cacert"])
        .arg(ca)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run curl (needed by this test): {e}"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "curl {args:?}: {}{text}", String::from_utf8_lossy(&out.stderr));
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, head.to_string(), body.to_string())
}

fn header(head: &str, name: &str) -> String {
    head.lines()
        .find_map(|l| {
            l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| panic!("no {name} in {head}"))
}

#[test]
fn applications_get_https_origins_and_secure_host_only_cookies() {
    require_docker();
    let dir = temp_dir("tls-apps");
    let pki = make_pki(&dir);
    let deployment = format!("t{}", std::process::id() % 100_000);
    let _cleanup = Cleanup(deployment.clone());
    let ws = dir.join("ws");
    let (cert, key) = (pki.cert.to_str().unwrap(), pki.key.to_str().unwrap());
    let args =
        ["--tls-cert", cert, "--tls-key", key, "--apps-domain", "apps.localhost", "--deployment-name", &deployment];
    let mut m =
        Master::start_in(&dir.join("state"), &[&args[..], &["--workspace-base-path", ws.to_str().unwrap()]].concat());
    let ca = ureq::tls::Certificate::from_pem(&std::fs::read(&pki.ca).unwrap()).unwrap();
    let tls = ureq::tls::TlsConfig::builder().root_certs(ureq::tls::RootCerts::new_with_certs(&[ca])).build();
    m.agent = ureq::Agent::config_builder().http_status_as_error(false).tls_config(tls).build().into();
    m.create_user("alice", "user", "pa");
    let web = service(
        "web",
        true,
        1,
        0,
        "sh -c 'mkdir -p /tmp/w && echo hello over tls > /tmp/w/index.html && exec httpd -f -p 8080 -h /tmp/w'",
        serde_json::json!([{"name": "web", "protocol": "http", "port_number": 8080, "is_main_endpoint": true, "expose": true}]),
    );
    let id = m.submit(("alice", "pa"), "tls", &application(vec![web]));
    assert_eq!(wait_status(&m, ("alice", "pa"), id, &["running", "error"], 60)["status"], "running");
    let port = m.url.rsplit(':').next().unwrap().to_string();
    let host = format!("8080-web-{id}.apps.localhost");

    // The link on Zoe sends the browser to the application's HTTPS origin...
    let entry = format!("{}/proxy/{id}/web/8080/", m.url);
    let (s, head, _) = curl(&pki.ca, &["-u", "alice:pa", &entry]);
    assert_eq!(s, 303, "{head}");
    let location = header(&head, "location");
    assert!(location.starts_with(&format!("https://{host}:{port}/.zoe/sign-in?ticket=")), "{location}");
    // ...whose certificate is the master's (`*.apps.localhost`), and whose cookie is for that
    // host only, over HTTPS only.
    let resolve = format!("{host}:{port}:127.0.0.1");
    let (s, head, _) = curl(&pki.ca, &["--resolve", &resolve, &location]);
    assert_eq!(s, 303, "{head}");
    let cookie = header(&head, "set-cookie");
    assert!(
        cookie.starts_with("__Host-zoe-app=") && cookie.ends_with("; Path=/; HttpOnly; SameSite=Lax; Secure"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap().to_string();
    let page = format!("https://{host}:{port}/");
    let mut served = (0, String::new());
    for _ in 0..50 {
        let (s, _, body) = curl(&pki.ca, &["--resolve", &resolve, "-H", &format!("Cookie: {pair}"), &page]);
        served = (s, body);
        if s == 200 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(served, (200, "hello over tls\n".to_string()));
    // Without the prefix, the same value is no sign-in over HTTPS.
    let plain = pair.replacen("__Host-zoe-app=", "zoe-app=", 1);
    let (s, _, body) = curl(&pki.ca, &["--resolve", &resolve, "-H", &format!("Cookie: {plain}"), &page]);
    assert!(s == 401 && body.contains("sign_in_required"), "{s} {body}");
    m.kill();
}

#[test]
fn a_sign_in_over_https_sets_a_secure_session_cookie_for_this_host_only() {
    let dir = temp_dir("tls-session");
    let pki = make_pki(&dir);
    let mut m = tls_master(&dir, &pki);
    let login = format!("{}/login", m.url);
    let (s, head, _) = curl(&pki.ca, &["-d", "username=zoeadmin&password=admin-secret&next=/admin/users", &login]);
    assert_eq!(s, 303, "{head}");
    assert_eq!(header(&head, "location"), "/admin/users");
    let cookie = header(&head, "set-cookie");
    let (pair, attributes) = cookie.split_once(';').unwrap();
    assert!(pair.starts_with("__Host-zoe-session=") && pair.len() == "__Host-zoe-session=".len() + 43, "{cookie}");
    assert_eq!(attributes, " Path=/; HttpOnly; SameSite=Lax; Secure", "host-only, over HTTPS only");
    let page = format!("{}/admin/users", m.url);
    let (s, _, body) = curl(&pki.ca, &["-H", &format!("Cookie: {pair}"), &page]);
    assert_eq!(s, 200, "{body}");
    assert!(body.contains("id=\"sign-out\""), "{body}");
    // Without the prefix, the same value is no session over HTTPS.
    let plain = pair.replacen("__Host-zoe-session=", "zoe-session=", 1);
    let (s, head, _) = curl(&pki.ca, &["-H", &format!("Cookie: {plain}"), &page]);
    assert_eq!(s, 303, "{head}");
    assert_eq!(header(&head, "location"), "/login?next=/admin/users");
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

/// `openssl req -x509` in `dir`: a self-signed certificate `<name>.pem` and its key
/// `<name>.key`, valid for a day, with `extra` arguments (extensions).
fn self_signed(dir: &Path, name: &str, extra: &[&str]) -> (PathBuf, PathBuf) {
    let (cert, key) = (format!("{name}.pem"), format!("{name}.key"));
    let mut args = vec!["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    args.extend(["-days", "1", "-keyout", &key, "-out", &cert]);
    args.extend(extra);
    openssl(dir, &args);
    (dir.join(cert), dir.join(key))
}

#[test]
fn the_client_pins_a_self_signed_certificate_whether_or_not_it_says_it_is_a_ca() {
    let dir = temp_dir("tls-self-signed");
    // The README's command: an end-entity certificate with the master's names.
    let readme = self_signed(
        &dir,
        "readme",
        &[
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
            "-addext",
            "keyUsage=critical,digitalSignature",
            "-addext",
            "extendedKeyUsage=serverAuth",
        ],
    );
    // The usual command: a CA certificate (CA:TRUE, openssl's default) without any name.
    let usual = self_signed(&dir, "usual", &["-subj", "/CN=zoe"]);
    // Another one, which a client pinning the master's must refuse.
    let other = self_signed(&dir, "other", &["-subj", "/CN=localhost"]);
    for (i, (cert, key)) in [readme, usual].iter().enumerate() {
        let (c, k) = (cert.to_str().unwrap(), key.to_str().unwrap());
        let mut m =
            Master::start_in(&dir.join(format!("state-{i}")), &["--no-docker", "--tls-cert", c, "--tls-key", k]);
        let (code, out, err) = cli(&m.url, Some(cert), &["user-ls"]);
        assert_eq!(code, 0, "{c}: {out}{err}");
        assert!(out.contains("zoeadmin"), "{out}");
        let (code, _, err) = cli(&m.url, Some(&other.0), &["user-ls"]);
        assert_eq!(code, 3, "{c}: {err}");
        assert!(err.contains("certificate is not trusted"), "{err}");
        m.kill();
    }
}

#[test]
fn a_key_file_everyone_can_read_is_refused_unless_insisted_on_and_a_group_readable_one_is_warned_about() {
    use std::os::unix::fs::PermissionsExt;
    let dir = temp_dir("tls-key-mode");
    let pki = make_pki(&dir);
    let (cert, key) = (pki.cert.to_str().unwrap(), pki.key.to_str().unwrap());
    let args = ["--no-docker", "--tls-cert", cert, "--tls-key", key];
    std::fs::set_permissions(&pki.key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let Err(err) = Master::try_start_in(&dir.join("state"), &args) else {
        panic!("the master started with a key file everyone can read");
    };
    let lines: Vec<&str> = err.lines().skip(1).filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(lines[0].contains("can be read by every user of this host (mode 0644)"), "{err}");
    assert!(lines[0].contains(&format!("chmod 600 {key}")) && lines[0].contains("--tls-key-readable"), "{err}");
    assert!(!dir.join("state").join("checkpoints").exists(), "nothing written before the refusal");
    // Insisting starts it, with a loud warning.
    let mut m = Master::start_in(&dir.join("state"), &[&args[..], &["--tls-key-readable"]].concat());
    assert!(m.log_text().contains("!!! the TLS key file") && m.log_text().contains("used anyway"), "{}", m.log_text());
    m.kill();
    // Readable by its group (Debian's ssl-cert convention): used, with a warning.
    std::fs::set_permissions(&pki.key, std::fs::Permissions::from_mode(0o640)).unwrap();
    let mut m = Master::start_in(&dir.join("state"), &args);
    assert!(m.log_text().contains("can be read by its group (mode 0640)"), "{}", m.log_text());
    m.kill();
    // Private: not a word.
    std::fs::set_permissions(&pki.key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut m = Master::start_in(&dir.join("state"), &args);
    assert!(!m.log_text().contains("TLS key file"), "{}", m.log_text());
    m.kill();
}

#[test]
fn pem_and_key_problems_are_told_as_sentences() {
    let dir = temp_dir("tls-pem");
    let pki = make_pki(&dir);
    let start = |cert: &Path, key: &Path| {
        let args = ["--no-docker", "--tls-cert", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap()];
        match Master::try_start_in(&dir.join("state"), &args) {
            Ok(_) => panic!("the master started with {cert:?} and {key:?}"),
            Err(e) => e,
        }
    };
    // A certificate cut short: no list of byte values, a sentence.
    let text = std::fs::read_to_string(&pki.cert).unwrap();
    let cut = dir.join("cut.pem");
    std::fs::write(&cut, &text[..text.len() / 2]).unwrap();
    let err = start(&cut, &pki.key);
    assert!(err.contains("the file ends before its END line (-----END CERTIFICATE-----)"), "{err}");
    assert!(!err.contains("[45, 45"), "{err}");
    // An encrypted key, and the two files swapped.
    openssl(&dir, &["pkey", "-in", "server.key", "-aes256", "-passout", "pass:secret", "-out", "enc.key"]);
    let err = start(&pki.cert, &dir.join("enc.key"));
    assert!(err.contains("encrypted keys are not supported"), "{err}");
    let err = start(&pki.key, &pki.cert);
    assert!(err.contains("holds a private key, not a certificate"), "{err}");
    // The client says the same of its --ca-file (a usage error).
    let (code, _, err) = cli("https://127.0.0.1:9", Some(&cut), &["user-ls"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("the file ends before its END line"), "{err}");
}
