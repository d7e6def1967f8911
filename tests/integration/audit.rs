//! The audit record through real HTTP on a real master (`--no-docker`): failed sign-ins with the
//! name as given and the client's address, never the password; token creation and revocation,
//! never the token; a real sign-in once, not every request the credential cache lets in; for
//! administrators only; bounded by `audit-keep`; a hostile name shown escaped on `/admin/audit`.

use serde_json::{json, Value};

use crate::common::{assert_error, request_builder, temp_dir, Master, ADMIN};

/// The audit record, newest first.
fn events(m: &Master, query: &str) -> Vec<Value> {
    let (s, v) = m.get(&format!("/api/0.6/audit{query}"), ADMIN);
    assert_eq!(s, 200, "{v}");
    v.as_array().unwrap().clone()
}

fn of<'a>(events: &'a [Value], kind: &str, user: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["kind"] == kind && e["user"] == user).collect()
}

#[test]
fn sign_ins_failures_and_tokens_are_recorded_without_secrets_for_administrators_only() {
    let m = Master::start_in(&temp_dir("audit"), &["--no-docker"]);
    m.create_user("alice", "user", "alice-password");
    let alice = ("alice", "alice-password");

    // Failures under a made-up name: the name and the address, never the password.
    for _ in 0..3 {
        assert_eq!(m.get("/api/0.6/user/nobody-here", ("nobody-here", "guessed-Secret-1")).0, 401);
    }
    // A real sign-in, then requests the credential cache lets in: one sign-in recorded.
    for _ in 0..5 {
        assert_eq!(m.get("/api/0.6/user/alice", alice).0, 200);
    }
    let (s, v) = m.post("/api/0.6/token", alice, &json!({"name": "laptop", "expires_days": 3}));
    assert_eq!(s, 201, "{v}");
    let token = v["token"].as_str().unwrap().to_string();
    assert_eq!(m.delete("/api/0.6/token/laptop", alice).0, 204);

    let all = events(&m, "");
    let text = Value::Array(all.clone()).to_string();
    assert!(!text.contains("guessed-Secret-1") && !text.contains("alice-password"), "{text}");
    assert!(!text.contains(&token), "{text}");
    let failed = of(&all, "sign_in_failed", "nobody-here");
    assert_eq!(failed.len(), 3, "{text}");
    for e in &failed {
        assert_eq!(e["address"], "127.0.0.1", "{e}");
        assert!(time::OffsetDateTime::parse(
            e["time"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339
        )
        .is_ok());
    }
    assert_eq!(of(&all, "sign_in", "alice").len(), 1, "{text}");
    let created = of(&all, "token_created", "alice");
    let revoked = of(&all, "token_revoked", "alice");
    assert_eq!((created.len(), revoked.len()), (1, 1), "{text}");
    assert_eq!((&created[0]["detail"], &created[0]["address"]), (&json!("laptop"), &json!("127.0.0.1")));
    assert_eq!(revoked[0]["detail"], "laptop");
    // Newest first, and `?limit=`.
    assert_eq!(all[0]["kind"], "token_revoked", "{text}");
    assert_eq!(events(&m, "?limit=2").len(), 2);
    assert_error(&m.get("/api/0.6/audit?limit=0", ADMIN), 400, "invalid_request");

    // Administrators only, as the other administrators' routes.
    assert_error(&m.get("/api/0.6/audit", alice), 403, "admin_only");
    assert_eq!(m.get("/api/0.6/audit", ("alice", "wrong-password")).0, 401);
    assert_eq!(m.call("GET", "/api/0.6/audit", None, None).0, 401);
    assert_eq!(m.get("/admin/audit", alice).0, 404);
}

#[test]
fn the_record_is_bounded_uses_the_forwarded_address_and_escapes_names_on_its_page() {
    let m = Master::start_in(&temp_dir("audit-keep"), &["--no-docker", "--audit-keep=5", "--trusted-proxy=127.0.0.1"]);
    for i in 0..12 {
        assert_eq!(m.get("/api/0.6/info", (&format!("made-up-{i}"), "some-password")).0, 401);
    }
    // Behind a trusted proxy, the client's address.
    let hostile = "<script>alert(1)</script>";
    let req = request_builder("GET", &format!("{}/api/0.6/user/x", m.url), Some((hostile, "pw-pw-pw-pw")))
        .header("X-Forwarded-For", "203.0.113.9")
        .body(Vec::new())
        .unwrap();
    assert_eq!(m.agent.run(req).unwrap().status().as_u16(), 401);

    // Full: the newest five (the administrator's own sign-in reading it is the newest).
    let all = events(&m, "?limit=100");
    assert_eq!(all.len(), 5, "{all:?}");
    assert_eq!((&all[0]["kind"], &all[0]["user"]), (&json!("sign_in"), &json!("zoeadmin")), "{all:?}");
    assert_eq!((&all[1]["user"], &all[1]["address"]), (&json!(hostile), &json!("203.0.113.9")), "{all:?}");
    assert_eq!(all[2]["user"], "made-up-11", "{all:?}");

    let (s, page) = m.get("/admin/audit", ADMIN);
    assert_eq!(s, 200);
    let page = page.as_str().unwrap();
    assert!(page.contains("&#60;script&#62;alert(1)&#60;/script&#62;"), "{page}");
    assert!(!page.contains(hostile), "{page}");
    assert!(page.contains("203.0.113.9") && page.contains("sign_in_failed"), "{page}");
}
