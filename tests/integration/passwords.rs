//! New passwords: at least `min-password-length` characters, and off the command line.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::json;

use crate::common::{temp_dir, zoe_bin, Master, ADMIN};

/// Runs the client as `who` with `stdin`; returns whether it succeeded, and what it printed.
fn client(m: &Master, who: (&str, &str), args: &[&str], stdin: &str) -> (bool, String) {
    let mut child = Command::new(zoe_bin())
        .args(args)
        .env("ZOE_URL", &m.url)
        .env("ZOE_USER", who.0)
        .env("ZOE_PASS", who.1)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn short_passwords_are_refused_and_user_set_reads_the_password_from_standard_input() {
    let m = Master::start_in(&temp_dir("passwords"), &["--no-docker", "--min-password-length", "8"]);
    let new_user = |password: &str| {
        let (s, v) = m.post("/api/0.6/user", ADMIN, &json!({"name": "alice", "role": "user", "password": password}));
        (s, v["code"].as_str().unwrap_or("").to_string())
    };
    assert_eq!(new_user("1234567"), (400, "password_too_short".into()));
    assert_eq!(new_user(""), (400, "invalid_request".into()));
    assert_eq!(new_user("12345678").0, 201);
    let put = |who: (&str, &str), password: &str| {
        let body = json!({ "password": password }).to_string();
        let (s, v) = m.call("PUT", "/api/0.6/user/alice", Some(who), Some(&body));
        (s, v["code"].as_str().unwrap_or("").to_string())
    };
    assert_eq!(put(("alice", "12345678"), "short"), (400, "password_too_short".into()));
    // Characters, not bytes: eight of them, sixteen bytes.
    assert_eq!(put(("alice", "12345678"), "éééééééé").0, 200);
    assert_eq!(m.get("/api/0.6/info", ("alice", "éééééééé")).0, 200);

    // `user-set --password` alone reads the new password from standard input.
    let (ok, out) = client(&m, ADMIN, &["user-set", "alice", "--password"], "from-stdin-pw\n");
    assert!(ok, "{out}");
    assert!(out.contains("password changed"), "{out}");
    assert_eq!(m.get("/api/0.6/info", ("alice", "from-stdin-pw")).0, 200);
    let (ok, out) = client(&m, ADMIN, &["user-set", "alice", "--password"], "short\n");
    assert!(!ok && out.contains("password_too_short"), "{out}");
    let (ok, out) = client(&m, ADMIN, &["user-set", "alice", "--password"], "");
    assert!(!ok && out.contains("no password given"), "{out}");
    // The 0.9.7 way, on the command line, still works.
    let (ok, out) = client(&m, ADMIN, &["user-set", "alice", "--password", "on-the-line", "--role", "guest"], "");
    assert!(ok, "{out}");
    assert_eq!(m.get("/api/0.6/info", ("alice", "on-the-line")).0, 200);
    // user-new reads it from standard input too, and the minimum holds there.
    let (ok, out) = client(&m, ADMIN, &["user-new", "--name", "bob", "--role", "user"], "tiny\n");
    assert!(!ok && out.contains("password_too_short"), "{out}");
    let (ok, out) = client(&m, ADMIN, &["user-new", "--name", "bob", "--role", "user"], "bob-password\n");
    assert!(ok, "{out}");
}
