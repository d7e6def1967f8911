//! A real OpenLDAP `slapd` (Debian's `slapd` and `ldap-utils` packages; tests/run.sh installs
//! them) of its own: its own configuration, database and certificates in a temporary folder,
//! on free ports (plain LDAP with StartTLS, and LDAPS), killed and removed on drop. Every
//! command it runs has a time limit.
//!
//! The directory `dc=zoe,dc=test`: people under `ou=people` (password `<name>-secret`),
//! `cn=zoe-admins` (a `groupOfNames`: alice) and `cn=zoe-guests` (a `posixGroup`: bob), and
//! the service account `cn=zoe,dc=zoe,dc=test` (password `service-secret`).

use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::browser::free_port;
use super::temp_dir;

pub const BASE_DN: &str = "dc=zoe,dc=test";
pub const SERVICE_DN: &str = "cn=zoe,dc=zoe,dc=test";
pub const SERVICE_PASSWORD: &str = "service-secret";
pub const ADMIN_GROUP: &str = "cn=zoe-admins,ou=groups,dc=zoe,dc=test";
pub const GUEST_GROUP: &str = "cn=zoe-guests,ou=groups,dc=zoe,dc=test";
const ROOT_DN: &str = "cn=admin,dc=zoe,dc=test";
const ROOT_PASSWORD: &str = "root-secret";

