//! API tokens through real HTTP and a real master (`--no-docker`): made, used as
//! `Authorization: Bearer`, listed without secrets, revoked; other users' tokens out of reach;
//! expired, revoked and deleted users' tokens refused; tokens kept (as hashes only) across a
//! restart.

use serde_json::{json, Value};

use crate::common::{assert_error, newest_checkpoint, temp_dir, Master, ADMIN};

const NO_DOCKER: &[&str] = &["--no-docker"];

/// A request with `Authorization: Bearer <token>`.
fn bearer(m: &Master, method: &str, path: &str, token: &str, body: Option<&Value>) -> (u16, Value) {
    let url = format!("{}{path}", m.url);
    let mut req =
        ureq::http::Request::builder().method(method).uri(&url).header("Authorization", format!("Bearer {token}"));
    if body.is_some() {
        req = req.header("Content-Type", "application/json");
    }
    let req = req.body(body.map(Value::to_string).unwrap_or_default().into_bytes()).unwrap();
    let mut resp = m.agent.run(req).unwrap();
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    (status, if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) })
}

/// Makes a token; answers it.
fn make(m: &Master, auth: (&str, &str), name: &str, days: u32) -> String {
    let (s, v) = m.post("/api/0.6/token", auth, &json!({"name": name, "expires_days": days}));
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["name"], name);
    assert!(v["expires"].is_string(), "{v}");
    v["token"].as_str().unwrap().to_string()
}

#[test]
fn tokens_are_made_used_listed_without_secrets_and_revoked() {
    let m = Master::start_in(&temp_dir("tokens"), NO_DOCKER);
    m.create_user("alice", "user", "pw-alice");
    m.create_user("bob", "user", "pw-bob");
    let alice = ("alice", "pw-alice");
    let bob = ("bob", "pw-bob");

    let token = make(&m, alice, "laptop", 30);
    let (s, v) = bearer(&m, "GET", "/api/0.6/user/alice", &token, None);
    assert_eq!((s, v["name"].as_str()), (200, Some("alice")), "{v}");
    // Tokens make tokens, as basic auth does.
    let second = bearer(&m, "POST", "/api/0.6/token", &token, Some(&json!({"name": "ci", "expires_days": 1})));
    assert_eq!(second.0, 201, "{second:?}");

    // The listing: names and times, never a token or a hash.
    let (s, v) = m.get("/api/0.6/token", alice);
    assert_eq!(s, 200, "{v}");
    let names: Vec<&str> = v.as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["laptop", "ci"]);
    for t in v.as_array().unwrap() {
        assert!(t["created"].is_string() && t["expires"].is_string() && t.get("last_used").is_some(), "{t}");
        assert!(t.get("token").is_none() && t.get("hash").is_none(), "{t}");
    }
    let text = v.to_string();
    assert!(!text.contains(&token) && !text.contains(second.1["token"].as_str().unwrap()), "{text}");

    // Bad input, with stable codes.
    let bad = |body: Value| m.post("/api/0.6/token", alice, &body);
    assert_error(&bad(json!({"name": "laptop", "expires_days": 3})), 409, "token_exists");
    assert_error(&bad(json!({"name": "Bad Name", "expires_days": 3})), 400, "invalid_token_name");
    assert_error(&bad(json!({"name": "x".repeat(33), "expires_days": 3})), 400, "invalid_token_name");
    assert_error(&bad(json!({"name": "ok", "expires_days": 0})), 400, "invalid_expires_days");
    assert_error(&bad(json!({"name": "ok", "expires_days": 3651})), 400, "invalid_expires_days");
    assert_error(&bad(json!({"name": "ok", "expires_days": "ten"})), 400, "invalid_expires_days");
    assert_error(&bad(json!({"name": "ok"})), 400, "invalid_request");
    for i in 2..20 {
        make(&m, alice, &format!("t{i}"), 1);
    }
    assert_error(&bad(json!({"name": "one-more", "expires_days": 3})), 409, "too_many_tokens");

    // Another user's tokens: not visible, not revocable; administrators see and revoke them.
    let (s, v) = m.get("/api/0.6/token", bob);
    assert_eq!((s, v), (200, json!([])));
    assert_error(&m.get("/api/0.6/token?user=alice", bob), 404, "no_such_user");
    assert_error(&m.delete("/api/0.6/token/laptop", bob), 404, "no_such_token");
    assert_error(&m.delete("/api/0.6/token/laptop?user=alice", bob), 404, "no_such_user");
    assert_eq!(m.get("/api/0.6/token?user=alice", ADMIN).1.as_array().unwrap().len(), 20);
    assert_eq!(m.delete("/api/0.6/token/ci?user=alice", ADMIN).0, 204);
    assert_error(&bearer(&m, "GET", "/api/0.6/info", second.1["token"].as_str().unwrap(), None), 401, "unauthorized");

    // Revoked by its user: refused from then on.
    assert_eq!(m.delete("/api/0.6/token/laptop", alice).0, 204);
    assert_error(&bearer(&m, "GET", "/api/0.6/info", &token, None), 401, "unauthorized");
    assert_error(&m.delete("/api/0.6/token/laptop", alice), 404, "no_such_token");

    // Garbage is a 401, never a 500.
    for junk in ["", "x", "zoe_", "zoe_1_", "zoe_99999999999999999999999_x", &"a".repeat(5000)] {
        assert_error(&bearer(&m, "GET", "/api/0.6/info", junk, None), 401, "unauthorized");
    }

    // A deleted user's tokens end with them.
    let bobs = make(&m, bob, "mine", 5);
    assert_eq!(bearer(&m, "GET", "/api/0.6/info", &bobs, None).0, 200);
    assert_eq!(m.delete("/api/0.6/user/bob", ADMIN).0, 204);
    assert_error(&bearer(&m, "GET", "/api/0.6/info", &bobs, None), 401, "unauthorized");

    // No token in the log, nor in any checkpoint.
    let log = m.log_text();
    assert!(!log.contains(&token) && !log.contains(&bobs), "a token in the log");
    for f in std::fs::read_dir(m.state_dir.join("checkpoints")).unwrap() {
        let text = std::fs::read_to_string(f.unwrap().path()).unwrap();
        assert!(!text.contains(&token) && !text.contains(&bobs), "a token in a checkpoint");
    }
}

#[test]
fn tokens_survive_a_restart_and_expire() {
    let dir = temp_dir("tokens-restart");
    let mut m = Master::start_in(&dir, NO_DOCKER);
    m.create_user("alice", "user", "pw-alice");
    let alice = ("alice", "pw-alice");
    let kept = make(&m, alice, "kept", 10);
    let old = make(&m, alice, "old", 10);
    // A use is noted (coarsely): the listing shows when.
    assert_eq!(bearer(&m, "GET", "/api/0.6/info", &kept, None).0, 200);
    crate::common::wait_until(
        10,
        || m.get("/api/0.6/token", alice).1[0]["last_used"].is_string(),
        || "last_used was not noted".into(),
    );
    m.kill();

    // Hand-edit: make "old" a token that expired long ago.
    let file = newest_checkpoint(&dir);
    let text = std::fs::read_to_string(&file).unwrap();
    let at = text.find("name: \"old\"").unwrap();
    let (head, tail) = text.split_at(at);
    let mut lines: Vec<String> = tail.lines().map(str::to_string).collect();
    for l in lines.iter_mut().take(5) {
        if l.trim_start().starts_with("created_at:") {
            *l = l.split("created_at:").next().unwrap().to_string() + "created_at: \"2020-01-01T00:00:00Z\",";
        }
        if l.trim_start().starts_with("expires_at:") {
            *l = l.split("expires_at:").next().unwrap().to_string() + "expires_at: \"2020-01-11T00:00:00Z\",";
        }
    }
    std::fs::write(&file, format!("{head}{}\n", lines.join("\n"))).unwrap();
    assert!(!text.contains(&kept) && !text.contains(&old), "a token in the checkpoint in clear");

    let m = Master::start_in(&dir, NO_DOCKER);
    assert_eq!(bearer(&m, "GET", "/api/0.6/info", &kept, None).0, 200, "kept across the restart");
    assert_error(&bearer(&m, "GET", "/api/0.6/info", &old, None), 401, "unauthorized");
}