/// Runs a command to its end within `secs` seconds, with `input` on its standard input; kills
/// it past that. Returns whether it succeeded and what it printed.
pub fn run_with_timeout(cmd: &mut Command, input: &str, secs: u64) -> (bool, String) {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e} (install the slapd, ldap-utils and openssl packages)"));
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input.as_bytes()).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(_status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            return (out.status.success(), text);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return (false, format!("{cmd:?}: no end within {secs} seconds"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Debian's slapd programs, which are in /usr/sbin (not on every PATH).
fn sbin(name: &str) -> PathBuf {
    let p = Path::new("/usr/sbin").join(name);
    if p.exists() {
        p
    } else {
        PathBuf::from(name)
    }
}

fn must(cmd: &mut Command, input: &str) -> String {
    let (ok, out) = run_with_timeout(cmd, input, 20);
    assert!(ok, "{cmd:?} failed: {out}");
    out
}

/// A person of the test directory.
fn person(name: &str, uid_number: Option<u32>) -> String {
    let posix = match uid_number {
        Some(n) => format!("objectClass: posixAccount\nuidNumber: {n}\ngidNumber: {n}\nhomeDirectory: /home/{name}\n"),
        None => String::new(),
    };
    format!(
        "dn: uid={name},ou=people,{BASE_DN}\nobjectClass: inetOrgPerson\n{posix}uid: {name}\ncn: {name}\nsn: {name}\n\
         userPassword: {name}-secret\n\n"
    )
}

/// The test directory's entries.
fn entries() -> String {
    let mut ldif = format!(
        "dn: {BASE_DN}\nobjectClass: dcObject\nobjectClass: organization\ndc: zoe\no: Zoe test\n\n\
         dn: ou=people,{BASE_DN}\nobjectClass: organizationalUnit\nou: people\n\n\
         dn: ou=groups,{BASE_DN}\nobjectClass: organizationalUnit\nou: groups\n\n\
         dn: {SERVICE_DN}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\ncn: zoe\n\
         userPassword: {SERVICE_PASSWORD}\n\n"
    );
    // alice: an administrator; bob: a guest; carol: a user without a uidNumber; mallory: a
    // uidNumber of 0; zoeadmin: a directory entry named as Zoe's local administrator.
    for (name, uid) in [("alice", Some(10_001)), ("bob", Some(10_002)), ("carol", None), ("mallory", Some(0))] {
        ldif.push_str(&person(name, uid));
    }
    ldif.push_str(&person("zoeadmin", Some(10_009)));
    ldif.push_str(&format!(
        "dn: {ADMIN_GROUP}\nobjectClass: groupOfNames\ncn: zoe-admins\nmember: uid=alice,ou=people,{BASE_DN}\n\n\
         dn: {GUEST_GROUP}\nobjectClass: posixGroup\ncn: zoe-guests\ngidNumber: 5000\nmemberUid: bob\n\n"
    ));
    ldif
}

/// A test CA and a certificate of `localhost` and 127.0.0.1 it signed, made with the openssl
/// command: `ca.pem`, `server.pem`, `server.key` in `dir`.
pub fn make_certificates(dir: &Path, ca_name: &str) {
    let ext = "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n";
    super::pki::ca_and_server(dir, ca_name, "2", "keyCertSign", ext);
}

/// A running slapd of the test directory.
pub struct Slapd {
    child: Option<Child>,
    pub dir: PathBuf,
    /// Plain LDAP (and StartTLS).
    pub port: u16,
    /// LDAPS.
    pub tls_port: u16,
}

impl Slapd {
    /// Sets up the directory and starts it.
    pub fn start(tag: &str) -> Slapd {
        let dir = temp_dir(&format!("slapd-{tag}"));
        std::fs::create_dir_all(dir.join("db")).unwrap();
        make_certificates(&dir, "zoe-test-ldap-ca");
        let d = dir.display();
        let config = format!(
            "include /etc/ldap/schema/core.schema\ninclude /etc/ldap/schema/cosine.schema\n\
             include /etc/ldap/schema/nis.schema\ninclude /etc/ldap/schema/inetorgperson.schema\n\
             pidfile {d}/slapd.pid\nargsfile {d}/slapd.args\nmodulepath /usr/lib/ldap\nmoduleload back_mdb\n\
             TLSCACertificateFile {d}/ca.pem\nTLSCertificateFile {d}/server.pem\nTLSCertificateKeyFile {d}/server.key\n\
             database mdb\nsuffix \"{BASE_DN}\"\nrootdn \"{ROOT_DN}\"\nrootpw {ROOT_PASSWORD}\ndirectory {d}/db\n\
             maxsize 16777216\n\
             access to attrs=userPassword by anonymous auth by * none\naccess to * by * read\n"
        );
        std::fs::write(dir.join("slapd.conf"), config).unwrap();
        std::fs::write(dir.join("data.ldif"), entries()).unwrap();
        must(
            Command::new(sbin("slapadd")).arg("-f").arg(dir.join("slapd.conf")).arg("-l").arg(dir.join("data.ldif")),
            "",
        );
        let mut s = Slapd { child: None, dir, port: free_port(), tls_port: free_port() };
        s.resume();
        s
    }

    /// The `ldap://` URL (name `localhost`, which the certificate names).
    pub fn url(&self) -> String {
        format!("ldap://localhost:{}", self.port)
    }

    /// The `ldaps://` URL.
    pub fn tls_url(&self) -> String {
        format!("ldaps://localhost:{}", self.tls_port)
    }

    /// The test CA's certificate.
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// Starts slapd (again) on its ports, and waits until it answers.
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "slapd is running already");
        let urls = format!("ldap://127.0.0.1:{}/ ldaps://127.0.0.1:{}/", self.port, self.tls_port);
        let child = Command::new(sbin("slapd"))
            .arg("-f")
            .arg(self.dir.join("slapd.conf"))
            .args(["-h", &urls, "-d", "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run slapd: {e} (install the slapd package)"));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let (up, out) = run_with_timeout(
                Command::new("ldapwhoami").args(["-x", "-H", &format!("ldap://127.0.0.1:{}", self.port)]),
                "",
                5,
            );
            if up {
                return;
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("slapd exited ({status}): {out}");
            }
            assert!(Instant::now() < deadline, "slapd did not answer within 15 seconds: {out}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops slapd (SIGKILL): the directory is down.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_ok() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Changes the directory with `ldapmodify` as its root.
    pub fn modify(&self, ldif: &str) {
        must(
            Command::new("ldapmodify").args([
                "-x",
                "-o",
                "nettimeout=5",
                "-H",
                &format!("ldap://127.0.0.1:{}", self.port),
                "-D",
                ROOT_DN,
                "-w",
                ROOT_PASSWORD,
            ]),
            ldif,
        );
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