/// Runs the client with `XDG_CONFIG_HOME` of the test and only the given variables.
fn cli(config: &std::path::Path, vars: &[(&str, &str)], args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut cmd = Command::new(crate::common::zoe_bin());
    cmd.args(args).env_remove("ZOE_URL").env_remove("ZOE_USER").env_remove("ZOE_PASS").env("XDG_CONFIG_HOME", config);
    cmd.envs(vars.iter().copied());
    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    if let Some(text) = stdin {
        child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

#[test]
fn zoe_login_keeps_a_token_in_a_private_file_and_logout_revokes_it() {
    use std::os::unix::fs::PermissionsExt;
    let dir = temp_dir("tokens-cli");
    let m = Master::start_in(&dir, NO_DOCKER);
    m.create_user("alice", "user", "pw-alice");
    let config = dir.join("config");
    let file = config.join("zoe").join("credentials");

    // The password from ZOE_PASS.
    let env = [("ZOE_URL", m.url.as_str()), ("ZOE_USER", "alice"), ("ZOE_PASS", "pw-alice")];
    let (ok, out, err) = cli(&config, &env, &["login", "--name", "laptop"], None);
    assert!(ok, "{out}{err}");
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let token = saved["token"].as_str().unwrap().to_string();
    assert!(!out.contains(&token) && !err.contains(&token), "the token is not printed");
    assert_eq!(bearer(&m, "GET", "/api/0.6/info", &token, None).0, 200);

    // Later commands need no password, nor even the server's address.
    let (ok, out, err) = cli(&config, &[], &["--json", "user-get", "alice"], None);
    assert!(ok, "{out}{err}");
    assert!(out.contains("\"alice\""), "{out}");
    // A file that others can read is refused.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (ok, _, err) = cli(&config, &[], &["user-get", "alice"], None);
    assert!(!ok && err.contains("can be read by others"), "{err}");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();

    // Logout revokes it and deletes the file.
    let (ok, out, err) = cli(&config, &[], &["logout"], None);
    assert!(ok, "{out}{err}");
    assert!(!file.exists());
    assert_error(&bearer(&m, "GET", "/api/0.6/info", &token, None), 401, "unauthorized");
    let (ok, _, err) = cli(&config, &[], &["user-get", "alice"], None);
    assert!(!ok && err.contains("no server given"), "{err}");

    // The password from standard input (not a terminal) works too.
    let env = [("ZOE_URL", m.url.as_str()), ("ZOE_USER", "alice")];
    let (ok, out, err) = cli(&config, &env, &["login"], Some("pw-alice\n"));
    assert!(ok, "{out}{err}");
    assert!(file.exists());
    let (ok, _, err) = cli(&config, &env, &["login"], Some("wrong\n"));
    assert!(!ok && err.contains("unauthorized"), "{err}");
}

#[test]
fn a_valid_token_passes_whatever_failed_logins_came_before() {
    let m = Master::start_in(&temp_dir("tokens-throttle"), &["--no-docker", "--login-failures-max", "3"]);
    m.create_user("alice", "user", "pw-alice");
    // Made by an administrator for alice, so that alice's password was never verified (a
    // verified one would pass too, from the credential cache).
    let (s, v) = m.post("/api/0.6/token?user=alice", ADMIN, &json!({"name": "script", "expires_days": 1}));
    assert_eq!(s, 201, "{v}");
    let token = v["token"].as_str().unwrap().to_string();
    let (s, v) = bearer(&m, "GET", "/api/0.6/user/alice", &token, None);
    assert_eq!((s, v["name"].as_str()), (200, Some("alice")), "alice's token: {v}");
    // Someone guesses alice's password, and many made-up names, from this address.
    for i in 0..40 {
        m.get("/api/0.6/info", ("alice", &format!("guess-{i}")));
        m.get("/api/0.6/info", (&format!("nobody{i}"), "x"));
    }
    assert_error(&m.get("/api/0.6/info", ("alice", "pw-alice")), 429, "too_many_failed_logins");
    assert_eq!(bearer(&m, "GET", "/api/0.6/info", &token, None).0, 200, "the token passes");
}
